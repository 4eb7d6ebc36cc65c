//! Deletes in one shard, no I/O: which keys hold a tombstone and since when, which values
//! expire and when, and the rule for dropping a tombstone for good.
//!
//! # When a replica drops a tombstone
//! A tombstone has to outlive every copy of the value it deleted: merged into a replica
//! that no longer holds the tombstone, an old copy would be the key's value again. So a
//! replica drops its tombstone of a key only when all of these hold:
//! 1. it has held that tombstone for the grace period (`kvs.tombstone_grace_ms`), longer
//!    than a write, a gossip batch or a hand-off batch can be under way: a request gives up
//!    before that, and a batch that failed is sent again with the values current by then,
//!    which include the tombstone;
//! 2. the routing has not changed for the rebalance window: keys handed to new owners after
//!    a change have arrived, and reads no longer merge the previous owners' copies;
//! 3. no KVS member is dead (crashed and not yet forgotten by membership): a crashed replica
//!    comes back with whatever its log holds, and is repaired by the others only while
//!    they still hold the tombstone;
//! 4. every other current replica of the key answered that it holds that tombstone, a later
//!    write, or nothing for the key. A replica holding an older value is handed the
//!    tombstone by the question itself and answers no, so a later round can collect.
//!
//! Each replica decides for itself; one that already dropped its copy answers "nothing".
//! The drop is logged like a hand-off release, so a restart does not bring the tombstone's
//! value back either. What this cannot cover: a node that stays away longer than
//! membership remembers it (ten `dead_after` periods) and then rejoins with its old data
//! directory may bring back values deleted meanwhile; such a node should rejoin empty.
//! A value recreated after a delete is a live value and never collected.
//!
//! # Expiry
//! Values under one prefix (future results) may expire: an Lww value written at `t` becomes
//! the tombstone `(t + ttl, its writer)` on each replica by itself. Every replica computes
//! the same tombstone, so expiry needs no coordination and no gossip, and an expired value
//! arriving late (a hand-off from a node that was away) expires on arrival.

use crate::ids::Key;
use crate::lattice::{LatticeValue, Timestamp, Tombstone};
use std::collections::{BTreeSet, HashMap};

/// Values under `prefix` expire `ttl_us` after they were written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// Keys this applies to.
    pub prefix: String,
    /// Microseconds from a value's write timestamp to its expiry.
    pub ttl_us: u64,
}

impl Expiry {
    /// When the value of `key` expires, and the tombstone it becomes then; `None` if it
    /// does not expire (another prefix, or not an Lww value).
    pub fn of(&self, key: &Key, value: &LatticeValue) -> Option<(u64, Tombstone)> {
        let LatticeValue::Lww(l) = value else {
            return None;
        };
        if !key.as_str().starts_with(&self.prefix) {
            return None;
        }
        let at = l.timestamp.time.saturating_add(self.ttl_us);
        Some((at, Tombstone::new(Timestamp::new(at, l.timestamp.writer))))
    }
}

/// The delete bookkeeping of one shard.
#[derive(Debug, Default)]
pub struct Deletes {
    expiry: Option<Expiry>,
    /// Keys holding a bare tombstone, with when this shard came to hold it (µs).
    tombstones: HashMap<Key, u64>,
    /// `(expires at µs, key)` of values that expire (an entry whose key was rewritten since
    /// is checked and skipped when due).
    expiring: BTreeSet<(u64, Key)>,
}

impl Deletes {
    /// Bookkeeping with values expiring as `expiry` says (none if `None`).
    pub fn new(expiry: Option<Expiry>) -> Self {
        Deletes {
            expiry,
            ..Deletes::default()
        }
    }

    /// `key` now holds `value` (it changed at `now_us`). Returns the tombstone to merge at
    /// once if the value has expired already.
    pub fn changed(&mut self, key: &Key, value: &LatticeValue, now_us: u64) -> Option<Tombstone> {
        if value.is_tombstone() {
            self.tombstones.insert(key.clone(), now_us);
        } else {
            self.tombstones.remove(key);
        }
        let (at, tombstone) = self.expiry.as_ref()?.of(key, value)?;
        if at <= now_us {
            return Some(tombstone);
        }
        self.expiring.insert((at, key.clone()));
        None
    }

    /// `key` left the shard (handed off, or its tombstone collected).
    pub fn removed(&mut self, key: &Key) {
        self.tombstones.remove(key);
    }

    /// Keys whose expiry time has come by `now_us` (to check against their current value:
    /// see [`Expiry::of`]).
    pub fn due(&mut self, now_us: u64) -> Vec<Key> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.expiring.first() {
            if *at > now_us {
                break;
            }
            if let Some((_, key)) = self.expiring.pop_first() {
                out.push(key);
            }
        }
        out
    }

    /// The expiry rule, if any.
    pub fn expiry(&self) -> Option<&Expiry> {
        self.expiry.as_ref()
    }

    /// Keys whose tombstone this shard has held for `grace_us` by `now_us`, at most `max`.
    pub fn old_tombstones(&self, now_us: u64, grace_us: u64, max: usize) -> Vec<Key> {
        self.tombstones
            .iter()
            .filter(|(_, since)| now_us.saturating_sub(**since) >= grace_us)
            .take(max)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Keys holding a bare tombstone.
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// Values waiting to expire (entries of rewritten keys included).
    pub fn expiring_count(&self) -> usize {
        self.expiring.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WriterId;
    use crate::lattice::Lww;

    fn lww(t: u64) -> LatticeValue {
        LatticeValue::Lww(Lww::new(Timestamp::new(t, WriterId(7)), "v"))
    }

    fn results() -> Expiry {
        Expiry {
            prefix: "r/".into(),
            ttl_us: 100,
        }
    }

    #[test]
    fn only_lww_values_under_the_prefix_expire_and_all_replicas_agree_on_the_tombstone() {
        let e = results();
        let (at, t) = e.of(&Key::new("r/1"), &lww(5)).expect("expires");
        assert_eq!(at, 105);
        assert_eq!(t.at, Timestamp::new(105, WriterId(7)));
        assert!(e.of(&Key::new("other"), &lww(5)).is_none());
        let set = LatticeValue::SetUnion(Default::default());
        assert!(e.of(&Key::new("r/2"), &set).is_none());
    }

    #[test]
    fn values_expire_when_due_or_at_once_if_already_past() {
        let mut d = Deletes::new(Some(results()));
        assert_eq!(d.changed(&Key::new("r/a"), &lww(10), 50), None);
        assert_eq!(d.changed(&Key::new("r/b"), &lww(20), 50), None);
        assert!(d.changed(&Key::new("r/late"), &lww(0), 500).is_some());
        assert!(d.due(109).is_empty());
        assert_eq!(d.due(110), vec![Key::new("r/a")]);
        assert_eq!(d.due(1000), vec![Key::new("r/b")]);
        assert_eq!(d.expiring_count(), 0);
    }

    #[test]
    fn tombstones_are_old_after_the_grace_and_leave_with_their_key() {
        let mut d = Deletes::new(None);
        let t = LatticeValue::Tombstone(Tombstone::default());
        d.changed(&Key::new("a"), &t, 100);
        d.changed(&Key::new("b"), &t, 150);
        assert!(d.old_tombstones(149, 50, 10).is_empty(), "held 49 µs of 50");
        assert_eq!(d.old_tombstones(150, 50, 10), vec![Key::new("a")]);
        assert_eq!(d.old_tombstones(1000, 50, 1).len(), 1, "bounded");
        d.changed(&Key::new("a"), &lww(1), 200);
        d.removed(&Key::new("b"));
        assert_eq!(d.tombstone_count(), 0);
    }
}
