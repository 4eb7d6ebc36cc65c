//! Durable state on a node's disk: a small in-house write-ahead log with snapshots, one per
//! KVS shard, and the data directory that holds them. The format is documented in
//! `docs/storage.md`.
//!
//! - [`record`]: the record format (length-prefixed, checksummed) and its streaming reader.
//! - [`fs`]: the storage seam: the few file operations the log uses, on the real disk
//!   ([`fs::DiskFs`]); [`sim`] implements them in memory with power loss, torn writes, a
//!   full disk and failing syncs, for tests.
//! - [`files`]: names of segment and snapshot files in a shard's directory.
//! - [`recovery`]: load the newest snapshot, replay the segments after it, cut a torn tail.
//! - [`log`]: [`ShardLog`], what a shard hands its changes to; `writer` is its thread (group
//!   commit, flushing, rotation).
//! - [`snapshot`]: writing a snapshot from chunks fed by the shard while writes go on.
//! - [`datadir`]: the data directory: its lock, the node file (node id, members), layout.
//!
//! Everything here runs on threads of its own or in blocking sections: no actor waits on
//! the disk. Lattice merges are idempotent and commutative, which the log relies on: a
//! snapshot need not be a consistent cut, and replaying a record already in a snapshot is
//! harmless.

pub mod datadir;
pub mod files;
pub mod fs;
pub mod log;
pub mod record;
pub mod recovery;
pub mod sim;
pub mod snapshot;
mod writer;

#[cfg(test)]
mod power_tests;

pub use self::datadir::{DataDir, NodeFile};
pub use self::log::{LogOptions, ShardLog};
pub use self::record::Record;
pub use self::recovery::{recover, Recovered};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// When a KVS write is acknowledged relative to the disk (`kvs.durability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Nothing is written to disk: state lives in memory only.
    None,
    /// Acknowledged once handed to the log; the log is synced at least every
    /// `kvs.flush_interval_ms`, so a power loss loses at most that window.
    Interval,
    /// Acknowledged only after the record is synced (fdatasync); concurrent writers share
    /// one sync (group commit).
    Always,
}

impl Durability {
    pub const ALL: [Durability; 3] = [Durability::None, Durability::Interval, Durability::Always];

    pub fn as_str(self) -> &'static str {
        match self {
            Durability::None => "none",
            Durability::Interval => "interval",
            Durability::Always => "always",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Durability::ALL
            .into_iter()
            .find(|d| d.as_str() == s.trim())
            .ok_or_else(|| format!("unknown durability `{s}` (expected none, interval or always)"))
    }
}

/// What went wrong with durable state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    /// A write found the disk full: the write was not applied; writes resume once the log
    /// can be written again.
    #[error("no space left on the device holding {path}: the write was not applied")]
    DiskFull { path: String },
    /// A write failed for another reason: the write was not applied.
    #[error("cannot write {path}: {message}; the write was not applied")]
    Unwritable { path: String, message: String },
    /// A sync failed: what was written since the last sync may be lost, so the node stops
    /// rather than acknowledge it (a failed sync cannot be retried safely).
    #[error("syncing {path} failed ({message}); the node stops rather than acknowledge writes it may have lost")]
    SyncFailed { path: String, message: String },
    /// More bytes wait for the disk than the log buffers; the write was not applied.
    #[error("the log has {bytes} bytes waiting for the disk (limit {max}); the write was not applied, try again")]
    Behind { bytes: usize, max: usize },
    /// The log is closed (the node is stopping).
    #[error("the log is closed")]
    Closed,
    /// A file is damaged somewhere other than a torn tail: the node refuses to guess.
    #[error("{path} is corrupt at byte {offset}: {why}; move the shard directory away to start without it (its replicas keep the data)")]
    Corrupt {
        path: String,
        offset: u64,
        why: String,
    },
    /// Another process holds the data directory.
    #[error("the data directory {path} is in use by another process{holder}")]
    Locked { path: String, holder: String },
    /// The data directory belongs to something else than what the config says.
    #[error("the data directory {path} {why}")]
    Mismatch { path: String, why: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl StorageError {
    /// An I/O error on `path`, with ENOSPC told apart.
    pub fn write(path: &std::path::Path, e: &std::io::Error) -> StorageError {
        let path = path.display().to_string();
        if e.raw_os_error() == Some(libc::ENOSPC) {
            StorageError::DiskFull { path }
        } else {
            StorageError::Unwritable {
                path,
                message: e.to_string(),
            }
        }
    }

    /// Any other I/O error on `path`.
    pub fn io(path: &std::path::Path, e: &std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// Where a node keeps durable state, and how (the `node.data_dir` and `kvs.*` settings the
/// storage layer needs, resolved from the config).
#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub log: LogOptions,
}
