//! The cluster-wide parts of a sample: every node's figures added up, dead nodes kept.

use super::*;
use crate::config::Role;
use crate::ids::{Generation, NodeId, NodeRef};
use crate::metrics::{CallKind, Registry};
use crate::net::membership::Member;
use crate::protocol::PoolStats;
use std::time::Duration;

fn stats(node: &str, calls: u64, pool: bool) -> NodeStats {
    let r = Registry::default();
    for _ in 0..calls {
        r.record(CallKind::Function, "f", Duration::from_micros(100), true);
    }
    let mut recent = r.recent();
    for c in &mut recent {
        c.node = node.into();
    }
    NodeStats {
        node: node.into(),
        calls: r.snapshot(),
        recent,
        pool: pool.then_some(PoolStats {
            workers: 2,
            extra_workers: 0,
            utilisation: 0.5,
        }),
    }
}

fn member(id: &str, roles: &[Role], state: MemberState, kvs_shards: u32) -> Member {
    Member {
        node: NodeRef {
            id: NodeId::new(id),
            generation: Generation(1),
        },
        addr: "127.0.0.1:1".parse().expect("addr"),
        roles: roles.iter().copied().collect(),
        state,
        kvs_shards,
        draining: false,
    }
}

#[test]
fn every_nodes_calls_add_up_and_each_keeps_its_own() {
    let mut sample = Sample::default();
    from_nodes(
        &mut sample,
        vec![
            stats("b", 3, true),
            stats("a", 2, true),
            stats("g", 0, false),
        ],
    );
    assert_eq!(sample.calls.len(), 1);
    assert_eq!(sample.calls[0].count(), 5, "the cluster's calls");
    let per_node: Vec<(&str, u64)> = sample
        .node_calls
        .iter()
        .map(|n| (n.node.as_str(), n.calls.iter().map(|c| c.count()).sum()))
        .collect();
    assert_eq!(per_node, [("a", 2), ("b", 3), ("g", 0)]);
    let executors: Vec<&str> = sample.executors.iter().map(|e| e.node.as_str()).collect();
    assert_eq!(
        executors,
        ["a", "b"],
        "a node without a pool runs no executor"
    );
    assert_eq!(sample.recent.len(), 5);
    assert!(sample.recent.iter().all(|r| r.node == "a" || r.node == "b"));
}

#[test]
fn dead_members_keep_their_rows_shown_down() {
    let view = View {
        members: [
            member("a", &[Role::Executor, Role::Kvs], MemberState::Alive, 1),
            member("d", &[Role::Executor, Role::Kvs], MemberState::Dead, 2),
            member("l", &[Role::Executor], MemberState::Left, 0),
        ]
        .into_iter()
        .map(|m| (m.node.id.clone(), m))
        .collect(),
    };
    let mut sample = Sample::default();
    from_nodes(&mut sample, vec![stats("a", 1, true)]);
    sample.shards.push(ShardSample {
        node: "a".into(),
        keys: Some(3),
        ..ShardSample::default()
    });
    mark_down(&mut sample, &view);
    let ex: Vec<(&str, bool)> = sample
        .executors
        .iter()
        .map(|e| (e.node.as_str(), e.down))
        .collect();
    assert_eq!(ex, [("a", false), ("d", true)], "a node that left is gone");
    assert!(sample.caches.iter().any(|c| c.node == "d" && c.down));
    let shards: Vec<(&str, u32, bool)> = sample
        .shards
        .iter()
        .map(|s| (s.node.as_str(), s.shard, s.error.is_some()))
        .collect();
    assert_eq!(shards, [("a", 0, false), ("d", 0, true), ("d", 1, true)]);
    mark_down(&mut sample, &view);
    assert_eq!(sample.shards.len(), 3, "marking again adds nothing");
}
