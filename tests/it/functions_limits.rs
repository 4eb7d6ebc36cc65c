//! Failures and parallelism through the function plane: an exception reaches the caller with
//! its type and traceback and fails the whole DAG; a timeout fails the call and the executor
//! keeps serving; two CPU-bound functions run in parallel on two workers.

use crate::functions_support::*;
use cloudburst::local::LocalError;
use cloudburst::pyrt::FunctionKind;

#[test]
fn an_exception_fails_the_dag_with_type_and_traceback() {
    run(async {
        let (cluster, client) = cluster(1).await;
        register(&client, &["fails", "square"]).await;
        client
            .register_dag("broken", &["fails", "square"], &[("fails", "square")])
            .await
            .expect("dag");
        match client
            .call_dag("broken", args_for("fails", vec![arg("5")]))
            .await
        {
            Err(LocalError::Failed(f)) => {
                assert_eq!(f.code, "function_error");
                assert_eq!(f.exception_type.as_deref(), Some("ValueError"));
                assert!(f.message.contains("bad input 5"), "{}", f.message);
                let tb = f.traceback.unwrap_or_default();
                assert!(tb.contains("inner") && tb.contains("ValueError"), "{tb}");
            }
            other => panic!("expected a function error, got {other:?}"),
        }
        let out = client
            .call_function("square", vec![arg("4")])
            .await
            .expect("still serves");
        assert_eq!(repr(&out), "16");
        cluster.stop().await;
    });
}

#[test]
fn a_timeout_fails_the_call_and_the_executor_keeps_serving() {
    run(async {
        let (cluster, client) = cluster(1).await;
        let mut slow = client.record("sleepy", FunctionKind::Plain, pickled("sleepy"));
        slow.timeout_ms = Some(300);
        client.register_function(slow).await.expect("registers");
        register(&client, &["incr"]).await;
        match client.call_function("sleepy", vec![arg("30")]).await {
            Err(LocalError::Failed(f)) => assert_eq!(f.code, "timeout", "{f:?}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let out = client
            .call_function("incr", vec![arg("1")])
            .await
            .expect("still serves");
        assert_eq!(repr(&out), "2");
        let out = client
            .call_function("sleepy", vec![arg("0")])
            .await
            .expect("fast enough");
        assert_eq!(repr(&out), "0");
        cluster.stop().await;
    });
}

/// Two CPU-bound calls run at the same time in different worker processes: their execution
/// intervals (system-wide monotonic clock) overlap. This holds however loaded the shared
/// machine is; the speed-up itself is measured by `cloudburst bench python`.
#[test]
fn two_cpu_bound_functions_run_in_parallel() {
    run(async {
        let (cluster, client) = cluster(2).await;
        register(&client, &["cpu"]).await;
        let n = arg("1_500_000");
        let cpu = || client.call_function("cpu", vec![n.clone()]);
        let (a, b) = futures::join!(cpu(), cpu());
        let parse = |r: String| -> (String, f64, f64) {
            let p: Vec<String> = r
                .trim_matches(|c| c == '(' || c == ')')
                .split(", ")
                .map(str::to_string)
                .collect();
            (
                p[0].clone(),
                p[1].parse().expect("start"),
                p[2].parse().expect("end"),
            )
        };
        let (pa, sa, ea) = parse(repr(&a.expect("a")));
        let (pb, sb, eb) = parse(repr(&b.expect("b")));
        println!("worker {pa} ran {sa:.3}..{ea:.3}, worker {pb} ran {sb:.3}..{eb:.3}");
        assert_ne!(pa, pb, "both calls ran in the same worker process");
        assert!(sa < eb && sb < ea, "the two calls did not overlap in time");
        cluster.stop().await;
    });
}
