//! Priority lattice: keeps the entry with the lowest priority (e.g. the shortest distance or
//! the earliest deadline). Ties on priority are broken by the smaller value, so the result
//! does not depend on merge order.

use super::{ByteSize, Lattice};
use serde::{Deserialize, Serialize};

/// The `(priority, value)` with the lowest priority merged so far. Bottom: no entry (an
/// infinitely high priority).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Priority<P, V> {
    entry: Option<(P, V)>,
}

impl<P, V> Default for Priority<P, V> {
    fn default() -> Self {
        Priority { entry: None }
    }
}

impl<P, V> Priority<P, V> {
    /// An entry with `priority` (lower wins) and `value`.
    pub fn new(priority: P, value: V) -> Self {
        Priority {
            entry: Some((priority, value)),
        }
    }

    /// The winning priority, or `None` at bottom.
    pub fn priority(&self) -> Option<&P> {
        self.entry.as_ref().map(|(p, _)| p)
    }

    /// The winning value, or `None` at bottom.
    pub fn value(&self) -> Option<&V> {
        self.entry.as_ref().map(|(_, v)| v)
    }
}

impl<P: Ord, V: Ord> Priority<P, V> {
    /// True if `other` beats `self`: lower `(priority, value)`; bottom never wins.
    fn loses_to(&self, other: &Self) -> bool {
        match (&self.entry, &other.entry) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(mine), Some(theirs)) => theirs < mine,
        }
    }
}

impl<P, V> Lattice for Priority<P, V>
where
    P: Ord + Clone + std::fmt::Debug,
    V: Ord + Clone + std::fmt::Debug,
{
    fn merge(&mut self, other: Self) -> bool {
        if self.loses_to(&other) {
            *self = other;
            true
        } else {
            false
        }
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        if self.loses_to(other) {
            self.entry.clone_from(&other.entry);
            true
        } else {
            false
        }
    }
}

impl<P: ByteSize, V: ByteSize> ByteSize for Priority<P, V> {
    fn byte_size(&self) -> usize {
        let inline = std::mem::size_of::<Self>();
        match &self.entry {
            Some((p, v)) => {
                inline - std::mem::size_of::<P>() - std::mem::size_of::<V>()
                    + p.byte_size()
                    + v.byte_size()
            }
            None => inline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::{arb_priority, roundtrip};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn p(priority: u64, value: &'static str) -> Priority<u64, Bytes> {
        Priority::new(priority, Bytes::from_static(value.as_bytes()))
    }

    fn samples() -> Vec<Priority<u64, Bytes>> {
        vec![
            p(0, ""),
            p(0, "b"),
            p(1, "a"),
            p(1, "b"), // same priority, other value
            p(u64::MAX, "z"),
        ]
    }

    #[test]
    fn laws_hold_on_hand_picked_values() {
        check_laws(&samples()).unwrap();
    }

    #[test]
    fn lowest_priority_wins_ties_by_smaller_value() {
        let mut a = p(5, "five");
        assert!(a.merge(p(2, "two")));
        assert!(!a.merge(p(3, "three")));
        assert!(a.merge(p(2, "a-tie")), "equal priority: smaller value wins");
        assert!(!a.merge(p(2, "z-tie")));
        assert!(!a.merge(Priority::default()));
        assert_eq!(a.priority(), Some(&2));
        assert_eq!(a.value().map(|v| v.as_ref()), Some(&b"a-tie"[..]));
    }

    #[test]
    fn bincode_roundtrip() {
        for v in samples().into_iter().chain([Priority::default()]) {
            assert_eq!(roundtrip(&v), v);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn laws_hold_on_random_values(values in prop::collection::vec(arb_priority(), 1..6)) {
            check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
}
