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
mod tests {
    use super::*;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::{arb_vector_clock, based, clock, roundtrip};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const A: u64 = 1;
    const B: u64 = 2;

    fn samples() -> Vec<VectorClock> {
        vec![
            clock(&[(A, 1)]),
            clock(&[(A, 2)]),
            clock(&[(B, 1)]),
            clock(&[(A, 1), (B, 1)]),
            clock(&[(A, 0), (3, u64::MAX)]),
            based(1, &[(B, 2)]),
            based(2, &[]),
            based(u64::MAX, &[]),
        ]
    }

    fn decode(raw: &[(u64, u64)]) -> VectorClock {
        let raw: BTreeMap<WriterId, u64> = raw.iter().map(|&(w, c)| (WriterId(w), c)).collect();
        let bytes = bincode::serde::encode_to_vec(&raw, bincode::config::standard()).unwrap();
        let (v, _): (VectorClock, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        v
    }

    #[test]
    fn laws_hold_on_hand_picked_values() {
        check_laws(&samples()).unwrap();
    }

    #[test]
    fn compare_is_the_causal_order() {
        let a = clock(&[(A, 1)]);
        let b = clock(&[(A, 2), (B, 1)]);
        let c = clock(&[(B, 2)]);
        assert_eq!(a.compare(&b), Some(Ordering::Less));
        assert_eq!(b.compare(&a), Some(Ordering::Greater));
        assert_eq!(a.compare(&a.clone()), Some(Ordering::Equal));
        assert_eq!(b.compare(&c), None);
        assert!(b.dominates(&a) && !a.dominates(&b) && !a.dominates(&a));
        assert!(b.concurrent_with(&c) && !a.concurrent_with(&b));
        assert!(b.covers(&a) && b.covers(&b) && !a.covers(&b));
        assert_eq!(VectorClock::new().compare(&a), Some(Ordering::Less));
    }

    #[test]
    fn the_base_includes_every_writer_up_to_it() {
        let compacted = based(10, &[(A, 12)]);
        let old = clock(&[(A, 5), (B, 7)]);
        assert!(compacted.covers(&old) && compacted.dominates(&old));
        assert!(
            !compacted.covers(&clock(&[(B, 11)])),
            "b:11 is above the base"
        );
        assert!(compacted.includes(WriterId(99), 10) && !compacted.includes(WriterId(99), 11));
        assert!(compacted.includes(WriterId(A), 12) && !compacted.includes(WriterId(A), 13));
        assert!(
            based(10, &[]).concurrent_with(&clock(&[(A, 11)])),
            "{{base 10}} lacks a:11, {{a:11}} lacks every other writer's 1..=10"
        );
        assert!(
            !based(3, &[]).covers(&based(4, &[])),
            "a base is never covered by entries"
        );
        assert!(based(4, &[(A, 9)]).covers(&based(3, &[(A, 9), (B, 4)])));
    }

    #[test]
    fn merge_takes_the_larger_base_and_drops_what_it_covers() {
        let mut v = clock(&[(A, 5)]);
        assert!(v.merge(based(6, &[])));
        assert_eq!(v, based(6, &[]));
        assert!(!v.merge(clock(&[(A, 5)])), "already included");
        assert!(!v.merge(based(2, &[(B, 6)])), "b:6 is at the base");
        assert!(v.merge(based(2, &[(B, 7)])));
        assert_eq!(v, based(6, &[(B, 7)]));
        assert!(v.merge(based(7, &[])));
        assert_eq!(v, based(7, &[]), "b:7 folded into the base");
    }

    #[test]
    fn fold_before_compacts() {
        let mut v = clock(&[(A, 3), (B, 8)]);
        assert!(v.fold_before(5));
        assert_eq!(v, based(5, &[(B, 8)]));
        assert!(
            !v.fold_before(4) && !v.fold_before(5),
            "the base never goes down"
        );
        assert!(v.fold_before(8));
        assert_eq!(v, based(8, &[]));
        assert_eq!((v.len(), v.max_counter()), (1, 8));
        assert!(!VectorClock::new().fold_before(0));
    }

    #[test]
    fn new_events_are_above_the_base() {
        let mut v = based(10, &[]);
        assert_eq!(v.increment(WriterId(A)), 11);
        assert_eq!(v.advance_to(WriterId(A), 5), 12);
        assert_eq!(v.advance_to(WriterId(A), 100), 100);
        assert_eq!(v.advance_to(WriterId(B), 0), 11);
        assert_eq!(v, based(10, &[(A, 100), (B, 11)]));
        assert_eq!(v.max_counter(), 100);
        let mut top = based(u64::MAX, &[]);
        assert_eq!(top.increment(WriterId(A)), u64::MAX, "saturates, no panic");
        assert_eq!(top, based(u64::MAX, &[]), "that event was already included");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "the base is not a writer")]
    fn incrementing_the_base_is_a_bug() {
        VectorClock::new().increment(BASE);
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn incrementing_the_base_changes_nothing_in_release() {
        let mut v = based(3, &[(A, 4)]);
        assert_eq!(v.increment(BASE), 3);
        assert_eq!(v.advance_to(BASE, 9), 3);
        assert_eq!(v, based(3, &[(A, 4)]));
    }

    #[test]
    fn increment_and_zero_entries() {
        let mut v = VectorClock::new();
        assert_eq!(v.max_counter(), 0);
        assert_eq!(v.increment(WriterId(7)), 1);
        assert_eq!(v.increment(WriterId(7)), 2);
        assert_eq!(v.get(WriterId(7)), 2);
        assert_eq!(v.get(WriterId(8)), 0);
        assert_eq!(
            clock(&[(A, 0)]),
            VectorClock::new(),
            "zero entries are not stored"
        );
        let mut top = clock(&[(A, u64::MAX)]);
        assert_eq!(top.increment(WriterId(A)), u64::MAX, "saturates, no panic");
    }

    #[test]
    fn decoding_normalises() {
        assert_eq!(decode(&[(A, 0), (B, 3)]), clock(&[(B, 3)]));
        assert_eq!(decode(&[(0, 10), (A, 3)]), based(10, &[]));
        assert_eq!(decode(&[(0, 10), (A, 10), (B, 11)]), based(10, &[(B, 11)]));
        assert_eq!(decode(&[(0, 0), (A, 3)]), clock(&[(A, 3)]));
        for v in samples() {
            assert_eq!(roundtrip(&v), v);
        }
    }

    /// The events of `v` among writers 1..=3 and one writer (9) that no strategy clock
    /// names, with counters up to one above the strategy's: enough to tell clocks apart.
    fn events(v: &VectorClock) -> BTreeSet<(u64, u64)> {
        let all = [1, 2, 3, 9]
            .into_iter()
            .flat_map(|w| (1..=5).map(move |c| (w, c)));
        all.filter(|&(w, c)| v.includes(WriterId(w), c)).collect()
    }

    /// No zero counter, no writer entry at or below the base.
    fn is_normal(v: &VectorClock) -> bool {
        v.iter().all(|(w, c)| c > 0 && (w == BASE || c > v.base()))
    }

    proptest! {
        // Cheap: enough cases that a based clock meets one with more, smaller entries.
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn laws_hold_on_random_values(values in prop::collection::vec(arb_vector_clock(), 1..5)) {
            check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }

        #[test]
        fn compare_agrees_with_merge(a in arb_vector_clock(), b in arb_vector_clock()) {
            let mut joined = a.clone();
            joined.merge_ref(&b);
            prop_assert_eq!(a.covers(&b), joined == a);
            prop_assert_eq!(a.compare(&b).map(Ordering::reverse), b.compare(&a));
            prop_assert_eq!(roundtrip(&a), a);
        }

        /// Covers is inclusion of event sets, merge is union, fold adds the events below
        /// the new base, and a normalised clock is determined by its events (antisymmetry).
        #[test]
        fn clocks_are_sets_of_events(a in arb_vector_clock(), b in arb_vector_clock(), t in 0u64..5) {
            let (ea, eb) = (events(&a), events(&b));
            prop_assert!(is_normal(&a));
            prop_assert_eq!(a.covers(&b), eb.is_subset(&ea));
            prop_assert_eq!(a == b, ea == eb);
            let mut joined = a.clone();
            joined.merge_ref(&b);
            prop_assert!(is_normal(&joined));
            prop_assert_eq!(events(&joined), &ea | &eb);
            let mut folded = a.clone();
            prop_assert_eq!(folded.fold_before(t), t > a.base());
            prop_assert!(is_normal(&folded));
            let below: BTreeSet<_> = events(&based(t, &[]));
            prop_assert_eq!(events(&folded), &ea | &below);
            prop_assert_eq!(a.iter().collect::<VectorClock>(), a.clone());
        }
    }
}
