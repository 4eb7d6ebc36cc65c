//! The value the KVS stores: a tagged enum over the lattice kinds, with concrete byte
//! payloads. Merging two different kinds is an error, never a panic.

use super::{
    ByteSize, Lattice, LatticeError, Lww, Max, MultiKeyCausal, OrderedSet, Priority, SetUnion,
    SingleKeyCausal,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The tag of a [`LatticeValue`]: which lattice a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatticeKind {
    /// [`Lww`]: last writer wins (the default).
    Lww,
    /// [`SetUnion`] of byte strings.
    SetUnion,
    /// [`Max`] of `i64` (a monotonic counter).
    Max,
    /// [`OrderedSet`] of byte strings.
    OrderedSet,
    /// [`Priority`]: `u64` priority (lowest wins) with a byte-string value.
    Priority,
    /// [`SingleKeyCausal`]: concurrent versions with vector clocks.
    SingleKeyCausal,
    /// [`MultiKeyCausal`]: concurrent versions with vector clocks and dependencies.
    MultiKeyCausal,
}

impl LatticeKind {
    /// Every kind, in declaration order.
    pub const ALL: [LatticeKind; 7] = [
        LatticeKind::Lww,
        LatticeKind::SetUnion,
        LatticeKind::Max,
        LatticeKind::OrderedSet,
        LatticeKind::Priority,
        LatticeKind::SingleKeyCausal,
        LatticeKind::MultiKeyCausal,
    ];

    /// The snake_case name (as in JSON and on the command line).
    pub fn as_str(self) -> &'static str {
        match self {
            LatticeKind::Lww => "lww",
            LatticeKind::SetUnion => "set_union",
            LatticeKind::Max => "max",
            LatticeKind::OrderedSet => "ordered_set",
            LatticeKind::Priority => "priority",
            LatticeKind::SingleKeyCausal => "single_key_causal",
            LatticeKind::MultiKeyCausal => "multi_key_causal",
        }
    }
}

impl fmt::Display for LatticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LatticeKind {
    type Err = LatticeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LatticeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| LatticeError::UnknownKind(s.to_string()))
    }
}

/// A stored value: one lattice of a kind fixed by the first write of the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LatticeValue {
    /// Last writer wins.
    Lww(Lww),
    /// Grow-only set of byte strings.
    SetUnion(SetUnion<Bytes>),
    /// Largest `i64` seen.
    Max(Max<i64>),
    /// Grow-only ordered set of byte strings.
    OrderedSet(OrderedSet<Bytes>),
    /// Lowest-priority entry.
    Priority(Priority<u64, Bytes>),
    /// Causal versions of one key.
    SingleKeyCausal(SingleKeyCausal),
    /// Causal versions with dependencies on other keys.
    MultiKeyCausal(MultiKeyCausal),
}

impl LatticeValue {
    /// The kind (tag) of this value.
    pub fn kind(&self) -> LatticeKind {
        match self {
            LatticeValue::Lww(_) => LatticeKind::Lww,
            LatticeValue::SetUnion(_) => LatticeKind::SetUnion,
            LatticeValue::Max(_) => LatticeKind::Max,
            LatticeValue::OrderedSet(_) => LatticeKind::OrderedSet,
            LatticeValue::Priority(_) => LatticeKind::Priority,
            LatticeValue::SingleKeyCausal(_) => LatticeKind::SingleKeyCausal,
            LatticeValue::MultiKeyCausal(_) => LatticeKind::MultiKeyCausal,
        }
    }

    /// Bottom of the given kind (the identity of `merge` for that kind).
    pub fn bottom(kind: LatticeKind) -> LatticeValue {
        match kind {
            LatticeKind::Lww => LatticeValue::Lww(Lww::default()),
            LatticeKind::SetUnion => LatticeValue::SetUnion(SetUnion::default()),
            LatticeKind::Max => LatticeValue::Max(Max::default()),
            LatticeKind::OrderedSet => LatticeValue::OrderedSet(OrderedSet::default()),
            LatticeKind::Priority => LatticeValue::Priority(Priority::default()),
            LatticeKind::SingleKeyCausal => {
                LatticeValue::SingleKeyCausal(SingleKeyCausal::default())
            }
            LatticeKind::MultiKeyCausal => LatticeValue::MultiKeyCausal(MultiKeyCausal::default()),
        }
    }

    /// Merge `other` into `self`; `Ok(true)` if `self` changed.
    ///
    /// Values of different kinds give [`LatticeError::KindMismatch`] and leave `self`
    /// unchanged.
    pub fn merge(&mut self, other: LatticeValue) -> Result<bool, LatticeError> {
        use LatticeValue as V;
        match (self, other) {
            (V::Lww(a), V::Lww(b)) => Ok(a.merge(b)),
            (V::SetUnion(a), V::SetUnion(b)) => Ok(a.merge(b)),
            (V::Max(a), V::Max(b)) => Ok(a.merge(b)),
            (V::OrderedSet(a), V::OrderedSet(b)) => Ok(a.merge(b)),
            (V::Priority(a), V::Priority(b)) => Ok(a.merge(b)),
            (V::SingleKeyCausal(a), V::SingleKeyCausal(b)) => Ok(a.merge(b)),
            (V::MultiKeyCausal(a), V::MultiKeyCausal(b)) => Ok(a.merge(b)),
            (have, got) => Err(LatticeError::KindMismatch {
                have: have.kind(),
                got: got.kind(),
            }),
        }
    }

    /// Approximate heap size in bytes (for cache capacity and KVS stats).
    pub fn size_bytes(&self) -> usize {
        let inner = match self {
            LatticeValue::Lww(v) => v.byte_size(),
            LatticeValue::SetUnion(v) => v.byte_size(),
            LatticeValue::Max(v) => v.byte_size(),
            LatticeValue::OrderedSet(v) => v.byte_size(),
            LatticeValue::Priority(v) => v.byte_size(),
            LatticeValue::SingleKeyCausal(v) => v.byte_size(),
            LatticeValue::MultiKeyCausal(v) => v.byte_size(),
        };
        // The tag and padding of the enum around the inner value.
        inner + std::mem::size_of::<Self>().saturating_sub(largest_variant())
    }
}

/// Inline size of the largest variant payload (the enum adds its tag on top of it).
const fn largest_variant() -> usize {
    let sizes = [
        std::mem::size_of::<Lww>(),
        std::mem::size_of::<SetUnion<Bytes>>(),
        std::mem::size_of::<Max<i64>>(),
        std::mem::size_of::<OrderedSet<Bytes>>(),
        std::mem::size_of::<Priority<u64, Bytes>>(),
        std::mem::size_of::<SingleKeyCausal>(),
        std::mem::size_of::<MultiKeyCausal>(),
    ];
    let mut max = 0;
    let mut i = 0;
    while i < sizes.len() {
        if sizes[i] > max {
            max = sizes[i];
        }
        i += 1;
    }
    max
}

macro_rules! from_variant {
    ($($variant:ident($t:ty)),* $(,)?) => {$(
        impl From<$t> for LatticeValue {
            fn from(v: $t) -> Self {
                LatticeValue::$variant(v)
            }
        }
    )*};
}
from_variant!(
    Lww(Lww),
    SetUnion(SetUnion<Bytes>),
    Max(Max<i64>),
    OrderedSet(OrderedSet<Bytes>),
    Priority(Priority<u64, Bytes>),
    SingleKeyCausal(SingleKeyCausal),
    MultiKeyCausal(MultiKeyCausal),
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WriterId;
    use crate::lattice::laws::check_laws_with;
    use crate::lattice::strategies::{arb_values_of_one_kind, clock, deps, roundtrip};
    use crate::lattice::{MultiKeyCausal, Timestamp};
    use proptest::prelude::*;

    /// Two distinct non-bottom values of every kind.
    fn samples(kind: LatticeKind) -> Vec<LatticeValue> {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let ts = |t| Timestamp::new(t, WriterId(1));
        match kind {
            LatticeKind::Lww => vec![Lww::new(ts(1), "x").into(), Lww::new(ts(2), "y").into()],
            LatticeKind::SetUnion => vec![
                SetUnion::from_iter([b("x")]).into(),
                SetUnion::from_iter([b("y"), b("z")]).into(),
            ],
            LatticeKind::Max => vec![Max::new(-3).into(), Max::new(4).into()],
            LatticeKind::OrderedSet => vec![
                OrderedSet::from_iter([b("x")]).into(),
                OrderedSet::from_iter([b("y")]).into(),
            ],
            LatticeKind::Priority => vec![
                Priority::new(2, b("two")).into(),
                Priority::new(1, b("one")).into(),
            ],
            LatticeKind::SingleKeyCausal => vec![
                SingleKeyCausal::new(clock(&[(1, 1)]), "x").into(),
                SingleKeyCausal::new(clock(&[(2, 1)]), "y").into(),
            ],
            LatticeKind::MultiKeyCausal => vec![
                MultiKeyCausal::new(clock(&[(1, 1)]), deps(&[("k", &[(1, 1)])]), "x").into(),
                MultiKeyCausal::new(clock(&[(1, 2)]), deps(&[]), "y").into(),
            ],
        }
    }

    fn check_one_kind(values: &[LatticeValue]) -> Result<(), crate::lattice::laws::LawViolation> {
        let kind = values.first().map_or(LatticeKind::Lww, LatticeValue::kind);
        check_laws_with(values, &LatticeValue::bottom(kind), LatticeValue::merge)
    }

    #[test]
    fn laws_hold_for_every_kind() {
        for kind in LatticeKind::ALL {
            let values = samples(kind);
            assert!(values.iter().all(|v| v.kind() == kind));
            check_one_kind(&values).unwrap();
        }
    }

    #[test]
    fn merging_different_kinds_is_an_error_and_changes_nothing() {
        for have in LatticeKind::ALL {
            for got in LatticeKind::ALL.into_iter().filter(|k| *k != have) {
                let mut value = samples(have).remove(0);
                let before = value.clone();
                let err = value.merge(samples(got).remove(0)).unwrap_err();
                assert_eq!(err, LatticeError::KindMismatch { have, got });
                assert_eq!(value, before);
            }
        }
        let err = LatticeValue::bottom(LatticeKind::Lww)
            .merge(LatticeValue::bottom(LatticeKind::Max))
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot merge a max value into a lww value");
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in LatticeKind::ALL {
            assert_eq!(kind.to_string().parse::<LatticeKind>(), Ok(kind));
            assert_eq!(roundtrip(&kind), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert!(matches!(
            "lwww".parse::<LatticeKind>(),
            Err(LatticeError::UnknownKind(_))
        ));
    }

    #[test]
    fn bincode_roundtrip_of_every_kind() {
        for kind in LatticeKind::ALL {
            for v in samples(kind)
                .into_iter()
                .chain([LatticeValue::bottom(kind)])
            {
                assert_eq!(roundtrip(&v), v);
            }
        }
    }

    #[test]
    fn size_grows_with_the_payload() {
        let small = LatticeValue::from(Lww::new(Timestamp::default(), vec![0u8; 8]));
        let large = LatticeValue::from(Lww::new(Timestamp::default(), vec![0u8; 1024]));
        assert!(small.size_bytes() >= 8 + std::mem::size_of::<Timestamp>());
        assert_eq!(large.size_bytes() - small.size_bytes(), 1016);
        for kind in LatticeKind::ALL {
            let bottom = LatticeValue::bottom(kind).size_bytes();
            assert!(
                samples(kind).iter().all(|v| v.size_bytes() >= bottom),
                "{kind}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn laws_hold_on_random_values_of_one_kind(values in arb_values_of_one_kind()) {
            check_one_kind(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }

        #[test]
        fn roundtrips(values in arb_values_of_one_kind()) {
            for v in values {
                prop_assert_eq!(roundtrip(&v), v);
            }
        }
    }
}
