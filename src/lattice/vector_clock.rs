//! Vector clock: writer id -> counter, merged by pointwise max.
//!
//! Writers are [`WriterId`]s (a `u64`: an executor, a client session, ...). A missing entry
//! means zero; zero entries are never stored (not even when decoding), so `==` is causal
//! equality.

use super::{ByteSize, Lattice, ENTRY_OVERHEAD_BYTES};
use crate::ids::WriterId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::collections::btree_map::{BTreeMap, Entry};

/// A vector clock. Bottom: the empty clock (all zeros).
///
/// The causal partial order is [`VectorClock::compare`]. The derived `Ord` is only an
/// arbitrary total order (lexicographic over entries) used to store clocks canonically,
/// e.g. as keys of a [`VersionSet`](super::VersionSet); it says nothing about causality.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VectorClock {
    counters: BTreeMap<WriterId, u64>,
}

impl VectorClock {
    /// The zero clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of `writer` (zero if absent).
    pub fn get(&self, writer: WriterId) -> u64 {
        self.counters.get(&writer).copied().unwrap_or(0)
    }

    /// Count one more event by `writer`; returns its new counter (saturates at `u64::MAX`).
    pub fn increment(&mut self, writer: WriterId) -> u64 {
        let counter = self.counters.entry(writer).or_insert(0);
        *counter = counter.saturating_add(1);
        *counter
    }

    /// Number of writers with a non-zero counter.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// True for the zero clock (bottom).
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// The non-zero entries in writer order.
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

    /// True if `self >= other` pointwise: everything `other` saw, `self` saw too.
    pub fn covers(&self, other: &Self) -> bool {
        other.counters.len() <= self.counters.len()
            && other.counters.iter().all(|(w, c)| self.get(*w) >= *c)
    }

    /// True if `self` strictly dominates `other` (covers it and differs).
    pub fn dominates(&self, other: &Self) -> bool {
        self.compare(other) == Some(Ordering::Greater)
    }

    /// True if neither clock covers the other.
    pub fn concurrent_with(&self, other: &Self) -> bool {
        self.compare(other).is_none()
    }

    /// Raise `writer`'s counter to at least `counter`; true if it changed.
    fn raise(&mut self, writer: WriterId, counter: u64) -> bool {
        if counter == 0 {
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

/// Collects `(writer, counter)` pairs, keeping the largest counter per writer.
impl FromIterator<(WriterId, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (WriterId, u64)>>(iter: I) -> Self {
        let mut clock = VectorClock::new();
        for (w, c) in iter {
            clock.raise(w, c);
        }
        clock
    }
}

impl Lattice for VectorClock {
    fn merge(&mut self, other: Self) -> bool {
        self.merge_ref(&other)
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for (w, c) in &other.counters {
            changed |= self.raise(*w, *c);
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

/// Decodes a map and drops zero counters, keeping the "no zero entries" invariant.
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
    use crate::lattice::strategies::{arb_vector_clock, clock, roundtrip};
    use proptest::prelude::*;

    fn samples() -> Vec<VectorClock> {
        vec![
            clock(&[(1, 1)]),
            clock(&[(1, 2)]),
            clock(&[(2, 1)]),
            clock(&[(1, 1), (2, 1)]),
            clock(&[(1, 0), (3, u64::MAX)]),
        ]
    }

    #[test]
    fn laws_hold_on_hand_picked_values() {
        check_laws(&samples()).unwrap();
    }

    #[test]
    fn compare_is_the_causal_order() {
        let a = clock(&[(1, 1)]);
        let b = clock(&[(1, 2), (2, 1)]);
        let c = clock(&[(2, 2)]);
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
    fn increment_and_zero_entries() {
        let mut v = VectorClock::new();
        assert_eq!(v.increment(WriterId(7)), 1);
        assert_eq!(v.increment(WriterId(7)), 2);
        assert_eq!(v.get(WriterId(7)), 2);
        assert_eq!(v.get(WriterId(8)), 0);
        assert_eq!(
            clock(&[(1, 0)]),
            VectorClock::new(),
            "zero entries are not stored"
        );
        let mut top = clock(&[(1, u64::MAX)]);
        assert_eq!(top.increment(WriterId(1)), u64::MAX, "saturates, no panic");
    }

    #[test]
    fn decoding_drops_zero_counters() {
        let raw: BTreeMap<WriterId, u64> = [(WriterId(1), 0), (WriterId(2), 3)].into();
        let bytes = bincode::serde::encode_to_vec(&raw, bincode::config::standard()).unwrap();
        let (v, _): (VectorClock, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(v, clock(&[(2, 3)]));
        for v in samples() {
            assert_eq!(roundtrip(&v), v);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
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
    }
}
