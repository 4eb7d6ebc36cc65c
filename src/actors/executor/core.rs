//! The executor's logic, no I/O: matching schedules with upstream triggers. A function of a
//! call runs once its [`Schedule`] and a [`Trigger`] from each upstream have arrived, in any
//! order; an aborted upstream aborts it instead. Waiting entries are bounded in number and
//! expire (a failed or lost upstream must not pin memory).

use crate::ids::CallId;
use crate::protocol::{Aborted, Schedule, SessionMeta, Trigger, MAX_DAG_FUNCTIONS};
use crate::pyrt::PyValue;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A function ready to run: its schedule and its upstream results in edge-list order.
#[derive(Debug, PartialEq)]
pub struct Ready {
    pub schedule: Schedule,
    pub inputs: Vec<PyValue>,
    /// What the session saw upstream (joined over every upstream).
    pub session: SessionMeta,
}

/// What to do after a schedule or trigger arrived.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Still waiting for the schedule or some upstream.
    Wait,
    /// Run it.
    Run(Ready),
    /// An upstream failed: do not run; tell the downstream functions.
    Abort(Schedule),
    /// Too many waiting entries: this schedule was refused (its call must fail).
    Refused(Schedule),
    /// Too many waiting entries: the trigger was dropped.
    Full,
}

struct Pending {
    schedule: Option<Schedule>,
    inputs: Vec<(String, Result<PyValue, Aborted>)>,
    session: SessionMeta,
    since: Instant,
}

/// Schedules and triggers waiting for each other.
/// Triggers that arrive for a function with no schedule (an aborted or expired call) are
/// kept at most this long, so late results of failed calls do not pin memory.
pub const ORPHAN_EXPIRY: Duration = Duration::from_secs(30);

pub struct ExecutorCore {
    pending: HashMap<(CallId, String), Pending>,
    max_pending: usize,
    expiry: Duration,
}

impl ExecutorCore {
    /// At most `max_pending` waiting entries, each dropped after `expiry`.
    pub fn new(max_pending: usize, expiry: Duration) -> Self {
        ExecutorCore {
            pending: HashMap::new(),
            max_pending,
            expiry,
        }
    }

    /// Entries waiting now.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// Schedules held, waiting for upstream results (what a drain must see through; triggers
    /// with no schedule are orphans of failed calls, or wait for a schedule on its way).
    pub fn held_schedules(&self) -> usize {
        self.pending
            .values()
            .filter(|p| p.schedule.is_some())
            .count()
    }

    /// A schedule arrived. A function with no upstream is ready at once.
    pub fn on_schedule(&mut self, schedule: Schedule, now: Instant) -> Step {
        if schedule.upstream.is_empty() {
            return Step::Run(Ready {
                schedule,
                inputs: Vec::new(),
                session: SessionMeta::default(),
            });
        }
        let key = (schedule.call, schedule.function.clone());
        let Some(entry) = self.entry(&key, now) else {
            return Step::Refused(schedule);
        };
        if entry.schedule.is_some() {
            tracing::warn!(call = %schedule.call, function = %schedule.function,
                "duplicate schedule ignored");
            return Step::Wait;
        }
        entry.schedule = Some(schedule);
        self.check(key)
    }

    /// An upstream result (or abort) arrived.
    pub fn on_trigger(&mut self, t: Trigger, now: Instant) -> Step {
        let key = (t.call, t.to);
        let Some(entry) = self.entry(&key, now) else {
            return Step::Full;
        };
        if entry.inputs.len() >= MAX_DAG_FUNCTIONS || entry.inputs.iter().any(|(f, _)| *f == t.from)
        {
            return Step::Wait;
        }
        entry.inputs.push((t.from, t.value));
        entry.session.merge(t.session);
        self.check(key)
    }

    /// Drop entries past their expiry: a scheduled function after `expiry`, triggers whose
    /// schedule never came (late triggers of an aborted call, mostly) after the shorter
    /// [`ORPHAN_EXPIRY`]. Returns how many were dropped, and the schedules among them, so
    /// their callers can be told the call failed instead of waiting forever.
    pub fn expire(&mut self, now: Instant) -> (usize, Vec<Schedule>) {
        let before = self.pending.len();
        let (expiry, orphan) = (self.expiry, self.expiry.min(ORPHAN_EXPIRY));
        let mut dropped = Vec::new();
        self.pending.retain(|_, p| {
            let age = now.saturating_duration_since(p.since);
            let keep = age < if p.schedule.is_some() { expiry } else { orphan };
            if !keep {
                if let Some(s) = p.schedule.take() {
                    dropped.push(s);
                }
            }
            keep
        });
        (before - self.pending.len(), dropped)
    }

    fn entry(&mut self, key: &(CallId, String), now: Instant) -> Option<&mut Pending> {
        if !self.pending.contains_key(key) && self.pending.len() >= self.max_pending {
            return None;
        }
        Some(self.pending.entry(key.clone()).or_insert_with(|| Pending {
            schedule: None,
            inputs: Vec::new(),
            session: SessionMeta::default(),
            since: now,
        }))
    }

    fn check(&mut self, key: (CallId, String)) -> Step {
        let Some(entry) = self.pending.get(&key) else {
            return Step::Wait;
        };
        let Some(schedule) = &entry.schedule else {
            return Step::Wait;
        };
        let aborted = entry.inputs.iter().any(|(_, v)| v.is_err());
        let complete = schedule
            .upstream
            .iter()
            .all(|u| entry.inputs.iter().any(|(f, _)| f == u));
        if !aborted && !complete {
            return Step::Wait;
        }
        let Some(mut entry) = self.pending.remove(&key) else {
            return Step::Wait;
        };
        let Some(schedule) = entry.schedule.take() else {
            return Step::Wait;
        };
        if aborted {
            return Step::Abort(schedule);
        }
        let mut inputs = Vec::with_capacity(schedule.upstream.len());
        for u in &schedule.upstream {
            if let Some(i) = entry.inputs.iter().position(|(f, _)| f == u) {
                if let (_, Ok(v)) = entry.inputs.swap_remove(i) {
                    inputs.push(v);
                }
            }
        }
        Step::Run(Ready {
            schedule,
            inputs,
            session: entry.session,
        })
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
