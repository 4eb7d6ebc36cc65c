//! The Python worker pool against real worker processes: results, arguments, exceptions,
//! timeouts, crashes, bad bodies, class-based functions, parallelism, output forwarding
//! and the interpreter's identity.

use crate::pyrt_support::*;
use cloudburst::pyrt::{CallError, FunctionKind, PyValue};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn plain_function_returns_its_value() {
    let pool = pool(1).await;
    let out = pool
        .call(
            call("add", vec![Some(value("2")), Some(value("40"))], T),
            lib(),
        )
        .await
        .expect("call succeeds");
    assert_eq!(repr(&out), "42");
    pool.shutdown().await;
}

#[tokio::test]
async fn none_and_set_arguments_arrive_as_python_values() {
    let pool = pool(1).await;
    let set = PyValue::PackedSet(vec![
        match value("'b'") {
            PyValue::Packed(b) => b,
            _ => unreachable!(),
        },
        match value("'a'") {
            PyValue::Packed(b) => b,
            _ => unreachable!(),
        },
    ]);
    let out = pool
        .call(
            call("probe", vec![None, Some(set), Some(value("3"))], T),
            lib(),
        )
        .await
        .expect("call succeeds");
    assert_eq!(repr(&out), "(True, ['a', 'b'], 3)");
    pool.shutdown().await;
}

#[tokio::test]
async fn exception_returns_type_message_traceback_and_pool_keeps_serving() {
    let pool = pool(1).await;
    let err = pool
        .call(call("raises", vec![Some(value("7"))], T), lib())
        .await
        .expect_err("the function raises");
    let CallError::Exception {
        type_name,
        message,
        traceback,
    } = err
    else {
        panic!("expected an exception, got {err:?}")
    };
    assert_eq!(type_name, "ValueError");
    assert_eq!(message, "bad value 7");
    assert!(traceback.contains("in inner"), "{traceback}");
    assert!(
        !traceback.contains("cloudburst_glue"),
        "glue frames leak: {traceback}"
    );
    let out = pool
        .call(
            call("add", vec![Some(value("1")), Some(value("1"))], T),
            lib(),
        )
        .await
        .expect("next call succeeds");
    assert_eq!(repr(&out), "2");
    pool.shutdown().await;
}

#[tokio::test]
async fn timeout_kills_the_worker_and_a_replacement_serves_the_next_call() {
    let pool = pool(1).await;
    let started = Instant::now();
    let err = pool
        .call(call("spin", vec![], Duration::from_millis(300)), lib())
        .await
        .expect_err("spins forever");
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let out = pool
        .call(
            call("add", vec![Some(value("2")), Some(value("3"))], T),
            lib(),
        )
        .await
        .expect("the replacement worker serves");
    assert_eq!(repr(&out), "5");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_crashing_function_fails_its_call_only() {
    let pool = pool(1).await;
    let err = pool
        .call(call("exits", vec![], T), lib())
        .await
        .expect_err("exits");
    let CallError::WorkerCrashed(why) = &err else {
        panic!("expected a crash, got {err:?}")
    };
    assert!(why.contains("exit status: 3"), "{why}");
    let out = pool
        .call(
            call("add", vec![Some(value("1")), Some(value("2"))], T),
            lib(),
        )
        .await
        .expect("the replacement serves");
    assert_eq!(repr(&out), "3");
    pool.shutdown().await;
}

#[tokio::test]
async fn garbage_body_is_a_pickle_error_not_a_crash() {
    let pool = pool(1).await;
    let mut bad = call("add", vec![], T);
    bad.function = std::sync::Arc::new(cloudburst::pyrt::FunctionSpec {
        name: "garbage".into(),
        hash: 9,
        body: bytes::Bytes::from_static(b"not a pickle at all"),
        kind: FunctionKind::Plain,
    });
    let err = pool.call(bad, lib()).await.expect_err("garbage body");
    assert!(matches!(err, CallError::Pickle(_)), "{err:?}");
    let out = pool
        .call(
            call("add", vec![Some(value("4")), Some(value("4"))], T),
            lib(),
        )
        .await
        .expect("pool keeps serving");
    assert_eq!(repr(&out), "8");
    pool.shutdown().await;
}

#[tokio::test]
async fn class_init_runs_once_per_worker() {
    let pool = pool(2).await;
    let mut seen = std::collections::HashMap::new();
    for round in 0..10 {
        let (a, b) = tokio::join!(
            pool.call(
                call("counter", vec![Some(value(&round.to_string()))], T),
                lib()
            ),
            pool.call(call("counter", vec![Some(value("0"))], T), lib()),
        );
        for out in [a.expect("call a"), b.expect("call b")] {
            // (pid, Counter.inits, self.calls, x)
            let r = repr(&out);
            let parts: Vec<&str> = r
                .trim_matches(|c| c == '(' || c == ')')
                .split(", ")
                .collect();
            assert_eq!(
                parts[1], "1",
                "__init__ ran more than once in a worker: {r}"
            );
            let calls: u32 = parts[2].parse().expect("a count");
            let prev = seen.insert(parts[0].to_string(), calls).unwrap_or(10);
            assert_eq!(calls, prev + 1, "the cached instance was not reused: {r}");
        }
    }
    assert_eq!(seen.len(), 2, "both workers served calls");
    pool.shutdown().await;
}

/// Two CPU-bound calls on a 2-worker pool run at the same time in different processes (no
/// GIL serialises them): their execution intervals, on the system-wide monotonic clock,
/// overlap. This holds however loaded the machine is; the speed-up itself is measured by
/// `cloudburst bench python`, not asserted here.
#[tokio::test]
async fn two_cpu_bound_calls_run_in_parallel() {
    let pool = pool(2).await;
    let n = Some(value("1500000"));
    let cpu = || call("cpu", vec![n.clone()], T);
    let (a, b) = tokio::join!(pool.call(cpu(), lib()), pool.call(cpu(), lib()));
    let parse = |v: PyValue| -> (String, f64, f64) {
        let r = repr(&v);
        let p: Vec<&str> = r
            .trim_matches(|c| c == '(' || c == ')')
            .split(", ")
            .collect();
        (
            p[0].to_string(),
            p[1].parse().expect("start"),
            p[2].parse().expect("end"),
        )
    };
    let (pa, sa, ea) = parse(a.expect("call a"));
    let (pb, sb, eb) = parse(b.expect("call b"));
    println!("cpu-bound: worker {pa} ran {sa:.3}..{ea:.3}, worker {pb} ran {sb:.3}..{eb:.3}");
    assert_ne!(pa, pb, "the two calls ran in different worker processes");
    assert!(sa < eb && sb < ea, "the two calls did not overlap in time");
    pool.shutdown().await;
}

#[tokio::test]
async fn print_output_reaches_the_log_and_the_worker_keeps_working() {
    let pool = pool(1).await;
    let marker = format!("marker-{}", std::process::id());
    let out = pool
        .call(
            call("printer", vec![Some(value(&format!("'{marker}'")))], T),
            lib(),
        )
        .await
        .expect("prints");
    assert_eq!(repr(&out), "1");
    let expected = format!("user says {marker}");
    until(
        Duration::from_secs(5),
        "the print output in the log",
        || log_text().contains(&expected),
    )
    .await;
    let line = log_text()
        .lines()
        .find(|l| l.contains(&expected))
        .map(str::to_string);
    assert!(
        line.is_some_and(|l| l.contains("worker=0")),
        "line not tagged with the worker"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn embedded_interpreter_is_the_venv_python() {
    let out = std::process::Command::new(venv_python())
        .args(["-c", "import sys; print(sys.version); print(sys.prefix)"])
        .output()
        .expect("venv python runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (version, prefix) = text.trim_end().rsplit_once('\n').expect("two lines");
    let pool = pool(1).await;
    let env = pool.environment();
    assert_eq!(env.version, version);
    assert_eq!(env.prefix, prefix);
    assert!(!env.cloudpickle.is_empty());
    let inside = pool
        .call(call("env", vec![], T), lib())
        .await
        .expect("env call");
    assert_eq!(
        repr(&inside),
        format!("({version:?}, {prefix:?})").replace('"', "'")
    );
    pool.shutdown().await;
}

#[test]
fn callable_from_inside_an_actix_system() {
    actix::System::new().block_on(async {
        let pool = pool(1).await;
        let out = actix::spawn({
            let pool = pool.clone();
            async move {
                pool.call(
                    call("add", vec![Some(value("20")), Some(value("22"))], T),
                    lib(),
                )
                .await
            }
        })
        .await
        .expect("joins")
        .expect("call succeeds");
        assert_eq!(repr(&out), "42");
        pool.shutdown().await;
    });
}
