//! [`CacheHandle`]: what executors hold. Hits are served straight from the shared
//! [`CacheCore`] under a short mutex (no actor hop); misses read through the KVS on the
//! cache's arbiter, one read per key however many callers miss it at once.
//!
//! # Acknowledgement policy
//! A put is **write-through**: it returns `Ok` only after [`KvsClient::put`] succeeded, i.e.
//! after **every** replica of the key merged the value (the KVS policy), and then merges the
//! value into the local entry so this node reads its own write at once. A put of a key this
//! cache does not hold does not populate it (no write-allocate): the next read misses and
//! reads through, which sees the write because every replica acknowledged it. A failed put
//! leaves the cache unchanged.
//!
//! # Staying fresh
//! A miss **subscribes before it reads** (every replica then pushes later changes), and
//! pushes that overtake the read's reply are buffered by the core. When a key is evicted
//! (or a read found nothing) its subscription is released; because that unsubscribe may
//! reach a shard after a newer subscribe for the same key, the release re-checks afterwards
//! and, if the key is wanted again, subscribes again and refreshes it from the KVS
//! (lattices merge, so a refresh is always safe).

use super::core::{CacheCore, Lookup};
use super::messages::CacheStats;
use crate::actors::kvs::core::validate_key;
use crate::actors::kvs::{KvsClient, KvsError};
use crate::ids::{CallId, Key};
use crate::lattice::LatticeValue;
use crate::net::ActorRef;
use actix::ArbiterHandle;
use futures::future::{join_all, BoxFuture, FutureExt, Shared};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a read of one key through the KVS yields.
pub(crate) type FetchResult = Result<Option<LatticeValue>, KvsError>;
/// Readers of a key being fetched wait on this (it is shared by all of them).
pub(crate) type Ticket = Shared<BoxFuture<'static, FetchResult>>;

/// State shared by the handle and the actor.
pub(crate) struct Inner {
    core: Mutex<CacheCore<Ticket>>,
    pub(crate) kvs: KvsClient,
    /// This cache's address: `(node, Cache, 0)`, where shards push updates.
    pub(crate) me: ActorRef,
    /// Where fetches and releases run (the arbiter that started the cache), so they finish
    /// even when the caller that started them stops waiting.
    arbiter: ArbiterHandle,
}

impl Inner {
    pub(crate) fn new(
        capacity: usize,
        kvs: KvsClient,
        me: ActorRef,
        arbiter: ArbiterHandle,
    ) -> Self {
        Inner {
            core: Mutex::new(CacheCore::new(capacity)),
            kvs,
            me,
            arbiter,
        }
    }

    /// The core, even if a previous holder panicked (its state is still consistent: every
    /// core method leaves it whole before returning).
    pub(crate) fn lock(&self) -> MutexGuard<'_, CacheCore<Ticket>> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unsubscribe from `keys` in the background (see the module doc for the re-check).
    pub(crate) fn release(self: &Arc<Self>, keys: Vec<Key>) {
        if keys.is_empty() {
            return;
        }
        let inner = self.clone();
        let started = self.arbiter.spawn(async move {
            join_all(keys.into_iter().map(|k| release_one(&inner, k))).await;
        });
        if !started {
            tracing::debug!("cache arbiter stopped; subscriptions not released");
        }
    }

    /// Start reading `key` through the KVS on the cache's arbiter; `None` if it has stopped.
    fn start_fetch(self: &Arc<Self>, key: Key) -> Option<Ticket> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = self.clone();
        let started = self.arbiter.spawn(async move {
            let _ = tx.send(fetch(&inner, key).await);
        });
        if !started {
            tracing::warn!("cache arbiter stopped; reads cannot start");
            return None;
        }
        let ticket = async move { rx.await.unwrap_or_else(|_| Err(stopped())) };
        Some(ticket.boxed().shared())
    }
}

/// Subscribe, read, and hand the result to the core; release the subscription if the key
/// ended up not cached.
async fn fetch(inner: &Arc<Inner>, key: Key) -> FetchResult {
    let subscribed = inner.kvs.subscribe(&inner.me, &key).await;
    let asked = Instant::now();
    let read = inner.kvs.get(&key).await;
    let (result, release) = {
        let mut core = inner.lock();
        match (subscribed, read) {
            (Ok(()), Ok(v)) => {
                let ins = core.insert_from_kvs(key.clone(), v);
                core.confirm(&key, asked);
                let mut evicted = ins.evicted;
                if !ins.cached && !evicted.contains(&key) {
                    evicted.push(key.clone());
                }
                (Ok(ins.value), evicted)
            }
            (Err(e), Ok(v)) => {
                // Served, but not cached: without a subscription it could go stale.
                tracing::debug!(key = %key, cause = %e, "subscribe failed; value not cached");
                core.abort_fetch(&key);
                (Ok(v), vec![key.clone()])
            }
            (_, Err(e)) => {
                core.abort_fetch(&key);
                (Err(e), vec![key.clone()])
            }
        }
    };
    inner.release(release);
    result
}

/// Unsubscribe from one key, then subscribe again and refresh if it is wanted by now.
async fn release_one(inner: &Arc<Inner>, key: Key) {
    if let Err(e) = inner.kvs.unsubscribe(&inner.me, &key).await {
        tracing::debug!(key = %key, cause = %e, "unsubscribe failed");
    }
    if !inner.lock().wants(&key) {
        return;
    }
    if let Err(e) = inner.kvs.subscribe(&inner.me, &key).await {
        tracing::warn!(key = %key, cause = %e, "re-subscribe failed");
        return;
    }
    let asked = Instant::now();
    match inner.kvs.get(&key).await {
        Ok(Some(v)) => {
            let evicted = {
                let mut core = inner.lock();
                let evicted = core.merge_update(key.clone(), v).evicted;
                core.confirm(&key, asked);
                evicted
            };
            inner.release(evicted);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(key = %key, cause = %e, "refresh after re-subscribe failed"),
    }
}

/// The cache of this node, as executors use it. Cheap to clone; implements
/// [`super::StateAccess`].
#[derive(Clone)]
pub struct CacheHandle {
    pub(crate) inner: Arc<Inner>,
}

/// One requested key: served now, or waiting on a read.
enum Slot {
    Ready(Option<LatticeValue>),
    Wait(Ticket),
    Failed(KvsError),
}

/// The error for reads asked of a cache whose arbiter has stopped (node shutting down).
fn stopped() -> KvsError {
    KvsError::Unavailable("the cache has stopped".into())
}

impl CacheHandle {
    /// Values of `keys`, in order (`None`: absent from the KVS). Hits come from memory;
    /// misses read through the KVS (one read per key, shared by concurrent callers).
    pub async fn get(&self, keys: &[Key]) -> Result<Vec<Option<LatticeValue>>, KvsError> {
        for k in keys {
            validate_key(k)?;
        }
        let slots: Vec<Slot> = {
            let mut core = self.inner.lock();
            keys.iter()
                .map(|k| match core.read(k) {
                    Lookup::Hit(v) => Slot::Ready(Some(v.value)),
                    Lookup::Pending(t) => Slot::Wait(t),
                    Lookup::Miss => match self.inner.start_fetch(k.clone()) {
                        Some(t) => {
                            core.begin_fetch(k.clone(), t.clone());
                            Slot::Wait(t)
                        }
                        None => Slot::Failed(stopped()),
                    },
                })
                .collect()
        };
        let mut out = Vec::with_capacity(slots.len());
        for s in slots {
            out.push(match s {
                Slot::Ready(v) => v,
                Slot::Wait(t) => t.await?,
                Slot::Failed(e) => return Err(e),
            });
        }
        Ok(out)
    }

    /// Write-through put (see the module doc for the acknowledgement policy).
    pub async fn put(&self, key: Key, value: LatticeValue) -> Result<(), KvsError> {
        self.inner.kvs.put(key.clone(), value.clone()).await?;
        self.merged(key, value);
        Ok(())
    }

    /// [`Self::put`] on behalf of a function: a reserved key is refused (by the KVS).
    pub async fn put_user(&self, key: Key, value: LatticeValue) -> Result<(), KvsError> {
        self.inner.kvs.put_user(key.clone(), value.clone()).await?;
        self.merged(key, value);
        Ok(())
    }

    /// Merge a value the KVS acknowledged into the held entries.
    fn merged(&self, key: Key, value: LatticeValue) {
        let evicted = {
            let mut core = self.inner.lock();
            // As the KVS took it: a write to a recreated key joins what was written since.
            let value = value.written_over(core.peek(&key));
            core.merge_update(key, value).evicted
        };
        self.inner.release(evicted);
    }

    /// Read `keys` from the KVS now (not from memory) and merge what it returns into the
    /// held entries, which count as confirmed from when the read was asked. Returns the
    /// merged values (what the cache holds now, else what the KVS returned).
    pub async fn refresh(&self, keys: &[Key]) -> Result<Vec<Option<LatticeValue>>, KvsError> {
        let asked = Instant::now();
        let read = self.inner.kvs.get_many(keys).await?;
        let mut evicted = Vec::new();
        let out = {
            let mut core = self.inner.lock();
            keys.iter()
                .zip(read)
                .map(|(k, v)| {
                    if let Some(v) = &v {
                        evicted.extend(core.merge_update(k.clone(), v.clone()).evicted);
                    }
                    core.confirm(k, asked);
                    core.peek(k).cloned().or(v)
                })
                .collect()
        };
        self.inner.release(evicted);
        Ok(out)
    }

    /// Like [`Self::get`], but a held value last confirmed by the KVS more than `lease` ago
    /// (or never) is re-read first ([`Self::refresh`]): every value returned reflects the
    /// KVS as of at most `lease` ago.
    pub async fn get_confirmed(
        &self,
        keys: &[Key],
        lease: Duration,
    ) -> Result<Vec<Option<LatticeValue>>, KvsError> {
        let mut values = self.get(keys).await?;
        let stale: Vec<usize> = {
            let core = self.inner.lock();
            let now = Instant::now();
            keys.iter()
                .enumerate()
                .filter(|(_, k)| {
                    core.peek(k).is_some()
                        && core
                            .confirmed_at(k)
                            .is_none_or(|c| now.saturating_duration_since(c) > lease)
                })
                .map(|(i, _)| i)
                .collect()
        };
        if !stale.is_empty() {
            let again: Vec<Key> = stale.iter().map(|&i| keys[i].clone()).collect();
            for (i, v) in stale.into_iter().zip(self.refresh(&again).await?) {
                values[i] = v;
            }
        }
        Ok(values)
    }

    /// Repeatable read at a session's home cache: the values `session` pinned for `keys`,
    /// pinning what a read returns now for the others (first pin wins, so concurrent
    /// functions of one session agree; a missing key is pinned as missing).
    pub async fn session_read(
        &self,
        session: CallId,
        keys: &[Key],
    ) -> Result<Vec<Option<LatticeValue>>, KvsError> {
        let mut out: Vec<Option<Option<LatticeValue>>> = {
            let mut core = self.inner.lock();
            let now = Instant::now();
            keys.iter().map(|k| core.pinned(session, k, now)).collect()
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let wanted: Vec<Key> = missing.iter().map(|&i| keys[i].clone()).collect();
            let values = self.get(&wanted).await?;
            let mut core = self.inner.lock();
            let now = Instant::now();
            for (i, v) in missing.into_iter().zip(values) {
                out[i] = Some(core.pin_value(session, &keys[i], v, now));
            }
        }
        Ok(out.into_iter().map(Option::flatten).collect())
    }

    /// The value `session` pinned here for `key` (`Some(None)`: pinned as missing).
    pub fn pinned(&self, session: CallId, key: &Key) -> Option<Option<LatticeValue>> {
        self.inner.lock().pinned(session, key, Instant::now())
    }

    /// The held value of `key`, if any (no hit counted).
    pub fn peek(&self, key: &Key) -> Option<LatticeValue> {
        self.inner.lock().peek(key).cloned()
    }

    /// `f` of the held value of `key`, computed under the cache's lock without copying the
    /// value (keep `f` short); `None` if the key is not held.
    pub fn with_held<R>(&self, key: &Key, f: impl FnOnce(&LatticeValue) -> R) -> Option<R> {
        self.inner.lock().peek(key).map(f)
    }

    /// Sessions with repeatable-read pins here (a drain waits until none is left).
    pub fn pinned_sessions(&self) -> usize {
        self.inner.lock().pinned_sessions()
    }

    /// Drop the pins of `session`; returns how many keys it had pinned here.
    pub fn release_session(&self, session: CallId) -> usize {
        self.inner.lock().unpin_session(session)
    }

    /// Counters and sizes of this cache.
    pub fn stats(&self) -> CacheStats {
        self.inner.lock().stats()
    }

    /// Where the KVS pushes updates to this cache: `(node, Cache, 0)`.
    pub fn actor_ref(&self) -> &ActorRef {
        &self.inner.me
    }

    /// Held keys, most recently used first, bounded like the scheduler report.
    pub fn held_keys(&self) -> Vec<Key> {
        self.inner
            .lock()
            .held_keys(super::MAX_REPORT_KEYS, super::MAX_REPORT_KEY_BYTES)
    }
}
