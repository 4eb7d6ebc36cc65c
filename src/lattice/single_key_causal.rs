//! Single-key causal lattice: the value of a key under causal consistency, as concurrent
//! versions of opaque bytes, each with its vector clock.
//!
//! A write whose clock dominates replaces what it dominates, a concurrent write is kept
//! beside (the reader sees every concurrent value), and a dominated write is ignored.
//! Versions are kept per clock (see [`VersionSet`] for why a single merged clock is not a
//! lattice); [`SingleKeyCausal::clock`] is the join of their clocks.

use super::{ByteSize, Lattice, OrderedSet, VectorClock, VersionSet};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Concurrent versions of one key's bytes. Bottom: no version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SingleKeyCausal {
    versions: VersionSet<OrderedSet<Bytes>>,
}

impl SingleKeyCausal {
    /// One write of `value` at `clock`.
    pub fn new(clock: VectorClock, value: impl Into<Bytes>) -> Self {
        let values = OrderedSet::from_iter([value.into()]);
        SingleKeyCausal {
            versions: VersionSet::single(clock, values),
        }
    }

    /// Merge in one write; true if `self` changed.
    pub fn write(&mut self, clock: VectorClock, value: impl Into<Bytes>) -> bool {
        self.versions
            .insert(clock, OrderedSet::from_iter([value.into()]))
    }

    /// The join of the versions' clocks (what a reader has seen after reading this).
    pub fn clock(&self) -> VectorClock {
        self.versions.clock()
    }

    /// Every concurrent value, sorted and without duplicates.
    pub fn values(&self) -> Vec<&Bytes> {
        let mut values: Vec<&Bytes> = self.versions.iter().flat_map(|(_, s)| s.iter()).collect();
        values.sort();
        values.dedup();
        values
    }

    /// The versions themselves: clock -> values written at that clock.
    pub fn versions(&self) -> &VersionSet<OrderedSet<Bytes>> {
        &self.versions
    }
}

impl Lattice for SingleKeyCausal {
    fn merge(&mut self, other: Self) -> bool {
        self.versions.merge(other.versions)
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        self.versions.merge_ref(&other.versions)
    }
}

impl ByteSize for SingleKeyCausal {
    fn byte_size(&self) -> usize {
        self.versions.byte_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::{arb_single_key_causal, clock, roundtrip};
    use proptest::prelude::*;

    fn w(entries: &[(u64, u64)], value: &'static str) -> SingleKeyCausal {
        SingleKeyCausal::new(clock(entries), Bytes::from_static(value.as_bytes()))
    }

    fn values(s: &SingleKeyCausal) -> Vec<&str> {
        s.values()
            .into_iter()
            .map(|b| std::str::from_utf8(b).unwrap_or("?"))
            .collect()
    }

    fn samples() -> Vec<SingleKeyCausal> {
        vec![
            w(&[(1, 1)], "a"),
            w(&[(1, 1)], "b"), // same clock, other value
            w(&[(2, 1)], "c"),
            w(&[(1, 2), (2, 1)], "d"),
            w(&[], "e"), // a write at the zero clock
        ]
    }

    #[test]
    fn laws_hold_on_hand_picked_values() {
        check_laws(&samples()).unwrap();
    }

    #[test]
    fn dominating_write_replaces() {
        let mut s = w(&[(1, 1)], "old");
        assert!(s.merge(w(&[(1, 2)], "new")));
        assert_eq!(values(&s), vec!["new"]);
        assert_eq!(s.clock(), clock(&[(1, 2)]));
    }

    #[test]
    fn concurrent_write_unions() {
        let mut s = w(&[(1, 1)], "x");
        assert!(s.merge(w(&[(2, 1)], "y")));
        assert_eq!(values(&s), vec!["x", "y"]);
        assert_eq!(s.clock(), clock(&[(1, 1), (2, 1)]));
        assert!(
            s.write(clock(&[(1, 2), (2, 1)]), "z"),
            "a write that saw both wins"
        );
        assert_eq!(values(&s), vec!["z"]);
    }

    #[test]
    fn dominated_write_is_ignored() {
        let mut s = w(&[(1, 3), (2, 1)], "current");
        assert!(!s.merge(w(&[(1, 2)], "stale")));
        assert!(!s.merge(SingleKeyCausal::default()));
        assert_eq!(values(&s), vec!["current"]);
    }

    #[test]
    fn bincode_roundtrip() {
        for v in samples() {
            assert_eq!(roundtrip(&v), v);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn laws_hold_on_random_values(values in prop::collection::vec(arb_single_key_causal(), 1..5)) {
            check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }

        #[test]
        fn roundtrips(v in arb_single_key_causal()) {
            prop_assert_eq!(roundtrip(&v), v);
        }
    }
}
