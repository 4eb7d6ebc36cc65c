//! The KVS tier: sharded, replicated lattice storage (Anna-style).
//!
//! - `core.rs`: one shard's logic, no I/O (store, gossip bookkeeping, subscriptions, stats).
//! - `shard.rs`: the KvsShard actor around it (timers, gossip, pushes, hand-off).
//! - `durable.rs`: a shard's log and snapshots (recovery before it starts, what it logs).
//! - `messages.rs`: requests, replies, errors and pushed updates.
//! - `routing.rs`: replica sets from the membership view (ring over nodes, shard by hash).
//! - `client.rs`: the KVS client other roles use (put to every replica, get from one).
//! - `node.rs`: starting the shards and the routing watcher on a node.

pub mod client;
pub mod core;
pub mod durable;
pub mod messages;
pub mod node;
pub mod routing;
pub mod shard;
#[cfg(test)]
mod sim;

pub use self::client::KvsClient;
pub use self::core::{Origin, ShardCore};
pub use self::messages::{KeyUpdates, KvsError, KvsReply, KvsRequest, ShardAddr, ShardStats};
pub use self::node::KvsTier;
pub use self::routing::{Routing, RoutingTable};
