//! Recording the frames a node decodes from outside into a directory, to seed the fuzz
//! corpora with real traffic: run a node (or the test suite) with
//! `CLOUDBURST_RECORD_FRAMES=DIR` and each distinct client message, peer frame, worker
//! frame and KVS merge is written to `DIR/<target>/<hash>`. Off by default: then a frame costs one
//! check of an initialised cell.

use super::Target;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Environment variable naming the directory frames are recorded in.
pub const RECORD_ENV: &str = "CLOUDBURST_RECORD_FRAMES";

/// Files written per target and process: a seed corpus wants variety, not volume.
const MAX_FILES_PER_TARGET: usize = 2_000;

/// Larger frames are not recorded (the fuzzers' inputs are small; a large value's frame
/// adds bytes, not code paths).
const MAX_FRAME_BYTES: usize = 64 * 1024;

struct Recorder {
    dir: PathBuf,
    written: [AtomicUsize; Target::ALL.len()],
}

static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

fn recorder() -> Option<&'static Recorder> {
    RECORDER
        .get_or_init(|| {
            let dir = std::env::var_os(RECORD_ENV).filter(|d| !d.is_empty())?;
            Some(Recorder {
                dir: PathBuf::from(dir),
                written: Default::default(),
            })
        })
        .as_ref()
}

/// Record `frame` as an input of `target`, when recording is on. Failures to write are
/// ignored: recording must never disturb what is recorded.
pub fn frame(target: Target, frame: &[u8]) {
    let Some(r) = recorder() else {
        return;
    };
    if frame.len() > MAX_FRAME_BYTES {
        return;
    }
    let count = &r.written[target as usize];
    if count.fetch_add(1, Ordering::Relaxed) >= MAX_FILES_PER_TARGET {
        return;
    }
    let dir = r.dir.join(target.name());
    let name = format!("{:08x}-{:04x}", crc32fast::hash(frame), frame.len());
    let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(name), frame));
}

/// Record a merge of `incoming` into `stored` as an input of the lattice target (the
/// first byte says how long the first value is), when recording is on.
pub fn merge(stored: &crate::lattice::LatticeValue, incoming: &crate::lattice::LatticeValue) {
    if recorder().is_none() {
        return;
    }
    let encode = crate::net::wire::encode_payload::<crate::lattice::LatticeValue>;
    let (Ok(a), Ok(b)) = (encode(stored), encode(incoming)) else {
        return;
    };
    let Ok(cut) = u8::try_from(a.len()) else {
        return; // the target's inputs name the split in one byte
    };
    let input: Vec<u8> = std::iter::once(cut).chain(a).chain(b).collect();
    frame(Target::LatticeMerge, &input);
}
