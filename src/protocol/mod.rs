//! The contract between the actors of the function plane (gateway, scheduler, executor,
//! and the node's cache they share): the messages they exchange, the records they keep in
//! the KVS, the limits and value conversions they must agree on, the error codes clients
//! see, and the table of every wire tag in the crate. Each actor depends on this module and on the lower tiers (the
//! cache, the KVS client), never on a sibling actor.
//!
//! - [`call`]: one call's way through the cluster: arguments, consistency, where the result
//!   goes, schedules, triggers, session metadata, `send`s, results and failures.
//! - [`claim`]: a call sent again through another gateway, claimed from the executors.
//! - [`requests`]: what a scheduler is asked (registrations, listings, calls) and the
//!   reports executors and caches send it.
//! - [`records`]: function and DAG records in the KVS, their key prefixes, content hashes.
//! - [`registry`]: registry changes one scheduler tells the others before acknowledging.
//! - [`cache`]: what executors ask a node's cache about a call's session.
//! - [`values`]: Python values as stored lattices and back.
//! - [`limits`]: bounds several actors enforce.
//! - [`load`]: the load an executor reports with its status (what the monitor scales on).
//! - [`observe`]: what every node tells dashboards and clients: its figures, call logs.
//! - [`kvs_scaling`]: what KVS nodes report to the monitor, its request to leave, and its
//!   table of hot keys' replication overrides.
//! - [`scaling`]: what the monitor receives (reports), sends (drain requests) and shows.
//! - [`error`]: [`ErrorCode`], every error code the server sends, and what a retry can do.
//! - [`tags`]: every `(service, tag)` pair of the crate, declared once.

pub mod cache;
pub mod call;
pub mod claim;
pub mod error;
pub mod kvs_scaling;
pub mod limits;
pub mod load;
pub mod observe;
pub mod records;
pub mod registry;
pub mod requests;
pub mod scaling;
pub mod tags;
pub mod values;

pub use cache::{ReleaseSession, SessionRead};
pub use call::{
    session_of, Aborted, Arg, AttemptEnded, AttemptsDelivered, CallFailure, CallFinished, Cancel,
    Consistency, Deliver, Downstream, Reply, Schedule, SessionMeta, Trigger,
};
pub use claim::{ClaimCall, Claimed};
pub use error::ErrorCode;
pub use kvs_scaling::{
    DrainKvsNode, HotKey, KvsAutoscaleState, KvsDecisionCount, KvsDecisionRecord, KvsNodeMetrics,
    KvsNodeStatus, KvsNumbers, KvsReport, ReplicationOverride, ReplicationOverrides,
};
pub use limits::{MAX_DAG_FUNCTIONS, MAX_KEY_BYTES};
pub use load::{ExecutorLoad, FunctionLoad, NodeState};
pub use observe::{CallLog, GetCallLogs, GetNodeStats, NodeStats, PoolStats};
pub use records::{
    DagSpec, FunctionRecord, DAG_PREFIX, FUNCTION_PREFIX, RESERVED_PREFIX, RESULT_PREFIX,
};
pub use registry::{FunctionMeta, LookupRegistration, RegistryChange, RegistryChanged};
pub use requests::{
    CacheKeysReport, CallAccepted, CallDag, CallFunction, CallOptions, CancelCall, DeleteDag,
    DeleteFunction, ExecutorStatus, FunctionError, List, Listing, RegisterDag, RegisterFunction,
};
pub use scaling::{
    AutoscaleState, DecisionRecord, DrainNode, ExecutorsWanted, GetAutoscale, MonitorReport,
    Numbers,
};
pub use values::{to_lattice, to_python};
