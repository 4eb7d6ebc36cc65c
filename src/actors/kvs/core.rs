//! The logic of one KVS shard, with no I/O: the stored lattices, which keys changed since the
//! last gossip round, who subscribes to which key, and per-key access counts.
//!
//! The actor in `mod.rs` owns the timers and the network and drives this core: it calls
//! [`ShardCore::put`] / [`ShardCore::get`] for requests, then drains
//! [`ShardCore::take_gossip`] and [`ShardCore::take_pushes`] on its timers (or when a batch
//! fills) and sends what they return.
//!
//! Gossip rule: a key is gossiped to its other replicas when a *client* put changed it; a
//! merge that arrives by gossip changes the local copy but is not gossiped again (the writer
//! already sent it to every replica). Re-delivery, duplication and reordering are harmless:
//! lattice merges are idempotent, commutative and associative.
//!
//! Deletes: a delete is a put of a tombstone; a client's write of an untimed kind to a
//! deleted key is taken as written after the delete (see [`crate::lattice::Tombstone`]).
//! Reads return tombstones as they are (a reader merging several replicas must see them);
//! listings skip them. Values under the expiry prefix turn into tombstones on their own,
//! and tombstones are dropped for good by the rule in [`super::deletes`], which the actor
//! carries out with [`ShardCore::collectable`], [`ShardCore::covers`] and
//! [`ShardCore::collect`]. Time comes in through [`ShardCore::advance`].

pub use self::replicas::Handoff;
use super::deletes::{Deletes, Expiry};
use super::messages::{KvsError, ShardStats};
use crate::ids::Key;
use crate::lattice::{LatticeKind, LatticeValue};
use crate::protocol::MAX_KEY_BYTES;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Where a put came from: it decides whether the change is gossiped on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client (cache, scheduler, gateway, user): gossip the change to the other replicas.
    Client,
    /// Another replica (gossip, hand-off): merge only.
    Replica,
}

/// A key must be non-empty and at most [`MAX_KEY_BYTES`] long.
pub fn validate_key(key: &Key) -> Result<(), KvsError> {
    let len = key.as_str().len();
    if len == 0 {
        return Err(KvsError::Malformed("empty key".into()));
    }
    if len > MAX_KEY_BYTES {
        return Err(KvsError::Malformed(format!(
            "key of {len} bytes is longer than the maximum of {MAX_KEY_BYTES}"
        )));
    }
    Ok(())
}

/// One stored key.
#[derive(Debug)]
struct Stored {
    value: LatticeValue,
    size: usize,
    /// Bumped on every change: a hand-off releases a key only if it did not change since.
    version: u64,
    reads: u64,
    writes: u64,
}

impl Stored {
    /// A key's first value, of `size` bytes, written `writes` times (0 when loaded from
    /// the log).
    fn new(value: LatticeValue, size: usize, writes: u64) -> Stored {
        Stored {
            value,
            size,
            version: 1,
            reads: 0,
            writes,
        }
    }

    /// Merge `value` into the key's value (`key` names it in the error): whether it
    /// changed, with its size and the shard's total `bytes` kept up to date; a value of
    /// another kind is refused and changes nothing.
    fn merge(
        &mut self,
        key: &Key,
        value: LatticeValue,
        bytes: &mut usize,
    ) -> Result<bool, KvsError> {
        crate::fuzz::record::merge(&self.value, &value);
        let (have, got) = (self.value.kind(), value.kind());
        let changed = self
            .value
            .merge(value)
            .map_err(|_| KvsError::KindMismatch {
                key: key.to_string(),
                have,
                got,
            })?;
        if changed {
            self.resized(bytes);
        }
        Ok(changed)
    }

    /// The value changed: its size, and the shard's total `bytes`, follow.
    fn resized(&mut self, bytes: &mut usize) {
        let size = self.value.size_bytes();
        *bytes = bytes.saturating_sub(self.size) + size;
        self.size = size;
    }
}

/// Shard state. `S` names a subscriber (an actor address in production, anything ordered
/// in tests); `P` names a peer shard.
#[derive(Debug)]
pub struct ShardCore<S: Ord + Clone, P: Ord + Clone> {
    max_value_bytes: usize,
    store: HashMap<Key, Stored>,
    dirty: HashSet<Key>,
    subscribers: HashMap<Key, BTreeSet<S>>,
    pending_pushes: BTreeMap<S, BTreeSet<Key>>,
    bytes: usize,
    gets: u64,
    puts: u64,
    gossip_in: u64,
    gossip_out: u64,
    rejected: u64,
    /// This shard's clock (µs since the epoch), as last advanced by its owner.
    now_us: u64,
    deletes: Deletes,
    _peer: std::marker::PhantomData<P>,
}

impl<S: Ord + Clone, P: Ord + Clone> ShardCore<S, P> {
    /// An empty shard that refuses values larger than `max_value_bytes`.
    pub fn new(max_value_bytes: usize) -> Self {
        ShardCore {
            max_value_bytes,
            store: HashMap::new(),
            dirty: HashSet::new(),
            subscribers: HashMap::new(),
            pending_pushes: BTreeMap::new(),
            bytes: 0,
            gets: 0,
            puts: 0,
            gossip_in: 0,
            gossip_out: 0,
            rejected: 0,
            now_us: 0,
            deletes: Deletes::new(None),
            _peer: std::marker::PhantomData,
        }
    }

    /// This shard with values under `expiry.prefix` expiring (see [`super::deletes`]).
    pub fn with_expiry(mut self, expiry: Option<Expiry>) -> Self {
        self.deletes = Deletes::new(expiry);
        self
    }

    /// Move this shard's clock to `now_us` (µs since the epoch; it never goes back).
    pub fn advance(&mut self, now_us: u64) {
        self.now_us = self.now_us.max(now_us);
    }

    /// Refuse (and count) a write on behalf of user code under the reserved prefix.
    pub fn check_user_key(&mut self, key: &Key) -> Result<(), KvsError> {
        if key.is_reserved() {
            self.rejected += 1;
            return Err(KvsError::Reserved {
                key: key.to_string(),
            });
        }
        Ok(())
    }

    /// Read one key (a clone of the merged value; payloads are shared `Bytes`).
    pub fn get(&mut self, key: &Key) -> Option<LatticeValue> {
        self.gets += 1;
        let stored = self.store.get_mut(key)?;
        stored.reads += 1;
        Some(stored.value.clone())
    }

    /// The lattice kind a key was first written with, if it exists.
    pub fn kind_of(&self, key: &Key) -> Option<LatticeKind> {
        self.store.get(key).map(|s| s.value.kind())
    }

    /// Merge `value` into `key`. The first write fixes the key's kind; a put of another
    /// kind, or a value over the size limit, is refused and changes nothing. Returns
    /// whether the stored value changed.
    pub fn put(&mut self, key: Key, value: LatticeValue, origin: Origin) -> Result<bool, KvsError> {
        if let Err(e) = validate_key(&key) {
            self.rejected += 1;
            return Err(e);
        }
        let size = value.size_bytes();
        if size > self.max_value_bytes {
            self.rejected += 1;
            return Err(KvsError::ValueTooLarge {
                key: key.to_string(),
                size,
                max: self.max_value_bytes,
            });
        }
        let value = match origin {
            Origin::Client => {
                self.puts += 1;
                value.written_over(self.store.get(&key).map(|s| &s.value))
            }
            Origin::Replica => {
                self.gossip_in += 1;
                value
            }
        };
        let changed = match self.store.get_mut(&key) {
            Some(stored) => {
                // A merge keeps one of two registers, but set-like lattices grow: bound the
                // merged size (conservatively, by the sum) so no key outgrows a frame.
                let grows = !matches!(
                    stored.value,
                    LatticeValue::Lww(_) | LatticeValue::Tombstone(_)
                );
                if grows && stored.size + size > self.max_value_bytes {
                    self.rejected += 1;
                    return Err(KvsError::ValueTooLarge {
                        key: key.to_string(),
                        size: stored.size + size,
                        max: self.max_value_bytes,
                    });
                }
                let changed = match stored.merge(&key, value, &mut self.bytes) {
                    Ok(c) => c,
                    Err(e) => {
                        self.rejected += 1;
                        return Err(e);
                    }
                };
                stored.writes += 1;
                if changed {
                    stored.version += 1;
                }
                changed
            }
            None => {
                self.bytes += size;
                self.store.insert(key.clone(), Stored::new(value, size, 1));
                true
            }
        };
        if changed {
            if origin == Origin::Client {
                self.dirty.insert(key.clone());
            }
            self.owe_push(&key);
            self.after_change(&key);
        }
        Ok(changed)
    }

    /// Subscribers of `key` are owed its new value.
    fn owe_push(&mut self, key: &Key) {
        if let Some(subs) = self.subscribers.get(key) {
            for s in subs {
                self.pending_pushes
                    .entry(s.clone())
                    .or_default()
                    .insert(key.clone());
            }
        }
    }

    /// Index the changed `key` for deletes; a value that has expired already becomes its
    /// tombstone at once.
    fn after_change(&mut self, key: &Key) {
        let Some(stored) = self.store.get(key) else {
            return;
        };
        if let Some(t) = self.deletes.changed(key, &stored.value, self.now_us) {
            self.merge_local(key, LatticeValue::Tombstone(t));
        }
    }

    /// Merge `value` into the stored `key` on this shard's own account (expiry): a change
    /// like any other, pushed to subscribers, but not gossiped (every replica does the
    /// same). Returns whether it changed the key.
    fn merge_local(&mut self, key: &Key, value: LatticeValue) -> bool {
        let Some(stored) = self.store.get_mut(key) else {
            return false;
        };
        if !matches!(stored.value.merge(value), Ok(true)) {
            return false;
        }
        stored.version += 1;
        stored.resized(&mut self.bytes);
        self.deletes.changed(key, &stored.value, self.now_us);
        self.owe_push(key);
        true
    }

    /// Every key this shard stores starting with `prefix`, deleted ones (tombstones) left
    /// out.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .store
            .iter()
            .filter(|(k, s)| k.as_str().starts_with(prefix) && !s.value.is_tombstone())
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Keys stored (tombstones included) and their bytes.
    pub fn size(&self) -> (u64, u64) {
        (self.store.len() as u64, self.bytes as u64)
    }

    /// Counters and sizes, plus the `hot` most accessed keys.
    pub fn stats(&self, hot: usize) -> ShardStats {
        let mut by_access: Vec<(&Key, u64)> = self
            .store
            .iter()
            .map(|(k, s)| (k, s.reads + s.writes))
            .collect();
        let order = |a: &(&Key, u64), b: &(&Key, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
        if hot > 0 && by_access.len() > hot {
            by_access.select_nth_unstable_by(hot - 1, order);
            by_access.truncate(hot);
        }
        by_access.sort_by(order);
        ShardStats {
            keys: self.store.len() as u64,
            bytes: self.bytes as u64,
            gets: self.gets,
            puts: self.puts,
            gossip_in: self.gossip_in,
            gossip_out: self.gossip_out,
            rejected: self.rejected,
            tombstones: self.deletes.tombstone_count() as u64,
            subscriptions: self.subscription_count() as u64,
            hot_keys: by_access
                .into_iter()
                .take(hot)
                .map(|(k, n)| (k.to_string(), n))
                .collect(),
        }
    }
}

#[path = "core_deletes.rs"]
mod deletes;
#[path = "core_pushes.rs"]
mod pushes;
#[path = "core_recovery.rs"]
mod recovery;
#[path = "core_replicas.rs"]
mod replicas;
#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
