//! Vector clock: writer id -> counter, merged by pointwise max, with a base watermark.
//!
//! # Meaning
//! A clock stands for a set of events, event `c` of writer `w` being `(w, c)`: the events
//! `(w, c)` with `c <= get(w)` for each stored writer, plus, for *every* writer, the events
//! with `c <= base()`. The base lets old entries be folded away ([`VectorClock::fold_before`]):
//! with wall-clock counters, "base `t`" reads "everything any writer did up to `t`". It is
//! stored in the same map under the reserved writer [`BASE`], so the wire form is a plain
//! map. [`covers`](VectorClock::covers) is inclusion of these sets and merge is their union.
//!
//! # Normal form
//! Many maps stand for the same set: `{base 10, a:5}` and `{base 10}`, or `{a:0}` and `{}`.
//! Such pairs cover each other yet differ by `==`, so the order would not be antisymmetric
//! and a [`VersionSet`](super::VersionSet) would keep both as distinct versions. Hence every
//! clock is kept normalised, on every path including decoding: no zero counter and no entry
//! other than the base's at or below the base. A normalised map is then determined by its
//! set (the base is the largest `b` such that every writer without an entry has all events
//! up to `b`; there are always such writers), so `==` is causal equality.

use super::{ByteSize, Lattice, ENTRY_OVERHEAD_BYTES};
use crate::ids::WriterId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::collections::btree_map::{BTreeMap, Entry};

/// The reserved writer whose entry in a [`VectorClock`] is its base: every writer's events
/// with a counter at or below it are included. No real writer may use this id (a writer id
/// derived from a hash must skip it); [`VectorClock::increment`] refuses it.
pub const BASE: WriterId = WriterId(0);

/// A vector clock. Bottom: the empty clock (base 0, all zeros).
///
/// The causal partial order is [`VectorClock::compare`]. The derived `Ord` is only an
/// arbitrary total order (lexicographic over the normalised entries) used to store clocks
/// canonically, e.g. as keys of a [`VersionSet`](super::VersionSet); it says nothing about
/// causality.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VectorClock {
    /// Normalised: no zero counter, no entry other than `BASE`'s at or below the base.
    counters: BTreeMap<WriterId, u64>,
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

    /// The stored counter of `writer` (zero if absent; the base for [`BASE`]). It does not
    /// account for the base: whether an event is included is [`VectorClock::includes`].
    pub fn get(&self, writer: WriterId) -> u64 {
        self.counters.get(&writer).copied().unwrap_or(0)
    }

    /// True if event `counter` of `writer` is included, by the base or by its entry.
    pub fn includes(&self, writer: WriterId, counter: u64) -> bool {
        counter <= self.base() || self.get(writer) >= counter
    }

    /// The largest counter, the base included (0 for bottom): how recent the clock is.
    pub fn max_counter(&self) -> u64 {
        self.counters.values().copied().max().unwrap_or(0)
    }

    /// Count one more event by `writer`; returns its new counter, which is above the base
    /// (saturates at `u64::MAX`). `writer` must not be [`BASE`]: in a release build that
    /// changes nothing and returns the base.
    pub fn increment(&mut self, writer: WriterId) -> u64 {
        self.advance_to(writer, 0)
    }

    /// Count one more event by `writer` with a counter of at least `at_least` (e.g. the
    /// wall clock in microseconds): sets its entry to the largest of its counter plus one,
    /// `at_least` and the base plus one, and returns it (saturates at `u64::MAX`).
    /// `writer` must not be [`BASE`]: in a release build that changes nothing and returns
    /// the base.
    pub fn advance_to(&mut self, writer: WriterId, at_least: u64) -> u64 {
        debug_assert_ne!(writer, BASE, "the base is not a writer");
        let base = self.base();
        if writer == BASE {
            return base;
        }
        let next = self
            .get(writer)
            .saturating_add(1)
            .max(at_least)
            .max(base.saturating_add(1));
        // Only `next == base == u64::MAX` is not above the base: that event is included.
        if next > base {
            self.counters.insert(writer, next);
        }
        next
    }

    /// Compact: raise the base to at least `base`, dropping the entries it covers; true if
    /// the clock changed. The result covers `self` (it may include more events).
    pub fn fold_before(&mut self, base: u64) -> bool {
        if base <= self.base() {
            return false;
        }
        self.counters.retain(|w, c| *w == BASE || *c > base);
        self.counters.insert(BASE, base);
        true
    }

    /// Number of stored entries, the base's included: the size that compaction bounds.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// True for the zero clock (bottom).
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// The stored entries in writer order: the base first, as `(BASE, base)`, if non-zero.
    /// Collecting them gives the clock back.
    pub fn iter(&self) -> impl Iterator<Item = (WriterId, u64)> + '_ {
        self.counters.iter().map(|(w, c)| (*w, *c))
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

    /// True if everything `other` saw, `self` saw too: `self`'s base is at least `other`'s
    /// and every entry of `other` is included in `self`. (For the base entry `(BASE, b)`,
    /// `includes` is just `b <= self.base()`.)
    pub fn covers(&self, other: &Self) -> bool {
        other.iter().all(|(w, c)| self.includes(w, c))
    }

    /// True if `self` strictly dominates `other` (covers it and differs).
    pub fn dominates(&self, other: &Self) -> bool {
        self.compare(other) == Some(Ordering::Greater)
    }

    /// True if neither clock covers the other.
    pub fn concurrent_with(&self, other: &Self) -> bool {
        self.compare(other).is_none()
    }

    /// Raise `writer`'s counter to at least `counter` (for [`BASE`]: fold), keeping the
    /// normal form; true if the clock changed.
    fn raise(&mut self, writer: WriterId, counter: u64) -> bool {
        if writer == BASE {
            return self.fold_before(counter);
        }
        if counter <= self.base() {
            return false;
        }
        match self.counters.entry(writer) {
            Entry::Vacant(e) => {
                e.insert(counter);
                true
            }
            Entry::Occupied(mut e) if *e.get() < counter => {
                e.insert(counter);
                true
            }
            Entry::Occupied(_) => false,
        }
    }
}

/// Collects `(writer, counter)` pairs, keeping the largest counter per writer and the
/// largest `(BASE, base)` as the base, then normalises (in any order of the pairs).
impl FromIterator<(WriterId, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (WriterId, u64)>>(iter: I) -> Self {
        let mut clock = VectorClock::new();
        for (w, c) in iter {
            clock.raise(w, c);
        }
        clock
    }
}

/// Bases: the larger; entries: pointwise max; then the entries at or below the base go.
impl Lattice for VectorClock {
    fn merge(&mut self, other: Self) -> bool {
        self.merge_ref(&other)
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        let mut changed = false;
        // The base entry comes first (`BASE` is the smallest id), so the fold happens before
        // the entries it makes redundant would be copied; `raise` is normalising either way.
        for (w, c) in other.iter() {
            changed |= self.raise(w, c);
        }
        changed
    }
}

impl ByteSize for VectorClock {
    fn byte_size(&self) -> usize {
        let entry = std::mem::size_of::<(WriterId, u64)>() + ENTRY_OVERHEAD_BYTES;
        std::mem::size_of::<Self>() + self.counters.len() * entry
    }
}

impl Serialize for VectorClock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.counters.serialize(serializer)
    }
}

/// Decodes a map and normalises it (drops zero counters and entries at or below the base),
/// so a peer cannot plant two encodings of one clock.
impl<'de> Deserialize<'de> for VectorClock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let counters = BTreeMap::<WriterId, u64>::deserialize(deserializer)?;
        Ok(counters.into_iter().collect())
    }
}

#[cfg(test)]
#[path = "vector_clock_tests.rs"]
mod tests;
