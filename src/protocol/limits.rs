//! Bounds that several actors enforce and so must agree on.

/// Longest key accepted, in bytes: keys travel in every request and sit in every index.
/// The KVS refuses longer ones; the gateway refuses them before they reach it.
pub const MAX_KEY_BYTES: usize = 4096;

/// Most functions one DAG may have: bounds the work and the schedule messages of one call
/// (the scheduler refuses larger DAGs), and so the upstream results one executor waits for.
pub const MAX_DAG_FUNCTIONS: usize = 256;
