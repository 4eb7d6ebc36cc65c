//! What a shard sends to other replicas: gossip of the keys clients changed, and the
//! hand-off of keys to the owners a routing change gave them.

use super::{ShardCore, Stored};
use crate::ids::Key;
use crate::lattice::LatticeValue;
use std::collections::BTreeMap;

/// What a routing change asks this shard to send, and what it may drop afterwards.
#[derive(Debug)]
pub struct Handoff<S, P> {
    /// Values for the owners each key gained.
    pub batches: Vec<(P, Vec<(Key, LatticeValue)>)>,
    /// `(new owner, subscriber, keys)`: subscriptions to carry over.
    pub subscriptions: Vec<(P, S, Vec<Key>)>,
    /// Keys this shard no longer owns, with the version handed off.
    pub disowned: Vec<(Key, u64)>,
}

impl<S: Ord + Clone, P: Ord + Clone> ShardCore<S, P> {
    /// Number of keys changed by clients since the last gossip round.
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// Changed keys to send to their other replicas, batched per peer. `replicas` gives
    /// the peers (excluding this shard) that replicate a key.
    pub fn take_gossip(
        &mut self,
        mut replicas: impl FnMut(&Key) -> Vec<P>,
    ) -> Vec<(P, Vec<(Key, LatticeValue)>)> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut out: BTreeMap<P, Vec<(Key, LatticeValue)>> = BTreeMap::new();
        for key in dirty {
            let Some(stored) = self.store.get(&key) else {
                continue;
            };
            for peer in replicas(&key) {
                self.gossip_out += 1;
                out.entry(peer)
                    .or_default()
                    .push((key.clone(), stored.value.clone()));
            }
        }
        out.into_iter().collect()
    }

    /// After the ring changed: every key goes to the owners it gained (`owners` returns
    /// them, excluding this shard, and whether this shard still owns the key), together
    /// with the subscriptions to it, so the new owners push to the same subscribers. Keys
    /// this shard no longer owns are listed with their version, to be dropped by
    /// [`ShardCore::release`] once the hand-off is acknowledged.
    pub fn handoff(
        &self,
        keys: Option<&[Key]>,
        mut owners: impl FnMut(&Key) -> (Vec<P>, bool),
    ) -> Handoff<S, P> {
        let mut batches: BTreeMap<P, Vec<(Key, LatticeValue)>> = BTreeMap::new();
        let mut subs: BTreeMap<(P, S), Vec<Key>> = BTreeMap::new();
        let mut disowned = Vec::new();
        let mut visit = |key: &Key, stored: &Stored| {
            let (peers, mine) = owners(key);
            for p in peers {
                batches
                    .entry(p.clone())
                    .or_default()
                    .push((key.clone(), stored.value.clone()));
                for s in self.subscribers.get(key).into_iter().flatten() {
                    subs.entry((p.clone(), s.clone()))
                        .or_default()
                        .push(key.clone());
                }
            }
            if !mine {
                disowned.push((key.clone(), stored.version));
            }
        };
        match keys {
            Some(keys) => keys
                .iter()
                .filter_map(|k| self.store.get_key_value(k))
                .for_each(|(k, s)| visit(k, s)),
            None => self.store.iter().for_each(|(k, s)| visit(k, s)),
        }
        Handoff {
            batches: batches.into_iter().collect(),
            subscriptions: subs.into_iter().map(|((p, s), k)| (p, s, k)).collect(),
            disowned,
        }
    }

    /// Drop keys this shard no longer owns, after their hand-off was acknowledged — but
    /// only those unchanged since (same version, not waiting for gossip). Returns the keys
    /// that changed meanwhile: they must be handed off again before they can go.
    pub fn release(&mut self, keys: &[(Key, u64)]) -> Vec<Key> {
        let mut changed = Vec::new();
        for (k, version) in keys {
            match self.store.get(k) {
                Some(s) if s.version == *version && !self.dirty.contains(k) => {
                    self.bytes = self.bytes.saturating_sub(s.size);
                    self.store.remove(k);
                    self.subscribers.remove(k);
                    self.deletes.removed(k);
                }
                Some(_) => changed.push(k.clone()),
                None => {}
            }
        }
        changed
    }

    /// A gossip batch for these keys was not acknowledged: send them again next round.
    pub fn requeue(&mut self, keys: impl IntoIterator<Item = Key>) {
        for k in keys {
            if self.store.contains_key(&k) {
                self.dirty.insert(k);
            }
        }
    }
}
