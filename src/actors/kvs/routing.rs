//! Where each key lives: the replica set of a key is `k` distinct KVS *nodes* taken from a
//! consistent hash ring over the live KVS nodes of the membership view, and on each node the
//! key belongs to shard `hash(key) % shards_on_that_node`. Replicas are therefore always on
//! different nodes, so an acknowledged write survives the loss of `k - 1` nodes.
//!
//! A hot key may have more replicas: the monitor's overrides ([`super::overrides`]) give it
//! `write` replicas for writes and `read` ones to read from, taken further along the same
//! ring, so its first `k` replicas (its *base* replicas) never change with them.
//!
//! A [`RoutingTable`] holds the current [`Routing`]; the KVS watcher replaces it whenever the
//! view (or the overrides) change, and readers take a cheap `Arc` snapshot per operation.

use super::messages::ShardAddr;
use super::overrides::OverrideMap;
use crate::config::Role;
use crate::ids::{Key, NodeId, NodeRef};
use crate::net::membership::View;
use crate::net::ring::{stable_hash, HashRing};
use crate::net::{ActorRef, ServiceId};
use crate::protocol::ReplicationOverride;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// One KVS node as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvsNode {
    pub node: NodeRef,
    pub shards: u32,
}

/// An immutable routing snapshot.
#[derive(Debug, Clone)]
pub struct Routing {
    ring: HashRing<NodeId>,
    vnodes: usize,
    nodes: HashMap<NodeId, KvsNode>,
    replication: usize,
    /// Keys with more replicas than `replication` (None: no key has).
    overrides: Option<OverrideMap>,
}

impl Routing {
    /// Routing over explicit KVS nodes (ring with `vnodes` virtual nodes each).
    pub fn new(
        nodes: impl IntoIterator<Item = KvsNode>,
        vnodes: usize,
        replication: usize,
    ) -> Self {
        let nodes: HashMap<NodeId, KvsNode> = nodes
            .into_iter()
            .filter(|n| n.shards > 0)
            .map(|n| (n.node.id.clone(), n))
            .collect();
        Routing {
            ring: HashRing::with_members(vnodes, nodes.keys().cloned()),
            vnodes,
            nodes,
            replication: replication.max(1),
            overrides: None,
        }
    }

    /// This routing with `overrides` for the hot keys.
    pub fn with_overrides(&self, overrides: Option<OverrideMap>) -> Routing {
        Routing {
            overrides,
            ..self.clone()
        }
    }

    /// Routing over the live KVS members of a membership view.
    pub fn from_view(view: &View, vnodes: usize, replication: usize) -> Self {
        Routing::new(
            view.live_with_role(Role::Kvs).map(|m| KvsNode {
                node: m.node.clone(),
                shards: m.kvs_shards,
            }),
            vnodes,
            replication,
        )
    }

    /// The same routing without `node` (what the cluster will use once it has left).
    pub fn without(&self, node: &NodeId) -> Routing {
        Routing::new(
            self.nodes.values().filter(|n| &n.node.id != node).cloned(),
            self.vnodes,
            self.replication,
        )
        .with_overrides(self.overrides.clone())
    }

    /// No KVS node at all.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The KVS nodes, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &KvsNode> {
        self.nodes.values()
    }

    /// The configured replication factor (the replica set may be smaller while fewer KVS
    /// nodes are alive).
    pub fn replication(&self) -> usize {
        self.replication
    }

    /// The replica set of `key`, primary first: where writes, gossip and hand-offs go.
    pub fn replicas(&self, key: &Key) -> Vec<ShardAddr> {
        self.owners(key, self.factor(key, false))
    }

    /// The replicas a read of `key` may ask, primary first: its base replicas (the first
    /// [`Self::replication`]), and while it is replicated as hot the extra ones already
    /// filled.
    pub fn read_replicas(&self, key: &Key) -> Vec<ShardAddr> {
        self.owners(key, self.factor(key, true))
    }

    /// How many replicas `key` gets for writes (or reads): one map lookup with an override
    /// in place, none without.
    fn factor(&self, key: &Key, read: bool) -> usize {
        let Some(map) = &self.overrides else {
            return self.replication;
        };
        map.get(key).map_or(self.replication, |r| {
            let n = if read { r.read } else { r.write };
            n.max(self.replication)
        })
    }

    fn owners(&self, key: &Key, n: usize) -> Vec<ShardAddr> {
        self.ring
            .owners(key.as_str().as_bytes(), n)
            .into_iter()
            .filter_map(|id| {
                let n = self.nodes.get(&id)?;
                Some(ShardAddr {
                    shard: shard_of(key, n.shards),
                    node: id,
                })
            })
            .collect()
    }

    /// Every shard of every KVS node (for listing and stats).
    pub fn all_shards(&self) -> Vec<ShardAddr> {
        let mut out: Vec<ShardAddr> = self
            .nodes
            .values()
            .flat_map(|n| {
                (0..n.shards).map(|s| ShardAddr {
                    node: n.node.id.clone(),
                    shard: s,
                })
            })
            .collect();
        out.sort();
        out
    }

    /// The actor address of a shard in this snapshot (with the node's current generation).
    pub fn actor(&self, shard: &ShardAddr) -> Option<ActorRef> {
        let n = self.nodes.get(&shard.node)?;
        Some(ActorRef::new(
            n.node.clone(),
            ServiceId::KvsShard,
            shard.shard,
        ))
    }

    /// The incarnation of a KVS node in this snapshot.
    pub fn node(&self, id: &NodeId) -> Option<&NodeRef> {
        self.nodes.get(id).map(|n| &n.node)
    }

    /// What names this routing on every node that built the same one from its view.
    pub fn id(&self) -> RoutingId {
        let mut nodes: Vec<(NodeRef, u32)> = self
            .nodes
            .values()
            .map(|n| (n.node.clone(), n.shards))
            .collect();
        nodes.sort();
        RoutingId(nodes)
    }
}

/// A routing's KVS node incarnations with their shard counts, sorted: equal on two nodes
/// exactly when they route every key alike (same ring settings assumed, as the cluster
/// requires).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingId(Vec<(NodeRef, u32)>);

/// Which shard of a node with `shards` shards holds `key`. Uses a hash independent of the
/// ring position so the keys of one ring arc spread over all shards.
pub fn shard_of(key: &Key, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let h = stable_hash(key.as_str().as_bytes());
    // Mix the other half of the bits in: ring positions order by the whole hash.
    let mixed = (h >> 32) ^ (h.rotate_left(17) & 0xffff_ffff);
    (mixed % u64::from(shards)) as u32
}

/// Routings remembered from before a KVS node crashed, at most: enough for several
/// crashes in a row; when more come, the oldest is forgotten (its keys may then read as
/// missing rather than unavailable).
pub const MAX_LOST_ROUTINGS: usize = 16;

/// Hand-off confirmations kept for a routing this node has not switched to yet (a peer may
/// switch and finish its hand-off first): enough for every shard of a large cluster; the
/// oldest go first (the read window then ends at its time bound instead).
pub const MAX_EARLY_CONFIRMATIONS: usize = 4096;

/// The shared, replaceable routing snapshot. It also remembers the previous snapshot and
/// when it was replaced: while keys move after a change, readers also ask the previous
/// owners, until every shard of the new routing confirmed its hand-off (or a time bound).
/// And how many KVS members the view holds as dead (crashed, not forgotten yet):
/// tombstones are not collected meanwhile. And the key ranges lost to crashes (see
/// [`RoutingTable::is_lost`]).
#[derive(Debug, Clone)]
pub struct RoutingTable {
    current: Arc<RwLock<State>>,
    crashed: Arc<AtomicUsize>,
    lost: Arc<RwLock<Lost>>,
    /// The override registers the node holds (for a monitor taking over on this node).
    registers: Arc<RwLock<Vec<(Key, ReplicationOverride)>>>,
}

/// KVS nodes that crashed (left the routing dead, without handing their keys off) and are
/// not back, with the routings that still held them.
#[derive(Debug, Default)]
struct Lost {
    nodes: BTreeSet<NodeId>,
    before: Vec<Arc<Routing>>,
}

#[derive(Debug, Clone)]
struct Snapshot {
    current: Arc<Routing>,
    previous: Arc<Routing>,
    changed: Instant,
    /// Every shard of `current` confirmed its hand-off (to `current`).
    handed_off: bool,
}

/// The snapshot, and the hand-off confirmations behind its `handed_off`.
#[derive(Debug)]
struct State {
    snap: Snapshot,
    /// Shards of the current routing yet to confirm their hand-off.
    waiting: BTreeSet<ShardAddr>,
    /// Confirmations for routings other than the current one, newest last.
    early: VecDeque<(RoutingId, ShardAddr)>,
}

impl RoutingTable {
    pub fn new(initial: Routing) -> Self {
        let initial = Arc::new(initial);
        RoutingTable {
            current: Arc::new(RwLock::new(State {
                snap: Snapshot {
                    previous: initial.clone(),
                    current: initial,
                    changed: Instant::now(),
                    handed_off: true,
                },
                waiting: BTreeSet::new(),
                early: VecDeque::new(),
            })),
            crashed: Arc::new(AtomicUsize::new(0)),
            lost: Arc::default(),
            registers: Arc::default(),
        }
    }

    /// Record which KVS nodes crashed: `crashed` left the current routing dead (the
    /// current routing is remembered as one that held them), `returned` are live again.
    /// Call before [`Self::set`] replaces the routing that held the crashed nodes.
    pub fn note_crashes(&self, crashed: &[NodeId], returned: &[NodeId]) {
        let mut lost = match self.lost.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        for n in returned {
            lost.nodes.remove(n);
        }
        if !crashed.is_empty() {
            lost.nodes.extend(crashed.iter().cloned());
            if lost.before.len() >= MAX_LOST_ROUTINGS {
                lost.before.remove(0);
            }
            let held = self.get();
            lost.before.push(held);
        }
        if lost.nodes.is_empty() {
            lost.before.clear();
        }
    }

    /// Whether every replica `key` had before a crash is a crashed node that has not come
    /// back: its value (if it had one) is unreachable, so "missing" would be a lie.
    pub fn is_lost(&self, key: &Key) -> bool {
        let lost = match self.lost.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        lost.before.iter().any(|r| {
            let reps = r.replicas(key);
            !reps.is_empty() && reps.iter().all(|s| lost.nodes.contains(&s.node))
        })
    }

    /// An operator declared `node` lost: it no longer makes keys read as unavailable (as
    /// if it had returned empty). Returns whether it was held as crashed.
    pub fn declare_lost(&self, node: &NodeId) -> bool {
        let held = self.crashed_nodes().contains(node);
        if held {
            self.note_crashes(&[], std::slice::from_ref(node));
        }
        held
    }

    /// The crashed KVS nodes not back yet.
    pub fn crashed_nodes(&self) -> Vec<NodeId> {
        match self.lost.read() {
            Ok(g) => g.nodes.iter().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().nodes.iter().cloned().collect(),
        }
    }

    /// Record how many KVS members the membership view holds as dead.
    pub fn set_crashed(&self, members: usize) {
        self.crashed.store(members, Ordering::Relaxed);
    }

    /// Whether the KVS is settled enough to collect tombstones: the routing unchanged for
    /// `window`, and no KVS member dead (see `super::deletes`).
    pub fn settled(&self, window: Duration) -> bool {
        self.crashed.load(Ordering::Relaxed) == 0 && self.read().changed.elapsed() >= window
    }

    fn read(&self) -> Snapshot {
        match self.current.read() {
            Ok(g) => g.snap.clone(),
            Err(poisoned) => poisoned.into_inner().snap.clone(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The current snapshot.
    pub fn get(&self) -> Arc<Routing> {
        self.read().current
    }

    /// The previous snapshot while keys may still be moving to the current one: it was
    /// replaced less than `window` ago and not every shard of the current one confirmed
    /// its hand-off.
    pub fn recent_previous(&self, window: Duration) -> Option<Arc<Routing>> {
        let s = self.read();
        (!s.handed_off && s.changed.elapsed() < window && !Arc::ptr_eq(&s.previous, &s.current))
            .then_some(s.previous)
    }

    /// When the routing last changed.
    pub fn changed_at(&self) -> Instant {
        self.read().changed
    }

    /// Whether every shard of the current routing confirmed its hand-off.
    pub fn handed_off(&self) -> bool {
        self.read().handed_off
    }

    /// `shard` finished handing off its keys for the routing `to`: every owner in `to`
    /// acknowledged them. Returns whether that completed the current routing's hand-off.
    pub fn confirm_handoff(&self, to: RoutingId, shard: ShardAddr) -> bool {
        let mut g = self.write();
        if g.snap.current.id() != to {
            if g.early.len() >= MAX_EARLY_CONFIRMATIONS {
                g.early.pop_front();
            }
            g.early.push_back((to, shard));
            return false;
        }
        let was = g.snap.handed_off;
        g.waiting.remove(&shard);
        g.snap.handed_off = g.waiting.is_empty();
        !was && g.snap.handed_off
    }

    /// Give the current (and previous) routing new hot-key `overrides`: not a routing
    /// change (the nodes are the same; hand-off and its confirmations go on as they were).
    pub fn set_overrides(&self, overrides: Option<OverrideMap>) {
        let mut g = self.write();
        let current = Arc::new(g.snap.current.with_overrides(overrides.clone()));
        let previous = match Arc::ptr_eq(&g.snap.previous, &g.snap.current) {
            true => current.clone(),
            false => Arc::new(g.snap.previous.with_overrides(overrides)),
        };
        g.snap.current = current;
        g.snap.previous = previous;
    }

    /// Remember the override registers this node holds.
    pub fn set_override_registers(&self, registers: Vec<(Key, ReplicationOverride)>) {
        match self.registers.write() {
            Ok(mut g) => *g = registers,
            Err(poisoned) => *poisoned.into_inner() = registers,
        }
    }

    /// The override registers this node holds, as last set.
    pub fn override_registers(&self) -> Vec<(Key, ReplicationOverride)> {
        match self.registers.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replace the snapshot; returns the previous one. Readers ask the previous owners too
    /// until every shard of `next` confirmed its hand-off ([`Self::confirm_handoff`]).
    pub fn set(&self, next: Routing) -> Arc<Routing> {
        let mut g = self.write();
        let next = Arc::new(next.with_overrides(g.snap.current.overrides.clone()));
        let id = next.id();
        // Every shard of the new routing hands off what it holds to the owners it lacks
        // and confirms, a shard new to this node's routing too: this node's previous
        // routing may not be the cluster's (a node that just joined knew only itself).
        let mut waiting: BTreeSet<ShardAddr> = next.all_shards().into_iter().collect();
        let early = std::mem::take(&mut g.early);
        g.early = early
            .into_iter()
            .filter(|(to, shard)| match *to == id {
                true => {
                    waiting.remove(shard);
                    false
                }
                false => true,
            })
            .collect();
        let previous = std::mem::replace(&mut g.snap.current, next);
        g.snap.previous = previous.clone();
        g.snap.changed = Instant::now();
        g.snap.handed_off = waiting.is_empty();
        g.waiting = waiting;
        previous
    }
}

#[cfg(test)]
#[path = "routing_handoff_tests.rs"]
mod handoff_tests;

#[cfg(test)]
mod tests {
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

    #[test]
    fn replicas_are_on_distinct_nodes() {
        let r = Routing::new((0..4).map(|i| node(i, 2)), 32, 3);
        for i in 0..500 {
            let reps = r.replicas(&Key::new(format!("key{i}")));
            assert_eq!(reps.len(), 3);
            let mut nodes: Vec<_> = reps.iter().map(|s| s.node.clone()).collect();
            nodes.dedup();
            nodes.sort();
            nodes.dedup();
            assert_eq!(nodes.len(), 3);
            assert!(reps.iter().all(|s| s.shard < 2));
        }
    }

    #[test]
    fn fewer_nodes_than_replicas_gives_what_exists() {
        let r = Routing::new((0..1).map(|i| node(i, 4)), 32, 3);
        assert_eq!(r.replicas(&Key::new("k")).len(), 1);
        assert!(Routing::new([], 32, 3).replicas(&Key::new("k")).is_empty());
    }

    #[test]
    fn shards_are_used_evenly() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[shard_of(&Key::new(format!("k{i}")), 4) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn table_swaps_snapshots() {
        let t = RoutingTable::new(Routing::new([], 8, 1));
        assert!(t.get().is_empty());
        t.set(Routing::new([node(0, 1)], 8, 1));
        assert_eq!(t.get().all_shards().len(), 1);
    }

    #[test]
    fn ranges_whose_every_holder_crashed_are_lost_until_one_returns() {
        let key = |i: u32| Key::new(format!("k{i}"));
        let t = RoutingTable::new(Routing::new((0..3).map(|i| node(i, 1)), 16, 1));
        let dead = node(1, 1).node.id;
        let held_by_dead: Vec<Key> = (0..200)
            .map(key)
            .filter(|k| t.get().replicas(k)[0].node == dead)
            .collect();
        assert!(!held_by_dead.is_empty());
        t.note_crashes(std::slice::from_ref(&dead), &[]);
        t.set(t.get().without(&dead));
        assert!(held_by_dead.iter().all(|k| t.is_lost(k)));
        let others = (0..200).map(key).filter(|k| !held_by_dead.contains(k));
        assert!(others.into_iter().all(|k| !t.is_lost(&k)));
        t.note_crashes(&[], std::slice::from_ref(&dead));
        assert!(held_by_dead.iter().all(|k| !t.is_lost(k)), "back");
        assert!(t.crashed_nodes().is_empty());
    }

    #[test]
    fn with_two_replicas_one_crash_loses_nothing_and_two_lose_the_shared_ranges() {
        let t = RoutingTable::new(Routing::new((0..4).map(|i| node(i, 1)), 16, 2));
        let (a, b) = (node(0, 1).node.id, node(1, 1).node.id);
        let keys: Vec<Key> = (0..300).map(|i| Key::new(format!("k{i}"))).collect();
        t.note_crashes(std::slice::from_ref(&a), &[]);
        t.set(t.get().without(&a));
        assert!(keys.iter().all(|k| !t.is_lost(k)));
        let shared: Vec<&Key> = keys
            .iter()
            .filter(|k| {
                let mut reps: Vec<_> = Routing::new((0..4).map(|i| node(i, 1)), 16, 2)
                    .replicas(k)
                    .into_iter()
                    .map(|s| s.node)
                    .collect();
                reps.sort();
                reps == vec![a.clone(), b.clone()]
            })
            .collect();
        assert!(!shared.is_empty());
        t.note_crashes(std::slice::from_ref(&b), &[]);
        t.set(t.get().without(&b));
        assert!(shared.iter().all(|k| t.is_lost(k)));
    }

    #[test]
    fn unsettled_after_a_change_or_while_a_member_is_dead() {
        let t = RoutingTable::new(Routing::new([], 8, 1));
        assert!(t.settled(Duration::ZERO));
        t.set(Routing::new([node(0, 1)], 8, 1));
        assert!(!t.settled(Duration::from_secs(60)), "changed just now");
        t.set_crashed(1);
        assert!(!t.settled(Duration::ZERO));
        t.set_crashed(0);
        assert!(t.settled(Duration::ZERO));
    }
}
