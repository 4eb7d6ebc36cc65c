//! Messages of the membership service: the wire ones (join, heartbeat gossip, leave, view
//! query) and the local ones (subscribe, leave the cluster).

use super::core::{Member, View};
use crate::ids::NodeRef;
use actix::{Message, Recipient};
use serde::{Deserialize, Serialize};

/// A node asks a member (the seed) to let it in; the reply is the member's view, or why
/// it is refused (e.g. its replication factor is not the cluster's).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<View, String>")]
pub struct Join {
    pub member: Member,
    /// The KVS replication factor the joining node runs with: every node routes and
    /// acknowledges writes by it, so all must agree.
    pub replication: u32,
}

/// Heartbeat, sent one-way every `heartbeat_ms`, carrying the sender's view.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Gossip {
    pub from: Member,
    pub members: Vec<Member>,
}

/// Graceful goodbye from `node` (this incarnation).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Leave {
    pub node: NodeRef,
}

/// The current view (for tests, the dashboard, other services).
#[derive(Debug, Clone, Copy, Message, Serialize, Deserialize)]
#[rtype(result = "View")]
pub struct GetView;

/// Sent to subscribers whenever the view changes (a member appears, changes state or
/// generation, or is forgotten) — not on every heartbeat. The current view is sent at once
/// on subscription.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ViewChanged {
    pub view: View,
}

/// Local: deliver [`ViewChanged`] to this recipient from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<ViewChanged>);

/// Local: this node starts draining; every live peer is told at once (not at the next
/// heartbeat). Resolves to how many acknowledged.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct StartDraining;

/// Local: tell every live peer this node is leaving; resolves to how many acknowledged.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct LeaveCluster;
