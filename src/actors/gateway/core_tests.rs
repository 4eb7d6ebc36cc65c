//! Unit tests of the gateway core: scheduler choice and conversions.

use super::*;
use crate::ids::{Generation, NodeRef, WriterId};
use crate::net::{Member, MemberState};
use bytes::Bytes;
use std::collections::BTreeSet;

fn member(id: &str, roles: &[Role], state: MemberState) -> Member {
    Member {
        node: NodeRef {
            id: NodeId::new(id),
            generation: Generation(1),
        },
        addr: "127.0.0.1:1".parse().unwrap(),
        roles: roles.iter().copied().collect::<BTreeSet<_>>(),
        state,
        kvs_shards: 0,
        draining: false,
    }
}

fn view(members: Vec<Member>) -> View {
    members.into_iter().collect()
}

#[test]
fn scheduler_prefers_this_node_then_any_live_one() {
    let v = view(vec![
        member("a", &[Role::Scheduler], MemberState::Alive),
        member("b", &[Role::Scheduler, Role::Gateway], MemberState::Alive),
        member("c", &[Role::Scheduler], MemberState::Dead),
        member("d", &[Role::Kvs], MemberState::Alive),
    ]);
    let me = NodeId::new("b");
    for spread in 0..4 {
        let s = pick_scheduler(&v, &me, spread).unwrap();
        assert_eq!(s.node.id, me);
        assert_eq!((s.service, s.instance), (ServiceId::Scheduler, 0));
    }
    let elsewhere = NodeId::new("d");
    let picked: BTreeSet<_> = (0..4)
        .map(|s| pick_scheduler(&v, &elsewhere, s).unwrap().node.id)
        .collect();
    assert_eq!(picked, [NodeId::new("a"), NodeId::new("b")].into());
    assert!(pick_scheduler(&view(vec![]), &me, 0).is_none());
}

#[test]
fn schedulers_of_draining_nodes_are_picked_only_when_no_other_is_left() {
    let draining = |id| Member {
        draining: true,
        ..member(id, &[Role::Scheduler, Role::Gateway], MemberState::Alive)
    };
    let v = view(vec![
        member("a", &[Role::Scheduler], MemberState::Alive),
        draining("b"),
    ]);
    for spread in 0..4 {
        let s = pick_scheduler(&v, &NodeId::new("b"), spread).unwrap();
        assert_eq!(s.node.id, NodeId::new("a"), "not even this node's own");
    }
    let only = view(vec![draining("b")]);
    assert_eq!(
        pick_scheduler(&only, &NodeId::new("x"), 0).unwrap().node.id,
        NodeId::new("b")
    );
}

#[test]
fn keys_are_checked_and_the_reserved_prefix_is_read_only() {
    assert!(client_key(String::new(), false).is_err());
    assert!(client_key("x".repeat(MAX_KEY_BYTES + 1), false).is_err());
    let reserved = format!("{RESERVED_PREFIX}results/x");
    assert!(client_key(reserved.clone(), false).is_ok());
    let err = client_key(reserved, true).unwrap_err();
    assert_eq!(err.code(), "invalid_request");
}

#[test]
fn values_round_trip_through_lattices() {
    let ts = Timestamp::new(5, WriterId(1));
    let key = Key::new("k");
    let v = WireValue::Value(MsgValue(Bytes::from_static(b"\xa1p")));
    assert_eq!(
        from_lattice(&key, to_lattice(v.clone(), ts).unwrap()).unwrap(),
        Some(v)
    );
    let s = WireValue::Set(vec![MsgValue(Bytes::from_static(b"\xa1a"))]);
    assert_eq!(
        from_lattice(&key, to_lattice(s.clone(), ts).unwrap()).unwrap(),
        Some(s)
    );
    let both = WireValue::Concurrent(vec![MsgValue(Bytes::from_static(b"\xa1a"))]);
    assert_eq!(to_lattice(both, ts).unwrap_err().code(), "invalid_request");
    let max = LatticeValue::Max(crate::lattice::Max::new(3));
    assert_eq!(
        from_lattice(&key, max).unwrap_err().code(),
        "unsupported_value"
    );
    // A stored value that is not whole MessagePack is refused, not copied into a frame.
    let torn = WireValue::Value(MsgValue(Bytes::from_static(b"\x92\x01")));
    let e = from_lattice(&key, to_lattice(torn, ts).unwrap()).unwrap_err();
    assert_eq!(e.code(), "storage_error");
}

#[test]
fn args_map_values_and_references() {
    let args = to_args(vec![
        WireArg::Value(MsgValue(Bytes::from_static(b"v"))),
        WireArg::Ref("k".into()),
    ])
    .unwrap();
    assert_eq!(
        args,
        vec![
            Arg::Value(PyValue::Packed(Bytes::from_static(b"v"))),
            Arg::Reference(Key::new("k"))
        ]
    );
    assert!(to_args(vec![WireArg::Ref(String::new())]).is_err());
}
