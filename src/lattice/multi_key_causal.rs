//! Multi-key causal lattice: like [`SingleKeyCausal`](super::SingleKeyCausal), plus each
//! version's dependencies (key -> the vector clock of the version of that key it read), so
//! a cache exposes a key only once its dependencies are visible (a causal cut).
//!
//! Same dominance rule: a dominating write replaces, a concurrent one is kept beside, a
//! dominated one is ignored; writes with the same clock union their values and merge their
//! dependencies. [`MultiKeyCausal::dependencies`] merges the dependencies of every version.

use super::{ByteSize, Lattice, Map, OrderedSet, VectorClock, VersionSet};
use crate::ids::Key;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Key -> the clock of the version of that key a write depends on.
pub type Dependencies = Map<Key, VectorClock>;

/// The payload of one version: its dependencies and its values (a product lattice).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultiKeyVersion {
    /// What the writer had read when it wrote.
    pub dependencies: Dependencies,
    /// The values written at this clock (one, unless a writer reused a clock).
    pub values: OrderedSet<Bytes>,
}

impl Lattice for MultiKeyVersion {
    fn merge(&mut self, other: Self) -> bool {
        let deps = self.dependencies.merge(other.dependencies);
        self.values.merge(other.values) | deps
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        let deps = self.dependencies.merge_ref(&other.dependencies);
        self.values.merge_ref(&other.values) | deps
    }
}

impl ByteSize for MultiKeyVersion {
    fn byte_size(&self) -> usize {
        self.dependencies.byte_size() + self.values.byte_size()
    }
}

/// Concurrent versions of one key's bytes with their dependencies. Bottom: no version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MultiKeyCausal {
    versions: VersionSet<MultiKeyVersion>,
}

impl MultiKeyCausal {
    /// One write of `value` at `clock`, having read `dependencies`.
    pub fn new(clock: VectorClock, dependencies: Dependencies, value: impl Into<Bytes>) -> Self {
        let mut this = MultiKeyCausal::default();
        this.write(clock, dependencies, value);
        this
    }

    /// Merge in one write; true if `self` changed.
    pub fn write(
        &mut self,
        clock: VectorClock,
        dependencies: Dependencies,
        value: impl Into<Bytes>,
    ) -> bool {
        let version = MultiKeyVersion {
            dependencies,
            values: OrderedSet::from_iter([value.into()]),
        };
        self.versions.insert(clock, version)
    }

    /// The join of the versions' clocks.
    pub fn clock(&self) -> VectorClock {
        self.versions.clock()
    }

    /// The dependencies of every version, merged key-wise.
    pub fn dependencies(&self) -> Dependencies {
        let mut deps = Dependencies::new();
        for (_, version) in self.versions.iter() {
            deps.merge_ref(&version.dependencies);
        }
        deps
    }

    /// Every concurrent value, sorted and without duplicates.
    pub fn values(&self) -> Vec<&Bytes> {
        let mut values: Vec<&Bytes> = self
            .versions
            .iter()
            .flat_map(|(_, v)| v.values.iter())
            .collect();
        values.sort();
        values.dedup();
        values
    }

    /// The versions themselves: clock -> dependencies and values.
    pub fn versions(&self) -> &VersionSet<MultiKeyVersion> {
        &self.versions
    }
}

impl Lattice for MultiKeyCausal {
    fn merge(&mut self, other: Self) -> bool {
        self.versions.merge(other.versions)
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        self.versions.merge_ref(&other.versions)
    }
}

impl ByteSize for MultiKeyCausal {
    fn byte_size(&self) -> usize {
        self.versions.byte_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::{arb_multi_key_causal, clock, deps, roundtrip};
    use proptest::prelude::*;

    fn w(c: &[(u64, u64)], d: &[(&str, &[(u64, u64)])], value: &'static str) -> MultiKeyCausal {
        MultiKeyCausal::new(clock(c), deps(d), Bytes::from_static(value.as_bytes()))
    }

    fn samples() -> Vec<MultiKeyCausal> {
        vec![
            w(&[(1, 1)], &[("k", &[(1, 1)])], "a"),
            w(&[(1, 1)], &[("k", &[(2, 1)]), ("j", &[(1, 1)])], "a"), // same clock, other deps
            w(&[(2, 1)], &[], "b"),
            w(&[(1, 2), (2, 1)], &[("j", &[(3, 3)])], "c"),
        ]
    }

    #[test]
    fn laws_hold_on_hand_picked_values() {
        check_laws(&samples()).unwrap();
    }

    #[test]
    fn dominance_rule_and_dependency_merge() {
        let mut s = w(&[(1, 1)], &[("k", &[(1, 1)])], "x");
        assert!(s.merge(w(&[(2, 1)], &[("k", &[(2, 5)]), ("j", &[(1, 1)])], "y")));
        assert_eq!(s.values().len(), 2, "concurrent writes are both kept");
        assert_eq!(
            s.dependencies(),
            deps(&[("k", &[(1, 1), (2, 5)]), ("j", &[(1, 1)])]),
            "dependencies of concurrent versions merge key-wise"
        );
        assert!(
            !s.merge(w(&[(1, 1)], &[], "x")),
            "dominated or equal: ignored"
        );
        assert!(s.merge(w(&[(1, 2), (2, 1)], &[("j", &[(9, 9)])], "z")));
        assert_eq!(s.values(), vec![&Bytes::from_static(b"z")]);
        assert_eq!(
            s.dependencies(),
            deps(&[("j", &[(9, 9)])]),
            "replaced with the write"
        );
    }

    #[test]
    fn same_clock_merges_dependencies() {
        let mut s = w(&[(1, 1)], &[("k", &[(1, 1)])], "x");
        assert!(s.merge(w(&[(1, 1)], &[("j", &[(2, 2)])], "x")));
        assert_eq!(s.versions().len(), 1);
        assert_eq!(
            s.dependencies(),
            deps(&[("k", &[(1, 1)]), ("j", &[(2, 2)])])
        );
    }

    #[test]
    fn bincode_roundtrip() {
        for v in samples() {
            assert_eq!(roundtrip(&v), v);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn laws_hold_on_random_values(values in prop::collection::vec(arb_multi_key_causal(), 1..5)) {
            check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }

        #[test]
        fn roundtrips(v in arb_multi_key_causal()) {
            prop_assert_eq!(roundtrip(&v), v);
        }
    }
}
