//! The monitor: decides how many executor nodes the cluster runs.
//!
//! - [`policy`]: the autoscaling policy, a pure core driven by explicit time and the
//!   metrics it is given; it returns decisions with their reasons and numbers.
//! - [`observe`]: which monitor acts, and the policy's view of the executors (no I/O).
//! - [`kvs_policy`]: the KVS elasticity policy (storage, load), a pure core like the
//!   executor policy.
//! - [`kvs_hot`]: selective replication of hot keys, a pure core like the others.
//! - [`kvs_scaler`]: the I/O around the KVS policy (reports, launches, drains).
//! - [`hot`]: which functions are hot (a launched executor loads them: warm starts).
//! - [`launches`]: launches asked of the node provider, reconciled every tick (late or
//!   dead launches are replaced; repeated failures stop the launching).
//! - [`record`]: decisions and the last numbers, kept for the dashboard and `/metrics`.
//! - [`provider`]: the node provider seam (`launch`, `terminate`, `list`).
//! - [`local`]: the local provider: executor nodes as child processes on loopback.
//! - [`k8s`]: the Kubernetes provider: executors of a Deployment, KVS nodes of a
//!   StatefulSet, scaled through the API server (feature `kubernetes`).
//! - [`actor`]: the monitor actor, the I/O around them.

pub mod actor;
pub mod hot;
#[cfg(feature = "kubernetes")]
pub mod k8s;
pub mod kvs_hot;
pub mod kvs_policy;
pub mod kvs_scaler;
pub mod launches;
pub mod local;
pub mod observe;
pub mod policy;
pub mod provider;
pub mod record;

pub use actor::{Monitor, TakeProvider};
pub use policy::{Action, Decision, ExecutorNode, NodeState, Numbers, Observation, Policy, Reason};
