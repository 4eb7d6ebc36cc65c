//! Unit tests of claims and held outcomes: what a claim finds, where a claimed call's
//! result goes, which schedules are dropped, and the bounds.

use super::*;
use crate::ids::{Generation, NodeId, NodeRef};
use crate::net::ServiceId;
use crate::protocol::{ErrorCode, Reply};
use bytes::Bytes;

fn gateway(name: &str) -> ActorRef {
    let node = NodeRef {
        id: NodeId::new(name),
        generation: Generation(1),
    };
    ActorRef::new(node, ServiceId::Gateway, 0)
}

fn value(n: usize) -> Outcome {
    Ok(PyValue::Packed(Bytes::from(vec![7u8; n])))
}

fn schedule(call: u64, push_to: &str) -> Schedule {
    Schedule {
        sink: true,
        reply: Reply {
            push_to: Some(gateway(push_to)),
            store_at: None,
        },
        ..Schedule::alone(CallId(call), "f", 0)
    }
}

#[test]
fn a_claim_finds_a_delivered_outcome_and_nothing_else() {
    let (c, t) = (Claims::default(), Instant::now());
    assert_eq!(
        c.deliver(CallId(1), &value(3), t),
        None,
        "unclaimed: as scheduled"
    );
    let failed = Err(CallFailure::new(ErrorCode::FunctionError, "boom"));
    c.deliver(CallId(2), &failed, t);
    assert_eq!(c.claim(CallId(1), gateway("b"), t), Some(value(3)));
    assert_eq!(c.claim(CallId(2), gateway("b"), t), Some(failed));
    assert_eq!(c.claim(CallId(3), gateway("b"), t), None);
}

#[test]
fn a_claimed_call_delivers_to_the_claimant_and_drops_schedules_pushing_elsewhere() {
    let (c, t) = (Claims::default(), Instant::now());
    assert!(!c.refuses(&schedule(1, "a")), "nothing claimed");
    c.claim(CallId(1), gateway("b"), t);
    assert!(
        c.refuses(&schedule(1, "a")),
        "a late schedule of the lost gateway"
    );
    assert!(!c.refuses(&schedule(1, "b")), "the claimant's own run");
    assert!(!c.refuses(&schedule(2, "a")), "another call");
    assert_eq!(c.claimant(CallId(1)), Some(gateway("b")));
    assert_eq!(c.deliver(CallId(1), &value(1), t), Some(gateway("b")));
    assert_eq!(c.deliver(CallId(2), &value(1), t), None);
}

#[test]
fn outcomes_are_held_for_a_while_and_within_their_bytes() {
    let (c, t) = (Claims::default(), Instant::now());
    c.deliver(CallId(1), &value(10), t);
    c.deliver(CallId(2), &value(10), t + HELD_FOR / 2);
    c.expire(t + HELD_FOR);
    assert_eq!(c.held(), 1, "the older one is past its time");
    assert_eq!(c.claim(CallId(1), gateway("b"), t + HELD_FOR), None);
    let big = MAX_HELD_BYTES / 2 + 1;
    let later = t + HELD_FOR;
    c.deliver(CallId(3), &value(big), later);
    c.deliver(CallId(4), &value(big), later);
    assert_eq!(c.held(), 1, "the bytes bound keeps only the newest");
    assert_eq!(c.claim(CallId(4), gateway("b"), later), Some(value(big)));
}

#[test]
fn held_outcomes_are_bounded_in_number_and_claims_expire() {
    let (c, t) = (Claims::default(), Instant::now());
    for i in 0..MAX_HELD as u64 + 10 {
        c.deliver(CallId(i), &value(0), t);
    }
    assert_eq!(c.held(), MAX_HELD);
    assert_eq!(
        c.claim(CallId(0), gateway("b"), t),
        None,
        "the oldest went first"
    );
    assert!(c.refuses(&schedule(0, "a")));
    c.expire(t + CLAIM_EXPIRY);
    assert!(!c.refuses(&schedule(0, "a")), "the claim expired");
}
