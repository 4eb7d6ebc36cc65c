//! Unit tests of the executor core: schedules and triggers in either order, fan-in order,
//! aborts, bounds and expiry.

use super::*;
use crate::protocol::Cancel;
use bytes::Bytes;

fn schedule(function: &str, upstream: &[&str]) -> Schedule {
    Schedule {
        dag: Some("d".into()),
        upstream: upstream.iter().map(|s| s.to_string()).collect(),
        sink: true,
        ..Schedule::alone(CallId(1), function, 0)
    }
}

fn v(s: &'static str) -> PyValue {
    PyValue::Packed(Bytes::from_static(s.as_bytes()))
}

fn trigger(to: &str, from: &str, value: Result<PyValue, Aborted>) -> Trigger {
    Trigger {
        call: CallId(1),
        to: to.into(),
        from: from.into(),
        value,
        session: SessionMeta::default(),
        attempt: 0,
    }
}

#[test]
fn upstream_sessions_are_joined() {
    use crate::ids::{Key, WriterId};
    use crate::lattice::VectorClock;
    let now = Instant::now();
    let clock = |w, c| VectorClock::from_iter([(WriterId(w), c)]);
    let mut c = core();
    let mut x = trigger("z", "x", Ok(v("X")));
    x.session.pinned.insert(Key::new("k"), 7);
    x.session.deps.merge_entry(Key::new("a"), clock(1, 2));
    let mut y = trigger("z", "y", Ok(v("Y")));
    y.session.pinned.insert(Key::new("j"), 8);
    y.session.deps.merge_entry(Key::new("a"), clock(2, 5));
    assert_eq!(c.on_trigger(x, now), Step::Wait);
    assert_eq!(c.on_trigger(y, now), Step::Wait);
    let Step::Run(ready) = c.on_schedule(schedule("z", &["x", "y"]), now) else {
        panic!("z is ready");
    };
    let pins: Vec<_> = ready
        .session
        .pinned
        .iter()
        .map(|(k, f)| (k.as_str(), *f))
        .collect();
    assert_eq!(pins, vec![("j", 8), ("k", 7)]);
    let a = ready
        .session
        .deps
        .get(&Key::new("a"))
        .expect("a dependency");
    assert!(a.covers(&clock(1, 2)) && a.covers(&clock(2, 5)), "{a:?}");
}

fn core() -> ExecutorCore {
    ExecutorCore::new(4, Duration::from_secs(10))
}

#[test]
fn sources_run_at_once() {
    let mut c = core();
    let now = Instant::now();
    assert!(matches!(c.on_schedule(schedule("a", &[]), now), Step::Run(r) if r.inputs.is_empty()));
    assert_eq!(c.waiting(), 0);
}

#[test]
fn fan_in_in_edge_order_whatever_the_arrival_order() {
    let now = Instant::now();
    // triggers before the schedule, in reverse order
    let mut c = core();
    assert_eq!(c.on_trigger(trigger("z", "y", Ok(v("Y"))), now), Step::Wait);
    assert_eq!(c.on_trigger(trigger("z", "x", Ok(v("X"))), now), Step::Wait);
    match c.on_schedule(schedule("z", &["x", "y"]), now) {
        Step::Run(r) => assert_eq!(r.inputs, vec![v("X"), v("Y")]),
        other => panic!("{other:?}"),
    }
    // schedule first
    let mut c = core();
    assert_eq!(c.on_schedule(schedule("z", &["x", "y"]), now), Step::Wait);
    assert_eq!(c.on_trigger(trigger("z", "y", Ok(v("Y"))), now), Step::Wait);
    match c.on_trigger(trigger("z", "x", Ok(v("X"))), now) {
        Step::Run(r) => assert_eq!(r.inputs, vec![v("X"), v("Y")]),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.waiting(), 0);
}

#[test]
fn an_aborted_upstream_aborts() {
    let now = Instant::now();
    let mut c = core();
    assert_eq!(
        c.on_trigger(trigger("z", "x", Err(Aborted)), now),
        Step::Wait
    );
    assert!(matches!(
        c.on_schedule(schedule("z", &["x", "y"]), now),
        Step::Abort(s) if s.function == "z"
    ));
    assert_eq!(c.waiting(), 0);
}

#[test]
fn bounded_and_expiring() {
    let now = Instant::now();
    let mut c = core();
    for i in 0..4 {
        let to = format!("f{i}");
        assert_eq!(c.on_trigger(trigger(&to, "x", Ok(v("X"))), now), Step::Wait);
    }
    assert_eq!(
        c.on_trigger(trigger("f9", "x", Ok(v("X"))), now),
        Step::Full
    );
    // a duplicate trigger is ignored, an existing entry still accepts its schedule
    assert_eq!(
        c.on_trigger(trigger("f0", "x", Ok(v("X"))), now),
        Step::Wait
    );
    assert!(matches!(
        c.on_schedule(schedule("f0", &["x"]), now),
        Step::Run(_)
    ));
    assert_eq!(c.expire(now + Duration::from_secs(5)).0, 0);
    assert_eq!(c.expire(now + Duration::from_secs(11)).0, 3);
    assert_eq!(c.waiting(), 0);
}

#[test]
fn expired_schedules_are_returned_and_orphan_triggers_go_sooner() {
    let mut c = ExecutorCore::new(16, Duration::from_secs(600));
    let now = Instant::now();
    // a schedule waiting for an upstream that never answers
    assert_eq!(c.on_schedule(schedule("post", &["slow"]), now), Step::Wait);
    // a late trigger for a function whose call was aborted (no schedule will come)
    assert_eq!(
        c.on_trigger(trigger("gone", "x", Ok(v("X"))), now),
        Step::Wait
    );
    let (n, dropped) = c.expire(now + ORPHAN_EXPIRY + Duration::from_secs(1));
    assert_eq!((n, dropped.len()), (1, 0), "only the orphan trigger went");
    let (n, dropped) = c.expire(now + Duration::from_secs(601));
    assert_eq!(n, 1);
    assert_eq!(dropped.len(), 1, "the expired schedule is handed back");
    assert_eq!(dropped[0].function, "post");
}

fn of_attempt<T>(mut msg: T, attempt: u32, set: impl Fn(&mut T, u32)) -> T {
    set(&mut msg, attempt);
    msg
}

fn s_at(function: &str, upstream: &[&str], attempt: u32) -> Schedule {
    of_attempt(schedule(function, upstream), attempt, |s, a| s.attempt = a)
}

fn t_at(to: &str, from: &str, attempt: u32) -> Trigger {
    of_attempt(trigger(to, from, Ok(v("X"))), attempt, |t, a| t.attempt = a)
}

#[test]
fn a_newer_attempt_supersedes_what_an_older_one_left_waiting() {
    let now = Instant::now();
    let mut c = ExecutorCore::new(16, Duration::from_secs(600));
    assert_eq!(c.on_schedule(s_at("z", &["x", "y"], 0), now), Step::Wait);
    assert_eq!(c.on_trigger(t_at("z", "x", 0), now), Step::Wait);
    // Attempt 1's schedule drops attempt 0's entry (and its trigger from x).
    assert_eq!(c.on_schedule(s_at("z", &["x", "y"], 1), now), Step::Wait);
    assert_eq!(c.on_trigger(t_at("z", "y", 1), now), Step::Wait);
    // Late messages of attempt 0 are dropped, whatever their kind.
    assert_eq!(c.on_trigger(t_at("z", "x", 0), now), Step::Stale);
    assert_eq!(c.on_schedule(s_at("w", &[], 0), now), Step::Stale);
    match c.on_trigger(t_at("z", "x", 1), now) {
        Step::Run(r) => assert_eq!((r.schedule.attempt, r.inputs.len()), (1, 2)),
        other => panic!("{other:?}"),
    }
    // Other calls are not affected.
    let mut other = s_at("a", &[], 0);
    other.call = CallId(2);
    assert!(matches!(c.on_schedule(other, now), Step::Run(_)));
}

#[test]
fn a_cancelled_call_drops_what_waits_and_what_comes_later() {
    let now = Instant::now();
    let mut c = ExecutorCore::new(16, Duration::from_secs(600));
    assert_eq!(c.on_schedule(s_at("z", &["x"], 0), now), Step::Wait);
    assert_eq!(c.on_trigger(t_at("q", "p", 0), now), Step::Wait);
    // A re-run stops the attempts before it only.
    assert_eq!(c.cancel(CallId(1), 1, now), 2);
    assert!(matches!(
        c.on_schedule(s_at("a", &[], 1), now),
        Step::Run(_)
    ));
    assert_eq!(c.on_schedule(s_at("a", &[], 0), now), Step::Stale);
    // Cancelled whole: every later schedule and trigger is dropped.
    assert_eq!(c.on_schedule(s_at("z", &["x"], 1), now), Step::Wait);
    assert_eq!(c.cancel(CallId(1), Cancel::ALL, now), 1);
    assert_eq!(c.on_schedule(s_at("a", &[], 5), now), Step::Stale);
    assert_eq!(c.on_trigger(t_at("z", "x", 1), now), Step::Stale);
    assert_eq!(c.waiting(), 0);
    // Remembered for a while only.
    let _ = c.expire(now + FLOOR_EXPIRY);
    assert!(matches!(
        c.on_schedule(s_at("a", &[], 0), now),
        Step::Run(_)
    ));
}
