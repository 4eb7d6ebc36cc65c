//! [`SimFs`]: an in-memory [`Fs`] for tests that break the disk on purpose.
//!
//! It keeps, for each file, the bytes written and how many of them a sync made durable,
//! and for each directory which entries a directory sync made durable. [`SimFs::power_loss`]
//! returns the machine after a power cut: only durable entries and durable bytes remain
//! (optionally a few bytes of the unsynced tail, as a torn write). [`SimFs::set_capacity`]
//! makes writes past a size fail with `ENOSPC` (after writing what fits, as a real disk
//! does), and [`SimFs::fail_syncs`] makes syncs fail with `EIO`.
//!
//! `kill -9` loses nothing a real disk's page cache holds, so only this seam can show what
//! a power loss loses.

use super::fs::{Fs, FsFile};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    /// Bytes a power loss keeps.
    durable: usize,
}

#[derive(Clone, Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    /// Directory entries as the running process sees them.
    live: BTreeMap<PathBuf, u64>,
    /// Directory entries a power loss keeps.
    durable: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    next_inode: u64,
    capacity: Option<usize>,
    failing_syncs: u64,
    syncs: u64,
    sync_delay: std::time::Duration,
}

impl State {
    fn used(&self) -> usize {
        self.live
            .values()
            .filter_map(|i| self.inodes.get(i))
            .map(|i| i.data.len())
            .sum()
    }
}

/// An in-memory file system with power loss, torn writes, a full disk and failing syncs.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

impl SimFs {
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes beyond `bytes` in all (live files together) fail with `ENOSPC`; `None` lifts
    /// the limit.
    pub fn set_capacity(&self, bytes: Option<usize>) {
        self.lock().capacity = bytes;
    }

    /// The next `n` syncs (file or directory) fail with `EIO`.
    pub fn fail_syncs(&self, n: u64) {
        self.lock().failing_syncs = n;
    }

    /// Every file sync takes this long (as a real disk's does), so concurrent writers can
    /// be seen sharing syncs.
    pub fn set_sync_delay(&self, d: std::time::Duration) {
        self.lock().sync_delay = d;
    }

    /// File syncs that succeeded so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Bytes of live files.
    pub fn used(&self) -> usize {
        self.lock().used()
    }

    /// The machine after a power cut, as a new file system: durable entries only, each file
    /// cut to its durable bytes plus up to `torn` bytes of what was written after them.
    /// `self` is left as it was (threads still writing to it write into the past).
    pub fn power_loss(&self, torn: usize) -> SimFs {
        let s = self.lock();
        let mut after = State {
            dirs: s.dirs.clone(),
            next_inode: s.next_inode,
            ..State::default()
        };
        for (path, ino) in &s.durable {
            if let Some(inode) = s.inodes.get(ino) {
                let keep = (inode.durable + torn).min(inode.data.len());
                let data = inode.data[..keep].to_vec();
                after.inodes.insert(
                    *ino,
                    Inode {
                        durable: data.len(),
                        data,
                    },
                );
                after.live.insert(path.clone(), *ino);
                after.durable.insert(path.clone(), *ino);
            }
        }
        SimFs {
            state: Arc::new(Mutex::new(after)),
        }
    }

    /// The bytes of `path` as the running process sees them.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        let ino = s.live.get(path)?;
        s.inodes.get(ino).map(|i| i.data.clone())
    }

    /// Overwrite one byte of `path` (a damaged disk).
    pub fn flip_byte(&self, path: &Path, offset: usize) -> bool {
        let mut s = self.lock();
        let Some(ino) = s.live.get(path).copied() else {
            return false;
        };
        match s.inodes.get_mut(&ino).and_then(|i| i.data.get_mut(offset)) {
            Some(b) => {
                *b ^= 0xFF;
                true
            }
            None => false,
        }
    }

    fn sync_failure(s: &mut State) -> io::Result<()> {
        if s.failing_syncs > 0 {
            s.failing_syncs -= 1;
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
}

struct SimFile {
    fs: SimFs,
    ino: u64,
}

impl FsFile for SimFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut s = self.fs.lock();
        let room = match s.capacity {
            Some(cap) => cap.saturating_sub(s.used()),
            None => usize::MAX,
        };
        let inode = s.inodes.entry(self.ino).or_default();
        let n = buf.len().min(room);
        inode.data.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let delay = self.fs.lock().sync_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut s = self.fs.lock();
        SimFs::sync_failure(&mut s)?;
        s.syncs += 1;
        if let Some(inode) = s.inodes.get_mut(&self.ino) {
            inode.durable = inode.data.len();
        }
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        let inode = s.inodes.entry(self.ino).or_default();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        inode.data.resize(len, 0);
        inode.durable = inode.durable.min(len);
        Ok(())
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        for d in dir.ancestors() {
            s.dirs.insert(d.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(s.live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut s = self.lock();
        let parent = path.parent().unwrap_or(Path::new("/"));
        if !s.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        s.next_inode += 1;
        let ino = s.next_inode;
        s.inodes.insert(ino, Inode::default());
        s.live.insert(path.to_path_buf(), ino);
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        let data = self.read(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(Cursor::new(data)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        let ino = *s.live.get(path).ok_or_else(|| not_found(path))?;
        SimFs::sync_failure(&mut s)?;
        let inode = s.inodes.entry(ino).or_default();
        inode
            .data
            .truncate(usize::try_from(len).unwrap_or(usize::MAX));
        inode.durable = inode.data.len();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let ino = s.live.remove(from).ok_or_else(|| not_found(from))?;
        s.live.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.live
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        SimFs::sync_failure(&mut s)?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        s.durable.retain(|p, _| !in_dir(p));
        let entries: Vec<(PathBuf, u64)> = s
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        s.durable.extend(entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_loss_keeps_only_what_was_synced() {
        let fs = SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let mut a = fs.create(&dir.join("a")).unwrap();
        a.append(b"durable").unwrap();
        a.sync_data().unwrap();
        a.append(b"-volatile").unwrap();
        let mut b = fs.create(&dir.join("b")).unwrap();
        b.append(b"synced but not its entry").unwrap();
        let after_unsynced_dir = fs.power_loss(0);
        assert_eq!(after_unsynced_dir.list(dir).unwrap(), Vec::<String>::new());
        fs.sync_dir(dir).unwrap();
        b.sync_data().unwrap();
        let after = fs.power_loss(0);
        assert_eq!(after.read(&dir.join("a")).unwrap(), b"durable");
        assert_eq!(after.read(&dir.join("b")).unwrap().len(), 24);
        let torn = fs.power_loss(3);
        assert_eq!(torn.read(&dir.join("a")).unwrap(), b"durable-vo");
    }

    #[test]
    fn a_full_disk_writes_what_fits_then_fails() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.set_capacity(Some(4));
        let mut f = fs.create(Path::new("/d/f")).unwrap();
        let err = f.append(b"abcdef").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(fs.read(Path::new("/d/f")).unwrap(), b"abcd");
        fs.fail_syncs(1);
        assert!(f.sync_data().is_err());
        assert!(f.sync_data().is_ok());
    }
}
