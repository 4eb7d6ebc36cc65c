//! Placement across two executor nodes (two in-process nodes on real loopback sockets): a
//! call referencing a key cached on executor B is placed on B; calls without references are
//! spread over both (random ties).
//!
//! The cache (another branch) sends `CacheKeysReport`s; until it is merged the test sends
//! the report B's cache would send, through the transport, as the cache will.

mod functions_support;

use cloudburst::actors::cache::messages::CacheKeysReport;
use cloudburst::actors::scheduler::messages::Arg;
use cloudburst::ids::Key;
use cloudburst::local::LocalCluster;
use cloudburst::net::{ActorRef, ServiceId};
use cloudburst::roles::NodeRoles;
use functions_support::*;
use std::collections::BTreeSet;

#[test]
fn a_call_referencing_a_key_cached_on_b_is_placed_on_b() {
    run(async {
        let a = LocalCluster::start(config("kvs,scheduler,executor", 1))
            .await
            .expect("node a");
        let b = NodeRoles::start(&a.join_config(&config("executor", 1)))
            .await
            .expect("node b");
        a.wait_ready(2, READY).await.expect("both executors known");
        let client = a.client().await.expect("client");
        register(&client, &["whoami"]).await;
        let b_node = b.transport.local_node().clone();
        let node_of = |id: String| id.trim_matches('\'').split('/').next().map(str::to_string);

        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            let id = repr(&client.call_function("whoami", vec![]).await.expect("call"));
            seen.insert(node_of(id));
        }
        assert_eq!(
            seen.len(),
            2,
            "calls without references use both executors: {seen:?}"
        );

        client.put_object("hot", value("1")).await.expect("put");
        let report = CacheKeysReport {
            node: b_node.clone(),
            keys: vec![Key::new("hot")],
        };
        let scheduler = ActorRef::new(
            a.roles.transport.local_node().clone(),
            ServiceId::Scheduler,
            0,
        );
        b.transport
            .handle::<CacheKeysReport>(scheduler)
            .tell(report)
            .expect("report sent");
        // The report is one-way: poll until placement follows it, then insist it always does.
        let on_b = |id: &str| node_of(id.to_string()) == Some(b_node.id.to_string());
        let mut streak = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while streak < 10 {
            let id = repr(
                &client
                    .call_function("whoami", vec![Arg::Reference(Key::new("hot"))])
                    .await
                    .expect("call"),
            );
            if on_b(&id) {
                streak += 1;
            } else {
                assert_eq!(streak, 0, "placed on A after being placed on B: {id}");
                assert!(std::time::Instant::now() < deadline, "never placed on B");
            }
        }
        b.stop().await;
        a.stop().await;
    });
}
