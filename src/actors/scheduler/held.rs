//! The scheduler's side of scale from zero: a call that finds no executor while a monitor
//! is live is held ([`super::parked`]), the monitors are told calls wait (at once for the
//! first, then every expiry tick while any does, and once more when none does), and the
//! held calls are placed when an executor reports or failed when their wait runs out.
//! Calls whose re-run found no executor (kept in the call table) wait the same way.

use super::calls::{Failed, Stop};
use super::core::{CallPlan, CallRequest};
use super::parked::{Parked, ParkedCall};
use super::Scheduler;
use crate::protocol::{CallAccepted, CallFailure, CallOptions, ExecutorsWanted, FunctionError};
use std::sync::Arc;
use std::time::Instant;

impl Scheduler {
    /// Hold a call that found no executor while a monitor launches one.
    pub(super) fn park(
        &mut self,
        plan: Arc<CallPlan>,
        req: CallRequest,
        options: CallOptions,
        now: Instant,
    ) -> Result<CallAccepted, FunctionError> {
        let wait = Parked::wait_for(&options, self.launch_timeout);
        let deadline = match options.timeout_ms {
            Some(_) => wait,
            None => {
                let registered = plan.functions.iter().map(|f| f.retries).min();
                let retries = options.retries.or(registered).unwrap_or(0);
                wait + self.calls.budget(&plan, retries)
            }
        };
        let call = req.call;
        let held = ParkedCall {
            plan,
            req,
            options,
            since: now,
            until: now + wait,
        };
        if !self.parked.park(held) {
            return Err(FunctionError::TooManyCalls(format!(
                "{} calls wait for an executor to start (the limit)",
                self.parked.len()
            )));
        }
        tracing::debug!(call = %call, "no executor runs: the call waits while a monitor launches one");
        if self.parked.len() == 1 {
            self.want_executors();
        }
        Ok(CallAccepted {
            call,
            deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Tell the monitors how many calls wait for an executor (0 once none does).
    pub(super) fn want_executors(&mut self) {
        let waiting = self.parked.len() + self.calls.waiting();
        let mut functions = self.parked.functions();
        if self.calls.waiting() > 0 {
            functions.extend(self.calls.waiting_functions().cloned());
            functions.sort();
            functions.dedup();
        }
        let msg = ExecutorsWanted {
            scheduler: self.transport.local_node().clone(),
            calls: u32::try_from(waiting).unwrap_or(u32::MAX),
            functions,
        };
        for m in &self.monitors {
            let h = self.transport.handle::<ExecutorsWanted>(m.clone());
            if let Err(e) = h.tell(msg.clone()) {
                tracing::debug!(monitor = %m, cause = %e, "executors wanted: not sent");
            }
        }
        self.told_monitors = waiting > 0;
    }

    /// Place the held calls (an executor reported), or fail those whose wait ran out.
    pub(super) fn unpark(&mut self, expired_only: bool) {
        let now = Instant::now();
        let calls = if expired_only {
            self.parked.expire(now)
        } else {
            self.parked.take_all()
        };
        for c in calls {
            let (call, reply) = (c.req.call, c.req.reply.clone());
            let (dag, started_us) = (
                c.plan.is_dag.then(|| c.plan.dag.name.clone()),
                c.req.started_us,
            );
            let outcome = if expired_only {
                let waited = now.saturating_duration_since(c.since);
                Err(FunctionError::Unavailable(format!(
                    "no executor started within {waited:?} (the call's wait)"
                )))
            } else {
                let options = c.options_at(now);
                self.dispatch(c.plan, c.req, options).map(|_| ())
            };
            if let Err(e) = outcome {
                let failure = CallFailure::new(e.code(), e.to_string());
                self.fail(Failed {
                    call,
                    reply,
                    failure,
                    dag,
                    started_us,
                    stop: Stop::default(),
                });
            }
        }
        if !self.parked.is_empty() || self.calls.waiting() > 0 || self.told_monitors {
            self.want_executors();
        }
    }
}
