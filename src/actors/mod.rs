//! The actors of a node. Each has its own folder: `mod.rs` (actix glue that does the I/O),
//! `core.rs` (its logic, no I/O) and `messages.rs` (its typed messages).
//!
//! - [`kvs`]: KvsShard actors (a slice of the key space each), the routing table built from
//!   the membership view, and the KVS client every other role uses.

pub mod kvs;
