//! The gateway's book of calls, no I/O: every call it sent to a scheduler, from then until
//! it ends, the requests waiting for it, and how each ended.
//!
//! - A call *runs* from [`CallBook::begin`] (before the scheduler is asked, so a result
//!   that comes back before the scheduler's answer is not lost) until its first outcome:
//!   the sink's result, a failure, `timeout` at its deadline ([`CallBook::sweep`]),
//!   `scheduler_lost` when its scheduler's node is gone ([`CallBook::schedulers_gone`]),
//!   or `cancelled`. The first outcome wins; a later one is a duplicate and dropped.
//! - An *ended* call is remembered, so every `await` of it answers the same: a failure
//!   with its error, a future's result with its value while it is kept (else the caller
//!   reads the stored result), a direct call only as ended (its one waiter had it) unless
//!   its id was the client's: then its value is kept too, for a request sent again.
//!   Remembered calls are bounded in number ([`MAX_ENDED`]) and in bytes of kept values
//!   and failures ([`MAX_ENDED_BYTES`]), oldest forgotten first; each records when it
//!   ended, for expiry by age.

use crate::ids::{CallId, NodeRef};
use crate::protocol::{CallFailure, ErrorCode};
use crate::pyrt::PyValue;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Ended calls remembered at most (an id and how it ended: a few dozen bytes each, plus
/// what [`MAX_ENDED_BYTES`] bounds).
pub const MAX_ENDED: usize = 65_536;
/// Bytes of results and failures kept for ended calls at most (the newest is always kept).
pub const MAX_ENDED_BYTES: usize = 128 * 1024 * 1024;
/// Until the scheduler has accepted a call without a client timeout, it may end this late
/// (the scheduler's answer replaces it with the call's own deadline; a scheduler that does
/// not answer fails the request well before).
pub const UNACCEPTED_DEADLINE: Duration = Duration::from_secs(600);

/// How a call ended, as the gateway hands it on.
pub type Outcome = Result<PyValue, CallFailure>;

struct Running {
    /// The scheduler that placed it; `None` for a call claimed from the executors after
    /// another gateway was lost (its placing scheduler is presumed gone with it).
    scheduler: Option<NodeRef>,
    deadline: Instant,
    /// A future: its result is kept for later awaits.
    keep: bool,
}

enum Ended {
    /// It succeeded: the value if kept (a future's, while room allows).
    Value(Option<PyValue>),
    Failed(CallFailure),
}

struct EndedEntry {
    how: Ended,
    bytes: usize,
    /// When it ended (what an expiry by age looks at).
    #[allow(dead_code)]
    at: Instant,
}

/// What an `await` finds.
#[derive(Debug)]
pub enum Wait {
    /// The call ended: this is how.
    Ended(Outcome),
    /// The call succeeded but its value is not kept here: read the stored result.
    Stored,
    /// The call runs: its outcome will come through this.
    Pending(oneshot::Receiver<Outcome>),
    /// This gateway does not know the call (never made here, or forgotten).
    Unknown,
}

/// What [`CallBook::finish`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Finish {
    /// The call's first outcome: handed to this many waiters. `failure` is the code and
    /// message when it failed (the one line a failed call logs).
    First {
        delivered: usize,
        failure: Option<(ErrorCode, String)>,
    },
    /// The call had ended already: dropped.
    Duplicate,
}

/// The calls of one gateway.
#[derive(Default)]
pub struct CallBook {
    running: HashMap<CallId, Running>,
    deadlines: BTreeSet<(Instant, CallId)>,
    waiting: HashMap<CallId, Vec<oneshot::Sender<Outcome>>>,
    ended: HashMap<CallId, EndedEntry>,
    /// Ended calls, oldest first.
    order: VecDeque<CallId>,
    bytes: usize,
}

impl CallBook {
    /// `call` is about to be sent to `scheduler`; it must end by `deadline`. A future
    /// (`keep`) keeps its result for later awaits. `false` if the call is known already.
    pub fn begin(
        &mut self,
        call: CallId,
        scheduler: NodeRef,
        keep: bool,
        deadline: Instant,
    ) -> bool {
        self.start(call, Some(scheduler), keep, deadline)
    }

    /// `call`, sent to another gateway that was lost, runs on in the cluster: its outcome
    /// comes here (it was claimed from the executors). `false` if the call is known already.
    pub fn adopt(&mut self, call: CallId, keep: bool, deadline: Instant) -> bool {
        self.start(call, None, keep, deadline)
    }

    fn start(
        &mut self,
        call: CallId,
        scheduler: Option<NodeRef>,
        keep: bool,
        deadline: Instant,
    ) -> bool {
        if self.running.contains_key(&call) || self.ended.contains_key(&call) {
            return false;
        }
        let running = Running {
            scheduler,
            deadline,
            keep,
        };
        self.running.insert(call, running);
        self.deadlines.insert((deadline, call));
        true
    }

    /// The scheduler accepted `call`: it ends by `deadline` (or earlier, as begun).
    pub fn accepted(&mut self, call: CallId, deadline: Instant) {
        if let Some(r) = self.running.get_mut(&call) {
            if deadline < r.deadline {
                self.deadlines.remove(&(r.deadline, call));
                r.deadline = deadline;
                self.deadlines.insert((deadline, call));
            }
        }
    }

    /// The scheduler `call` runs at, while it runs.
    pub fn scheduler_of(&self, call: CallId) -> Option<&NodeRef> {
        self.running.get(&call).and_then(|r| r.scheduler.as_ref())
    }

    /// Whether `call` runs, or ended and is still remembered.
    pub fn knows(&self, call: CallId) -> bool {
        self.running.contains_key(&call) || self.ended.contains_key(&call)
    }

    /// Forget `call` altogether: no scheduler took it, so a request with its id (a client's)
    /// may run it after all.
    pub fn forget(&mut self, call: CallId) {
        if let Some(r) = self.running.remove(&call) {
            self.deadlines.remove(&(r.deadline, call));
        }
        self.waiting.remove(&call);
        if let Some(e) = self.ended.remove(&call) {
            self.bytes -= e.bytes;
            self.order.retain(|c| *c != call);
        }
    }

    /// Whether `call` has ended (and is still remembered).
    pub fn has_ended(&self, call: CallId) -> bool {
        self.ended.contains_key(&call)
    }

    /// An await of `call`.
    pub fn wait(&mut self, call: CallId) -> Wait {
        if let Some(e) = self.ended.get(&call) {
            return match &e.how {
                Ended::Value(Some(v)) => Wait::Ended(Ok(v.clone())),
                Ended::Value(None) => Wait::Stored,
                Ended::Failed(f) => Wait::Ended(Err(f.clone())),
            };
        }
        if !self.running.contains_key(&call) {
            return Wait::Unknown;
        }
        let (tx, rx) = oneshot::channel();
        self.waiting.entry(call).or_default().push(tx);
        Wait::Pending(rx)
    }

    /// The client deleted `call`'s result: its value is no longer kept here (later awaits
    /// read where it was stored, and find it deleted).
    pub fn drop_value(&mut self, call: CallId) {
        if let Some(e) = self.ended.get_mut(&call) {
            if let Ended::Value(Some(_)) = e.how {
                e.how = Ended::Value(None);
                self.bytes -= e.bytes;
                e.bytes = 0;
            }
        }
    }

    /// A waiter of `call` gave up (timeout, closed session): drop its registration.
    pub fn give_up(&mut self, call: CallId) {
        if let Some(list) = self.waiting.get_mut(&call) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                self.waiting.remove(&call);
            }
        }
    }

    /// `call` ended with `outcome` (a result pushed by its sink, or a failure from
    /// wherever it arose). The first outcome wakes the waiters and is remembered.
    pub fn finish(&mut self, call: CallId, outcome: Outcome, now: Instant) -> Finish {
        if self.ended.contains_key(&call) {
            return Finish::Duplicate;
        }
        // A result for a call not begun here (another way in) is kept like a future's.
        let keep = match self.running.remove(&call) {
            Some(r) => {
                self.deadlines.remove(&(r.deadline, call));
                r.keep
            }
            None => true,
        };
        let mut delivered = 0;
        for tx in self.waiting.remove(&call).unwrap_or_default() {
            if tx.send(outcome.clone()).is_ok() {
                delivered += 1;
            }
        }
        let failure = outcome.as_ref().err().map(|f| (f.code, f.message.clone()));
        let how = match outcome {
            Ok(v) => Ended::Value(keep.then_some(v)),
            Err(f) => Ended::Failed(f),
        };
        self.remember(call, how, now);
        Finish::First { delivered, failure }
    }

    fn remember(&mut self, call: CallId, how: Ended, at: Instant) {
        let bytes = ended_size(&how);
        self.ended.insert(call, EndedEntry { how, bytes, at });
        self.order.push_back(call);
        self.bytes += bytes;
        while self.order.len() > 1 && (self.order.len() > MAX_ENDED || self.bytes > MAX_ENDED_BYTES)
        {
            if let Some(old) = self.order.pop_front() {
                if let Some(e) = self.ended.remove(&old) {
                    self.bytes -= e.bytes;
                }
            }
        }
    }

    /// Calls past their deadline end with `timeout`: what [`CallBook::finish`] did for each.
    pub fn sweep(&mut self, now: Instant) -> Vec<(CallId, Finish)> {
        let due: Vec<(Instant, CallId)> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .copied()
            .collect();
        due.into_iter()
            .map(|(_, call)| {
                let f = CallFailure::new(
                    ErrorCode::Timeout,
                    "the call did not finish by its deadline",
                );
                (call, self.finish(call, Err(f), now))
            })
            .collect()
    }

    /// Calls whose scheduler `gone` says is gone end with `scheduler_lost`.
    pub fn schedulers_gone(
        &mut self,
        gone: impl Fn(&NodeRef) -> bool,
        now: Instant,
    ) -> Vec<(CallId, Finish)> {
        let mut hit: Vec<(CallId, NodeRef)> = self
            .running
            .iter()
            .filter_map(|(c, r)| r.scheduler.as_ref().map(|s| (*c, s)))
            .filter(|(_, s)| gone(s))
            .map(|(c, s)| (c, s.clone()))
            .collect();
        hit.sort_by_key(|(c, _)| *c);
        hit.into_iter()
            .map(|(call, node)| {
                let f = CallFailure::new(
                    ErrorCode::SchedulerLost,
                    format!("scheduler {} died while the call ran", node.id),
                );
                (call, self.finish(call, Err(f), now))
            })
            .collect()
    }

    /// Calls running now (for tests and stats).
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Calls with registered waiters (for tests and stats).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Ended calls remembered (for tests and stats).
    pub fn remembered(&self) -> usize {
        self.ended.len()
    }
}

fn ended_size(how: &Ended) -> usize {
    match how {
        Ended::Value(None) => 0,
        Ended::Value(Some(PyValue::Packed(b))) => b.len(),
        Ended::Value(Some(PyValue::PackedSet(v) | PyValue::Concurrent(v))) => {
            v.iter().map(|b| b.len()).sum()
        }
        Ended::Failed(f) => f.message.len() + f.traceback.as_ref().map_or(0, String::len),
    }
}

#[cfg(test)]
#[path = "results_tests.rs"]
mod tests;
