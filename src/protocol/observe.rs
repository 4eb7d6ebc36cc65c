//! What every node tells the dashboards and clients about itself, whatever its roles: the
//! calls it ran (series, recent calls, its Python pool) and the output of each call. A
//! gateway's dashboard asks every live node once per tick; a client's `logs` request asks
//! the nodes for one call's output.

use crate::ids::CallId;
use crate::metrics::{CallSnapshot, RecentCall};
use serde::{Deserialize, Serialize};

/// Bytes of one function run's output kept (stdout, stderr and traceback together): the
/// tail beyond it is cut and the log says so. Enough for a page of prints, small enough
/// that a log travels in one frame beside others.
pub const MAX_CALL_LOG_BYTES: usize = 64 * 1024;

/// Asks a node for its own figures.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "NodeStats")]
pub struct GetNodeStats;

/// One node's figures: the call series it recorded, its newest calls, its Python pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub node: String,
    pub calls: Vec<CallSnapshot>,
    /// Newest first, each naming this node.
    pub recent: Vec<RecentCall>,
    /// The executor's Python pool, on nodes playing `executor`.
    pub pool: Option<PoolStats>,
}

/// An executor's Python pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolStats {
    pub workers: u64,
    /// Workers started beyond `workers` while functions wait on the platform.
    pub extra_workers: u64,
    /// Fraction of workers running a call, `0.0..=1.0`.
    pub utilisation: f64,
}

/// Asks a node for the output of the functions of `call` it ran.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Vec<CallLog>")]
pub struct GetCallLogs {
    pub call: CallId,
}

/// What one function run of a call printed, and its traceback if it raised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLog {
    pub call: CallId,
    pub attempt: u32,
    pub function: String,
    /// The node that ran it.
    pub node: String,
    pub stdout: String,
    pub stderr: String,
    /// The traceback of the exception it raised.
    pub traceback: Option<String>,
    /// Output beyond [`MAX_CALL_LOG_BYTES`] was cut.
    pub truncated: bool,
    /// When it finished, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl CallLog {
    /// Bytes of text held.
    pub fn bytes(&self) -> usize {
        self.stdout.len() + self.stderr.len() + self.traceback.as_ref().map_or(0, String::len)
    }
}
