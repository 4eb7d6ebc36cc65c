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
use crate::ids::Key;
use crate::lattice::LatticeValue;
use crate::net::ActorRef;
use actix::ArbiterHandle;
use futures::future::{join_all, BoxFuture, FutureExt, Shared};
use std::sync::{Arc, Mutex, MutexGuard};

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
    let read = inner.kvs.get(&key).await;
    let (result, release) = {
        let mut core = inner.lock();
        match (subscribed, read) {
            (Ok(()), Ok(v)) => {
                let ins = core.insert_from_kvs(key.clone(), v);
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
    match inner.kvs.get(&key).await {
        Ok(Some(v)) => {
            let evicted = inner.lock().merge_update(key, v).evicted;
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
        let evicted = self.inner.lock().merge_update(key, value).evicted;
        self.inner.release(evicted);
        Ok(())
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
