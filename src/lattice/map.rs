//! Map lattice: key-wise merge of an inner lattice. A key missing on one side is taken from
//! the other; a key on both sides merges its values.

use super::{ByteSize, Lattice, ENTRY_OVERHEAD_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::btree_map::{BTreeMap, Entry};

/// A map from `K` to lattice values `V`, ordered by key. Bottom: the empty map.
///
/// A key bound to `V::default()` is still a key (it differs from an absent key).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[serde(bound(
    serialize = "K: Serialize + Ord, V: Serialize",
    deserialize = "K: Deserialize<'de> + Ord, V: Deserialize<'de>"
))]
pub struct Map<K: Ord, V> {
    entries: BTreeMap<K, V>,
}

impl<K: Ord, V> Default for Map<K, V> {
    fn default() -> Self {
        Map {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord, V> Map<K, V> {
    /// The empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value at `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the map has no keys (bottom).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> {
        self.entries.iter()
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.entries.keys()
    }
}

impl<K: Ord, V: Lattice> Map<K, V> {
    /// Merge `value` into the entry at `key` (inserting it if absent); true if changed.
    pub fn merge_entry(&mut self, key: K, value: V) -> bool {
        match self.entries.entry(key) {
            Entry::Vacant(e) => {
                e.insert(value);
                true
            }
            Entry::Occupied(mut e) => e.get_mut().merge(value),
        }
    }
}

/// Collects entries, merging the values of repeated keys.
impl<K: Ord, V: Lattice> FromIterator<(K, V)> for Map<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = Map::new();
        for (k, v) in iter {
            map.merge_entry(k, v);
        }
        map
    }
}

impl<K, V> Lattice for Map<K, V>
where
    K: Ord + Clone + std::fmt::Debug,
    V: Lattice,
{
    fn merge(&mut self, other: Self) -> bool {
        if self.entries.is_empty() {
            let changed = !other.entries.is_empty();
            self.entries = other.entries;
            return changed;
        }
        let mut changed = false;
        for (k, v) in other.entries {
            changed |= self.merge_entry(k, v);
        }
        changed
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for (k, v) in &other.entries {
            match self.entries.get_mut(k) {
                Some(mine) => changed |= mine.merge_ref(v),
                None => {
                    self.entries.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
        }
        changed
    }
}

impl<K: Ord + ByteSize, V: ByteSize> ByteSize for Map<K, V> {
    fn byte_size(&self) -> usize {
        let entries: usize = self
            .entries
            .iter()
            .map(|(k, v)| k.byte_size() + v.byte_size() + ENTRY_OVERHEAD_BYTES)
            .sum();
        std::mem::size_of::<Self>() + entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::{arb_map, roundtrip};
    use crate::lattice::Max;
    use proptest::prelude::*;

    fn map(entries: &[(u64, i64)]) -> Map<u64, Max<i64>> {
        entries.iter().map(|&(k, v)| (k, Max::new(v))).collect()
    }

    fn samples() -> Vec<Map<u64, Max<i64>>> {
        vec![
            map(&[(1, 1)]),
            map(&[(1, 2)]),
            map(&[(1, 0), (2, 5)]),
            map(&[(2, 5), (3, -1)]),
            [(4, Max::default())].into_iter().collect(), // a key bound to bottom
        ]
    }

    #[test]
    fn laws_hold_on_hand_picked_values() {
        check_laws(&samples()).unwrap();
    }

    #[test]
    fn merges_key_wise() {
        let mut a = map(&[(1, 1), (2, 9)]);
        assert!(a.merge(map(&[(1, 3), (2, 4), (3, 0)])));
        assert_eq!(a, map(&[(1, 3), (2, 9), (3, 0)]));
        assert!(!a.merge(map(&[(2, 9)])));
        assert_eq!(a.get(&2).and_then(|m| m.get()), Some(&9));
        assert_eq!(a.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
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
        fn laws_hold_on_random_values(values in prop::collection::vec(arb_map(), 1..5)) {
            check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }

        #[test]
        fn roundtrips(v in arb_map()) {
            prop_assert_eq!(roundtrip(&v), v);
        }
    }
}
