//! The read window after a routing change: open until every shard handing keys off
//! confirmed, or until its bound.

use super::*;
use crate::ids::Generation;

fn node(i: u32, shards: u32) -> KvsNode {
    KvsNode {
        node: NodeRef {
            id: NodeId::new(format!("127.0.0.1:{}", 7000 + i)),
            generation: Generation(1),
        },
        shards,
    }
}

fn shards_of(r: &Routing, i: u32) -> Vec<ShardAddr> {
    let id = node(i, 1).node.id;
    r.all_shards()
        .into_iter()
        .filter(|s| s.node == id)
        .collect()
}

/// Confirm every shard of `r` but `except`; returns what the last confirmation returned.
fn confirm_all_but(t: &RoutingTable, r: &Routing, except: &ShardAddr) -> bool {
    let mut completed = false;
    for s in r.all_shards().into_iter().filter(|s| s != except) {
        assert!(!completed, "completed before the last shard");
        completed = t.confirm_handoff(r.id(), s);
    }
    completed
}

#[test]
fn the_read_window_ends_when_every_shard_of_the_new_routing_confirmed() {
    let three = Routing::new((0..3).map(|i| node(i, 2)), 16, 2);
    let t = RoutingTable::new(three.clone());
    let window = Duration::from_secs(60);
    assert!(t.recent_previous(window).is_none());
    let two = three.without(&node(2, 2).node.id);
    t.set(two.clone());
    assert!(t.recent_previous(window).is_some(), "open after the change");
    let last = shards_of(&two, 1)[1].clone();
    assert!(!confirm_all_but(&t, &two, &last));
    assert!(
        t.recent_previous(window).is_some(),
        "open until the last one"
    );
    assert!(t.confirm_handoff(two.id(), last.clone()));
    assert!(t.handed_off());
    assert!(
        t.recent_previous(window).is_none(),
        "closed by the confirmations"
    );
    assert!(!t.confirm_handoff(two.id(), last), "completes once");
}

#[test]
fn a_node_that_just_joined_waits_for_the_members_it_did_not_know() {
    // Its previous routing held only itself; the members it joined hold the keys it now
    // owns and hand them to it: their confirmations count, not only its own.
    let alone = Routing::new([node(0, 1)], 16, 2);
    let joined = Routing::new((0..3).map(|i| node(i, 1)), 16, 2);
    let t = RoutingTable::new(alone);
    t.set(joined.clone());
    assert!(!t.confirm_handoff(joined.id(), shards_of(&joined, 0)[0].clone()));
    assert!(t.recent_previous(Duration::from_secs(60)).is_some());
    assert!(!t.confirm_handoff(joined.id(), shards_of(&joined, 1)[0].clone()));
    assert!(t.confirm_handoff(joined.id(), shards_of(&joined, 2)[0].clone()));
}

#[test]
fn without_confirmations_the_window_ends_at_its_bound() {
    let t = RoutingTable::new(Routing::new((0..2).map(|i| node(i, 1)), 16, 1));
    t.set(Routing::new((0..3).map(|i| node(i, 1)), 16, 1));
    assert!(t.recent_previous(Duration::from_secs(60)).is_some());
    assert!(t.recent_previous(Duration::ZERO).is_none(), "bound passed");
    assert!(!t.handed_off());
}

#[test]
fn confirmations_for_another_routing_do_not_count_but_early_ones_do() {
    let two = Routing::new((0..2).map(|i| node(i, 1)), 16, 1);
    let three = Routing::new((0..3).map(|i| node(i, 1)), 16, 1);
    let t = RoutingTable::new(two.clone());
    let window = Duration::from_secs(60);
    // Peers switched to `three` and confirmed before this node did.
    for i in [0, 2] {
        assert!(!t.confirm_handoff(three.id(), shards_of(&three, i)[0].clone()));
    }
    t.set(three.clone());
    assert!(
        t.recent_previous(window).is_some(),
        "node 1 has not confirmed"
    );
    let one = shards_of(&three, 1)[0].clone();
    assert!(!t.confirm_handoff(two.id(), one.clone()), "another routing");
    assert!(t.recent_previous(window).is_some());
    assert!(t.confirm_handoff(three.id(), one));
    assert!(t.recent_previous(window).is_none());
}
