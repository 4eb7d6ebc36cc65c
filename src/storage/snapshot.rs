//! Snapshots taken while writes go on.
//!
//! When a snapshot starts, the log closes its segment `n`; the shard then feeds the
//! snapshot every key it held at that moment, a chunk at a time between requests, with
//! its value *when the chunk is taken*. Such a value holds at least everything segments
//! `<= n` logged for the key and maybe some of what later segments log; replaying those
//! later segments over it is harmless, as merges are idempotent and commutative (and a key
//! forgotten later is forgotten again by the replay). So the snapshot, once complete,
//! replaces segments `<= n`: it is written to a temporary file, synced, renamed to
//! `snap-<n>.snap`, the directory synced, and only then are older snapshots and those
//! segments deleted.
//!
//! The feed is bounded ([`FEED_CHUNKS`]); the shard offers chunks without blocking and
//! offers again later when the snapshot thread is behind. A feed dropped before
//! [`SnapshotFeed::finish`] abandons the snapshot (its temporary file is removed).

use super::files::{self, Listing};
use super::log::Shared;
use super::record::{self, Record, SNAPSHOT_MAGIC};
use super::StorageError;
use crate::ids::Key;
use crate::lattice::LatticeValue;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

/// Chunks waiting for the snapshot thread before the shard must offer again later.
pub const FEED_CHUNKS: usize = 4;
/// Bytes the snapshot thread encodes before appending them to the file.
const WRITE_BYTES: usize = 4 << 20;

/// What the shard sends the snapshot thread.
pub enum SnapshotMsg {
    Chunk(Vec<(Key, LatticeValue)>),
    End,
}

/// The shard's end of a snapshot being written.
pub struct SnapshotFeed {
    tx: SyncSender<SnapshotMsg>,
}

/// The outcome of offering to a feed.
#[derive(Debug)]
pub enum Offer<T> {
    Taken,
    /// The snapshot thread is behind: offer this again later.
    Full(T),
    /// The snapshot was abandoned (an error was logged): stop feeding.
    Gone,
}

pub(super) fn channel() -> (SnapshotFeed, Receiver<SnapshotMsg>) {
    let (tx, rx) = sync_channel(FEED_CHUNKS);
    (SnapshotFeed { tx }, rx)
}

impl SnapshotFeed {
    /// Offer one chunk of `(key, value)` pairs, never blocking.
    pub fn offer(&self, chunk: Vec<(Key, LatticeValue)>) -> Offer<Vec<(Key, LatticeValue)>> {
        match self.tx.try_send(SnapshotMsg::Chunk(chunk)) {
            Ok(()) => Offer::Taken,
            Err(TrySendError::Full(SnapshotMsg::Chunk(c))) => Offer::Full(c),
            Err(_) => Offer::Gone,
        }
    }

    /// Every key was fed: complete the snapshot. Never blocks; `Full` hands the feed back.
    pub fn finish(self) -> Offer<SnapshotFeed> {
        match self.tx.try_send(SnapshotMsg::End) {
            Ok(()) => Offer::Taken,
            Err(TrySendError::Full(_)) => Offer::Full(self),
            Err(_) => Offer::Gone,
        }
    }
}

/// Write the snapshot covering segments `<= covers` from `rx` on a thread of its own.
pub(super) fn spawn(shared: Arc<Shared>, covers: u64, rx: Receiver<SnapshotMsg>) {
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("kvs-snapshot".into())
        .spawn(move || {
            let started = Instant::now();
            match write(&s, covers, rx) {
                Ok(Some(puts)) => {
                    s.counters.snapshots.fetch_add(1, Relaxed);
                    tracing::info!(dir = %s.dir.display(), covers, keys = puts, secs = started.elapsed().as_secs_f64(), "snapshot written");
                }
                Ok(None) => tracing::debug!(dir = %s.dir.display(), "snapshot abandoned"),
                Err(e) => {
                    tracing::warn!(cause = %e, "snapshot failed; the log is kept and a snapshot tried again later");
                    *super::log::lock(&s.snapshot_not_before) =
                        Some(Instant::now() + super::log::SNAPSHOT_RETRY);
                }
            }
            s.snapshotting.store(false, Relaxed);
        });
    if let Err(e) = spawned {
        tracing::warn!(cause = %e, "cannot start a snapshot thread");
        shared.snapshotting.store(false, Relaxed);
    }
}

/// Write, sync and install the snapshot; `None` if the feed was dropped unfinished.
fn write(s: &Shared, covers: u64, rx: Receiver<SnapshotMsg>) -> Result<Option<u64>, StorageError> {
    let (fs, dir) = (&*s.fs, s.dir.as_path());
    let temp = files::snapshot_temp(dir, covers);
    let mut file = fs
        .create(&temp)
        .map_err(|e| StorageError::write(&temp, &e))?;
    let mut buf = record::header(SNAPSHOT_MAGIC).to_vec();
    let mut puts = 0u64;
    let outcome = (|| loop {
        let msg = match rx.recv() {
            Ok(m) => m,
            Err(_) => return Ok(false),
        };
        match msg {
            SnapshotMsg::Chunk(entries) => {
                for (key, value) in entries {
                    record::encode(&Record::Put { key, value }, &mut buf).map_err(|why| {
                        StorageError::Unwritable {
                            path: temp.display().to_string(),
                            message: why,
                        }
                    })?;
                    puts += 1;
                }
            }
            SnapshotMsg::End => {
                record::encode(&Record::End { count: puts }, &mut buf).map_err(|message| {
                    StorageError::Unwritable {
                        path: temp.display().to_string(),
                        message,
                    }
                })?;
                file.append(&buf)
                    .map_err(|e| StorageError::write(&temp, &e))?;
                return Ok(true);
            }
        }
        if buf.len() >= WRITE_BYTES {
            file.append(&buf)
                .map_err(|e| StorageError::write(&temp, &e))?;
            buf.clear();
        }
    })();
    let complete = match outcome {
        Ok(c) => c,
        Err(e) => {
            let _ = fs.remove(&temp);
            return Err(e);
        }
    };
    if !complete {
        let _ = fs.remove(&temp);
        return Ok(None);
    }
    let synced = |e: std::io::Error, p: &Path| StorageError::Io {
        path: p.display().to_string(),
        message: format!("sync failed: {e}"),
    };
    if let Err(e) = file.sync_data() {
        let _ = fs.remove(&temp);
        return Err(synced(e, &temp));
    }
    drop(file);
    let target = files::snapshot(dir, covers);
    fs.rename(&temp, &target)
        .map_err(|e| StorageError::io(&temp, &e))?;
    fs.sync_dir(dir).map_err(|e| synced(e, dir))?;
    remove_covered(fs, dir, covers)?;
    Ok(Some(puts))
}

/// Delete older snapshots and the segments the new one covers.
fn remove_covered(fs: &dyn super::fs::Fs, dir: &Path, covers: u64) -> Result<(), StorageError> {
    let listing = Listing::of(fs, dir).map_err(|e| StorageError::io(dir, &e))?;
    let old_snapshots = listing.snapshots.iter().filter(|n| **n < covers);
    for path in old_snapshots.map(|n| files::snapshot(dir, *n)) {
        fs.remove(&path).map_err(|e| StorageError::io(&path, &e))?;
    }
    let covered = listing.segments.iter().filter(|n| **n <= covers);
    for path in covered.map(|n| files::segment(dir, *n)) {
        fs.remove(&path).map_err(|e| StorageError::io(&path, &e))?;
    }
    fs.sync_dir(dir).map_err(|e| StorageError::io(dir, &e))
}
