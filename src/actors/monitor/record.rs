//! What the monitor keeps to show people: every decision with its reason and numbers (the
//! newest [`MAX_DECISIONS_KEPT`]), the last tick's numbers, and the decisions counter for
//! `/metrics`. Each decision is also logged.

use super::policy::{Action, Decision, Reason};
use crate::ids::NodeId;
use crate::protocol::scaling::MAX_DECISIONS_KEPT;
use crate::protocol::{AutoscaleState, DecisionRecord, Numbers};
use std::collections::VecDeque;

/// The monitor's record.
#[derive(Debug, Default)]
pub struct Record {
    decisions: VecDeque<DecisionRecord>,
    total: u64,
    last: Option<Numbers>,
    cold_starts: u64,
    /// The newest cold starts' durations in milliseconds.
    cold_start_ms: VecDeque<u64>,
}

/// Cold-start durations kept to show (the newest).
pub const MAX_COLD_STARTS_KEPT: usize = 100;

impl Record {
    /// A tick computed `numbers`.
    pub fn tick(&mut self, numbers: Numbers) {
        self.last = Some(numbers);
    }

    /// The policy decided `d`.
    pub fn decision(&mut self, at_ms: u64, d: &Decision) {
        let (action, count, node) = match &d.action {
            Action::Launch { count } => ("launch", *count, None),
            Action::Drain { node } => ("drain", 0, Some(node)),
        };
        let reason = match d.reason {
            Reason::BelowMinimum => "below_minimum",
            Reason::Panic => "panic",
            Reason::Stable => "stable",
            Reason::Idle => "idle",
            Reason::FromZero => "from_zero",
        };
        self.other(at_ms, action, count, node, reason, d.numbers);
    }

    /// Something else the monitor did or saw (a terminate, a relaunch, a launch failure).
    pub fn other(
        &mut self,
        at_ms: u64,
        action: &str,
        count: u32,
        node: Option<&NodeId>,
        reason: &str,
        numbers: Numbers,
    ) {
        tracing::info!(
            action,
            count,
            node = node.map(|n| n.as_str()).unwrap_or(""),
            reason,
            demand_stable = numbers.demand_stable,
            demand_panic = numbers.demand_panic,
            capacity = numbers.capacity,
            active = numbers.active,
            starting = numbers.starting,
            draining = numbers.draining,
            pending = numbers.pending,
            desired = numbers.desired,
            "autoscale decision"
        );
        self.total += 1;
        let record = DecisionRecord {
            at_ms,
            action: action.to_string(),
            count,
            node: node.map(|n| n.to_string()),
            reason: reason.to_string(),
            numbers,
        };
        push_bounded(&mut self.decisions, record, MAX_DECISIONS_KEPT);
    }

    /// The last tick's numbers (zero before the first).
    /// A cold start ended: calls waited with no executor for `ms` until one was ready.
    pub fn cold_start(&mut self, ms: u64) {
        tracing::info!(ms, "cold start: an executor is ready for the waiting calls");
        self.cold_starts += 1;
        push_bounded(&mut self.cold_start_ms, ms, MAX_COLD_STARTS_KEPT);
    }

    pub fn last(&self) -> Numbers {
        self.last.unwrap_or_default()
    }

    /// What the dashboard shows (the acting flag and limits are the monitor's to fill in).
    pub fn state(&self) -> AutoscaleState {
        AutoscaleState {
            decisions_total: self.total,
            last: self.last,
            decisions: self.decisions.iter().cloned().collect(),
            cold_starts: self.cold_starts,
            cold_start_ms: self.cold_start_ms.iter().copied().collect(),
            ..AutoscaleState::default()
        }
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T, max: usize) {
    if q.len() >= max {
        q.pop_front();
    }
    q.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_kept_up_to_their_bound_and_counted() {
        let mut r = Record::default();
        let n = Numbers {
            active: 2,
            ..Numbers::default()
        };
        r.tick(n);
        let d = Decision {
            action: Action::Drain {
                node: NodeId::new("x"),
            },
            reason: Reason::Idle,
            numbers: n,
        };
        for i in 0..(MAX_DECISIONS_KEPT as u64 + 1) {
            r.decision(i, &d);
        }
        let s = r.state();
        assert_eq!(s.decisions.len(), MAX_DECISIONS_KEPT);
        assert_eq!(s.decisions[0].at_ms, 1, "the oldest decision went first");
        assert_eq!(s.decisions_total, MAX_DECISIONS_KEPT as u64 + 1);
        let last = s.decisions.last().expect("one");
        assert_eq!(
            (
                last.action.as_str(),
                last.reason.as_str(),
                last.node.as_deref()
            ),
            ("drain", "idle", Some("x"))
        );
        assert_eq!(r.last().active, 2);
    }
}
