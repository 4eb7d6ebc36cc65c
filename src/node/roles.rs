//! Starting and stopping the roles a node plays. `cloudburst node` (any subset of roles),
//! `cloudburst local` (every role this build can play, in one process) and the in-process
//! harness all go through [`NodeRoles::start`].
//!
//! Every node runs the transport, membership, the Echo service and the KVS routing
//! watcher; each role adds its actors. A role added here is removed from [`NOT_YET`].
//! When a role fails to start, whatever already started is stopped before the error is
//! returned (listeners closed, Python workers killed and reaped), so a failed start leaves
//! nothing behind in a process that goes on.

use super::admin::{AdminServer, AdminSources};
use super::dashboard;
use super::observe::NodeService;
use super::storage::NodeStorage;
use crate::actors::cache::{CacheHandle, StateAccess};
use crate::actors::executor::{
    Executor, ExecutorHandle, Prestarted, StartError as ExecutorStartError,
};
use crate::actors::gateway::dashboard::DashboardServer;
use crate::actors::gateway::tls::TlsError;
use crate::actors::gateway::Gateway;
use crate::actors::kvs::node::OpenedShard;
use crate::actors::kvs::KvsTier;
use crate::actors::monitor::kvs_scaler::KvsScaler;
use crate::actors::monitor::local::LocalProvider;
use crate::actors::monitor::provider::{stop_all, NodeProvider, ProviderError};
use crate::actors::monitor::{Monitor, TakeProvider};
use crate::actors::scheduler::{GetExecutors, Scheduler};
use crate::config::{Config, Role};
use crate::net::echo::EchoService;
use crate::net::membership::core::TOMBSTONE_PERIODS;
use crate::net::membership::{LeaveCluster, Membership};
use crate::net::{NetError, Transport};
use crate::storage::StorageError;
use actix::Addr;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Roles this build cannot play yet: a node asked to play them says so plainly, and
/// `cloudburst local` does not ask for them. (Every role is played now.)
pub const NOT_YET: &[Role] = &[];

/// How long a stopping monitor node waits for the executor nodes it launched to drain and
/// exit before it kills them (by then the node's own drain finished: they hold nothing).
pub const CHILDREN_STOP_LIMIT: Duration = Duration::from_secs(15);

/// How long a leaving KVS node may spend handing its keys to the remaining owners.
pub const HANDOFF_LIMIT: Duration = Duration::from_secs(30);

/// How long a launched executor node waits for the KVS routing table before it loads its
/// warm functions (it joined a moment ago; past this they load on their first calls).
const WARM_ROUTING_LIMIT: Duration = Duration::from_secs(5);

/// How often [`NodeRoles::wait_ready`] looks again while it waits.
const READY_POLL: Duration = Duration::from_millis(5);

/// The roles this build can play: every role but those in [`NOT_YET`].
pub fn playable() -> BTreeSet<Role> {
    Role::ALL
        .into_iter()
        .filter(|r| !NOT_YET.contains(r))
        .collect()
}

/// Why a node's roles could not start (whatever had started is stopped by then).
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("data directory: {0}")]
    Storage(#[from] StorageError),
    /// Neither seeds, nor a recorded cluster, nor leave to form one.
    #[error("no cluster to join: give --join SEED_ADDR,... (any live member), or --bootstrap to form a new cluster (the first node only: a restarted node must not form a second, empty one)")]
    NoCluster,
    #[error("executor: {0}")]
    Executor(#[from] ExecutorStartError),
    #[error("gateway: {0}")]
    Gateway(std::io::Error),
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("monitor: {0}")]
    Monitor(#[from] ProviderError),
    #[error("dashboard cannot listen on {addr}: {source}")]
    Dashboard {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin port cannot listen on {addr}: {source}")]
    Admin {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Why a started node is not ready to serve clients.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("the local KVS shards did not join the routing table within {0:?}")]
    KvsUnrouted(Duration),
    #[error("the scheduler knew {known} of {wanted} executors after {limit:?}")]
    ExecutorsUnknown {
        known: usize,
        wanted: usize,
        limit: Duration,
    },
}

/// The running parts of one node.
pub struct NodeRoles {
    pub transport: Transport,
    pub membership: Addr<Membership>,
    pub kvs: KvsTier,
    /// The data directory (locked while the node runs), when it has one.
    pub storage: NodeStorage,
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
    /// The monitor (autoscaler), when the node plays `monitor`.
    pub monitor: Option<Addr<Monitor>>,
    /// The admin HTTP port, when `node.admin_listen` is set.
    pub admin: Option<AdminServer>,
}

impl NodeRoles {
    /// Start the transport, membership and every role in `cfg.node.roles`; on failure,
    /// stop what started and return why. Must run inside an actix `System`.
    ///
    /// With a data directory, the node takes the identity it records and recovers its KVS
    /// shards before it joins: it serves its keys again, and hand-off brings what changed
    /// while it was away.
    pub async fn start(cfg: &Config) -> Result<NodeRoles, RoleError> {
        Self::start_with(cfg, None).await
    }

    /// [`NodeRoles::start`], the executor taking over `prestarted` workers (a standby node).
    pub async fn start_with(
        cfg: &Config,
        prestarted: Option<Prestarted>,
    ) -> Result<NodeRoles, RoleError> {
        // Before anything starts: a bad certificate is an error at once.
        let tls = gateway_tls(cfg)?;
        let (mut storage, cfg, id) = NodeStorage::open(cfg)?;
        let cfg = &cfg;
        let cluster = storage.cluster_state(cfg).ok_or(RoleError::NoCluster)?;
        let transport = Transport::start_in(cfg, id, cluster).await?;
        let recovered = match storage
            .record_identity(&transport.local_node().id, cfg, transport.cluster())
            .await
        {
            Ok(()) => storage.open_shards(cfg).await,
            Err(e) => Err(e),
        };
        let base = match recovered {
            Ok(opened) => {
                Self::start_base(&transport, cfg, &mut storage, opened).map_err(RoleError::from)
            }
            Err(e) => Err(RoleError::from(e)),
        };
        let (membership, kvs) = match base {
            Ok(base) => base,
            Err(e) => {
                transport.shutdown().await;
                return Err(e);
            }
        };
        let mut node = NodeRoles {
            transport,
            membership,
            kvs,
            storage,
            cache: None,
            gateway: None,
            dashboard: None,
            scheduler: None,
            executor: None,
            monitor: None,
            admin: None,
        };
        match node.start_roles(cfg, tls, prestarted).await {
            Ok(()) => Ok(node),
            Err(e) => {
                tracing::warn!(cause = %e, "a role failed to start; stopping what started");
                node.stop().await;
                Err(e)
            }
        }
    }

    /// What every node runs on top of the transport: membership, Echo, the KVS tier.
    fn start_base(
        transport: &Transport,
        cfg: &Config,
        storage: &mut NodeStorage,
        opened: Vec<OpenedShard>,
    ) -> Result<(Addr<Membership>, KvsTier), NetError> {
        let mut seeds = cfg.node.join.clone();
        for peer in storage.recorded_peers(&transport.local_node().id) {
            let peer = peer.to_string();
            if !seeds.contains(&peer) {
                seeds.push(peer);
            }
        }
        let membership = Membership::start(transport.clone(), cfg, seeds)?;
        // A cluster formed now yields to an established one only while that one's members
        // may still be looking for this address (they forget a dead member after this).
        let gate = transport.cluster().clone();
        let window = Duration::from_millis(cfg.membership.dead_after_ms) * TOMBSTONE_PERIODS;
        actix::spawn(async move {
            tokio::time::sleep(window).await;
            gate.settle();
        });
        storage.watch_members(&membership, transport.cluster());
        EchoService::start(transport.clone(), Some(membership.clone().recipient()))?;
        let kvs = KvsTier::start_with(transport, &membership, cfg, opened)?;
        Ok((membership, kvs))
    }

    /// The roles on top of the transport, membership and KVS tier, in dependency order.
    async fn start_roles(
        &mut self,
        cfg: &Config,
        tls: Option<rustls::ServerConfig>,
        prestarted: Option<Prestarted>,
    ) -> Result<(), RoleError> {
        let roles = &cfg.node.roles;
        let (t, m) = (&self.transport, &self.membership);
        if roles.contains(&Role::Executor) {
            self.cache = Some(CacheHandle::start(t, m, self.kvs.client.clone(), cfg)?);
        }
        if roles.contains(&Role::Scheduler) {
            self.scheduler = Some(Scheduler::start(t, m, self.kvs.client.clone(), cfg)?);
        }
        if prestarted.as_ref().is_some_and(|p| !p.warm.is_empty())
            && !self.routed(WARM_ROUTING_LIMIT).await
        {
            tracing::warn!("no KVS node known yet: the functions load on their first calls");
        }
        if let Some(cache) = &self.cache {
            // Executors read and write state through this node's cache, and load function
            // bodies from the KVS itself.
            let registry: Arc<dyn StateAccess> = Arc::new(self.kvs.client.clone());
            let e = Executor::start(t, m, cache.clone(), registry, cfg, prestarted).await?;
            self.executor = Some(e);
        }
        if roles.contains(&Role::Monitor) {
            self.monitor = Some(self.start_monitor(cfg)?);
        }
        // Every node answers for its own calls and logs, whatever its roles.
        NodeService::start(t, self.executor.as_ref().map(|e| e.pool.clone()))?;
        if roles.contains(&Role::Gateway) {
            let kvs = self.kvs.client.clone();
            let g = Gateway::start(t, m, kvs, cfg, tls.clone()).map_err(RoleError::Gateway)?;
            self.gateway = Some(g);
            self.dashboard = Some(dashboard::start(cfg, t, m, &self.kvs, tls)?);
        }
        if let Some(addr) = cfg.node.admin_listen {
            let sources = AdminSources {
                kvs: self.kvs.reporter.clone(),
                monitor: self.monitor.clone(),
            };
            self.admin = Some(AdminServer::start(cfg, addr, t, m, sources)?);
        }
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
        Ok(())
    }

    /// The monitor, with the Kubernetes provider if `[kubernetes] enabled`, else the local
    /// one: its executor nodes join through this node and log under the data directory
    /// (else a directory of this process in /tmp, removed when the node stops).
    fn start_monitor(&self, cfg: &Config) -> Result<Addr<Monitor>, RoleError> {
        let join = self.transport.local_addr();
        let provider: Box<dyn NodeProvider> = match &cfg.node.data_dir {
            _ if cfg.kubernetes.enabled => kubernetes_provider(cfg)?,
            Some(d) => Box::new(LocalProvider::new(cfg, join, &d.join("executors"))?),
            None => {
                let dir = std::env::temp_dir()
                    .join(format!("cloudburst-{}-executors", std::process::id()));
                Box::new(LocalProvider::new(cfg, join, &dir)?.removing_dir_on_drop())
            }
        };
        // A drained node finishes its functions, then its results travel and it leaves.
        let drain_limit =
            Duration::from_millis(cfg.executor.function_timeout_ms) + 2 * super::drain::DRAIN_SLACK;
        let m = Monitor::start(
            &self.transport,
            &self.membership,
            &cfg.autoscale,
            provider,
            drain_limit,
            KvsScaler::new(cfg, self.kvs.routing.clone()),
        )?;
        Ok(m)
    }

    /// Resolves when a monitor asked this node to drain: its executor, or (a node the KVS
    /// policy removes) its KVS shards.
    pub async fn drain_requested(&self) {
        let executor = async {
            match &self.executor {
                Some(e) => e.drain_requested.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = executor => {}
            () = self.kvs.drain_requested.notified() => {}
        }
    }

    /// Wait (bounded) until the KVS routing table knows a KVS node and, on a node playing
    /// `scheduler`, until the scheduler knows at least `executors` executors: then a client
    /// request finds the shards and a registration is not refused with `no_executors`.
    pub async fn wait_ready(
        &self,
        executors: usize,
        routing_limit: Duration,
        executors_limit: Duration,
    ) -> Result<(), NotReady> {
        if !self.routed(routing_limit).await {
            return Err(NotReady::KvsUnrouted(routing_limit));
        }
        let Some(scheduler) = &self.scheduler else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + executors_limit;
        loop {
            let known = scheduler.send(GetExecutors).await.map_or(0, |e| e.len());
            if known >= executors {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(NotReady::ExecutorsUnknown {
                    known,
                    wanted: executors,
                    limit: executors_limit,
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Wait (at most `limit`) until the KVS routing table knows a KVS node; whether it does.
    async fn routed(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.kvs.client.routing().nodes().next().is_none() {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(READY_POLL).await;
        }
        true
    }

    /// Close the gateway's sessions (after a drain it has no call in flight), hand this
    /// node's keys to the remaining owners, tell the peers this node leaves, then stop
    /// everything that started. Returns how many peers acknowledged the goodbye. Without a
    /// [`NodeRoles::drain`] before, what the node still runs fails (`shut_down`).
    pub async fn stop(self) -> usize {
        if let Some(m) = &self.monitor {
            // The executor nodes it launched drain (they hold nothing by now) and exit.
            Monitor::unregister(&self.transport);
            if let Ok(Some(mut provider)) = m.send(TakeProvider).await {
                let left = stop_all(provider.as_mut(), CHILDREN_STOP_LIMIT).await;
                if left > 0 {
                    tracing::warn!(left, "executor nodes did not stop in time; killing them");
                }
            }
        }
        if let Some(g) = &self.gateway {
            g.stop().await;
        }
        if let Some(d) = self.dashboard {
            d.stop().await;
        }
        if let Some(a) = self.admin {
            a.stop().await;
        }
        if !self.kvs.shards.is_empty() && !self.kvs.drain(HANDOFF_LIMIT).await {
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
        self.kvs.close_logs().await;
        acks
    }
}

/// The TLS config of the client endpoints, when this node plays `gateway` and has a
/// certificate; warns when a listener other machines reach has none.
fn gateway_tls(cfg: &Config) -> Result<Option<rustls::ServerConfig>, TlsError> {
    let g = &cfg.gateway;
    if !cfg.node.roles.contains(&Role::Gateway) {
        return Ok(None);
    }
    if let (Some(cert), Some(key)) = (&g.tls_cert, &g.tls_key) {
        return crate::actors::gateway::tls::server_config(cert, key).map(Some);
    }
    for (name, addr) in g.exposed_in_clear() {
        tracing::warn!(listen = %addr, "{name} is reachable from other machines without TLS");
        eprintln!("cloudburst: WARNING: {name} = {addr} is reachable from other machines without TLS: the client token travels in the clear; pass --tls-cert and --tls-key");
    }
    Ok(None)
}

/// The Kubernetes node provider of `[kubernetes]` (the monitor runs in a pod).
#[cfg(feature = "kubernetes")]
fn kubernetes_provider(cfg: &Config) -> Result<Box<dyn NodeProvider>, ProviderError> {
    use crate::actors::monitor::k8s::{KubeProvider, KubeSettings};
    let err = |e: crate::actors::monitor::k8s::KubeError| ProviderError::Launch(e.to_string());
    let s = KubeSettings::in_cluster(&cfg.kubernetes, cfg.autoscale.max_executors).map_err(err)?;
    tracing::info!(api = %s.api_server, namespace = %s.namespace, executors = %s.executor_deployment, kvs = %s.kvs_statefulset, "the monitor scales Kubernetes workloads");
    Ok(Box::new(KubeProvider::new(s).map_err(err)?))
}

/// Without the `kubernetes` feature: refused with a clear error.
#[cfg(not(feature = "kubernetes"))]
fn kubernetes_provider(_: &Config) -> Result<Box<dyn NodeProvider>, ProviderError> {
    Err(ProviderError::Launch(
        "kubernetes.enabled: this build has no Kubernetes provider (build with --features kubernetes)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playable_roles_leave_out_those_not_available_yet() {
        let p = playable();
        assert!(NOT_YET.iter().all(|r| !p.contains(r)));
        assert_eq!(p.len() + NOT_YET.len(), Role::ALL.len());
    }
}
