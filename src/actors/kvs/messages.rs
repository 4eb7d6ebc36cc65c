//! The typed messages of the KVS boundary: requests to a shard, its replies, its errors,
//! and the updates it pushes to subscribed caches.

use crate::ids::{Key, NodeId};
use crate::lattice::{LatticeKind, LatticeValue, Tombstone};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One shard on the hash ring: a node (by stable id, so a restarted node keeps its place)
/// and the shard index on that node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShardAddr {
    pub node: NodeId,
    pub shard: u32,
}

impl fmt::Display for ShardAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.node, self.shard)
    }
}

/// What went wrong with a KVS operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum KvsError {
    #[error("key `{key}` holds a {have} lattice; a put of a {got} lattice is refused")]
    KindMismatch {
        key: String,
        have: LatticeKind,
        got: LatticeKind,
    },
    #[error("value for key `{key}` is {size} bytes, above the maximum of {max}")]
    ValueTooLarge {
        key: String,
        size: usize,
        max: usize,
    },
    #[error("no KVS shard is available (the cluster has no live KVS node)")]
    NoReplicas,
    #[error("only {have} live KVS node(s) for replication factor {want}: the write would not survive the loss of {lost} node(s)", lost = want.saturating_sub(1))]
    UnderReplicated { have: usize, want: usize },
    #[error("KVS replica unreachable: {0}")]
    Unavailable(String),
    #[error("malformed KVS request or reply: {0}")]
    Malformed(String),
    /// The shard's durable log refused or failed the write (full disk, failed sync): it
    /// was not acknowledged.
    #[error("KVS storage: {0}")]
    Storage(String),
    /// A write on behalf of user code under the platform's prefix.
    #[error("key `{key}` is under `{prefix}`, which is reserved for the platform", prefix = crate::ids::RESERVED_PREFIX)]
    Reserved { key: String },
}

impl KvsError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            KvsError::NoReplicas | KvsError::UnderReplicated { .. } | KvsError::Unavailable(_)
        )
    }
}

/// A request to one shard.
#[derive(Debug, Clone, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<KvsReply, KvsError>")]
pub enum KvsRequest {
    /// Read keys; the reply holds one entry per key, `None` when missing.
    Get { keys: Vec<Key> },
    /// Merge values from a client; the reply holds one result per entry.
    Put { entries: Vec<(Key, LatticeValue)> },
    /// As `Put`, on behalf of user code (a function, a client of the gateway): entries
    /// under the reserved prefix are refused, whichever node forwards them.
    PutUser { entries: Vec<(Key, LatticeValue)> },
    /// Merge values from another replica (gossip or hand-off); not gossiped again.
    Gossip { entries: Vec<(Key, LatticeValue)> },
    /// Push new values of `keys` to `subscriber` whenever they change.
    Subscribe {
        subscriber: crate::net::ActorRef,
        keys: Vec<Key>,
    },
    /// Stop pushing `keys` to `subscriber`.
    Unsubscribe {
        subscriber: crate::net::ActorRef,
        keys: Vec<Key>,
    },
    /// Keys starting with `prefix` that this shard stores.
    List { prefix: String },
    /// Counters, sizes and hot keys.
    Stats,
    /// From another replica about to drop these tombstones: does this shard hold each of
    /// them (or a later value), or nothing for the key? One holding an older value merges
    /// the tombstone and answers no.
    CheckTombstones { entries: Vec<(Key, Tombstone)> },
}

/// A shard's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum KvsReply {
    Values(Vec<Option<LatticeValue>>),
    Put(Vec<Result<bool, KvsError>>),
    Ack,
    Keys(Vec<Key>),
    Stats(ShardStats),
    /// One answer per entry of [`KvsRequest::CheckTombstones`].
    Covered(Vec<bool>),
}

/// Per-shard counters (cumulative; rates are derived by whoever samples them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardStats {
    pub keys: u64,
    pub bytes: u64,
    pub gets: u64,
    pub puts: u64,
    pub gossip_in: u64,
    pub gossip_out: u64,
    pub rejected: u64,
    /// Keys holding a tombstone (counted in `keys` too), not yet collected.
    pub tombstones: u64,
    pub subscriptions: u64,
    /// The most accessed keys with their read+write counts (for hot-key replication).
    pub hot_keys: Vec<(String, u64)>,
}

/// An operator declares that a crashed KVS node will not come back with its data (sent to
/// every node's routing watcher, `cloudburst declare-lost`): keys none of whose replicas
/// is left then read as missing instead of `unavailable`. The reply says whether this node
/// held it as crashed; it is refused while the node is in the routing (alive).
#[derive(Debug, Clone, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<bool, String>")]
pub struct DeclareLost {
    pub node: NodeId,
}

/// A KVS shard finished handing its keys off after the routing changed to `to`: every
/// owner it gained acknowledged them. Sent by the shard to its node's routing watcher,
/// which tells every other member's (one-way): readers there stop asking the previous
/// owners once every shard of the new routing confirmed.
#[derive(Debug, Clone, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct HandoffConfirmed {
    pub to: super::routing::RoutingId,
    pub shard: ShardAddr,
}

/// Pushed by a shard to a subscriber (an executor node's cache) when subscribed keys change:
/// their new merged values. One-way.
#[derive(Debug, Clone, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct KeyUpdates {
    pub entries: Vec<(Key, LatticeValue)>,
}
