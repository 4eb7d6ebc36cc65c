//! Unit tests of [`VectorClock`]: the causal order, the base, clouds of single events, the
//! normal form (also after decoding) and an event-set model checked on random clocks.

use super::*;
use crate::lattice::laws::check_laws;
use crate::lattice::strategies::{arb_vector_clock, based, clock, roundtrip, with_dots};
use crate::lattice::{Max, VersionSet};
use proptest::prelude::*;
use std::collections::BTreeSet;

const A: u64 = 1;
const B: u64 = 2;

fn samples() -> Vec<VectorClock> {
    vec![
        clock(&[(A, 1)]),
        clock(&[(A, 2)]),
        clock(&[(B, 1)]),
        clock(&[(A, 1), (B, 1)]),
        clock(&[(A, 0), (3, u64::MAX)]),
        based(1, &[(B, 2)]),
        based(2, &[]),
        based(u64::MAX, &[]),
        with_dots(clock(&[(A, 3)]), &[(A, 5)]),
        with_dots(clock(&[(A, 3)]), &[(A, 4)]),
        with_dots(based(1, &[]), &[(A, 3), (B, 9), (B, u64::MAX)]),
        with_dots(VectorClock::new(), &[(A, 2)]),
    ]
}

/// Decode a wire form built by hand: counters (writer 0 is the base) and clouds.
fn decode(counters: &[(u64, u64)], clouds: &[(u64, &[u64])]) -> VectorClock {
    let counters: BTreeMap<WriterId, u64> =
        counters.iter().map(|&(w, c)| (WriterId(w), c)).collect();
    let clouds: BTreeMap<WriterId, Vec<u64>> = clouds
        .iter()
        .map(|&(w, c)| (WriterId(w), c.to_vec()))
        .collect();
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec((&counters, &clouds), config).unwrap();
    let (v, _): (VectorClock, usize) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
    v
}

#[test]
fn laws_hold_on_hand_picked_values() {
    check_laws(&samples()).unwrap();
}

#[test]
fn compare_is_the_causal_order() {
    let a = clock(&[(A, 1)]);
    let b = clock(&[(A, 2), (B, 1)]);
    let c = clock(&[(B, 2)]);
    assert_eq!(a.compare(&b), Some(Ordering::Less));
    assert_eq!(b.compare(&a), Some(Ordering::Greater));
    assert_eq!(a.compare(&a.clone()), Some(Ordering::Equal));
    assert_eq!(b.compare(&c), None);
    assert!(b.dominates(&a) && !a.dominates(&b) && !a.dominates(&a));
    assert!(b.concurrent_with(&c) && !a.concurrent_with(&b));
    assert!(b.covers(&a) && b.covers(&b) && !a.covers(&b));
    assert_eq!(VectorClock::new().compare(&a), Some(Ordering::Less));
}

#[test]
fn the_base_includes_every_writer_up_to_it() {
    let compacted = based(10, &[(A, 12)]);
    let old = clock(&[(A, 5), (B, 7)]);
    assert!(compacted.covers(&old) && compacted.dominates(&old));
    assert!(
        !compacted.covers(&clock(&[(B, 11)])),
        "b:11 is above the base"
    );
    assert!(compacted.includes(WriterId(99), 10) && !compacted.includes(WriterId(99), 11));
    assert!(compacted.includes(WriterId(A), 12) && !compacted.includes(WriterId(A), 13));
    assert!(
        based(10, &[]).concurrent_with(&clock(&[(A, 11)])),
        "{{base 10}} lacks a:11, {{a:11}} lacks every other writer's 1..=10"
    );
    assert!(
        !based(3, &[]).covers(&based(4, &[])),
        "a base is never covered by entries"
    );
    assert!(based(4, &[(A, 9)]).covers(&based(3, &[(A, 9), (B, 4)])));
}

#[test]
fn merge_takes_the_larger_base_and_drops_what_it_covers() {
    let mut v = clock(&[(A, 5)]);
    assert!(v.merge(based(6, &[])));
    assert_eq!(v, based(6, &[]));
    assert!(!v.merge(clock(&[(A, 5)])), "already included");
    assert!(!v.merge(based(2, &[(B, 6)])), "b:6 is at the base");
    assert!(v.merge(based(2, &[(B, 7)])));
    assert_eq!(v, based(6, &[(B, 7)]));
    assert!(v.merge(based(7, &[])));
    assert_eq!(v, based(7, &[]), "b:7 folded into the base");
}

#[test]
fn fold_before_compacts() {
    let mut v = clock(&[(A, 3), (B, 8)]);
    assert!(v.fold_before(5));
    assert_eq!(v, based(5, &[(B, 8)]));
    assert!(
        !v.fold_before(4) && !v.fold_before(5),
        "the base never goes down"
    );
    assert!(v.fold_before(8));
    assert_eq!(v, based(8, &[]));
    assert_eq!((v.len(), v.max_counter()), (1, 8));
    assert!(!VectorClock::new().fold_before(0));
}

#[test]
fn new_events_are_above_the_base() {
    let mut v = based(10, &[]);
    assert_eq!(v.increment(WriterId(A)), 11);
    assert_eq!(v.advance_to(WriterId(A), 5), 12);
    assert_eq!(v.advance_to(WriterId(A), 100), 100);
    assert_eq!(v.advance_to(WriterId(B), 0), 11);
    assert_eq!(v, based(10, &[(A, 100), (B, 11)]));
    assert_eq!(v.max_counter(), 100);
    let mut top = based(u64::MAX, &[]);
    assert_eq!(top.increment(WriterId(A)), u64::MAX, "saturates, no panic");
    assert_eq!(top, based(u64::MAX, &[]), "that event was already included");
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "the base is not a writer")]
fn incrementing_the_base_is_a_bug() {
    VectorClock::new().increment(BASE);
}

#[test]
#[cfg(not(debug_assertions))]
fn incrementing_the_base_changes_nothing_in_release() {
    let mut v = based(3, &[(A, 4)]);
    assert_eq!(v.increment(BASE), 3);
    assert_eq!(v.advance_to(BASE, 9), 3);
    assert_eq!(v, based(3, &[(A, 4)]));
}

#[test]
fn increment_and_zero_entries() {
    let mut v = VectorClock::new();
    assert_eq!(v.max_counter(), 0);
    assert_eq!(v.increment(WriterId(7)), 1);
    assert_eq!(v.increment(WriterId(7)), 2);
    assert_eq!(v.get(WriterId(7)), 2);
    assert_eq!(v.get(WriterId(8)), 0);
    assert_eq!(
        clock(&[(A, 0)]),
        VectorClock::new(),
        "zero entries are not stored"
    );
    let mut top = clock(&[(A, u64::MAX)]);
    assert_eq!(top.increment(WriterId(A)), u64::MAX, "saturates, no panic");
}

#[test]
fn decoding_normalises() {
    assert_eq!(decode(&[(A, 0), (B, 3)], &[]), clock(&[(B, 3)]));
    assert_eq!(decode(&[(0, 10), (A, 3)], &[]), based(10, &[]));
    assert_eq!(
        decode(&[(0, 10), (A, 10), (B, 11)], &[]),
        based(10, &[(B, 11)])
    );
    assert_eq!(decode(&[(0, 0), (A, 3)], &[]), clock(&[(A, 3)]));
    let n = with_dots(clock(&[(A, 3)]), &[(A, 5)]);
    assert_eq!(decode(&[(A, 3)], &[(A, &[5, 2, 5, 0])]), n, "dup, within");
    assert_eq!(decode(&[(A, 3)], &[(A, &[6, 5, 4])]), clock(&[(A, 6)]));
    assert_eq!(
        decode(&[], &[(A, &[1, 2, 3, 5])]),
        n,
        "a cloud from 1 folds"
    );
    assert_eq!(
        decode(&[(0, 3)], &[(A, &[3, 5])]),
        with_dots(based(3, &[]), &[(A, 5)])
    );
    assert_eq!(decode(&[(0, 3)], &[(A, &[4])]), based(3, &[(A, 4)]));
    assert_eq!(
        decode(&[], &[(0, &[1, 7])]),
        VectorClock::new(),
        "no base cloud"
    );
    assert_eq!(
        decode(&[], &[(B, &[])]),
        VectorClock::new(),
        "no empty cloud"
    );
    let top = decode(&[(A, u64::MAX - 1)], &[(A, &[u64::MAX, u64::MAX])]);
    assert_eq!(
        top,
        clock(&[(A, u64::MAX)]),
        "folds at the top, no overflow"
    );
    let far = decode(&[], &[(A, &[u64::MAX, 1])]);
    assert_eq!(
        (far.get(WriterId(A)), far.cloud_len()),
        (1, 1),
        "no loop to MAX"
    );
    for v in samples() {
        assert_eq!(roundtrip(&v), v);
    }
}

#[test]
fn empty_clouds_cost_one_byte_on_the_wire() {
    let config = bincode::config::standard();
    let v = clock(&[(A, 3), (B, 4)]);
    let plain: BTreeMap<WriterId, u64> = v.iter().collect();
    let with = bincode::serde::encode_to_vec(&v, config).unwrap();
    let without = bincode::serde::encode_to_vec(&plain, config).unwrap();
    assert_eq!(with.len(), without.len() + 1);
}

#[test]
fn a_cloud_holds_single_events_above_the_prefix() {
    let n = WriterId(A);
    let mut v = with_dots(clock(&[(A, 3)]), &[(A, 5)]);
    assert_eq!((v.get(n), v.cloud_len(), v.max_dot(n)), (3, 1, 5));
    assert!(v.contains(n, 3) && !v.contains(n, 4) && v.contains(n, 5) && !v.contains(n, 6));
    assert!(v.covers(&clock(&[(A, 3)])));
    assert!(v.covers(&with_dots(VectorClock::new(), &[(A, 5)])));
    assert!(!v.covers(&with_dots(VectorClock::new(), &[(A, 4)])));
    assert!(!v.covers(&clock(&[(A, 5)])), "a prefix of 5 claims event 4");
    assert!(clock(&[(A, 5)]).dominates(&v));
    assert!(!v.insert_dot(n, 5) && !v.insert_dot(n, 2) && !v.insert_dot(n, 0));
    assert!(v.insert_dot(n, 4), "(N, 4) extends the prefix");
    assert_eq!(v, clock(&[(A, 5)]), "and folds the cloud into it");
    assert_eq!((v.cloud_len(), v.len()), (0, 1));
    assert_eq!(
        with_dots(VectorClock::new(), &[(B, 3), (B, 2), (B, 1)]),
        clock(&[(B, 3)])
    );
}

#[test]
fn the_base_and_new_events_settle_clouds() {
    let (a, b) = (WriterId(A), WriterId(B));
    let mut v = with_dots(clock(&[(A, 1)]), &[(A, 4), (A, 6), (B, 9)]);
    assert_eq!(
        (v.max_counter(), v.max_dot(a), v.max_dot(b), v.len()),
        (9, 6, 9, 4)
    );
    assert!(v.fold_before(3));
    assert_eq!(
        v,
        with_dots(based(3, &[(A, 4)]), &[(A, 6), (B, 9)]),
        "4 extends base 3"
    );
    assert!(v.fold_before(9));
    assert_eq!(v, based(9, &[]));
    let mut w = with_dots(clock(&[(A, 1)]), &[(A, 4)]);
    assert_eq!(w.increment(a), 5, "above the cloud");
    assert_eq!(w, clock(&[(A, 5)]), "claims 1..=5");
    let mut w = with_dots(VectorClock::new(), &[(A, 40)]);
    assert_eq!(w.advance_to(a, 30), 41);
    assert_eq!(w.advance_to(a, 100), 100);
    assert_eq!((w.cloud_len(), w.max_counter()), (0, 100));
    let mut m = with_dots(clock(&[(A, 2)]), &[(A, 4)]);
    assert!(m.merge(clock(&[(A, 3)])), "the prefix meets the cloud");
    assert_eq!(m, clock(&[(A, 4)]));
    assert!(!m.merge(with_dots(VectorClock::new(), &[(A, 4)])));
}

#[test]
fn histories_with_gaps_are_concurrent_versions() {
    let h = |dot| with_dots(clock(&[(A, 3)]), &[(A, dot)]);
    let (h5, h4) = (h(5), h(4));
    assert!(h5.concurrent_with(&h4), "{h5:?} vs {h4:?}");
    let mut set = VersionSet::single(h5.clone(), Max::new(5u64));
    assert!(set.insert(h4.clone(), Max::new(4)));
    assert_eq!(set.len(), 2, "both kept: {set:?}");
    let both = with_dots(h5.clone(), &[(A, 4), (A, 6)]);
    assert_eq!(both, clock(&[(A, 6)]));
    assert!(both.dominates(&h5) && both.dominates(&h4));
    assert!(set.insert(both.clone(), Max::new(6)));
    assert_eq!(set, VersionSet::single(both, Max::new(6)));
}

/// The events of `v` among writers 1..=3 and one writer (9) that no strategy clock
/// names, with counters up to one above the strategy's largest dot: enough to tell clocks
/// apart.
fn events(v: &VectorClock) -> BTreeSet<(u64, u64)> {
    let all = [1, 2, 3, 9]
        .into_iter()
        .flat_map(|w| (1..=7).map(move |c| (w, c)));
    all.filter(|&(w, c)| v.contains(WriterId(w), c)).collect()
}

/// No zero counter, no writer entry at or below the base, no cloud under the base writer,
/// and every cloud event of a writer more than one above its prefix.
fn is_normal(v: &VectorClock) -> bool {
    let prefix = |w| v.get(w).max(v.base());
    v.iter().all(|(w, c)| c > 0 && (w == BASE || c > v.base()))
        && v.dots()
            .all(|(w, c)| w != BASE && c > prefix(w).saturating_add(1))
}

/// `v` with the events of `dots` added to the model and the clock.
fn model_insert(v: &VectorClock, dots: &[(u64, u64)]) -> (VectorClock, BTreeSet<(u64, u64)>) {
    let mut model = events(v);
    model.extend(dots.iter().filter(|&&(_, c)| c > 0));
    (with_dots(v.clone(), dots), model)
}

proptest! {
    // Cheap: enough cases that a based clock meets one with more, smaller entries.
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn laws_hold_on_random_values(values in prop::collection::vec(arb_vector_clock(), 1..5)) {
        check_laws(&values).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    #[test]
    fn compare_agrees_with_merge(a in arb_vector_clock(), b in arb_vector_clock()) {
        let mut joined = a.clone();
        joined.merge_ref(&b);
        prop_assert_eq!(a.covers(&b), joined == a);
        prop_assert_eq!(a.compare(&b).map(Ordering::reverse), b.compare(&a));
        prop_assert_eq!(roundtrip(&a), a);
    }

    /// Covers is inclusion of event sets, merge is union, fold adds the events below
    /// the new base, and a normalised clock is determined by its events (antisymmetry).
    #[test]
    fn clocks_are_sets_of_events(a in arb_vector_clock(), b in arb_vector_clock(), t in 0u64..5) {
        let (ea, eb) = (events(&a), events(&b));
        prop_assert!(is_normal(&a));
        prop_assert_eq!(a.covers(&b), eb.is_subset(&ea));
        prop_assert_eq!(a == b, ea == eb);
        let mut joined = a.clone();
        joined.merge_ref(&b);
        prop_assert!(is_normal(&joined));
        prop_assert_eq!(events(&joined), &ea | &eb);
        let mut folded = a.clone();
        prop_assert_eq!(folded.fold_before(t), t > a.base());
        prop_assert!(is_normal(&folded));
        let below: BTreeSet<_> = events(&based(t, &[]));
        prop_assert_eq!(events(&folded), &ea | &below);
        let mut rebuilt: VectorClock = a.iter().collect();
        for (w, c) in a.dots() {
            rebuilt.insert_dot(w, c);
        }
        prop_assert_eq!(rebuilt, a.clone());
        prop_assert_eq!(a.max_counter(), ea.iter().map(|e| e.1).max().unwrap_or(0).max(a.base()));
    }

    /// Inserting single events adds exactly them, keeps the normal form, and reports
    /// whether the set grew.
    #[test]
    fn dots_are_single_events(
        a in arb_vector_clock(),
        dots in prop::collection::vec((1u64..4, 0u64..8), 0..4),
    ) {
        let (inserted, model) = model_insert(&a, &dots);
        prop_assert!(is_normal(&inserted));
        prop_assert_eq!(events(&inserted), model);
        let mut one = a.clone();
        for &(w, c) in &dots {
            let before = events(&one);
            let changed = one.insert_dot(WriterId(w), c);
            prop_assert_eq!(changed, !before.contains(&(w, c)) && c > 0);
        }
        prop_assert_eq!(roundtrip(&inserted), inserted);
    }
}
