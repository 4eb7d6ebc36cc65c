//! The monitor: decides how many executor nodes the cluster runs.
//!
//! - [`policy`]: the autoscaling policy, a pure core driven by explicit time and the
//!   metrics it is given; it returns decisions with their reasons and numbers.

pub mod policy;

pub use policy::{Action, Decision, ExecutorNode, NodeState, Numbers, Observation, Policy, Reason};
