//! The monitor: decides how many executor nodes the cluster runs.
//!
//! - [`policy`]: the autoscaling policy, a pure core driven by explicit time and the
//!   metrics it is given; it returns decisions with their reasons and numbers.
//! - [`launches`]: launches asked of the node provider, reconciled every tick (late or
//!   dead launches are replaced; repeated failures stop the launching).
//! - [`provider`]: the node provider seam (`launch`, `terminate`, `list`).

pub mod launches;
pub mod policy;
pub mod provider;

pub use policy::{Action, Decision, ExecutorNode, NodeState, Numbers, Observation, Policy, Reason};
