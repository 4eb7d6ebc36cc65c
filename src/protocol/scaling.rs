//! What the monitor exchanges with the rest of the cluster: the executors' reports it
//! scales on, the request that drains a node it removes, and what it shows people (the
//! dashboard of any gateway asks the active monitor for its state).

use super::ExecutorStatus;
use crate::ids::NodeRef;
use serde::{Deserialize, Serialize};

/// Decisions the monitor keeps to show (the newest; older ones are only in its log).
pub const MAX_DECISIONS_KEPT: usize = 200;

/// An executor's status, sent to every live monitor as it is to the schedulers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct MonitorReport {
    pub status: ExecutorStatus,
}

/// Sent by the acting monitor to the executor of the node it scales down: the node drains
/// (takes no new placements, finishes what it holds), leaves the cluster and exits, as on
/// SIGTERM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct DrainNode {
    /// The monitor's node (for the log line).
    pub by: NodeRef,
}

/// Sent by a scheduler to every live monitor while it holds calls that found no executor
/// to run on (an idle cluster scaled to zero): the acting monitor launches one at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct ExecutorsWanted {
    /// The scheduler's node.
    pub scheduler: NodeRef,
    /// Calls this scheduler holds now (0: it holds none any more).
    pub calls: u32,
    /// The functions they call (a launched executor loads them before it reports ready).
    pub functions: Vec<String>,
}

/// The launch line a node provider writes to a standby executor node's stdin (see
/// `node::standby`): `go`, then a JSON list of the functions to load before it reports
/// ready, e.g. `go ["square"]`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LaunchLineError {
    #[error("bad launch line: it does not start with `go`")]
    NoGo,
    #[error("bad launch line: the function names are not a JSON list of strings: {0}")]
    Names(String),
}

/// Functions a launch line may name at most; the rest are loaded on first call.
pub const MAX_WARM_FUNCTIONS: usize = 64;

/// Parse a launch line: `go` then an optional JSON list of function names.
pub fn parse_launch(line: &str) -> Result<Vec<String>, LaunchLineError> {
    let rest = line
        .trim()
        .strip_prefix("go")
        .ok_or(LaunchLineError::NoGo)?
        .trim();
    if rest.is_empty() {
        return Ok(vec![]);
    }
    let mut names: Vec<String> =
        serde_json::from_str(rest).map_err(|e| LaunchLineError::Names(e.to_string()))?;
    names.truncate(MAX_WARM_FUNCTIONS);
    Ok(names)
}

/// The launch line for `warm` functions (what the provider writes).
pub fn launch_line(warm: &[String]) -> String {
    let names = &warm[..warm.len().min(MAX_WARM_FUNCTIONS)];
    let list = serde_json::to_string(names).unwrap_or_else(|_| "[]".into());
    format!("go {list}\n")
}

/// Asks a monitor for its state (the dashboard's autoscaling panel, `/metrics`).
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "AutoscaleState")]
pub struct GetAutoscale;

/// The numbers one monitor tick computed (shown with every decision).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Numbers {
    pub demand_now: f64,
    pub demand_stable: f64,
    pub demand_panic: f64,
    /// Workers of active nodes.
    pub capacity: u32,
    pub active: u32,
    pub starting: u32,
    pub draining: u32,
    pub pending: u32,
    /// Active + starting + pending: what the policy counts as the current size.
    pub counted: u32,
    /// Nodes the stable window's demand needs, clamped to the limits.
    pub desired: u32,
    /// Calls the schedulers hold because no executor runs (scale from zero).
    pub waiting: u32,
}

/// One decision, as people see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// `launch`, `drain`, `terminate`, `relaunch`, `give_up`, `launch_failed`.
    pub action: String,
    /// Nodes launched (for `launch`), else 0.
    pub count: u32,
    /// The node drained or terminated, if any.
    pub node: Option<String>,
    /// `below_minimum`, `panic`, `stable`, `idle`, `drained`, `not_joined`, ...
    pub reason: String,
    pub numbers: Numbers,
}

/// What a monitor shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoscaleState {
    /// The monitor's node.
    pub node: String,
    /// It is the one acting (the others stand by).
    pub acting: bool,
    /// The configured limits.
    pub min_executors: u32,
    pub max_executors: u32,
    /// The provider failed too often and the monitor stopped launching.
    pub gave_up: bool,
    /// Decisions taken so far (ever, by this monitor).
    pub decisions_total: u64,
    /// The last tick's numbers.
    pub last: Option<Numbers>,
    /// Cold starts (a launch asked for by calls waiting with no executor, until an executor
    /// reported ready): how many, and the newest durations in milliseconds, oldest first.
    pub cold_starts: u64,
    pub cold_start_ms: Vec<u64>,
    /// Per executor node (by id), the functions it holds warm (loaded), as it last said.
    pub warm: std::collections::BTreeMap<String, Vec<String>>,
    /// The newest decisions, oldest first, at most [`MAX_DECISIONS_KEPT`]. (The numbers
    /// over time are the dashboard's chart points, one per `last` it reads.)
    pub decisions: Vec<DecisionRecord>,
    /// The KVS tier's elasticity (nodes, bytes against budgets, hot keys, decisions).
    pub kvs: Option<super::KvsAutoscaleState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_line_round_trips_and_bad_ones_are_refused() {
        let warm = vec!["square".to_string(), "a \"quoted\" name".to_string()];
        assert_eq!(parse_launch(&launch_line(&warm)).expect("valid"), warm);
        assert_eq!(parse_launch("go\n").expect("valid"), Vec::<String>::new());
        assert!(parse_launch("stop\n").is_err());
        assert!(parse_launch("go [1, 2]\n").is_err());
        let many: Vec<String> = (0..MAX_WARM_FUNCTIONS + 5).map(|i| i.to_string()).collect();
        assert_eq!(
            parse_launch(&launch_line(&many)).expect("valid").len(),
            MAX_WARM_FUNCTIONS
        );
    }
}
