//! The cache's own messages: its counters, for the dashboard. What executors and
//! schedulers exchange with caches is in [`crate::protocol`].

use serde::{Deserialize, Serialize};

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
