//! The scheduler: function and DAG registry (persisted in the KVS) and call placement.

pub mod messages;
