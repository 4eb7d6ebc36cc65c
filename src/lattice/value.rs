//! The value the KVS stores: a tagged enum over the lattice kinds, with concrete byte
//! payloads. Merging two different kinds is an error, never a panic — except that a
//! tombstone merges with every kind (the rules are in the `tombstone` module).

use super::tombstone::{self, Recreated, Tombstone};
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
    /// [`Tombstone`]: the key was deleted.
    Tombstone,
}

impl LatticeKind {
    /// Every kind, in declaration order.
    pub const ALL: [LatticeKind; 8] = [
        LatticeKind::Lww,
        LatticeKind::SetUnion,
        LatticeKind::Max,
        LatticeKind::OrderedSet,
        LatticeKind::Priority,
        LatticeKind::SingleKeyCausal,
        LatticeKind::MultiKeyCausal,
        LatticeKind::Tombstone,
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
            LatticeKind::Tombstone => "tombstone",
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

/// A stored value: one lattice of a kind fixed by the first write of the key (until a
/// delete: a tombstone, and what is written after it, may be of any kind).
///
/// Variants are only ever added at the end: logs and peers name a variant by its index.
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
    /// The key was deleted; reads answer missing.
    Tombstone(Tombstone),
    /// A value of an untimed kind written after the key was deleted: reads answer the value.
    Recreated(Box<Recreated>),
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
            LatticeValue::Tombstone(_) => LatticeKind::Tombstone,
            LatticeValue::Recreated(r) => r.value.kind(),
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
            LatticeKind::Tombstone => LatticeValue::Tombstone(Tombstone::default()),
        }
    }

    /// Merge `other` into `self`; `Ok(true)` if `self` changed.
    ///
    /// Values of different kinds give [`LatticeError::KindMismatch`] and leave `self`
    /// unchanged; a tombstone merges with every kind.
    pub fn merge(&mut self, other: LatticeValue) -> Result<bool, LatticeError> {
        use LatticeValue as V;
        if tombstone::is_delete_family(self) || tombstone::is_delete_family(&other) {
            return tombstone::merge(self, other);
        }
        merge_same_kind!(V, self, other;
            Lww, SetUnion, Max, OrderedSet, Priority, SingleKeyCausal, MultiKeyCausal)
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
            LatticeValue::Tombstone(v) => v.byte_size(),
            LatticeValue::Recreated(v) => v.byte_size(),
        };
        // The tag and padding of the enum around the inner value.
        inner + std::mem::size_of::<Self>().saturating_sub(LARGEST_VARIANT)
    }

    /// Whether merging the delete `t` would leave `self` unchanged: `self` is that delete,
    /// a later one, or a write that beats it.
    pub fn covers_delete(&self, t: &Tombstone) -> bool {
        tombstone::covers(self, t)
    }

    /// True for a tombstone: the key reads as missing.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, LatticeValue::Tombstone(_))
    }

    /// What a read answers: `None` for a tombstone, the value itself for a value recreated
    /// after a delete, else `self`.
    pub fn into_live(self) -> Option<LatticeValue> {
        match self {
            LatticeValue::Tombstone(_) => None,
            LatticeValue::Recreated(r) => Some(r.value.into()),
            other => Some(other),
        }
    }

    /// [`Self::into_live`] of a borrowed value, cloning only what a read answers.
    pub fn live(&self) -> Option<std::borrow::Cow<'_, LatticeValue>> {
        use std::borrow::Cow;
        match self {
            LatticeValue::Tombstone(_) => None,
            LatticeValue::Recreated(r) => Some(Cow::Owned(r.value.clone().into())),
            other => Some(Cow::Borrowed(other)),
        }
    }

    /// `self`, a client's write, as applied over `stored` (see
    /// [`tombstone::written_over`]): a write of an untimed kind to a deleted key is taken as
    /// written after the delete.
    pub fn written_over(self, stored: Option<&LatticeValue>) -> LatticeValue {
        tombstone::written_over(stored, self)
    }
}

/// Inline size of the largest variant payload (the enum adds its tag on top of it).
const LARGEST_VARIANT: usize = largest_variant();

/// Computes [`LARGEST_VARIANT`] at compile time.
const fn largest_variant() -> usize {
    let sizes = [
        std::mem::size_of::<Lww>(),
        std::mem::size_of::<SetUnion<Bytes>>(),
        std::mem::size_of::<Max<i64>>(),
        std::mem::size_of::<OrderedSet<Bytes>>(),
        std::mem::size_of::<Priority<u64, Bytes>>(),
        std::mem::size_of::<SingleKeyCausal>(),
        std::mem::size_of::<MultiKeyCausal>(),
        std::mem::size_of::<Tombstone>(),
        std::mem::size_of::<Box<Recreated>>(),
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
    Tombstone(Tombstone),
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WriterId;
    use crate::lattice::laws::check_laws_with;
    use crate::lattice::strategies::{
        arb_values_of_one_kind, arb_values_with_deletes, clock, deps, roundtrip,
    };
    use crate::lattice::{MultiKeyCausal, Timestamp, Tombstone};
    use proptest::prelude::*;

    /// Two distinct non-bottom values of every kind.
    fn ts(t: u64) -> Timestamp {
        Timestamp::new(t, WriterId(1))
    }

    fn samples(kind: LatticeKind) -> Vec<LatticeValue> {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
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
            LatticeKind::Tombstone => vec![
                Tombstone::new(ts(1)).into(),
                Tombstone::new(Timestamp::new(1, WriterId(2))).into(),
            ],
        }
    }

    /// Deletes at times around the samples' (1 and 2), and values of `kind` written after
    /// them.
    fn with_deletes(kind: LatticeKind, mut values: Vec<LatticeValue>) -> Vec<LatticeValue> {
        let at = |t| Timestamp::new(t, WriterId(1));
        let tombs: Vec<LatticeValue> = [0, 1, 2, 3]
            .into_iter()
            .map(|t| Tombstone::new(at(t)).into())
            .collect();
        let again: Vec<LatticeValue> = values
            .iter()
            .flat_map(|v| [&tombs[1], &tombs[3]].map(|t| v.clone().written_over(Some(t))))
            .filter(|v| matches!(v, LatticeValue::Recreated(_)))
            .collect();
        assert_eq!(
            again.is_empty(),
            kind == LatticeKind::Lww || kind == LatticeKind::Tombstone
        );
        values.extend(tombs);
        values.extend(again);
        values
    }

    /// The laws over `values`, whose first is of the kind whose bottom is the identity.
    fn check_one_kind(values: &[LatticeValue]) -> Result<(), crate::lattice::laws::LawViolation> {
        let kind = values.first().map_or(LatticeKind::Lww, LatticeValue::kind);
        check_laws_with(values, &LatticeValue::bottom(kind), LatticeValue::merge)
    }

    #[test]
    fn laws_hold_for_every_kind_with_deletes_among_the_values() {
        for kind in LatticeKind::ALL {
            let values = samples(kind);
            assert!(values.iter().all(|v| v.kind() == kind));
            check_one_kind(&values).unwrap();
            check_one_kind(&with_deletes(kind, values)).unwrap();
        }
    }

    #[test]
    fn the_law_checker_sees_a_delete_that_loses_to_older_writes() {
        // A tombstone that no Lww write could beat (as a merge ignoring time would make
        // it) breaks commutativity: the checker must say so.
        let broken = |a: &mut LatticeValue, b: LatticeValue| -> Result<bool, LatticeError> {
            match (&*a, &b) {
                (LatticeValue::Tombstone(_), LatticeValue::Lww(_)) => Ok(false),
                _ => a.merge(b),
            }
        };
        let values = with_deletes(LatticeKind::Lww, samples(LatticeKind::Lww));
        let bottom = LatticeValue::bottom(LatticeKind::Lww);
        assert!(check_laws_with(&values, &bottom, broken).is_err());
    }

    #[test]
    fn tombstones_read_as_missing_and_recreated_values_as_themselves() {
        let t = LatticeValue::from(Tombstone::new(ts(4)));
        assert!(t.is_tombstone() && t.live().is_none() && t.clone().into_live().is_none());
        let set: LatticeValue = SetUnion::from_iter([Bytes::from_static(b"a")]).into();
        let again = set.clone().written_over(Some(&t));
        assert!(!again.is_tombstone());
        assert_eq!(again.live().map(|c| c.into_owned()), Some(set.clone()));
        assert_eq!(again.into_live(), Some(set.clone()));
        assert_eq!(set.clone().into_live(), Some(set));
    }

    #[test]
    fn merging_different_kinds_is_an_error_and_changes_nothing() {
        // Tombstones merge with every kind (checked with the laws above).
        let kinds = LatticeKind::ALL
            .into_iter()
            .filter(|k| *k != LatticeKind::Tombstone);
        for have in kinds.clone() {
            for got in kinds.clone().filter(|k| *k != have) {
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
        fn laws_hold_on_random_values_with_deletes((kind, values) in arb_values_with_deletes()) {
            check_laws_with(&values, &LatticeValue::bottom(kind), LatticeValue::merge)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }

        #[test]
        fn roundtrips(values in arb_values_of_one_kind()) {
            for v in values {
                prop_assert_eq!(roundtrip(&v), v);
            }
        }
    }
}
