//! The Echo service every node runs (instance 0): request/response and one-way probes for
//! tests and the benchmark, the node's transport counters, and a pairwise ping of every
//! live member of the view.

use crate::ids::NodeRef;
use crate::net::membership::GetView;
use crate::net::metrics::NetMetricsSnapshot;
use crate::net::service::{ActorRef, ServiceId};
use crate::net::transport::Transport;
use crate::net::NetError;
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Mailbox of the Echo actor: as many messages as one connection delivers at once.
pub const MAILBOX_CAPACITY: usize = crate::net::conn::MAX_INFLIGHT_PER_CONNECTION;

/// How long `PingAll` waits for each peer.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Request: answered with the same payload.
#[derive(Debug, Clone, PartialEq, Eq, Message, Serialize, Deserialize)]
#[rtype(result = "Echo")]
pub struct Echo {
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// One-way: recorded, so a test can check one-way delivery with [`NoteCount`].
#[derive(Debug, Clone, Copy, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Note {
    pub seq: u64,
}

/// Request: how many [`Note`]s arrived, and the last sequence number.
#[derive(Debug, Clone, Copy, Message, Serialize, Deserialize)]
#[rtype(result = "NoteStats")]
pub struct NoteCount;

/// Reply to [`NoteCount`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteStats {
    pub count: u64,
    pub last_seq: Option<u64>,
}

/// Request: the node's transport counters.
#[derive(Debug, Clone, Copy, Message, Serialize, Deserialize)]
#[rtype(result = "NetMetricsSnapshot")]
pub struct Stats;

/// Request: ping every other live member of this node's view; one report per member.
#[derive(Debug, Clone, Copy, Message, Serialize, Deserialize)]
#[rtype(result = "Vec<PingReport>")]
pub struct PingAll;

/// Request: send one [`Note`] (one-way) to every other live member; replies how many
/// were queued.
#[derive(Debug, Clone, Copy, Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
pub struct NoteAll {
    pub seq: u64,
}

/// Outcome of pinging one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReport {
    pub node: NodeRef,
    pub ok: bool,
    pub rtt_us: u64,
    pub error: Option<String>,
}

/// The Echo actor.
pub struct EchoService {
    transport: Transport,
    view: Option<Recipient<GetView>>,
    notes: NoteStats,
}

impl EchoService {
    /// Start it and register its messages on `transport` (instance 0). `view` is where
    /// `PingAll` gets the member list (none: nobody to ping).
    pub fn start(
        transport: Transport,
        view: Option<Recipient<GetView>>,
    ) -> Result<Addr<EchoService>, NetError> {
        let addr = EchoService {
            transport: transport.clone(),
            view,
            notes: NoteStats {
                count: 0,
                last_seq: None,
            },
        }
        .start();
        transport.register::<Echo>(0, addr.clone().recipient())?;
        transport.register::<Note>(0, addr.clone().recipient())?;
        transport.register::<NoteCount>(0, addr.clone().recipient())?;
        transport.register::<Stats>(0, addr.clone().recipient())?;
        transport.register::<PingAll>(0, addr.clone().recipient())?;
        transport.register::<NoteAll>(0, addr.clone().recipient())?;
        Ok(addr)
    }
}

impl Actor for EchoService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Room for a connection's worth of pipelined requests (actix's default is 16).
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Handler<Echo> for EchoService {
    type Result = MessageResult<Echo>;
    fn handle(&mut self, msg: Echo, _: &mut Context<Self>) -> Self::Result {
        MessageResult(msg)
    }
}

impl Handler<Note> for EchoService {
    type Result = ();
    fn handle(&mut self, msg: Note, _: &mut Context<Self>) {
        self.notes.count += 1;
        self.notes.last_seq = Some(msg.seq);
    }
}

impl Handler<NoteCount> for EchoService {
    type Result = MessageResult<NoteCount>;
    fn handle(&mut self, _: NoteCount, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.notes)
    }
}

impl Handler<Stats> for EchoService {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.transport.metrics())
    }
}

impl Handler<PingAll> for EchoService {
    type Result = ResponseFuture<Vec<PingReport>>;
    fn handle(&mut self, _: PingAll, _: &mut Context<Self>) -> Self::Result {
        let transport = self.transport.clone();
        let view = self.view.clone();
        Box::pin(async move {
            let peers = other_live_members(&transport, view).await;
            let pings = peers.into_iter().map(|node| ping(&transport, node));
            futures::future::join_all(pings).await
        })
    }
}

impl Handler<NoteAll> for EchoService {
    type Result = ResponseFuture<u64>;
    fn handle(&mut self, msg: NoteAll, _: &mut Context<Self>) -> Self::Result {
        let transport = self.transport.clone();
        let view = self.view.clone();
        Box::pin(async move {
            let mut sent = 0;
            for node in other_live_members(&transport, view).await {
                let h = transport.handle::<Note>(ActorRef::new(node, ServiceId::Echo, 0));
                if h.tell(Note { seq: msg.seq }).is_ok() {
                    sent += 1;
                }
            }
            sent
        })
    }
}

/// Live members of the view other than this node (none without a view).
async fn other_live_members(
    transport: &Transport,
    view: Option<Recipient<GetView>>,
) -> Vec<NodeRef> {
    let Some(view) = view else { return Vec::new() };
    let Ok(view) = view.send(GetView).await else {
        return Vec::new();
    };
    let me = &transport.local_node().id;
    view.live()
        .filter(|m| m.node.id != *me)
        .map(|m| m.node.clone())
        .collect()
}

async fn ping(transport: &Transport, node: NodeRef) -> PingReport {
    let h = transport.handle::<Echo>(ActorRef::new(node.clone(), ServiceId::Echo, 0));
    let start = Instant::now();
    let payload = b"ping".to_vec();
    let outcome = h
        .send_timeout(
            Echo {
                payload: payload.clone(),
            },
            PING_TIMEOUT,
        )
        .await;
    let rtt_us = start.elapsed().as_micros() as u64;
    let (ok, error) = match outcome {
        Ok(reply) if reply.payload == payload => (true, None),
        Ok(_) => (false, Some("echo payload differs".to_string())),
        Err(e) => (false, Some(e.to_string())),
    };
    PingReport {
        node,
        ok,
        rtt_us,
        error,
    }
}
