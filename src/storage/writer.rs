//! The writer thread of a [`ShardLog`](super::ShardLog): takes everything queued at once,
//! writes it with one append per run of changes, rotates segments, syncs when the mode
//! asks, and answers the sync points (see `log.rs` for the rules).

use super::files;
use super::fs::FsFile;
use super::log::{lock, Health, Op, Shared, Waiter};
use super::record::{self, Record, HEADER_BYTES, SEGMENT_MAGIC};
use super::snapshot;
use super::StorageError;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// A write that failed (full disk) is tried again after this long.
pub const WRITE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// The writer encodes at most this many bytes before writing them (bounds its buffer).
const WRITE_CHUNK_BYTES: usize = 4 << 20;

/// The writer thread's state.
pub(super) struct Writer {
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
    pub(super) fn new(shared: Arc<Shared>, next_segment: u64) -> Writer {
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

    pub(super) fn run(mut self) {
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
