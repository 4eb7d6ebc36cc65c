//! What an executor reports about its load with every status: the figures the monitor
//! scales on. Means are integrated over the report window (time-weighted), not sampled.

use serde::{Deserialize, Serialize};

/// Functions one report names at most (those with the most calls): bounds a report's size
/// whatever the number of registered functions.
pub const MAX_REPORTED_FUNCTIONS: usize = 64;

/// What an executor node is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Joined but not yet serving (no status from it yet).
    Starting,
    /// Serving and taking new calls.
    #[default]
    Active,
    /// Finishing what it holds, taking nothing new; leaves when done.
    Draining,
}

impl NodeState {
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Starting => "starting",
            NodeState::Active => "active",
            NodeState::Draining => "draining",
        }
    }
}

/// One function's calls that ended in the window and the time they spent on the executor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionLoad {
    pub function: String,
    pub calls: u32,
    /// Sum over those calls of the time from their arrival to their end, in microseconds.
    pub runtime_us: u64,
}

/// An executor's load over its last report window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutorLoad {
    pub state: NodeState,
    /// Length of the window the means cover, in milliseconds.
    pub window_ms: u64,
    /// Busy worker-seconds over (workers × window seconds), `0.0..=1.0`.
    pub occupancy: f64,
    /// Mean calls in flight plus queued over the window.
    pub demand: f64,
    /// Calls in flight (running or queued) at the end of the window.
    pub in_flight: u32,
    /// DAG schedules waiting for upstream triggers at the end of the window.
    pub held: u32,
    /// Bytes in the node's cache.
    pub cache_bytes: u64,
    /// Per function, at most [`MAX_REPORTED_FUNCTIONS`], most calls first.
    pub functions: Vec<FunctionLoad>,
    /// Functions loaded on this executor (warm: a call runs without loading them first),
    /// sorted, at most [`MAX_REPORTED_FUNCTIONS`].
    pub warm: Vec<String>,
    /// A monitor's node provider launched this node: whichever monitor acts may scale it
    /// down (it drains, leaves and exits; the provider that launched it reaps it).
    pub launched: bool,
}

impl ExecutorLoad {
    /// The report with every figure made usable: a peer's non-finite or out-of-range mean
    /// becomes 0 (or is clamped), the function list is cut to its bound.
    pub fn sanitized(mut self) -> ExecutorLoad {
        let finite = |x: f64| if x.is_finite() { x.max(0.0) } else { 0.0 };
        self.occupancy = finite(self.occupancy).min(1.0);
        self.demand = finite(self.demand);
        self.functions.truncate(MAX_REPORTED_FUNCTIONS);
        self.warm.truncate(MAX_REPORTED_FUNCTIONS);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_report_is_made_usable() {
        let bad = ExecutorLoad {
            occupancy: f64::NAN,
            demand: f64::INFINITY,
            functions: vec![FunctionLoad::default(); MAX_REPORTED_FUNCTIONS + 5],
            ..ExecutorLoad::default()
        };
        let good = bad.sanitized();
        assert_eq!((good.occupancy, good.demand), (0.0, 0.0));
        assert_eq!(good.functions.len(), MAX_REPORTED_FUNCTIONS);
        let over = ExecutorLoad {
            occupancy: 3.0,
            demand: -1.0,
            ..ExecutorLoad::default()
        };
        assert_eq!(
            (over.clone().sanitized().occupancy, over.sanitized().demand),
            (1.0, 0.0)
        );
    }
}
