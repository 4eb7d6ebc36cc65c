//! [`ErrorCode`]: every error code the server sends, from the Rust error that decides it to
//! the `code` field a client reads. `docs/protocol.md` lists the same table (a test
//! compares them).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares [`ErrorCode`] from one table: variant, wire string, whether a retry can help,
/// and the one-line meaning the protocol document repeats.
macro_rules! error_codes {
    ($($variant:ident = $wire:literal, retry: $retry:literal, $meaning:literal;)*) => {
        /// A stable, protocol-level error code (the wire carries its snake_case name).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $(
                #[doc = $meaning]
                #[serde(rename = $wire)]
                $variant,
            )*
        }

        impl ErrorCode {
            /// Every code, in the order of the protocol document's table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as the wire carries it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }

            /// What the code means, in one line.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }

            /// Whether sending the same request again later may succeed: the failure came
            /// from the cluster's state at that moment, not from the request.
            pub fn is_retryable(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $retry,)*
                }
            }
        }
    };
}

error_codes! {
    MalformedFrame = "malformed_frame", retry: false,
        "not MessagePack, not a map, missing `v`/`id`/`op`, or a text message";
    UnsupportedVersion = "unsupported_version", retry: false,
        "`v` is not a protocol version this server speaks";
    UnknownOp = "unknown_op", retry: false,
        "`op` is not in the table of ops";
    InvalidRequest = "invalid_request", retry: false,
        "a field is missing or wrong; an empty, too long or reserved key; a bad name, timeout or argument map";
    UnsupportedValue = "unsupported_value", retry: false,
        "a read of a key holding a lattice that is not a Python value";
    KindMismatch = "kind_mismatch", retry: false,
        "the key holds another lattice kind (e.g. a set, and a plain value was put)";
    ValueTooLarge = "value_too_large", retry: false,
        "the value is over `kvs.max_value_bytes`";
    StorageError = "storage_error", retry: true,
        "the KVS failed (inside a function or the scheduler also when replicas are unreachable) or a stored record is corrupt";
    Unavailable = "unavailable", retry: true,
        "no scheduler, executor or KVS replica is reachable right now";
    Timeout = "timeout", retry: true,
        "`await` ran out of time, a function ran past its timeout, or its upstream results never came";
    UnknownFunction = "unknown_function", retry: false,
        "no function of that name is registered";
    UnknownDag = "unknown_dag", retry: false,
        "no DAG of that name is registered";
    BadDag = "bad_dag", retry: false,
        "the DAG is invalid: a cycle, a duplicate, an unknown edge end, not connected, or not one sink";
    VersionMismatch = "version_mismatch", retry: false,
        "the client's Python or cloudpickle version differs from the executors'";
    NoExecutors = "no_executors", retry: true,
        "no executor has reported to the scheduler (yet)";
    FunctionError = "function_error", retry: false,
        "the function raised: `exception_type` and `traceback` are set";
    WorkerCrashed = "worker_crashed", retry: false,
        "the Python worker running the call died";
    MemoryLimit = "memory_limit", retry: false,
        "the call needed more memory than a worker may use (`executor.worker_memory_bytes`)";
    PickleError = "pickle_error", retry: false,
        "the function, an argument or the result could not be (un)pickled";
    TooLarge = "too_large", retry: false,
        "an argument or the result is over the size limit of one message to a Python worker";
    Overloaded = "overloaded", retry: true,
        "the executor's worker queue or its waiting schedules are full, or the scheduler holds as many unfinished calls as it may";
    ShutDown = "shut_down", retry: true,
        "the executor's Python pool is shutting down";
    StaleFunction = "stale_function", retry: true,
        "the function was registered again after the call was scheduled";
    SessionExpired = "session_expired", retry: true,
        "a repeatable-read call read a key after its pinned versions were dropped (`consistency.session_ttl_ms`)";
    ExecutorLost = "executor_lost", retry: true,
        "an executor running the call died and the call's re-runs (`retries`) are used up, or no executor was left to re-run it on";
    SchedulerLost = "scheduler_lost", retry: true,
        "the scheduler that placed the call died before the call finished (its functions may have run)";
    Cancelled = "cancelled", retry: false,
        "the call was cancelled (`cancel`): its running functions were stopped and the rest never started";
    UnknownCall = "unknown_call", retry: false,
        "`await` or `cancel` of a call this gateway does not know (never made here, or its result expired)";
    InternalError = "internal_error", retry: false,
        "the server broke one of its own rules (a bug worth reporting)";
    MissingToken = "missing_token", retry: false,
        "dashboard: the endpoint needs the gateway token";
    InvalidToken = "invalid_token", retry: false,
        "dashboard: the token presented is not the gateway token";
    ForbiddenOrigin = "forbidden_origin", retry: false,
        "websocket and dashboard: a web page of another origin, or a `Host` that does not name a loopback listener";
    NotReady = "not_ready", retry: true,
        "dashboard: no sample of the cluster yet";
    TooManyStreams = "too_many_streams", retry: true,
        "dashboard: too many live event streams at once";
}

/// Compares with the wire name, e.g. `code == "timeout"`.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
