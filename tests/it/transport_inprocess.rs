//! Two transports in one process (one actix System): local handles, timeouts, connection
//! loss, back-pressure and addressing errors.

use crate::transport_support::{run, until, CONFIG, SECRET};
use actix::prelude::*;
use cloudburst::config::Config;
use cloudburst::ids::{Generation, NodeId, NodeRef};
use cloudburst::net::echo::{Echo, EchoService, Note};
use cloudburst::net::{ActorRef, Handle, NetError, RemoteMessage, ServiceId, Transport};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A request its handler answers only after `ms` milliseconds (and says it got it).
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
struct Slow {
    ms: u64,
}

impl RemoteMessage for Slow {
    const SERVICE: ServiceId = ServiceId::Executor;
}

/// Tells `got` of every request it receives before it sleeps on it.
struct Sleeper {
    got: mpsc::UnboundedSender<u64>,
}

impl Actor for Sleeper {
    type Context = Context<Self>;
}

impl Handler<Slow> for Sleeper {
    type Result = ResponseFuture<u64>;
    fn handle(&mut self, msg: Slow, _: &mut Context<Self>) -> Self::Result {
        let _ = self.got.send(msg.ms);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(msg.ms)).await;
            msg.ms
        })
    }
}

async fn transport(name: &str, tweak: impl FnOnce(&mut Config)) -> Transport {
    let mut cfg = Config::from_toml(CONFIG).expect("config");
    cfg.node.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.node.cluster_secret = SECRET.into();
    tweak(&mut cfg);
    Transport::start(&cfg, Some(NodeId::new(name)))
        .await
        .expect("start")
}

/// `a` knows `b`; `b` runs Echo and a Sleeper, which reports each `Slow` it receives on
/// the returned channel.
async fn pair(tweak: impl Fn(&mut Config)) -> (Transport, Transport, mpsc::UnboundedReceiver<u64>) {
    let a = transport("a", &tweak).await;
    let b = transport("b", &tweak).await;
    EchoService::start(b.clone(), None).expect("echo");
    let (got, received) = mpsc::unbounded_channel();
    b.register::<Slow>(0, Sleeper { got }.start().recipient())
        .expect("slow");
    a.connect_hint(&b.local_node().id, b.local_addr());
    (a, b, received)
}

fn on(t: &Transport, service: ServiceId) -> ActorRef {
    ActorRef::new(t.local_node().clone(), service, 0)
}

#[test]
fn local_targets_skip_the_wire_and_remote_ones_use_it() {
    run(async {
        let (a, b, _) = pair(|_| {}).await;
        let local: Handle<Echo> = b.handle(on(&b, ServiceId::Echo));
        assert!(local.is_local());
        let reply = local
            .send(Echo {
                payload: vec![1, 2],
            })
            .await
            .expect("local echo");
        assert_eq!(reply.payload, vec![1, 2]);
        assert_eq!(b.metrics().frames_in, 0, "local send used the wire");
        let remote: Handle<Echo> = a.handle(on(&b, ServiceId::Echo));
        assert!(!remote.is_local());
        let reply = remote
            .send(Echo { payload: vec![3] })
            .await
            .expect("remote echo");
        assert_eq!(reply.payload, vec![3]);
        assert!(b.metrics().frames_in >= 1);
        a.shutdown().await;
        b.shutdown().await;
    });
}

#[test]
fn a_request_times_out_and_a_late_reply_is_ignored() {
    run(async {
        let (a, b, _) = pair(|_| {}).await;
        let h: Handle<Slow> = a.handle(on(&b, ServiceId::Executor));
        let frames_before = a.metrics().frames_in;
        let start = Instant::now();
        let r = h
            .send_timeout(Slow { ms: 300 }, Duration::from_millis(50))
            .await;
        assert_eq!(r, Err(NetError::Timeout));
        assert!(start.elapsed() < Duration::from_millis(250));
        assert_eq!(a.metrics().timeouts, 1);
        assert_eq!(
            a.metrics().frames_in,
            frames_before,
            "no reply before the timeout"
        );
        // The late reply arrives (the only frame `b` sends) and is dropped; the link still
        // works, and the next reply is the next request's.
        until(Duration::from_secs(5), "the late reply to arrive", || {
            a.metrics().frames_in > frames_before
        })
        .await;
        assert_eq!(h.send(Slow { ms: 1 }).await, Ok(1));
        assert_eq!(a.metrics().bad_frames, 0);
        a.shutdown().await;
        b.shutdown().await;
    });
}

#[test]
fn requests_time_out_while_the_link_is_still_connecting() {
    run(async {
        // Accepts TCP connections (the kernel does) but never answers the handshake, and the
        // connect timeout is far away: only the requests' own deadlines can end them.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let a = transport("a", |c| {
            c.transport.connect_timeout_ms = 600_000;
            c.transport.peer_queue_depth = 1;
        })
        .await;
        let node = NodeRef {
            id: NodeId::new("silent"),
            generation: Generation(1),
        };
        a.connect_hint(&node.id, silent.local_addr().expect("addr"));
        let h: Handle<Echo> = a.handle(ActorRef::new(node, ServiceId::Echo, 0));
        // The first is taken by the link task, the second fills the queue, the third waits
        // for queue space: all three end at their deadline.
        let t = Duration::from_millis(50);
        let sends = (0..3).map(|_| h.send_timeout(Echo { payload: vec![] }, t));
        for r in futures::future::join_all(sends).await {
            assert_eq!(r, Err(NetError::Timeout));
        }
        assert_eq!(a.metrics().timeouts, 3);
        a.shutdown().await;
    });
}

#[test]
fn pending_requests_fail_at_once_when_the_connection_drops() {
    run(async {
        let (a, b, mut received) = pair(|_| {}).await;
        let h: Handle<Slow> = a.handle(on(&b, ServiceId::Executor));
        let waiting = actix::spawn(async move { h.send(Slow { ms: 10_000 }).await });
        // `b` holds the request (unanswered) when its connection goes.
        assert_eq!(received.recv().await, Some(10_000));
        let start = Instant::now();
        b.shutdown().await;
        let r = waiting.await.expect("task");
        assert_eq!(r, Err(NetError::ConnectionLost));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        // Nobody listens there any more: a new request fails fast too (not at the timeout).
        let h: Handle<Echo> = a.handle(on(&b, ServiceId::Echo));
        let start = Instant::now();
        assert!(h.send(Echo { payload: vec![] }).await.is_err());
        assert!(start.elapsed() < Duration::from_secs(1));
        a.shutdown().await;
    });
}

#[test]
fn requests_to_a_peer_marked_down_fail_at_once_and_resume_when_it_is_up() {
    run(async {
        // As with a frozen peer: the connection stays open, the request is never answered.
        let (a, b, mut received) = pair(|_| {}).await;
        let h: Handle<Slow> = a.handle(on(&b, ServiceId::Executor));
        let h2 = h.clone();
        let waiting = actix::spawn(async move { h2.send(Slow { ms: 600_000 }).await });
        assert_eq!(received.recv().await, Some(600_000));
        let down = NetError::PeerDown(b.local_node().id.clone());
        assert_eq!(a.set_reachable(&b.local_node().id, false), 1);
        assert_eq!(waiting.await.expect("task"), Err(down.clone()));
        // New requests are refused without being queued; one-way messages still go (a
        // merely slow peer must get them).
        let frames_out = a.metrics().frames_out;
        assert_eq!(h.send(Slow { ms: 1 }).await, Err(down));
        assert_eq!(a.metrics().frames_out, frames_out);
        assert_eq!(a.metrics().peer_down_failed, 2);
        assert_eq!(h.tell(Slow { ms: 2 }), Ok(()));
        assert_eq!(received.recv().await, Some(2));
        assert_eq!(a.set_reachable(&b.local_node().id, true), 0);
        assert_eq!(h.send(Slow { ms: 1 }).await, Ok(1));
        a.shutdown().await;
        b.shutdown().await;
    });
}

#[test]
fn tell_reports_queue_full_instead_of_buffering() {
    run(async {
        let (a, b, _) = pair(|c| c.transport.peer_queue_depth = 4).await;
        let h: Handle<Note> = a.handle(on(&b, ServiceId::Echo));
        // No await in the loop: the link task cannot drain the queue meanwhile.
        let outcomes: Vec<_> = (0..50).map(|seq| h.tell(Note { seq })).collect();
        let full = outcomes
            .iter()
            .filter(|o| **o == Err(NetError::QueueFull))
            .count();
        assert!(full >= 40, "{full} of 50 refused");
        assert!(outcomes[0].is_ok());
        assert_eq!(a.metrics().queue_full, full as u64);
        a.shutdown().await;
        b.shutdown().await;
    });
}

#[test]
fn addressing_errors_are_typed() {
    run(async {
        let (a, b, _) = pair(|_| {}).await;
        let old = NodeRef {
            generation: Generation(1),
            ..b.local_node().clone()
        };
        let h: Handle<Echo> = b.handle(ActorRef::new(old.clone(), ServiceId::Echo, 0));
        assert!(matches!(
            h.send(Echo { payload: vec![] }).await,
            Err(NetError::StaleGeneration { .. })
        ));
        let h: Handle<Echo> = a.handle(ActorRef::new(old, ServiceId::Echo, 0));
        assert!(matches!(
            h.send(Echo { payload: vec![] }).await,
            Err(NetError::StaleGeneration { .. })
        ));
        let h: Handle<Echo> = a.handle(ActorRef::new(b.local_node().clone(), ServiceId::Echo, 9));
        assert!(matches!(
            h.send(Echo { payload: vec![] }).await,
            Err(NetError::NoSuchActor { instance: 9, .. })
        ));
        let nobody = NodeRef {
            id: NodeId::new("nowhere"),
            generation: Generation(1),
        };
        let h: Handle<Echo> = a.handle(ActorRef::new(nobody, ServiceId::Echo, 0));
        assert!(matches!(
            h.send(Echo { payload: vec![] }).await,
            Err(NetError::UnknownNode(_))
        ));
        a.shutdown().await;
        b.shutdown().await;
    });
}
