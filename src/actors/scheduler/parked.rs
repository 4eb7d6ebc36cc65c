//! Calls that found no executor to run on (an idle cluster scaled to zero), held while the
//! monitor launches one (no I/O; time is passed in). A held call is placed as soon as an
//! executor reports, or fails with `no_executors` once its wait runs out.
//!
//! A call waits at most its own timeout when it has one (the rest of it is then what it
//! may run for), else the launch timeout (a launch not joined by then is replaced, and a
//! caller should hear something before that).

use super::core::{CallPlan, CallRequest};
use crate::ids::CallId;
use crate::protocol::CallOptions;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Calls held at once, at most: a burst at an idle cluster waits in memory while the first
/// executor starts; beyond this, callers are refused (`too_many_calls`) and retry.
pub const MAX_PARKED: usize = 4096;

/// One held call.
pub struct ParkedCall {
    pub plan: Arc<CallPlan>,
    pub req: CallRequest,
    pub options: CallOptions,
    pub since: Instant,
    /// It fails if no executor reported by then.
    pub until: Instant,
}

impl ParkedCall {
    /// The options to place it with at `now`: an explicit timeout loses the time waited.
    pub fn options_at(&self, now: Instant) -> CallOptions {
        let waited = now.saturating_duration_since(self.since);
        let mut options = self.options;
        if let Some(ms) = options.timeout_ms {
            let left = Duration::from_millis(ms).saturating_sub(waited);
            options.timeout_ms = Some(u64::try_from(left.as_millis()).unwrap_or(1).max(1));
        }
        options
    }
}

/// The held calls, oldest first.
#[derive(Default)]
pub struct Parked {
    calls: VecDeque<ParkedCall>,
}

impl Parked {
    /// How long a call with `options` may wait from `now`: its own timeout, else
    /// `launch_timeout`.
    pub fn wait_for(options: &CallOptions, launch_timeout: Duration) -> Duration {
        options
            .timeout_ms
            .map_or(launch_timeout, Duration::from_millis)
    }

    /// Hold `call`; `false` (and not held) when [`MAX_PARKED`] are held already.
    pub fn park(&mut self, call: ParkedCall) -> bool {
        if self.calls.len() >= MAX_PARKED {
            return false;
        }
        self.calls.push_back(call);
        true
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Stop holding `call` (its caller cancelled it); whether it was held.
    pub fn cancel(&mut self, call: CallId) -> bool {
        let before = self.calls.len();
        self.calls.retain(|c| c.req.call != call);
        self.calls.len() < before
    }

    /// Every held call, oldest first (to place them now).
    pub fn take_all(&mut self) -> Vec<ParkedCall> {
        self.calls.drain(..).collect()
    }

    /// The held calls whose wait ran out at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<ParkedCall> {
        let (gone, kept): (Vec<_>, Vec<_>) = self.calls.drain(..).partition(|c| c.until <= now);
        self.calls = kept.into();
        gone
    }

    /// The distinct functions the held calls run, sorted.
    pub fn functions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .calls
            .iter()
            .flat_map(|c| c.plan.dag.functions.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::scheduler::dag::plan;
    use crate::protocol::records::DagSpec;
    use crate::protocol::{Consistency, Reply};

    fn call(n: u64, function: &str, since: Instant, wait: Duration) -> ParkedCall {
        let spec = DagSpec {
            name: function.into(),
            functions: vec![function.into()],
            connections: vec![],
        };
        ParkedCall {
            plan: Arc::new(CallPlan {
                dag: plan(&spec).expect("valid"),
                functions: vec![],
                is_dag: false,
            }),
            req: CallRequest {
                call: CallId(n),
                args: Default::default(),
                consistency: Consistency::Lww,
                reply: Reply {
                    push_to: None,
                    store_at: None,
                },
                started_us: 0,
            },
            options: CallOptions::default(),
            since,
            until: since + wait,
        }
    }

    #[test]
    fn held_calls_expire_at_their_own_time_and_the_rest_stay_in_order() {
        let t0 = Instant::now();
        let mut p = Parked::default();
        assert!(p.park(call(1, "f", t0, Duration::from_secs(5))));
        assert!(p.park(call(2, "g", t0, Duration::from_secs(1))));
        assert!(p.park(call(3, "f", t0, Duration::from_secs(9))));
        assert_eq!(p.functions(), vec!["f".to_string(), "g".to_string()]);
        assert!(p.cancel(CallId(3)) && !p.cancel(CallId(3)));
        assert!(p.park(call(3, "f", t0, Duration::from_secs(9))));
        let gone = p.expire(t0 + Duration::from_secs(1));
        assert_eq!(
            gone.iter().map(|c| c.req.call).collect::<Vec<_>>(),
            vec![CallId(2)]
        );
        let left: Vec<CallId> = p.take_all().iter().map(|c| c.req.call).collect();
        assert_eq!(left, vec![CallId(1), CallId(3)]);
        assert!(p.is_empty());
    }

    #[test]
    fn the_hold_is_bounded_and_an_explicit_timeout_pays_for_the_wait() {
        let t0 = Instant::now();
        let mut p = Parked::default();
        for n in 0..MAX_PARKED as u64 {
            assert!(p.park(call(n, "f", t0, Duration::from_secs(1))));
        }
        assert!(!p.park(call(u64::MAX, "f", t0, Duration::from_secs(1))));
        assert_eq!(p.len(), MAX_PARKED);
        let mut c = call(1, "f", t0, Duration::from_secs(1));
        c.options.timeout_ms = Some(3_000);
        let later = c.options_at(t0 + Duration::from_millis(1_200));
        assert_eq!(later.timeout_ms, Some(1_800));
        assert_eq!(
            Parked::wait_for(&c.options, Duration::from_secs(30)),
            Duration::from_secs(3)
        );
        assert_eq!(
            Parked::wait_for(&CallOptions::default(), Duration::from_secs(30)),
            Duration::from_secs(30)
        );
    }
}
