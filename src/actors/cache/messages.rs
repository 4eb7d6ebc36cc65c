//! Messages of the cache boundary that other actors depend on.

use crate::ids::{Key, NodeRef};
use crate::net::{RemoteMessage, ServiceId};
use serde::{Deserialize, Serialize};

/// Sent periodically by each executor node's cache to the schedulers: which keys it holds
/// (the scheduler places calls where their referenced keys are cached).
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct CacheKeysReport {
    pub node: NodeRef,
    pub keys: Vec<Key>,
}

impl RemoteMessage for CacheKeysReport {
    const SERVICE: ServiceId = ServiceId::Scheduler;
    const TAG: u16 = 10;
}
