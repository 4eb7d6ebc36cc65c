//! The gateway's two small actors: [`ResultRouter`] receives [`CallFinished`] from sink
//! executors and schedulers (registered at `(ServiceId::Gateway, 0)`), hands each result
//! to whoever waits for it and ends calls past their deadline; [`ViewWatcher`] keeps the
//! membership view the gateway picks schedulers from, and ends the calls of schedulers
//! that died. Every call's end goes through [`settle`]: a failed call is one `warn!` line
//! and one count in the error metrics.

use super::results::{CallBook, Finish, Outcome};
use crate::ids::CallId;
use crate::net::membership::ViewChanged;
use crate::net::View;
use crate::protocol::CallFinished;
use actix::prelude::*;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Mailbox of the result router: results arrive one-way from every executor of the
/// cluster; this many may queue before senders see `QueueFull` (far above what the
/// executors of a node produce between two polls of this actor).
pub const ROUTER_MAILBOX: usize = 16 * 1024;
/// How often calls past their deadline are ended with `timeout`: how late after its
/// deadline a call may answer.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// The gateway's calls (the router and the watcher end them, sessions begin and await).
pub type Results = Arc<Mutex<CallBook>>;

/// Lock the results, recovering from a poisoned lock (the book keeps no invariant a panic
/// elsewhere could break half-way).
pub fn lock(results: &Results) -> std::sync::MutexGuard<'_, CallBook> {
    results.lock().unwrap_or_else(|p| p.into_inner())
}

/// End `call` with `outcome` unless it ended already; whether this was its first outcome.
pub fn settle(results: &Results, call: CallId, outcome: Outcome) -> bool {
    let finish = lock(results).finish(call, outcome, Instant::now());
    report(call, &finish);
    matches!(finish, Finish::First { .. })
}

/// The one line (and count) of a failed call.
fn report(call: CallId, finish: &Finish) {
    if let Finish::First {
        failure: Some((code, message)),
        ..
    } = finish
    {
        tracing::warn!(call = %call, code = %code, reason = %message, "call failed");
        crate::metrics::global().record_failure(code.as_str());
    }
}

/// Receives finished calls; ends those past their deadline.
pub struct ResultRouter {
    pub results: Results,
}

impl Actor for ResultRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(ROUTER_MAILBOX);
        ctx.run_interval(SWEEP_INTERVAL, |act, _| {
            let ended = lock(&act.results).sweep(Instant::now());
            for (call, finish) in &ended {
                report(*call, finish);
            }
        });
    }
}

impl Handler<CallFinished> for ResultRouter {
    type Result = ();

    fn handle(&mut self, msg: CallFinished, _: &mut Context<Self>) {
        let call = msg.call;
        let finish = lock(&self.results).finish(call, msg.outcome, Instant::now());
        if finish == Finish::Duplicate {
            crate::metrics::global().record_duplicate();
            tracing::debug!(call = %call, "a second result of an ended call dropped");
        }
        report(call, &finish);
    }
}

/// Keeps the latest membership view for scheduler choice; ends the calls of schedulers
/// the view says are gone.
pub struct ViewWatcher {
    pub view: Arc<RwLock<View>>,
    pub results: Results,
}

impl Actor for ViewWatcher {
    type Context = Context<Self>;
}

impl Handler<ViewChanged> for ViewWatcher {
    type Result = ();

    fn handle(&mut self, msg: ViewChanged, _: &mut Context<Self>) {
        let view = msg.view;
        let ended = lock(&self.results).schedulers_gone(|n| view.is_gone(n), Instant::now());
        for (call, finish) in &ended {
            report(*call, finish);
        }
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = view;
    }
}
