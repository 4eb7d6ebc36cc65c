//! The scheduler: function and DAG registry (persisted in the KVS) and call placement.
//!
//! One actor per scheduler node (`ServiceId::Scheduler`, instance 0). It handles the
//! function plane's requests ([`crate::protocol::requests`]); a call is placed function by function
//! ([`core`]) and each chosen executor gets its part of the schedule; sources run on
//! arrival, results then flow executor to executor, never back through here. The scheduler
//! keeps every call it placed until it hears the call ended ([`calls`]): an executor that
//! dies under it, or a failure a re-run can mend, makes it run the call again.
//!
//! Call plans are cached ([`plans`]): a registration or deletion is stored in the KVS, then
//! announced to every live scheduler, and only then acknowledged, so no call reads the
//! registry from the KVS while its plan is cached and none calls an old registration.
//!
//! - `core.rs`: executors, version check, placement, schedules (no I/O).
//! - `calls.rs`: the calls placed and kept until they end; re-runs (no I/O).
//! - `dag.rs`: DAG and name validation (no I/O).
//! - `plans.rs`: the plan cache, single-flight loads, registry changes (no I/O).
//! - `parked.rs`: calls held while no executor runs and a monitor launches one (no I/O);
//!   `held.rs`: holding them, telling the monitors, placing or failing them.
//! - `registry.rs`: functions and DAGs in the KVS.
//! - `lookup.rs`: a name the KVS does not know is asked of the other schedulers before it
//!   is answered unknown (one that joined after a registration was not told of it).
//! - `handlers.rs`: the actix handlers.

pub mod calls;
pub mod core;
pub mod dag;
mod handlers;
mod held;
pub mod lookup;
pub mod parked;
pub mod plans;
pub mod registry;

use self::calls::{CallTable, Failed, Next, Stop, TableConfig, MAX_CALLS, MAX_CALL_BYTES};
use self::core::{CallPlan, CallRequest, FunctionMeta, SchedulerCore};
use self::dag::{plan, DagPlan};
use self::parked::Parked;
use self::plans::{PlanCache, PlanKey};
use crate::actors::kvs::KvsClient;
use crate::clock::{node_clock, now_micros, LwwClock};
use crate::config::Config;
use crate::net::membership::{Membership, Subscribe};
use crate::net::{ActorRef, NetError, ServiceId, Transport};
use crate::protocol::records::{function_hash, DEFAULT_RETRIES};
use crate::protocol::{
    Arg, AttemptEnded, CallAccepted, CallFailure, CallFinished, CallOptions, Cancel, Consistency,
    FunctionError, FunctionRecord, LookupRegistration, RegistryChange, RegistryChanged,
    ReleaseSession, Reply, Schedule,
};
use actix::prelude::*;
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a registration waits for each other scheduler to take its announcement. One
/// that does not answer in time (frozen, cut off) may call the old registration until its
/// cache entry is refreshed (`plans::REGISTRY_REFRESH`); dead ones fail at once.
pub const REGISTRY_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(1);
/// A status older than this (several missed reports) makes an executor unplaceable.
pub const EXECUTOR_STALE_AFTER: Duration = Duration::from_secs(3);
/// Mailbox of the scheduler actor: calls and registrations from every gateway, status and
/// cache reports and the end of every call's attempt from every executor node.
pub const MAILBOX_CAPACITY: usize = 4096;
/// How often kept calls past their deadline are forgotten (and their functions stopped).
pub const EXPIRY_INTERVAL: Duration = Duration::from_millis(250);

/// Local query: the executors this scheduler can place on now (tests, the harness, the
/// dashboard).
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "Vec<crate::protocol::ExecutorStatus>")]
pub struct GetExecutors;

/// Local: which nodes' caches hold a key, as their last reports say (tests, dashboard).
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "Vec<crate::ids::NodeId>")]
pub struct HoldersOf(pub crate::ids::Key);

/// Local: how many calls this scheduler keeps (placed and not ended yet); a drain waits
/// for none to be left.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "usize")]
pub struct HeldCalls;

/// The scheduler actor.
pub struct Scheduler {
    core: SchedulerCore,
    calls: CallTable,
    kvs: KvsClient,
    clock: Arc<LwwClock>,
    transport: Transport,
    plans: PlanCache,
    /// The other live schedulers, as the membership view says: registry changes are
    /// announced to them.
    peers: Vec<ActorRef>,
    rng: StdRng,
    /// The live monitors: with one, a call that finds no executor waits ([`Parked`])
    /// while it launches one; without, it fails with `no_executors`.
    monitors: Vec<ActorRef>,
    parked: Parked,
    /// How long a held call without a timeout of its own waits for an executor.
    launch_timeout: Duration,
    /// The monitors were told calls wait (and are told when none does any more).
    told_monitors: bool,
}

impl Scheduler {
    /// Start the actor, register its messages and subscribe it to the membership view.
    pub fn start(
        transport: &Transport,
        membership: &Addr<Membership>,
        kvs: KvsClient,
        cfg: &Config,
    ) -> Result<Addr<Scheduler>, NetError> {
        let me = ActorRef::new(transport.local_node().clone(), ServiceId::Scheduler, 0);
        let table = TableConfig {
            max_calls: MAX_CALLS,
            max_bytes: MAX_CALL_BYTES,
            default_timeout: Duration::from_millis(cfg.executor.function_timeout_ms),
            dead_after: Duration::from_millis(cfg.membership.dead_after_ms),
        };
        let addr = Scheduler {
            core: SchedulerCore::new(cfg.executor.utilisation_threshold, EXECUTOR_STALE_AFTER),
            calls: CallTable::new(me, table),
            kvs,
            clock: node_clock(transport.local_node()),
            transport: transport.clone(),
            plans: PlanCache::default(),
            peers: Vec::new(),
            rng: StdRng::from_entropy(),
            monitors: Vec::new(),
            parked: Parked::default(),
            launch_timeout: cfg.autoscale.launch_timeout(),
            told_monitors: false,
        }
        .start();
        handlers::register(transport, &addr)?;
        membership.do_send(Subscribe(addr.clone().recipient()));
        Ok(addr)
    }

    /// Apply a registry change this scheduler stored, and announce it to the other
    /// schedulers; the future ends when each took it or its wait ran out.
    fn announce(&mut self, change: RegistryChange) -> impl std::future::Future<Output = ()> {
        self.plans.apply(&change, Instant::now());
        let sends: Vec<_> = self
            .peers
            .iter()
            .map(|peer| {
                let h = self.transport.handle::<RegistryChanged>(peer.clone());
                let (msg, peer) = (RegistryChanged { change: change.clone() }, peer.clone());
                async move {
                    if let Err(e) = h.send_timeout(msg, REGISTRY_ANNOUNCE_TIMEOUT).await {
                        tracing::warn!(scheduler = %peer, cause = %e, "registry change not announced");
                    }
                }
            })
            .collect();
        futures::future::join_all(sends).map(|_| ())
    }

    /// The other live schedulers, to ask about a name the KVS does not know.
    fn lookup_peers(&self) -> lookup::Peers {
        self.peers
            .iter()
            .map(|p| self.transport.handle::<LookupRegistration>(p.clone()))
            .collect()
    }

    /// Place a call, keep it, and send every executor its schedule.
    fn dispatch(
        &mut self,
        plan: Arc<CallPlan>,
        req: CallRequest,
        options: CallOptions,
    ) -> Result<CallAccepted, FunctionError> {
        let call = req.call;
        let now = Instant::now();
        if !self.monitors.is_empty() && !self.core.any_executor(now) {
            return self.park(plan, req, options, now);
        }
        let (timeout, schedules) =
            self.calls
                .start(&self.core, plan, req, options, now, &mut self.rng)?;
        if let Err(e) = self.send_schedules(schedules) {
            // As a failure of the first attempt: run again elsewhere while re-runs are
            // left, else the caller is answered with the error.
            let ended = AttemptEnded {
                call,
                attempt: 0,
                function: String::new(),
                failure: Some(CallFailure::new(e.code(), e.to_string())),
            };
            match self.calls.on_ended(ended, &self.core, now, &mut self.rng) {
                next @ (Next::Rerun { .. } | Next::Wait { .. }) => self.act(next),
                Next::Fail(failed) => {
                    self.stop(call, failed.stop);
                    return Err(e);
                }
                Next::Nothing | Next::Done => return Err(e),
            }
        }
        Ok(CallAccepted {
            call,
            deadline_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Send every executor its schedule (sources last, so the others usually hold theirs
    /// before the first trigger arrives).
    fn send_schedules(&self, schedules: Vec<(ActorRef, Schedule)>) -> Result<(), FunctionError> {
        let (sources, others): (Vec<_>, Vec<_>) = schedules
            .into_iter()
            .partition(|(_, s)| s.upstream.is_empty());
        for (executor, s) in others.into_iter().chain(sources) {
            tracing::debug!(call = %s.call, attempt = s.attempt, function = %s.function,
                executor = %executor, "placed");
            self.transport
                .handle::<Schedule>(executor.clone())
                .tell(s)
                .map_err(|e| FunctionError::Unavailable(format!("{executor}: {e}")))?;
        }
        Ok(())
    }

    /// Carry out what the call table decided.
    fn act(&mut self, next: Next) {
        match next {
            Next::Nothing | Next::Done => {}
            Next::Rerun {
                call,
                attempt,
                schedules,
                stop,
            } => {
                tracing::info!(call = %call, attempt, "running the call again");
                self.stop(call, stop);
                if let Err(e) = self.send_schedules(schedules) {
                    // As if the new attempt had failed at once: the table re-runs it again
                    // (while re-runs are left) or fails the call.
                    let ended = AttemptEnded {
                        call,
                        attempt,
                        function: String::new(),
                        failure: Some(CallFailure::new(e.code(), e.to_string())),
                    };
                    let next =
                        self.calls
                            .on_ended(ended, &self.core, Instant::now(), &mut self.rng);
                    self.act(next);
                }
            }
            Next::Fail(failed) => self.fail(failed),
            Next::Wait { call, stop } => {
                tracing::info!(call = %call, "no executor to run the call again: it waits for one");
                self.stop(call, stop);
                if !self.told_monitors {
                    self.want_executors();
                }
            }
        }
    }

    /// Tell the caller a call failed for good.
    fn fail(&mut self, f: Failed) {
        let Failed {
            call,
            reply,
            failure,
            dag,
            started_us,
            stop,
        } = f;
        self.stop(call, stop);
        if let Some(dag) = &dag {
            let took = Duration::from_micros(now_micros().saturating_sub(started_us));
            crate::metrics::record_dag_outcome(call, dag, took, Some(failure.code.as_str()));
        }
        tracing::debug!(call = %call, code = %failure.code, "call failed");
        if let Some(to) = reply.push_to {
            let msg = CallFinished {
                call,
                outcome: Err(failure),
            };
            if let Err(e) = self.transport.handle::<CallFinished>(to.clone()).tell(msg) {
                tracing::warn!(call = %call, to = %to, cause = %e, "failure not delivered");
            }
        }
    }

    /// Tell an attempt's executors to stop it and release its repeatable-read pins.
    fn stop(&self, call: crate::ids::CallId, stop: Stop) {
        for e in stop.executors {
            let msg = Cancel {
                call,
                before: stop.before,
            };
            if let Err(err) = self.transport.handle::<Cancel>(e.clone()).tell(msg) {
                tracing::debug!(call = %call, executor = %e, cause = %err, "cancel not sent");
            }
        }
        if let Some((home, session)) = stop.release {
            let to = ActorRef::new(home, ServiceId::Cache, 0);
            let _ = self
                .transport
                .handle::<ReleaseSession>(to)
                .tell(ReleaseSession { session });
        }
    }

    /// Call through a cached plan, or load it first.
    fn call(
        &mut self,
        key: PlanKey,
        req: CallRequest,
        options: CallOptions,
    ) -> ResponseActFuture<Self, Result<CallAccepted, FunctionError>> {
        if let Some(plan) = self.plans.get(&key, Instant::now()) {
            return Box::pin(fut::ready(self.dispatch(plan, req, options)));
        }
        let (epoch, loading) = match self.plans.loading(&key) {
            Some(under_way) => under_way,
            None => {
                let (kvs, k, peers) = (self.kvs.clone(), key.clone(), self.lookup_peers());
                let load = async move { lookup::load_or_ask(&kvs, &k, &peers).await.map(Arc::new) };
                let load = load.boxed_local().shared();
                (self.plans.start(key.clone(), load.clone()), load)
            }
        };
        Box::pin(loading.into_actor(self).map(move |loaded, act, _| {
            act.plans.finish(&key, epoch, &loaded, Instant::now());
            act.dispatch(loaded?, req, options)
        }))
    }
}

/// A call's reply; with neither destination the result is stored under the default result
/// key (as a future would read it).
fn reply_or_default(call: crate::ids::CallId, reply: Reply) -> Reply {
    if reply.push_to.is_none() && reply.store_at.is_none() {
        Reply {
            push_to: None,
            store_at: Some(crate::protocol::records::result_key(call)),
        }
    } else {
        reply
    }
}

fn request(
    call: crate::ids::CallId,
    args: std::collections::BTreeMap<String, Vec<Arg>>,
    consistency: Consistency,
    reply: Reply,
) -> CallRequest {
    CallRequest {
        call,
        args,
        consistency,
        reply: reply_or_default(call, reply),
        started_us: now_micros(),
    }
}

/// The metadata of `names`' registrations, in order (`UnknownFunction` for a missing one).
async fn function_metas(
    kvs: &KvsClient,
    names: &[String],
) -> Result<Vec<FunctionMeta>, FunctionError> {
    let loaded =
        futures::future::join_all(names.iter().map(|n| registry::load_function(kvs, n))).await;
    names
        .iter()
        .zip(loaded)
        .map(|(name, r)| {
            let record = r?.ok_or_else(|| FunctionError::UnknownFunction(name.clone()))?;
            Ok(meta_of(&record))
        })
        .collect()
}

/// What a call needs from a function's registration.
fn meta_of(record: &FunctionRecord) -> FunctionMeta {
    FunctionMeta {
        hash: function_hash(record),
        timeout_ms: record.timeout_ms,
        retries: record.retries.unwrap_or(DEFAULT_RETRIES),
        retry_errors: record.retry_errors,
        class: record.kind == crate::pyrt::FunctionKind::Class,
    }
}

async fn load_plan(kvs: &KvsClient, key: &PlanKey) -> Result<CallPlan, FunctionError> {
    let (dag, is_dag) = match key {
        PlanKey::Dag(name) => {
            let spec = registry::load_dag(kvs, name)
                .await?
                .ok_or_else(|| FunctionError::UnknownDag(name.clone()))?;
            (plan(&spec)?, true)
        }
        PlanKey::Function(name) => (DagPlan::single(name), false),
    };
    let functions = function_metas(kvs, &dag.functions).await?;
    Ok(CallPlan {
        dag,
        functions,
        is_dag,
    })
}
