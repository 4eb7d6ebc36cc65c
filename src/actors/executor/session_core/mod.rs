//! The consistency session's rules, with no I/O: what one running function's session has
//! seen (pins, fingerprints, dependencies), fed with what the cache and the KVS returned,
//! returning what to do next ([`ReadStep`], [`WriteStep`]). The I/O loop in `session.rs`
//! carries the steps out; `rules_tests.rs` shows each rule with no cache, KVS or transport
//! (the test named after each rule below), `histories_tests.rs` checks them over random
//! histories.
//!
//! - `repeatable.rs`: pins, and where a pinned version is served from.
//! - `causal.rs`: the session order, the causal cut, stamping a write.
//! - `dots.rs`: the dots this node gives each key it writes causally.
//! - `versions.rs`: fingerprints of versions, clocks of values, the reserved write time.
//!
//! # Last-writer-wins
//! Reads come from the node's cache; writes are Lww values timestamped by the executor's
//! clock (monotonic per writer). The core has nothing to decide.
//!
//! # Distributed-session repeatable read
//! Every read of key `k` in one call returns the same version, on any node. The call's
//! *home* is the node of its first source function (chosen by the scheduler, carried in
//! every schedule). The first read of `k` pins what the home cache returns (or its absence:
//! `absence_is_pinned`) for the session; first pin wins, so parallel branches agree
//! (`first_pin_wins`). The triggers carry which keys are pinned with a [`fingerprint`] of
//! the version; a downstream function on another node serves `k` from its own cache when
//! that holds the same version, and otherwise fetches the pinned one from the home cache,
//! never from the KVS (`downstream_serves_local_copy_only_when_fingerprint_matches`). A
//! pinned version the home cache no longer has fails the read (`session_expired`,
//! `expired_pin_fails`) instead of returning another version. Writes go to the KVS as under
//! LWW but do not change what later reads of the session return.
//!
//! # Distributed-session causal
//! Values written in this mode are [`MultiKeyCausal`] lattices: a clock, the session's
//! dependencies (key -> clock it read or wrote), the value. A version's clock is its
//! *history*: the set of writes of that key it has seen, plus its own. Each executor node
//! numbers its writes of a key 1, 2, 3, ... (a *dot* `(node, n)`, from its [`DotTable`]),
//! so a history is a few counters per node, plus single dots where two concurrent sessions
//! on one node wrote the same key (see `VectorClock`). A write's clock is the session's
//! clock of the key plus its new dot: it supersedes exactly the versions the session read
//! or wrote of that key (`write_supersedes_what_the_session_saw`). A blind write, or two
//! sessions that did not see each other, leave concurrent versions: both are kept and a
//! read returns all of them (`concurrent_versions_are_kept`). Every clock also carries the
//! write time under a reserved writer ([`WRITE_TIME`]), for garbage collection.
//! - *Session order*: the session's dependencies travel in the triggers; a read of `k`
//!   whose cached version does not cover what the session already read or wrote of `k` is
//!   re-read from the KVS, which has it: writes are acknowledged by every replica
//!   (`session_order_forces_a_reread`, `store_behind_the_session_fails`).
//! - *Causal cut*: after reading a version, any of its dependencies the cache holds in an
//!   older version is refreshed from the KVS before the read returns, and the dependencies
//!   join the session's, so later reads of those keys cover them
//!   (`causal_cut_refreshes_older_dependencies`).
//! - Every write carries the session's dependencies.
//!
//! # Metadata bounds (garbage collection)
//! A clock holds one counter per executor node that ever wrote the key (node ids, not
//! incarnations: a restarted node continues its numbering from what the KVS holds:
//! `first_write_since_start_reads_the_store`), plus the dots of writes concurrent with
//! others of the same node. Dependencies are dropped once older than a horizon `H`
//! (`consistency.causal_horizon_ms`, judged by their write time), so a dependency set holds
//! at most the keys the session's causal past wrote in the last `H`
//! (`dependencies_past_the_horizon_are_pruned`). Why dropping is safe: causal reads only use
//! a cached value confirmed by the KVS within the lease `L` (`causal_lease_ms`, re-read
//! otherwise), and a write older than `H >= L + request timeout` was acknowledged by every
//! KVS replica before that confirmation: every cache that serves the key has seen it. The
//! rule assumes node clocks agree to well within `H - L - timeout`.

mod causal;
mod dots;
mod repeatable;
mod versions;

pub use causal::{Write, WriteStep};
pub use dots::{DotTable, MAX_CAUSAL_KEYS};
pub(super) use versions::encode_into;
pub use versions::{causal_writer, clock_of, fingerprint, prune, WRITE_TIME};

use crate::ids::{Key, WriterId};
use crate::lattice::{LatticeValue, VectorClock};
use crate::protocol::{ErrorCode, SessionMeta};
use std::time::Duration;

/// Why a session read or write failed; `code` is what the caller (or the function) sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

pub(super) fn error(code: ErrorCode, message: String) -> SessionError {
    SessionError { code, message }
}

/// What the session may look at in this node's cache without I/O.
pub trait LocalView {
    /// The held value of `key` if it is the version named `fp` ([`fingerprint`]).
    fn held_version(&self, key: &Key, fp: u64) -> Option<LatticeValue>;
    /// The clock of the held value of `key` (`None`: not held).
    fn held_clock(&self, key: &Key) -> Option<VectorClock>;
}

/// What a read does next.
#[derive(Debug, PartialEq)]
pub enum ReadStep {
    /// Done: return these values, in the order of the keys asked.
    Serve(Vec<Option<LatticeValue>>),
    /// Re-read these keys from the KVS (through the cache) and feed the answer back.
    ReadKvs(Vec<Key>),
    /// Fetch the session's pinned versions of these keys from its home cache and feed the
    /// answer back.
    FetchPinned(Vec<Key>),
}

/// A read in progress: what was asked, what is known so far, what it waits for.
#[derive(Debug)]
pub struct Read {
    keys: Vec<Key>,
    values: Vec<Option<LatticeValue>>,
    /// Causal: the clocks of `values`.
    clocks: Vec<VectorClock>,
    wait: Wait,
}

#[derive(Debug)]
enum Wait {
    /// Repeatable read: the pinned versions of these positions, from the home cache.
    Pinned(Vec<usize>),
    /// Causal: these positions, re-read to cover the session's past.
    Behind(Vec<usize>),
    /// Causal: the refresh of stale dependencies (its answer is not used).
    Cut,
}

/// One function's session: what it has seen, and the rules that follow from it.
#[derive(Debug)]
pub struct SessionCore {
    meta: SessionMeta,
    /// This node's writer id in causal clocks.
    writer: WriterId,
    /// Causal dependencies older than this are dropped.
    horizon: Duration,
}

impl SessionCore {
    /// The session of a function on the node writing as `writer`, having seen `meta`
    /// upstream; causal dependencies are kept for `horizon`.
    pub fn new(meta: SessionMeta, writer: WriterId, horizon: Duration) -> Self {
        SessionCore {
            meta,
            writer,
            horizon,
        }
    }

    /// What the session has seen (what travels downstream).
    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    fn floor(&self, now: u64) -> u64 {
        now.saturating_sub(self.horizon.as_micros() as u64)
    }

    /// The answer to the last step of `read`.
    pub fn feed(
        &mut self,
        read: &mut Read,
        answer: Vec<Option<LatticeValue>>,
        view: &impl LocalView,
        now: u64,
    ) -> Result<ReadStep, SessionError> {
        match std::mem::replace(&mut read.wait, Wait::Cut) {
            Wait::Pinned(missing) => self.fetched_pins(read, missing, answer),
            Wait::Behind(behind) => self.reread(read, behind, answer, view, now),
            Wait::Cut => Ok(ReadStep::Serve(std::mem::take(&mut read.values))),
        }
    }
}

#[cfg(test)]
mod rules_tests;
