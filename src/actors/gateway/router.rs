//! The gateway's two small actors: [`ResultRouter`] receives [`CallFinished`] from sink
//! executors (registered at `(ServiceId::Gateway, 0)`) and hands each result to whoever
//! waits for it; [`ViewWatcher`] keeps the membership view the gateway picks schedulers
//! from.

use super::core::ResultsCore;
use crate::net::membership::ViewChanged;
use crate::net::View;
use crate::protocol::CallFinished;
use actix::prelude::*;
use std::sync::{Arc, Mutex, RwLock};

/// Mailbox of the result router: results arrive one-way from every executor of the
/// cluster; this many may queue before senders see `QueueFull` (far above what the
/// executors of a node produce between two polls of this actor).
pub const ROUTER_MAILBOX: usize = 16 * 1024;

/// Shared result routing (the actor writes results, sessions register waiters).
pub type Results = Arc<Mutex<ResultsCore>>;

/// Lock the results, recovering from a poisoned lock (the core keeps no invariant a panic
/// elsewhere could break half-way).
pub fn lock(results: &Results) -> std::sync::MutexGuard<'_, ResultsCore> {
    results.lock().unwrap_or_else(|p| p.into_inner())
}

/// Receives finished calls.
pub struct ResultRouter {
    pub results: Results,
}

impl Actor for ResultRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(ROUTER_MAILBOX);
    }
}

impl Handler<CallFinished> for ResultRouter {
    type Result = ();

    fn handle(&mut self, msg: CallFinished, _: &mut Context<Self>) {
        let call = msg.call;
        let delivery = lock(&self.results).finish(call, msg.outcome);
        tracing::debug!(call = %call, delivery = ?delivery, "call finished");
    }
}

/// Keeps the latest membership view for scheduler choice.
pub struct ViewWatcher {
    pub view: Arc<RwLock<View>>,
}

impl Actor for ViewWatcher {
    type Context = Context<Self>;
}

impl Handler<ViewChanged> for ViewWatcher {
    type Result = ();

    fn handle(&mut self, msg: ViewChanged, _: &mut Context<Self>) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = msg.view;
    }
}
