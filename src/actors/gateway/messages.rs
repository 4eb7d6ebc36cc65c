//! Messages the gateway receives from the rest of the cluster.

use crate::ids::CallId;
use crate::net::{RemoteMessage, ServiceId};
use crate::pyrt::PyValue;
use serde::{Deserialize, Serialize};

/// Why a call failed, as the caller sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallFailure {
    /// Stable error code: `function_error` (the function raised), `timeout`,
    /// `worker_crashed`, `unknown_function`, ... (see docs/protocol.md).
    pub code: String,
    pub message: String,
    /// For `function_error`: the exception type and the traceback.
    pub exception_type: Option<String>,
    pub traceback: Option<String>,
}

/// A call finished (sent one-way by the DAG's sink executor to the caller's gateway).
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct CallFinished {
    pub call: CallId,
    pub outcome: Result<PyValue, CallFailure>,
}

impl RemoteMessage for CallFinished {
    const SERVICE: ServiceId = ServiceId::Gateway;
    const TAG: u16 = 0;
}
