//! Last-writer-wins register: the default lattice of the KVS (LWW consistency).
//!
//! The larger `(timestamp, value)` wins. Timestamps are `(time, writer)`, so two writers
//! never tie; if one writer reuses a timestamp with another value, the bytewise larger value
//! wins on every replica, so merge stays commutative and never panics.

use super::{ByteSize, Lattice};
use crate::ids::WriterId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A write's timestamp: wall-clock microseconds, then the writer id as tie-break.
///
/// Ordered by `time`, then `writer` (field order). Monotonic per writer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Timestamp {
    /// Microseconds since the Unix epoch (or any clock monotonic per writer).
    pub time: u64,
    /// The writer; breaks ties between equal times.
    pub writer: WriterId,
}

impl Timestamp {
    /// A timestamp at `time` microseconds by `writer`.
    pub fn new(time: u64, writer: WriterId) -> Self {
        Timestamp { time, writer }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.time, self.writer)
    }
}

/// Last-writer-wins register of opaque bytes. Bottom: timestamp zero, empty value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lww {
    /// When and by whom the value was written.
    pub timestamp: Timestamp,
    /// The opaque payload (serialized as a byte string).
    pub value: Bytes,
}

impl Lww {
    /// A register holding `value` written at `timestamp`.
    pub fn new(timestamp: Timestamp, value: impl Into<Bytes>) -> Self {
        Lww {
            timestamp,
            value: value.into(),
        }
    }

    /// True if `other` wins over `self`: larger timestamp, or equal timestamp and bytewise
    /// larger value (a deterministic last resort so that merge is commutative).
    fn loses_to(&self, other: &Lww) -> bool {
        (other.timestamp, &other.value) > (self.timestamp, &self.value)
    }
}

impl Lattice for Lww {
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
            // Cloning `Bytes` only bumps a reference count.
            *self = other.clone();
            true
        } else {
            false
        }
    }
}

impl ByteSize for Lww {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<Timestamp>() + self.value.byte_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::{arb_lww, roundtrip};
    use proptest::prelude::*;

    fn lww(time: u64, writer: u64, value: &'static str) -> Lww {
        Lww::new(Timestamp::new(time, WriterId(writer)), value)
    }

    fn samples() -> Vec<Lww> {
        vec![
            Lww::default(),
            lww(0, 0, ""),
            lww(0, 0, "a"),
            lww(1, 0, "a"),
            lww(1, 1, "a"),
            lww(1, 1, "b"), // same (time, writer) as the previous, other value
            lww(2, 0, ""),
            lww(u64::MAX, u64::MAX, "z"),
        ]
    }

    #[test]
    fn laws_hold_on_hand_picked_values() {
        check_laws(&samples()).unwrap();
    }

    #[test]
    fn later_time_wins_then_writer_then_value() {
        let mut a = lww(1, 9, "old");
        assert!(a.merge(lww(2, 0, "new")));
        assert_eq!(a.value, "new");
        assert!(a.merge(lww(2, 1, "w1")));
        assert_eq!(a.value, "w1");
        assert!(!a.merge(lww(2, 1, "a")), "smaller value loses the tie");
        assert!(
            a.merge(lww(2, 1, "x")),
            "larger value wins the tie, no panic"
        );
        assert_eq!(a.value, "x");
        assert!(!a.merge(lww(1, 99, "late")));
    }

    #[test]
    fn bincode_roundtrip() {
        for v in samples() {
            assert_eq!(roundtrip(&v), v);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn laws_hold_on_random_values(values in prop::collection::vec(arb_lww(), 1..5)) {
            check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }

        #[test]
        fn roundtrips(v in arb_lww()) {
            prop_assert_eq!(roundtrip(&v), v);
        }
    }
}
