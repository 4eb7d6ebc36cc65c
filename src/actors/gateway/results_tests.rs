//! Unit tests of the gateway's call book: first outcome wins, every await answers the
//! same, deadlines, lost schedulers, bounds.

use super::*;
use crate::ids::{Generation, NodeId};
use bytes::Bytes;

fn ok(b: &'static [u8]) -> Outcome {
    Ok(PyValue::Packed(Bytes::from_static(b)))
}

fn fail(code: ErrorCode) -> Outcome {
    Err(CallFailure::new(code, "it broke"))
}

fn node(id: &str) -> NodeRef {
    NodeRef {
        id: NodeId::new(id),
        generation: Generation(1),
    }
}

fn later(s: u64) -> Instant {
    Instant::now() + Duration::from_secs(s)
}

fn pending(book: &mut CallBook, call: u64) -> oneshot::Receiver<Outcome> {
    match book.wait(CallId(call)) {
        Wait::Pending(rx) => rx,
        other => panic!("expected a pending call, got {other:?}"),
    }
}

fn ended(book: &mut CallBook, call: u64) -> Outcome {
    match book.wait(CallId(call)) {
        Wait::Ended(o) => o,
        other => panic!("expected an ended call, got {other:?}"),
    }
}

#[test]
fn a_direct_call_gets_its_first_result_and_later_ones_are_duplicates() {
    let mut book = CallBook::default();
    let now = Instant::now();
    assert!(book.begin(CallId(1), node("s"), false, later(10)));
    assert!(
        !book.begin(CallId(1), node("s"), false, later(10)),
        "known already"
    );
    let mut rx = pending(&mut book, 1);
    let first = book.finish(CallId(1), ok(b"x"), now);
    assert_eq!(
        first,
        Finish::First {
            delivered: 1,
            failure: None
        }
    );
    assert_eq!(rx.try_recv().unwrap(), ok(b"x"));
    assert_eq!(book.finish(CallId(1), ok(b"y"), now), Finish::Duplicate);
    // A direct call's value is not kept: only that it ended.
    assert!(matches!(book.wait(CallId(1)), Wait::Stored));
    assert_eq!((book.running(), book.waiting()), (0, 0));
}

#[test]
fn every_await_of_a_future_answers_the_same_value_or_failure() {
    let mut book = CallBook::default();
    let now = Instant::now();
    book.begin(CallId(1), node("s"), true, later(10));
    book.begin(CallId(2), node("s"), true, later(10));
    let mut a = pending(&mut book, 1);
    let mut b = pending(&mut book, 1);
    book.finish(CallId(1), ok(b"v"), now);
    assert_eq!(a.try_recv().unwrap(), ok(b"v"));
    assert_eq!(b.try_recv().unwrap(), ok(b"v"));
    book.finish(CallId(1), ok(b"other attempt"), now);
    for _ in 0..3 {
        assert_eq!(ended(&mut book, 1), ok(b"v"));
    }
    let failed = book.finish(CallId(2), fail(ErrorCode::FunctionError), now);
    assert!(matches!(
        failed,
        Finish::First {
            delivered: 0,
            failure: Some((ErrorCode::FunctionError, _))
        }
    ));
    for _ in 0..3 {
        let e = ended(&mut book, 2).unwrap_err();
        assert_eq!(e.code, ErrorCode::FunctionError);
    }
}

#[test]
fn a_deleted_result_is_no_longer_kept_but_a_failure_stays() {
    let mut book = CallBook::default();
    let now = Instant::now();
    book.begin(CallId(1), node("s"), true, later(10));
    book.begin(CallId(2), node("s"), true, later(10));
    book.finish(CallId(1), ok(b"value"), now);
    book.finish(CallId(2), fail(ErrorCode::Cancelled), now);
    assert_eq!(ended(&mut book, 1), ok(b"value"));
    book.drop_value(CallId(1));
    book.drop_value(CallId(2));
    book.drop_value(CallId(3));
    // Later awaits read the (deleted) stored result; the failure answers as before.
    assert!(matches!(book.wait(CallId(1)), Wait::Stored));
    assert_eq!(ended(&mut book, 2).unwrap_err().code, ErrorCode::Cancelled);
    assert_eq!(book.remembered(), 2);
}

#[test]
fn an_unknown_call_is_said_so_and_a_gone_waiter_is_forgotten() {
    let mut book = CallBook::default();
    assert!(matches!(book.wait(CallId(9)), Wait::Unknown));
    book.begin(CallId(3), node("s"), true, later(10));
    drop(pending(&mut book, 3));
    book.give_up(CallId(3));
    assert_eq!(book.waiting(), 0);
}

#[test]
fn calls_past_their_deadline_end_with_timeout_once() {
    let mut book = CallBook::default();
    let now = Instant::now();
    book.begin(CallId(1), node("s"), false, now + Duration::from_secs(5));
    book.begin(CallId(2), node("s"), true, now + Duration::from_secs(60));
    // The scheduler's deadline only ever shortens a call's.
    book.accepted(CallId(2), now + Duration::from_secs(2));
    book.accepted(CallId(1), now + Duration::from_secs(50));
    let mut rx = pending(&mut book, 1);
    assert!(book.sweep(now + Duration::from_secs(1)).is_empty());
    let swept = book.sweep(now + Duration::from_secs(3));
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].0, CallId(2));
    assert_eq!(ended(&mut book, 2).unwrap_err().code, ErrorCode::Timeout);
    let swept = book.sweep(now + Duration::from_secs(6));
    assert_eq!(
        swept.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![CallId(1)]
    );
    assert_eq!(rx.try_recv().unwrap().unwrap_err().code, ErrorCode::Timeout);
    assert!(book.sweep(now + Duration::from_secs(100)).is_empty());
    // The result after the timeout is a duplicate: the timeout stands.
    assert_eq!(book.finish(CallId(2), ok(b"late"), now), Finish::Duplicate);
    assert_eq!(ended(&mut book, 2).unwrap_err().code, ErrorCode::Timeout);
}

#[test]
fn calls_of_a_gone_scheduler_end_with_scheduler_lost() {
    let mut book = CallBook::default();
    let now = Instant::now();
    book.begin(CallId(1), node("a"), true, later(10));
    book.begin(CallId(2), node("b"), true, later(10));
    assert_eq!(book.scheduler_of(CallId(1)), Some(&node("a")));
    let ended_now = book.schedulers_gone(|n| n.id.as_str() == "a", now);
    assert_eq!(ended_now.len(), 1);
    assert_eq!(
        ended(&mut book, 1).unwrap_err().code,
        ErrorCode::SchedulerLost
    );
    assert!(matches!(book.wait(CallId(2)), Wait::Pending(_)));
    assert!(book
        .schedulers_gone(|n| n.id.as_str() == "a", now)
        .is_empty());
}

#[test]
fn remembered_calls_are_bounded_oldest_first_and_keep_the_newest() {
    let mut book = CallBook::default();
    let now = Instant::now();
    for i in 0..(MAX_ENDED as u64 + 10) {
        book.finish(CallId(i), fail(ErrorCode::FunctionError), now);
    }
    assert_eq!(book.remembered(), MAX_ENDED);
    assert!(
        matches!(book.wait(CallId(0)), Wait::Unknown),
        "oldest forgotten"
    );
    assert!(book.has_ended(CallId(MAX_ENDED as u64 + 9)));
    let big = Bytes::from(vec![0u8; MAX_ENDED_BYTES / 2 + 1]);
    book.finish(CallId(u64::MAX), Ok(PyValue::Packed(big.clone())), now);
    book.finish(CallId(u64::MAX - 1), Ok(PyValue::Packed(big)), now);
    assert!(!book.has_ended(CallId(u64::MAX)));
    assert!(matches!(
        book.wait(CallId(u64::MAX - 1)),
        Wait::Ended(Ok(_))
    ));
}

#[test]
fn a_forgotten_call_may_begin_again_and_a_kept_direct_value_answers_a_resend() {
    let mut book = CallBook::default();
    let now = Instant::now();
    assert!(!book.knows(CallId(7)));
    assert!(book.begin(CallId(7), node("s"), true, later(10)));
    assert!(book.knows(CallId(7)));
    // No scheduler took it: it ends with the refusal, then is forgotten.
    book.finish(CallId(7), fail(ErrorCode::Unavailable), now);
    assert!(book.knows(CallId(7)), "remembered as failed");
    book.forget(CallId(7));
    assert!(!book.knows(CallId(7)) && book.remembered() == 0 && book.running() == 0);
    assert!(matches!(book.wait(CallId(7)), Wait::Unknown));
    // Sent again, it runs; kept, its value answers every later request for it.
    assert!(book.begin(CallId(7), node("s"), true, later(10)));
    book.finish(CallId(7), ok(b"\x07"), now);
    assert_eq!(ended(&mut book, 7), ok(b"\x07"));
    // Forgetting does not unbalance the bytes of what is remembered.
    book.forget(CallId(7));
    assert_eq!(book.remembered(), 0);
    assert!(book.begin(CallId(8), node("s"), true, later(10)));
    book.finish(CallId(8), ok(b"\x08"), now);
    assert_eq!(ended(&mut book, 8), ok(b"\x08"));
}
