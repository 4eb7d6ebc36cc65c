//! The durable side of a KVS shard, with a data directory and `interval` or `always`:
//! recovery into a [`ShardCore`] before the shard starts, the shard's [`ShardLog`], and the
//! snapshot the shard feeds a chunk at a time between requests.
//!
//! What is logged: every change a put or gossip made (the value merged in, whatever its
//! lattice kind, tombstones included: new kinds are covered by the record format with no
//! change here; a client's write as it was taken, after a delete if it found one), the
//! tombstones values expired into, and the keys a hand-off released or whose tombstone was
//! collected. Unchanged merges are not logged: the value that dominates them
//! was. In `always` mode a shard answers a write only once the log has synced everything
//! handed to it before the answer (so also the earlier write an unchanged merge relied on).

use super::core::{Origin, ShardCore};
use super::deletes::Expiry;
use super::messages::{KvsError, ShardAddr};
use crate::ids::Key;
use crate::lattice::{LatticeValue, Tombstone};
use crate::net::ActorRef;
use crate::storage::log::FatalHook;
use crate::storage::snapshot::{Offer, SnapshotFeed};
use crate::storage::{fs::Fs, recover, LogOptions, Record, Recovered, ShardLog, StorageError};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The store type of a shard.
pub type Core = ShardCore<ActorRef, ShardAddr>;

/// Keys per snapshot chunk: one chunk is cloned per actor turn, so requests wait at most
/// this many clones.
pub const SNAPSHOT_CHUNK_KEYS: usize = 2048;
/// Bytes per snapshot chunk (values are cloned cheaply, but large ones add up).
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 << 20;

/// Load a shard's directory into a new core (values over the size limit included; those
/// past their `expiry` expire as they are loaded) and start its log.
pub fn open_shard(
    fs: Arc<dyn Fs>,
    dir: &Path,
    max_value_bytes: usize,
    expiry: Option<Expiry>,
    opts: LogOptions,
    fatal: FatalHook,
) -> Result<(Core, ShardLog, Recovered), StorageError> {
    let mut core = Core::new(max_value_bytes).with_expiry(expiry);
    core.advance(crate::clock::now_micros());
    let recovered = replay(&*fs, dir, &mut core)?;
    let log = ShardLog::start(
        fs,
        dir,
        opts,
        recovered.next_segment,
        recovered.log_bytes,
        fatal,
    )?;
    Ok((core, log, recovered))
}

/// Replay `dir` into `core`. A record that cannot be merged (its key's kind differs) is
/// reported and skipped: a checksummed record was written by this shard, so that means a
/// bug, not a reason to refuse the rest.
pub fn replay(fs: &dyn Fs, dir: &Path, core: &mut Core) -> Result<Recovered, StorageError> {
    let mut refused = 0u64;
    let recovered = recover(fs, dir, &mut |r| match r {
        Record::Put { key, value } => {
            if let Err(e) = core.restore(key, value) {
                refused += 1;
                if refused <= 10 {
                    tracing::error!(dir = %dir.display(), cause = %e, "a logged value cannot be restored");
                }
            }
        }
        Record::Forget { key } => core.forget(&key),
        Record::End { .. } => {}
    })?;
    if refused > 0 {
        tracing::error!(dir = %dir.display(), refused, "logged values could not be restored");
    }
    Ok(recovered)
}

/// A shard's log and the snapshot it is feeding, if any.
pub struct Durable {
    log: ShardLog,
    snapshot: Option<Feeding>,
}

/// A snapshot being fed: the keys the shard held when it started, and how far it got.
struct Feeding {
    feed: SnapshotFeed,
    keys: Vec<Key>,
    next: usize,
    /// A chunk the snapshot thread could not take yet.
    held: Option<Vec<(Key, LatticeValue)>>,
}

/// What the shard does after a snapshot step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Step again soon (after other messages).
    Again,
    /// The snapshot thread is behind: step again after a pause.
    Later,
    /// No snapshot is being fed.
    Idle,
}

fn storage(e: StorageError) -> KvsError {
    KvsError::Storage(e.to_string())
}

impl Durable {
    pub fn new(log: ShardLog) -> Durable {
        Durable {
            log,
            snapshot: None,
        }
    }

    pub fn log(&self) -> &ShardLog {
        &self.log
    }

    /// Whether a client write may be applied (see [`ShardLog::admit`]).
    pub fn admit(&self) -> Result<(), KvsError> {
        self.log.admit().map_err(storage)
    }

    /// Log the value a write merged into `key` (call only when it changed the key).
    pub fn changed(&self, key: Key, value: LatticeValue) {
        self.log.put(key, value);
    }

    /// Log keys a hand-off released, or whose tombstone was collected.
    pub fn released(&self, keys: impl IntoIterator<Item = Key>) {
        for k in keys {
            self.log.forget(k);
        }
    }

    /// In `always` mode, resolves once everything logged so far is on disk.
    pub fn sync_point(&self) -> Option<oneshot::Receiver<Result<(), StorageError>>> {
        self.log.sync_point()
    }

    /// Start a snapshot when one is due; true if one started (then [`Durable::step`]).
    pub fn maybe_snapshot(&mut self, core: &Core) -> bool {
        if self.snapshot.is_some() || !self.log.snapshot_due(core.bytes() as u64) {
            return false;
        }
        let feed = self.log.begin_snapshot();
        let keys = core.keys();
        tracing::debug!(keys = keys.len(), "snapshot started");
        self.snapshot = Some(Feeding {
            feed,
            keys,
            next: 0,
            held: None,
        });
        true
    }

    /// Feed the snapshot one chunk of current values (or its end).
    pub fn step(&mut self, core: &Core) -> Step {
        let Some(f) = self.snapshot.as_mut() else {
            return Step::Idle;
        };
        let chunk = match f.held.take() {
            Some(c) => c,
            None if f.next >= f.keys.len() => return self.finish(),
            None => next_chunk(f, core),
        };
        match f.feed.offer(chunk) {
            Offer::Taken => Step::Again,
            Offer::Full(c) => {
                f.held = Some(c);
                Step::Later
            }
            Offer::Gone => {
                self.snapshot = None;
                Step::Idle
            }
        }
    }

    fn finish(&mut self) -> Step {
        let Some(f) = self.snapshot.take() else {
            return Step::Idle;
        };
        match f.feed.finish() {
            Offer::Full(feed) => {
                self.snapshot = Some(Feeding { feed, ..f });
                Step::Later
            }
            Offer::Taken | Offer::Gone => Step::Idle,
        }
    }
}

/// Merge one entry into `core`, logging it (with a log) if it changed the key: a client's
/// write as the core takes it (after a delete, if it finds one), so the log replays it the
/// same way.
pub fn put_logged(
    core: &mut Core,
    durable: Option<&Durable>,
    key: Key,
    value: LatticeValue,
    origin: Origin,
) -> Result<bool, KvsError> {
    let Some(d) = durable else {
        return core.put(key, value, origin);
    };
    let value = match origin {
        Origin::Client => value.written_over(core.peek(&key)),
        Origin::Replica => value,
    };
    let copy = (key.clone(), value.clone());
    let changed = core.put(key, value, origin);
    if let Ok(true) = changed {
        d.changed(copy.0, copy.1);
    }
    changed
}

/// Expire what is due in `core`, logging the tombstones.
pub fn expire_logged(core: &mut Core, durable: Option<&Durable>) {
    let expired = core.expire_due();
    if let Some(d) = durable {
        for (k, v) in expired {
            d.changed(k, v);
        }
    }
}

/// Drop the confirmed tombstones `entries` for good, logging the keys dropped; returns
/// how many.
pub fn collect_logged(
    core: &mut Core,
    durable: Option<&Durable>,
    entries: &[(Key, Tombstone)],
) -> usize {
    let dropped = core.collect(entries);
    let n = dropped.len();
    if let Some(d) = durable {
        d.released(dropped);
    }
    n
}

/// The next chunk: current values of the next keys (those dropped since are skipped).
fn next_chunk(f: &mut Feeding, core: &Core) -> Vec<(Key, LatticeValue)> {
    let mut chunk = Vec::new();
    let mut bytes = 0;
    while f.next < f.keys.len() && chunk.len() < SNAPSHOT_CHUNK_KEYS && bytes < SNAPSHOT_CHUNK_BYTES
    {
        let key = &f.keys[f.next];
        f.next += 1;
        if let Some(v) = core.peek(key) {
            bytes += v.size_bytes() + key.as_str().len();
            chunk.push((key.clone(), v.clone()));
        }
    }
    chunk
}

#[cfg(test)]
#[path = "durable_tests.rs"]
mod tests;
