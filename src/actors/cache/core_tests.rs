//! Unit tests of [`CacheCore`]: LRU order and eviction by bytes, counters, versions,
//! update merging, in-flight buffering, kind mismatches, the report bound and pins.

use super::*;
use crate::ids::WriterId;
use crate::lattice::strategies::{lww, set};
use crate::lattice::{LatticeKind, Timestamp};

fn k(s: &str) -> Key {
    Key::new(s)
}

/// A cache with room for exactly `n` entries like `lww(_, "v")` under keys of one byte.
fn core_for(n: usize) -> CacheCore<u32> {
    CacheCore::new(n * entry_size(&k("a"), &lww(1, "v")))
}

fn hit(c: &mut CacheCore<u32>, key: &str) -> Option<Versioned> {
    match c.read(&k(key)) {
        Lookup::Hit(v) => Some(v),
        _ => None,
    }
}

#[test]
fn read_through_then_hit_counts() {
    let mut c = core_for(4);
    assert_eq!(c.read(&k("a")), Lookup::Miss);
    c.begin_fetch(k("a"), 7);
    assert_eq!(
        c.read(&k("a")),
        Lookup::Pending(7),
        "second reader joins the fetch"
    );
    let ins = c.insert_from_kvs(k("a"), Some(lww(1, "v")));
    assert!(ins.cached && ins.evicted.is_empty());
    assert_eq!(hit(&mut c, "a").map(|v| v.value), Some(lww(1, "v")));
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.keys), (1, 2, 1));
    assert_eq!(s.bytes as usize, entry_size(&k("a"), &lww(1, "v")));
}

#[test]
fn absent_key_is_not_cached() {
    let mut c = core_for(4);
    c.begin_fetch(k("a"), 1);
    let ins = c.insert_from_kvs(k("a"), None);
    assert_eq!((ins.value, ins.cached), (None, false));
    assert!(!c.wants(&k("a")));
    assert_eq!(c.read(&k("a")), Lookup::Miss);
}

#[test]
fn evicts_least_recently_read_by_bytes() {
    let mut c = core_for(3);
    for key in ["a", "b", "c"] {
        assert!(c.insert_from_kvs(k(key), Some(lww(1, "v"))).cached);
    }
    // Reading `a` makes `b` the least recently used.
    assert!(hit(&mut c, "a").is_some());
    let ins = c.insert_from_kvs(k("d"), Some(lww(1, "v")));
    assert_eq!(ins.evicted, vec![k("b")]);
    let ins = c.insert_from_kvs(k("e"), Some(lww(1, "v")));
    assert_eq!(ins.evicted, vec![k("c")]);
    assert!(hit(&mut c, "b").is_none());
    assert!(hit(&mut c, "a").is_some());
    let s = c.stats();
    assert_eq!((s.evictions, s.keys), (2, 3));
    assert!(s.bytes <= s.capacity);
}

#[test]
fn one_large_value_evicts_several_small_ones() {
    let mut c = core_for(4);
    for key in ["a", "b", "c", "d"] {
        c.insert_from_kvs(k(key), Some(lww(1, "v")));
    }
    let room = c.stats().capacity as usize;
    // Big enough to need the room of three small entries (but not all four).
    let big = "x".repeat(room / 2);
    let ins = c.insert_from_kvs(k("z"), Some(lww(1, &big)));
    assert!(ins.cached);
    assert!(ins.evicted.len() >= 2, "evicted {:?}", ins.evicted);
    assert_eq!(ins.evicted[0], k("a"), "oldest first");
    assert!(c.stats().bytes <= c.stats().capacity);
}

#[test]
fn value_larger_than_capacity_is_served_not_cached() {
    let mut c = core_for(2);
    c.insert_from_kvs(k("a"), Some(lww(1, "v")));
    let huge = "x".repeat(10_000);
    let ins = c.insert_from_kvs(k("h"), Some(lww(1, &huge)));
    assert_eq!(ins.value, Some(lww(1, &huge)));
    assert!(
        !ins.cached && ins.evicted.is_empty(),
        "nothing evicted for it"
    );
    assert!(hit(&mut c, "a").is_some());
    assert_eq!(c.stats().too_large, 1);
}

#[test]
fn version_bumps_only_on_change() {
    let mut c = core_for(4);
    c.insert_from_kvs(k("a"), Some(lww(1, "v")));
    let v0 = hit(&mut c, "a").map(|v| v.version);
    let u = c.merge_update(k("a"), lww(1, "v"));
    assert_eq!(u.outcome, UpdateOutcome::Unchanged);
    let u = c.merge_update(k("a"), lww(0, "old"));
    assert_eq!(u.outcome, UpdateOutcome::Unchanged, "an older write loses");
    assert_eq!(hit(&mut c, "a").map(|v| v.version), v0);
    let u = c.merge_update(k("a"), lww(2, "w"));
    let UpdateOutcome::Changed(v1) = u.outcome else {
        panic!("expected a change, got {:?}", u.outcome);
    };
    assert!(Some(v1) > v0);
    let now = hit(&mut c, "a").expect("held");
    assert_eq!((now.version, now.value), (v1, lww(2, "w")));
    assert_eq!(c.stats().updates, 1);
}

#[test]
fn versions_never_repeat_after_eviction() {
    let mut c = core_for(1);
    c.insert_from_kvs(k("a"), Some(lww(1, "v")));
    let first = hit(&mut c, "a").expect("held").version;
    c.insert_from_kvs(k("b"), Some(lww(1, "v")));
    assert!(hit(&mut c, "a").is_none(), "evicted");
    c.insert_from_kvs(k("a"), Some(lww(1, "v")));
    assert!(hit(&mut c, "a").expect("held again").version > first);
}

#[test]
fn set_updates_merge_and_grow_the_entry() {
    let mut c = CacheCore::<u32>::new(10_000);
    c.insert_from_kvs(k("s"), Some(set(&["a"])));
    let before = c.stats().bytes;
    c.merge_update(k("s"), set(&["b"]));
    assert_eq!(hit(&mut c, "s").map(|v| v.value), Some(set(&["a", "b"])));
    assert!(c.stats().bytes > before);
}

#[test]
fn growth_past_capacity_evicts_others_then_itself() {
    let mut c = core_for(3);
    for key in ["a", "b", "c"] {
        c.insert_from_kvs(k(key), Some(lww(1, "v")));
    }
    let room = c.stats().capacity as usize;
    let u = c.merge_update(k("c"), lww(2, &"x".repeat(room / 2)));
    assert_eq!(u.evicted, vec![k("a"), k("b")]);
    let u = c.merge_update(k("c"), lww(3, &"x".repeat(room)));
    assert_eq!(u.evicted, vec![k("c")]);
    assert_eq!((c.stats().keys, c.stats().bytes), (0, 0));
}

#[test]
fn kind_mismatch_on_update_is_refused_not_a_panic() {
    let mut c = core_for(4);
    c.insert_from_kvs(k("a"), Some(lww(1, "v")));
    let u = c.merge_update(k("a"), set(&["x"]));
    assert!(matches!(
        u.outcome,
        UpdateOutcome::Refused(LatticeError::KindMismatch {
            have: LatticeKind::Lww,
            got: LatticeKind::SetUnion
        })
    ));
    assert_eq!(hit(&mut c, "a").map(|v| v.value), Some(lww(1, "v")));
    assert_eq!(c.stats().refused_updates, 1);
}

#[test]
fn updates_during_a_fetch_are_buffered_and_merged() {
    let mut c = core_for(4);
    c.begin_fetch(k("a"), 1);
    assert_eq!(
        c.merge_update(k("a"), lww(5, "new")).outcome,
        UpdateOutcome::Buffered
    );
    // The read's reply was produced before the update reached that replica.
    let ins = c.insert_from_kvs(k("a"), Some(lww(1, "old")));
    assert_eq!(ins.value, Some(lww(5, "new")));
    assert_eq!(hit(&mut c, "a").map(|v| v.value), Some(lww(5, "new")));
    // A buffered update for a key absent in the KVS makes it present.
    c.begin_fetch(k("b"), 2);
    c.merge_update(k("b"), lww(1, "b"));
    assert!(c.insert_from_kvs(k("b"), None).cached);
}

#[test]
fn updates_for_keys_not_held_are_ignored() {
    let mut c = core_for(4);
    assert_eq!(
        c.merge_update(k("a"), lww(1, "v")).outcome,
        UpdateOutcome::NotHeld
    );
    assert_eq!(c.read(&k("a")), Lookup::Miss);
    assert_eq!(c.stats().ignored_updates, 1);
    c.begin_fetch(k("b"), 1);
    c.abort_fetch(&k("b"));
    assert!(!c.wants(&k("b")));
}

#[test]
fn held_keys_are_most_recent_first_and_bounded() {
    let mut c = core_for(4);
    for key in ["a", "b", "c", "d"] {
        c.insert_from_kvs(k(key), Some(lww(1, "v")));
    }
    hit(&mut c, "b");
    assert_eq!(c.held_keys(10, 1000), vec![k("b"), k("d"), k("c"), k("a")]);
    assert_eq!(c.held_keys(2, 1000), vec![k("b"), k("d")]);
    assert_eq!(c.held_keys(10, 3), vec![k("b"), k("d"), k("c")]);
}

#[test]
fn pinned_values_survive_updates_and_eviction() {
    let mut c = core_for(1);
    let s = CallId(9);
    let now = Instant::now();
    c.insert_from_kvs(k("a"), Some(lww(1, "v")));
    let first = Some(lww(1, "v"));
    assert_eq!(c.pin_value(s, &k("a"), first.clone(), now), first);
    c.merge_update(k("a"), lww(2, "w"));
    assert_eq!(
        c.pin_value(s, &k("a"), Some(lww(2, "w")), now),
        first,
        "first pin wins"
    );
    c.insert_from_kvs(k("b"), Some(lww(1, "v")));
    assert!(hit(&mut c, "a").is_none(), "evicted from the LRU");
    assert_eq!(c.pinned(s, &k("a"), now), Some(first), "the pin stays");
    assert_eq!(c.pin_value(s, &k("gone"), None, now), None);
    assert_eq!(
        c.pinned(s, &k("gone"), now),
        Some(None),
        "absence is pinned"
    );
    assert_eq!(c.pinned(CallId(10), &k("a"), now), None, "other session");
    assert_eq!(c.stats().pinned, 2);
    assert_eq!(c.unpin_session(s), 2);
    assert_eq!(c.pinned(s, &k("a"), now), None);
    assert_eq!(c.stats().pinned, 0);
}

#[test]
fn unused_sessions_expire_and_uses_postpone_it() {
    let mut c = core_for(1000);
    let t0 = Instant::now();
    let ttl = Duration::from_secs(10);
    c.pin_value(CallId(1), &k("a"), None, t0);
    c.pin_value(CallId(2), &k("a"), None, t0);
    c.pinned(CallId(2), &k("a"), t0 + Duration::from_secs(8));
    assert_eq!(c.expire_pins(t0 + Duration::from_secs(11), ttl), 1);
    assert_eq!(c.stats().pinned, 1, "session 2 was used at 8 s");
    assert_eq!(c.expire_pins(t0 + Duration::from_secs(19), ttl), 1);
    assert_eq!((c.stats().pinned, c.pinned_sessions()), (0, 0));
}

#[test]
fn confirmation_keeps_the_latest_ask() {
    let mut c = core_for(1000);
    let t0 = Instant::now();
    c.confirm(&k("a"), t0);
    assert_eq!(c.confirmed_at(&k("a")), None, "not held");
    c.insert_from_kvs(k("a"), Some(lww(1, "v")));
    assert_eq!(c.confirmed_at(&k("a")), None, "never confirmed yet");
    c.confirm(&k("a"), t0 + Duration::from_secs(2));
    c.confirm(&k("a"), t0 + Duration::from_secs(1));
    assert_eq!(c.confirmed_at(&k("a")), Some(t0 + Duration::from_secs(2)));
}

fn tomb(time: u64) -> LatticeValue {
    LatticeValue::Tombstone(crate::lattice::Tombstone::new(Timestamp::new(
        time,
        WriterId(1),
    )))
}

#[test]
fn deleted_keys_are_not_held() {
    let mut c = core_for(4);
    c.insert_from_kvs(k("a"), Some(lww(1, "v")));
    c.insert_from_kvs(k("b"), Some(lww(1, "v")));
    let u = c.merge_update(k("a"), tomb(2));
    assert!(matches!(u.outcome, UpdateOutcome::Changed(_)));
    assert_eq!(
        u.evicted,
        vec![k("a")],
        "the entry goes (and its subscription)"
    );
    assert_eq!(c.read(&k("a")), Lookup::Miss);
    assert_eq!(c.stats().keys, 1);
    assert_eq!(
        c.stats().bytes as usize,
        entry_size(&k("b"), &lww(1, "v")),
        "its bytes are freed"
    );
    // A read through the KVS that finds the tombstone returns it, uncached.
    let ins = c.insert_from_kvs(k("a"), Some(tomb(2)));
    assert_eq!((ins.value, ins.cached), (Some(tomb(2)), false));
    // An older update pushed later is not held either.
    assert_eq!(
        c.merge_update(k("a"), lww(1, "v")).outcome,
        UpdateOutcome::NotHeld
    );
    // A later write is held again.
    let ins = c.insert_from_kvs(k("a"), Some(lww(3, "w")));
    assert!(ins.cached);
}
