//! The cache's logic, no I/O: entries, versions, LRU by bytes, counters, in-flight fetches
//! and the session seam. The actor and [`super::CacheHandle`] drive it under one mutex.
//!
//! # Storage
//! `Key -> Entry { value, version, size, tick }`. `tick` orders the LRU: a `BTreeMap<tick,
//! Key>` gives O(log n) touch and eviction. `size` is [`entry_size`]; the sum over entries
//! stays at or below the capacity (a value larger than the capacity is served but never
//! cached). Evictions are returned to the caller so it unsubscribes from the KVS.
//!
//! # Versions and session pins
//! Every change to an entry (a pushed update, this node's own write, a refresh) takes the
//! next value of a **cache-wide** counter, so a version never repeats for a key, even after
//! the key was evicted and read again. Distributed-session repeatable read pins, per
//! session, the value its first read of a key returned (or its absence): the pins live in a
//! separate `session -> key -> value` map outside the LRU (values are `Bytes`-backed, so a
//! copy is cheap), so updates and evictions never change them. [`CacheCore::pin_value`]
//! (first pin wins), [`CacheCore::pinned`], [`CacheCore::unpin_session`] when the call
//! completes, and [`CacheCore::expire_pins`] for sessions whose caller vanished.
//!
//! # Confirmation times
//! Each entry remembers when the KVS read that last confirmed it was *asked*
//! ([`CacheCore::confirm`]); pushes do not count (one may carry an older state than a
//! write acknowledged before it arrives). Causal reads refresh entries confirmed longer ago
//! than the lease (see `crate::actors::executor::session`).
//!
//! # Deleted keys
//! A deleted key (a bare tombstone) is not held: a read that finds one returns it (readers
//! answer missing) without caching it, and an update that deletes a held key drops the
//! entry like an eviction. The KVS collects tombstones in time, and a cache holding one
//! then would miss what is written to the key afterwards.
//!
//! # In-flight fetches
//! A miss registers the key as *fetching* with an opaque ticket `T` (the handle's shared
//! future), so concurrent misses of one key share one KVS read, and updates pushed while
//! the read is in flight are buffered and merged into what the read returns (otherwise a
//! push that overtakes the read's reply would be lost and the entry would stay stale).

use super::messages::CacheStats;
use crate::ids::{CallId, Key};
use crate::lattice::{LatticeError, LatticeValue};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Bytes charged per entry on top of its key and value: the hash-map slot, the LRU node and
/// the key's shared allocation, so a cache of many tiny values still respects its bound.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

/// A cache-wide, strictly increasing change number.
pub type Version = u64;

/// Identifies a session (one DAG call) that pins snapshots.
pub type SessionId = CallId;

/// Bytes an entry is charged against the capacity.
pub fn entry_size(key: &Key, value: &LatticeValue) -> usize {
    key.as_str().len() + value.size_bytes() + ENTRY_OVERHEAD_BYTES
}

/// A value with the version it had in this cache.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned {
    pub version: Version,
    pub value: LatticeValue,
}

/// What [`CacheCore::read`] found.
#[derive(Debug, PartialEq)]
pub enum Lookup<T> {
    /// Held: its current version and value (a hit).
    Hit(Versioned),
    /// Not held, but a read of it is in flight: wait on this ticket (a miss).
    Pending(T),
    /// Neither: the caller should fetch it and call [`CacheCore::begin_fetch`] (a miss).
    Miss,
}

/// What a merge into the cache did.
#[derive(Debug, PartialEq)]
pub enum UpdateOutcome {
    /// The held entry changed and now has this version.
    Changed(Version),
    /// The held entry already contained the value.
    Unchanged,
    /// A read of the key is in flight: merged into its buffer.
    Buffered,
    /// The key is not held (e.g. evicted before the KVS saw the unsubscribe): ignored.
    NotHeld,
    /// The value's lattice kind differs from the held one: the entry is left unchanged.
    Refused(LatticeError),
}

/// Result of a merge: what happened, and the keys evicted to make room.
#[derive(Debug, PartialEq)]
pub struct Update {
    pub outcome: UpdateOutcome,
    pub evicted: Vec<Key>,
}

/// Result of [`CacheCore::insert_from_kvs`].
#[derive(Debug, PartialEq)]
pub struct Inserted {
    /// The value to return to readers (the read merged with buffered updates).
    pub value: Option<LatticeValue>,
    /// Whether the key is now held (false: absent in the KVS, or larger than the capacity).
    pub cached: bool,
    /// Keys evicted to make room.
    pub evicted: Vec<Key>,
}

#[derive(Debug)]
struct Entry {
    value: LatticeValue,
    version: Version,
    size: usize,
    tick: u64,
    /// When the KVS read that last confirmed this value was asked (`None`: never).
    confirmed: Option<Instant>,
}

/// The pins of one session in this cache.
#[derive(Debug)]
struct SessionPins {
    keys: HashMap<Key, Option<LatticeValue>>,
    used: Instant,
}

#[derive(Debug)]
struct Fetching<T> {
    ticket: T,
    buffered: Option<LatticeValue>,
}

#[derive(Debug, Default)]
struct Counters {
    hits: u64,
    misses: u64,
    evictions: u64,
    updates: u64,
    ignored_updates: u64,
    refused_updates: u64,
    too_large: u64,
}

/// The cache state of one node. `T` is the handle's ticket for an in-flight read.
#[derive(Debug)]
pub struct CacheCore<T> {
    capacity: usize,
    used: usize,
    entries: HashMap<Key, Entry>,
    lru: BTreeMap<u64, Key>,
    next_tick: u64,
    next_version: Version,
    fetching: HashMap<Key, Fetching<T>>,
    pins: HashMap<SessionId, SessionPins>,
    pinned_keys: usize,
    counters: Counters,
}

impl<T: Clone> CacheCore<T> {
    /// An empty cache holding at most `capacity` bytes (see [`entry_size`]).
    pub fn new(capacity: usize) -> Self {
        CacheCore {
            capacity,
            used: 0,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            next_tick: 0,
            next_version: 0,
            fetching: HashMap::new(),
            pins: HashMap::new(),
            pinned_keys: 0,
            counters: Counters::default(),
        }
    }

    /// Look `key` up, counting a hit or a miss; a hit becomes the most recently used.
    pub fn read(&mut self, key: &Key) -> Lookup<T> {
        let tick = self.tick();
        if let Some(e) = self.entries.get_mut(key) {
            self.lru.remove(&e.tick);
            e.tick = tick;
            self.lru.insert(tick, key.clone());
            self.counters.hits += 1;
            return Lookup::Hit(Versioned {
                version: e.version,
                value: e.value.clone(),
            });
        }
        self.counters.misses += 1;
        match self.fetching.get(key) {
            Some(f) => Lookup::Pending(f.ticket.clone()),
            None => Lookup::Miss,
        }
    }

    /// A read of `key` from the KVS has started; `ticket` lets later readers wait on it.
    pub fn begin_fetch(&mut self, key: Key, ticket: T) {
        self.fetching.insert(
            key,
            Fetching {
                ticket,
                buffered: None,
            },
        );
    }

    /// The read of `key` failed: forget it (and what was buffered for it).
    pub fn abort_fetch(&mut self, key: &Key) {
        self.fetching.remove(key);
    }

    /// The KVS answered a read of `key`: merge what was buffered meanwhile and hold the
    /// result (if any, and if it fits). Also used when no fetch was registered.
    pub fn insert_from_kvs(&mut self, key: Key, read: Option<LatticeValue>) -> Inserted {
        let buffered = self.fetching.remove(&key).and_then(|f| f.buffered);
        let value = match (read, buffered) {
            (Some(mut v), Some(b)) => {
                if let Err(e) = v.merge(b) {
                    tracing::warn!(key = %key, cause = %e, "buffered update refused");
                    self.counters.refused_updates += 1;
                }
                Some(v)
            }
            (v, b) => v.or(b),
        };
        let Some(value) = value else {
            return Inserted {
                value: None,
                cached: false,
                evicted: Vec::new(),
            };
        };
        if value.is_tombstone() {
            let evicted = self.drop_deleted(&key).into_iter().collect();
            return Inserted {
                value: Some(value),
                cached: false,
                evicted,
            };
        }
        if self.entries.contains_key(&key) {
            let Update { evicted, .. } = self.merge_update(key.clone(), value.clone());
            let cached = self.entries.contains_key(&key);
            return Inserted {
                value: Some(value),
                cached,
                evicted,
            };
        }
        let size = entry_size(&key, &value);
        if size > self.capacity {
            self.counters.too_large += 1;
            return Inserted {
                value: Some(value),
                cached: false,
                evicted: Vec::new(),
            };
        }
        let (tick, version) = (self.tick(), self.version());
        self.lru.insert(tick, key.clone());
        self.used += size;
        let entry = Entry {
            value: value.clone(),
            version,
            size,
            tick,
            confirmed: None,
        };
        self.entries.insert(key, entry);
        Inserted {
            value: Some(value),
            cached: true,
            evicted: self.evict_to_fit(),
        }
    }

    /// Merge a pushed update or this node's own acknowledged write into `key`. A change
    /// takes a new version; an entry that grew may evict others (or itself, if it no longer
    /// fits at all). Does not change the LRU order: only reads do.
    pub fn merge_update(&mut self, key: Key, value: LatticeValue) -> Update {
        let outcome = match self.entries.get_mut(&key) {
            Some(e) => match e.value.merge(value) {
                Ok(true) => {
                    self.next_version += 1;
                    e.version = self.next_version;
                    let size = entry_size(&key, &e.value);
                    self.used = self.used - e.size + size;
                    e.size = size;
                    self.counters.updates += 1;
                    UpdateOutcome::Changed(e.version)
                }
                Ok(false) => UpdateOutcome::Unchanged,
                Err(err) => UpdateOutcome::Refused(err),
            },
            None => match self.fetching.get_mut(&key) {
                Some(f) => buffer(f, value),
                None => {
                    self.counters.ignored_updates += 1;
                    UpdateOutcome::NotHeld
                }
            },
        };
        if let UpdateOutcome::Refused(e) = &outcome {
            tracing::warn!(key = %key, cause = %e, "cache update refused");
            self.counters.refused_updates += 1;
        }
        let deleted = match outcome {
            UpdateOutcome::Changed(_) => self.drop_deleted(&key),
            _ => None,
        };
        let mut evicted = self.evict_to_fit();
        evicted.extend(deleted);
        Update { outcome, evicted }
    }

    /// Drop the entry of `key` if it now holds a bare tombstone; returns the key if so.
    fn drop_deleted(&mut self, key: &Key) -> Option<Key> {
        if !self.entries.get(key)?.value.is_tombstone() {
            return None;
        }
        let e = self.entries.remove(key)?;
        self.lru.remove(&e.tick);
        self.used -= e.size;
        Some(key.clone())
    }

    /// Whether `key` is held or being read (a subscription for it is still wanted).
    pub fn wants(&self, key: &Key) -> bool {
        self.entries.contains_key(key) || self.fetching.contains_key(key)
    }

    /// Held keys, most recently used first, at most `max_keys` of them and at most
    /// `max_bytes` of key text in all (what the scheduler report carries).
    pub fn held_keys(&self, max_keys: usize, max_bytes: usize) -> Vec<Key> {
        let mut bytes = 0;
        let mut out = Vec::new();
        for key in self.lru.values().rev() {
            bytes += key.as_str().len();
            if out.len() >= max_keys || bytes > max_bytes {
                break;
            }
            out.push(key.clone());
        }
        out
    }

    /// Counters and sizes.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits,
            misses: c.misses,
            evictions: c.evictions,
            keys: self.entries.len() as u64,
            bytes: self.used as u64,
            capacity: self.capacity as u64,
            updates: c.updates,
            ignored_updates: c.ignored_updates,
            refused_updates: c.refused_updates,
            too_large: c.too_large,
            pinned: self.pinned_keys as u64,
        }
    }

    /// Record that a KVS read asked at `at` confirmed the held `key` (keeps the latest).
    pub fn confirm(&mut self, key: &Key, at: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            if e.confirmed.is_none_or(|c| c < at) {
                e.confirmed = Some(at);
            }
        }
    }

    /// When the held `key` was last confirmed by a KVS read (`None`: not held or never).
    pub fn confirmed_at(&self, key: &Key) -> Option<Instant> {
        self.entries.get(key).and_then(|e| e.confirmed)
    }

    /// The held value of `key`, without counting a hit or touching the LRU.
    pub fn peek(&self, key: &Key) -> Option<&LatticeValue> {
        self.entries.get(key).map(|e| &e.value)
    }

    /// Pin `value` (the value a read of `key` returned, `None` for absent) for `session`,
    /// unless the session already pinned `key`: the first pin wins. Returns the pinned value.
    pub fn pin_value(
        &mut self,
        session: SessionId,
        key: &Key,
        value: Option<LatticeValue>,
        now: Instant,
    ) -> Option<LatticeValue> {
        let pins = self.pins.entry(session).or_insert_with(|| SessionPins {
            keys: HashMap::new(),
            used: now,
        });
        pins.used = now;
        if let Some(p) = pins.keys.get(key) {
            return p.clone();
        }
        self.pinned_keys += 1;
        pins.keys.insert(key.clone(), value.clone());
        value
    }

    /// What `session` pinned for `key`: `Some(None)` is a pinned absence, `None` no pin.
    /// Counts as a use of the session (it delays [`Self::expire_pins`]).
    pub fn pinned(
        &mut self,
        session: SessionId,
        key: &Key,
        now: Instant,
    ) -> Option<Option<LatticeValue>> {
        let pins = self.pins.get_mut(&session)?;
        pins.used = now;
        pins.keys.get(key).cloned()
    }

    /// Drop every pin of `session`; returns how many keys it had pinned.
    pub fn unpin_session(&mut self, session: SessionId) -> usize {
        let n = self.pins.remove(&session).map_or(0, |p| p.keys.len());
        self.pinned_keys -= n;
        n
    }

    /// Drop the pins of sessions unused for `ttl` (their caller vanished, or the release
    /// was lost); returns how many sessions were dropped.
    pub fn expire_pins(&mut self, now: Instant, ttl: Duration) -> usize {
        let before = self.pins.len();
        let mut dropped_keys = 0;
        self.pins.retain(|_, p| {
            let keep = now.saturating_duration_since(p.used) < ttl;
            if !keep {
                dropped_keys += p.keys.len();
            }
            keep
        });
        self.pinned_keys -= dropped_keys;
        before - self.pins.len()
    }

    /// Sessions with pins in this cache.
    pub fn pinned_sessions(&self) -> usize {
        self.pins.len()
    }

    /// Evict least recently used entries until the bytes fit the capacity.
    fn evict_to_fit(&mut self) -> Vec<Key> {
        let mut evicted = Vec::new();
        while self.used > self.capacity {
            let Some((_, key)) = self.lru.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&key) {
                self.used -= e.size;
                self.counters.evictions += 1;
                evicted.push(key);
            }
        }
        evicted
    }

    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    fn version(&mut self) -> Version {
        self.next_version += 1;
        self.next_version
    }
}

/// Merge `value` into an in-flight read's buffer.
fn buffer<T>(f: &mut Fetching<T>, value: LatticeValue) -> UpdateOutcome {
    match &mut f.buffered {
        None => {
            f.buffered = Some(value);
            UpdateOutcome::Buffered
        }
        Some(b) => match b.merge(value) {
            Ok(_) => UpdateOutcome::Buffered,
            Err(e) => UpdateOutcome::Refused(e),
        },
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
