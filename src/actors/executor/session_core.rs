//! The consistency session's rules, with no I/O: what one running function's session has
//! seen (pins, fingerprints, dependencies), fed with what the cache and the KVS returned,
//! returning what to do next ([`ReadStep`], [`WriteStep`]). The I/O loop in `session.rs`
//! carries the steps out; `session_core_tests.rs` shows each rule with no cache, KVS or
//! transport (the test named after each rule below).
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

use crate::ids::{hash64, Key, NodeRef, WriterId};
use crate::lattice::{Dependencies, LatticeValue, MultiKeyCausal, VectorClock};
use crate::protocol::{ErrorCode, SessionMeta};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
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

/// Feed `v`'s bincode encoding (the wire form) to `out` piece by piece, without building
/// it; false if it cannot be encoded.
pub(super) fn encode_into<T: serde::Serialize>(v: &T, out: impl FnMut(&[u8])) -> bool {
    struct Sink<F>(F);
    impl<F: FnMut(&[u8])> std::io::Write for Sink<F> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            (self.0)(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    bincode::serde::encode_into_std_write(v, &mut Sink(out), bincode::config::standard()).is_ok()
}

/// A 64-bit identity of a stored version, the same on every node (0: missing). An Lww
/// version is named by its timestamp (writers never reuse one) and length, so a large value
/// is not hashed on every repeatable read; other kinds have no version id and are hashed.
pub fn fingerprint(value: Option<&LatticeValue>) -> u64 {
    let fp = match value {
        None => return 0,
        Some(LatticeValue::Lww(l)) => hash64(&[
            &l.timestamp.time.to_le_bytes(),
            &l.timestamp.writer.0.to_le_bytes(),
            &(l.value.len() as u64).to_le_bytes(),
        ]),
        Some(other) => {
            let mut h = Sha256::new();
            if !encode_into(other, |b| h.update(b)) {
                // Unencodable (cannot happen for stored values): never equal to another.
                return u64::MAX;
            }
            let d = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&d[..8]);
            u64::from_le_bytes(first)
        }
    };
    fp.max(1)
}

/// The vector clock of a stored value (empty when missing, deleted or of a kind without
/// one; a value recreated after a delete has its own).
pub fn clock_of(value: Option<&LatticeValue>) -> VectorClock {
    match value.and_then(LatticeValue::live).as_deref() {
        Some(LatticeValue::MultiKeyCausal(m)) => m.clock(),
        Some(LatticeValue::SingleKeyCausal(s)) => s.clock(),
        _ => VectorClock::new(),
    }
}

/// The reserved writer whose counter in a causal clock is the latest write time (µs) in
/// the history (a max register: never above a later write's).
pub const WRITE_TIME: WriterId = WriterId(u64::MAX);

/// The causal writer id of an executor node: stable across restarts (its id, not its
/// generation), never one of the reserved writers.
pub fn causal_writer(node: &NodeRef) -> WriterId {
    WriterId(hash64(&[node.id.as_str().as_bytes()]).clamp(1, u64::MAX - 1))
}

/// `deps` without the dependencies written before `floor` (µs).
pub fn prune(deps: &Dependencies, floor: u64) -> Dependencies {
    deps.iter()
        .filter(|(_, c)| c.get(WRITE_TIME) > floor)
        .map(|(k, c)| (k.clone(), c.clone()))
        .collect()
}

/// What the session may look at in this node's cache without I/O.
pub trait LocalView {
    /// The held value of `key` if it is the version named `fp` ([`fingerprint`]).
    fn held_version(&self, key: &Key, fp: u64) -> Option<LatticeValue>;
    /// The clock of the held value of `key` (`None`: not held).
    fn held_clock(&self, key: &Key) -> Option<VectorClock>;
}

/// Keys whose last causal dot an executor remembers, at most.
pub const MAX_CAUSAL_KEYS: usize = 1 << 20;

/// The last dot this node gave each key it wrote causally, shared by every session of the
/// node. A key it has no entry for (first write since the node started, or after the
/// table was emptied) must find its next dot above what the KVS holds.
#[derive(Debug, Default)]
pub struct DotTable {
    last: HashMap<Key, u64>,
}

impl DotTable {
    /// Whether this node has given `key` a dot since it started.
    pub fn knows(&self, key: &Key) -> bool {
        self.last.contains_key(key)
    }

    /// The next dot of this node for `key`: above the last it gave and above `known`.
    /// Past [`MAX_CAUSAL_KEYS`] keys the table is emptied (each key then costs one KVS
    /// read at its next write).
    pub fn next(&mut self, key: &Key, known: u64) -> u64 {
        if self.last.len() >= MAX_CAUSAL_KEYS && !self.last.contains_key(key) {
            self.last.clear();
        }
        let last = self.last.entry(key.clone()).or_insert(0);
        *last = (*last).max(known).saturating_add(1);
        *last
    }
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

/// What a causal write does next.
#[derive(Debug, PartialEq)]
pub enum WriteStep {
    /// Read the write's key from the KVS (for this node's highest dot of it) and feed the
    /// answer back ([`SessionCore::feed_write`]).
    ReadKvs(Write),
    /// Store `value` under `key`; once stored, tell the core `clock` ([`SessionCore::wrote`]).
    Write {
        key: Key,
        value: LatticeValue,
        clock: VectorClock,
    },
}

/// A causal write in progress (waiting for the KVS's copy of the key).
#[derive(Debug, PartialEq)]
pub struct Write {
    key: Key,
    bytes: Bytes,
    /// The session's clock of the key when the write began.
    seen: VectorClock,
    /// The highest dot of this node for the key known so far.
    known: u64,
}

impl Write {
    /// The key written.
    pub fn key(&self) -> &Key {
        &self.key
    }
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

    /// Repeatable read at the home: `values` were read (and pinned) there for `keys`.
    pub fn pinned_here(&mut self, keys: &[Key], values: &[Option<LatticeValue>]) {
        for (k, v) in keys.iter().zip(values) {
            self.meta
                .pinned
                .entry(k.clone())
                .or_insert_with(|| fingerprint(v.as_ref()));
        }
    }

    /// Repeatable read away from the home: serve what `view` holds in the pinned version
    /// (and pinned absences); fetch the rest from the home cache.
    pub fn read_pinned(&mut self, keys: Vec<Key>, view: &impl LocalView) -> (Read, ReadStep) {
        let mut values = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let local = match self.meta.pinned.get(k) {
                Some(0) => Some(None),
                Some(&fp) => view.held_version(k, fp).map(Some),
                None => None,
            };
            if local.is_none() {
                missing.push(i);
            }
            values.push(local.flatten());
        }
        let mut read = Read {
            keys,
            values,
            clocks: Vec::new(),
            wait: Wait::Pinned(Vec::new()),
        };
        if missing.is_empty() {
            self.pinned_here(&read.keys, &read.values);
            let values = std::mem::take(&mut read.values);
            return (read, ReadStep::Serve(values));
        }
        let wanted = missing.iter().map(|&i| read.keys[i].clone()).collect();
        read.wait = Wait::Pinned(missing);
        (read, ReadStep::FetchPinned(wanted))
    }

    /// Causal read: `values` came from the cache (confirmed within the lease).
    pub fn read_causal(
        &mut self,
        keys: Vec<Key>,
        values: Vec<Option<LatticeValue>>,
        view: &impl LocalView,
        now: u64,
    ) -> (Read, ReadStep) {
        let clocks: Vec<VectorClock> = values.iter().map(|v| clock_of(v.as_ref())).collect();
        let behind: Vec<usize> = (0..keys.len())
            .filter(|&i| self.behind(&keys[i], &clocks[i]))
            .collect();
        let mut read = Read {
            keys,
            values,
            clocks,
            wait: Wait::Cut,
        };
        if behind.is_empty() {
            let step = self.cut(&mut read, view, now);
            return (read, step);
        }
        let again = behind.iter().map(|&i| read.keys[i].clone()).collect();
        read.wait = Wait::Behind(behind);
        (read, ReadStep::ReadKvs(again))
    }

    /// Whether `clock` misses some of what the session read or wrote of `key`.
    fn behind(&self, key: &Key, clock: &VectorClock) -> bool {
        self.meta
            .deps
            .get(key)
            .is_some_and(|need| !clock.covers(need))
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
            Wait::Behind(behind) => {
                for (i, v) in behind.into_iter().zip(answer) {
                    let clock = clock_of(v.as_ref());
                    if self.behind(&read.keys[i], &clock) {
                        return Err(error(
                            ErrorCode::StorageError,
                            format!(
                                "the store does not have the version of `{}` this session depends on",
                                read.keys[i]
                            ),
                        ));
                    }
                    read.values[i] = v;
                    read.clocks[i] = clock;
                }
                Ok(self.cut(read, view, now))
            }
            Wait::Cut => Ok(ReadStep::Serve(std::mem::take(&mut read.values))),
        }
    }

    fn fetched_pins(
        &mut self,
        read: &mut Read,
        missing: Vec<usize>,
        answer: Vec<Option<LatticeValue>>,
    ) -> Result<ReadStep, SessionError> {
        if answer.len() != missing.len() {
            return Err(error(
                ErrorCode::InternalError,
                "the home cache answered another number of keys".into(),
            ));
        }
        for (i, v) in missing.into_iter().zip(answer) {
            if let Some(&fp) = self.meta.pinned.get(&read.keys[i]) {
                if fingerprint(v.as_ref()) != fp {
                    return Err(error(
                        ErrorCode::SessionExpired,
                        format!(
                            "the version of `{}` this call pinned is gone (the session expired)",
                            read.keys[i]
                        ),
                    ));
                }
            }
            read.values[i] = v;
        }
        self.pinned_here(&read.keys, &read.values);
        Ok(ReadStep::Serve(std::mem::take(&mut read.values)))
    }

    /// Causal cut: dependencies `view` holds in an older version are refreshed; the
    /// dependencies (and what was read) join the session's; old ones are dropped.
    fn cut(&mut self, read: &mut Read, view: &impl LocalView, now: u64) -> ReadStep {
        let floor = self.floor(now);
        let mut stale: Vec<Key> = Vec::new();
        let deps = &mut self.meta.deps;
        let clocks = std::mem::take(&mut read.clocks);
        for ((k, v), clock) in read.keys.iter().zip(&read.values).zip(clocks) {
            if let Some(LatticeValue::MultiKeyCausal(m)) =
                v.as_ref().and_then(|v| v.live()).as_deref()
            {
                for (_, version) in m.versions().iter() {
                    for (dk, dc) in version.dependencies.iter() {
                        let recent = dc.get(WRITE_TIME) > floor;
                        if !recent || deps.get(dk).is_some_and(|c| c.covers(dc)) {
                            continue; // expired, or already checked in this session
                        }
                        let held_behind = view.held_clock(dk).is_some_and(|c| !c.covers(dc));
                        if held_behind && !stale.contains(dk) {
                            stale.push(dk.clone());
                        }
                        deps.merge_entry(dk.clone(), dc.clone());
                    }
                }
            }
            if !clock.is_empty() {
                deps.merge_entry(k.clone(), clock);
            }
        }
        if deps.iter().any(|(_, c)| c.get(WRITE_TIME) <= floor) {
            *deps = prune(deps, floor);
        }
        if stale.is_empty() {
            return ReadStep::Serve(std::mem::take(&mut read.values));
        }
        read.wait = Wait::Cut;
        ReadStep::ReadKvs(stale)
    }

    /// Causal write of `bytes` under `key`: its dot is above any of this node's the
    /// session, `view` or (the first time since this node started) the KVS knows of.
    pub fn write_causal(
        &self,
        key: Key,
        bytes: Bytes,
        view: &impl LocalView,
        dots: &mut DotTable,
        now: u64,
    ) -> WriteStep {
        let me = self.writer;
        let seen = self.meta.deps.get(&key).cloned().unwrap_or_default();
        let mut known = seen.max_dot(me);
        if let Some(held) = view.held_clock(&key) {
            known = known.max(held.max_dot(me));
        }
        let write = Write {
            key,
            bytes,
            seen,
            known,
        };
        if dots.knows(&write.key) {
            self.stamp(write, dots, now)
        } else {
            WriteStep::ReadKvs(write)
        }
    }

    /// The KVS's copy of the key a write waited for.
    pub fn feed_write(
        &self,
        mut write: Write,
        stored: Option<&LatticeValue>,
        dots: &mut DotTable,
        now: u64,
    ) -> WriteStep {
        write.known = write.known.max(clock_of(stored).max_dot(self.writer));
        self.stamp(write, dots, now)
    }

    /// The value of `write`: the session's clock of the key plus a new dot, with the
    /// session's recent dependencies on other keys.
    fn stamp(&self, write: Write, dots: &mut DotTable, now: u64) -> WriteStep {
        let Write {
            key,
            bytes,
            seen: mut clock,
            known,
        } = write;
        let floor = self.floor(now);
        let seq = dots.next(&key, known);
        clock.insert_dot(self.writer, seq);
        clock.advance_to(WRITE_TIME, now);
        let deps: Dependencies = self
            .meta
            .deps
            .iter()
            .filter(|(k, c)| **k != key && c.get(WRITE_TIME) > floor)
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        let value = LatticeValue::MultiKeyCausal(MultiKeyCausal::new(clock.clone(), deps, bytes));
        WriteStep::Write { key, value, clock }
    }

    /// A causal write was stored: later reads of `key` must cover it.
    pub fn wrote(&mut self, key: Key, clock: VectorClock) {
        self.meta.deps.merge_entry(key, clock);
    }
}

#[cfg(test)]
#[path = "session_core_tests.rs"]
mod tests;
