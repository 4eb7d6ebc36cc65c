//! Calls claimed by another gateway, and the outcomes this executor's sinks delivered, kept
//! for such a claim (see [`crate::protocol::claim`]). No I/O; time is passed in.
//!
//! - An outcome a sink delivered is *held* for [`HELD_FOR`], at most [`MAX_HELD`] outcomes
//!   and [`MAX_HELD_BYTES`] of values (oldest dropped first): a gateway lost after it took
//!   the outcome (before its client had it) leaves it here for the gateway the client moves
//!   to. Holding costs the call path one lock and a reference count (values are shared
//!   bytes, not copied).
//! - A *claimed* call's result goes to the claiming gateway; its schedules that push
//!   elsewhere are dropped (late schedules of the lost gateway's placement). Claims are
//!   kept for [`CLAIM_EXPIRY`], at most [`MAX_CLAIMS`]. While none is, checking a schedule
//!   costs one atomic load.

use crate::ids::CallId;
use crate::net::ActorRef;
use crate::protocol::{CallFailure, Schedule};
use crate::pyrt::PyValue;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a delivered outcome is held: well beyond the time a client takes to notice its
/// gateway is gone, reach another and send its requests again (seconds).
pub const HELD_FOR: Duration = Duration::from_secs(30);
/// Outcomes held at most (an id, a shared value and a timestamp each).
pub const MAX_HELD: usize = 65_536;
/// Bytes of held values at most (the newest outcome is always held).
pub const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;
/// Claims kept at most; beyond, the oldest are forgotten (a forgotten claim lets a late
/// schedule of the lost placement run, whose result the lost gateway never gets).
pub const MAX_CLAIMS: usize = 65_536;
/// How long a claim is kept: as long as a schedule may wait for its upstream results.
pub const CLAIM_EXPIRY: Duration = Duration::from_secs(600);

/// A call's outcome as a sink delivers it.
pub type Outcome = Result<PyValue, CallFailure>;

/// Claims and held outcomes of one executor (shared with its running calls).
#[derive(Default)]
pub struct Claims {
    /// How many calls are claimed (read without the lock on every schedule).
    claimed_count: AtomicUsize,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    claimed: HashMap<CallId, (ActorRef, Instant)>,
    held: HashMap<CallId, (Outcome, usize)>,
    /// Held outcomes, oldest first, with when they were delivered.
    order: VecDeque<(Instant, CallId)>,
    bytes: usize,
}

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sink delivers `outcome` of `call`: it is held; the gateway that claimed the call,
    /// if one did, is where it must go instead of the schedule's.
    pub fn deliver(&self, call: CallId, outcome: &Outcome, now: Instant) -> Option<ActorRef> {
        let bytes = outcome_bytes(outcome);
        let mut b = self.lock();
        b.expire_held(now);
        if let Some((_, old)) = b.held.insert(call, (outcome.clone(), bytes)) {
            b.bytes -= old;
        } else {
            b.order.push_back((now, call));
        }
        b.bytes += bytes;
        while b.order.len() > 1 && (b.order.len() > MAX_HELD || b.bytes > MAX_HELD_BYTES) {
            b.drop_oldest();
        }
        if self.claimed_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        b.claimed.get(&call).map(|(g, _)| g.clone())
    }

    /// The gateway that claimed `call`, if one did (for a failure told to the caller).
    pub fn claimant(&self, call: CallId) -> Option<ActorRef> {
        if self.claimed_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.lock().claimed.get(&call).map(|(g, _)| g.clone())
    }

    /// Whether schedule `s` is of a call another gateway claimed (its result would go to
    /// the lost one): then it is dropped.
    pub fn refuses(&self, s: &Schedule) -> bool {
        if self.claimed_count.load(Ordering::Acquire) == 0 {
            return false;
        }
        match self.lock().claimed.get(&s.call) {
            Some((g, _)) => s.reply.push_to.as_ref() != Some(g),
            None => false,
        }
    }

    /// `gateway` claims `call`: its outcome if held here, else `None` (whether a function
    /// of it runs here is the executor's to say). Its result goes to `gateway` from now on.
    pub fn claim(&self, call: CallId, gateway: ActorRef, now: Instant) -> Option<Outcome> {
        let mut b = self.lock();
        b.expire_claims(now);
        if b.claimed.len() >= MAX_CLAIMS && !b.claimed.contains_key(&call) {
            if let Some(oldest) = b
                .claimed
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(c, _)| *c)
            {
                b.claimed.remove(&oldest);
            }
        }
        b.claimed.insert(call, (gateway, now));
        self.claimed_count.store(b.claimed.len(), Ordering::Release);
        b.expire_held(now);
        b.held.get(&call).map(|(o, _)| o.clone())
    }

    /// Forget claims and held outcomes past their time.
    pub fn expire(&self, now: Instant) {
        let mut b = self.lock();
        b.expire_claims(now);
        self.claimed_count.store(b.claimed.len(), Ordering::Release);
        b.expire_held(now);
    }

    /// Outcomes held now (for tests and stats).
    pub fn held(&self) -> usize {
        self.lock().held.len()
    }
}

impl Book {
    fn expire_held(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < HELD_FOR {
                break;
            }
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some((_, call)) = self.order.pop_front() {
            if let Some((_, bytes)) = self.held.remove(&call) {
                self.bytes -= bytes;
            }
        }
    }

    fn expire_claims(&mut self, now: Instant) {
        self.claimed
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < CLAIM_EXPIRY);
    }
}

fn outcome_bytes(outcome: &Outcome) -> usize {
    match outcome {
        Ok(PyValue::Packed(b)) => b.len(),
        Ok(PyValue::PackedSet(v) | PyValue::Concurrent(v)) => v.iter().map(|b| b.len()).sum(),
        Err(f) => f.message.len() + f.traceback.as_ref().map_or(0, String::len),
    }
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
