//! Unit tests of the shard core: puts, kinds, limits, gossip, pushes, hand-off, stats.

use super::*;
use crate::lattice::strategies::{lww, set};

type Core = ShardCore<u32, u32>;

#[test]
fn put_then_get_merges() {
    let mut c = Core::new(1024);
    let k = Key::new("k");
    assert!(c.put(k.clone(), lww(2, "new"), Origin::Client).expect("ok"));
    assert!(!c.put(k.clone(), lww(1, "old"), Origin::Client).expect("ok"));
    assert_eq!(c.get(&k), Some(lww(2, "new")));
    assert_eq!(c.get(&Key::new("missing")), None);
}

#[test]
fn first_write_fixes_the_kind() {
    let mut c = Core::new(1024);
    let k = Key::new("k");
    c.put(k.clone(), set(&["a"]), Origin::Client).expect("ok");
    let err = c.put(k.clone(), lww(1, "x"), Origin::Client).unwrap_err();
    assert!(matches!(err, KvsError::KindMismatch { .. }), "{err}");
    assert_eq!(c.get(&k), Some(set(&["a"])));
    assert_eq!(c.stats(0).rejected, 1);
}

#[test]
fn empty_and_huge_keys_are_refused() {
    let mut c = Core::new(1024);
    let err = c
        .put(Key::new(""), lww(1, "x"), Origin::Client)
        .unwrap_err();
    assert!(matches!(err, KvsError::Malformed(_)));
    let long = Key::new("k".repeat(MAX_KEY_BYTES + 1));
    assert!(c.put(long, lww(1, "x"), Origin::Client).is_err());
    assert_eq!(c.stats(0).keys, 0);
}

#[test]
fn oversized_value_is_refused() {
    let mut c = Core::new(16);
    let big = lww(1, &"x".repeat(64));
    let err = c.put(Key::new("k"), big, Origin::Client).unwrap_err();
    assert!(matches!(err, KvsError::ValueTooLarge { max: 16, .. }));
    assert_eq!(c.stats(0).keys, 0);
}

#[test]
fn only_client_changes_are_gossiped() {
    let mut c = Core::new(1024);
    c.put(Key::new("a"), lww(1, "x"), Origin::Client)
        .expect("ok");
    c.put(Key::new("b"), lww(1, "y"), Origin::Replica)
        .expect("ok");
    // An unchanged client put is not gossiped either.
    let out = c.take_gossip(|_| vec![7, 8]);
    assert_eq!(out.len(), 2);
    for (_, batch) in &out {
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].0, Key::new("a"));
    }
    assert!(c.take_gossip(|_| vec![7]).is_empty(), "dirty set drained");
    c.put(Key::new("a"), lww(1, "x"), Origin::Client)
        .expect("ok");
    assert!(
        c.take_gossip(|_| vec![7]).is_empty(),
        "no change, no gossip"
    );
    c.requeue([Key::new("a")]);
    assert_eq!(c.take_gossip(|_| vec![7]).len(), 1, "requeued key resent");
}

#[test]
fn subscribers_get_changed_keys_once_per_batch() {
    let mut c = Core::new(1024);
    c.subscribe(5, [Key::new("a")]);
    c.put(Key::new("a"), lww(1, "x"), Origin::Client)
        .expect("ok");
    c.put(Key::new("a"), lww(2, "y"), Origin::Replica)
        .expect("ok");
    c.put(Key::new("b"), lww(1, "z"), Origin::Client)
        .expect("ok");
    let pushes = c.take_pushes();
    assert_eq!(pushes, vec![(5, vec![(Key::new("a"), lww(2, "y"))])]);
    assert!(c.take_pushes().is_empty());
    c.unsubscribe(&5, [Key::new("a")]);
    c.put(Key::new("a"), lww(3, "w"), Origin::Client)
        .expect("ok");
    assert!(c.take_pushes().is_empty());
    assert_eq!(c.subscription_count(), 0);
}

#[test]
fn handoff_sends_everything_and_lists_disowned_keys() {
    let mut c = Core::new(1024);
    c.put(Key::new("mine"), lww(1, "x"), Origin::Client)
        .expect("ok");
    c.put(Key::new("gone"), lww(1, "y"), Origin::Client)
        .expect("ok");
    c.subscribe(4, [Key::new("gone")]);
    c.take_gossip(|_| vec![]); // a dirty key is released only after it was gossiped
    let h = c.handoff(None, |k| (vec![9], k.as_str() == "mine"));
    assert_eq!(h.batches.len(), 1);
    assert_eq!(h.batches[0].1.len(), 2);
    assert_eq!(h.subscriptions, vec![(9, 4, vec![Key::new("gone")])]);
    assert_eq!(h.disowned.len(), 1);
    assert_eq!(h.disowned[0].0, Key::new("gone"));
    let before = c.stats(0).bytes;
    assert!(c.release(&h.disowned).is_empty());
    let after = c.stats(0);
    assert_eq!(after.keys, 1);
    assert!(after.bytes < before);
    assert_eq!(
        c.subscription_count(),
        0,
        "subscriptions of released keys go too"
    );
}

#[test]
fn a_key_written_during_handoff_is_not_released() {
    let mut c = Core::new(1024);
    c.put(Key::new("k"), lww(1, "old"), Origin::Client)
        .expect("ok");
    c.take_gossip(|_| vec![]);
    let h = c.handoff(None, |_| (vec![9], false));
    // A client that has not seen the new routing yet writes here meanwhile.
    c.put(Key::new("k"), lww(2, "new"), Origin::Client)
        .expect("ok");
    assert_eq!(c.release(&h.disowned), vec![Key::new("k")]);
    assert_eq!(c.get(&Key::new("k")), Some(lww(2, "new")));
    // Handed off again and unchanged: now it goes.
    c.take_gossip(|_| vec![]);
    let again = c.handoff(Some(&[Key::new("k")]), |_| (vec![9], false));
    assert!(c.release(&again.disowned).is_empty());
    assert_eq!(c.get(&Key::new("k")), None);
}

#[test]
fn growing_sets_are_bounded_by_the_value_limit() {
    let mut c = Core::new(64);
    let k = Key::new("s");
    let mut refused = false;
    for i in 0..64 {
        if c.put(k.clone(), set(&[&format!("item-{i}")]), Origin::Client)
            .is_err()
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "a set cannot grow past the value limit");
    assert!(c.stats(0).bytes <= 64);
}

#[test]
fn stats_count_and_rank_hot_keys() {
    let mut c = Core::new(1024);
    for i in 0..5 {
        c.put(Key::new(format!("k{i}")), lww(1, "v"), Origin::Client)
            .expect("ok");
    }
    for _ in 0..10 {
        c.get(&Key::new("k3"));
    }
    let s = c.stats(2);
    assert_eq!(s.keys, 5);
    assert_eq!(s.gets, 10);
    assert_eq!(s.puts, 5);
    assert_eq!(s.hot_keys.len(), 2);
    assert_eq!(s.hot_keys[0], ("k3".to_string(), 11));
    assert_eq!(c.keys_with_prefix("k").len(), 5);
}
