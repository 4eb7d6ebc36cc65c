//! The calls a scheduler placed, kept until they end, no I/O: what a call needs to run
//! again, where its current attempt runs, its re-runs left and its deadline.
//!
//! A call ends when its sink delivered a result ([`AttemptEnded`] without a failure, from
//! any attempt: the caller's gateway takes the first result), when it fails for good (the
//! failure goes to the caller), when it is cancelled, or at its deadline. Until then:
//! - an executor of its current attempt that membership declares gone (dead, left, or
//!   replaced by a newer generation) makes it run again, every function, as the next
//!   attempt (functions run at least once; a re-run starts a fresh consistency session);
//!   with no re-runs left it fails with `executor_lost`;
//! - a re-run that finds no executor at all (the last one died) waits, like a call that
//!   arrives at an idle cluster, while a monitor is live to launch one: it is placed when an
//!   executor reports, or ends at its deadline;
//! - a function of the current attempt that fails re-runs it when a re-run can help: the
//!   worker or executor failed ([`system_failure`]), or the function raised or timed out
//!   and the call (or that function's registration) asked for it.
//!
//! The table is bounded in calls and in bytes of arguments; beyond either, new calls are
//! refused with `overloaded` (retryable) rather than kept without bound.

use super::core::{CallPlan, CallRequest, SchedulerCore};
use crate::ids::{CallId, NodeRef};
use crate::net::ActorRef;
use crate::protocol::{
    session_of, Arg, AttemptEnded, CallFailure, CallOptions, Cancel, Consistency, ErrorCode,
    FunctionError, Reply, Schedule,
};
use crate::pyrt::PyValue;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Calls a scheduler keeps at most: each holds its arguments and plan until it ends.
pub const MAX_CALLS: usize = 65_536;
/// Bytes of kept calls' arguments at most (they are shared with the schedules sent, so
/// this is memory the calls pin, not a copy).
pub const MAX_CALL_BYTES: usize = 1 << 30;
/// Bytes counted per call besides its arguments (ids, names, the entry itself).
pub const CALL_OVERHEAD_BYTES: usize = 256;
/// Time an attempt gets beyond its functions' timeouts: queueing for a worker, placement,
/// reading referenced keys, passing results on.
pub const ATTEMPT_SLACK: Duration = Duration::from_secs(5);

/// The limits and timing of a table.
#[derive(Clone, Debug)]
pub struct TableConfig {
    pub max_calls: usize,
    pub max_bytes: usize,
    /// The timeout of functions registered without one (the executors' default).
    pub default_timeout: Duration,
    /// How long membership takes to declare a silent node dead: each re-run after a node
    /// death may start that late.
    pub dead_after: Duration,
}

/// What the scheduler must do after an event.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Nothing (an unknown call, or the failure of an attempt already superseded).
    Nothing,
    /// The call delivered its result: forgotten.
    Done,
    /// Send these schedules: attempt `attempt` of `call`. The previous attempt's
    /// executors are told to stop it (`stop`).
    Rerun {
        call: CallId,
        attempt: u32,
        schedules: Vec<(ActorRef, Schedule)>,
        stop: Stop,
    },
    /// The call failed for good: send `failure` to `reply` (forgotten already).
    Fail(Failed),
    /// The call's re-run found no executor: it waits for one (kept, with its deadline).
    /// Its previous attempt's executors are told to stop it (`stop`).
    Wait { call: CallId, stop: Stop },
}

/// A call that failed for good.
#[derive(Debug, PartialEq)]
pub struct Failed {
    pub call: CallId,
    pub reply: Reply,
    pub failure: CallFailure,
    /// The DAG's name (`None` for a one-function call) and when the call was accepted, for
    /// the DAG metrics.
    pub dag: Option<String>,
    pub started_us: u64,
    pub stop: Stop,
}

/// What is left of attempts that no longer count: executors to tell to stop the call's
/// attempts below `before`, and a repeatable-read session to release at its home.
#[derive(Debug, Default, PartialEq)]
pub struct Stop {
    pub executors: Vec<ActorRef>,
    pub before: u32,
    pub release: Option<(NodeRef, CallId)>,
}

struct Kept {
    plan: Arc<CallPlan>,
    req: CallRequest,
    attempt: u32,
    retries_left: u32,
    retry_errors: Option<bool>,
    /// Executors of the current attempt (distinct).
    executors: Vec<ActorRef>,
    /// Repeatable read: the current attempt's home.
    home: Option<NodeRef>,
    deadline: Instant,
    bytes: usize,
}

impl Kept {
    fn stop(&self) -> Stop {
        let release = match (&self.home, self.req.consistency) {
            (Some(home), Consistency::RepeatableRead) => {
                Some((home.clone(), session_of(self.req.call, self.attempt)))
            }
            _ => None,
        };
        Stop {
            executors: self.executors.clone(),
            before: Cancel::ALL,
            release,
        }
    }

    fn failed(self, failure: CallFailure) -> Failed {
        let stop = self.stop();
        Failed {
            call: self.req.call,
            dag: self.plan.is_dag.then(|| self.plan.dag.name.clone()),
            started_us: self.req.started_us,
            reply: self.req.reply,
            failure,
            stop,
        }
    }

    /// Whether `failure` of `function` re-runs the call (re-runs left aside).
    fn rerun_helps(&self, function: &str, failure: &CallFailure) -> bool {
        if system_failure(failure.code) {
            return true;
        }
        let asked = self.retry_errors.unwrap_or_else(|| {
            let plan = &self.plan;
            plan.dag
                .index(function)
                .and_then(|i| plan.functions.get(i))
                .is_some_and(|f| f.retry_errors)
        });
        asked && matches!(failure.code, ErrorCode::FunctionError | ErrorCode::Timeout)
    }
}

/// Whether a failure came from the platform rather than the function: the worker or the
/// executor failed, or the function could not be started or its result passed on. A
/// re-run (elsewhere, or on a fresh worker) can mend it.
pub fn system_failure(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::WorkerCrashed
            | ErrorCode::ExecutorLost
            | ErrorCode::ShutDown
            | ErrorCode::Overloaded
            | ErrorCode::Unavailable
    )
}

/// The kept calls of one scheduler.
pub struct CallTable {
    /// This scheduler, named in every schedule it sends.
    me: ActorRef,
    cfg: TableConfig,
    calls: HashMap<CallId, Kept>,
    deadlines: BTreeSet<(Instant, CallId)>,
    bytes: usize,
    /// Calls whose re-run found no executor, with the failure that made them run again.
    waiting: BTreeMap<CallId, CallFailure>,
    /// Whether such a re-run waits for an executor (a monitor is live to launch one)
    /// rather than fail at once.
    hold_reruns: bool,
}

impl CallTable {
    pub fn new(me: ActorRef, cfg: TableConfig) -> Self {
        CallTable {
            me,
            cfg,
            calls: HashMap::new(),
            deadlines: BTreeSet::new(),
            bytes: 0,
            waiting: BTreeMap::new(),
            hold_reruns: false,
        }
    }

    /// Whether a re-run that finds no executor waits for one (true while a monitor is live).
    pub fn hold_reruns(&mut self, hold: bool) {
        self.hold_reruns = hold;
    }

    /// Calls whose re-run waits for an executor.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The functions of the calls whose re-run waits for an executor.
    pub fn waiting_functions(&self) -> impl Iterator<Item = &String> {
        self.waiting
            .keys()
            .filter_map(|c| self.calls.get(c))
            .flat_map(|k| k.plan.dag.functions.iter())
    }

    /// An executor reported: place the re-runs that wait for one (those that still find
    /// none keep waiting).
    pub fn place_waiting(
        &mut self,
        core: &SchedulerCore,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Vec<Next> {
        std::mem::take(&mut self.waiting)
            .into_iter()
            .map(|(call, failure)| self.rerun(call, failure, core, now, rng))
            .collect()
    }

    /// Calls kept now.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no call is kept.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Bytes the kept calls count for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How long a call of `plan` may take at most: every attempt its functions' timeouts
    /// one after the other plus [`ATTEMPT_SLACK`], and failure detection before each re-run.
    pub fn budget(&self, plan: &CallPlan, retries: u32) -> Duration {
        let functions: Duration = plan
            .functions
            .iter()
            .map(|f| {
                f.timeout_ms
                    .map_or(self.cfg.default_timeout, Duration::from_millis)
            })
            .sum();
        let attempts = retries.saturating_add(1);
        (functions + ATTEMPT_SLACK) * attempts + self.cfg.dead_after * retries
    }

    /// Keep a new call and place its first attempt: the schedules to send, and how long
    /// it may take. Refused beyond the table's limits (the call is not kept then).
    pub fn start(
        &mut self,
        core: &SchedulerCore,
        plan: Arc<CallPlan>,
        req: CallRequest,
        options: CallOptions,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Result<(Duration, Vec<(ActorRef, Schedule)>), FunctionError> {
        let call = req.call;
        if self.calls.contains_key(&call) {
            return Err(FunctionError::Invalid(format!("{call} is running already")));
        }
        let bytes = request_bytes(&req);
        if self.calls.len() >= self.cfg.max_calls {
            return Err(FunctionError::TooManyCalls(format!(
                "{} calls are running (the limit)",
                self.calls.len()
            )));
        }
        if self.bytes + bytes > self.cfg.max_bytes {
            return Err(FunctionError::TooManyCalls(format!(
                "running calls hold {} bytes of arguments, {bytes} more is above the limit of {}",
                self.bytes, self.cfg.max_bytes
            )));
        }
        let registered = plan.functions.iter().map(|f| f.retries).min();
        let retries = options.retries.or(registered).unwrap_or(0);
        let timeout = match options.timeout_ms {
            Some(ms) => Duration::from_millis(ms),
            None => self.budget(&plan, retries),
        };
        let schedules = core.schedules(&plan, &req, 0, Some(&self.me), now, rng)?;
        let deadline = now + timeout;
        let kept = Kept {
            executors: executors_of(&schedules),
            home: schedules.first().and_then(|(_, s)| s.home.clone()),
            plan,
            req,
            attempt: 0,
            retries_left: retries,
            retry_errors: options.retry_errors,
            deadline,
            bytes,
        };
        self.bytes += bytes;
        self.deadlines.insert((deadline, call));
        self.calls.insert(call, kept);
        Ok((timeout, schedules))
    }

    /// An attempt of a call ended at an executor.
    pub fn on_ended(
        &mut self,
        ended: AttemptEnded,
        core: &SchedulerCore,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Next {
        let Some(kept) = self.calls.get(&ended.call) else {
            return Next::Nothing;
        };
        let Some(failure) = ended.failure else {
            self.delivered(ended.call);
            return Next::Done;
        };
        if ended.attempt != kept.attempt {
            return Next::Nothing;
        }
        if kept.retries_left > 0 && kept.rerun_helps(&ended.function, &failure) {
            return self.rerun(ended.call, failure, core, now, rng);
        }
        match self.remove(ended.call) {
            Some(kept) => Next::Fail(kept.failed(failure)),
            None => Next::Nothing,
        }
    }

    /// The membership view changed: calls whose current attempt has a function on a node
    /// `gone` says is gone run again (or fail with `executor_lost`).
    pub fn on_view(
        &mut self,
        gone: impl Fn(&NodeRef) -> bool,
        core: &SchedulerCore,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Vec<Next> {
        let mut hit: Vec<(CallId, NodeRef)> = self
            .calls
            .iter()
            .filter_map(|(call, k)| {
                let lost = k.executors.iter().find(|e| gone(&e.node))?;
                Some((*call, lost.node.clone()))
            })
            .collect();
        hit.sort_by_key(|(call, _)| *call);
        hit.into_iter()
            .map(|(call, node)| {
                let failure = CallFailure::new(
                    ErrorCode::ExecutorLost,
                    format!("executor {} died while running the call", node.id),
                );
                let retries_left = self.calls.get(&call).map_or(0, |k| k.retries_left);
                if retries_left > 0 {
                    self.rerun(call, failure, core, now, rng)
                } else {
                    match self.remove(call) {
                        Some(kept) => {
                            let failure = CallFailure::new(
                                ErrorCode::ExecutorLost,
                                format!("{} and its re-runs are used up", failure.message),
                            );
                            Next::Fail(kept.failed(failure))
                        }
                        None => Next::Nothing,
                    }
                }
            })
            .collect()
    }

    /// Place the next attempt of `call` (which failed with `failure`); with nowhere to
    /// place it, the call fails.
    fn rerun(
        &mut self,
        call: CallId,
        failure: CallFailure,
        core: &SchedulerCore,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Next {
        let Some(kept) = self.calls.get_mut(&call) else {
            return Next::Nothing;
        };
        let attempt = kept.attempt + 1;
        let placed = core.schedules(&kept.plan, &kept.req, attempt, Some(&self.me), now, rng);
        let schedules = match placed {
            Ok(s) => s,
            Err(FunctionError::NoExecutors) if self.hold_reruns => {
                let stop = Stop {
                    before: attempt,
                    ..kept.stop()
                };
                kept.executors.clear();
                kept.home = None;
                self.waiting.insert(call, failure);
                return Next::Wait { call, stop };
            }
            Err(e) => {
                let why = format!("{}; it cannot run again: {e}", failure.message);
                return match self.remove(call) {
                    Some(kept) => Next::Fail(kept.failed(CallFailure::new(failure.code, why))),
                    None => Next::Nothing,
                };
            }
        };
        let stop = Stop {
            before: attempt,
            ..kept.stop()
        };
        kept.attempt = attempt;
        kept.retries_left -= 1;
        kept.executors = executors_of(&schedules);
        kept.home = schedules.first().and_then(|(_, s)| s.home.clone());
        Next::Rerun {
            call,
            attempt,
            schedules,
            stop,
        }
    }

    /// The sink of an attempt of `call` delivered its result (any attempt: the caller's
    /// gateway takes the first): the call is forgotten. Whether it was kept.
    pub fn delivered(&mut self, call: CallId) -> bool {
        self.remove(call).is_some()
    }

    /// Stop keeping `call` (cancelled): what to stop, or `None` if it is not kept here.
    pub fn cancel(&mut self, call: CallId) -> Option<Stop> {
        self.remove(call).map(|k| k.stop())
    }

    /// Forget calls past their deadline (their callers have been answered `timeout`):
    /// what to stop of each.
    pub fn expire(&mut self, now: Instant) -> Vec<(CallId, Stop)> {
        let due: Vec<CallId> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, call)| *call)
            .collect();
        due.into_iter()
            .filter_map(|call| self.remove(call).map(|k| (call, k.stop())))
            .collect()
    }

    fn remove(&mut self, call: CallId) -> Option<Kept> {
        let kept = self.calls.remove(&call)?;
        self.waiting.remove(&call);
        self.deadlines.remove(&(kept.deadline, call));
        self.bytes -= kept.bytes;
        Some(kept)
    }
}

/// The distinct executors of some schedules.
fn executors_of(schedules: &[(ActorRef, Schedule)]) -> Vec<ActorRef> {
    let mut out: Vec<ActorRef> = Vec::with_capacity(schedules.len());
    for (e, _) in schedules {
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}

/// Bytes a kept request counts for: its arguments and a fixed overhead.
fn request_bytes(req: &CallRequest) -> usize {
    let args: usize = req
        .args
        .iter()
        .map(|(f, args)| f.len() + args.iter().map(arg_bytes).sum::<usize>())
        .sum();
    CALL_OVERHEAD_BYTES + args
}

fn arg_bytes(a: &Arg) -> usize {
    match a {
        Arg::Reference(k) => k.as_str().len(),
        Arg::Value(PyValue::Packed(b)) => b.len(),
        Arg::Value(PyValue::PackedSet(v) | PyValue::Concurrent(v)) => {
            v.iter().map(|b| b.len()).sum()
        }
    }
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
