//! Test-only helpers: proptest `Strategy`s for every lattice type (drawn from small
//! domains so that ties, equal clocks and duplicates are common) and a bincode round trip.

use super::{
    Dependencies, LatticeKind, LatticeValue, Lww, Map, Max, MultiKeyCausal, OrderedSet, Priority,
    SetUnion, SingleKeyCausal, Timestamp, Tombstone, VectorClock, BASE,
};
use crate::ids::{Key, WriterId};
use bytes::Bytes;
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

/// An Lww value `v` at `time`, written by writer 1 (hand-picked values for unit tests).
pub fn lww(time: u64, v: &str) -> LatticeValue {
    LatticeValue::Lww(Lww::new(
        Timestamp::new(time, WriterId(1)),
        Bytes::copy_from_slice(v.as_bytes()),
    ))
}

/// A SetUnion of `items` (hand-picked values for unit tests).
pub fn set(items: &[&str]) -> LatticeValue {
    LatticeValue::SetUnion(
        items
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect::<SetUnion<Bytes>>(),
    )
}

/// Encode with bincode 2 (standard config) and decode again; panics on failure (tests only).
pub fn roundtrip<T: Serialize + DeserializeOwned>(value: &T) -> T {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(value, config).expect("encode");
    let (decoded, read) = bincode::serde::decode_from_slice(&bytes, config).expect("decode");
    assert_eq!(read, bytes.len(), "decode must consume every byte");
    decoded
}

/// A vector clock from `(writer, counter)` pairs (normalised; writer 0 is the base).
pub fn clock(entries: &[(u64, u64)]) -> VectorClock {
    entries.iter().map(|&(w, c)| (WriterId(w), c)).collect()
}

/// A vector clock with base `base` and `(writer, counter)` pairs (normalised).
pub fn based(base: u64, entries: &[(u64, u64)]) -> VectorClock {
    let mut v = clock(entries);
    v.fold_before(base);
    v
}

/// `v` with the single events `(writer, counter)` added (normalised).
pub fn with_dots(mut v: VectorClock, dots: &[(u64, u64)]) -> VectorClock {
    for &(w, c) in dots {
        v.insert_dot(WriterId(w), c);
    }
    v
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

/// Lww with times and writers in `0..3`: equal timestamps with other values are common.
pub fn arb_lww() -> impl Strategy<Value = Lww> {
    (0u64..3, 0u64..3, arb_bytes())
        .prop_map(|(time, writer, value)| Lww::new(Timestamp::new(time, WriterId(writer)), value))
}

/// Sets of up to 3 short byte strings.
pub fn arb_set_union() -> impl Strategy<Value = SetUnion<Bytes>> {
    prop::collection::vec(arb_bytes(), 0..4).prop_map(SetUnion::from_iter)
}

/// Ordered sets of up to 3 short byte strings.
pub fn arb_ordered_set() -> impl Strategy<Value = OrderedSet<Bytes>> {
    prop::collection::vec(arb_bytes(), 0..4).prop_map(OrderedSet::from_iter)
}

/// Bottom, small numbers and the extremes.
pub fn arb_max() -> impl Strategy<Value = Max<i64>> {
    prop_oneof![
        Just(Max::default()),
        (-2i64..3).prop_map(Max::new),
        prop::sample::select(vec![i64::MIN, i64::MAX]).prop_map(Max::new),
    ]
}

/// Bottom or a priority in `0..3` (ties common) with a short value.
pub fn arb_priority() -> impl Strategy<Value = Priority<u64, Bytes>> {
    prop::option::of((0u64..3, arb_bytes())).prop_map(|entry| match entry {
        Some((p, v)) => Priority::new(p, v),
        None => Priority::default(),
    })
}

/// Maps of up to 3 keys in `0..4` to `Max<i64>` (some bound to bottom).
pub fn arb_map() -> impl Strategy<Value = Map<u64, Max<i64>>> {
    prop::collection::vec((0u64..4, arb_max()), 0..4).prop_map(Map::from_iter)
}

/// Clocks over writers `1..=3` with counters in `0..=4`, a third of them with a base in
/// `1..=3`, and half with single events ("dots") in `1..=6`, which leave a cloud in about a
/// third of all clocks (normalised: zeros and entries at or below the base are dropped, dots
/// that extend a prefix are folded into it).
pub fn arb_vector_clock() -> impl Strategy<Value = VectorClock> {
    let base = prop_oneof![2 => Just(0u64), 1 => 1u64..4];
    let entries = prop::collection::vec((1u64..4, 0u64..5), 0..4);
    let dots = prop_oneof![1 => Just(vec![]), 1 => prop::collection::vec((1u64..4, 1u64..7), 1..4)];
    (base, entries, dots).prop_map(|(base, entries, dots)| {
        let entries = entries.into_iter().map(|(w, c)| (WriterId(w), c));
        let v: VectorClock = entries.chain([(BASE, base)]).collect();
        with_dots(v, &dots)
    })
}

/// The merge of up to 3 random writes.
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

/// The merge of up to 3 random writes with dependencies on keys `j` and `k`.
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
        LatticeKind::Tombstone => arb_tombstone().prop_map(LatticeValue::from).boxed(),
    }
}

/// Deletes at times and by writers in `0..3`, as [`arb_lww`] writes (so ties are common).
pub fn arb_tombstone() -> impl Strategy<Value = Tombstone> {
    (0u64..3, 0u64..3)
        .prop_map(|(time, writer)| Tombstone::new(Timestamp::new(time, WriterId(writer))))
}

/// A kind, then values of that kind mixed with deletes and with values of it written after
/// a delete (recreated).
pub fn arb_values_with_deletes() -> impl Strategy<Value = (LatticeKind, Vec<LatticeValue>)> {
    prop::sample::select(LatticeKind::ALL.to_vec()).prop_flat_map(|kind| {
        let one = prop_oneof![
            2 => arb_value(kind),
            1 => arb_tombstone().prop_map(LatticeValue::from),
            1 => (arb_value(kind), arb_tombstone()).prop_map(|(v, t)| {
                v.written_over(Some(&LatticeValue::from(t)))
            }),
        ];
        (Just(kind), prop::collection::vec(one, 1..4))
    })
}

/// A kind, then several values of that kind.
pub fn arb_values_of_one_kind() -> impl Strategy<Value = Vec<LatticeValue>> {
    prop::sample::select(LatticeKind::ALL.to_vec())
        .prop_flat_map(|kind| prop::collection::vec(arb_value(kind), 1..4))
}
