//! Max lattice: keeps the largest value seen (e.g. a monotonic counter or high-water mark).
//!
//! Bottom is "nothing seen yet" (`None`), below every value, so `Max<i64>` is a lattice
//! even though `i64::default()` (0) is not the smallest `i64`.

use super::{ByteSize, Lattice};
use serde::{Deserialize, Serialize};

/// The largest `T` merged so far. Bottom: no value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Max<T> {
    value: Option<T>,
}

impl<T> Default for Max<T> {
    fn default() -> Self {
        Max { value: None }
    }
}

impl<T> Max<T> {
    /// A lattice holding `value`.
    pub fn new(value: T) -> Self {
        Max { value: Some(value) }
    }

    /// The largest value seen, or `None` at bottom.
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref()
    }
}

impl<T: Ord + Clone + std::fmt::Debug> Lattice for Max<T> {
    fn merge(&mut self, other: Self) -> bool {
        // `None < Some(_)`, so bottom never wins.
        if other.value > self.value {
            self.value = other.value;
            true
        } else {
            false
        }
    }

    fn merge_ref(&mut self, other: &Self) -> bool {
        if other.value > self.value {
            self.value.clone_from(&other.value);
            true
        } else {
            false
        }
    }
}

impl<T: ByteSize> ByteSize for Max<T> {
    fn byte_size(&self) -> usize {
        match &self.value {
            // The value's own byte_size includes its inline size.
            Some(v) => std::mem::size_of::<Self>() - std::mem::size_of::<T>() + v.byte_size(),
            None => std::mem::size_of::<Self>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::{arb_max, roundtrip};
    use proptest::prelude::*;

    fn samples() -> Vec<Max<i64>> {
        [i64::MIN, -1, 0, 1, i64::MAX]
            .into_iter()
            .map(Max::new)
            .collect()
    }

    #[test]
    fn laws_hold_on_hand_picked_values() {
        check_laws(&samples()).unwrap();
    }

    #[test]
    fn keeps_the_largest_and_bottom_is_below_min() {
        let mut m = Max::default();
        assert_eq!(m.get(), None);
        assert!(m.merge(Max::new(i64::MIN)), "MIN is above bottom");
        assert!(m.merge(Max::new(5)));
        assert!(!m.merge(Max::new(3)));
        assert!(!m.merge(Max::default()));
        assert_eq!(m.get(), Some(&5));
    }

    #[test]
    fn bincode_roundtrip() {
        for v in samples().into_iter().chain([Max::default()]) {
            assert_eq!(roundtrip(&v), v);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn laws_hold_on_random_values(values in prop::collection::vec(arb_max(), 1..6)) {
            check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
}
