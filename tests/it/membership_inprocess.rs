//! Two membership actors in one process: a subscriber is told of view changes, and the
//! view feeds a hash ring.

use crate::transport_support::{run, CONFIG, SECRET};
use actix::prelude::*;
use cloudburst::config::{Config, Role};
use cloudburst::net::membership::{GetView, Membership, Subscribe, View, ViewChanged};
use cloudburst::net::{HashRing, Transport};
use std::time::Duration;
use tokio::sync::mpsc;

/// Forwards every `ViewChanged` to a channel the test reads.
struct Probe(mpsc::UnboundedSender<View>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<ViewChanged> for Probe {
    type Result = ();
    fn handle(&mut self, msg: ViewChanged, _: &mut Context<Self>) {
        let _ = self.0.send(msg.view);
    }
}

fn config(join: Option<std::net::SocketAddr>) -> Config {
    let mut cfg = Config::from_toml(CONFIG).expect("config");
    cfg.node.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.node.cluster_secret = SECRET.into();
    cfg.node.roles = [Role::Kvs].into_iter().collect();
    cfg.node.join = join.into_iter().map(|a| a.to_string()).collect();
    cfg
}

#[test]
fn subscribers_see_a_joining_node_and_the_ring_follows_the_view() {
    run(async {
        let cfg_a = config(None);
        let a = Transport::start(&cfg_a, None).await.expect("a");
        let membership_a =
            Membership::start(a.clone(), &cfg_a, cfg_a.node.join.clone()).expect("membership a");
        let (tx, mut rx) = mpsc::unbounded_channel();
        membership_a.do_send(Subscribe(Probe(tx).start().recipient()));
        let first = rx.recv().await.expect("current view on subscribe");
        assert_eq!(first.members.len(), 1);

        let cfg_b = config(Some(a.local_addr()));
        let b = Transport::start(&cfg_b, None).await.expect("b");
        let _membership_b =
            Membership::start(b.clone(), &cfg_b, cfg_b.node.join.clone()).expect("membership b");
        let joined = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a view change in time")
            .expect("a view");
        assert_eq!(joined.live().count(), 2);
        assert!(joined.get(&b.local_node().id).is_some());

        let ring = HashRing::from_view(&joined, Role::Kvs, 8);
        assert_eq!(ring.len(), 2);
        assert!(HashRing::from_view(&joined, Role::Executor, 8).is_empty());
        let v = membership_a.send(GetView).await.expect("view");
        assert_eq!(v.summary(), joined.summary());
        a.shutdown().await;
        b.shutdown().await;
    });
}
