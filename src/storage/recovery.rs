//! Recovery of one shard's directory: load the newest snapshot, replay the segments after
//! it in order, and stop at the first bad record of the last segment (a torn tail, which is
//! cut off so the next recovery does not meet it in the middle of the log). A bad record
//! anywhere else is corruption, not a crash: recovery refuses to guess and says where.
//!
//! Memory: one record at a time besides what `apply` keeps.

use super::files::{self, Listing};
use super::fs::Fs;
use super::record::{Reader, Record, Stop, HEADER_BYTES, SEGMENT_MAGIC, SNAPSHOT_MAGIC};
use super::StorageError;
use std::path::{Path, PathBuf};

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// The snapshot loaded (it covers segments up to this number).
    pub snapshot: Option<u64>,
    /// Segments replayed after it.
    pub segments: usize,
    /// Records applied (snapshot and segments).
    pub records: u64,
    /// Bytes read (snapshot and segments).
    pub bytes: u64,
    /// Bytes of the segments replayed: log not yet covered by a snapshot.
    pub log_bytes: u64,
    /// A torn tail cut off: the segment and the length it was cut to.
    pub torn: Option<(PathBuf, u64)>,
    /// The number the next segment takes.
    pub next_segment: u64,
}

/// Recover `dir` (created if missing), handing every record to `apply` in log order.
pub fn recover(
    fs: &dyn Fs,
    dir: &Path,
    apply: &mut dyn FnMut(Record),
) -> Result<Recovered, StorageError> {
    fs.create_dir_all(dir)
        .map_err(|e| StorageError::io(dir, &e))?;
    let listing = Listing::of(fs, dir).map_err(|e| StorageError::io(dir, &e))?;
    for temp in &listing.temps {
        let path = dir.join(temp);
        fs.remove(&path).map_err(|e| StorageError::io(&path, &e))?;
    }
    let mut out = Recovered::default();
    let covered = listing.snapshots.last().copied();
    if let Some(n) = covered {
        load_snapshot(fs, &files::snapshot(dir, n), &mut out, apply)?;
        out.snapshot = Some(n);
        // Left behind by a crash between a snapshot and the clean-up after it.
        for old in listing.snapshots.iter().filter(|s| **s < n) {
            remove(fs, &files::snapshot(dir, *old))?;
        }
        for old in listing.segments.iter().filter(|s| **s <= n) {
            remove(fs, &files::segment(dir, *old))?;
        }
    }
    let replay: Vec<u64> = listing
        .segments
        .iter()
        .copied()
        .filter(|s| covered.is_none_or(|c| *s > c))
        .collect();
    for (i, n) in replay.iter().enumerate() {
        let last = i + 1 == replay.len();
        replay_segment(fs, &files::segment(dir, *n), last, &mut out, apply)?;
        out.segments += 1;
    }
    out.next_segment = replay.last().copied().or(covered).map_or(1, |n| n + 1);
    Ok(out)
}

fn remove(fs: &dyn Fs, path: &Path) -> Result<(), StorageError> {
    fs.remove(path).map_err(|e| StorageError::io(path, &e))
}

fn corrupt(path: &Path, offset: u64, why: String) -> StorageError {
    StorageError::Corrupt {
        path: path.display().to_string(),
        offset,
        why,
    }
}

fn stopped(path: &Path, stop: Stop) -> StorageError {
    match stop {
        Stop::Torn { offset, why } | Stop::Corrupt { offset, why } => corrupt(path, offset, why),
        Stop::Io(message) => StorageError::Io {
            path: path.display().to_string(),
            message,
        },
    }
}

/// A snapshot was renamed into place only once complete and synced: it must end with an
/// end record counting its puts.
fn load_snapshot(
    fs: &dyn Fs,
    path: &Path,
    out: &mut Recovered,
    apply: &mut dyn FnMut(Record),
) -> Result<(), StorageError> {
    let file = fs.open_read(path).map_err(|e| StorageError::io(path, &e))?;
    let mut reader = Reader::open(file, SNAPSHOT_MAGIC).map_err(|s| stopped(path, s))?;
    let mut puts = 0u64;
    loop {
        let at = reader.offset();
        match reader.next_record().map_err(|s| stopped(path, s))? {
            Some(Record::End { count }) if count == puts => break,
            Some(Record::End { count }) => {
                return Err(corrupt(
                    path,
                    at,
                    format!("ends after {puts} puts but says {count}"),
                ))
            }
            Some(r @ Record::Put { .. }) => {
                puts += 1;
                apply(r);
            }
            Some(Record::Forget { .. }) => {
                return Err(corrupt(path, at, "a forget record in a snapshot".into()))
            }
            None => return Err(corrupt(path, at, "no end record: incomplete".into())),
        }
    }
    if reader
        .next_record()
        .map_err(|s| stopped(path, s))?
        .is_some()
    {
        return Err(corrupt(
            path,
            reader.offset(),
            "records after the end".into(),
        ));
    }
    out.records += puts;
    out.bytes += reader.offset();
    Ok(())
}

fn replay_segment(
    fs: &dyn Fs,
    path: &Path,
    last: bool,
    out: &mut Recovered,
    apply: &mut dyn FnMut(Record),
) -> Result<(), StorageError> {
    let file = fs.open_read(path).map_err(|e| StorageError::io(path, &e))?;
    let (stop, end) = match Reader::open(file, SEGMENT_MAGIC) {
        Err(stop) => (Some(stop), 0),
        Ok(mut reader) => loop {
            match reader.next_record() {
                Ok(Some(Record::End { .. })) => {
                    let why = "a snapshot end record in a segment".to_string();
                    return Err(corrupt(path, reader.offset(), why));
                }
                Ok(Some(r)) => {
                    out.records += 1;
                    apply(r);
                }
                Ok(None) => break (None, reader.offset()),
                Err(stop) => break (Some(stop), reader.offset()),
            }
        },
    };
    out.bytes += end;
    out.log_bytes += end;
    match stop {
        None => Ok(()),
        Some(Stop::Torn { offset, why }) if last => {
            tracing::warn!(segment = %path.display(), offset, cause = %why, "cutting a torn tail off the log");
            if offset <= HEADER_BYTES as u64 {
                remove(fs, path)?;
            } else {
                fs.truncate(path, offset)
                    .map_err(|e| StorageError::io(path, &e))?;
            }
            out.torn = Some((path.to_path_buf(), offset));
            Ok(())
        }
        Some(stop) => Err(stopped(path, stop)),
    }
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
