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

use super::deletes::{Deletes, Expiry};
use super::messages::{KvsError, ShardStats};
use crate::ids::Key;
use crate::lattice::{LatticeKind, LatticeValue, Tombstone};
use crate::protocol::MAX_KEY_BYTES;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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
                let have = stored.value.kind();
                let got = value.kind();
                let changed = stored
                    .value
                    .merge(value)
                    .map_err(|_| KvsError::KindMismatch {
                        key: key.to_string(),
                        have,
                        got,
                    });
                let changed = match changed {
                    Ok(c) => c,
                    Err(e) => {
                        self.rejected += 1;
                        return Err(e);
                    }
                };
                stored.writes += 1;
                if changed {
                    stored.version += 1;
                    let new_size = stored.value.size_bytes();
                    self.bytes = self.bytes.saturating_sub(stored.size) + new_size;
                    stored.size = new_size;
                }
                changed
            }
            None => {
                self.bytes += size;
                self.store.insert(
                    key.clone(),
                    Stored {
                        value,
                        size,
                        version: 1,
                        reads: 0,
                        writes: 1,
                    },
                );
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
        let size = stored.value.size_bytes();
        self.bytes = self.bytes.saturating_sub(stored.size) + size;
        stored.size = size;
        self.deletes.changed(key, &stored.value, self.now_us);
        self.owe_push(key);
        true
    }

    /// `sub` wants the new merged value of each of `keys` whenever it changes.
    pub fn subscribe(&mut self, sub: S, keys: impl IntoIterator<Item = Key>) {
        for k in keys {
            self.subscribers.entry(k).or_default().insert(sub.clone());
        }
    }

    /// `sub` no longer wants updates of `keys`.
    pub fn unsubscribe(&mut self, sub: &S, keys: impl IntoIterator<Item = Key>) {
        for k in keys {
            if let Some(set) = self.subscribers.get_mut(&k) {
                set.remove(sub);
                if set.is_empty() {
                    self.subscribers.remove(&k);
                }
            }
        }
    }

    /// Forget a subscriber entirely (it left the cluster).
    pub fn drop_subscriber(&mut self, sub: &S) {
        self.subscribers.retain(|_, set| {
            set.remove(sub);
            !set.is_empty()
        });
        self.pending_pushes.remove(sub);
    }

    /// How many (key, subscriber) pairs are registered.
    pub fn subscription_count(&self) -> usize {
        self.subscribers.values().map(|s| s.len()).sum()
    }

    /// Updates owed to subscribers since the last call, one batch per subscriber.
    pub fn take_pushes(&mut self) -> Vec<(S, Vec<(Key, LatticeValue)>)> {
        let pending = std::mem::take(&mut self.pending_pushes);
        pending
            .into_iter()
            .map(|(sub, keys)| {
                let batch = keys
                    .into_iter()
                    .filter_map(|k| self.store.get(&k).map(|s| (k, s.value.clone())))
                    .collect();
                (sub, batch)
            })
            .collect()
    }

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

/// Recovery and snapshots (the durable side in `durable.rs`): loading what the log holds,
/// and reading the store without counting it as access.
impl<S: Ord + Clone, P: Ord + Clone> ShardCore<S, P> {
    /// Merge a value read back from this shard's log or snapshot. It was accepted once, so
    /// no size limit applies (the limit may have been lowered since); the key and kind are
    /// still checked (a record that passes its checksum is still input from a file). Not
    /// counted, not gossiped, not pushed.
    pub fn restore(&mut self, key: Key, value: LatticeValue) -> Result<(), KvsError> {
        validate_key(&key)?;
        match self.store.get_mut(&key) {
            Some(stored) => {
                let (have, got) = (stored.value.kind(), value.kind());
                let changed = stored
                    .value
                    .merge(value)
                    .map_err(|_| KvsError::KindMismatch {
                        key: key.to_string(),
                        have,
                        got,
                    })?;
                if changed {
                    let size = stored.value.size_bytes();
                    self.bytes = self.bytes.saturating_sub(stored.size) + size;
                    stored.size = size;
                }
            }
            None => {
                let size = value.size_bytes();
                self.bytes += size;
                let stored = Stored {
                    value,
                    size,
                    version: 1,
                    reads: 0,
                    writes: 0,
                };
                self.store.insert(key.clone(), stored);
            }
        }
        self.after_change(&key);
        Ok(())
    }

    /// Drop a key the log says this shard handed off (or collected).
    pub fn forget(&mut self, key: &Key) {
        if let Some(s) = self.store.remove(key) {
            self.bytes = self.bytes.saturating_sub(s.size);
        }
        self.deletes.removed(key);
    }

    /// Every stored key, in no order.
    pub fn keys(&self) -> Vec<Key> {
        self.store.keys().cloned().collect()
    }

    /// The value of `key` without counting a read.
    pub fn peek(&self, key: &Key) -> Option<&LatticeValue> {
        self.store.get(key).map(|s| &s.value)
    }

    /// Bytes of stored values.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

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

impl<S: Ord + Clone, P: Ord + Clone> ShardCore<S, P> {
    /// A push to `sub` could not be queued: owe it these keys again.
    pub fn requeue_push(&mut self, sub: S, keys: impl IntoIterator<Item = Key>) {
        if !self.subscribers.values().any(|set| set.contains(&sub)) {
            return;
        }
        self.pending_pushes.entry(sub).or_default().extend(keys);
    }

    /// Number of subscribers owed a push.
    pub fn pending_push_count(&self) -> usize {
        self.pending_pushes.len()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WriterId;
    use crate::lattice::{Lww, SetUnion, Timestamp};
    use bytes::Bytes;

    type Core = ShardCore<u32, u32>;

    pub(crate) fn lww(t: u64, v: &str) -> LatticeValue {
        LatticeValue::Lww(Lww::new(
            Timestamp::new(t, WriterId(1)),
            Bytes::copy_from_slice(v.as_bytes()),
        ))
    }

    fn set(items: &[&str]) -> LatticeValue {
        LatticeValue::SetUnion(
            items
                .iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect::<SetUnion<Bytes>>(),
        )
    }

    #[test]
    fn put_then_get_merges() {
        let mut c = Core::new(1024);
        let k = Key::new("k");
        assert!(c.put(k.clone(), lww(2, "new"), Origin::Client).expect("ok"));
        assert!(!c.put(k.clone(), lww(1, "old"), Origin::Client).expect("ok"));
        assert_eq!(c.get(&k), Some(lww(2, "new")));
        assert_eq!(c.get(&Key::new("missing")), None);
    }

    #[test]
    fn first_write_fixes_the_kind() {
        let mut c = Core::new(1024);
        let k = Key::new("k");
        c.put(k.clone(), set(&["a"]), Origin::Client).expect("ok");
        let err = c.put(k.clone(), lww(1, "x"), Origin::Client).unwrap_err();
        assert!(matches!(err, KvsError::KindMismatch { .. }), "{err}");
        assert_eq!(c.get(&k), Some(set(&["a"])));
        assert_eq!(c.stats(0).rejected, 1);
    }

    #[test]
    fn empty_and_huge_keys_are_refused() {
        let mut c = Core::new(1024);
        let err = c
            .put(Key::new(""), lww(1, "x"), Origin::Client)
            .unwrap_err();
        assert!(matches!(err, KvsError::Malformed(_)));
        let long = Key::new("k".repeat(MAX_KEY_BYTES + 1));
        assert!(c.put(long, lww(1, "x"), Origin::Client).is_err());
        assert_eq!(c.stats(0).keys, 0);
    }

    #[test]
    fn oversized_value_is_refused() {
        let mut c = Core::new(16);
        let big = lww(1, &"x".repeat(64));
        let err = c.put(Key::new("k"), big, Origin::Client).unwrap_err();
        assert!(matches!(err, KvsError::ValueTooLarge { max: 16, .. }));
        assert_eq!(c.stats(0).keys, 0);
    }

    #[test]
    fn only_client_changes_are_gossiped() {
        let mut c = Core::new(1024);
        c.put(Key::new("a"), lww(1, "x"), Origin::Client)
            .expect("ok");
        c.put(Key::new("b"), lww(1, "y"), Origin::Replica)
            .expect("ok");
        // An unchanged client put is not gossiped either.
        let out = c.take_gossip(|_| vec![7, 8]);
        assert_eq!(out.len(), 2);
        for (_, batch) in &out {
            assert_eq!(batch.len(), 1);
            assert_eq!(batch[0].0, Key::new("a"));
        }
        assert!(c.take_gossip(|_| vec![7]).is_empty(), "dirty set drained");
        c.put(Key::new("a"), lww(1, "x"), Origin::Client)
            .expect("ok");
        assert!(
            c.take_gossip(|_| vec![7]).is_empty(),
            "no change, no gossip"
        );
        c.requeue([Key::new("a")]);
        assert_eq!(c.take_gossip(|_| vec![7]).len(), 1, "requeued key resent");
    }

    #[test]
    fn subscribers_get_changed_keys_once_per_batch() {
        let mut c = Core::new(1024);
        c.subscribe(5, [Key::new("a")]);
        c.put(Key::new("a"), lww(1, "x"), Origin::Client)
            .expect("ok");
        c.put(Key::new("a"), lww(2, "y"), Origin::Replica)
            .expect("ok");
        c.put(Key::new("b"), lww(1, "z"), Origin::Client)
            .expect("ok");
        let pushes = c.take_pushes();
        assert_eq!(pushes, vec![(5, vec![(Key::new("a"), lww(2, "y"))])]);
        assert!(c.take_pushes().is_empty());
        c.unsubscribe(&5, [Key::new("a")]);
        c.put(Key::new("a"), lww(3, "w"), Origin::Client)
            .expect("ok");
        assert!(c.take_pushes().is_empty());
        assert_eq!(c.subscription_count(), 0);
    }

    #[test]
    fn handoff_sends_everything_and_lists_disowned_keys() {
        let mut c = Core::new(1024);
        c.put(Key::new("mine"), lww(1, "x"), Origin::Client)
            .expect("ok");
        c.put(Key::new("gone"), lww(1, "y"), Origin::Client)
            .expect("ok");
        c.subscribe(4, [Key::new("gone")]);
        c.take_gossip(|_| vec![]); // a dirty key is released only after it was gossiped
        let h = c.handoff(None, |k| (vec![9], k.as_str() == "mine"));
        assert_eq!(h.batches.len(), 1);
        assert_eq!(h.batches[0].1.len(), 2);
        assert_eq!(h.subscriptions, vec![(9, 4, vec![Key::new("gone")])]);
        assert_eq!(h.disowned.len(), 1);
        assert_eq!(h.disowned[0].0, Key::new("gone"));
        let before = c.stats(0).bytes;
        assert!(c.release(&h.disowned).is_empty());
        let after = c.stats(0);
        assert_eq!(after.keys, 1);
        assert!(after.bytes < before);
        assert_eq!(
            c.subscription_count(),
            0,
            "subscriptions of released keys go too"
        );
    }

    #[test]
    fn a_key_written_during_handoff_is_not_released() {
        let mut c = Core::new(1024);
        c.put(Key::new("k"), lww(1, "old"), Origin::Client)
            .expect("ok");
        c.take_gossip(|_| vec![]);
        let h = c.handoff(None, |_| (vec![9], false));
        // A client that has not seen the new routing yet writes here meanwhile.
        c.put(Key::new("k"), lww(2, "new"), Origin::Client)
            .expect("ok");
        assert_eq!(c.release(&h.disowned), vec![Key::new("k")]);
        assert_eq!(c.get(&Key::new("k")), Some(lww(2, "new")));
        // Handed off again and unchanged: now it goes.
        c.take_gossip(|_| vec![]);
        let again = c.handoff(Some(&[Key::new("k")]), |_| (vec![9], false));
        assert!(c.release(&again.disowned).is_empty());
        assert_eq!(c.get(&Key::new("k")), None);
    }

    #[test]
    fn growing_sets_are_bounded_by_the_value_limit() {
        let mut c = Core::new(64);
        let k = Key::new("s");
        let mut refused = false;
        for i in 0..64 {
            if c.put(k.clone(), set(&[&format!("item-{i}")]), Origin::Client)
                .is_err()
            {
                refused = true;
                break;
            }
        }
        assert!(refused, "a set cannot grow past the value limit");
        assert!(c.stats(0).bytes <= 64);
    }

    #[test]
    fn stats_count_and_rank_hot_keys() {
        let mut c = Core::new(1024);
        for i in 0..5 {
            c.put(Key::new(format!("k{i}")), lww(1, "v"), Origin::Client)
                .expect("ok");
        }
        for _ in 0..10 {
            c.get(&Key::new("k3"));
        }
        let s = c.stats(2);
        assert_eq!(s.keys, 5);
        assert_eq!(s.gets, 10);
        assert_eq!(s.puts, 5);
        assert_eq!(s.hot_keys.len(), 2);
        assert_eq!(s.hot_keys[0], ("k3".to_string(), 11));
        assert_eq!(c.keys_with_prefix("k").len(), 5);
    }
}
