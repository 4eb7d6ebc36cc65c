//! What can cross nodes: service ids, the [`RemoteMessage`] trait and [`ActorRef`] addresses.

use crate::ids::NodeRef;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The kinds of actor a node can host. The wire carries the discriminant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u16)]
pub enum ServiceId {
    Membership,
    Echo,
    KvsShard,
    Cache,
    Executor,
    Scheduler,
    Gateway,
    Monitor,
    /// What every node answers whatever its roles: its own figures and call logs.
    Node,
}

impl ServiceId {
    /// Every service in declaration order: the position is the index serde (and so the
    /// wire) uses. New services go at the end.
    pub const ALL: [ServiceId; 9] = [
        ServiceId::Membership,
        ServiceId::Echo,
        ServiceId::KvsShard,
        ServiceId::Cache,
        ServiceId::Executor,
        ServiceId::Scheduler,
        ServiceId::Gateway,
        ServiceId::Monitor,
        ServiceId::Node,
    ];

    /// The wire index of this service.
    pub fn index(self) -> u32 {
        self as u32
    }

    /// The service with wire index `i`, if any.
    pub fn from_index(i: u32) -> Option<ServiceId> {
        Self::ALL.get(i as usize).copied()
    }

    /// Lower-case name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            ServiceId::Membership => "membership",
            ServiceId::Echo => "echo",
            ServiceId::KvsShard => "kvs-shard",
            ServiceId::Cache => "cache",
            ServiceId::Executor => "executor",
            ServiceId::Scheduler => "scheduler",
            ServiceId::Gateway => "gateway",
            ServiceId::Monitor => "monitor",
            ServiceId::Node => "node",
        }
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A message that may cross nodes. Its actix result is its reply.
///
/// A service may accept several message types: each has its own [`RemoteMessage::TAG`],
/// and every `(SERVICE, TAG)` pair must name exactly one type (the crate declares every
/// pair in one table; `Transport::register` refuses a second type for a registered pair). The reply type's bounds are
/// written as associated-type bounds so they are implied wherever `M: RemoteMessage` is.
pub trait RemoteMessage:
    actix::Message<Result: Serialize + DeserializeOwned + Send + 'static>
    + Serialize
    + DeserializeOwned
    + Send
    + 'static
{
    /// The service whose actors handle this message.
    const SERVICE: ServiceId;
    /// Distinguishes the message types of one service (0 for a service's only type).
    const TAG: u16 = 0;
}

/// Address of one actor instance anywhere in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorRef {
    /// The node (and its incarnation) hosting the actor.
    pub node: NodeRef,
    /// Which kind of actor.
    pub service: ServiceId,
    /// Which one of that kind on the node (shard number, executor number, 0 for singletons).
    pub instance: u32,
}

impl ActorRef {
    /// The actor `(service, instance)` on `node`.
    pub fn new(node: NodeRef, service: ServiceId, instance: u32) -> Self {
        ActorRef {
            node,
            service,
            instance,
        }
    }
}

impl fmt::Display for ActorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.node, self.service, self.instance)
    }
}
