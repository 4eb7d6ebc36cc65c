//! Starting and stopping the roles a node plays. `cloudburst node` (any subset of roles) and
//! `cloudburst local` (all of them, in one process) both go through [`NodeRoles::start`].
//!
//! Every node runs the transport, membership, the Echo service and the KVS routing
//! watcher; each role adds its actors. A role added here is removed from [`NOT_YET`].

use crate::actors::cache::CacheHandle;
use crate::actors::kvs::KvsTier;
use crate::config::{Config, Role};
use crate::net::echo::EchoService;
use crate::net::membership::{LeaveCluster, Membership};
use crate::net::{NetError, Transport};
use actix::Addr;

/// Roles this build cannot play yet: a node asked to play them says so plainly.
pub const NOT_YET: &[Role] = &[
    Role::Scheduler,
    Role::Executor,
    Role::Gateway,
    Role::Monitor,
];

/// How long a leaving KVS node may spend handing its keys to the remaining owners.
pub const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The running parts of one node.
pub struct NodeRoles {
    pub transport: Transport,
    pub membership: Addr<Membership>,
    pub kvs: KvsTier,
    /// This node's cache, when it plays the `executor` role (executors read through it).
    pub cache: Option<CacheHandle>,
}

impl NodeRoles {
    /// Start the transport, membership and every role in `cfg.node.roles`. Must run inside
    /// an actix `System`.
    pub async fn start(cfg: &Config) -> Result<NodeRoles, NetError> {
        let transport = Transport::start(cfg, None).await?;
        let membership = Membership::start(transport.clone(), cfg);
        EchoService::start(transport.clone(), Some(membership.clone().recipient()));
        let kvs = KvsTier::start(&transport, &membership, cfg);
        let cache = cfg
            .node
            .roles
            .contains(&Role::Executor)
            .then(|| CacheHandle::start(&transport, &membership, kvs.client.clone(), cfg));
        let pending: Vec<&str> = cfg
            .node
            .roles
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
        })
    }

    /// Hand this node's keys to the remaining owners, tell the peers this node leaves, then
    /// stop everything. Returns how many peers
    /// acknowledged the goodbye.
    pub async fn stop(self) -> usize {
        if !self.kvs.shards.is_empty() && !self.kvs.drain(DRAIN_LIMIT).await {
            tracing::warn!(
                "not every key was handed off before leaving; replicas (if any) keep them"
            );
        }
        let acks = self.membership.send(LeaveCluster).await.unwrap_or(0);
        self.transport.shutdown().await;
        self.kvs.stop();
        acks
    }
}
