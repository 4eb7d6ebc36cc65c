//! Deletes in the shard core: tombstones read back, are left out of listings, beat older
//! writes and lose to later ones; writes after a delete; expiry; collection.

use super::core::{Origin, ShardCore};
use super::deletes::Expiry;
use crate::ids::{Key, WriterId};
use crate::lattice::strategies::{lww, set};
use crate::lattice::{LatticeValue, Timestamp, Tombstone};

type Core = ShardCore<u32, u32>;

fn ts(t: u64) -> Timestamp {
    Timestamp::new(t, WriterId(1))
}

fn tomb(t: u64) -> LatticeValue {
    LatticeValue::Tombstone(Tombstone::new(ts(t)))
}

fn live(c: &mut Core, k: &str) -> Option<LatticeValue> {
    c.get(&Key::new(k)).and_then(LatticeValue::into_live)
}

#[test]
fn a_delete_hides_the_key_until_a_later_write() {
    let mut c = Core::new(1024);
    let k = Key::new("k");
    c.put(k.clone(), lww(1, "v"), Origin::Client).expect("put");
    assert!(c.put(k.clone(), tomb(2), Origin::Client).expect("delete"));
    assert_eq!(c.get(&k), Some(tomb(2)), "reads carry the tombstone");
    assert_eq!(live(&mut c, "k"), None);
    assert!(c.keys_with_prefix("").is_empty(), "listings skip it");
    assert_eq!(c.stats(0).tombstones, 1);
    assert!(!c
        .put(k.clone(), lww(1, "late"), Origin::Replica)
        .expect("old"));
    assert!(c
        .put(k.clone(), lww(3, "new"), Origin::Client)
        .expect("new"));
    assert_eq!(live(&mut c, "k"), Some(lww(3, "new")));
    assert_eq!(c.stats(0).tombstones, 0);
}

#[test]
fn a_set_written_after_a_delete_survives_gossip_of_the_delete() {
    let (mut a, mut b) = (Core::new(1024), Core::new(1024));
    let k = Key::new("s");
    for c in [&mut a, &mut b] {
        c.put(k.clone(), set(&["old"]), Origin::Client)
            .expect("put");
        c.put(k.clone(), tomb(5), Origin::Client).expect("delete");
    }
    a.put(k.clone(), set(&["new"]), Origin::Client)
        .expect("put");
    let recreated = a.get(&k).expect("held");
    assert_eq!(recreated.clone().into_live(), Some(set(&["new"])));
    // Gossip both ways (a's recreated value, b's tombstone again): both converge on it.
    b.put(k.clone(), recreated.clone(), Origin::Replica)
        .expect("gossip");
    a.put(k.clone(), tomb(5), Origin::Replica).expect("gossip");
    assert_eq!(a.get(&k), Some(recreated.clone()));
    assert_eq!(b.get(&k), Some(recreated));
    assert_eq!(a.keys_with_prefix(""), vec![k]);
}

#[test]
fn an_empty_value_is_a_value_not_a_delete() {
    let mut c = Core::new(1024);
    c.put(Key::new("e"), lww(1, ""), Origin::Client)
        .expect("put");
    assert_eq!(live(&mut c, "e"), Some(lww(1, "")));
    assert_eq!(c.keys_with_prefix("").len(), 1);
    assert_eq!(c.stats(0).tombstones, 0);
}

fn expiring(ttl_us: u64) -> Core {
    Core::new(1024).with_expiry(Some(Expiry {
        prefix: "r/".into(),
        ttl_us,
    }))
}

#[test]
fn values_under_the_prefix_expire_into_the_same_tombstone_everywhere() {
    let (mut a, mut b) = (expiring(100), expiring(100));
    a.subscribe(9, [Key::new("r/1")]);
    for c in [&mut a, &mut b] {
        c.advance(1_000);
        c.put(Key::new("r/1"), lww(1_000, "x"), Origin::Client)
            .expect("put");
        c.put(Key::new("keep"), lww(1_000, "y"), Origin::Client)
            .expect("put");
        c.take_pushes();
        c.take_gossip(|_| vec![7]);
        c.advance(1_099);
        assert!(c.expire_due().is_empty());
        c.advance(1_100);
        assert_eq!(c.expire_due(), vec![(Key::new("r/1"), tomb(1_100))]);
    }
    assert_eq!(a.get(&Key::new("r/1")), b.get(&Key::new("r/1")));
    assert_eq!(
        live(&mut a, "keep"),
        Some(lww(1_000, "y")),
        "other keys stay"
    );
    let pushed = a.take_pushes();
    assert_eq!(pushed, vec![(9, vec![(Key::new("r/1"), tomb(1_100))])]);
    assert!(
        a.take_gossip(|_| vec![7]).is_empty(),
        "expiry is not gossiped"
    );
}

#[test]
fn an_expired_value_arriving_late_expires_on_arrival_and_a_rewrite_restarts_the_clock() {
    let mut c = expiring(100);
    c.advance(5_000);
    c.put(Key::new("r/old"), lww(10, "x"), Origin::Replica)
        .expect("handoff");
    assert_eq!(c.get(&Key::new("r/old")), Some(tomb(110)));
    c.put(Key::new("r/new"), lww(4_950, "x"), Origin::Client)
        .expect("put");
    c.put(Key::new("r/new"), lww(4_990, "y"), Origin::Client)
        .expect("rewrite");
    c.advance(5_060);
    assert!(
        c.expire_due().is_empty(),
        "the first write's deadline no longer applies"
    );
    c.advance(5_090);
    assert_eq!(c.expire_due().len(), 1);
}

#[test]
fn tombstones_are_collected_after_the_grace_and_only_as_they_were() {
    let mut c = Core::new(1024);
    c.advance(1_000);
    for k in ["a", "b", "c"] {
        c.put(Key::new(k), tomb(1), Origin::Replica)
            .expect("delete");
    }
    c.put(Key::new("d"), tomb(1), Origin::Client)
        .expect("delete");
    assert!(c.collectable(500, 10).is_empty(), "within the grace");
    c.advance(1_500);
    let mut due = c.collectable(500, 10);
    due.sort();
    assert_eq!(
        due.len(),
        3,
        "the one waiting for gossip is not a candidate: {due:?}"
    );
    // Meanwhile b was written again.
    c.put(Key::new("b"), lww(9, "back"), Origin::Replica)
        .expect("write");
    let dropped = c.collect(&due);
    assert_eq!(dropped, vec![Key::new("a"), Key::new("c")]);
    assert_eq!(c.get(&Key::new("a")), None);
    assert_eq!(live(&mut c, "b"), Some(lww(9, "back")));
    let s = c.stats(0);
    assert_eq!((s.keys, s.tombstones), (2, 1));
}

#[test]
fn a_replica_covers_a_tombstone_it_holds_beats_or_never_had() {
    let mut c = Core::new(1024);
    let t = Tombstone::new(ts(5));
    assert!(c.covers(&Key::new("none"), t));
    c.put(Key::new("same"), tomb(5), Origin::Replica)
        .expect("put");
    c.put(Key::new("later"), lww(6, "v"), Origin::Replica)
        .expect("put");
    c.put(Key::new("older"), lww(4, "v"), Origin::Replica)
        .expect("put");
    c.put(Key::new("set"), set(&["x"]), Origin::Replica)
        .expect("put");
    assert!(c.covers(&Key::new("same"), t));
    assert!(c.covers(&Key::new("later"), t));
    assert!(!c.covers(&Key::new("older"), t));
    assert!(!c.covers(&Key::new("set"), t));
}

#[test]
fn collected_and_released_keys_leave_the_indexes() {
    let mut c = expiring(100);
    c.advance(1_000);
    c.put(Key::new("r/x"), lww(1_000, "v"), Origin::Replica)
        .expect("put");
    c.forget(&Key::new("r/x"));
    c.advance(2_000);
    assert!(
        c.expire_due().is_empty(),
        "a forgotten key does not come back as a tombstone"
    );
    assert_eq!(c.stats(0).keys, 0);
}
