//! Test-only helpers: proptest `Strategy`s for every lattice type (drawn from small
//! domains so that ties, equal clocks and duplicates are common) and a bincode round trip.

use super::{
    Dependencies, LatticeKind, LatticeValue, Lww, Map, Max, MultiKeyCausal, OrderedSet, Priority,
    SetUnion, SingleKeyCausal, Timestamp, VectorClock,
};
use crate::ids::{Key, WriterId};
use bytes::Bytes;
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

/// Encode with bincode 2 (standard config) and decode again; panics on failure (tests only).
pub fn roundtrip<T: Serialize + DeserializeOwned>(value: &T) -> T {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(value, config).expect("encode");
    let (decoded, read) = bincode::serde::decode_from_slice(&bytes, config).expect("decode");
    assert_eq!(read, bytes.len(), "decode must consume every byte");
    decoded
}

/// A vector clock from `(writer, counter)` pairs.
pub fn clock(entries: &[(u64, u64)]) -> VectorClock {
    entries.iter().map(|&(w, c)| (WriterId(w), c)).collect()
}

/// Dependencies from `(key, clock entries)` pairs.
pub fn deps(entries: &[(&str, &[(u64, u64)])]) -> Dependencies {
    entries
        .iter()
        .map(|(k, c)| (Key::new(k), clock(c)))
        .collect()
}

/// Short byte strings over a 3-letter alphabet (so equal values are common).
pub fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(0u8..3, 0..3).prop_map(Bytes::from)
}

pub fn arb_lww() -> impl Strategy<Value = Lww> {
    (0u64..3, 0u64..3, arb_bytes())
        .prop_map(|(time, writer, value)| Lww::new(Timestamp::new(time, WriterId(writer)), value))
}

pub fn arb_set_union() -> impl Strategy<Value = SetUnion<Bytes>> {
    prop::collection::vec(arb_bytes(), 0..4).prop_map(SetUnion::from_iter)
}

pub fn arb_ordered_set() -> impl Strategy<Value = OrderedSet<Bytes>> {
    prop::collection::vec(arb_bytes(), 0..4).prop_map(OrderedSet::from_iter)
}

pub fn arb_max() -> impl Strategy<Value = Max<i64>> {
    prop_oneof![
        Just(Max::default()),
        (-2i64..3).prop_map(Max::new),
        prop::sample::select(vec![i64::MIN, i64::MAX]).prop_map(Max::new),
    ]
}

pub fn arb_priority() -> impl Strategy<Value = Priority<u64, Bytes>> {
    prop::option::of((0u64..3, arb_bytes())).prop_map(|entry| match entry {
        Some((p, v)) => Priority::new(p, v),
        None => Priority::default(),
    })
}

pub fn arb_map() -> impl Strategy<Value = Map<u64, Max<i64>>> {
    prop::collection::vec((0u64..4, arb_max()), 0..4).prop_map(Map::from_iter)
}

pub fn arb_vector_clock() -> impl Strategy<Value = VectorClock> {
    prop::collection::vec((0u64..3, 0u64..3), 0..3)
        .prop_map(|entries| entries.into_iter().map(|(w, c)| (WriterId(w), c)).collect())
}

pub fn arb_single_key_causal() -> impl Strategy<Value = SingleKeyCausal> {
    prop::collection::vec((arb_vector_clock(), arb_bytes()), 0..4).prop_map(|writes| {
        let mut s = SingleKeyCausal::default();
        for (c, v) in writes {
            s.write(c, v);
        }
        s
    })
}

fn arb_deps() -> impl Strategy<Value = Dependencies> {
    let key = prop::sample::select(vec!["j", "k"]).prop_map(Key::new);
    prop::collection::vec((key, arb_vector_clock()), 0..3).prop_map(Dependencies::from_iter)
}

pub fn arb_multi_key_causal() -> impl Strategy<Value = MultiKeyCausal> {
    prop::collection::vec((arb_vector_clock(), arb_deps(), arb_bytes()), 0..4).prop_map(|writes| {
        let mut s = MultiKeyCausal::default();
        for (c, d, v) in writes {
            s.write(c, d, v);
        }
        s
    })
}

/// Stored values of one kind.
pub fn arb_value(kind: LatticeKind) -> BoxedStrategy<LatticeValue> {
    match kind {
        LatticeKind::Lww => arb_lww().prop_map(LatticeValue::from).boxed(),
        LatticeKind::SetUnion => arb_set_union().prop_map(LatticeValue::from).boxed(),
        LatticeKind::Max => arb_max().prop_map(LatticeValue::from).boxed(),
        LatticeKind::OrderedSet => arb_ordered_set().prop_map(LatticeValue::from).boxed(),
        LatticeKind::Priority => arb_priority().prop_map(LatticeValue::from).boxed(),
        LatticeKind::SingleKeyCausal => {
            arb_single_key_causal().prop_map(LatticeValue::from).boxed()
        }
        LatticeKind::MultiKeyCausal => arb_multi_key_causal().prop_map(LatticeValue::from).boxed(),
    }
}

/// A kind, then several values of that kind.
pub fn arb_values_of_one_kind() -> impl Strategy<Value = Vec<LatticeValue>> {
    prop::sample::select(LatticeKind::ALL.to_vec())
        .prop_flat_map(|kind| prop::collection::vec(arb_value(kind), 1..4))
}
