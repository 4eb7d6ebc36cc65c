//! The actors of a node. Each has its own folder: `mod.rs` (actix glue that does the I/O),
//! `core.rs` (its logic, no I/O) and `messages.rs` (its typed messages).
//!
//! - [`kvs`]: KvsShard actors (a slice of the key space each), the routing table built from
//!   the membership view, and the KVS client every other role uses.
//! - [`cache`]: the cache co-located with each executor node; [`cache::StateAccess`].
//! - [`executor`]: runs Python functions on a worker pool; holds DAG schedules, waits for
//!   triggers, passes results straight to downstream executors.
//! - [`scheduler`]: function/DAG registry and placement; its messages are the function
//!   plane's public API.
//! - [`gateway`]: client sessions; receives call results.
//! - [`monitor`]: executor autoscaling: the policy core.

pub mod cache;
pub mod executor;
pub mod gateway;
pub mod kvs;
pub mod monitor;
pub mod scheduler;
