//! The executor's messages: its part of a DAG schedule (from a scheduler), triggers carrying
//! upstream results (from other executors, directly), and user-library `send`s.

use crate::actors::scheduler::messages::{Arg, Consistency, Reply};
use crate::ids::{CallId, Key, NodeRef};
use crate::lattice::{Dependencies, Lattice};
use crate::net::{ActorRef, RemoteMessage, ServiceId};
use crate::pyrt::PyValue;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A downstream function of a schedule and the executor it was placed on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downstream {
    pub function: String,
    pub executor: ActorRef,
}

/// One function of one call, placed on this executor (one-way from the scheduler). A
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
}

/// Session metadata that flows with the triggers (DESIGN §6); empty under LWW.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    /// Repeatable read: keys the session has pinned at its home cache, each with the
    /// [fingerprint](crate::actors::executor::session::fingerprint) of the pinned value, so
    /// a cache already holding that version serves it without asking the home cache.
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

macro_rules! remote {
    ($($t:ty => $tag:expr),* $(,)?) => {$(
        impl RemoteMessage for $t {
            const SERVICE: ServiceId = ServiceId::Executor;
            const TAG: u16 = $tag;
        }
    )*};
}

remote! {
    Schedule => 0,
    Trigger => 1,
    Deliver => 2,
}
