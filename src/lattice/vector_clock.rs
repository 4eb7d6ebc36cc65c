//! Vector clock: writer id -> counter, merged by pointwise max, with a base watermark and
//! clouds of single events.
//!
//! # Meaning
//! A clock stands for a set of events, event `c` of writer `w` being `(w, c)`. Each writer
//! has a contiguous *prefix*, the events `1..=p`, plus a *cloud* of single events above it;
//! for *every* writer the prefix is at least the base: `p = max(base(), get(w))`. The base
//! lets old entries be folded away ([`VectorClock::fold_before`]): with wall-clock counters,
//! "base `t`" reads "everything any writer did up to `t`". It is stored in the counter map
//! under the reserved writer [`BASE`]. [`covers`](VectorClock::covers) is inclusion of these
//! sets and merge is their union.
//!
//! The cloud exists for *dots*: when a node numbers its writes of a key `(N, 1), (N, 2), ...`
//! and two sessions write `(N, 4)` and `(N, 5)` without seeing each other, the history of the
//! second holds `(N, 5)` but not `(N, 4)`. A prefix alone would claim `(N, 4)` too and make
//! the two versions look ordered; the cloud records exactly the events seen.
//!
//! # Normal form
//! Many representations stand for the same set: `{base 10, a:5}` and `{base 10}`, `{a:0}`
//! and `{}`, or `{a:3, cloud a:{4}}` and `{a:4}`. Such pairs cover each other yet differ by
//! `==`, so the order would not be antisymmetric and a [`VersionSet`](super::VersionSet)
//! would keep both as distinct versions. Hence every clock is kept normalised, on every path
//! including decoding: no zero counter; no entry other than the base's at or below the base;
//! no empty cloud, no cloud under [`BASE`], and every cloud event of `w` above `p + 1` (a
//! cloud event at `p + 1` is folded into the prefix, repeatedly). A normalised clock is then
//! determined by its set (the base is the largest `b` such that every writer without an
//! entry has all events up to `b`, and there are always such writers; then each prefix is the
//! longest run `1..=p` in the set, and the cloud is the rest), so `==` is causal equality.

use super::{ByteSize, Lattice, ENTRY_OVERHEAD_BYTES};
use crate::ids::WriterId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// The reserved writer whose entry in a [`VectorClock`] is its base: every writer's events
/// with a counter at or below it are included. No real writer may use this id (a writer id
/// derived from a hash must skip it); [`VectorClock::increment`] and
/// [`VectorClock::insert_dot`] refuse it.
pub const BASE: WriterId = WriterId(0);

/// A vector clock. Bottom: the empty clock (base 0, all zeros, no clouds).
///
/// The causal partial order is [`VectorClock::compare`]. The derived `Ord` is only an
/// arbitrary total order (lexicographic over the normalised fields) used to store clocks
/// canonically, e.g. as keys of a [`VersionSet`](super::VersionSet); it says nothing about
/// causality.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VectorClock {
    /// Prefix counters and the base. Normalised: no zero counter, no entry other than
    /// `BASE`'s at or below the base.
    counters: BTreeMap<WriterId, u64>,
    /// Single events above each writer's prefix `p`. Normalised: no `BASE` key, no empty
    /// set, every element above `p + 1`.
    clouds: BTreeMap<WriterId, BTreeSet<u64>>,
}

impl VectorClock {
    /// The zero clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The base: every writer's events with a counter at or below it are included.
    pub fn base(&self) -> u64 {
        self.counters.get(&BASE).copied().unwrap_or(0)
    }

    /// The stored prefix counter of `writer` (zero if absent; the base for [`BASE`]). It
    /// accounts for neither the base nor the cloud: whether an event is included is
    /// [`VectorClock::contains`], the largest event is [`VectorClock::max_dot`].
    pub fn get(&self, writer: WriterId) -> u64 {
        self.counters.get(&writer).copied().unwrap_or(0)
    }

    /// The contiguous prefix of `writer`: all of its events `1..=prefix` are included (and,
    /// in normal form, event `prefix + 1` is not).
    fn prefix(&self, writer: WriterId) -> u64 {
        self.get(writer).max(self.base())
    }

    /// True if event `counter` of `writer` is included: by the base, the prefix or the
    /// cloud. (Counter 0 is no event and always "included".)
    pub fn contains(&self, writer: WriterId, counter: u64) -> bool {
        counter <= self.prefix(writer)
            || self
                .clouds
                .get(&writer)
                .is_some_and(|cloud| cloud.contains(&counter))
    }

    /// Alias of [`VectorClock::contains`] (the name callers used before clouds).
    pub fn includes(&self, writer: WriterId, counter: u64) -> bool {
        self.contains(writer, counter)
    }

    /// The largest included event of `writer`: the largest of its prefix (the base counts as
    /// prefix) and its cloud; the base for [`BASE`].
    pub fn max_dot(&self, writer: WriterId) -> u64 {
        let cloud = self.clouds.get(&writer).and_then(|c| c.last().copied());
        self.prefix(writer).max(cloud.unwrap_or(0))
    }

    /// The largest counter, the base and the clouds included (0 for bottom): how recent
    /// the clock is.
    pub fn max_counter(&self) -> u64 {
        let counters = self.counters.values().copied();
        let clouds = self.clouds.values().filter_map(|c| c.last().copied());
        counters.chain(clouds).max().unwrap_or(0)
    }

    /// Count one more event by `writer`; returns its new counter, which is above the base
    /// and every included event of `writer` (saturates at `u64::MAX`). `writer` must not be
    /// [`BASE`]: in a release build that changes nothing and returns the base.
    pub fn increment(&mut self, writer: WriterId) -> u64 {
        self.advance_to(writer, 0)
    }

    /// Count one more event by `writer` with a counter of at least `at_least` (e.g. the
    /// wall clock in microseconds): sets its prefix to the largest of its
    /// [`max_dot`](VectorClock::max_dot) plus one and `at_least`, and returns it (saturates
    /// at `u64::MAX`). This claims *all* events `1..=counter` of `writer`, so its cloud goes:
    /// right for a writer that counts its own events, not for adding one dot of a history
    /// (that is [`VectorClock::insert_dot`]). `writer` must not be [`BASE`]: in a release
    /// build that changes nothing and returns the base.
    pub fn advance_to(&mut self, writer: WriterId, at_least: u64) -> u64 {
        debug_assert_ne!(writer, BASE, "the base is not a writer");
        let base = self.base();
        if writer == BASE {
            return base;
        }
        let next = self.max_dot(writer).saturating_add(1).max(at_least);
        // Only `next == base == u64::MAX` is not above the base: that event is included.
        if next > base {
            self.counters.insert(writer, next);
            self.clouds.remove(&writer);
        }
        next
    }

    /// Add the single event `(writer, counter)`, folding it into the prefix if it extends
    /// it; true if it was not included yet. `writer` must not be [`BASE`]: in a release
    /// build that changes nothing and returns false.
    pub fn insert_dot(&mut self, writer: WriterId, counter: u64) -> bool {
        debug_assert_ne!(writer, BASE, "the base is not a writer");
        self.add_dot(writer, counter)
    }

    /// [`VectorClock::insert_dot`] without the assertion, for untrusted input: a dot under
    /// [`BASE`] is ignored.
    fn add_dot(&mut self, writer: WriterId, counter: u64) -> bool {
        if writer == BASE || self.contains(writer, counter) {
            return false;
        }
        self.clouds.entry(writer).or_default().insert(counter);
        self.settle(writer);
        true
    }

    /// Compact: raise the base to at least `base`, dropping the entries and cloud events it
    /// covers; true if the clock changed. The result covers `self` (it may include more
    /// events).
    pub fn fold_before(&mut self, base: u64) -> bool {
        if base <= self.base() {
            return false;
        }
        self.counters.retain(|w, c| *w == BASE || *c > base);
        self.counters.insert(BASE, base);
        let clouded: Vec<WriterId> = self.clouds.keys().copied().collect();
        for w in clouded {
            self.settle(w);
        }
        true
    }

    /// Number of stored entries, the base's and every cloud event included: the size that
    /// compaction bounds.
    pub fn len(&self) -> usize {
        self.counters.len() + self.cloud_len()
    }

    /// Number of cloud events (single events above a prefix), over all writers.
    pub fn cloud_len(&self) -> usize {
        self.clouds.values().map(BTreeSet::len).sum()
    }

    /// True for the zero clock (bottom).
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.clouds.is_empty()
    }

    /// The stored prefix entries in writer order: the base first, as `(BASE, base)`, if
    /// non-zero. Collecting them gives the clock back without its clouds
    /// ([`VectorClock::dots`]).
    pub fn iter(&self) -> impl Iterator<Item = (WriterId, u64)> + '_ {
        self.counters.iter().map(|(w, c)| (*w, *c))
    }

    /// The cloud events `(writer, counter)`, in order: inserting them with
    /// [`VectorClock::insert_dot`] into the collected [`iter`](VectorClock::iter) gives the
    /// clock back.
    pub fn dots(&self) -> impl Iterator<Item = (WriterId, u64)> + '_ {
        self.clouds
            .iter()
            .flat_map(|(w, cloud)| cloud.iter().map(move |c| (*w, *c)))
    }

    /// Causal comparison: `Less` if `self` happened before `other`, `Greater` if after,
    /// `Equal` if the same, `None` if concurrent.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        match (self.covers(other), other.covers(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Greater),
            (false, true) => Some(Ordering::Less),
            (false, false) => None,
        }
    }

    /// True if everything `other` saw, `self` saw too: `self`'s base is at least `other`'s,
    /// each prefix of `other` is within `self`'s prefix (exact: in normal form the event just
    /// above `self`'s prefix is missing), and each cloud event of `other` is included.
    pub fn covers(&self, other: &Self) -> bool {
        other.base() <= self.base()
            && other.iter().all(|(w, c)| w == BASE || c <= self.prefix(w))
            && other.dots().all(|(w, c)| self.contains(w, c))
    }

    /// True if `self` strictly dominates `other` (covers it and differs).
    pub fn dominates(&self, other: &Self) -> bool {
        self.compare(other) == Some(Ordering::Greater)
    }

    /// True if neither clock covers the other.
    pub fn concurrent_with(&self, other: &Self) -> bool {
        self.compare(other).is_none()
    }

    /// Raise `writer`'s prefix to at least `counter` (for [`BASE`]: fold), keeping the
    /// normal form; true if the clock changed.
    fn raise(&mut self, writer: WriterId, counter: u64) -> bool {
        if writer == BASE {
            return self.fold_before(counter);
        }
        if counter <= self.prefix(writer) {
            return false;
        }
        self.counters.insert(writer, counter);
        self.settle(writer);
        true
    }

    /// Restore the normal form of `writer`'s prefix and cloud after its prefix, its cloud or
    /// the base grew: drop cloud events within the prefix, fold those that extend it (at
    /// most one step per cloud event), and drop a prefix at or below the base.
    fn settle(&mut self, writer: WriterId) {
        let base = self.base();
        let mut prefix = self.prefix(writer);
        if let Some(cloud) = self.clouds.get_mut(&writer) {
            while let Some(&first) = cloud.first() {
                if first > prefix.saturating_add(1) {
                    break;
                }
                cloud.pop_first();
                prefix = prefix.max(first);
            }
            if cloud.is_empty() {
                self.clouds.remove(&writer);
            }
        }
        if prefix > base {
            self.counters.insert(writer, prefix);
        } else {
            self.counters.remove(&writer);
        }
    }
}

/// Collects `(writer, counter)` prefix entries, keeping the largest counter per writer and
/// the largest `(BASE, base)` as the base, then normalises (in any order of the pairs).
impl FromIterator<(WriterId, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (WriterId, u64)>>(iter: I) -> Self {
        let mut clock = VectorClock::new();
        for (w, c) in iter {
            clock.raise(w, c);
        }
        clock
    }
}

/// Union of the event sets: bases and prefixes by max, clouds by union, then normalised.
impl Lattice for VectorClock {
    fn merge(&mut self, other: Self) -> bool {
        self.merge_ref(&other)
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        let mut changed = false;
        // The base entry comes first (`BASE` is the smallest id), so the fold happens before
        // the entries it makes redundant would be copied; every step is normalising and
        // reports whether it added events, so `changed` is exact.
        for (w, c) in other.iter() {
            changed |= self.raise(w, c);
        }
        for (w, c) in other.dots() {
            changed |= self.add_dot(w, c);
        }
        changed
    }
}

impl ByteSize for VectorClock {
    fn byte_size(&self) -> usize {
        let entry = std::mem::size_of::<(WriterId, u64)>() + ENTRY_OVERHEAD_BYTES;
        let cloud = std::mem::size_of::<(WriterId, BTreeSet<u64>)>() + ENTRY_OVERHEAD_BYTES;
        let dot = std::mem::size_of::<u64>() + ENTRY_OVERHEAD_BYTES;
        std::mem::size_of::<Self>()
            + self.counters.len() * entry
            + self.clouds.len() * cloud
            + self.cloud_len() * dot
    }
}

/// The wire form, borrowed for encoding: the counter map, then the clouds (one byte in
/// bincode when there are none).
#[derive(Serialize)]
struct WireRef<'a> {
    counters: &'a BTreeMap<WriterId, u64>,
    clouds: &'a BTreeMap<WriterId, BTreeSet<u64>>,
}

/// The wire form as decoded: anything a peer sends, normalised afterwards.
#[derive(Deserialize)]
struct Wire {
    counters: BTreeMap<WriterId, u64>,
    clouds: BTreeMap<WriterId, Vec<u64>>,
}

impl Serialize for VectorClock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireRef {
            counters: &self.counters,
            clouds: &self.clouds,
        }
        .serialize(serializer)
    }
}

/// Decodes the counters and clouds and re-merges them into a normalised clock (drops zero
/// counters, entries at or below the base, cloud events already included, clouds under
/// [`BASE`]; folds cloud events that extend a prefix), so a peer cannot plant two encodings
/// of one clock. Cost: linear in the input (times a log), whatever the numbers.
impl<'de> Deserialize<'de> for VectorClock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let mut clock: VectorClock = wire.counters.into_iter().collect();
        for (w, cloud) in wire.clouds {
            for c in cloud {
                clock.add_dot(w, c);
            }
        }
        Ok(clock)
    }
}

#[cfg(test)]
#[path = "vector_clock_tests.rs"]
mod tests;
