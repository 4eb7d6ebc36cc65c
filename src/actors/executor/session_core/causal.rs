//! Distributed-session causal: the session order, the causal cut and the stamping of a
//! write with this node's next dot.

use super::{
    clock_of, error, prune, DotTable, LocalView, Read, ReadStep, SessionCore, SessionError, Wait,
    WRITE_TIME,
};
use crate::ids::Key;
use crate::lattice::{Dependencies, LatticeValue, MultiKeyCausal, VectorClock};
use crate::protocol::ErrorCode;
use bytes::Bytes;

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

impl SessionCore {
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

    /// The KVS's answer for the positions `behind` of `read`: it must cover the session's
    /// past (the store has every acknowledged write), then the causal cut runs.
    pub(super) fn reread(
        &mut self,
        read: &mut Read,
        behind: Vec<usize>,
        answer: Vec<Option<LatticeValue>>,
        view: &impl LocalView,
        now: u64,
    ) -> Result<ReadStep, SessionError> {
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
