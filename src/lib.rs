//! Cloudburst in Rust: a stateful Functions-as-a-Service platform.
//!
//! Users register Python functions and DAGs; functions share state in an Anna-style KVS of
//! lattices through caches co-located with the executors, under a choice of consistency
//! modes. See `README.md` for how to run it and `../shared/DESIGN.md` for the architecture.
//!
//! # Layout
//! - [`app`]: what each subcommand does once parsed (dispatch; every exit code is decided
//!   here).
//! - [`cli`]: the command line (clap): `local`, `node`, `bench`.
//! - [`config`]: the effective configuration, its defaults, TOML file and validation.
//! - [`ids`]: newtype identifiers (`NodeId`, `Generation`, `Key`, `CallId`, `WriterId`).
//! - [`lattice`]: the lattice types, the stored `LatticeValue` enum and the law checker.
//! - [`metrics`]: process-wide call counters and latency histograms (for `/metrics` and the
//!   dashboard).
//! - [`net`]: the peer transport (frames, envelopes, handshake, remote handles), membership
//!   and the consistent hash ring.
//! - [`actors`]: KvsShard, Cache, Executor, Scheduler, Gateway, Monitor (actix glue around
//!   pure cores).
//! - [`local`]: an in-process cluster and a Rust client of the function plane (tests,
//!   benchmarks).
//! - [`node`]: a node above the transport: starting its roles (and stopping what started
//!   when one fails), the one serve loop of `cloudburst node` and `cloudburst local`, the
//!   readiness lines.
//! - [`mod@bench`]: the `cloudburst bench` workloads.
//! - [`storage`]: durable state: the data directory, and per KVS shard a checksummed log
//!   with snapshots and recovery, written through a seam tests can break.
//! - [`pyrt`]: the Python runtime: a pool of worker processes embedding CPython (the hidden
//!   `cloudburst worker` mode), timeouts by killing, the user library's way into Rust.

pub mod actors;
pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod ids;
pub mod lattice;
pub mod local;
pub mod metrics;
pub mod net;
pub mod node;
pub mod pyrt;
pub mod storage;
