//! The KVS tier: sharded, replicated lattice storage (Anna-style).
//!
//! - `core.rs`: one shard's logic, no I/O (store, puts, stats), with its parts in
//!   `core_replicas.rs` (gossip, hand-off), `core_pushes.rs` (subscriptions),
//!   `core_recovery.rs` (loading from the log) and `core_deletes.rs` (expiry, collection).
//! - `deletes.rs`: tombstones and expiry in a shard, and the rule for dropping tombstones.
//! - `shard.rs`: the KvsShard actor around it (timers, gossip, pushes, hand-off).
//! - `sweep.rs`: the shard's expiry and tombstone collection rounds.
//! - `durable.rs`: a shard's log and snapshots (recovery before it starts, what it logs).
//! - `load.rs`: what a shard measures of its load (occupancy, service time, hot keys).
//! - `report.rs`: a KVS node's load, gathered from its shards and sent to the monitors.
//! - `messages.rs`: requests, replies, errors and pushed updates.
//! - `routing.rs`: replica sets from the membership view (ring over nodes, shard by hash).
//! - `overrides.rs`: a node's copy of the monitor's per-key replication of hot keys.
//! - `client.rs`: the KVS client other roles use (put to every replica, get from one).
//! - `node.rs`: starting the shards and the routing watcher on a node.

pub mod client;
pub mod core;
#[cfg(test)]
mod core_deletes_tests;
pub mod deletes;
pub mod durable;
pub mod load;
pub mod messages;
pub mod node;
pub mod overrides;
pub mod report;
pub mod routing;
pub mod shard;
#[cfg(test)]
mod sim;
mod sweep;

pub use self::client::KvsClient;
pub use self::core::{Origin, ShardCore};
pub use self::messages::{
    DeclareLost, HandoffConfirmed, KeyUpdates, KvsError, KvsReply, KvsRequest, ShardAddr,
    ShardStats,
};
pub use self::node::KvsTier;
pub use self::routing::{Routing, RoutingTable};
