//! A node's data directory (`node.data_dir`):
//!
//! ```text
//! <data_dir>/LOCK          held (flock) by the running node; holds its pid
//! <data_dir>/node.json     the node file: node id, cluster id, KVS shards, last members
//! <data_dir>/kvs/shard-<i> one KVS shard's segments and snapshots
//! ```
//!
//! The lock keeps a second process off the directory (two writers would interleave their
//! logs). The node file makes a restarted node the same node: it keeps its id (even when
//! its port changed) and its shard count (keys were placed by it), and remembers the last
//! members it knew.

use super::StorageError;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Version of the node file this build writes and reads.
pub const NODE_FILE_FORMAT: u32 = 1;
const LOCK_FILE: &str = "LOCK";
const NODE_FILE: &str = "node.json";
/// Largest node file read back (a member list of a large cluster fits many times over).
const MAX_NODE_FILE_BYTES: u64 = 4 << 20;

/// A member as the node file remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownMember {
    pub id: String,
    pub addr: SocketAddr,
}

/// What `node.json` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub format: u32,
    /// The node this directory belongs to.
    pub node_id: String,
    /// The cluster this node belongs to (none until it formed or joined one). A node
    /// restarted on this directory rejoins it, and its handshakes refuse members of
    /// another cluster.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// KVS shards of the node (each has a directory under `kvs/`).
    pub kvs_shards: u32,
    /// The live members at the last change of the view (this node included).
    #[serde(default)]
    pub members: Vec<KnownMember>,
}

/// An open, locked data directory. The lock is released when this is dropped (or the
/// process dies).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Create `path` if needed and lock it against other processes.
    pub fn open(path: &Path) -> Result<DataDir, StorageError> {
        std::fs::create_dir_all(path).map_err(|e| StorageError::io(path, &e))?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| StorageError::io(&lock_path, &e))?;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StorageError::Locked {
                path: path.display().to_string(),
                holder: if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                },
            });
        }
        let pid = std::process::id().to_string();
        lock.set_len(0)
            .and_then(|_| lock.write_all(pid.as_bytes()))
            .map_err(|e| StorageError::io(&lock_path, &e))?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory of KVS shard `i`.
    pub fn shard_dir(&self, i: u32) -> PathBuf {
        self.path.join("kvs").join(format!("shard-{i}"))
    }

    /// The node file, if one was written.
    pub fn node_file(&self) -> Result<Option<NodeFile>, StorageError> {
        let path = self.path.join(NODE_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(&path, &e)),
        };
        let mut text = String::new();
        file.take(MAX_NODE_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| StorageError::io(&path, &e))?;
        let node: NodeFile = serde_json::from_str(&text).map_err(|e| StorageError::Corrupt {
            path: path.display().to_string(),
            offset: 0,
            why: e.to_string(),
        })?;
        if node.format != NODE_FILE_FORMAT {
            return Err(StorageError::Mismatch {
                path: self.path.display().to_string(),
                why: format!(
                    "was written in node file format {}, this build reads {NODE_FILE_FORMAT}",
                    node.format
                ),
            });
        }
        Ok(Some(node))
    }

    /// Replace the node file atomically (temporary file, sync, rename, sync directory).
    pub fn write_node_file(&self, node: &NodeFile) -> Result<(), StorageError> {
        let path = self.path.join(NODE_FILE);
        let temp = self.path.join(format!("{NODE_FILE}.tmp"));
        let text = serde_json::to_string_pretty(node).map_err(|e| StorageError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&temp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&temp, &path)?;
            File::open(&self.path)?.sync_all()
        };
        write().map_err(|e| StorageError::write(&path, &e))
    }
}

/// The node id and KVS shard count a node with this data directory runs with, or why it
/// must not start: a recorded node keeps its id and shard count; configured values that
/// contradict them are refused (`configured_id` empty and `configured_shards` 0 mean "not
/// set").
pub fn identity(
    dir: &Path,
    recorded: Option<&NodeFile>,
    configured_id: &str,
    configured_shards: usize,
) -> Result<(Option<String>, usize), StorageError> {
    let Some(r) = recorded else {
        let id = (!configured_id.is_empty()).then(|| configured_id.to_string());
        return Ok((id, configured_shards));
    };
    let mismatch = |why: String| StorageError::Mismatch {
        path: dir.display().to_string(),
        why,
    };
    if !configured_id.is_empty() && configured_id != r.node_id {
        return Err(mismatch(format!(
            "belongs to node `{}`, not `{configured_id}` (node.id)",
            r.node_id
        )));
    }
    let recorded_shards = r.kvs_shards as usize;
    if configured_shards != 0 && configured_shards != recorded_shards {
        return Err(mismatch(format!(
            "holds {recorded_shards} KVS shards; kvs.shards_per_node = {configured_shards} would leave keys where no shard reads them (set it to {recorded_shards} or 0)"
        )));
    }
    Ok((Some(r.node_id.clone()), recorded_shards))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> NodeFile {
        NodeFile {
            format: NODE_FILE_FORMAT,
            node_id: "n1".into(),
            cluster_id: None,
            kvs_shards: 3,
            members: vec![KnownMember {
                id: "n1".into(),
                addr: "127.0.0.1:6100".parse().unwrap(),
            }],
        }
    }

    #[test]
    fn a_second_process_cannot_take_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDir::open(tmp.path()).expect("first");
        // flock locks belong to the open file description: a second open in this process
        // conflicts just as another process would.
        let err = DataDir::open(tmp.path()).unwrap_err();
        assert!(
            matches!(&err, StorageError::Locked { holder, .. } if holder.contains(&std::process::id().to_string())),
            "{err}"
        );
        drop(first);
        DataDir::open(tmp.path()).expect("free again once dropped");
    }

    #[test]
    fn the_node_file_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let d = DataDir::open(tmp.path()).unwrap();
        assert_eq!(d.node_file().unwrap(), None);
        d.write_node_file(&recorded()).unwrap();
        assert_eq!(d.node_file().unwrap(), Some(recorded()));
        std::fs::write(tmp.path().join(NODE_FILE), "{not json").unwrap();
        assert!(matches!(d.node_file(), Err(StorageError::Corrupt { .. })));
    }

    #[test]
    fn a_recorded_identity_wins_and_contradictions_are_refused() {
        let dir = Path::new("/d");
        let r = recorded();
        assert_eq!(identity(dir, None, "", 0).unwrap(), (None, 0));
        assert_eq!(
            identity(dir, Some(&r), "", 0).unwrap(),
            (Some("n1".into()), 3)
        );
        assert_eq!(
            identity(dir, Some(&r), "n1", 3).unwrap(),
            (Some("n1".into()), 3)
        );
        let err = identity(dir, Some(&r), "n2", 0).unwrap_err().to_string();
        assert!(err.contains("belongs to node `n1`"), "{err}");
        let err = identity(dir, Some(&r), "", 2).unwrap_err().to_string();
        assert!(err.contains("holds 3 KVS shards"), "{err}");
    }
}
