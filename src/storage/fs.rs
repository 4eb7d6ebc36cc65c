//! The storage seam: every file operation the log, snapshots and recovery use goes through
//! [`Fs`], so tests can swap the disk for [`super::sim::SimFs`] and cut the power, tear the
//! last write, fill the disk or fail a sync. [`DiskFs`] is the real thing.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A directory tree of files, as the log sees it.
pub trait Fs: Send + Sync + 'static {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the files in `dir` (not paths).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Create `path` empty (replacing any file there) for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;
    /// Cut `path` to `len` bytes and sync it.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Make the directory's entries (files created, renamed, removed) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for writing at its end.
pub trait FsFile: Send {
    /// Append `buf` (all of it, or an error; a failed write may leave part of it).
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Make what was appended durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cut the file to `len` bytes; later appends continue from there.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// The real disk.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskFs;

struct DiskFile {
    file: File,
    end: u64,
}

impl FsFile for DiskFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        // Written at an explicit offset, so a cut after a failed write leaves no hole.
        let at = self.end;
        let mut done = 0;
        while done < buf.len() {
            match self.file.write_at(&buf[done..], at + done as u64) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    done += n;
                    self.end = at + done as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.end = len;
        Ok(())
    }
}

impl Fs for DiskFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(DiskFile { file, end: 0 }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::BufReader::with_capacity(
            READ_BUFFER_BYTES,
            File::open(path)?,
        )))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Read buffer of recovery: large reads keep it near the disk's sequential rate.
const READ_BUFFER_BYTES: usize = 1 << 20;
