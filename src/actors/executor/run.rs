//! Running one ready function and passing its result on: triggers straight to the
//! downstream executors, or, at the sink, the result to the caller (pushed and/or stored)
//! and the attempt's end to the scheduler that placed the call. A failure anywhere ends
//! the attempt: the failing executor aborts the downstream functions and tells the
//! scheduler, which runs the call again or sends the failure to the caller. A function
//! whose call was cancelled is stopped and passes nothing on.

use super::core::Ready;
use super::delivered::{Added, DELIVERED_DELAY};
use super::env::{ExecEnv, Stoppable};
use super::library::Invocation;
use super::mailbox::InvocationId;
use super::meter::{Running, SharedMeter};
use super::session::{self, Session};
use crate::clock::now_micros;
use crate::ids::Key;
use crate::protocol::{
    to_lattice, to_python, Aborted, Arg, AttemptEnded, CallFailure, CallFinished, Consistency,
    ErrorCode, Schedule, SessionMeta, Trigger, RESULT_PREFIX,
};
use crate::pyrt::{CallError, PyCall, PyValue};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Run `ready` and deliver its outcome, counted in `meter` meanwhile. A `Cancel` of its
/// attempt aborts this (see [`Stoppable`]) until the function's Python call is over.
pub async fn run(env: Arc<ExecEnv>, ready: Ready, stoppable: Stoppable, meter: Arc<SharedMeter>) {
    let span = tracing::debug_span!("function", call = %ready.schedule.call,
        function = %ready.schedule.function);
    async move {
        let Ready {
            schedule,
            inputs,
            session,
        } = ready;
        let _running = Running::start(&meter, Some(&schedule.function));
        let session = Arc::new(Session::new(env.clone(), &schedule, session));
        let outcome = execute(&env, &schedule, inputs, &session).await;
        stoppable.finishing();
        finish(&env, &schedule, outcome, Some(&session)).await;
        drop(stoppable);
    }
    .instrument(span)
    .await
}

async fn execute(
    env: &Arc<ExecEnv>,
    s: &Schedule,
    inputs: Vec<PyValue>,
    session: &Arc<Session>,
) -> Result<PyValue, CallFailure> {
    let function = env.function(&s.function, s.hash).await?;
    let upstream = inputs.len();
    let args = resolve(session, &s.args, inputs).await?;
    let id = InvocationId {
        node: env.me.node.clone(),
        call: s.call,
        function: s.function.clone(),
    }
    .to_string();
    let timeout = s
        .timeout_ms
        .map_or(env.default_timeout, Duration::from_millis);
    let lib = Arc::new(Invocation::new(env.clone(), id.clone(), session.clone()));
    let mut invoked = Invoked::open(env, s, id);
    let out = env
        .pool
        .call(
            PyCall {
                function,
                args,
                upstream,
                timeout,
                call: s.call.0,
                attempt: s.attempt,
                warm: false,
            },
            lib,
        )
        .await
        .map_err(|e| call_failure(&e));
    invoked.outcome = Some(out.as_ref().err().map(|f| f.code));
    out
}

/// One function's Python call under way: its mailbox is open, and when it is dropped (the
/// call returned, or its task was aborted by a cancel) the mailbox is closed and the
/// outcome recorded in the metrics (`cancelled` if it never came).
struct Invoked<'a> {
    env: &'a ExecEnv,
    s: &'a Schedule,
    id: String,
    started: Instant,
    /// `Some(None)`: succeeded; `Some(Some(code))`: failed.
    outcome: Option<Option<ErrorCode>>,
}

impl<'a> Invoked<'a> {
    fn open(env: &'a ExecEnv, s: &'a Schedule, id: String) -> Self {
        let started = Instant::now();
        env.mailboxes.open(&id, started);
        Invoked {
            env,
            s,
            id,
            started,
            outcome: None,
        }
    }
}

impl Drop for Invoked<'_> {
    fn drop(&mut self) {
        self.env.mailboxes.close(&self.id);
        let code = self.outcome.unwrap_or(Some(ErrorCode::Cancelled));
        crate::metrics::record_function_outcome(
            self.s.call,
            &self.s.function,
            self.started.elapsed(),
            code.map(ErrorCode::as_str),
        );
    }
}

/// The caller's arguments (references read through the cache) then the upstream results.
async fn resolve(
    session: &Session,
    args: &[Arg],
    inputs: Vec<PyValue>,
) -> Result<Vec<Option<PyValue>>, CallFailure> {
    let refs: Vec<Key> = args
        .iter()
        .filter_map(|a| match a {
            Arg::Reference(k) => Some(k.clone()),
            Arg::Value(_) => None,
        })
        .collect();
    let mut fetched = if refs.is_empty() {
        Vec::new().into_iter()
    } else {
        let values = session
            .get(&refs)
            .await
            .map_err(|e| CallFailure::new(e.code, format!("reading a referenced key: {e}")))?;
        let mut out = Vec::with_capacity(values.len());
        for (k, v) in refs.iter().zip(values) {
            out.push(
                to_python(k.as_str(), v)
                    .map_err(|m| CallFailure::new(ErrorCode::InvalidRequest, m))?,
            );
        }
        out.into_iter()
    };
    let mut resolved = Vec::with_capacity(args.len() + inputs.len());
    for a in args {
        resolved.push(match a {
            Arg::Value(v) => Some(v.clone()),
            Arg::Reference(_) => fetched.next().flatten(),
        });
    }
    resolved.extend(inputs.into_iter().map(Some));
    Ok(resolved)
}

/// Pass the outcome on: triggers downstream (with what the session saw); at the sink (or
/// on failure) the caller.
pub async fn finish(
    env: &Arc<ExecEnv>,
    s: &Schedule,
    outcome: Result<PyValue, CallFailure>,
    session: Option<&Session>,
) {
    let value = outcome.as_ref().map_err(|_| Aborted);
    let meta = match session {
        Some(session) if !s.downstream.is_empty() => session.snapshot(),
        _ => SessionMeta::default(),
    };
    session::count_sent(&meta, s.downstream.len());
    let mut lost = None;
    for d in &s.downstream {
        let t = Trigger {
            call: s.call,
            to: d.function.clone(),
            from: s.function.clone(),
            value: value.cloned(),
            session: meta.clone(),
            attempt: s.attempt,
        };
        if let Err(e) = env.transport.handle::<Trigger>(d.executor.clone()).tell(t) {
            tracing::warn!(call = %s.call, to = %d.executor, cause = %e, "trigger not sent");
            lost = Some(format!(
                "the result of `{}` could not reach `{}`: {e}",
                s.function, d.function
            ));
        }
    }
    // A successful result that cannot flow on fails the call now (the caller would wait).
    let outcome = match (outcome, lost) {
        (Ok(_), Some(why)) => Err(CallFailure::new(ErrorCode::Unavailable, why)),
        (outcome, _) => outcome,
    };
    match outcome {
        Ok(v) if s.sink => {
            reply(env, s, Ok(v), session).await;
            tell_delivered(env, s);
        }
        Ok(_) => {}
        Err(f) => fail(env, s, f, session).await,
    }
}

/// A function failed: the scheduler that placed the call decides what follows (a re-run,
/// or the failure to the caller). Without one, or when it cannot be told, the caller is
/// told at once.
async fn fail(env: &ExecEnv, s: &Schedule, f: CallFailure, session: Option<&Session>) {
    tracing::debug!(call = %s.call, attempt = s.attempt, function = %s.function,
        code = %f.code, "function failed");
    // A claimed call's placement is presumed lost with its gateway: the claimant hears.
    if env.claims.claimant(s.call).is_none() && tell_failure(env, s, f.clone()) {
        session::release(env, s.consistency, s.session(), s.home.as_ref());
        return;
    }
    reply(env, s, Err(f), session).await
}

/// Tell the scheduler that placed the call this attempt failed; whether it was told.
fn tell_failure(env: &ExecEnv, s: &Schedule, failure: CallFailure) -> bool {
    tell_ended(env, s, Some(failure))
}

/// Tell the scheduler that placed the call (if any) this attempt ended; whether it was told.
fn tell_ended(env: &ExecEnv, s: &Schedule, failure: Option<CallFailure>) -> bool {
    let Some(scheduler) = &s.scheduler else {
        return false;
    };
    let msg = AttemptEnded {
        call: s.call,
        attempt: s.attempt,
        function: s.function.clone(),
        failure,
    };
    match env
        .transport
        .handle::<AttemptEnded>(scheduler.clone())
        .tell(msg)
    {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(call = %s.call, scheduler = %scheduler, cause = %e,
                "the scheduler was not told the attempt ended");
            false
        }
    }
}

/// Tell the scheduler that placed the call (if any) its sink delivered: one of this node
/// with the other deliveries of the next [`DELIVERED_DELAY`], one of another node at once
/// (see `delivered.rs`).
fn tell_delivered(env: &Arc<ExecEnv>, s: &Schedule) {
    let Some(scheduler) = &s.scheduler else {
        return;
    };
    if scheduler.node != env.me.node {
        tell_ended(env, s, None);
        return;
    }
    match env.delivered.add(scheduler, s.call, s.attempt) {
        Added::Waits => {}
        Added::Full => env.delivered.flush(&env.transport),
        Added::First => {
            let env = env.clone();
            actix::spawn(async move {
                tokio::time::sleep(DELIVERED_DELAY).await;
                env.delivered.flush(&env.transport);
            });
        }
    }
}

/// An upstream failed: tell the downstream functions, run nothing.
pub fn abort(env: &ExecEnv, s: &Schedule) {
    for d in &s.downstream {
        let t = Trigger {
            call: s.call,
            to: d.function.clone(),
            from: s.function.clone(),
            value: Err(Aborted),
            session: SessionMeta::default(),
            attempt: s.attempt,
        };
        let _ = env.transport.handle::<Trigger>(d.executor.clone()).tell(t);
    }
}

/// Deliver the call's outcome as `s.reply` asks. A result stored under a key the caller
/// named (`output_key`) is stored before it is pushed, so a caller told of it can read the
/// key at once; under the default result key (`__cloudburst/results/<call>`, read only by
/// futures that missed the push) the waiting caller is answered first. A failure is only
/// pushed. A causal call stores its result under a named key as a causal write carrying the
/// session's dependencies. The attempt is over: its repeatable-read pins are released.
/// The outcome is held here a while, for a gateway claiming the call should the caller's
/// be lost; a call claimed already goes to the claimant (see `claims.rs`).
pub async fn reply(
    env: &ExecEnv,
    s: &Schedule,
    outcome: Result<PyValue, CallFailure>,
    session: Option<&Session>,
) {
    if let Some(dag) = &s.dag {
        let took = Duration::from_micros(now_micros().saturating_sub(s.started_us));
        let code = outcome.as_ref().err().map(|f| f.code.as_str());
        crate::metrics::record_dag_outcome(s.call, dag, took, code);
    }
    if let Err(f) = &outcome {
        // The caller's gateway logs the one line of a failed call.
        tracing::debug!(call = %s.call, function = %s.function, code = %f.code, reason = %f.message, "call failed");
    }
    session::release(env, s.consistency, s.session(), s.home.as_ref());
    let store = match (&outcome, &s.reply.store_at) {
        (Ok(v), Some(key)) => Some((key.clone(), v.clone())),
        _ => None,
    };
    let push_first = store
        .as_ref()
        .is_some_and(|(key, _)| key.as_str().starts_with(RESULT_PREFIX));
    if !push_first {
        store_result(env, s, session, store.clone()).await;
    }
    let claimant = env.claims.deliver(s.call, &outcome, Instant::now());
    if let Some(to) = claimant.as_ref().or(s.reply.push_to.as_ref()) {
        let msg = CallFinished {
            call: s.call,
            outcome,
        };
        if let Err(e) = env.transport.handle::<CallFinished>(to.clone()).tell(msg) {
            tracing::warn!(call = %s.call, to = %to, cause = %e, "result not delivered");
        }
    }
    if push_first {
        store_result(env, s, session, store).await;
    }
}

async fn store_result(
    env: &ExecEnv,
    s: &Schedule,
    session: Option<&Session>,
    store: Option<(Key, PyValue)>,
) {
    let Some((key, value)) = store else { return };
    let stored = match session {
        Some(session)
            if session.mode() == Consistency::Causal
                && !key.as_str().starts_with(RESULT_PREFIX) =>
        {
            session
                .put(key.clone(), value)
                .await
                .map_err(|e| e.to_string())
        }
        _ => {
            let v = to_lattice(value, &env.clock);
            env.cache
                .put(key.clone(), v)
                .await
                .map_err(|e| e.to_string())
        }
    };
    if let Err(e) = stored {
        tracing::warn!(call = %s.call, key = %key, cause = %e, "cannot store the result");
    }
}

/// How a pool error reaches the caller: a raised exception keeps its type and traceback.
pub fn call_failure(e: &CallError) -> CallFailure {
    match e {
        CallError::Exception {
            type_name,
            message,
            traceback,
        } => CallFailure {
            code: e.code(),
            message: message.clone(),
            exception_type: Some(type_name.clone()),
            traceback: Some(traceback.clone()),
        },
        _ => CallFailure::new(e.code(), e.to_string()),
    }
}
