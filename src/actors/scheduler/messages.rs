//! The function plane's public messages: registering functions and DAGs, calling them, and
//! the types they carry. The gateway sends these to a scheduler (any scheduler: the
//! registry lives in the KVS); results come back to the caller as
//! [`CallFinished`](crate::actors::gateway::messages::CallFinished).

use crate::ids::{CallId, Key};
use crate::net::{ActorRef, RemoteMessage, ServiceId};
use crate::pyrt::{FunctionKind, PyValue};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// KVS key prefix of registered functions (`__cloudburst/functions/<name>`).
pub const FUNCTION_PREFIX: &str = "__cloudburst/functions/";
/// KVS key prefix of registered DAGs.
pub const DAG_PREFIX: &str = "__cloudburst/dags/";
/// KVS key prefix of call results stored for futures (`__cloudburst/results/<call>`).
pub const RESULT_PREFIX: &str = "__cloudburst/results/";

/// An argument as it travels: a pickled Python value, or a KVS key resolved (through the
/// executor's cache) right before the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arg {
    Value(PyValue),
    Reference(Key),
}

/// Consistency mode of one call (DESIGN §6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Consistency {
    /// Last-writer-wins (the default; the client's `NORMAL`).
    #[default]
    Lww,
    /// Distributed-session repeatable read.
    RepeatableRead,
    /// Distributed-session causal consistency.
    Causal,
}

/// A registered function as stored in the KVS (bincode inside an Lww value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub name: String,
    pub kind: FunctionKind,
    /// cloudpickle bytes from the client.
    pub body: Bytes,
    /// Client's Python `major.minor` and cloudpickle version (checked at registration).
    pub python: String,
    pub cloudpickle: String,
    /// Per-function timeout; `None` means the executor's default.
    pub timeout_ms: Option<u64>,
}

/// A registered DAG: its functions and edges `(from, to)`. A function with several
/// upstreams receives their results as arguments in the order of this edge list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagSpec {
    pub name: String,
    pub functions: Vec<String>,
    pub connections: Vec<(String, String)>,
}

/// Why a registration or call was refused or failed. `code()` is the stable error code the
/// client protocol carries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum FunctionError {
    #[error("no function named `{0}`")]
    UnknownFunction(String),
    #[error("no DAG named `{0}`")]
    UnknownDag(String),
    #[error("invalid DAG: {0}")]
    BadDag(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("client runs Python {client_python} with cloudpickle {client_cloudpickle}, executors run Python {server_python} with cloudpickle {server_cloudpickle}: a function pickled on another version could crash the interpreter")]
    VersionMismatch {
        client_python: String,
        client_cloudpickle: String,
        server_python: String,
        server_cloudpickle: String,
    },
    #[error("no executor is available")]
    NoExecutors,
    #[error("storage error: {0}")]
    Storage(String),
    /// The call could not be handed to an executor (its queue is full or it is
    /// unreachable); retrying later may succeed.
    #[error("executor unavailable: {0}")]
    Unavailable(String),
}

impl FunctionError {
    /// Stable, protocol-level error code.
    pub fn code(&self) -> &'static str {
        match self {
            FunctionError::UnknownFunction(_) => "unknown_function",
            FunctionError::UnknownDag(_) => "unknown_dag",
            FunctionError::BadDag(_) => "bad_dag",
            FunctionError::Invalid(_) => "invalid_request",
            FunctionError::VersionMismatch { .. } => "version_mismatch",
            FunctionError::NoExecutors => "no_executors",
            FunctionError::Storage(_) => "storage_error",
            FunctionError::Unavailable(_) => "unavailable",
        }
    }
}

/// Register (or replace) a function.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<(), FunctionError>")]
pub struct RegisterFunction {
    pub record: FunctionRecord,
}

/// Register (or replace) a DAG; every function must exist, the graph must be acyclic and
/// connected.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<(), FunctionError>")]
pub struct RegisterDag {
    pub spec: DagSpec,
}

/// Delete a DAG (`UnknownDag` if there is none).
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<(), FunctionError>")]
pub struct DeleteDag {
    pub name: String,
}

/// Delete a function (`UnknownFunction` if there is none). Added with the scheduler: the
/// issue asks for list and delete of both functions and DAGs.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<(), FunctionError>")]
pub struct DeleteFunction {
    pub name: String,
}

/// Sent periodically (and on every membership change) by each executor to every scheduler:
/// its load and the Python it runs. Placement skips executors it has no fresh status of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct ExecutorStatus {
    /// The executor actor (its node and instance).
    pub executor: ActorRef,
    /// Busy workers / workers, `0.0..=1.0`.
    pub utilisation: f64,
    /// Calls waiting for a worker.
    pub queued: u32,
    pub workers: u32,
    /// The executor's Python `major.minor` and cloudpickle version.
    pub python: String,
    pub cloudpickle: String,
}

/// Names of registered functions (or DAGs) starting with `prefix`.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<Vec<String>, FunctionError>")]
pub struct List {
    pub what: Listing,
    pub prefix: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Listing {
    Functions,
    Dags,
}

/// Where a call's result goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Push the result here (a gateway), as [`CallFinished`](crate::actors::gateway::messages::CallFinished).
    pub push_to: Option<ActorRef>,
    /// Also store the result (pickled, Lww) under this key; futures read it.
    pub store_at: Option<Key>,
}

/// Call a DAG: `args` maps source functions to their arguments.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<CallAccepted, FunctionError>")]
pub struct CallDag {
    pub call: CallId,
    pub dag: String,
    pub args: BTreeMap<String, Vec<Arg>>,
    pub consistency: Consistency,
    pub reply: Reply,
}

/// Call one function (a one-node DAG).
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<CallAccepted, FunctionError>")]
pub struct CallFunction {
    pub call: CallId,
    pub function: String,
    pub args: Vec<Arg>,
    pub consistency: Consistency,
    pub reply: Reply,
}

/// The call was scheduled; its result will be pushed and/or stored as asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallAccepted {
    pub call: CallId,
}

macro_rules! remote {
    ($($t:ty => $tag:expr),* $(,)?) => {$(
        impl RemoteMessage for $t {
            const SERVICE: ServiceId = ServiceId::Scheduler;
            const TAG: u16 = $tag;
        }
    )*};
}

remote! {
    RegisterFunction => 0,
    RegisterDag => 1,
    DeleteDag => 2,
    List => 3,
    CallDag => 4,
    CallFunction => 5,
    DeleteFunction => 6,
    ExecutorStatus => 11,
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consistency::Lww => "lww",
            Consistency::RepeatableRead => "repeatable_read",
            Consistency::Causal => "causal",
        })
    }
}
