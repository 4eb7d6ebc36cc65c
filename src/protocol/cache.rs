//! What executors ask a node's cache about a call's session: repeatable-read pins.

use crate::ids::{CallId, Key};
use crate::lattice::LatticeValue;
use serde::{Deserialize, Serialize};

/// Repeatable read: the values `session` pinned in this cache for `keys` (in order), pinning
/// what a read returns now for keys not pinned yet (first pin wins; absence is pinned too).
/// Sent to the session's home cache by executors on other nodes; `Err` carries the KVS
/// error's message.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Result<Vec<Option<LatticeValue>>, String>")]
pub struct SessionRead {
    pub session: CallId,
    pub keys: Vec<Key>,
}

/// Repeatable read: the call `session` completed (or failed): drop its pins (one-way).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct ReleaseSession {
    pub session: CallId,
}
