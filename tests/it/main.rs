//! The integration tests: one test binary, one module per area (the module is named after
//! the file, `cargo test --test it kvs_cluster::` runs one). One binary links the library
//! once instead of once per file, which was most of the test build's time. Tests of all
//! modules run in one process, so a test must not assume it is alone in it: count only
//! the child processes, ports and files it made itself, and install process-wide things
//! (the tracing subscriber, the embedded Python) through the shared helpers in `common`.

mod common;
mod dashboard_support;
mod functions_support;
mod pyrt_support;
mod transport_support;

mod cache_latency;
mod cache_node;
mod cli_usage;
mod consistency_pins;
mod dashboard_node;
mod durable_cluster;
mod durable_rejoin;
mod functions_dag;
mod functions_limits;
mod functions_placement;
mod functions_state;
mod fuzz_corpus;
mod kvs_cluster;
mod kvs_handoff;
mod membership_cluster;
mod membership_inprocess;
mod node_start;
mod pyrt_library;
mod pyrt_limits;
mod pyrt_pool;
mod transport_bad_input;
mod transport_cluster;
mod transport_inprocess;
