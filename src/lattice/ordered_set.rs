//! Grow-only set kept in order (a B-tree): merge is set union, iteration is sorted, and the
//! smallest and largest elements are at hand.

use super::{ByteSize, Lattice, ENTRY_OVERHEAD_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A grow-only ordered set of `T`. Bottom: the empty set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[serde(bound(
    serialize = "T: Serialize + Ord",
    deserialize = "T: Deserialize<'de> + Ord"
))]
pub struct OrderedSet<T: Ord> {
    items: BTreeSet<T>,
}

impl<T: Ord> Default for OrderedSet<T> {
    fn default() -> Self {
        OrderedSet {
            items: BTreeSet::new(),
        }
    }
}

impl<T: Ord> OrderedSet<T> {
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

    /// The elements in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.iter()
    }

    /// The smallest element.
    pub fn first(&self) -> Option<&T> {
        self.items.first()
    }

    /// The largest element.
    pub fn last(&self) -> Option<&T> {
        self.items.last()
    }
}

impl<T: Ord> FromIterator<T> for OrderedSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        OrderedSet {
            items: iter.into_iter().collect(),
        }
    }
}

impl<T: Ord + Clone + std::fmt::Debug> Lattice for OrderedSet<T> {
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

impl<T: Ord + ByteSize> ByteSize for OrderedSet<T> {
    fn byte_size(&self) -> usize {
        let items: usize = self.items.iter().map(ByteSize::byte_size).sum();
        std::mem::size_of::<Self>() + items + self.items.len() * ENTRY_OVERHEAD_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::{arb_ordered_set, roundtrip};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn set(items: &[&'static str]) -> OrderedSet<Bytes> {
        items
            .iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect()
    }

    fn samples() -> Vec<OrderedSet<Bytes>> {
        vec![
            set(&[""]),
            set(&["a"]),
            set(&["b", "a"]),
            set(&["c", "b"]),
            set(&["a", "b", "c", "d"]),
        ]
    }

    #[test]
    fn laws_hold_on_hand_picked_values() {
        check_laws(&samples()).unwrap();
    }

    #[test]
    fn merge_is_union_and_stays_sorted() {
        let mut a = set(&["m", "c"]);
        assert!(a.merge(set(&["z", "a", "c"])));
        let items: Vec<&[u8]> = a.iter().map(|b| b.as_ref()).collect();
        assert_eq!(items, vec![&b"a"[..], b"c", b"m", b"z"]);
        assert_eq!(a.first().map(|b| b.as_ref()), Some(&b"a"[..]));
        assert_eq!(a.last().map(|b| b.as_ref()), Some(&b"z"[..]));
        assert!(!a.merge(set(&["m"])));
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
        fn laws_hold_on_random_values(values in prop::collection::vec(arb_ordered_set(), 1..5)) {
            check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }

        #[test]
        fn roundtrips(v in arb_ordered_set()) {
            prop_assert_eq!(roundtrip(&v), v);
        }
    }
}
