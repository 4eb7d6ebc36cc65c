//! The executor's logic, no I/O: matching schedules with upstream triggers. A function of a
//! call runs once its [`Schedule`] and a [`Trigger`] from each upstream have arrived, in any
//! order; an aborted upstream aborts it instead. Waiting entries are bounded in number and
//! expire (a failed or lost upstream must not pin memory).
//!
//! Schedules and triggers carry the attempt of their call: once one of a newer attempt
//! arrives, those of older attempts are dropped (waiting ones too), and once a call is
//! cancelled all of its are. What the executor has seen of re-run and cancelled calls is
//! kept for [`FLOOR_EXPIRY`], at most [`MAX_FLOORS`] calls.

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
    /// Of an attempt older than one seen, or of a cancelled call: dropped.
    Stale,
}

struct Pending {
    attempt: u32,
    schedule: Option<Schedule>,
    inputs: Vec<(String, Result<PyValue, Aborted>)>,
    session: SessionMeta,
    since: Instant,
}

/// Schedules and triggers waiting for each other.
/// Triggers that arrive for a function with no schedule (an aborted or expired call) are
/// kept at most this long, so late results of failed calls do not pin memory.
pub const ORPHAN_EXPIRY: Duration = Duration::from_secs(30);

/// Calls whose newest attempt (or cancellation) this executor remembers, at most: only
/// re-run and cancelled calls are remembered.
pub const MAX_FLOORS: usize = 65_536;
/// How long the newest attempt of a call is remembered: as long as its waiting entries may
/// wait.
pub const FLOOR_EXPIRY: Duration = Duration::from_secs(600);

/// Where a schedule or trigger goes.
enum Slot<'a> {
    Entry(&'a mut Pending),
    /// No room for another waiting entry.
    Full,
    /// A newer attempt of the call waits here already.
    Stale,
}

pub struct ExecutorCore {
    pending: HashMap<(CallId, String), Pending>,
    /// Per re-run or cancelled call: the oldest attempt still taken, and since when.
    floors: HashMap<CallId, (u32, Instant)>,
    max_pending: usize,
    expiry: Duration,
}

impl ExecutorCore {
    /// At most `max_pending` waiting entries, each dropped after `expiry`.
    pub fn new(max_pending: usize, expiry: Duration) -> Self {
        ExecutorCore {
            pending: HashMap::new(),
            floors: HashMap::new(),
            max_pending,
            expiry,
        }
    }

    /// Whether a message of `attempt` of `call` still counts; one of a newer attempt than
    /// any seen raises the call's floor and drops its older waiting entries.
    fn admit(&mut self, call: CallId, attempt: u32, now: Instant) -> bool {
        let floor = self.floors.get(&call).map_or(0, |(f, _)| *f);
        if attempt < floor {
            return false;
        }
        if attempt > floor {
            self.raise_floor(call, attempt, now);
        }
        true
    }

    fn raise_floor(&mut self, call: CallId, floor: u32, now: Instant) {
        self.pending
            .retain(|(c, _), p| *c != call || p.attempt >= floor);
        if self.floors.len() >= MAX_FLOORS && !self.floors.contains_key(&call) {
            self.floors
                .retain(|_, (_, since)| now.saturating_duration_since(*since) < FLOOR_EXPIRY);
            if self.floors.len() >= MAX_FLOORS {
                // Not remembered: a late message of an older attempt may then run; the
                // caller's gateway drops a second result.
                return;
            }
        }
        self.floors.insert(call, (floor, now));
    }

    /// The attempts of `call` below `before` were stopped: their waiting entries are
    /// dropped (returned: how many), and their later schedules and triggers will be.
    pub fn cancel(&mut self, call: CallId, before: u32, now: Instant) -> usize {
        let waiting = self.pending.len();
        let floor = self.floors.get(&call).map_or(0, |(f, _)| *f);
        if before > floor {
            self.raise_floor(call, before, now);
        }
        waiting - self.pending.len()
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

    /// The timeouts (`None`: the executor's default) of `call`'s schedules waiting here for
    /// their upstream results.
    pub fn schedules_of(&self, call: CallId) -> Vec<Option<u64>> {
        self.pending
            .iter()
            .filter(|((c, _), p)| *c == call && p.schedule.is_some())
            .map(|(_, p)| p.schedule.as_ref().and_then(|s| s.timeout_ms))
            .collect()
    }

    /// A schedule arrived. A function with no upstream is ready at once.
    pub fn on_schedule(&mut self, schedule: Schedule, now: Instant) -> Step {
        if (schedule.attempt > 0 || !self.floors.is_empty())
            && !self.admit(schedule.call, schedule.attempt, now)
        {
            return Step::Stale;
        }
        if schedule.upstream.is_empty() {
            return Step::Run(Ready {
                schedule,
                inputs: Vec::new(),
                session: SessionMeta::default(),
            });
        }
        let key = (schedule.call, schedule.function.clone());
        let entry = match self.entry(&key, schedule.attempt, now) {
            Slot::Entry(e) => e,
            Slot::Full => return Step::Refused(schedule),
            Slot::Stale => return Step::Stale,
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
        if (t.attempt > 0 || !self.floors.is_empty()) && !self.admit(t.call, t.attempt, now) {
            return Step::Stale;
        }
        let key = (t.call, t.to);
        let entry = match self.entry(&key, t.attempt, now) {
            Slot::Entry(e) => e,
            Slot::Full => return Step::Full,
            Slot::Stale => return Step::Stale,
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
        self.floors
            .retain(|_, (_, since)| now.saturating_duration_since(*since) < FLOOR_EXPIRY);
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

    /// The waiting entry of `key` for `attempt` (an older attempt's entry is replaced).
    fn entry(&mut self, key: &(CallId, String), attempt: u32, now: Instant) -> Slot<'_> {
        if !self.pending.contains_key(key) && self.pending.len() >= self.max_pending {
            return Slot::Full;
        }
        let fresh = || Pending {
            attempt,
            schedule: None,
            inputs: Vec::new(),
            session: SessionMeta::default(),
            since: now,
        };
        let entry = self.pending.entry(key.clone()).or_insert_with(fresh);
        if entry.attempt > attempt {
            return Slot::Stale;
        }
        if entry.attempt < attempt {
            *entry = fresh();
        }
        Slot::Entry(entry)
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
