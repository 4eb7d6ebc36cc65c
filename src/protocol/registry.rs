//! What schedulers tell each other about the registry: a registration or deletion reaches
//! every live scheduler before it is acknowledged, so a call made through any node right
//! after sees it (none has to wait for the KVS to hand the record to a new owner, nor for
//! a cache entry to expire).

use super::records::DagSpec;
use serde::{Deserialize, Serialize};

/// What a call of one function needs from its registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionMeta {
    /// Content hash (see `records::function_hash`).
    pub hash: u64,
    pub timeout_ms: Option<u64>,
    /// Re-runs after system failures it allows (the default when it registered none).
    pub retries: u32,
    /// Whether its exception or timeout re-runs the call.
    pub retry_errors: bool,
    /// A class function: its `__init__` (say, loading a model) runs once per worker, so
    /// placement prefers an executor that holds it loaded.
    pub class: bool,
}

/// One change of the registry, as already stored in the KVS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryChange {
    /// A function was registered or replaced (DAGs using it now call the new one).
    Function {
        name: String,
        meta: FunctionMeta,
    },
    FunctionDeleted {
        name: String,
    },
    /// A DAG was registered or replaced, with the metadata of its functions (in the order
    /// of its validated plan).
    Dag {
        spec: DagSpec,
        functions: Vec<FunctionMeta>,
    },
    DagDeleted {
        name: String,
    },
}

/// From the scheduler that made a change to every other live scheduler; answered once
/// the receiver's plan cache reflects it.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct RegistryChanged {
    pub change: RegistryChange,
}

/// From a scheduler that found a name in neither its plan cache nor the KVS, to every other
/// live scheduler, before it answers `unknown_function` / `unknown_dag`. A registration is
/// announced only to the schedulers its own scheduler knew of when it was acknowledged; one
/// that joined since (or read the KVS through a routing that had not caught up with the
/// writer's) learns it here. Answered with the change that installs it, as the receiver
/// reads it (from its plan cache or through its own routing of the KVS), or `None` when the
/// receiver does not know it either.
#[derive(Clone, Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "Option<RegistryChange>")]
pub struct LookupRegistration {
    pub what: super::Listing,
    pub name: String,
}
