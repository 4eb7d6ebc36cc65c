//! Grow-only set: merge is set union. Unordered (a hash set); see
//! [`OrderedSet`](super::OrderedSet) for one kept in order.

use super::{ByteSize, Lattice, ENTRY_OVERHEAD_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::hash::Hash;

/// A grow-only set of `T`. Bottom: the empty set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
#[serde(bound(
    serialize = "T: Serialize + Eq + Hash",
    deserialize = "T: Deserialize<'de> + Eq + Hash"
))]
pub struct SetUnion<T: Eq + Hash> {
    items: HashSet<T>,
}

impl<T: Eq + Hash> Default for SetUnion<T> {
    fn default() -> Self {
        SetUnion {
            items: HashSet::new(),
        }
    }
}

impl<T: Eq + Hash> SetUnion<T> {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one element; true if it was not there.
    pub fn insert(&mut self, item: T) -> bool {
        self.items.insert(item)
    }

    /// True if `item` is in the set.
    pub fn contains(&self, item: &T) -> bool {
        self.items.contains(item)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if the set is empty (bottom).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The elements, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }
}

impl<T: Eq + Hash> FromIterator<T> for SetUnion<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        SetUnion {
            items: iter.into_iter().collect(),
        }
    }
}

impl<T: Eq + Hash + Clone + std::fmt::Debug> Lattice for SetUnion<T> {
    fn merge(&mut self, other: Self) -> bool {
        if self.items.is_empty() {
            let changed = !other.items.is_empty();
            self.items = other.items;
            return changed;
        }
        let before = self.items.len();
        self.items.extend(other.items);
        self.items.len() != before
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for item in &other.items {
            if !self.items.contains(item) {
                self.items.insert(item.clone());
                changed = true;
            }
        }
        changed
    }
}

impl<T: Eq + Hash + ByteSize> ByteSize for SetUnion<T> {
    fn byte_size(&self) -> usize {
        let items: usize = self.items.iter().map(ByteSize::byte_size).sum();
        std::mem::size_of::<Self>() + items + self.items.len() * ENTRY_OVERHEAD_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::{arb_set_union, roundtrip};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn set(items: &[&'static str]) -> SetUnion<Bytes> {
        items
            .iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect()
    }

    fn samples() -> Vec<SetUnion<Bytes>> {
        vec![
            set(&[]),
            set(&[""]),
            set(&["a"]),
            set(&["a", "b"]),
            set(&["b", "c"]),
            set(&["a", "b", "c", "d"]),
        ]
    }

    #[test]
    fn laws_hold_on_hand_picked_values() {
        check_laws(&samples()).unwrap();
    }

    #[test]
    fn merge_is_union() {
        let mut a = set(&["a", "b"]);
        assert!(a.merge(set(&["b", "c"])));
        assert_eq!(a, set(&["a", "b", "c"]));
        assert!(!a.merge(set(&["c"])));
        assert!(a.contains(&Bytes::from_static(b"a")));
        assert_eq!(a.len(), 3);
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
        fn laws_hold_on_random_values(values in prop::collection::vec(arb_set_union(), 1..5)) {
            check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }

        #[test]
        fn roundtrips(v in arb_set_union()) {
            prop_assert_eq!(roundtrip(&v), v);
        }
    }
}
