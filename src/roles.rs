//! Starting and stopping the roles a node plays. `cloudburst node` (any subset of roles) and
//! `cloudburst local` (all of them, in one process) both go through [`NodeRoles::start`].
//!
//! Every node runs the transport, membership, the Echo service and the KVS routing
//! watcher; each role adds its actors. A role added here is removed from [`NOT_YET`].

use crate::actors::cache::StateAccess;
use crate::actors::executor::{Executor, ExecutorHandle};
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
pub const NOT_YET: &[Role] = &[Role::Gateway, Role::Monitor];

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
        let scheduler = roles
            .contains(&Role::Scheduler)
            .then(|| Scheduler::start(&transport, &membership, kvs.client.clone(), cfg));
        let executor = if roles.contains(&Role::Executor) {
            // The cache (branch `cache`) replaces the KVS client here.
            let state: Arc<dyn StateAccess> = Arc::new(kvs.client.clone());
            Some(Executor::start(&transport, &membership, state, cfg).await?)
        } else {
            None
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
            scheduler,
            executor,
        })
    }

    /// Tell the peers this node leaves, then stop everything. Returns how many peers
    /// acknowledged the goodbye.
    pub async fn stop(self) -> usize {
        let acks = self.membership.send(LeaveCluster).await.unwrap_or(0);
        if let Some(e) = &self.executor {
            e.stop(&self.transport).await;
        }
        self.transport.shutdown().await;
        self.kvs.stop();
        acks
    }
}
