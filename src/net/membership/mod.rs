//! Membership: who is in the cluster, their roles, and whether they are alive.
//!
//! `core` holds the pure state machine (view, transitions, merge); this module is the thin
//! actix actor around it: a heartbeat timer, the join through a seed, the wire handlers and
//! `ViewChanged` notifications. Heartbeats carry the sender's whole view (O(n) per message,
//! fine for clusters of tens of nodes).
//!
//! - `core`: `MembershipCore`, `View`, `Member`, `MemberState`.
//! - `messages`: `Join`, `Gossip`, `Leave`, `GetView` (wire); `Subscribe`, `ViewChanged`,
//!   `StartDraining`, `LeaveCluster` (local).

pub mod core;
#[cfg(test)]
mod core_tests;
pub mod messages;

pub use self::core::{Member, MemberState, MembershipCore, Timeouts, View};
pub use self::messages::{
    GetView, Gossip, Join, Leave, LeaveCluster, StartDraining, Subscribe, ViewChanged,
};

use crate::config::Config;
use crate::ids::NodeRef;
use crate::net::service::{ActorRef, ServiceId};
use crate::net::transport::Transport;
use crate::net::NetError;
use actix::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Dead members get a heartbeat every this many ticks (not every tick: each costs a failed
/// connection attempt), so nodes that wrongly declared each other dead reconnect.
pub const DEAD_PROBE_EVERY: u64 = 10;

/// Pause between attempts to join through a seed that is not reachable (yet).
pub const JOIN_RETRY: Duration = Duration::from_millis(500);

/// Pause between attempts when the seed refuses us (wrong secret or version): that needs an
/// operator, so retry slowly and log loudly.
pub const JOIN_RETRY_REFUSED: Duration = Duration::from_secs(5);

/// How long a leaving (or draining) node waits for each peer to acknowledge the news.
pub const LEAVE_TIMEOUT: Duration = Duration::from_millis(500);

/// The membership actor of one node (service `Membership`, instance 0).
pub struct Membership {
    core: MembershipCore,
    transport: Transport,
    subscribers: Vec<Recipient<ViewChanged>>,
    heartbeat: Duration,
    seed: Option<SocketAddr>,
    ticks: u64,
}

impl Membership {
    /// Start the actor for this node and register its wire messages on the transport.
    pub fn start(transport: Transport, cfg: &Config) -> Result<Addr<Membership>, NetError> {
        let me = Member {
            node: transport.local_node().clone(),
            addr: transport.local_addr(),
            roles: cfg.node.roles.clone(),
            state: MemberState::Alive,
            kvs_shards: if cfg.node.roles.contains(&crate::config::Role::Kvs) {
                u32::try_from(cfg.kvs_shards()).unwrap_or(u32::MAX)
            } else {
                0
            },
            draining: false,
        };
        let timeouts = Timeouts {
            suspect_after: Duration::from_millis(cfg.membership.suspect_after_ms),
            dead_after: Duration::from_millis(cfg.membership.dead_after_ms),
        };
        let actor = Membership {
            core: MembershipCore::new(me, timeouts, Instant::now()),
            transport: transport.clone(),
            subscribers: Vec::new(),
            heartbeat: Duration::from_millis(cfg.membership.heartbeat_ms),
            seed: cfg.node.join,
            ticks: 0,
        };
        let addr = actor.start();
        transport.register::<Join>(0, addr.clone().recipient())?;
        transport.register::<Gossip>(0, addr.clone().recipient())?;
        transport.register::<Leave>(0, addr.clone().recipient())?;
        transport.register::<GetView>(0, addr.clone().recipient())?;
        Ok(addr)
    }

    fn peer(node: &NodeRef) -> ActorRef {
        ActorRef::new(node.clone(), ServiceId::Membership, 0)
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let changed = self.core.tick(now);
        self.ticks += 1;
        let Some(me) = self.core.me().cloned() else {
            return;
        };
        let gossip = Gossip {
            from: me,
            members: self.core.view().members.values().cloned().collect(),
        };
        for m in self
            .core
            .heartbeat_targets(self.ticks % DEAD_PROBE_EVERY == 0)
        {
            let h = self.transport.handle::<Gossip>(Self::peer(&m.node));
            if let Err(e) = h.tell(gossip.clone()) {
                tracing::debug!(node = %m.node, cause = %e, "heartbeat not sent");
            }
        }
        if changed {
            self.view_changed();
        }
    }

    /// Tell the transport how to reach every member and which are down (suspect, dead or
    /// gone: requests to them fail at once), and the subscribers what changed.
    fn view_changed(&mut self) {
        let view = self.core.view().clone();
        let me = &self.transport.local_node().id;
        for m in view.members.values().filter(|m| &m.node.id != me) {
            if m.state.is_live() {
                self.transport.connect_hint(&m.node.id, m.addr);
            }
            let failed = self
                .transport
                .set_reachable(&m.node.id, m.state == MemberState::Alive);
            if failed > 0 {
                tracing::info!(node = %m.node, state = %m.state, failed, "requests to a down peer failed");
            }
        }
        tracing::info!(
            members = view.members.len(),
            live = view.live().count(),
            view = %view.summary().iter().map(|(n, s)| format!("{n}:{s}")).collect::<Vec<_>>().join(","),
            "view changed"
        );
        self.subscribers.retain(|s| s.connected());
        for s in &self.subscribers {
            // Local, trusted subscribers; the rate is bounded by view changes.
            s.do_send(ViewChanged { view: view.clone() });
        }
    }

    fn join(&mut self, seed: SocketAddr, ctx: &mut Context<Self>) {
        let transport = self.transport.clone();
        let Some(me) = self.core.me().cloned() else {
            return;
        };
        let attempt = async move {
            loop {
                match try_join(&transport, seed, &me).await {
                    Ok(joined) => return joined,
                    Err(e) if e.is_transient() || e == NetError::ConnectionLost => {
                        tracing::warn!(seed = %seed, cause = %e, "join failed; retrying");
                        tokio::time::sleep(JOIN_RETRY).await;
                    }
                    Err(e) => {
                        tracing::error!(seed = %seed, cause = %e, "join refused; check the cluster secret and version");
                        tokio::time::sleep(JOIN_RETRY_REFUSED).await;
                    }
                }
            }
        };
        ctx.spawn(attempt.into_actor(self).map(|(seed, view), act, _| {
            let now = Instant::now();
            let mut changed = false;
            if let Some(s) = view.get(&seed.id) {
                changed |= act.core.heard_from(s, now);
            }
            changed |= act.core.merge(view.members.values(), now);
            tracing::info!(seed = %seed, members = view.members.len(), "joined the cluster");
            if changed {
                act.view_changed();
            }
        }));
    }
}

async fn try_join(
    t: &Transport,
    seed: SocketAddr,
    me: &Member,
) -> Result<(NodeRef, View), NetError> {
    let seed_ref = t.identify(seed).await?;
    let view = t
        .handle::<Join>(Membership::peer(&seed_ref))
        .send(Join { member: me.clone() })
        .await?;
    Ok((seed_ref, view))
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.heartbeat, |act, _| act.on_tick());
        if let Some(seed) = self.seed {
            self.join(seed, ctx);
        }
    }
}

impl Handler<Join> for Membership {
    type Result = MessageResult<Join>;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        tracing::info!(node = %msg.member.node, addr = %msg.member.addr, "join request");
        if self.core.heard_from(&msg.member, Instant::now()) {
            self.view_changed();
        }
        MessageResult(self.core.view().clone())
    }
}

impl Handler<Gossip> for Membership {
    type Result = ();
    fn handle(&mut self, msg: Gossip, _: &mut Context<Self>) {
        let now = Instant::now();
        let mut changed = self.core.heard_from(&msg.from, now);
        changed |= self.core.merge(&msg.members, now);
        if changed {
            self.view_changed();
        }
    }
}

impl Handler<Leave> for Membership {
    type Result = ();
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        tracing::info!(node = %msg.node, "peer left");
        if self.core.leave(&msg.node, Instant::now()) {
            self.view_changed();
        }
    }
}

impl Handler<GetView> for Membership {
    type Result = MessageResult<GetView>;
    fn handle(&mut self, _: GetView, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.view().clone())
    }
}

impl Handler<Subscribe> for Membership {
    type Result = ();
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        msg.0.do_send(ViewChanged {
            view: self.core.view().clone(),
        });
        self.subscribers.push(msg.0);
    }
}

impl Handler<StartDraining> for Membership {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, _: StartDraining, _: &mut Context<Self>) -> Self::Result {
        if self.core.start_draining() {
            tracing::info!("draining: no new work comes here");
            self.view_changed();
        }
        let Some(me) = self.core.me().cloned() else {
            return Box::pin(async { 0 });
        };
        let gossip = Gossip {
            from: me,
            members: self.core.view().members.values().cloned().collect(),
        };
        let sends: Vec<_> = self
            .core
            .heartbeat_targets(false)
            .into_iter()
            .map(|m| {
                let h = self.transport.handle::<Gossip>(Self::peer(&m.node));
                let g = gossip.clone();
                async move { h.send_timeout(g, LEAVE_TIMEOUT).await.is_ok() }
            })
            .collect();
        Box::pin(async move {
            let acks = futures::future::join_all(sends).await;
            acks.into_iter().filter(|ok| *ok).count()
        })
    }
}

impl Handler<LeaveCluster> for Membership {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, _: LeaveCluster, _: &mut Context<Self>) -> Self::Result {
        let me = self.transport.local_node().clone();
        let sends: Vec<_> = self
            .core
            .heartbeat_targets(false)
            .into_iter()
            .map(|m| {
                let h = self.transport.handle::<Leave>(Self::peer(&m.node));
                let leave = Leave { node: me.clone() };
                async move { h.send_timeout(leave, LEAVE_TIMEOUT).await.is_ok() }
            })
            .collect();
        Box::pin(async move {
            let acks = futures::future::join_all(sends).await;
            acks.into_iter().filter(|ok| *ok).count()
        })
    }
}
