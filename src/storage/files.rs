//! Names of the files in a shard's directory:
//!
//! - `seg-<n>.log`: log segment `n` (20 decimal digits, so names sort by number);
//! - `snap-<n>.snap`: a snapshot holding everything in segments `<= n`;
//! - `*.tmp`: a snapshot being written (removed at start: it never completed).

use super::fs::Fs;
use std::path::{Path, PathBuf};

const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".log";
const SNAPSHOT_PREFIX: &str = "snap-";
const SNAPSHOT_SUFFIX: &str = ".snap";
const TEMP_SUFFIX: &str = ".tmp";

pub fn segment(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{n:020}{SEGMENT_SUFFIX}"))
}

pub fn snapshot(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{SNAPSHOT_PREFIX}{n:020}{SNAPSHOT_SUFFIX}"))
}

pub fn snapshot_temp(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!(
        "{SNAPSHOT_PREFIX}{n:020}{SNAPSHOT_SUFFIX}{TEMP_SUFFIX}"
    ))
}

fn number(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

/// What a shard directory holds, each list sorted by number.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Listing {
    pub segments: Vec<u64>,
    pub snapshots: Vec<u64>,
    pub temps: Vec<String>,
}

impl Listing {
    pub fn of(fs: &dyn Fs, dir: &Path) -> std::io::Result<Listing> {
        let mut l = Listing::default();
        for name in fs.list(dir)? {
            if let Some(n) = number(&name, SEGMENT_PREFIX, SEGMENT_SUFFIX) {
                l.segments.push(n);
            } else if let Some(n) = number(&name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
                l.snapshots.push(n);
            } else if name.ends_with(TEMP_SUFFIX) {
                l.temps.push(name);
            }
        }
        l.segments.sort_unstable();
        l.snapshots.sort_unstable();
        l.temps.sort();
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_sort_by_number() {
        let dir = Path::new("/d");
        let name = |p: PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            number(&name(segment(dir, 42)), SEGMENT_PREFIX, SEGMENT_SUFFIX),
            Some(42)
        );
        assert_eq!(
            number(&name(snapshot(dir, 7)), SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX),
            Some(7)
        );
        assert!(name(snapshot_temp(dir, 7)).ends_with(TEMP_SUFFIX));
        assert!(name(segment(dir, 9)) < name(segment(dir, 10)));
        assert_eq!(number("seg-x.log", SEGMENT_PREFIX, SEGMENT_SUFFIX), None);
    }
}
