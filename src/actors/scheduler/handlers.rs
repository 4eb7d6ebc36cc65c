//! The scheduler's actix handlers: unpack a message, check it, call the core or the
//! registry, update the plan cache. A registration or deletion is stored, then announced
//! to every scheduler (this one included), then acknowledged.

use super::dag::plan;
use super::{
    lookup, meta_of, registry, request, GetExecutors, HeldCalls, HoldersOf, PlanKey, Scheduler,
    EXPIRY_INTERVAL, MAILBOX_CAPACITY,
};
use crate::config::Role;
use crate::net::membership::{MemberState, ViewChanged};
use crate::net::{ActorRef, NetError, ServiceId, Transport};
use crate::protocol::{
    AttemptEnded, AttemptsDelivered, CacheKeysReport, CallAccepted, CallDag, CallFunction,
    CancelCall, DeleteDag, DeleteFunction, ExecutorStatus, FunctionError, List, Listing,
    LookupRegistration, RegisterDag, RegisterFunction, RegistryChange, RegistryChanged,
};
use crate::pyrt::probe::EMBEDDED_PYTHON;
use actix::prelude::*;
use std::collections::BTreeSet;
use std::time::Instant;

type Reply<T> = ResponseActFuture<Scheduler, Result<T, FunctionError>>;

/// Deliver the scheduler's wire messages to `addr`.
pub(super) fn register(t: &Transport, addr: &Addr<Scheduler>) -> Result<(), NetError> {
    t.register::<RegisterFunction>(0, addr.clone().recipient())?;
    t.register::<RegisterDag>(0, addr.clone().recipient())?;
    t.register::<DeleteDag>(0, addr.clone().recipient())?;
    t.register::<DeleteFunction>(0, addr.clone().recipient())?;
    t.register::<List>(0, addr.clone().recipient())?;
    t.register::<CallDag>(0, addr.clone().recipient())?;
    t.register::<CallFunction>(0, addr.clone().recipient())?;
    t.register::<ExecutorStatus>(0, addr.clone().recipient())?;
    t.register::<AttemptEnded>(0, addr.clone().recipient())?;
    t.register::<AttemptsDelivered>(0, addr.clone().recipient())?;
    t.register::<CancelCall>(0, addr.clone().recipient())?;
    t.register::<CacheKeysReport>(0, addr.clone().recipient())?;
    t.register::<RegistryChanged>(0, addr.clone().recipient())?;
    t.register::<LookupRegistration>(0, addr.clone().recipient())
}

fn done<T: 'static>(r: Result<T, FunctionError>) -> Reply<T> {
    Box::pin(fut::ready(r))
}

/// Once `stored` (a registry write) succeeded, announce its change to every scheduler and
/// answer `()` when they took it; a failed write is answered at once.
fn stored_then_announced<F>(act: &mut Scheduler, stored: F) -> Reply<()>
where
    F: std::future::Future<Output = Result<RegistryChange, FunctionError>> + 'static,
{
    Box::pin(stored.into_actor(act).then(|res, act, _| {
        let announced = res.map(|change| act.announce(change));
        fut::wrap_future(async move {
            announced?.await;
            Ok(())
        })
    }))
}

impl Actor for Scheduler {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(EXPIRY_INTERVAL, |act, _| {
            for (call, stop) in act.calls.expire(Instant::now()) {
                tracing::debug!(call = %call, "call past its deadline forgotten");
                act.stop(call, stop);
            }
            act.unpark(true);
        });
    }
}

impl Handler<RegisterFunction> for Scheduler {
    type Result = Reply<()>;
    fn handle(&mut self, msg: RegisterFunction, _: &mut Context<Self>) -> Self::Result {
        let r = msg.record;
        // With a monitor, an executor will be launched: the Python the workers embed (this
        // build's) is known, the rest is checked when one reports.
        let embedded = (!self.monitors.is_empty()).then_some(EMBEDDED_PYTHON);
        if let Err(e) = r.check().and_then(|_| {
            self.core.check_environment(
                &r.name,
                &r.python,
                &r.cloudpickle,
                embedded,
                Instant::now(),
            )
        }) {
            return done(Err(e));
        }
        let (kvs, clock) = (self.kvs.clone(), self.clock.clone());
        let stored = async move {
            registry::store_function(&kvs, &clock, &r).await?;
            Ok(RegistryChange::Function {
                meta: meta_of(&r),
                name: r.name,
            })
        };
        stored_then_announced(self, stored)
    }
}

impl Handler<RegisterDag> for Scheduler {
    type Result = Reply<()>;
    fn handle(&mut self, msg: RegisterDag, _: &mut Context<Self>) -> Self::Result {
        let dag = match plan(&msg.spec) {
            Ok(d) => d,
            Err(e) => return done(Err(e)),
        };
        let (kvs, clock, peers) = (self.kvs.clone(), self.clock.clone(), self.lookup_peers());
        let spec = msg.spec;
        let stored = async move {
            let functions = lookup::metas_or_ask(&kvs, &dag.functions, &peers).await?;
            registry::store_dag(&kvs, &clock, &spec).await?;
            Ok(RegistryChange::Dag { spec, functions })
        };
        stored_then_announced(self, stored)
    }
}

impl Handler<DeleteDag> for Scheduler {
    type Result = Reply<()>;
    fn handle(&mut self, msg: DeleteDag, _: &mut Context<Self>) -> Self::Result {
        let (kvs, clock) = (self.kvs.clone(), self.clock.clone());
        let stored = async move {
            registry::delete_dag(&kvs, &clock, &msg.name).await?;
            Ok(RegistryChange::DagDeleted { name: msg.name })
        };
        stored_then_announced(self, stored)
    }
}

impl Handler<DeleteFunction> for Scheduler {
    type Result = Reply<()>;
    fn handle(&mut self, msg: DeleteFunction, _: &mut Context<Self>) -> Self::Result {
        let (kvs, clock) = (self.kvs.clone(), self.clock.clone());
        let stored = async move {
            registry::delete_function(&kvs, &clock, &msg.name).await?;
            Ok(RegistryChange::FunctionDeleted { name: msg.name })
        };
        stored_then_announced(self, stored)
    }
}

impl Handler<RegistryChanged> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: RegistryChanged, _: &mut Context<Self>) {
        tracing::debug!(change = ?msg.change, "registry change announced");
        self.plans.apply(&msg.change, Instant::now());
    }
}

impl Handler<LookupRegistration> for Scheduler {
    type Result = ResponseFuture<Option<RegistryChange>>;
    fn handle(&mut self, msg: LookupRegistration, _: &mut Context<Self>) -> Self::Result {
        let cached = match msg.what {
            Listing::Functions => self
                .plans
                .get(&PlanKey::Function(msg.name.clone()), Instant::now()),
            Listing::Dags => None,
        };
        let kvs = self.kvs.clone();
        Box::pin(async move { lookup::answer(&kvs, cached, msg).await })
    }
}

impl Handler<List> for Scheduler {
    type Result = ResponseFuture<Result<Vec<String>, FunctionError>>;
    fn handle(&mut self, msg: List, _: &mut Context<Self>) -> Self::Result {
        let kvs = self.kvs.clone();
        Box::pin(async move { registry::list(&kvs, msg.what, &msg.prefix).await })
    }
}

impl Handler<CallDag> for Scheduler {
    type Result = Reply<CallAccepted>;
    fn handle(&mut self, msg: CallDag, _: &mut Context<Self>) -> Self::Result {
        if let Err(e) = msg.options.check() {
            return done(Err(e));
        }
        let req = request(msg.call, msg.args, msg.consistency, msg.reply);
        self.call(PlanKey::Dag(msg.dag), req, msg.options)
    }
}

impl Handler<CallFunction> for Scheduler {
    type Result = Reply<CallAccepted>;
    fn handle(&mut self, msg: CallFunction, _: &mut Context<Self>) -> Self::Result {
        if let Err(e) = msg.options.check() {
            return done(Err(e));
        }
        let args = [(msg.function.clone(), msg.args)].into_iter().collect();
        let req = request(msg.call, args, msg.consistency, msg.reply);
        self.call(PlanKey::Function(msg.function), req, msg.options)
    }
}

impl Handler<AttemptEnded> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: AttemptEnded, _: &mut Context<Self>) {
        let next = self
            .calls
            .on_ended(msg, &self.core, Instant::now(), &mut self.rng);
        self.act(next);
    }
}

impl Handler<AttemptsDelivered> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: AttemptsDelivered, _: &mut Context<Self>) {
        for (call, _) in msg.attempts {
            self.calls.delivered(call);
        }
    }
}

impl Handler<CancelCall> for Scheduler {
    type Result = bool;
    fn handle(&mut self, msg: CancelCall, _: &mut Context<Self>) -> bool {
        match self.calls.cancel(msg.call) {
            Some(stop) => {
                tracing::debug!(call = %msg.call, "call cancelled");
                self.stop(msg.call, stop);
                true
            }
            // A call held for want of an executor is dropped (nothing ran it).
            None => self.parked.cancel(msg.call),
        }
    }
}

impl Handler<ExecutorStatus> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: ExecutorStatus, _: &mut Context<Self>) {
        for m in self.core.on_status(msg, Instant::now()) {
            tracing::error!(function = %m.function,
                registered = %format!("python {} cloudpickle {}", m.registered.0, m.registered.1),
                executor = %format!("python {} cloudpickle {}", m.executor.0, m.executor.1),
                "a function registered while no executor ran was pickled on versions the executors do not run; register it again from a matching client");
        }
        let now = Instant::now();
        if self.calls.waiting() > 0 && self.core.any_executor(now) {
            for next in self.calls.place_waiting(&self.core, now, &mut self.rng) {
                self.act(next);
            }
        }
        if !self.parked.is_empty() && self.core.any_executor(now) {
            self.unpark(false);
        }
    }
}

impl Handler<CacheKeysReport> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: CacheKeysReport, _: &mut Context<Self>) {
        self.core.on_cache_keys(msg.node, msg.keys);
    }
}

impl Handler<ViewChanged> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: ViewChanged, _: &mut Context<Self>) {
        let view = msg.view;
        let me = &self.transport.local_node().id;
        self.peers = view.live_schedulers();
        self.peers.retain(|s| &s.node.id != me);
        self.monitors = view
            .serving_with_role(Role::Monitor)
            .map(|m| ActorRef::new(m.node.clone(), ServiceId::Monitor, 0))
            .collect();
        self.calls.hold_reruns(!self.monitors.is_empty());
        let live: BTreeSet<_> = view
            .live_with_role(Role::Executor)
            .map(|m| m.node.clone())
            .collect();
        // No new placement on a draining node, nor on a suspect one (it may be frozen).
        let draining = live
            .iter()
            .filter(|n| {
                view.get(&n.id)
                    .is_some_and(|m| m.draining || m.state == MemberState::Suspect)
            })
            .map(|n| n.id.clone())
            .collect();
        self.core.set_live(live);
        self.core.set_draining(draining);
        let now = Instant::now();
        let gone = |n: &crate::ids::NodeRef| view.is_gone(n);
        for next in self.calls.on_view(gone, &self.core, now, &mut self.rng) {
            self.act(next);
        }
    }
}

impl Handler<GetExecutors> for Scheduler {
    type Result = MessageResult<GetExecutors>;
    fn handle(&mut self, _: GetExecutors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.executors(Instant::now()))
    }
}

impl Handler<HeldCalls> for Scheduler {
    type Result = usize;
    fn handle(&mut self, _: HeldCalls, _: &mut Context<Self>) -> usize {
        self.calls.len() + self.parked.len()
    }
}

impl Handler<HoldersOf> for Scheduler {
    type Result = MessageResult<HoldersOf>;
    fn handle(&mut self, msg: HoldersOf, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.holders_of(&msg.0))
    }
}
