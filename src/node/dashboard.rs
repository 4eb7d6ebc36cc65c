//! The dashboard of a node playing `gateway`, wired to the cluster's sources: the cluster
//! view, the KVS, this node's transport, the caches of every executor node and every
//! node's own figures (calls, recent calls, Python pool). Prints `cloudburst dashboard listening on http(s)://<addr>/` on stdout once bound.

use super::roles::RoleError;
use crate::actors::cache::messages::GetCacheStats;
use crate::actors::gateway::dashboard::core::CacheSample;
use crate::actors::gateway::dashboard::{DashboardServer, DashboardSources};
use crate::actors::kvs::KvsTier;
use crate::config::{Config, Role};
use crate::ids::NodeId;
use crate::net::membership::{GetView, Membership};
use crate::net::{ActorRef, ServiceId, Transport};
use crate::protocol::{AutoscaleState, GetAutoscale, GetNodeStats, NodeStats};
use actix::Addr;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Start the dashboard with the cluster's sources.
pub(super) fn start(
    cfg: &Config,
    transport: &Transport,
    membership: &Addr<Membership>,
    kvs: &KvsTier,
    tls: Option<rustls::ServerConfig>,
) -> Result<DashboardServer, RoleError> {
    let sources = DashboardSources::new()
        .with_view(membership.clone().recipient())
        .with_kvs(kvs.client.clone())
        .with_transport(transport.clone())
        .with_caches(cache_probe(transport.clone(), membership.clone()))
        .with_nodes(nodes_probe(transport.clone(), membership.clone()))
        .with_autoscale(autoscale_probe(transport.clone(), membership.clone()));
    let node = transport.local_node().id.to_string();
    let addr = cfg.gateway.dashboard_listen;
    let d = DashboardServer::start(cfg, node, sources, tls)
        .map_err(|source| RoleError::Dashboard { addr, source })?;
    println!("cloudburst dashboard listening on {}", d.url());
    Ok(d)
}

/// Asks every live node (this one included) for its own figures: the calls it ran, its
/// recent calls, its Python pool. A live node that does not answer this tick counts with
/// its last answer (its counters must not seem to drop and jump back); a node no longer
/// live is forgotten.
fn nodes_probe(
    transport: Transport,
    membership: Addr<Membership>,
) -> impl Fn() -> futures::future::BoxFuture<'static, Vec<NodeStats>> + Send + Sync + 'static {
    let last: Arc<Mutex<HashMap<NodeId, NodeStats>>> = Arc::default();
    move || {
        let (t, m, last) = (transport.clone(), membership.clone(), last.clone());
        Box::pin(async move {
            let Ok(view) = m.send(GetView).await else {
                return Vec::new();
            };
            let asks = view.live().map(|member| {
                let target = ActorRef::new(member.node.clone(), ServiceId::Node, 0);
                let h = t.handle::<GetNodeStats>(target);
                let id = member.node.id.clone();
                async move { (id, h.send(GetNodeStats).await.ok()) }
            });
            let answers = futures::future::join_all(asks).await;
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            let mut now = HashMap::with_capacity(answers.len());
            for (id, answer) in answers {
                if let Some(stats) = answer.or_else(|| last.remove(&id)) {
                    now.insert(id, stats);
                }
            }
            *last = now;
            last.values().cloned().collect()
        })
    }
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
                    down: false,
                })
                .collect()
        })
    }
}
