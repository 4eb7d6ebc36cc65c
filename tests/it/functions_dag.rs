//! Functions and DAGs end to end in an in-process cluster (real KVS, scheduler, executor and
//! Python worker processes): registration checks, linear / fan-out / fan-in DAGs, references,
//! stored results, list and delete.

use crate::functions_support::*;
use cloudburst::ids::Key;
use cloudburst::local::LocalError;
use cloudburst::protocol::{Arg, FunctionError, Listing};
use cloudburst::pyrt::FunctionKind;
use std::time::Duration;

fn refused(r: Result<(), LocalError>) -> FunctionError {
    match r {
        Err(LocalError::Function(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn linear_dag_and_single_function() {
    run(async {
        let (cluster, client) = cluster(2).await;
        register(&client, &["incr", "square"]).await;
        client
            .register_dag("pipeline", &["incr", "square"], &[("incr", "square")])
            .await
            .expect("dag registers");
        for x in [1, 2, 7] {
            let out = client
                .call_dag("pipeline", args_for("incr", vec![arg(&x.to_string())]))
                .await
                .expect("dag call");
            assert_eq!(repr(&out), ((x + 1) * (x + 1)).to_string());
        }
        let out = client
            .call_function("square", vec![arg("3")])
            .await
            .expect("call");
        assert_eq!(repr(&out), "9");
        let snap = cloudburst::metrics::global().snapshot();
        assert!(
            snap.iter().any(|s| s.name == "pipeline" && s.ok >= 3),
            "{snap:?}"
        );
        cluster.stop().await;
    });
}

#[test]
fn fan_out_then_fan_in_passes_results_in_edge_order() {
    run(async {
        let (cluster, client) = cluster(2).await;
        register(&client, &["fan_src", "left", "right", "join"]).await;
        // edge list puts right before left into join, each upstream's tuple spread:
        // join(cb, 'right', 40, 'left', 5)
        client
            .register_dag(
                "diamond",
                &["fan_src", "left", "right", "join"],
                &[
                    ("fan_src", "left"),
                    ("fan_src", "right"),
                    ("right", "join"),
                    ("left", "join"),
                ],
            )
            .await
            .expect("dag registers");
        let out = client
            .call_dag("diamond", args_for("fan_src", vec![arg("4")]))
            .await
            .expect("dag call");
        assert_eq!(repr(&out), "[('right', 40), ('left', 5)]");
        cluster.stop().await;
    });
}

#[test]
fn many_calls_in_flight_at_once() {
    run(async {
        let (cluster, client) = cluster(2).await;
        register(&client, &["incr", "square"]).await;
        client
            .register_dag("pipeline", &["incr", "square"], &[("incr", "square")])
            .await
            .expect("dag registers");
        let calls = (0..50).map(|x| {
            let c = client.clone();
            async move {
                let out = c
                    .call_dag("pipeline", args_for("incr", vec![arg(&x.to_string())]))
                    .await
                    .expect("dag call");
                assert_eq!(repr(&out), ((x + 1) * (x + 1)).to_string());
            }
        });
        futures::future::join_all(calls).await;
        cluster.stop().await;
    });
}

#[test]
fn registration_is_checked() {
    run(async {
        let (cluster, client) = cluster(1).await;
        register(&client, &["incr"]).await;
        let mut old = client.record("old", FunctionKind::Plain, pickled("incr"));
        old.python = "3.12".into();
        let e = refused(client.register_function(old).await);
        assert_eq!(e.code(), "version_mismatch");
        assert!(e.to_string().contains("3.12"), "{e}");
        let bad = client.record("a/b", FunctionKind::Plain, pickled("incr"));
        assert_eq!(
            refused(client.register_function(bad).await).code(),
            "invalid_request"
        );
        let e = refused(
            client
                .register_dag("d", &["incr", "nope"], &[("incr", "nope")])
                .await,
        );
        assert_eq!(e, FunctionError::UnknownFunction("nope".into()));
        register(&client, &["square"]).await;
        let e = refused(
            client
                .register_dag(
                    "d",
                    &["incr", "square"],
                    &[("incr", "square"), ("square", "incr")],
                )
                .await,
        );
        assert_eq!(e.code(), "bad_dag");
        let e = refused(client.register_dag("d", &["incr", "square"], &[]).await);
        assert_eq!(e.code(), "bad_dag");
        match client.call_dag("missing", Default::default()).await {
            Err(LocalError::Function(FunctionError::UnknownDag(d))) => assert_eq!(d, "missing"),
            other => panic!("{other:?}"),
        }
        cluster.stop().await;
    });
}

#[test]
fn list_and_delete() {
    run(async {
        let (cluster, client) = cluster(1).await;
        register(&client, &["incr", "square"]).await;
        client
            .register_dag("p1", &["incr", "square"], &[("incr", "square")])
            .await
            .expect("p1");
        client
            .register_dag("p2", &["square"], &[])
            .await
            .expect("p2");
        let fns = client.list(Listing::Functions, "").await.expect("list");
        assert_eq!(fns, vec!["incr".to_string(), "square".to_string()]);
        assert_eq!(
            client.list(Listing::Dags, "p").await.expect("list"),
            vec!["p1", "p2"]
        );
        client.delete_dag("p1").await.expect("delete");
        assert_eq!(
            client.list(Listing::Dags, "").await.expect("list"),
            vec!["p2"]
        );
        assert!(matches!(
            client
                .call_dag("p1", args_for("incr", vec![arg("1")]))
                .await,
            Err(LocalError::Function(FunctionError::UnknownDag(_)))
        ));
        assert_eq!(refused(client.delete_dag("p1").await).code(), "unknown_dag");
        cluster.stop().await;
    });
}

#[test]
fn references_are_resolved_and_results_can_be_stored() {
    run(async {
        let (cluster, client) = cluster(1).await;
        register(&client, &["incr", "square"]).await;
        client
            .register_dag("pipeline", &["incr", "square"], &[("incr", "square")])
            .await
            .expect("dag");
        client.put_object("seven", value("7")).await.expect("put");
        let out = client
            .call_function("incr", vec![Arg::Reference(Key::new("seven"))])
            .await
            .expect("call");
        assert_eq!(repr(&out), "8");
        let key = Key::new("result-of-pipeline");
        client
            .call_dag_stored("pipeline", args_for("incr", vec![arg("2")]), key.clone())
            .await
            .expect("accepted");
        let stored = eventually(
            Duration::from_secs(10),
            "the result to be stored",
            || async { client.get_object(key.as_str()).await.expect("get") },
        )
        .await;
        assert_eq!(repr(&stored), "9");
        cluster.stop().await;
    });
}
