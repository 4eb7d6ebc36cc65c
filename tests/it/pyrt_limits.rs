//! Limits and failure paths of the Python worker pool, with real worker processes: the
//! bounded queue, frame limits, large values, abandoned calls, shutdown, a missing Python.

use crate::pyrt_support::*;
use cloudburst::pyrt::{CallError, PoolConfig, PyRuntimeError, PyValue};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_full_queue_is_overloaded() {
    let mut cfg = PoolConfig::new(1, env!("CARGO_BIN_EXE_cloudburst"));
    cfg.max_queued = 1;
    let pool = pool_with(cfg).await;
    let busy = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.call(call("spin", vec![], Duration::from_millis(800)), lib())
                .await
        }
    });
    until(T, "the one worker to be busy", || pool.utilisation() == 1.0).await;
    let queued = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.call(
                call("add", vec![Some(value("1")), Some(value("1"))], T),
                lib(),
            )
            .await
        }
    });
    until(T, "one call to be queued", || pool.queued() == 1).await;
    let err = pool
        .call(
            call("add", vec![Some(value("1")), Some(value("1"))], T),
            lib(),
        )
        .await
        .expect_err("queue is full");
    assert_eq!(err, CallError::Overloaded);
    assert!(err.never_ran());
    let busy = busy.await.expect("joins");
    assert!(matches!(busy, Err(CallError::Timeout { .. })), "{busy:?}");
    assert_eq!(
        repr(&queued.await.expect("joins").expect("queued call runs")),
        "2"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn calls_after_shutdown_are_refused() {
    let pool = pool(1).await;
    pool.shutdown().await;
    let err = pool
        .call(call("add", vec![None, None], T), lib())
        .await
        .expect_err("shut down");
    assert_eq!(err, CallError::ShutDown);
}

#[tokio::test]
async fn an_abandoned_call_replaces_its_worker() {
    let pool = pool(1).await;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        pool.call(call("spin", vec![], T), lib()),
    )
    .await;
    assert!(abandoned.is_err(), "the caller gave up first");
    let out = pool
        .call(
            call("add", vec![Some(value("1")), Some(value("5"))], T),
            lib(),
        )
        .await
        .expect("a replacement serves");
    assert_eq!(repr(&out), "6");
    assert_eq!(pool.utilisation(), 0.0);
    pool.shutdown().await;
}

#[tokio::test]
async fn values_of_tens_of_megabytes_cross_both_ways() {
    let pool = pool(1).await;
    let big = value("b'x' * 20_000_000");
    let out = pool
        .call(call("add", vec![Some(big), Some(value("b'!'"))], T), lib())
        .await
        .expect("a 20 MB argument and result");
    let PyValue::Packed(bytes) = out else {
        panic!("results are one pickled object")
    };
    assert!(bytes.len() > 20_000_000, "{}", bytes.len());
    pool.shutdown().await;
}

#[tokio::test]
async fn frames_over_the_limit_fail_the_call_not_the_pool() {
    let mut cfg = PoolConfig::new(1, env!("CARGO_BIN_EXE_cloudburst"));
    cfg.max_frame_bytes = 64 * 1024;
    let pool = pool_with(cfg).await;
    let too_big_arg = call(
        "add",
        vec![Some(value("b'x' * 100_000")), Some(value("b''"))],
        T,
    );
    let err = pool
        .call(too_big_arg, lib())
        .await
        .expect_err("argument too large");
    assert!(matches!(err, CallError::TooLarge { .. }), "{err:?}");
    let too_big_result = call(
        "add",
        vec![Some(value("'x' * 40_000")), Some(value("'y' * 40_000"))],
        T,
    );
    let err = pool
        .call(too_big_result, lib())
        .await
        .expect_err("result too large");
    assert!(matches!(err, CallError::TooLarge { .. }), "{err:?}");
    let out = pool
        .call(
            call("add", vec![Some(value("1")), Some(value("1"))], T),
            lib(),
        )
        .await
        .expect("pool keeps serving");
    assert_eq!(repr(&out), "2");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_missing_python_fails_start_with_a_clear_error() {
    let mut cfg = PoolConfig::new(1, env!("CARGO_BIN_EXE_cloudburst"));
    cfg.python = Some("/nonexistent/venv/bin/python3".into());
    let err = cloudburst::pyrt::PythonPool::start(cfg)
        .await
        .expect_err("no such python");
    // The program is checked before any worker starts: the error names it and says why.
    let text = err.to_string();
    assert!(
        matches!(&err, PyRuntimeError::Environment { python, .. }
            if python == "/nonexistent/venv/bin/python3"),
        "{err:?}"
    );
    assert!(
        text.contains("/nonexistent/venv/bin/python3") && text.contains("cannot be run"),
        "{text}"
    );
}
