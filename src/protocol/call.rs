//! One call's way through the cluster: what a scheduler sends each executor
//! ([`Schedule`], [`Cancel`]), what executors send each other ([`Trigger`], [`Deliver`]),
//! how the outcome reaches the caller ([`Reply`], [`CallFinished`], [`CallFailure`]) and
//! how the scheduler that placed the call learns it ended ([`AttemptEnded`],
//! [`AttemptsDelivered`]).
//!
//! A call may run more than once: when an executor running one of its functions dies (or
//! a function fails in a way a re-run can mend), the scheduler that placed it runs the
//! whole DAG again as the next *attempt* (0 for the first run). Schedules and triggers
//! carry their attempt, so executors drop those of an attempt older than one they have
//! seen, and the caller's gateway takes the first result of a call and drops the others.

use super::error::ErrorCode;
use crate::ids::{hash64, CallId, Key, NodeRef};
use crate::lattice::{Dependencies, Lattice};
use crate::net::ActorRef;
use crate::pyrt::PyValue;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// An argument as it travels: an encoded Python value (see `PyValue`), or a KVS key
/// resolved (through the executor's cache) right before the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arg {
    Value(PyValue),
    Reference(Key),
}

/// Consistency mode of one call. Under LWW reads see whatever the node's cache holds;
/// repeatable read makes every read of one key in one call return the same version, on any
/// node; causal makes reads respect what earlier functions of the call read and wrote.
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

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consistency::Lww => "lww",
            Consistency::RepeatableRead => "repeatable_read",
            Consistency::Causal => "causal",
        })
    }
}

/// Where a call's result goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Push the result here (a gateway), as [`CallFinished`].
    pub push_to: Option<ActorRef>,
    /// Also store the result (encoded, Lww) under this key; futures read it.
    pub store_at: Option<Key>,
}

/// A downstream function of a schedule and the executor it was placed on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downstream {
    pub function: String,
    pub executor: ActorRef,
}

/// One function of one call, placed on an executor (one-way from the scheduler). A
/// function with no upstream runs as soon as its schedule arrives; the others when every
/// upstream's [`Trigger`] has arrived too (in either order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct Schedule {
    pub call: CallId,
    /// The DAG's name (`None` for a `CallFunction`): the sink records the DAG call under it.
    pub dag: Option<String>,
    pub function: String,
    /// Content hash of the registration the scheduler saw (stale bodies are never run).
    pub hash: u64,
    pub timeout_ms: Option<u64>,
    /// The caller's arguments for this function (before the upstream results).
    pub args: Vec<Arg>,
    /// Upstream functions in the DAG's edge-list order: their results follow `args`.
    pub upstream: Vec<String>,
    pub downstream: Vec<Downstream>,
    /// The DAG's sink: delivers the result as `reply` asks.
    pub sink: bool,
    /// Where the result (or any function's failure) goes.
    pub reply: Reply,
    pub consistency: Consistency,
    /// Repeatable read: the node whose cache pins the session's versions (the node of the
    /// DAG's first source function), for every function of the call.
    pub home: Option<NodeRef>,
    /// When the scheduler accepted the call (wall-clock µs), for the DAG latency metric.
    pub started_us: u64,
    /// Which run of the call this is: 0 first, n for the n-th re-run.
    pub attempt: u32,
    /// The scheduler that placed the call and keeps it until it ends: told of the
    /// attempt's end ([`AttemptEnded`]), it re-runs or fails the call. `None`: nobody
    /// keeps the call; a failure goes straight to `reply`.
    pub scheduler: Option<ActorRef>,
}

impl Schedule {
    /// `function` of `call` on its own: no DAG, no arguments, no neighbours, nobody told
    /// of its end, last-writer-wins, first attempt. Callers set what differs.
    pub fn alone(call: CallId, function: &str, hash: u64) -> Schedule {
        Schedule {
            call,
            dag: None,
            function: function.to_string(),
            hash,
            timeout_ms: None,
            args: vec![],
            upstream: vec![],
            downstream: vec![],
            sink: false,
            reply: Reply {
                push_to: None,
                store_at: None,
            },
            consistency: Consistency::Lww,
            home: None,
            started_us: 0,
            attempt: 0,
            scheduler: None,
        }
    }

    /// The consistency session of this attempt (see [`session_of`]).
    pub fn session(&self) -> CallId {
        session_of(self.call, self.attempt)
    }
}

/// The consistency session of attempt `attempt` of `call`: the call id for the first run,
/// a fresh id for every re-run (a re-run starts a new session: pins the first attempt made
/// at a home that may be gone are not reused).
pub fn session_of(call: CallId, attempt: u32) -> CallId {
    if attempt == 0 {
        call
    } else {
        CallId(call.0 ^ hash64(&[b"attempt", &attempt.to_le_bytes()]))
    }
}

/// An upstream function failed: downstream functions of the call do not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aborted;

/// The result of `from` for `to`, sent one-way from executor to executor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct Trigger {
    pub call: CallId,
    pub to: String,
    pub from: String,
    pub value: Result<PyValue, Aborted>,
    /// What the session has seen so far on the path through `from`.
    pub session: SessionMeta,
    /// The attempt of the call `from` ran in.
    pub attempt: u32,
}

/// Stop the attempts of a call below `before` (one-way, from the scheduler that placed it,
/// to the executors of its functions): their functions still running are stopped (their
/// worker replaced), those waiting never run, and their later schedules and triggers are
/// dropped. A cancelled or expired call is stopped whole ([`Cancel::ALL`]); a re-run stops
/// the attempts before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct Cancel {
    pub call: CallId,
    pub before: u32,
}

impl Cancel {
    /// `before` for every attempt.
    pub const ALL: u32 = u32::MAX;
}

/// An attempt of a call ended at an executor (one-way, to the scheduler that placed it):
/// the sink delivered the call's result (`failure: None`), or a function failed. The
/// scheduler then forgets the call, runs it again, or sends the failure to the caller.
/// Executors tell a failure at once with this; deliveries in batches ([`AttemptsDelivered`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct AttemptEnded {
    pub call: CallId,
    pub attempt: u32,
    /// The function that ended it: the sink, or the one that failed.
    pub function: String,
    pub failure: Option<CallFailure>,
}

/// The sinks of these attempts of calls `(call, attempt)` delivered their results (one-way,
/// from an executor to the scheduler that placed the calls): the scheduler forgets them.
/// Batched: a call's delivery is told a short while after it happened, with the others of
/// that while, so the call path does not pay a message per call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct AttemptsDelivered {
    pub attempts: Vec<(CallId, u32)>,
}

/// What one call's session has seen, carried downstream with the triggers so that functions
/// on other nodes keep the call's consistency mode; empty under LWW.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    /// Repeatable read: keys the session has pinned at its home cache, each with a 64-bit
    /// id of the pinned version (0: pinned as missing), so a cache already holding that
    /// version serves it without asking the home cache.
    pub pinned: BTreeMap<Key, u64>,
    /// Causal: per key, the clock of what the session read or wrote of it (and the
    /// dependencies of what it read); later reads must cover it.
    pub deps: Dependencies,
}

impl SessionMeta {
    /// Join what two paths of one session saw (a function with several upstreams).
    pub fn merge(&mut self, other: SessionMeta) {
        for (k, fp) in other.pinned {
            self.pinned.entry(k).or_insert(fp);
        }
        self.deps.merge(other.deps);
    }

    /// Whether there is nothing to carry.
    pub fn is_empty(&self) -> bool {
        self.pinned.is_empty() && self.deps.is_empty()
    }
}

/// A user-library `send(dest, bytes)`: delivered one-way to the executor named in `to` (an
/// invocation id from `getid()`), queued in that invocation's inbox for `recv()`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub to: String,
    pub from: String,
    pub payload: Bytes,
}

/// Why a call failed, as the caller sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallFailure {
    pub code: ErrorCode,
    pub message: String,
    /// For `function_error`: the exception type and the traceback.
    pub exception_type: Option<String>,
    pub traceback: Option<String>,
}

impl CallFailure {
    /// A failure with no Python exception attached.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CallFailure {
            code,
            message: message.into(),
            exception_type: None,
            traceback: None,
        }
    }
}

/// A call finished (sent one-way by the DAG's sink executor, or the executor whose function
/// failed, to the caller's gateway).
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct CallFinished {
    pub call: CallId,
    pub outcome: Result<PyValue, CallFailure>,
}
