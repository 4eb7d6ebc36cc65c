//! Unit tests of the membership state machine, driven with fake time.

use super::core::*;
use crate::config::Role;
use crate::ids::{Generation, NodeId, NodeRef};
use std::time::{Duration, Instant};

const T: Timeouts = Timeouts {
    suspect_after: Duration::from_millis(300),
    dead_after: Duration::from_millis(800),
};

fn member(name: &str, generation: u64) -> Member {
    Member {
        node: NodeRef {
            id: NodeId::new(name),
            generation: Generation(generation),
        },
        addr: "127.0.0.1:1".parse().expect("addr"),
        roles: [Role::Kvs].into_iter().collect(),
        state: MemberState::Alive,
        kvs_shards: 1,
        draining: false,
    }
}

fn state(c: &MembershipCore, name: &str) -> Option<MemberState> {
    c.view().get(&NodeId::new(name)).map(|m| m.state)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn silence_makes_suspect_then_dead_and_contact_revives() {
    let t0 = Instant::now();
    let mut c = MembershipCore::new(member("a", 1), T, t0);
    assert!(c.heard_from(&member("b", 1), t0));
    assert!(!c.tick(t0 + ms(299)));
    assert_eq!(state(&c, "b"), Some(MemberState::Alive));
    assert!(c.tick(t0 + ms(300)));
    assert_eq!(state(&c, "b"), Some(MemberState::Suspect));
    assert!(c.tick(t0 + ms(800)));
    assert_eq!(state(&c, "b"), Some(MemberState::Dead));
    assert!(c.heard_from(&member("b", 1), t0 + ms(900)));
    assert_eq!(state(&c, "b"), Some(MemberState::Alive));
    assert_eq!(
        state(&c, "a"),
        Some(MemberState::Alive),
        "never suspects itself"
    );
}

#[test]
fn heartbeat_keeps_alive_without_change() {
    let t0 = Instant::now();
    let mut c = MembershipCore::new(member("a", 1), T, t0);
    c.heard_from(&member("b", 1), t0);
    for i in 1..20 {
        assert!(!c.heard_from(&member("b", 1), t0 + ms(i * 100)));
        assert!(!c.tick(t0 + ms(i * 100 + 50)));
    }
}

#[test]
fn newer_generation_replaces_older_and_older_is_ignored() {
    let t0 = Instant::now();
    let mut c = MembershipCore::new(member("a", 1), T, t0);
    c.heard_from(&member("b", 5), t0);
    c.tick(t0 + ms(900));
    assert_eq!(state(&c, "b"), Some(MemberState::Dead));
    assert!(c.heard_from(&member("b", 6), t0 + ms(1000)));
    let b = c.view().get(&NodeId::new("b")).expect("b").clone();
    assert_eq!(
        (b.node.generation, b.state),
        (Generation(6), MemberState::Alive)
    );
    assert!(!c.heard_from(&member("b", 5), t0 + ms(1000)));
    assert!(!c.merge([&member("b", 5)], t0 + ms(1000)));
    assert_eq!(
        c.view().get(&NodeId::new("b")).expect("b").node.generation,
        Generation(6)
    );
}

#[test]
fn gossip_spreads_members_and_leaves_but_not_liveness() {
    let t0 = Instant::now();
    let mut c = MembershipCore::new(member("a", 1), T, t0);
    assert!(c.merge([&member("b", 1), &member("c", 1)], t0));
    assert_eq!(c.view().members.len(), 3);
    c.tick(t0 + ms(800));
    assert_eq!(state(&c, "b"), Some(MemberState::Dead));
    // Someone else still believes b alive: that must not resurrect it here.
    assert!(!c.merge([&member("b", 1)], t0 + ms(850)));
    assert_eq!(state(&c, "b"), Some(MemberState::Dead));
    // A leave spreads.
    let mut left = member("c", 1);
    left.state = MemberState::Left;
    assert!(c.merge([&left], t0 + ms(850)));
    assert_eq!(state(&c, "c"), Some(MemberState::Left));
    // Unknown dead members are not added.
    let mut dead = member("d", 1);
    dead.state = MemberState::Dead;
    assert!(!c.merge([&dead], t0));
    assert_eq!(state(&c, "d"), None);
}

#[test]
fn leave_is_sticky_for_that_generation() {
    let t0 = Instant::now();
    let mut c = MembershipCore::new(member("a", 1), T, t0);
    c.heard_from(&member("b", 1), t0);
    assert!(c.leave(&member("b", 1).node, t0));
    assert!(!c.heard_from(&member("b", 1), t0 + ms(10)));
    assert_eq!(state(&c, "b"), Some(MemberState::Left));
    assert!(c.heartbeat_targets(true).is_empty());
    assert!(
        c.heard_from(&member("b", 2), t0 + ms(20)),
        "a restart rejoins"
    );
}

#[test]
fn tombstones_are_forgotten() {
    let t0 = Instant::now();
    let mut c = MembershipCore::new(member("a", 1), T, t0);
    c.heard_from(&member("b", 1), t0);
    c.tick(t0 + ms(800));
    assert_eq!(state(&c, "b"), Some(MemberState::Dead));
    assert!(c.tick(t0 + ms(800) + T.dead_after * TOMBSTONE_PERIODS));
    assert_eq!(state(&c, "b"), None);
}

#[test]
fn views_converge_by_merging() {
    let t0 = Instant::now();
    let mut a = MembershipCore::new(member("a", 1), T, t0);
    let mut b = MembershipCore::new(member("b", 1), T, t0);
    let mut c = MembershipCore::new(member("c", 1), T, t0);
    // b and c join through a.
    let me_b = b.me().expect("b").clone();
    let me_c = c.me().expect("c").clone();
    a.heard_from(&me_b, t0);
    a.heard_from(&me_c, t0);
    let va: Vec<Member> = a.view().members.values().cloned().collect();
    b.merge(&va, t0);
    c.merge(&va, t0);
    assert_eq!(a.view().summary(), b.view().summary());
    assert_eq!(b.view().summary(), c.view().summary());
}

#[test]
fn dead_members_are_probed_only_when_asked() {
    let t0 = Instant::now();
    let mut c = MembershipCore::new(member("a", 1), T, t0);
    c.heard_from(&member("b", 1), t0);
    c.heard_from(&member("c", 1), t0 + ms(700));
    c.tick(t0 + ms(800));
    assert_eq!(c.heartbeat_targets(false).len(), 1);
    assert_eq!(c.heartbeat_targets(true).len(), 2);
}

fn draining(c: &MembershipCore, name: &str) -> Option<bool> {
    c.view().get(&NodeId::new(name)).map(|m| m.draining)
}

#[test]
fn draining_spreads_first_and_second_hand_and_is_never_undone() {
    let t0 = Instant::now();
    let mut b = MembershipCore::new(member("b", 1), T, t0);
    assert!(b.start_draining());
    assert!(!b.start_draining(), "once");
    let b_me = b.me().cloned().expect("b");
    // a hears it from b itself; c only second-hand, from a's gossip.
    let mut a = MembershipCore::new(member("a", 1), T, t0);
    let mut c = MembershipCore::new(member("c", 1), T, t0);
    a.heard_from(&member("b", 1), t0);
    c.heard_from(&member("b", 1), t0);
    assert!(a.heard_from(&b_me, t0 + ms(10)));
    assert_eq!(draining(&a, "b"), Some(true));
    let a_view: Vec<Member> = a.view().members.values().cloned().collect();
    assert!(c.merge(&a_view, t0 + ms(20)));
    assert_eq!(draining(&c, "b"), Some(true));
    // A stale second-hand "not draining" does not undo it.
    assert!(!c.merge(&[member("b", 1)], t0 + ms(30)));
    assert_eq!(draining(&c, "b"), Some(true));
    // Placement skips it (c knows a, b and itself); it is still live (it serves what it
    // holds).
    let serving: Vec<_> = c
        .view()
        .serving_with_role(Role::Kvs)
        .map(|m| m.node.id.clone())
        .collect();
    assert_eq!(serving, [NodeId::new("a"), NodeId::new("c")]);
    assert_eq!(c.view().live_with_role(Role::Kvs).count(), 3);
    // Its next incarnation starts out serving.
    assert!(c.heard_from(&member("b", 2), t0 + ms(40)));
    assert_eq!(draining(&c, "b"), Some(false));
}
