//! Repeatable-read pins across two nodes on real loopback sockets: a session reading
//! through another node's (home) cache gets the version first pinned there even after the
//! key changed; a release drops the pins; the pins of a session whose caller vanished
//! expire after `consistency.session_ttl_ms` (the pinned count returns to zero).

use crate::functions_support::*;
use cloudburst::ids::{CallId, Key};
use cloudburst::local::LocalCluster;
use cloudburst::net::{ActorRef, ServiceId};
use cloudburst::node::NodeRoles;
use cloudburst::protocol::{ReleaseSession, SessionRead};
use std::time::Duration;

#[test]
fn pins_hold_across_nodes_and_are_released_or_expire() {
    run(async {
        let mut a_cfg = config("kvs,scheduler,executor", 1);
        a_cfg.consistency.session_ttl_ms = 1_500;
        a_cfg.executor.cache_report_interval_ms = 100; // the expiry sweep runs with it
        let a = LocalCluster::start(a_cfg).await.expect("node a");
        let b = NodeRoles::start(&a.join_config(&config("executor", 1)))
            .await
            .expect("node b");
        a.wait_ready(2, READY).await.expect("both executors known");
        let client = a.client().await.expect("client");
        let home = a.roles.cache.as_ref().expect("a has a cache");
        let home_ref = ActorRef::new(a.roles.transport.local_node().clone(), ServiceId::Cache, 0);
        let ask = |session: u64, key: &str| {
            let h = b.transport.handle::<SessionRead>(home_ref.clone());
            let msg = SessionRead {
                session: CallId(session),
                keys: vec![Key::new(key)],
            };
            async move { h.send(msg).await.expect("reaches a").expect("reads") }
        };

        client.put_object("k", value("1")).await.expect("put");
        let first = ask(1, "k").await;
        assert!(first[0].is_some());
        assert_eq!(ask(1, "missing").await, vec![None], "absence is pinned too");
        client
            .put_object("k", value("2"))
            .await
            .expect("second put");
        // a's cache now holds the new version (its own read-through was updated by push)...
        until(READY, "a's cache to see the new version", || {
            home.peek(&Key::new("k")) != first[0]
        })
        .await;
        client.put_object("missing", value("3")).await.expect("put");
        // ...but session 1 keeps reading what it pinned; a new session sees the new value.
        assert_eq!(
            ask(1, "k").await,
            first,
            "the pinned version, not the new one"
        );
        assert_eq!(ask(1, "missing").await, vec![None]);
        assert_ne!(
            ask(2, "k").await,
            first,
            "another session pins the current version"
        );
        assert_eq!(home.stats().pinned, 3);

        // The call completes: its release drops its pins.
        b.transport
            .handle::<ReleaseSession>(home_ref.clone())
            .tell(ReleaseSession { session: CallId(1) })
            .expect("sent");
        until(READY, "session 1 to be released", || {
            home.stats().pinned == 1
        })
        .await;

        // Session 2's caller vanished (no release): its pins expire after the TTL.
        until(Duration::from_secs(10), "session 2 to expire", || {
            home.stats().pinned == 0
        })
        .await;
        b.stop().await;
        a.stop().await;
    });
}
