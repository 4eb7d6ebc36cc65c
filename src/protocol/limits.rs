//! Bounds that several actors enforce and so must agree on.

/// Longest key accepted, in bytes: keys travel in every request and sit in every index.
/// The KVS refuses longer ones; the gateway refuses them before they reach it.
pub const MAX_KEY_BYTES: usize = 4096;

/// Longest function or DAG name. Names travel in every schedule and trigger.
pub const MAX_NAME_LEN: usize = 200;

/// Longest per-function timeout accepted: well below how long an executor keeps a
/// downstream schedule waiting for its upstream results, so a slow but legal function
/// never outlives its successor's schedule. Records read back are held to it too.
pub const MAX_FUNCTION_TIMEOUT_MS: u64 = 300_000;

/// Most re-runs a function or call may ask for: each runs every function of the call again.
pub const MAX_RETRIES: u32 = 10;

/// Longest call timeout a caller may ask for (an hour: far beyond any sane chain of
/// function timeouts, short enough that a forgotten call does not pin memory for good).
pub const MAX_CALL_TIMEOUT_MS: u64 = 3_600_000;

/// Most functions one DAG may have: bounds the work and the schedule messages of one call
/// (the scheduler refuses larger DAGs), and so the upstream results one executor waits for.
pub const MAX_DAG_FUNCTIONS: usize = 256;
