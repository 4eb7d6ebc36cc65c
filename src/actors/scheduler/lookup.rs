//! Registrations a scheduler was not told of. A registration is stored in the KVS and
//! announced to every scheduler the registering one knows before it is acknowledged; a
//! scheduler that joined since is not among them, and its own read of the KVS may go
//! through a routing that has not caught up with the writer's. So before a scheduler
//! answers `unknown_function` or `unknown_dag` it asks every other live scheduler it knows
//! ([`LookupRegistration`]); the registering one is among them (a joining node learns the
//! whole view when it joins), and it reads the record where it wrote it.
//!
//! The bound this gives: once a registration is acknowledged, a call through any gateway to
//! any scheduler sees it, unless every scheduler that knows it is unreachable for
//! [`LOOKUP_TIMEOUT`] (then the call fails with `unknown_function`, as it would have before).

use super::core::CallPlan;
use super::plans::{plan_of, PlanKey};
use super::{function_metas, load_plan, meta_of, registry};
use crate::actors::kvs::KvsClient;
use crate::net::Handle;
use crate::protocol::{FunctionError, FunctionMeta, Listing, LookupRegistration, RegistryChange};
use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use std::time::Duration;

/// How long a lookup waits for each other scheduler (they are asked at once): a frozen one
/// delays the answer to a call of an unknown name by this much at most.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// Handles of the other schedulers to ask.
pub type Peers = Vec<Handle<LookupRegistration>>;

/// Whether `e` says a name is not registered (what a lookup may mend).
fn is_unknown(e: &FunctionError) -> bool {
    matches!(
        e,
        FunctionError::UnknownFunction(_) | FunctionError::UnknownDag(_)
    )
}

/// `key`'s plan read from the KVS, or, when the KVS does not know its name (or a function of
/// its DAG), from the first other scheduler that does.
pub async fn load_or_ask(
    kvs: &KvsClient,
    key: &PlanKey,
    peers: &Peers,
) -> Result<CallPlan, FunctionError> {
    match load_plan(kvs, key).await {
        Err(e) if is_unknown(&e) && !peers.is_empty() => match ask(peers, key).await {
            Some(plan) => {
                tracing::info!(registration = ?key, "registration learnt from another scheduler");
                Ok(plan)
            }
            None => Err(e),
        },
        loaded => loaded,
    }
}

/// The metadata of `names`' registrations, in order, each asked of the other schedulers
/// when the KVS does not know it (`UnknownFunction` when none does).
pub async fn metas_or_ask(
    kvs: &KvsClient,
    names: &[String],
    peers: &Peers,
) -> Result<Vec<FunctionMeta>, FunctionError> {
    match function_metas(kvs, names).await {
        Err(e) if is_unknown(&e) && !peers.is_empty() => {
            let keys: Vec<_> = names.iter().cloned().map(PlanKey::Function).collect();
            let loads = keys.iter().map(|k| load_or_ask(kvs, k, peers));
            let mut metas = Vec::with_capacity(names.len());
            for plan in futures::future::join_all(loads).await {
                let plan = plan?;
                metas.push(plan.functions.into_iter().next().ok_or(e.clone())?);
            }
            Ok(metas)
        }
        loaded => loaded,
    }
}

/// `key`'s plan as the first of `peers` to know it answers; `None` when none does in time.
async fn ask(peers: &Peers, key: &PlanKey) -> Option<CallPlan> {
    let msg = match key {
        PlanKey::Function(name) => LookupRegistration {
            what: Listing::Functions,
            name: name.clone(),
        },
        PlanKey::Dag(name) => LookupRegistration {
            what: Listing::Dags,
            name: name.clone(),
        },
    };
    let mut asks: FuturesUnordered<_> = peers
        .iter()
        .map(|h| h.send_timeout(msg.clone(), LOOKUP_TIMEOUT))
        .collect();
    while let Some(answer) = asks.next().await {
        match answer.map(|a| a.as_ref().and_then(plan_of)) {
            Ok(Some((k, plan))) if &k == key => return Some(plan),
            Ok(_) => {}
            Err(e) => tracing::debug!(registration = ?key, cause = %e, "lookup not answered"),
        }
    }
    None
}

/// What this scheduler knows of a registration another asks about: its cached plan of a
/// function, else the record read through this node's routing of the KVS. Never asks the
/// other schedulers in turn.
pub async fn answer(
    kvs: &KvsClient,
    cached: Option<Arc<CallPlan>>,
    msg: LookupRegistration,
) -> Option<RegistryChange> {
    let LookupRegistration { what, name } = msg;
    let read = async {
        match what {
            Listing::Functions => {
                let meta = match cached.and_then(|p| p.functions.first().cloned()) {
                    Some(meta) => meta,
                    None => meta_of(
                        &registry::load_function(kvs, &name)
                            .await?
                            .ok_or(FunctionError::UnknownFunction(name.clone()))?,
                    ),
                };
                Ok(RegistryChange::Function {
                    name: name.clone(),
                    meta,
                })
            }
            Listing::Dags => {
                let spec = registry::load_dag(kvs, &name)
                    .await?
                    .ok_or(FunctionError::UnknownDag(name.clone()))?;
                let dag = super::dag::plan(&spec)?;
                let functions = function_metas(kvs, &dag.functions).await?;
                Ok(RegistryChange::Dag { spec, functions })
            }
        }
    };
    match read.await {
        Ok(change) => Some(change),
        Err::<_, FunctionError>(e) => {
            tracing::debug!(name = %name, cause = %e, "lookup: registration not known here");
            None
        }
    }
}
