//! Messages of the cache boundary that other actors depend on.

use crate::ids::{CallId, Key, NodeRef};
use crate::lattice::LatticeValue;
use crate::net::{RemoteMessage, ServiceId};
use serde::{Deserialize, Serialize};

/// Sent periodically by each executor node's cache to the schedulers: which keys it holds
/// (the scheduler places calls where their referenced keys are cached).
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct CacheKeysReport {
    pub node: NodeRef,
    pub keys: Vec<Key>,
}

impl RemoteMessage for CacheKeysReport {
    const SERVICE: ServiceId = ServiceId::Scheduler;
    const TAG: u16 = 10;
}

/// Counters and sizes of one node's cache (cumulative since start; the dashboard derives
/// rates and the hit ratio).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Keys read from the cache.
    pub hits: u64,
    /// Keys read through to the KVS (including readers that joined an in-flight read).
    pub misses: u64,
    /// Entries dropped to respect the capacity.
    pub evictions: u64,
    /// Entries held now.
    pub keys: u64,
    /// Bytes charged now (key + value + a fixed per-entry overhead).
    pub bytes: u64,
    /// The capacity in bytes.
    pub capacity: u64,
    /// Pushed updates and own writes that changed a held entry.
    pub updates: u64,
    /// Pushed updates for keys no longer held (a race with eviction; harmless).
    pub ignored_updates: u64,
    /// Updates of another lattice kind than the held value (left unchanged).
    pub refused_updates: u64,
    /// Values read but not cached because they alone exceed the capacity.
    pub too_large: u64,
    /// Session snapshots pinned now.
    pub pinned: u64,
}

/// Ask a node's cache for its [`CacheStats`] (the dashboard, on any node).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "CacheStats")]
pub struct GetCacheStats;

impl RemoteMessage for GetCacheStats {
    const SERVICE: ServiceId = ServiceId::Cache;
    const TAG: u16 = 1;
}

/// Repeatable read: the values `session` pinned in this cache for `keys` (in order), pinning
/// what a read returns now for keys not pinned yet (first pin wins; absence is pinned too).
/// Sent to the session's home cache by executors on other nodes; `Err` carries a
/// [`KvsError`](crate::actors::kvs::KvsError) message.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<Vec<Option<LatticeValue>>, String>")]
pub struct SessionRead {
    pub session: CallId,
    pub keys: Vec<Key>,
}

/// Repeatable read: the call `session` completed (or failed): drop its pins (one-way).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct ReleaseSession {
    pub session: CallId,
}

impl RemoteMessage for SessionRead {
    const SERVICE: ServiceId = ServiceId::Cache;
    const TAG: u16 = 2;
}

impl RemoteMessage for ReleaseSession {
    const SERVICE: ServiceId = ServiceId::Cache;
    const TAG: u16 = 3;
}
