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

use super::files;
use super::fs::{Fs, FsFile};
use super::record::{self, Record, HEADER_BYTES, SEGMENT_MAGIC};
use super::snapshot::{self, SnapshotFeed, SnapshotMsg};
use super::{Durability, StorageError};
use crate::ids::Key;
use crate::lattice::LatticeValue;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A write that failed (full disk) is tried again after this long.
pub const WRITE_RETRY: Duration = Duration::from_secs(1);
/// A snapshot that failed is tried again after this long (not in a loop while the disk is
/// full).
pub const SNAPSHOT_RETRY: Duration = Duration::from_secs(10);
/// The writer encodes at most this many bytes before writing them (bounds its buffer).
const WRITE_CHUNK_BYTES: usize = 4 << 20;

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

type Waiter = oneshot::Sender<Result<(), StorageError>>;

enum Op {
    Put(Key, LatticeValue),
    Forget(Key),
    /// Close the current segment; a snapshot of everything up to it is fed through here.
    Rotate(Receiver<SnapshotMsg>),
}

impl Op {
    fn bytes(&self) -> usize {
        match self {
            Op::Put(k, v) => k.as_str().len() + v.size_bytes() + 16,
            Op::Forget(k) => k.as_str().len() + 16,
            Op::Rotate(_) => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Health {
    Ok,
    /// Writes fail (full disk): retried; client writes are refused meanwhile.
    Unwritable(StorageError),
    /// A sync failed: final.
    Failed(StorageError),
    Closed,
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    waiters: Vec<Waiter>,
    closing: bool,
    /// The writer waits on the condition variable: the next change must wake it. While it
    /// works, changes are only queued (a wake-up is a system call; under load the writer
    /// takes everything queued each time round anyway).
    sleeping: bool,
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
    opts: LogOptions,
    queue: Mutex<Queue>,
    wake: Condvar,
    health: Mutex<Health>,
    pending: AtomicUsize,
    since_snapshot: AtomicU64,
    pub(super) snapshotting: AtomicBool,
    pub(super) snapshot_not_before: Mutex<Option<Instant>>,
    pub(super) counters: LogCounters,
    fatal: FatalHook,
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

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    /// The segment writes go to (opened on first write).
    current: u64,
    file: Option<Box<dyn FsFile>>,
    /// Bytes of the current segment known written (a failed write is cut back to this).
    len: u64,
    cut_pending: bool,
    unsynced: bool,
    last_sync: Instant,
    backlog: VecDeque<Op>,
    waiting: Vec<Waiter>,
    retry_at: Option<Instant>,
    buf: Vec<u8>,
}

impl Writer {
    fn new(shared: Arc<Shared>, next_segment: u64) -> Writer {
        Writer {
            shared,
            current: next_segment,
            file: None,
            len: 0,
            cut_pending: false,
            unsynced: false,
            last_sync: Instant::now(),
            backlog: VecDeque::new(),
            waiting: Vec::new(),
            retry_at: None,
            buf: Vec::new(),
        }
    }

    fn health(&self) -> Health {
        lock(&self.shared.health).clone()
    }

    /// Change the health, except out of `Failed` (final) into anything but `Closed`.
    fn set_health(&self, h: Health) {
        let mut cur = lock(&self.shared.health);
        if !matches!(*cur, Health::Failed(_)) || h == Health::Closed {
            *cur = h;
        }
    }

    fn run(mut self) {
        loop {
            let closing = self.wait_for_work();
            if let Health::Failed(e) = self.health() {
                self.drop_everything(&e);
                if closing {
                    break;
                }
                continue;
            }
            let written = self.retry_at.is_none_or(|t| Instant::now() >= t || closing)
                && self.write_backlog();
            if !written {
                let e = match self.health() {
                    Health::Unwritable(e) | Health::Failed(e) => e,
                    _ => StorageError::Closed,
                };
                self.fail_waiting(&e);
                if closing {
                    break; // nothing more can be written; what is queued is lost
                }
                continue;
            }
            let due = self.unsynced
                && (closing
                    || !self.waiting.is_empty()
                    || self.last_sync.elapsed() >= self.shared.opts.flush_interval);
            if due && !self.sync() {
                continue;
            }
            for w in self.waiting.drain(..) {
                let _ = w.send(Ok(()));
            }
            if closing {
                break;
            }
        }
        self.set_health(Health::Closed);
        let e = StorageError::Closed;
        let q = std::mem::take(&mut *lock(&self.shared.queue));
        for w in q.waiters {
            let _ = w.send(Err(e.clone()));
        }
    }

    /// Block until there is something to do or a deadline (flush, retry) passes; take the
    /// queue. Returns whether the log is closing.
    fn wait_for_work(&mut self) -> bool {
        let shared = self.shared.clone();
        let mut q = lock(&shared.queue);
        loop {
            if !q.ops.is_empty() || !q.waiters.is_empty() || q.closing {
                break;
            }
            let flush = self
                .unsynced
                .then(|| self.last_sync + self.shared.opts.flush_interval);
            let retry = (!self.backlog.is_empty())
                .then_some(self.retry_at)
                .flatten();
            let deadline = match (flush, retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            q.sleeping = true;
            match deadline {
                None => q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner()),
                Some(t) => {
                    let now = Instant::now();
                    if now >= t {
                        break;
                    }
                    q = shared
                        .wake
                        .wait_timeout(q, t - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        q.sleeping = false;
        self.backlog.extend(q.ops.drain(..));
        self.waiting.append(&mut q.waiters);
        q.closing
    }

    fn drop_everything(&mut self, e: &StorageError) {
        if self.backlog.iter().any(|op| matches!(op, Op::Rotate(_))) {
            self.shared.snapshotting.store(false, Relaxed);
        }
        let bytes: usize = self.backlog.drain(..).map(|op| op.bytes()).sum();
        self.shared.pending.fetch_sub(bytes, Relaxed);
        self.fail_waiting(e);
    }

    fn fail_waiting(&mut self, e: &StorageError) {
        for w in self.waiting.drain(..) {
            let _ = w.send(Err(e.clone()));
        }
    }

    /// Write the backlog in order. On a write error the rest stays queued, the log is
    /// unwritable until a retry succeeds, and this returns false.
    fn write_backlog(&mut self) -> bool {
        match self.try_write_backlog() {
            Ok(()) => {
                if self.retry_at.take().is_some() {
                    tracing::info!(dir = %self.shared.dir.display(), "the log is writable again");
                }
                if let Health::Unwritable(_) = self.health() {
                    self.set_health(Health::Ok);
                }
                true
            }
            Err(e) => {
                if self.retry_at.is_none() {
                    tracing::error!(cause = %e, "cannot write the KVS log; refusing writes until it can");
                }
                self.retry_at = Some(Instant::now() + WRITE_RETRY);
                self.set_health(Health::Unwritable(e));
                false
            }
        }
    }

    fn try_write_backlog(&mut self) -> Result<(), StorageError> {
        if self.cut_pending {
            self.cut_back()?;
        }
        while !self.backlog.is_empty() {
            if let Some(Op::Rotate(_)) = self.backlog.front() {
                self.rotate()?;
                continue;
            }
            if self.len >= self.shared.opts.segment_bytes && self.file.is_some() {
                self.close_segment()?;
                self.current += 1;
            }
            // Encode a run of changes up to the next rotation or the chunk size.
            self.buf.clear();
            let mut taken = 0;
            let mut records = 0;
            let room = self.shared.opts.segment_bytes.saturating_sub(self.len) as usize;
            for op in self.backlog.iter() {
                if taken > 0 && self.buf.len() >= room.min(WRITE_CHUNK_BYTES) {
                    break;
                }
                let rec = match op {
                    Op::Put(key, value) => Record::Put {
                        key: key.clone(),
                        value: value.clone(),
                    },
                    Op::Forget(key) => Record::Forget { key: key.clone() },
                    Op::Rotate(_) => break,
                };
                taken += 1;
                match record::encode(&rec, &mut self.buf) {
                    Ok(()) => records += 1,
                    Err(why) => tracing::error!(cause = %why, "a change cannot be logged; dropped"),
                }
            }
            self.append_run()?;
            let bytes: usize = self.backlog.drain(..taken).map(|op| op.bytes()).sum();
            self.shared.pending.fetch_sub(bytes, Relaxed);
            let c = &self.shared.counters;
            c.records.fetch_add(records, Relaxed);
            c.bytes.fetch_add(self.buf.len() as u64, Relaxed);
            self.shared
                .since_snapshot
                .fetch_add(self.buf.len() as u64, Relaxed);
        }
        Ok(())
    }

    fn segment_path(&self) -> PathBuf {
        files::segment(&self.shared.dir, self.current)
    }

    /// Append the encoded run to the current segment (opened first if needed).
    fn append_run(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.open_segment()?;
        }
        let path = self.segment_path();
        let Some(file) = self.file.as_mut() else {
            return Err(StorageError::Closed);
        };
        match file.append(&self.buf) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                self.unsynced = true;
                Ok(())
            }
            Err(e) => {
                self.cut_pending = true;
                let err = StorageError::write(&path, &e);
                let _ = self.cut_back();
                Err(err)
            }
        }
    }

    /// Cut a partly written run off the segment.
    fn cut_back(&mut self) -> Result<(), StorageError> {
        let path = self.segment_path();
        if let Some(f) = self.file.as_mut() {
            f.set_len(self.len)
                .map_err(|e| StorageError::write(&path, &e))?;
        }
        self.cut_pending = false;
        Ok(())
    }

    /// Create the current segment with its header; its directory entry is synced so a
    /// power loss keeps the file along with what is synced in it.
    fn open_segment(&mut self) -> Result<(), StorageError> {
        let path = self.segment_path();
        let fs = &self.shared.fs;
        let mut f = fs
            .create(&path)
            .map_err(|e| StorageError::write(&path, &e))?;
        let header = record::header(SEGMENT_MAGIC);
        if let Err(e) = f.append(&header) {
            let _ = fs.remove(&path);
            return Err(StorageError::write(&path, &e));
        }
        if let Err(e) = fs.sync_dir(&self.shared.dir) {
            self.fail_sync(StorageError::SyncFailed {
                path: self.shared.dir.display().to_string(),
                message: e.to_string(),
            });
            return Err(StorageError::Closed);
        }
        self.file = Some(f);
        self.len = HEADER_BYTES as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Sync and close the current segment (if open).
    fn close_segment(&mut self) -> Result<(), StorageError> {
        if self.unsynced && !self.sync() {
            return Err(StorageError::Closed);
        }
        self.file = None;
        self.len = 0;
        Ok(())
    }

    /// The snapshot about to be fed covers every segment up to the current one.
    fn rotate(&mut self) -> Result<(), StorageError> {
        self.close_segment()?;
        let Some(Op::Rotate(rx)) = self.backlog.pop_front() else {
            return Ok(());
        };
        let covers = self.current;
        self.current += 1;
        self.shared.since_snapshot.store(0, Relaxed);
        snapshot::spawn(self.shared.clone(), covers, rx);
        Ok(())
    }

    /// fdatasync the current segment. A failure is final (see the module doc).
    fn sync(&mut self) -> bool {
        let path = self.segment_path();
        let Some(f) = self.file.as_mut() else {
            self.unsynced = false;
            return true;
        };
        match f.sync_data() {
            Ok(()) => {
                self.unsynced = false;
                self.last_sync = Instant::now();
                self.shared.counters.syncs.fetch_add(1, Relaxed);
                true
            }
            Err(e) => {
                self.fail_sync(StorageError::SyncFailed {
                    path: path.display().to_string(),
                    message: e.to_string(),
                });
                false
            }
        }
    }

    fn fail_sync(&mut self, e: StorageError) {
        tracing::error!(cause = %e, "the KVS log failed to sync; stopping");
        self.set_health(Health::Failed(e.clone()));
        (self.shared.fatal)(&e);
        self.drop_everything(&e);
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
pub(crate) mod tests;
