//! Cloudburst in Rust: a stateful Functions-as-a-Service platform.
//!
//! Users register Python functions and DAGs; functions share state in an Anna-style KVS of
//! lattices through caches co-located with the executors, under a choice of consistency
//! modes. See `README.md` for how to run it.
//!
//! A call flows as a chain of actor messages: the client's gateway asks a scheduler, which
//! places each function of the DAG on an executor and sends it its part of the schedule;
//! executors pass results straight to the downstream executors, and the sink's executor
//! sends the result to the caller's gateway (or stores it for a future). What they exchange
//! and store is defined once, in [`protocol`]; the transport ([`net`]) carries it.
//!
//! # Layout
//! - [`app`]: what each subcommand does once parsed (dispatch; every exit code is decided
//!   here).
//! - [`calllog`]: process-wide per-call logs (what each function run printed), by call id.
//! - [`cli`]: the command line (clap): `local`, `node`, `bench`.
//! - [`clock`]: wall-clock microseconds and the one Lww write clock of each node.
//! - [`config`]: the effective configuration, its defaults, TOML file and validation.
//! - [`ids`]: newtype identifiers (`NodeId`, `Generation`, `Key`, `CallId`, `WriterId`).
//! - [`lattice`]: the lattice types, the stored `LatticeValue` enum and the law checker.
//! - [`metrics`]: process-wide call counters and latency histograms (for `/metrics` and the
//!   dashboard).
//! - [`net`]: the peer transport (frames, envelopes, handshake, remote handles), membership
//!   and the consistent hash ring.
//! - [`actors`]: KvsShard, Cache, Executor, Scheduler, Gateway, Monitor (actix glue around
//!   pure cores).
//! - [`protocol`]: the contract between the function plane's actors: calls, schedules,
//!   triggers, results, error codes, registry records and keys, shared limits, value
//!   conversions, and the one table of every wire tag.
//! - [`local`]: an in-process cluster and a Rust client of the function plane (tests,
//!   benchmarks).
//! - [`node`]: a node above the transport: starting its roles (and stopping what started
//!   when one fails), the one serve loop of `cloudburst node` and `cloudburst local`, the
//!   readiness lines.
//! - [`mod@bench`]: the `cloudburst bench` workloads.
//! - [`storage`]: durable state: the data directory, and per KVS shard a checksummed log
//!   with snapshots and recovery, written through a seam tests can break.
//! - [`fuzz`]: the fuzz targets' bodies (each decoder of outside input) and the recording of
//!   real traffic that seeds their corpora.
//! - [`pyrt`]: the Python runtime: a pool of worker processes embedding CPython (the hidden
//!   `cloudburst worker` mode), timeouts by killing, the user library's way into Rust.

pub mod actors;
pub mod app;
pub mod bench;
pub mod calllog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod fuzz;
pub mod ids;
pub mod lattice;
pub mod local;
pub mod metrics;
pub mod net;
pub mod node;
pub mod protocol;
pub mod pyrt;
pub mod storage;
