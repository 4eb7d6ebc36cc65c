//! Unit tests of the call table, driven by explicit time: calls kept until they end,
//! re-runs after executor deaths and mendable failures, limits, deadlines, cancel.

use super::*;
use crate::actors::scheduler::core::FunctionMeta;
use crate::actors::scheduler::dag::plan;
use crate::ids::{Generation, NodeId};
use crate::net::ServiceId;
use crate::protocol::{DagSpec, ExecutorStatus};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeSet;

fn node(n: &str) -> NodeRef {
    NodeRef {
        id: NodeId::new(n),
        generation: Generation(1),
    }
}

fn executor(n: &str) -> ActorRef {
    ActorRef::new(node(n), ServiceId::Executor, 0)
}

fn core(execs: &[&str], now: Instant) -> SchedulerCore {
    let mut c = SchedulerCore::new(0.9, Duration::from_secs(3600));
    c.set_live(execs.iter().map(|n| node(n)).collect());
    for n in execs {
        let status = ExecutorStatus {
            executor: executor(n),
            utilisation: 0.0,
            queued: 0,
            workers: 1,
            python: "3.11".into(),
            cloudpickle: "3.0.0".into(),
            load: Default::default(),
        };
        c.on_status(status, now);
    }
    c
}

fn drop_node(c: &mut SchedulerCore, all: &[&str], gone: &str) {
    let live: BTreeSet<NodeRef> = all
        .iter()
        .filter(|n| **n != gone)
        .map(|n| node(n))
        .collect();
    c.set_live(live);
}

/// `f -> g`, each registered with `retries` and `retry_errors`, timeouts 1 s and 2 s.
fn pipeline(retries: u32, retry_errors: bool) -> Arc<CallPlan> {
    let spec = DagSpec {
        name: "p".into(),
        functions: vec!["f".into(), "g".into()],
        connections: vec![("f".into(), "g".into())],
    };
    let meta = |ms| FunctionMeta {
        hash: 1,
        timeout_ms: Some(ms),
        retries,
        retry_errors,
        class: false,
    };
    Arc::new(CallPlan {
        dag: plan(&spec).expect("valid"),
        functions: vec![meta(1_000), meta(2_000)],
        is_dag: true,
    })
}

fn request(call: u64, consistency: Consistency, arg_bytes: usize) -> CallRequest {
    let arg = Arg::Value(PyValue::Packed(Bytes::from(vec![0u8; arg_bytes])));
    CallRequest {
        call: CallId(call),
        args: [("f".to_string(), vec![arg])].into_iter().collect(),
        consistency,
        reply: Reply {
            push_to: Some(ActorRef::new(node("gw"), ServiceId::Gateway, 0)),
            store_at: None,
        },
        started_us: 0,
    }
}

fn table() -> CallTable {
    table_with(MAX_CALLS, MAX_CALL_BYTES)
}

fn table_with(max_calls: usize, max_bytes: usize) -> CallTable {
    let cfg = TableConfig {
        max_calls,
        max_bytes,
        default_timeout: Duration::from_secs(30),
        dead_after: Duration::from_secs(3),
    };
    CallTable::new(ActorRef::new(node("s"), ServiceId::Scheduler, 0), cfg)
}

fn ended(call: u64, attempt: u32, function: &str, failure: Option<ErrorCode>) -> AttemptEnded {
    AttemptEnded {
        call: CallId(call),
        attempt,
        function: function.into(),
        failure: failure.map(|c| CallFailure::new(c, "it broke")),
    }
}

#[test]
fn a_call_is_kept_until_its_sink_reports_from_any_attempt() {
    let now = Instant::now();
    let c = core(&["a"], now);
    let (mut t, mut rng) = (table(), StdRng::seed_from_u64(1));
    let (timeout, schedules) = t
        .start(
            &c,
            pipeline(2, false),
            request(1, Consistency::Lww, 10),
            CallOptions::default(),
            now,
            &mut rng,
        )
        .expect("placed");
    // Three attempts of 1 s + 2 s + slack, two failure detections.
    assert_eq!(
        timeout,
        (Duration::from_secs(3) + ATTEMPT_SLACK) * 3 + Duration::from_secs(6)
    );
    assert_eq!(schedules.len(), 2);
    assert!(schedules
        .iter()
        .all(|(_, s)| s.attempt == 0 && s.scheduler.is_some()));
    assert_eq!((t.len(), t.bytes()), (1, CALL_OVERHEAD_BYTES + 1 + 10));
    let dup = t.start(
        &c,
        pipeline(2, false),
        request(1, Consistency::Lww, 10),
        CallOptions::default(),
        now,
        &mut rng,
    );
    assert!(dup.is_err(), "a call id runs once");
    assert_eq!(
        t.on_ended(ended(1, 7, "g", None), &c, now, &mut rng),
        Next::Done
    );
    assert!(t.is_empty() && t.bytes() == 0);
    assert_eq!(
        t.on_ended(ended(1, 0, "g", None), &c, now, &mut rng),
        Next::Nothing
    );
}

#[test]
fn a_dead_executor_reruns_the_call_elsewhere_until_its_retries_are_used_up() {
    let now = Instant::now();
    let all = ["a", "b", "c"];
    let mut c = core(&all, now);
    let (mut t, mut rng) = (table(), StdRng::seed_from_u64(2));
    let options = CallOptions {
        retries: Some(1),
        ..CallOptions::default()
    };
    let (_, first) = t
        .start(
            &c,
            pipeline(5, false),
            request(1, Consistency::Lww, 1),
            options,
            now,
            &mut rng,
        )
        .expect("placed");
    let victim = first[0].0.node.id.as_str().to_string();
    // A view that loses an uninvolved node changes nothing.
    let uninvolved = all
        .iter()
        .find(|n| first.iter().all(|(e, _)| e.node.id.as_str() != **n));
    if let Some(u) = uninvolved {
        assert!(t
            .on_view(|n| n.id.as_str() == *u, &c, now, &mut rng)
            .is_empty());
    }
    drop_node(&mut c, &all, &victim);
    let mut next = t.on_view(|n| n.id.as_str() == victim, &c, now, &mut rng);
    assert_eq!(next.len(), 1);
    let Next::Rerun {
        attempt,
        schedules,
        stop,
        ..
    } = next.remove(0)
    else {
        panic!("expected a re-run");
    };
    assert_eq!((attempt, stop.before), (1, 1));
    assert!(stop.executors.iter().any(|e| e.node.id.as_str() == victim));
    assert!(schedules
        .iter()
        .all(|(e, s)| e.node.id.as_str() != victim && s.attempt == 1));
    // A failure reported by the superseded attempt changes nothing.
    let old = ended(1, 0, "f", Some(ErrorCode::WorkerCrashed));
    assert_eq!(t.on_ended(old, &c, now, &mut rng), Next::Nothing);
    // The second death finds no re-run left.
    let second = schedules[0].0.node.id.as_str().to_string();
    let next = t.on_view(|n| n.id.as_str() == second, &c, now, &mut rng);
    let [Next::Fail(failed)] = &next[..] else {
        panic!("expected a failure, got {next:?}");
    };
    assert_eq!(failed.failure.code, ErrorCode::ExecutorLost);
    assert!(
        failed.failure.message.contains("used up"),
        "{}",
        failed.failure.message
    );
    assert_eq!((failed.dag.as_deref(), t.len()), (Some("p"), 0));
}

#[test]
fn with_no_executor_left_the_call_fails_with_executor_lost() {
    let now = Instant::now();
    let mut c = core(&["a"], now);
    let (mut t, mut rng) = (table(), StdRng::seed_from_u64(3));
    t.start(
        &c,
        pipeline(2, false),
        request(1, Consistency::Lww, 1),
        CallOptions::default(),
        now,
        &mut rng,
    )
    .expect("placed");
    drop_node(&mut c, &["a"], "a");
    let next = t.on_view(|n| n.id.as_str() == "a", &c, now, &mut rng);
    let [Next::Fail(failed)] = &next[..] else {
        panic!("expected a failure, got {next:?}");
    };
    assert_eq!(failed.failure.code, ErrorCode::ExecutorLost);
    assert!(t.is_empty());
}

#[test]
fn with_a_monitor_live_a_rerun_that_finds_no_executor_waits_for_one_until_its_deadline() {
    let now = Instant::now();
    let mut c = core(&["a"], now);
    let (mut t, mut rng) = (table(), StdRng::seed_from_u64(3));
    t.hold_reruns(true);
    let start = |t: &mut CallTable, c: &SchedulerCore, n, rng: &mut StdRng| {
        let (timeout, _) = t
            .start(
                c,
                pipeline(2, false),
                request(n, Consistency::Lww, 1),
                CallOptions::default(),
                now,
                rng,
            )
            .expect("placed");
        timeout
    };
    let timeout = start(&mut t, &c, 1, &mut rng);
    start(&mut t, &c, 2, &mut rng);
    drop_node(&mut c, &["a"], "a");
    let next = t.on_view(|n| n.id.as_str() == "a", &c, now, &mut rng);
    assert!(
        next.iter()
            .all(|n| matches!(n, Next::Wait { stop, .. } if stop.executors == vec![executor("a")])),
        "{next:?}"
    );
    assert_eq!((t.waiting(), t.len()), (2, 2), "kept, not failed");
    assert_eq!(t.waiting_functions().filter(|f| *f == "f").count(), 2);
    // Still none: they keep waiting.
    assert!(t
        .place_waiting(&c, now, &mut rng)
        .iter()
        .all(|n| matches!(n, Next::Wait { .. })));
    // Call 2 ends at its deadline while it waits; call 1 runs once an executor reports.
    let b = ["b"];
    let c = core(&b, now);
    assert_eq!(
        t.expire(now + timeout).len(),
        2,
        "the deadline bounds the wait"
    );
    let timeout = start(&mut t, &core(&["a"], now), 3, &mut rng);
    let gone = core(&[], now);
    t.on_view(|n| n.id.as_str() == "a", &gone, now, &mut rng);
    assert_eq!(t.waiting(), 1);
    let next = t.place_waiting(&c, now, &mut rng);
    let [Next::Rerun {
        attempt: 1,
        schedules,
        ..
    }] = &next[..]
    else {
        panic!("expected a re-run, got {next:?}");
    };
    assert!(schedules.iter().all(|(e, _)| *e == executor("b")));
    assert_eq!(t.waiting(), 0);
    assert!(timeout > Duration::ZERO);
}

#[test]
fn a_crashed_worker_reruns_but_an_exception_only_when_asked() {
    let now = Instant::now();
    let c = core(&["a"], now);
    let (mut t, mut rng) = (table(), StdRng::seed_from_u64(4));
    let start = |t: &mut CallTable, call, plan, options, rng: &mut StdRng| {
        t.start(
            &c,
            plan,
            request(call, Consistency::Lww, 1),
            options,
            now,
            rng,
        )
        .expect("placed");
    };
    start(
        &mut t,
        1,
        pipeline(2, false),
        CallOptions::default(),
        &mut rng,
    );
    let crash = ended(1, 0, "f", Some(ErrorCode::WorkerCrashed));
    assert!(matches!(
        t.on_ended(crash, &c, now, &mut rng),
        Next::Rerun { attempt: 1, .. }
    ));
    let raised = ended(1, 1, "f", Some(ErrorCode::FunctionError));
    let Next::Fail(f) = t.on_ended(raised, &c, now, &mut rng) else {
        panic!("an exception fails the call");
    };
    assert_eq!(f.failure.code, ErrorCode::FunctionError);
    // Asked at registration (by the failing function), or per call.
    start(
        &mut t,
        2,
        pipeline(2, true),
        CallOptions::default(),
        &mut rng,
    );
    let raised = ended(2, 0, "g", Some(ErrorCode::Timeout));
    assert!(matches!(
        t.on_ended(raised, &c, now, &mut rng),
        Next::Rerun { .. }
    ));
    let asked = CallOptions {
        retry_errors: Some(true),
        retries: Some(0),
        ..CallOptions::default()
    };
    start(&mut t, 3, pipeline(2, false), asked, &mut rng);
    let raised = ended(3, 0, "f", Some(ErrorCode::FunctionError));
    assert!(
        matches!(t.on_ended(raised, &c, now, &mut rng), Next::Fail(_)),
        "no re-run left"
    );
    let refused = CallOptions {
        retry_errors: Some(false),
        ..CallOptions::default()
    };
    start(&mut t, 4, pipeline(2, true), refused, &mut rng);
    let raised = ended(4, 0, "f", Some(ErrorCode::FunctionError));
    assert!(matches!(
        t.on_ended(raised, &c, now, &mut rng),
        Next::Fail(_)
    ));
    // Never for a bad request.
    start(
        &mut t,
        5,
        pipeline(2, true),
        CallOptions::default(),
        &mut rng,
    );
    let bad = ended(5, 0, "f", Some(ErrorCode::PickleError));
    assert!(matches!(t.on_ended(bad, &c, now, &mut rng), Next::Fail(_)));
}

#[test]
fn a_rerun_of_a_repeatable_read_call_gets_a_fresh_session() {
    let now = Instant::now();
    let c = core(&["a"], now);
    let (mut t, mut rng) = (table(), StdRng::seed_from_u64(5));
    let (_, first) = t
        .start(
            &c,
            pipeline(2, false),
            request(1, Consistency::RepeatableRead, 1),
            CallOptions::default(),
            now,
            &mut rng,
        )
        .expect("placed");
    let crash = ended(1, 0, "f", Some(ErrorCode::WorkerCrashed));
    let Next::Rerun {
        schedules, stop, ..
    } = t.on_ended(crash, &c, now, &mut rng)
    else {
        panic!("expected a re-run");
    };
    assert_eq!(
        stop.release,
        Some((node("a"), CallId(1))),
        "the first session is released"
    );
    assert_eq!(first[0].1.session(), CallId(1));
    let fresh = schedules[0].1.session();
    assert_ne!(fresh, CallId(1));
    assert!(schedules
        .iter()
        .all(|(_, s)| s.session() == fresh && s.home.is_some()));
}

#[test]
fn the_table_refuses_calls_beyond_its_limits() {
    let now = Instant::now();
    let c = core(&["a"], now);
    let mut rng = StdRng::seed_from_u64(6);
    let mut t = table_with(2, MAX_CALL_BYTES);
    for call in 0..2 {
        t.start(
            &c,
            pipeline(2, false),
            request(call, Consistency::Lww, 1),
            CallOptions::default(),
            now,
            &mut rng,
        )
        .expect("room");
    }
    let e = t
        .start(
            &c,
            pipeline(2, false),
            request(9, Consistency::Lww, 1),
            CallOptions::default(),
            now,
            &mut rng,
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Overloaded);
    let mut t = table_with(100, 1_000);
    let e = t
        .start(
            &c,
            pipeline(2, false),
            request(1, Consistency::Lww, 1_000),
            CallOptions::default(),
            now,
            &mut rng,
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Overloaded);
    assert!(t.is_empty());
}

#[test]
fn calls_are_forgotten_at_their_deadline_or_when_cancelled() {
    let now = Instant::now();
    let c = core(&["a"], now);
    let (mut t, mut rng) = (table(), StdRng::seed_from_u64(7));
    let short = CallOptions {
        timeout_ms: Some(500),
        ..CallOptions::default()
    };
    let (timeout, _) = t
        .start(
            &c,
            pipeline(2, false),
            request(1, Consistency::Lww, 1),
            short,
            now,
            &mut rng,
        )
        .expect("placed");
    assert_eq!(timeout, Duration::from_millis(500));
    t.start(
        &c,
        pipeline(2, false),
        request(2, Consistency::Lww, 1),
        CallOptions::default(),
        now,
        &mut rng,
    )
    .expect("placed");
    assert!(t.expire(now + Duration::from_millis(499)).is_empty());
    let expired = t.expire(now + Duration::from_millis(500));
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].0, expired[0].1.before),
        (CallId(1), Cancel::ALL)
    );
    assert_eq!(expired[0].1.executors, vec![executor("a")]);
    let stop = t.cancel(CallId(2)).expect("kept");
    assert_eq!(stop.executors, vec![executor("a")]);
    assert!(t.cancel(CallId(2)).is_none() && t.is_empty());
}
