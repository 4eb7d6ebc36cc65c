//! Starting and stopping the roles a node plays. `cloudburst node` (any subset of roles) and
//! `cloudburst local` (all of them, in one process) both go through [`NodeRoles::start`].
//!
//! Every node runs the transport, membership, the Echo service and the KVS routing
//! watcher; each role adds its actors. A role added here is removed from [`NOT_YET`].

use crate::actors::gateway::Gateway;
use crate::actors::kvs::KvsTier;
use crate::config::{Config, Role};
use crate::net::echo::EchoService;
use crate::net::membership::{LeaveCluster, Membership};
use crate::net::{NetError, Transport};
use actix::Addr;

/// Roles this build cannot play yet: a node asked to play them says so plainly.
pub const NOT_YET: &[Role] = &[Role::Scheduler, Role::Executor, Role::Monitor];

/// The running parts of one node.
pub struct NodeRoles {
    pub transport: Transport,
    pub membership: Addr<Membership>,
    pub kvs: KvsTier,
    /// The client websocket gateway, on nodes playing `gateway`.
    pub gateway: Option<Gateway>,
}

impl NodeRoles {
    /// Start the transport, membership and every role in `cfg.node.roles`. Must run inside
    /// an actix `System`.
    pub async fn start(cfg: &Config) -> Result<NodeRoles, NetError> {
        let transport = Transport::start(cfg, None).await?;
        let membership = Membership::start(transport.clone(), cfg);
        EchoService::start(transport.clone(), Some(membership.clone().recipient()));
        let kvs = KvsTier::start(&transport, &membership, cfg);
        let gateway = if cfg.node.roles.contains(&Role::Gateway) {
            let g = Gateway::start(&transport, &membership, kvs.client.clone(), cfg)
                .map_err(|e| NetError::Io(e.to_string()))?;
            Some(g)
        } else {
            None
        };
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
            gateway,
        })
    }

    /// Tell the peers this node leaves, then stop everything. Returns how many peers
    /// acknowledged the goodbye.
    pub async fn stop(self) -> usize {
        if let Some(g) = &self.gateway {
            g.stop().await;
        }
        let acks = self.membership.send(LeaveCluster).await.unwrap_or(0);
        self.transport.shutdown().await;
        self.kvs.stop();
        acks
    }
}
