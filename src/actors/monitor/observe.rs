//! From what the monitor hears to what the policy reads (no I/O; time is passed in): which
//! monitor acts, and each executor node's state and load.

use super::policy::{ExecutorNode, NodeState, Observation};
use crate::config::Role;
use crate::ids::{NodeId, NodeRef};
use crate::net::membership::View;
use crate::protocol::{self, ExecutorStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A report older than this is not taken as the node's load: the node counts as starting
/// (neither capacity nor a scale-down victim) until it reports again. Several of the
/// executors' report intervals, so one late report does not matter.
pub const REPORT_FRESH: Duration = Duration::from_secs(2);

/// Whether `me` is the monitor that acts: the live, non-draining monitor with the lowest
/// node id. Every monitor computes the same answer from the same view; when the acting one
/// dies or drains, the next one takes over.
pub fn acting(view: &View, me: &NodeRef) -> bool {
    view.serving_with_role(Role::Monitor)
        .map(|m| &m.node)
        .min_by(|a, b| a.id.cmp(&b.id))
        .is_some_and(|first| first == me)
}

/// The last status each executor node sent, and when it arrived.
#[derive(Debug, Default)]
pub struct Reports {
    last: BTreeMap<NodeId, (ExecutorStatus, Instant)>,
}

impl Reports {
    pub fn record(&mut self, status: ExecutorStatus, now: Instant) {
        let mut status = status;
        status.load = status.load.sanitized();
        self.last
            .insert(status.executor.node.id.clone(), (status, now));
    }

    /// The node's status if it is fresh and from this incarnation.
    fn fresh(&self, node: &NodeRef, now: Instant) -> Option<&ExecutorStatus> {
        self.last.get(&node.id).and_then(|(s, at)| {
            let recent = now.saturating_duration_since(*at) < REPORT_FRESH;
            (recent && s.executor.node == *node).then_some(s)
        })
    }

    /// Per node, the functions its last report says it holds warm.
    pub fn warm(&self) -> BTreeMap<String, Vec<String>> {
        self.last
            .iter()
            .map(|(n, (s, _))| (n.to_string(), s.load.warm.clone()))
            .collect()
    }

    /// Forget nodes no longer in `live`.
    pub fn retain(&mut self, live: &BTreeSet<NodeId>) {
        self.last.retain(|n, _| live.contains(n));
    }
}

/// What the policy sees: every live executor node of `view` with its state and load.
/// Removable are the nodes this monitor's provider launched (`provided`) and those that
/// report another provider launched them (after a fail-over, the predecessor's);
/// `asked_to_drain` count as draining before the view says so.
pub fn observe(
    view: &View,
    reports: &Reports,
    provided: &BTreeSet<NodeId>,
    asked_to_drain: &BTreeSet<NodeId>,
    launches_pending: u32,
    calls_waiting: u32,
    now: Instant,
) -> Observation {
    let executors = view
        .live_with_role(Role::Executor)
        .map(|m| {
            let report = reports.fresh(&m.node, now);
            let state = match report {
                _ if m.draining || asked_to_drain.contains(&m.node.id) => NodeState::Draining,
                Some(s) if s.load.state == protocol::NodeState::Draining => NodeState::Draining,
                Some(_) => NodeState::Active,
                None => NodeState::Starting,
            };
            let load = report.map(|s| s.load.clone()).unwrap_or_default();
            ExecutorNode {
                node: m.node.id.clone(),
                state,
                workers: report.map_or(0, |s| s.workers),
                demand: load.demand,
                in_flight: load.in_flight,
                queued: report.map_or(0, |s| s.queued),
                waiting_schedules: load.held,
                cache_bytes: load.cache_bytes,
                removable: provided.contains(&m.node.id) || report.is_some_and(|s| s.load.launched),
            }
        })
        .collect();
    Observation {
        executors,
        launches_pending,
        calls_waiting,
    }
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
