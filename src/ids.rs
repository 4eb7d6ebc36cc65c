//! Newtype identifiers shared by every module.
//!
//! A node is named by a [`NodeId`] (stable across restarts: by default its advertised peer
//! address) plus a [`Generation`] (new at every start), so a restarted node is never
//! confused with its old self: messages addressed to an old generation are refused.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Stable name of a node (by default its advertised peer address, e.g. `127.0.0.1:6100`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub Arc<str>);

impl NodeId {
    pub fn new(name: impl AsRef<str>) -> Self {
        NodeId(Arc::from(name.as_ref()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Incarnation of a node: chosen at start (wall-clock microseconds), strictly larger for a
/// restarted node than for its previous incarnation.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct Generation(pub u64);

impl Generation {
    /// A generation for a node starting now.
    pub fn now() -> Self {
        Generation(crate::clock::now_micros().max(1))
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

/// One incarnation of one node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeRef {
    pub id: NodeId,
    pub generation: Generation,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.generation)
    }
}

/// Keys under this prefix belong to the platform (function and DAG records, call
/// results): clients and functions may read them but not write them.
pub const RESERVED_PREFIX: &str = "__cloudburst/";

/// A key of the KVS.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key(pub Arc<str>);

impl Key {
    pub fn new(name: impl AsRef<str>) -> Self {
        Key(Arc::from(name.as_ref()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether the key is under [`RESERVED_PREFIX`].
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with(RESERVED_PREFIX)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key::new(s)
    }
}

/// Identifier of one DAG or function call, carried in every message of the call.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{:016x}", self.0)
    }
}

/// Writer identity used to break ties between equal timestamps (a node, a client, ...).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct WriterId(pub u64);

impl fmt::Display for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{:x}", self.0)
    }
}

/// A stable 64-bit hash of some byte strings (SHA-256, first 8 bytes), for ids derived from
/// content: the same parts give the same hash on every node and in every build.
pub fn hash64(parts: &[&[u8]]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarted_generation_is_larger() {
        let a = Generation::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Generation::now();
        assert!(b > a);
    }

    #[test]
    fn node_ref_display_names_generation() {
        let r = NodeRef {
            id: NodeId::new("127.0.0.1:6100"),
            generation: Generation(7),
        };
        assert_eq!(r.to_string(), "127.0.0.1:6100@g7");
    }

    #[test]
    fn hash64_separates_its_parts() {
        assert_ne!(hash64(&[b"ab", b"c"]), hash64(&[b"a", b"bc"]));
        assert_eq!(hash64(&[b"ab"]), hash64(&[b"ab"]));
    }
}
