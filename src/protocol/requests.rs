//! What a scheduler is asked: registrations, listings and calls (from gateways and the
//! in-process harness; any scheduler will do, the registry lives in the KVS), and the
//! reports executors and caches send it for placement. Results do not come back this way:
//! they reach the caller as [`CallFinished`](super::CallFinished).

use super::call::{Arg, Consistency, Reply};
use super::error::ErrorCode;
use super::limits::MAX_CALL_TIMEOUT_MS;
use super::records::{check_retries, DagSpec, FunctionRecord};
use crate::ids::{CallId, Key, NodeRef};
use crate::net::ActorRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a scheduler refused a registration or call. [`FunctionError::code`] is what the
/// client sees.
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
    /// The scheduler keeps as many unfinished calls (or bytes of their arguments) as it
    /// may; retrying once some finished may succeed.
    #[error("the scheduler holds too many unfinished calls: {0}")]
    TooManyCalls(String),
}

impl FunctionError {
    /// The error code the client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            FunctionError::UnknownFunction(_) => ErrorCode::UnknownFunction,
            FunctionError::UnknownDag(_) => ErrorCode::UnknownDag,
            FunctionError::BadDag(_) => ErrorCode::BadDag,
            FunctionError::Invalid(_) => ErrorCode::InvalidRequest,
            FunctionError::VersionMismatch { .. } => ErrorCode::VersionMismatch,
            FunctionError::NoExecutors => ErrorCode::NoExecutors,
            FunctionError::Storage(_) => ErrorCode::StorageError,
            FunctionError::Unavailable(_) => ErrorCode::Unavailable,
            FunctionError::TooManyCalls(_) => ErrorCode::Overloaded,
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

/// Delete a function (`UnknownFunction` if there is none).
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<(), FunctionError>")]
pub struct DeleteFunction {
    pub name: String,
}

/// Names of registered functions (or DAGs) starting with `prefix`.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<Vec<String>, FunctionError>")]
pub struct List {
    pub what: Listing,
    pub prefix: String,
}

/// What a [`List`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Listing {
    Functions,
    Dags,
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
    pub options: CallOptions,
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
    pub options: CallOptions,
}

/// What a caller may ask of one call besides its arguments; `None` leaves it to the
/// registrations and the scheduler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallOptions {
    /// The call ends within this long of its acceptance, with `timeout` if nothing else.
    /// `None`: the scheduler's budget (the functions' timeouts for every attempt, plus
    /// failure detection and slack).
    pub timeout_ms: Option<u64>,
    /// Re-runs allowed after system failures (an executor or worker died). `None`: the
    /// smallest number its functions registered (a re-run runs every function again).
    pub retries: Option<u32>,
    /// Whether a function's exception or timeout re-runs the call too (while re-runs are
    /// left). `None`: as the failing function registered.
    pub retry_errors: Option<bool>,
}

impl CallOptions {
    /// Options a caller may ask for: retries as [`check_retries`] allows, a timeout above 0 and
    /// up to [`MAX_CALL_TIMEOUT_MS`].
    pub fn check(&self) -> Result<(), FunctionError> {
        check_retries(self.retries)?;
        match self.timeout_ms {
            Some(0) => Err(FunctionError::Invalid(
                "a call timeout must be above 0 ms".into(),
            )),
            Some(ms) if ms > MAX_CALL_TIMEOUT_MS => Err(FunctionError::Invalid(format!(
                "a call timeout of {ms} ms is above the maximum of {MAX_CALL_TIMEOUT_MS} ms"
            ))),
            _ => Ok(()),
        }
    }
}

/// The call was scheduled; its result will be pushed and/or stored as asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallAccepted {
    pub call: CallId,
    /// The call ends within this long of now (its result, a failure, or `timeout`): the
    /// scheduler stops keeping it then, and the caller need not wait longer.
    pub deadline_ms: u64,
}

/// Cancel a call this scheduler placed: its executors stop its functions. `true` if it
/// was running here; `false` if this scheduler does not hold it (it ended already, or it
/// was never placed here).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "bool")]
pub struct CancelCall {
    pub call: CallId,
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
    /// Its load over the last report window (what the monitor scales on).
    pub load: super::ExecutorLoad,
}

/// Sent periodically by each executor node's cache to the schedulers: which keys it holds
/// (the scheduler places calls where their referenced keys are cached).
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct CacheKeysReport {
    pub node: NodeRef,
    pub keys: Vec<Key>,
}
