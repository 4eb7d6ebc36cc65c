//! The `cloudburst bench` workloads. Each reports medians and p99s with the workload stated;
//! with `--json` the last line printed is one JSON object.

pub mod child;
pub mod client;
pub mod compose;
pub mod consistency;
pub mod durability;
pub mod kvs;
pub mod lattice;
pub mod stats;
pub mod transport;
