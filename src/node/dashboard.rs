//! The dashboard of a node playing `gateway`, wired to this node's sources: the cluster
//! view, the KVS, the transport, the caches of every executor node and this node's
//! executor. Prints `cloudburst dashboard listening on http(s)://<addr>/` on stdout once bound.

use super::roles::RoleError;
use crate::actors::cache::messages::GetCacheStats;
use crate::actors::gateway::dashboard::core::{CacheSample, ExecutorSample};
use crate::actors::gateway::dashboard::{DashboardServer, DashboardSources};
use crate::actors::kvs::KvsTier;
use crate::config::{Config, Role};
use crate::net::membership::{GetView, Membership};
use crate::net::{ActorRef, ServiceId, Transport};
use crate::protocol::{AutoscaleState, GetAutoscale};
use crate::pyrt::PythonPool;
use actix::Addr;

/// Start the dashboard with this node's sources.
pub(super) fn start(
    cfg: &Config,
    transport: &Transport,
    membership: &Addr<Membership>,
    kvs: &KvsTier,
    pool: Option<PythonPool>,
    tls: Option<rustls::ServerConfig>,
) -> Result<DashboardServer, RoleError> {
    let sources = DashboardSources::new()
        .with_view(membership.clone().recipient())
        .with_kvs(kvs.client.clone())
        .with_transport(transport.clone())
        .with_caches(cache_probe(transport.clone(), membership.clone()))
        .with_autoscale(autoscale_probe(transport.clone(), membership.clone()));
    let node = transport.local_node().id.to_string();
    let sources = match pool {
        // This node's executor (the whole cluster in `cloudburst local`); other nodes'
        // executors are not aggregated here yet.
        Some(pool) => sources.with_executors(move || {
            let (pool, node) = (pool.clone(), node.clone());
            async move {
                vec![ExecutorSample {
                    node,
                    workers: pool.workers() as u64,
                    extra_workers: pool.extra_workers() as u64,
                    utilisation: pool.utilisation(),
                }]
            }
        }),
        None => sources,
    };
    let node = transport.local_node().id.to_string();
    let addr = cfg.gateway.dashboard_listen;
    let d = DashboardServer::start(cfg, node, sources, tls)
        .map_err(|source| RoleError::Dashboard { addr, source })?;
    println!("cloudburst dashboard listening on {}", d.url());
    Ok(d)
}

/// Asks the acting monitor (the live, non-draining one with the lowest id) for its state.
fn autoscale_probe(
    transport: Transport,
    membership: Addr<Membership>,
) -> impl Fn() -> futures::future::BoxFuture<'static, Option<AutoscaleState>> + Send + Sync + 'static
{
    move || {
        let (t, m) = (transport.clone(), membership.clone());
        Box::pin(async move {
            let view = m.send(GetView).await.ok()?;
            let acting = view
                .serving_with_role(Role::Monitor)
                .map(|member| member.node.clone())
                .min_by(|a, b| a.id.cmp(&b.id))?;
            let target = ActorRef::new(acting, ServiceId::Monitor, 0);
            t.handle::<GetAutoscale>(target)
                .send(GetAutoscale)
                .await
                .ok()
        })
    }
}

/// Asks the cache of every live executor node for its stats (this node's included).
fn cache_probe(
    transport: Transport,
    membership: Addr<Membership>,
) -> impl Fn() -> futures::future::BoxFuture<'static, Vec<CacheSample>> + Send + Sync + 'static {
    move || {
        let (t, m) = (transport.clone(), membership.clone());
        Box::pin(async move {
            let Ok(view) = m.send(GetView).await else {
                return Vec::new();
            };
            let asks = view.live_with_role(Role::Executor).map(|member| {
                let target = ActorRef::new(member.node.clone(), ServiceId::Cache, 0);
                let h = t.handle::<GetCacheStats>(target);
                let node = member.node.id.to_string();
                async move { h.send(GetCacheStats).await.ok().map(|s| (node, s)) }
            });
            futures::future::join_all(asks)
                .await
                .into_iter()
                .flatten()
                .map(|(node, s)| CacheSample {
                    node,
                    hits: s.hits,
                    misses: s.misses,
                    evictions: s.evictions,
                    keys: s.keys,
                    bytes: s.bytes,
                    capacity: s.capacity,
                    pinned: s.pinned,
                })
                .collect()
        })
    }
}
