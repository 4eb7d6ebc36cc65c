//! The Python runtime executors use: a pool of Python worker processes.
//!
//! Each executor owns a [`PythonPool`]: one worker process per core by default, each the
//! `cloudburst` binary itself in the hidden `worker` mode, embedding CPython through pyo3
//! and talking to its supervisor over a Unix socket with length-delimited bincode frames.
//! Processes (not threads) because the GIL would serialise CPU-bound functions, and because
//! a function stuck past its timeout can only be stopped by killing its process.
//!
//! A call runs on an idle worker; if none is idle it waits in a bounded queue
//! ([`PoolConfig::max_queued`]), beyond which it fails with [`CallError::Overloaded`].
//! A worker that crashes or times out is killed, reaped and replaced in the background; only
//! its in-flight call fails. While a function waits on the user library (`cb.get`, ...)
//! its worker has released the GIL.
//!
//! # Layout
//! - [`pool`]: [`PythonPool`]: start, call (timeouts), shutdown.
//! - `lease`: the bounded queue for an idle worker, leases, background replacement.
//! - `process`: the supervisor side of one worker process (spawn, handshake, drive a call,
//!   log forwarding).
//! - [`sockdir`]: the pool's socket directory; removing those of dead pools of the node.
//! - `wire`: the frames between supervisor and worker.
//! - [`interp`]: interpreter initialisation (the venv's Python) and the Python glue.
//! - [`sandbox`]: fork cut-off, the worker as subreaper and the killing of its tree, the
//!   memory limit.
//! - [`confine`]: the user functions run as, the paths hidden from them.
//! - [`probe`]: checking a Python environment chosen for the executors.
//! - [`worker`]: the `cloudburst worker` process mode.
//! - [`mod@bench`]: `cloudburst bench python`.

pub mod bench;
pub mod confine;
pub mod interp;
mod lease;
pub mod pool;
pub mod probe;
mod process;
pub mod sandbox;
pub mod sockdir;
pub(crate) mod wire;
pub mod worker;

pub use pool::{PoolConfig, PythonPool};

use crate::ids::Key;
use crate::protocol::ErrorCode;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// A value crossing into or out of Python, encoded as the client protocol carries values:
/// one MessagePack object whose plain parts (None, bool, int, float, str, bytes, list, dict)
/// are themselves and whose other Python objects are pickles in extension type 1 (or, for a
/// value stored by protocol 1, a bare pickle, which still reads). `put` of a Python `set`
/// (or `frozenset`) is stored as a set ([`PyValue::PackedSet`], one encoded value per
/// element, so it can become a SetUnion lattice); anything else as one encoded value.
/// Function results are always [`PyValue::Packed`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PyValue {
    /// One encoded value.
    Packed(Bytes),
    /// The elements of a set, each encoded.
    PackedSet(Vec<Bytes>),
    /// Concurrent versions of one causal key (a read only; Python sees a
    /// `cloudburst.Concurrent` tuple), each encoded.
    Concurrent(Vec<Bytes>),
}

/// Whether a registered body is a plain callable or a class-based function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FunctionKind {
    /// `cloudpickle.dumps(f)`; called as `f(cb, *args)`.
    Plain,
    /// `cloudpickle.dumps((Class, init_args))`; `Class(cb, *init_args)` runs once per worker
    /// process, then `instance.run(cb, *args)` per call.
    Class,
}

/// A registered function as the pool needs it. Workers cache the unpickled callable (or the
/// class instance) by `(name, hash)`, so the body is sent to each worker once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Registered name.
    pub name: String,
    /// Content hash of `body` (any stable hash: it only has to change when the body does).
    pub hash: u64,
    /// The cloudpickle bytes from the client.
    pub body: Bytes,
    /// Plain or class-based.
    pub kind: FunctionKind,
}

/// One call of one function.
#[derive(Clone, Debug)]
pub struct PyCall {
    /// What to run.
    pub function: Arc<FunctionSpec>,
    /// Positional arguments after `cb`; `None` is Python `None` (e.g. a missing referenced key).
    pub args: Vec<Option<PyValue>>,
    /// How many of `args` (the last ones) are results of upstream functions of a DAG. A
    /// tuple among them is spread into separate arguments, as the original Cloudburst did
    /// (`return a, b` upstream reaches `f(cb, a, b)`).
    pub upstream: usize,
    /// Wall-clock limit for the call once it runs on a worker (queueing not included).
    pub timeout: Duration,
    /// The call it belongs to and which run of it this is (`cb.call_id`, `cb.attempt`).
    pub call: u64,
    pub attempt: u32,
    /// Only load the function into the worker (a class function's `__init__` runs) and
    /// answer `None`: how a new executor warms its workers before it reports ready.
    pub warm: bool,
}

impl PyCall {
    /// A call of `function` with `args`, none of them upstream results (call id 0, first
    /// attempt).
    pub fn new(function: Arc<FunctionSpec>, args: Vec<Option<PyValue>>, timeout: Duration) -> Self {
        PyCall {
            function,
            args,
            upstream: 0,
            timeout,
            call: 0,
            attempt: 0,
            warm: false,
        }
    }
}

/// What a running function may do; implemented by the executor over its cache (one object
/// per call, so it can carry session state). Errors surface in Python as the client
/// package's exception class for their code (`cloudburst.errors`), raised inside the
/// function.
pub trait UserLibrary: Send + Sync + 'static {
    /// `cb.get(key)` / `cb.get([k1, k2])`: values in key order, `None` where missing.
    fn get(&self, keys: Vec<Key>) -> BoxFuture<'static, Result<Vec<Option<PyValue>>, LibError>>;
    /// `cb.put(key, value)`.
    fn put(&self, key: Key, value: PyValue) -> BoxFuture<'static, Result<(), LibError>>;
    /// `cb.delete(key)`: later reads answer `None` until the key is written again.
    fn delete(&self, key: Key) -> BoxFuture<'static, Result<(), LibError>>;
    /// `cb.send(dest_id, bytes)`: a direct message to another executor.
    fn send(&self, dest: String, payload: Bytes) -> BoxFuture<'static, Result<(), LibError>>;
    /// `cb.recv()`: messages waiting for this executor (non-blocking).
    fn recv(&self) -> Vec<(String, Bytes)>;
    /// `cb.getid()`: this executor's address.
    fn id(&self) -> String;
}

/// Why a user-library request failed: the stable error code the client protocol uses for it
/// (`session_expired`, `invalid_request`, ...), which picks the exception class raised in the
/// function, and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{code}: {message}")]
pub struct LibError {
    /// The error code.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

impl LibError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        LibError {
            code,
            message: message.into(),
        }
    }
}

/// The Python a pool's workers run, read from a worker at start. An executor refuses
/// registrations from a client whose `python` (major.minor) or `cloudpickle` differ: a
/// function pickled on another minor version can crash the interpreter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PyEnvironment {
    /// `major.minor`, e.g. `3.11`.
    pub python: String,
    /// `sys.version` in full.
    pub version: String,
    /// `sys.prefix` (the venv directory when the venv is in use).
    pub prefix: String,
    /// `sys.executable` (the program name the interpreter was initialised with).
    pub executable: String,
    /// `cloudpickle.__version__`.
    pub cloudpickle: String,
}

/// Why one call failed. Serializable so it can travel to the caller unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CallError {
    /// The function (or a class's `__init__`) raised.
    #[error("{type_name}: {message}")]
    Exception {
        /// The exception's class, e.g. `ValueError`.
        type_name: String,
        /// `str(exception)`.
        message: String,
        /// The formatted traceback (user frames only).
        traceback: String,
    },
    /// The function ran past its timeout; its worker was killed and is being replaced.
    #[error("function timed out after {after:?}")]
    Timeout {
        /// The call's timeout.
        after: Duration,
    },
    /// The worker died or broke the protocol during the call; it is being replaced.
    #[error("Python worker crashed during the call: {0}")]
    WorkerCrashed(String),
    /// The call needed more memory than the worker's limit (`executor.worker_memory_bytes`);
    /// the worker is being replaced.
    #[error("the call ran out of the worker's memory limit (executor.worker_memory_bytes)")]
    MemoryLimit,
    /// The function body, an argument or the result could not be (un)pickled.
    #[error("pickle error: {0}")]
    Pickle(String),
    /// A frame to or from the worker would exceed the configured maximum.
    #[error("message of {bytes} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the refused frame.
        bytes: usize,
        /// [`PoolConfig::max_frame_bytes`].
        max: usize,
    },
    /// Every worker is busy and the queue is full.
    #[error("the Python pool is overloaded: every worker is busy and the queue is full")]
    Overloaded,
    /// No worker became available within the queue wait limit (e.g. workers keep failing
    /// to start).
    #[error("no Python worker became available within {waited:?}")]
    Unavailable {
        /// How long the call waited.
        waited: Duration,
    },
    /// The pool is shut down.
    #[error("the Python pool is shut down")]
    ShutDown,
}

impl CallError {
    /// The error code the caller sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            CallError::Exception { .. } => ErrorCode::FunctionError,
            CallError::Timeout { .. } => ErrorCode::Timeout,
            CallError::WorkerCrashed(_) => ErrorCode::WorkerCrashed,
            CallError::MemoryLimit => ErrorCode::MemoryLimit,
            CallError::Pickle(_) => ErrorCode::PickleError,
            CallError::TooLarge { .. } => ErrorCode::TooLarge,
            CallError::Overloaded => ErrorCode::Overloaded,
            CallError::Unavailable { .. } => ErrorCode::Unavailable,
            CallError::ShutDown => ErrorCode::ShutDown,
        }
    }

    /// Whether the call never ran and may be placed on another executor as it is
    /// (`Overloaded`, `Unavailable`, `ShutDown`). The others ran, or may have run, user code.
    pub fn never_ran(&self) -> bool {
        matches!(
            self,
            CallError::Overloaded | CallError::Unavailable { .. } | CallError::ShutDown
        )
    }
}

/// Why a pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum PyRuntimeError {
    /// Bad pool configuration.
    #[error("invalid Python pool configuration: {0}")]
    Config(String),
    /// The worker executable could not be started.
    #[error("cannot start Python worker `{exe}`: {source}")]
    Spawn {
        /// The worker executable.
        exe: String,
        /// Why it could not be run.
        #[source]
        source: std::io::Error,
    },
    /// Creating or accepting the worker's socket failed.
    #[error("Python worker socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The worker started but did not complete the handshake.
    #[error("Python worker {worker} failed to start: {reason}")]
    Handshake {
        /// Index of the worker in the pool.
        worker: usize,
        /// What went wrong (its own log lines are in the log, tagged `worker=`).
        reason: String,
    },
    /// Workers of one pool report different Python environments.
    #[error("Python workers disagree on their environment: {0}")]
    Mismatch(String),
    /// The Python chosen for the executors (`executor.python`) cannot host the workers.
    #[error("executor.python {python} cannot run functions: {why}")]
    Environment {
        /// The program named.
        python: String,
        /// What is wrong with it, and how to fix it.
        why: String,
    },
}
