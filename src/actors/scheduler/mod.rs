//! The scheduler: function and DAG registry (persisted in the KVS) and call placement.
//!
//! One actor per scheduler node (`ServiceId::Scheduler`, instance 0). It handles the
//! function plane's requests ([`crate::protocol::requests`]); a call is placed function by function
//! ([`core`]) and each chosen executor gets its part of the schedule; sources run on
//! arrival, results then flow executor to executor, never back through here.
//!
//! Registry entries are cached in memory for [`REGISTRY_TTL`]: this scheduler sees its own
//! (re-)registrations and deletions at once, others' within the TTL.
//!
//! - `core.rs`: executors, version check, placement, schedules (no I/O).
//! - `dag.rs`: DAG and name validation (no I/O).
//! - `registry.rs`: functions and DAGs in the KVS.
//! - `handlers.rs`: the actix handlers.

pub mod core;
pub mod dag;
mod handlers;
pub mod registry;

use self::core::{CallPlan, CallRequest, FunctionMeta, SchedulerCore};
use self::dag::{plan, DagPlan};
use crate::actors::kvs::KvsClient;
use crate::clock::{node_clock, now_micros, LwwClock};
use crate::config::Config;
use crate::net::membership::{Membership, Subscribe};
use crate::net::{NetError, Transport};
use crate::protocol::records::function_hash;
use crate::protocol::{Arg, CallAccepted, Consistency, FunctionError, Reply, Schedule};
use actix::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a loaded function or DAG is used before it is read from the KVS again.
pub const REGISTRY_TTL: Duration = Duration::from_secs(1);
/// Call plans cached at most (emptied when full; a miss costs a few KVS reads).
pub const MAX_CACHED_PLANS: usize = 4096;
/// A status older than this (several missed reports) makes an executor unplaceable.
pub const EXECUTOR_STALE_AFTER: Duration = Duration::from_secs(3);
/// Mailbox of the scheduler actor: calls and registrations from every gateway, status and
/// cache reports from every executor node.
pub const MAILBOX_CAPACITY: usize = 4096;

/// Which registration a call plan comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum PlanKey {
    Dag(String),
    Function(String),
}

/// Local query: the executors this scheduler can place on now (tests, the harness, the
/// dashboard).
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "Vec<crate::protocol::ExecutorStatus>")]
pub struct GetExecutors;

/// Local: which nodes' caches hold a key, as their last reports say (tests, dashboard).
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "Vec<crate::ids::NodeId>")]
pub struct HoldersOf(pub crate::ids::Key);

/// The scheduler actor.
pub struct Scheduler {
    core: SchedulerCore,
    kvs: KvsClient,
    clock: Arc<LwwClock>,
    transport: Transport,
    plans: HashMap<PlanKey, (Instant, Arc<CallPlan>)>,
    rng: StdRng,
}

impl Scheduler {
    /// Start the actor, register its messages and subscribe it to the membership view.
    pub fn start(
        transport: &Transport,
        membership: &Addr<Membership>,
        kvs: KvsClient,
        cfg: &Config,
    ) -> Result<Addr<Scheduler>, NetError> {
        let addr = Scheduler {
            core: SchedulerCore::new(cfg.executor.utilisation_threshold, EXECUTOR_STALE_AFTER),
            kvs,
            clock: node_clock(transport.local_node()),
            transport: transport.clone(),
            plans: HashMap::new(),
            rng: StdRng::from_entropy(),
        }
        .start();
        handlers::register(transport, &addr)?;
        membership.do_send(Subscribe(addr.clone().recipient()));
        Ok(addr)
    }

    fn cached(&self, key: &PlanKey) -> Option<Arc<CallPlan>> {
        self.plans
            .get(key)
            .filter(|(at, _)| at.elapsed() < REGISTRY_TTL)
            .map(|(_, p)| p.clone())
    }

    fn remember(&mut self, key: PlanKey, plan: Arc<CallPlan>) {
        if self.plans.len() >= MAX_CACHED_PLANS {
            self.plans.clear();
        }
        self.plans.insert(key, (Instant::now(), plan));
    }

    /// Place a call and send every executor its schedule (sources last, so the others
    /// usually hold theirs before the first trigger arrives).
    fn dispatch(
        &mut self,
        plan: &CallPlan,
        req: CallRequest,
    ) -> Result<CallAccepted, FunctionError> {
        let call = req.call;
        let schedules = self
            .core
            .schedules(plan, req, Instant::now(), &mut self.rng)?;
        let (sources, others): (Vec<_>, Vec<_>) = schedules
            .into_iter()
            .partition(|(_, s)| s.upstream.is_empty());
        for (executor, s) in others.into_iter().chain(sources) {
            tracing::debug!(call = %call, function = %s.function, executor = %executor, "placed");
            self.transport
                .handle::<Schedule>(executor.clone())
                .tell(s)
                .map_err(|e| FunctionError::Unavailable(format!("{executor}: {e}")))?;
        }
        Ok(CallAccepted { call })
    }

    /// Call through a cached plan, or load it first.
    fn call(
        &mut self,
        key: PlanKey,
        req: CallRequest,
    ) -> ResponseActFuture<Self, Result<CallAccepted, FunctionError>> {
        if let Some(plan) = self.cached(&key) {
            return Box::pin(fut::ready(self.dispatch(&plan, req)));
        }
        let kvs = self.kvs.clone();
        let k = key.clone();
        Box::pin(
            async move { load_plan(&kvs, &k).await }
                .into_actor(self)
                .map(move |loaded, act, _| {
                    let plan = Arc::new(loaded?);
                    act.remember(key, plan.clone());
                    act.dispatch(&plan, req)
                }),
        )
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
            Ok(FunctionMeta {
                hash: function_hash(&record),
                timeout_ms: record.timeout_ms,
            })
        })
        .collect()
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
