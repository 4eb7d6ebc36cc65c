//! Placement across two executor nodes (two in-process nodes on real loopback sockets): a
//! call referencing a key cached on executor B is placed on B; calls without references are
//! spread over both (random ties).
//!
//! B's real cache holds the key (read through it) and reports it to the scheduler; A's
//! cache is too small to hold anything, so only B ever reports the key.
//!
//! The load executors report (what placement and the monitor decide on) is integrated over
//! each report's window.

use crate::functions_support::*;
use cloudburst::actors::scheduler::{GetExecutors, HoldersOf, Scheduler};
use cloudburst::ids::Key;
use cloudburst::local::LocalCluster;
use cloudburst::node::NodeRoles;
use cloudburst::protocol::{Arg, ExecutorLoad, NodeState};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[test]
fn a_call_referencing_a_key_cached_on_b_is_placed_on_b() {
    run(async {
        let mut a_cfg = config("kvs,scheduler,executor", 1);
        a_cfg.executor.cache_capacity_bytes = 1; // A's cache never holds a key
        a_cfg.executor.cache_report_interval_ms = 100;
        // This test is about locality, not load: B has one worker, so a status sampled while
        // a call runs says 100 % busy, and A's scheduler would (rightly) avoid B for the next
        // call until B's next report. A threshold of 1.0 never avoids anyone.
        a_cfg.executor.utilisation_threshold = 1.0;
        let a = LocalCluster::start(a_cfg).await.expect("node a");
        let mut b_cfg = config("executor", 1);
        b_cfg.executor.cache_report_interval_ms = 100;
        let b = NodeRoles::start(&a.join_config(&b_cfg))
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
        // B's cache reads the key through; its next periodic report tells the scheduler.
        let b_cache = b.cache.as_ref().expect("b has a cache");
        let held = b_cache
            .get(&[Key::new("hot")])
            .await
            .expect("read through b's cache");
        assert!(held[0].is_some(), "b's cache read the key");
        // Wait until the scheduler has B's report (never A's: A's cache holds nothing)...
        let scheduler = a.roles.scheduler.clone().expect("a schedules");
        let wanted = vec![b_node.id.clone()];
        eventually(
            Duration::from_secs(10),
            "b's cache to report the key",
            || {
                let (scheduler, wanted) = (scheduler.clone(), wanted.clone());
                async move {
                    let holders = scheduler
                        .send(HoldersOf(Key::new("hot")))
                        .await
                        .expect("ask");
                    let only_b = holders.is_empty() || holders == wanted;
                    assert!(only_b, "only b holds the key: {holders:?}");
                    (holders == wanted).then_some(())
                }
            },
        )
        .await;
        // ...then every call referencing the key runs on B.
        for _ in 0..20 {
            let id = repr(
                &client
                    .call_function("whoami", vec![Arg::Reference(Key::new("hot"))])
                    .await
                    .expect("call"),
            );
            assert_eq!(
                node_of(id.clone()),
                Some(b_node.id.to_string()),
                "placed on A: {id}"
            );
        }
        b.stop().await;
        a.stop().await;
    });
}

/// A status an executor sent just before its node left can reach the scheduler after the
/// view said the node left (a loaded machine delays it). Taken, it made the node placeable
/// again for a few seconds, and the calls placed there were never answered: no later view
/// change named the node gone, so the scheduler never ran them again (the drain test lost
/// calls this way). Here the late status is handed to the scheduler after B left.
#[test]
fn a_status_that_arrives_after_its_node_left_is_ignored() {
    run(async {
        let a = LocalCluster::start(config("kvs,scheduler,executor", 1))
            .await
            .expect("node a");
        let b = NodeRoles::start(&a.join_config(&config("executor", 1)))
            .await
            .expect("node b");
        a.wait_ready(2, READY).await.expect("both executors known");
        let scheduler = a.roles.scheduler.clone().expect("a schedules");
        let b_node = b.transport.local_node().clone();
        let statuses = scheduler.send(GetExecutors).await.expect("ask");
        let late = statuses
            .into_iter()
            .find(|s| s.executor.node == b_node)
            .expect("b's status");
        let drained = b.drain(Instant::now() + READY).await;
        assert!(drained.complete(), "{drained:?}");
        b.stop().await;
        let places_on_b = || {
            let scheduler = scheduler.clone();
            let b_id = b_node.id.clone();
            async move {
                let execs = scheduler.send(GetExecutors).await.expect("ask");
                execs.iter().any(|s| s.executor.node.id == b_id)
            }
        };
        eventually(READY, "the scheduler to forget b", || async {
            (!places_on_b().await).then_some(())
        })
        .await;

        scheduler
            .send(late)
            .await
            .expect("the late status delivered");
        assert!(!places_on_b().await, "b, which left, is placeable again");
        let client = a.client().await.expect("client");
        register(&client, &["whoami"]).await;
        let a_id = a.roles.transport.local_node().id.to_string();
        for _ in 0..5 {
            let id = repr(&client.call_function("whoami", vec![]).await.expect("call"));
            assert!(id.contains(&a_id), "placed elsewhere than a: {id}");
        }
        a.stop().await;
    });
}

/// The newest status the scheduler holds of its one executor.
async fn load_of(scheduler: &actix::Addr<Scheduler>) -> Option<ExecutorLoad> {
    let statuses = scheduler.send(GetExecutors).await.expect("ask");
    statuses.into_iter().next().map(|s| s.load)
}

#[test]
fn executors_report_integrated_load_and_per_function_runtimes() {
    run(async {
        let (c, client) = cluster(1).await;
        register(&client, &["sleepy"]).await;
        let scheduler = c.roles.scheduler.clone().expect("schedules");
        let call = client.call_function("sleepy", vec![arg("1.0")]);
        let watch = async {
            // While the call sleeps, a whole window is busy: its one worker occupied all
            // through, one call in flight on average (a sample would only say "now").
            let busy = eventually(READY, "a report of a busy window", || async {
                load_of(&scheduler)
                    .await
                    .filter(|l| l.in_flight == 1 && l.occupancy > 0.9)
            })
            .await;
            assert!(busy.demand > 0.9 && busy.window_ms > 0, "{busy:?}");
            assert_eq!(busy.state, NodeState::Active);
            // The window in which it ended names it, with the time it took.
            eventually(READY, "a report naming the call", || async {
                let load = load_of(&scheduler).await?;
                let f = load.functions.iter().find(|f| f.function == "sleepy")?;
                assert_eq!(f.calls, 1, "{load:?}");
                assert!(f.runtime_us >= 1_000_000, "{load:?}");
                Some(())
            })
            .await;
        };
        let (result, ()) = tokio::join!(call, watch);
        result.expect("the call returns");
        c.stop().await;
    });
}
