//! [`ShardLog`]: one KVS shard's log, written by a thread of its own so the shard actor never
//! waits on the disk.
//!
//! The shard hands changes to the log ([`ShardLog::put`], [`ShardLog::forget`]); the writer
//! thread takes everything queued at once, writes it with one `write` (group commit), and
//! syncs when the mode asks:
//!
//! - `always`: a shard that must not acknowledge before the disk has its changes asks for
//!   a [`ShardLog::sync_point`]; it resolves once everything handed over before it is
//!   synced. Writers that queue while a sync runs share the next one.
//! - `interval`: no one waits; the writer syncs at least every `flush_interval`.
//!
//! A failed write (a full disk) leaves the changes queued and the log unwritable: the shard
//! refuses new client writes with a clear error until a retry succeeds, and sync points
//! fail (no acknowledgement). A failed sync is final: the log stops, every sync point
//! fails, and the fatal hook stops the node. Segments rotate at `segment_bytes` and when a
//! snapshot starts ([`ShardLog::begin_snapshot`]).

use super::fs::Fs;
use super::snapshot::{self, SnapshotFeed, SnapshotMsg};
use super::writer::Writer;
pub use super::writer::WRITE_RETRY;
use super::{Durability, StorageError};
use crate::ids::Key;
use crate::lattice::LatticeValue;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A snapshot that failed is tried again after this long (not in a loop while the disk is
/// full).
pub const SNAPSHOT_RETRY: Duration = Duration::from_secs(10);

/// How a shard's log behaves (from `kvs.*`).
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// `interval` or `always` (`none` keeps no log at all).
    pub durability: Durability,
    /// The log is synced at least this often.
    pub flush_interval: Duration,
    /// A segment is closed and a new one started beyond this many bytes.
    pub segment_bytes: u64,
    /// A snapshot is taken once the log since the last one holds this many bytes and at
    /// least as many as the shard stores (so snapshots cost at most as much as the log).
    pub snapshot_min_bytes: u64,
    /// Changes waiting for the disk beyond which client writes are refused.
    pub max_pending_bytes: usize,
}

/// Called once when a sync fails: the node must stop.
pub type FatalHook = Arc<dyn Fn(&StorageError) + Send + Sync>;

pub(super) type Waiter = oneshot::Sender<Result<(), StorageError>>;

pub(super) enum Op {
    Put(Key, LatticeValue),
    Forget(Key),
    /// Close the current segment; a snapshot of everything up to it is fed through here.
    Rotate(Receiver<SnapshotMsg>),
}

impl Op {
    pub(super) fn bytes(&self) -> usize {
        match self {
            Op::Put(k, v) => k.as_str().len() + v.size_bytes() + 16,
            Op::Forget(k) => k.as_str().len() + 16,
            Op::Rotate(_) => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Health {
    Ok,
    /// Writes fail (full disk): retried; client writes are refused meanwhile.
    Unwritable(StorageError),
    /// A sync failed: final.
    Failed(StorageError),
    Closed,
}

#[derive(Default)]
pub(super) struct Queue {
    pub(super) ops: Vec<Op>,
    pub(super) waiters: Vec<Waiter>,
    pub(super) closing: bool,
    /// The writer waits on the condition variable: the next change must wake it. While it
    /// works, changes are only queued (a wake-up is a system call; under load the writer
    /// takes everything queued each time round anyway).
    pub(super) sleeping: bool,
}

/// Counters of one log (cumulative).
#[derive(Debug, Default)]
pub struct LogCounters {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub syncs: AtomicU64,
    pub snapshots: AtomicU64,
}

pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) fs: Arc<dyn Fs>,
    pub(super) opts: LogOptions,
    pub(super) queue: Mutex<Queue>,
    pub(super) wake: Condvar,
    pub(super) health: Mutex<Health>,
    pub(super) pending: AtomicUsize,
    pub(super) since_snapshot: AtomicU64,
    pub(super) snapshotting: AtomicBool,
    pub(super) snapshot_not_before: Mutex<Option<Instant>>,
    pub(super) counters: LogCounters,
    pub(super) fatal: FatalHook,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The log of one shard. Cheap to clone; [`ShardLog::close`] stops the writer.
#[derive(Clone)]
pub struct ShardLog {
    shared: Arc<Shared>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl ShardLog {
    /// Start the writer for `dir`, after [`super::recover`] found `next_segment` and
    /// `log_bytes` of log not yet in a snapshot.
    pub fn start(
        fs: Arc<dyn Fs>,
        dir: &Path,
        opts: LogOptions,
        next_segment: u64,
        log_bytes: u64,
        fatal: FatalHook,
    ) -> Result<ShardLog, StorageError> {
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            fs,
            opts,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            health: Mutex::new(Health::Ok),
            pending: AtomicUsize::new(0),
            since_snapshot: AtomicU64::new(log_bytes),
            snapshotting: AtomicBool::new(false),
            snapshot_not_before: Mutex::new(None),
            counters: LogCounters::default(),
            fatal,
        });
        let s = shared.clone();
        let writer = std::thread::Builder::new()
            .name("kvs-log".into())
            .spawn(move || Writer::new(s, next_segment).run())
            .map_err(|e| StorageError::io(dir, &e))?;
        Ok(ShardLog {
            shared,
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    pub fn durability(&self) -> Durability {
        self.shared.opts.durability
    }

    /// Whether a client write may be applied now: the log is writable and not too far
    /// behind. A refused write must not be applied (it could not be logged).
    pub fn admit(&self) -> Result<(), StorageError> {
        match &*lock(&self.shared.health) {
            Health::Ok => {}
            Health::Unwritable(e) | Health::Failed(e) => return Err(e.clone()),
            Health::Closed => return Err(StorageError::Closed),
        }
        let bytes = self.shared.pending.load(Relaxed);
        let max = self.shared.opts.max_pending_bytes;
        if bytes > max {
            return Err(StorageError::Behind { bytes, max });
        }
        Ok(())
    }

    fn push(&self, op: Op) {
        self.shared.pending.fetch_add(op.bytes(), Relaxed);
        let mut q = lock(&self.shared.queue);
        q.ops.push(op);
        self.wake(q);
    }

    /// Wake the writer if it sleeps.
    fn wake(&self, mut q: MutexGuard<'_, Queue>) {
        if std::mem::take(&mut q.sleeping) {
            drop(q);
            self.shared.wake.notify_one();
        }
    }

    /// Log a merge of `value` into `key`.
    pub fn put(&self, key: Key, value: LatticeValue) {
        self.push(Op::Put(key, value));
    }

    /// Log that the shard dropped `key`.
    pub fn forget(&self, key: Key) {
        self.push(Op::Forget(key));
    }

    /// In `always` mode: resolves once everything handed to the log so far is synced (an
    /// error means it may not be: do not acknowledge). `None` in `interval` mode.
    pub fn sync_point(&self) -> Option<oneshot::Receiver<Result<(), StorageError>>> {
        if self.shared.opts.durability != Durability::Always {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        match &*lock(&self.shared.health) {
            Health::Failed(e) => {
                let _ = tx.send(Err(e.clone()));
                return Some(rx);
            }
            Health::Closed => {
                let _ = tx.send(Err(StorageError::Closed));
                return Some(rx);
            }
            _ => {}
        }
        let mut q = lock(&self.shared.queue);
        q.waiters.push(tx);
        self.wake(q);
        Some(rx)
    }

    /// Whether a snapshot should start, for a shard storing `store_bytes`.
    pub fn snapshot_due(&self, store_bytes: u64) -> bool {
        let s = &self.shared;
        if s.snapshotting.load(Relaxed) || *lock(&s.health) != Health::Ok {
            return false;
        }
        if lock(&s.snapshot_not_before).is_some_and(|t| Instant::now() < t) {
            return false;
        }
        s.since_snapshot.load(Relaxed) >= s.opts.snapshot_min_bytes.max(store_bytes)
    }

    /// Start a snapshot: the log moves to a new segment, and the snapshot, fed every key
    /// the shard holds *now* through the returned feed, replaces every segment before it.
    pub fn begin_snapshot(&self) -> SnapshotFeed {
        self.shared.snapshotting.store(true, Relaxed);
        let (feed, rx) = snapshot::channel();
        self.push(Op::Rotate(rx));
        feed
    }

    pub fn counters(&self) -> &LogCounters {
        &self.shared.counters
    }

    /// Write and sync what is queued, stop the writer and wait for it. Later changes are
    /// refused.
    pub fn close(&self) {
        lock(&self.shared.queue).closing = true;
        self.shared.wake.notify_one();
        let handle = lock(&self.writer).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
pub(crate) mod tests;
