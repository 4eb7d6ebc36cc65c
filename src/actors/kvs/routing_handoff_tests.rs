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

#[test]
fn the_read_window_ends_when_every_shard_handing_off_confirmed() {
    let three = Routing::new((0..3).map(|i| node(i, 2)), 16, 2);
    let t = RoutingTable::new(three.clone());
    assert!(t.recent_previous(Duration::from_secs(60)).is_none());
    t.set(three.without(&node(2, 2).node.id));
    let to = t.get().id();
    let window = Duration::from_secs(60);
    assert!(t.recent_previous(window).is_some(), "open after the change");
    let handing: Vec<ShardAddr> = [0, 1]
        .iter()
        .flat_map(|&i| shards_of(&t.get(), i))
        .collect();
    assert_eq!(handing.len(), 4, "every shard of the nodes that stay");
    for s in &handing[..3] {
        assert!(!t.confirm_handoff(to.clone(), s.clone()));
        assert!(
            t.recent_previous(window).is_some(),
            "open until the last one"
        );
    }
    assert!(t.confirm_handoff(to.clone(), handing[3].clone()));
    assert!(t.handed_off());
    assert!(
        t.recent_previous(window).is_none(),
        "closed by the confirmations"
    );
    assert!(!t.confirm_handoff(to, handing[0].clone()), "completes once");
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
fn confirmations_for_another_routing_do_not_close_the_window_but_early_ones_count() {
    let two = Routing::new((0..2).map(|i| node(i, 1)), 16, 1);
    let three = Routing::new((0..3).map(|i| node(i, 1)), 16, 1);
    let t = RoutingTable::new(two.clone());
    let window = Duration::from_secs(60);
    // A peer switched to `three` and confirmed before this node did.
    let early = shards_of(&three, 0);
    assert!(!t.confirm_handoff(three.id(), early[0].clone()));
    t.set(three.clone());
    assert!(
        t.recent_previous(window).is_some(),
        "node 1 has not confirmed"
    );
    assert!(
        !t.confirm_handoff(two.id(), shards_of(&three, 1)[0].clone()),
        "stale"
    );
    assert!(t.recent_previous(window).is_some());
    assert!(t.confirm_handoff(three.id(), shards_of(&three, 1)[0].clone()));
    assert!(t.recent_previous(window).is_none());
}

#[test]
fn a_change_with_nobody_to_hand_off_has_no_window() {
    let t = RoutingTable::new(Routing::new([], 16, 1));
    t.set(Routing::new([node(0, 2)], 16, 1));
    assert!(t.handed_off());
    assert!(t.recent_previous(Duration::from_secs(60)).is_none());
}
