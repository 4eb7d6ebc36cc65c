//! Starting and stopping the roles a node plays. `cloudburst node` (any subset of roles) and
//! `cloudburst local` (all of them, in one process) both go through [`NodeRoles::start`].
//!
//! Every node runs the transport, membership, the Echo service and the KVS routing
//! watcher; each role adds its actors. A role added here is removed from [`NOT_YET`].
//! A node playing `gateway` serves the dashboard and `/metrics` and prints
//! `cloudburst dashboard listening on http://<addr>/` on stdout once it is bound.

use crate::actors::cache::messages::GetCacheStats;
use crate::actors::cache::CacheHandle;
use crate::actors::cache::StateAccess;
use crate::actors::executor::{Executor, ExecutorHandle};
use crate::actors::gateway::dashboard::core::{CacheSample, ExecutorSample};
use crate::actors::gateway::dashboard::{DashboardServer, DashboardSources};
use crate::actors::gateway::Gateway;
use crate::actors::kvs::KvsTier;
use crate::actors::scheduler::Scheduler;
use crate::config::{Config, Role};
use crate::net::echo::EchoService;
use crate::net::membership::{LeaveCluster, Membership};
use crate::net::{NetError, Transport};
use crate::pyrt::PyRuntimeError;
use actix::Addr;
use std::sync::Arc;

/// Roles this build cannot play yet: a node asked to play them says so plainly.
pub const NOT_YET: &[Role] = &[Role::Monitor];

/// How long a leaving KVS node may spend handing its keys to the remaining owners.
pub const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a node's roles could not start.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("executor: {0}")]
    Python(#[from] PyRuntimeError),
}

/// The running parts of one node.
pub struct NodeRoles {
    pub transport: Transport,
    pub membership: Addr<Membership>,
    pub kvs: KvsTier,
    /// This node's cache, when it plays the `executor` role (executors read through it).
    pub cache: Option<CacheHandle>,
    /// The client websocket gateway, on nodes playing `gateway`.
    pub gateway: Option<Gateway>,
    /// The dashboard server, on nodes playing `gateway`.
    pub dashboard: Option<DashboardServer>,
    /// The scheduler, when the node plays `scheduler`.
    pub scheduler: Option<Addr<Scheduler>>,
    /// The executor, when the node plays `executor`.
    pub executor: Option<ExecutorHandle>,
}

impl NodeRoles {
    /// Start the transport, membership and every role in `cfg.node.roles`. Must run inside
    /// an actix `System`.
    pub async fn start(cfg: &Config) -> Result<NodeRoles, RoleError> {
        let transport = Transport::start(cfg, None).await?;
        let membership = Membership::start(transport.clone(), cfg);
        EchoService::start(transport.clone(), Some(membership.clone().recipient()));
        let kvs = KvsTier::start(&transport, &membership, cfg);
        let roles = &cfg.node.roles;
        let cache = roles
            .contains(&Role::Executor)
            .then(|| CacheHandle::start(&transport, &membership, kvs.client.clone(), cfg));
        let scheduler = roles
            .contains(&Role::Scheduler)
            .then(|| Scheduler::start(&transport, &membership, kvs.client.clone(), cfg));
        let executor = match &cache {
            Some(cache) => {
                // Executors read and write state through this node's cache.
                let registry: Arc<dyn StateAccess> = Arc::new(kvs.client.clone());
                Some(Executor::start(&transport, &membership, cache.clone(), registry, cfg).await?)
            }
            None => None,
        };
        let (gateway, dashboard) = if roles.contains(&Role::Gateway) {
            let g = Gateway::start(&transport, &membership, kvs.client.clone(), cfg)
                .map_err(|e| NetError::Io(e.to_string()))?;
            let pool = executor.as_ref().map(|e| e.pool.clone());
            let d = start_dashboard(cfg, &transport, &membership, &kvs, pool)?;
            (Some(g), Some(d))
        } else {
            (None, None)
        };
        let pending: Vec<&str> = roles
            .iter()
            .filter(|r| NOT_YET.contains(r))
            .map(|r| r.name())
            .collect();
        if !pending.is_empty() {
            tracing::warn!(
                roles = %pending.join(","),
                "roles not available yet in this build; this node does not play them"
            );
        }
        Ok(NodeRoles {
            transport,
            membership,
            kvs,
            cache,
            gateway,
            dashboard,
            scheduler,
            executor,
        })
    }

    /// Hand this node's keys to the remaining owners, tell the peers this node leaves, then
    /// stop everything. Returns how many peers
    /// acknowledged the goodbye.
    pub async fn stop(self) -> usize {
        if let Some(g) = &self.gateway {
            g.stop().await;
        }
        if let Some(d) = self.dashboard {
            d.stop().await;
        }
        if !self.kvs.shards.is_empty() && !self.kvs.drain(DRAIN_LIMIT).await {
            tracing::warn!(
                "not every key was handed off before leaving; replicas (if any) keep them"
            );
        }
        let acks = self.membership.send(LeaveCluster).await.unwrap_or(0);
        if let Some(e) = &self.executor {
            e.stop(&self.transport).await;
        }
        self.transport.shutdown().await;
        self.kvs.stop();
        acks
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
            let Ok(view) = m.send(crate::net::membership::GetView).await else {
                return Vec::new();
            };
            let asks = view.live_with_role(Role::Executor).map(|member| {
                let target =
                    crate::net::ActorRef::new(member.node.clone(), crate::net::ServiceId::Cache, 0);
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

/// The dashboard with this node's sources.
fn start_dashboard(
    cfg: &Config,
    transport: &Transport,
    membership: &Addr<Membership>,
    kvs: &KvsTier,
    pool: Option<crate::pyrt::PythonPool>,
) -> Result<DashboardServer, NetError> {
    let sources = DashboardSources::new()
        .with_view(membership.clone().recipient())
        .with_kvs(kvs.client.clone())
        .with_transport(transport.clone())
        .with_caches(cache_probe(transport.clone(), membership.clone()));
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
                    utilisation: pool.utilisation(),
                }]
            }
        }),
        None => sources,
    };
    let node = transport.local_node().id.to_string();
    let d = DashboardServer::start(cfg, node, sources).map_err(|e| {
        NetError::Io(format!(
            "dashboard cannot listen on {}: {e}",
            cfg.gateway.dashboard_listen
        ))
    })?;
    println!(
        "cloudburst dashboard listening on http://{}/",
        d.local_addr()
    );
    Ok(d)
}
