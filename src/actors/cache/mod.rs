//! The cache co-located with each executor node: read-through from the KVS, write-through
//! to it, kept fresh by KVS subscriptions, bounded by bytes with LRU eviction, and reported
//! to the schedulers for data locality.
//!
//! [`StateAccess`] is what executors use to read and write state; the KVS client implements
//! it directly (no caching), [`CacheHandle`] implements it with caching.
//!
//! - `core.rs`: the logic, no I/O: entries, versions, LRU, counters, the session seam.
//! - `handle.rs`: [`CacheHandle`]: hits from memory, read-through, write-through (and the
//!   acknowledgement policy), subscription release.
//! - `actor.rs`: [`CacheActor`]: update pushes, stats requests, reports to schedulers.
//! - `messages.rs`: [`CacheStats`], [`GetCacheStats`].

pub mod actor;
pub mod core;
pub mod handle;
pub mod messages;

pub use self::actor::CacheActor;
pub use self::handle::CacheHandle;
pub use self::messages::{CacheStats, GetCacheStats};

use crate::actors::kvs::{KvsClient, KvsError};
use crate::ids::Key;
use crate::lattice::LatticeValue;
use futures::future::BoxFuture;

/// Most keys one [`CacheKeysReport`](crate::protocol::CacheKeysReport) carries: the most
/// recently used ones. Keys beyond it are left out of that report (the scheduler just sees
/// no locality for them), so a huge cache never sends a huge frame every interval.
pub const MAX_REPORT_KEYS: usize = 10_000;
/// Most bytes of key text one report carries (keys may be up to 4 KiB each), so a report
/// stays well inside one peer frame; beyond it, as for [`MAX_REPORT_KEYS`].
pub const MAX_REPORT_KEY_BYTES: usize = 1024 * 1024;
/// Messages (update pushes, stats requests) queued for the cache actor before senders see
/// `QueueFull`; shards then keep the keys and push them again at their next flush.
pub const MAILBOX_CAPACITY: usize = 4096;

/// Reading and writing lattice state, wherever it comes from.
pub trait StateAccess: Send + Sync + 'static {
    /// Values of `keys`, in order; `None` for a missing key.
    fn get(
        &self,
        keys: Vec<Key>,
    ) -> BoxFuture<'static, Result<Vec<Option<LatticeValue>>, KvsError>>;
    /// Merge `value` into `key`; `Ok` once the write is acknowledged by the KVS.
    fn put(&self, key: Key, value: LatticeValue) -> BoxFuture<'static, Result<(), KvsError>>;
}

impl StateAccess for KvsClient {
    fn get(
        &self,
        keys: Vec<Key>,
    ) -> BoxFuture<'static, Result<Vec<Option<LatticeValue>>, KvsError>> {
        let c = self.clone();
        Box::pin(async move { c.get_many(&keys).await })
    }

    fn put(&self, key: Key, value: LatticeValue) -> BoxFuture<'static, Result<(), KvsError>> {
        let c = self.clone();
        Box::pin(async move { c.put(key, value).await })
    }
}

impl StateAccess for CacheHandle {
    fn get(
        &self,
        keys: Vec<Key>,
    ) -> BoxFuture<'static, Result<Vec<Option<LatticeValue>>, KvsError>> {
        let c = self.clone();
        Box::pin(async move { CacheHandle::get(&c, &keys).await })
    }

    fn put(&self, key: Key, value: LatticeValue) -> BoxFuture<'static, Result<(), KvsError>> {
        let c = self.clone();
        Box::pin(async move { CacheHandle::put(&c, key, value).await })
    }
}
