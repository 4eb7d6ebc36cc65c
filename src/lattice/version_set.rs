//! The maximal versions under the causal order: the shared core of the causal lattices.
//!
//! Why not "one vector clock + one set of values", as Anna's causal lattices store? That
//! form is not associative. With `w1 = ({a:1}, x)`, `w2 = ({b:1}, y)` and
//! `w3 = ({a:2}, z)` (w3 saw w1, not w2): `(w1 ⊔ w2) ⊔ w3` keeps `{x, y, z}` under one
//! merged clock, since w3 is concurrent with the merged `{a:1, b:1}`, but
//! `(w1 ⊔ w3) ⊔ w2 = {y, z}`. Keeping each version's own clock fixes this: the state is
//! the set of versions not strictly dominated by another, and merge is "union, then drop
//! the dominated ones", which is a lattice. A dominating write replaces, a concurrent one is
//! kept beside, a dominated one is ignored, and versions with equal clocks merge their
//! payloads `V` (itself a lattice).

use super::{ByteSize, Lattice, VectorClock, ENTRY_OVERHEAD_BYTES};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Versions keyed by vector clock, none strictly dominated by another (an antichain).
/// Bottom: no versions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VersionSet<V> {
    versions: BTreeMap<VectorClock, V>,
}

impl<V> Default for VersionSet<V> {
    fn default() -> Self {
        VersionSet {
            versions: BTreeMap::new(),
        }
    }
}

/// Where a version with a given clock would go.
enum Placement {
    /// A stored version strictly dominates it: ignore it.
    Dominated,
    /// A stored version has the same clock: merge the payloads.
    SameClock,
    /// It is new: insert it, dropping the versions it dominates.
    New,
}

impl<V> VersionSet<V> {
    /// No versions (bottom).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of concurrent versions.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// True if there is no version (bottom).
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// The versions, in the (arbitrary, canonical) order of their clocks.
    pub fn iter(&self) -> impl Iterator<Item = (&VectorClock, &V)> {
        self.versions.iter()
    }

    /// The join of every version's clock: what this value has seen.
    pub fn clock(&self) -> VectorClock {
        let mut clock = VectorClock::new();
        for c in self.versions.keys() {
            clock.merge_ref(c);
        }
        clock
    }

    fn placement(&self, clock: &VectorClock) -> Placement {
        if self.versions.contains_key(clock) {
            Placement::SameClock
        } else if self.versions.keys().any(|c| c.dominates(clock)) {
            Placement::Dominated
        } else {
            Placement::New
        }
    }

    fn insert_new(&mut self, clock: VectorClock, value: V) {
        self.versions.retain(|c, _| !clock.dominates(c));
        self.versions.insert(clock, value);
    }
}

impl<V: Lattice> VersionSet<V> {
    /// A single version.
    pub fn single(clock: VectorClock, value: V) -> Self {
        VersionSet {
            versions: BTreeMap::from([(clock, value)]),
        }
    }

    /// Merge in one version; true if `self` changed.
    pub fn insert(&mut self, clock: VectorClock, value: V) -> bool {
        match self.placement(&clock) {
            Placement::Dominated => false,
            Placement::SameClock => self
                .versions
                .get_mut(&clock)
                .is_some_and(|mine| mine.merge(value)),
            Placement::New => {
                self.insert_new(clock, value);
                true
            }
        }
    }
}

impl<V: Lattice> Lattice for VersionSet<V> {
    fn merge(&mut self, other: Self) -> bool {
        if self.versions.is_empty() {
            // `other` is already an antichain.
            let changed = !other.versions.is_empty();
            self.versions = other.versions;
            return changed;
        }
        let mut changed = false;
        for (clock, value) in other.versions {
            changed |= self.insert(clock, value);
        }
        changed
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for (clock, value) in &other.versions {
            changed |= match self.placement(clock) {
                Placement::Dominated => false,
                Placement::SameClock => self
                    .versions
                    .get_mut(clock)
                    .is_some_and(|mine| mine.merge_ref(value)),
                Placement::New => {
                    self.insert_new(clock.clone(), value.clone());
                    true
                }
            };
        }
        changed
    }
}

impl<V: ByteSize> ByteSize for VersionSet<V> {
    fn byte_size(&self) -> usize {
        let versions: usize = self
            .versions
            .iter()
            .map(|(c, v)| c.byte_size() + v.byte_size() + ENTRY_OVERHEAD_BYTES)
            .sum();
        std::mem::size_of::<Self>() + versions
    }
}

impl<V: Serialize> Serialize for VersionSet<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.versions.serialize(serializer)
    }
}

/// Decodes the versions and re-merges them, so that a peer cannot plant dominated versions.
impl<'de, V: Lattice + Deserialize<'de>> Deserialize<'de> for VersionSet<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<VectorClock, V>::deserialize(deserializer)?;
        let mut set = VersionSet::new();
        for (clock, value) in raw {
            set.insert(clock, value);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::{arb_vector_clock, clock, roundtrip};
    use crate::lattice::Max;
    use proptest::prelude::*;

    type Set = VersionSet<Max<u64>>;

    fn v(entries: &[(u64, u64)], value: u64) -> Set {
        VersionSet::single(clock(entries), Max::new(value))
    }

    #[test]
    fn the_counterexample_is_associative_here() {
        let (w1, w2, w3) = (v(&[(1, 1)], 1), v(&[(2, 1)], 2), v(&[(1, 2)], 3));
        check_laws(&[w1.clone(), w2.clone(), w3.clone()]).unwrap();
        let mut left = w1.clone();
        left.merge(w2.clone());
        left.merge(w3.clone());
        assert_eq!(left.len(), 2, "w1 is dominated by w3: {left:?}");
        assert_eq!(left.clock(), clock(&[(1, 2), (2, 1)]));
    }

    #[test]
    fn same_clock_merges_payloads() {
        let mut a = v(&[(1, 1)], 5);
        assert!(a.merge(v(&[(1, 1)], 7)));
        assert!(!a.merge(v(&[(1, 1)], 6)));
        assert_eq!(a, v(&[(1, 1)], 7));
    }

    #[test]
    fn decoding_drops_dominated_versions() {
        let raw: BTreeMap<VectorClock, Max<u64>> = [
            (clock(&[(1, 1)]), Max::new(1)),
            (clock(&[(1, 2)]), Max::new(2)),
        ]
        .into();
        let bytes = bincode::serde::encode_to_vec(&raw, bincode::config::standard()).unwrap();
        let (decoded, _): (Set, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(decoded, v(&[(1, 2)], 2));
    }

    fn arb_set() -> impl Strategy<Value = Set> {
        prop::collection::vec((arb_vector_clock(), 0u64..3), 0..4).prop_map(|versions| {
            let mut set = Set::new();
            for (c, x) in versions {
                set.insert(c, Max::new(x));
            }
            set
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn laws_hold_on_random_values(values in prop::collection::vec(arb_set(), 1..5)) {
            check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }

        #[test]
        fn roundtrips(s in arb_set()) {
            prop_assert_eq!(roundtrip(&s), s);
        }
    }
}
