//! A consistent hash ring with virtual nodes, generic over the member type (the KVS places
//! `(node, shard)` pairs on it).
//!
//! Deterministic: positions come from a stable 64-bit hash of the member's bytes (never
//! std's per-process `RandomState`), and equal positions are ordered by member, so the same
//! members give the same ring on every node whatever order they were added in.

use crate::config::Role;
use crate::ids::NodeId;
use crate::net::membership::View;
use std::collections::BTreeSet;

/// Something that can stand on a ring: ordered, and with stable bytes to hash.
pub trait RingMember: Clone + Ord {
    /// Append the bytes that identify this member (stable across processes and versions).
    fn ring_bytes(&self, out: &mut Vec<u8>);
}

impl RingMember for NodeId {
    fn ring_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_str().as_bytes());
    }
}

impl RingMember for String {
    fn ring_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RingMember for u32 {
    fn ring_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl<A: RingMember, B: RingMember> RingMember for (A, B) {
    fn ring_bytes(&self, out: &mut Vec<u8>) {
        self.0.ring_bytes(out);
        out.push(0xff); // separator: ("ab", 1) and ("a", b"b"..) never collide
        self.1.ring_bytes(out);
    }
}

/// Stable 64-bit hash: FNV-1a over the bytes, then the murmur3 `fmix64` finaliser so that
/// similar inputs (`node#1`, `node#2`) land far apart.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = fnv1a(bytes);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The ring.
#[derive(Debug, Clone)]
pub struct HashRing<T> {
    vnodes: usize,
    members: BTreeSet<T>,
    /// `(position, member)`, sorted.
    points: Vec<(u64, T)>,
}

impl<T: RingMember> HashRing<T> {
    /// An empty ring placing each member at `vnodes` positions (at least 1).
    pub fn new(vnodes: usize) -> Self {
        HashRing {
            vnodes: vnodes.max(1),
            members: BTreeSet::new(),
            points: Vec::new(),
        }
    }

    /// A ring of these members.
    pub fn with_members(vnodes: usize, members: impl IntoIterator<Item = T>) -> Self {
        let mut ring = HashRing::new(vnodes);
        for m in members {
            ring.insert_points(m);
        }
        ring.points.sort();
        ring
    }

    fn insert_points(&mut self, m: T) {
        if !self.members.insert(m.clone()) {
            return;
        }
        let mut bytes = Vec::new();
        m.ring_bytes(&mut bytes);
        bytes.push(0xfe);
        let base = bytes.len();
        for v in 0..self.vnodes as u32 {
            bytes.truncate(base);
            bytes.extend_from_slice(&v.to_le_bytes());
            self.points.push((stable_hash(&bytes), m.clone()));
        }
    }

    /// Add a member; true if it was not there.
    pub fn add(&mut self, m: T) -> bool {
        if self.members.contains(&m) {
            return false;
        }
        self.insert_points(m);
        self.points.sort();
        true
    }

    /// Remove a member; true if it was there.
    pub fn remove(&mut self, m: &T) -> bool {
        if !self.members.remove(m) {
            return false;
        }
        self.points.retain(|(_, p)| p != m);
        true
    }

    /// The members, in order.
    pub fn members(&self) -> impl Iterator<Item = &T> {
        self.members.iter()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Up to `n` distinct members responsible for `key`: the first at or after the key's
    /// position, then the next distinct ones walking clockwise. The first is the primary.
    pub fn owners(&self, key: &[u8], n: usize) -> Vec<T> {
        let n = n.min(self.members.len());
        let mut out: Vec<T> = Vec::with_capacity(n);
        if n == 0 {
            return out;
        }
        let h = stable_hash(key);
        let start = self.points.partition_point(|(p, _)| *p < h);
        let len = self.points.len();
        for i in 0..len {
            let (_, m) = &self.points[(start + i) % len];
            if !out.contains(m) {
                out.push(m.clone());
                if out.len() == n {
                    break;
                }
            }
        }
        out
    }
}

impl HashRing<NodeId> {
    /// The ring of live members of `view` playing `role` (dead and left members are out).
    pub fn from_view(view: &View, role: Role, vnodes: usize) -> Self {
        HashRing::with_members(vnodes, view.live_with_role(role).map(|m| m.node.id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("127.0.0.1:{}", 6100 + i)).collect()
    }

    fn key(i: usize) -> Vec<u8> {
        format!("key-{i}").into_bytes()
    }

    #[test]
    fn same_members_same_ring_whatever_the_order() {
        let a = HashRing::with_members(32, names(5));
        let mut b = HashRing::new(32);
        for m in names(5).into_iter().rev() {
            b.add(m);
        }
        for i in 0..1000 {
            assert_eq!(a.owners(&key(i), 3), b.owners(&key(i), 3));
        }
    }

    #[test]
    fn stable_hash_is_stable() {
        // Pinned: a change here reshuffles every cluster's keys.
        assert_eq!(
            fnv1a(b"a"),
            0xaf63_dc4c_8601_ec8c,
            "FNV-1a reference vector"
        );
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
        assert_eq!(stable_hash(b"cloudburst"), 5_129_242_025_623_548_465);
    }

    #[test]
    fn owners_are_distinct_and_bounded() {
        let ring = HashRing::with_members(16, names(4));
        for i in 0..200 {
            let o = ring.owners(&key(i), 3);
            assert_eq!(o.len(), 3);
            let set: BTreeSet<_> = o.iter().collect();
            assert_eq!(set.len(), 3);
        }
        assert_eq!(ring.owners(b"k", 10).len(), 4);
        assert!(HashRing::<String>::new(8).owners(b"k", 2).is_empty());
    }

    #[test]
    fn load_is_balanced_within_tolerance() {
        let ring = HashRing::with_members(128, names(8));
        let mut load: HashMap<String, usize> = HashMap::new();
        let keys = 80_000;
        for i in 0..keys {
            *load.entry(ring.owners(&key(i), 1)[0].clone()).or_default() += 1;
        }
        let mean = keys as f64 / 8.0;
        for (m, n) in load {
            let ratio = n as f64 / mean;
            assert!(
                (0.75..1.25).contains(&ratio),
                "{m} holds {ratio:.2} of its share"
            );
        }
    }

    #[test]
    fn adding_a_member_moves_only_keys_to_it() {
        let before = HashRing::with_members(64, names(5));
        let mut after = before.clone();
        let newcomer = "127.0.0.1:7000".to_string();
        after.add(newcomer.clone());
        let keys = 20_000;
        let mut moved = 0;
        for i in 0..keys {
            let (a, b) = (&before.owners(&key(i), 1)[0], &after.owners(&key(i), 1)[0]);
            if a != b {
                assert_eq!(*b, newcomer, "a key moved between old members");
                moved += 1;
            }
        }
        let share = moved as f64 / keys as f64;
        assert!(
            (0.08..0.28).contains(&share),
            "moved {share:.3}, expected about 1/6"
        );
    }

    #[test]
    fn remove_then_add_restores_the_ring() {
        let a = HashRing::with_members(16, names(4));
        let mut b = a.clone();
        assert!(b.remove(&names(4)[2]));
        assert!(!b.remove(&names(4)[2]));
        assert!(b.add(names(4)[2].clone()));
        for i in 0..500 {
            assert_eq!(a.owners(&key(i), 2), b.owners(&key(i), 2));
        }
    }

    #[test]
    fn pairs_of_node_and_shard_work() {
        let members = (0..3u32).flat_map(|s| names(3).into_iter().map(move |n| (n, s)));
        let ring = HashRing::with_members(16, members);
        assert_eq!(ring.len(), 9);
        assert_eq!(ring.owners(b"x", 2).len(), 2);
    }
}
