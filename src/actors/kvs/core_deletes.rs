//! Expiry and tombstone collection in a shard.

use super::ShardCore;
use crate::ids::Key;
use crate::lattice::{LatticeValue, Tombstone};

/// Expiry and tombstone collection (the rule is in [`super::deletes`]; the actor asks the
/// other replicas in between).
impl<S: Ord + Clone, P: Ord + Clone> ShardCore<S, P> {
    /// Turn values whose expiry time has come into their tombstones. Returns the keys that
    /// changed with the tombstone merged in (to log).
    pub fn expire_due(&mut self) -> Vec<(Key, LatticeValue)> {
        let mut out = Vec::new();
        for key in self.deletes.due(self.now_us) {
            let due = self.store.get(&key).and_then(|s| {
                let (at, t) = self.deletes.expiry()?.of(&key, &s.value)?;
                (at <= self.now_us).then_some(t)
            });
            let Some(t) = due else {
                continue; // rewritten or deleted since; a rewrite has its own entry
            };
            let t = LatticeValue::Tombstone(t);
            if self.merge_local(&key, t.clone()) {
                out.push((key, t));
            }
        }
        out
    }

    /// Tombstones held for at least `grace_us` and not waiting to be gossiped: candidates
    /// for [`ShardCore::collect`] once the other replicas confirmed them. At most `max`.
    pub fn collectable(&self, grace_us: u64, max: usize) -> Vec<(Key, Tombstone)> {
        self.deletes
            .old_tombstones(self.now_us, grace_us, max)
            .into_iter()
            .filter(|k| !self.dirty.contains(k))
            .filter_map(|k| match self.store.get(&k).map(|s| &s.value) {
                Some(LatticeValue::Tombstone(t)) => Some((k, *t)),
                _ => None,
            })
            .collect()
    }

    /// Whether this shard holds `t` for `key`, a later value, or nothing: what another
    /// replica needs to hear before it drops its own copy of `t`.
    pub fn covers(&self, key: &Key, t: Tombstone) -> bool {
        self.store
            .get(key)
            .is_none_or(|s| s.value.covers_delete(&t))
    }

    /// Drop the tombstones `entries` for good, each only if the key still holds exactly
    /// that tombstone and it is not waiting to be gossiped. Returns the keys dropped (to
    /// log as forgotten).
    pub fn collect(&mut self, entries: &[(Key, Tombstone)]) -> Vec<Key> {
        let mut dropped = Vec::new();
        for (k, t) in entries {
            let exact = matches!(
                self.store.get(k).map(|s| &s.value),
                Some(LatticeValue::Tombstone(held)) if held == t
            );
            if exact && !self.dirty.contains(k) {
                self.forget(k);
                dropped.push(k.clone());
            }
        }
        dropped
    }
}
