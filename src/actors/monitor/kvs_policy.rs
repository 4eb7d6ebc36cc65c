//! The KVS elasticity policy: a pure core with no I/O, driven by explicit time, beside the
//! executor policy (`policy.rs`). Every tick the monitor hands it each KVS node's state and
//! last reported load; it returns the numbers it computed and at most one decision.
//!
//! - storage = Σ bytes / (mean budget × counted nodes), counted = active + starting +
//!   launched-but-not-joined (capacity already asked for); draining nodes are not counted;
//! - **storage**: storage above `storage_high`: launch one node;
//! - **busy**: the least busy active node's occupancy, averaged over the stable window, is
//!   above `busy_occupancy` (every node is busy): launch one node;
//! - **latency**: the mean service time over the stable window is above `latency_slo_us`
//!   and every node is at least `idle_occupancy` busy: launch one node;
//! - never more than `max_kvs` nodes, draining ones included;
//! - **underused**: with no node starting, draining or pending, more active nodes than
//!   `max(kvs.replication, min_kvs)`, the cluster's mean occupancy and the least busy
//!   removable node's under `idle_occupancy`, and the data fitting the other nodes under
//!   `storage_low` of their budget, all for `downscale_delay`, and the policy running for a
//!   stable window: drain that node (one at a time; it hands its keys off, leaves, and only
//!   then is terminated);
//! - after any action, nothing for `cooldown`, and the downscale delay starts again.
//!
//! The policy never launches a node just because there are few: with no active KVS node
//! (a cluster still forming) it decides nothing.

use super::policy::NodeState;
use crate::config::KvsAutoscaleConfig;
use crate::ids::NodeId;
pub use crate::protocol::KvsNumbers;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::Instant;

/// One KVS node as the monitor sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct KvsNode {
    pub node: NodeId,
    pub state: NodeState,
    pub bytes: u64,
    pub budget_bytes: u64,
    /// Busy time of its shards over its last report window, `0..=1`.
    pub occupancy: f64,
    /// Mean service time of its requests over that window, µs, and how many there were.
    pub service_us: f64,
    pub requests: u64,
    /// Launched by the node provider, so the provider can remove it.
    pub removable: bool,
}

/// The KVS tier at one tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KvsObservation {
    pub nodes: Vec<KvsNode>,
    /// KVS nodes the provider launched that have not joined yet.
    pub launches_pending: u32,
    /// `kvs.replication`: the policy never removes below it.
    pub replication: usize,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum KvsAction {
    /// Launch this many KVS nodes.
    Launch { count: u32 },
    /// Drain this KVS node (hand-off, leave), then terminate it.
    Drain { node: NodeId },
}

/// Why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvsReason {
    /// The data passed `storage_high` of the budget.
    Storage,
    /// Every node stayed busy over the stable window.
    Busy,
    /// Service time over the SLO while every node is in use.
    Latency,
    /// The cluster and the least busy node stayed under the low-water marks.
    Underused,
}

impl KvsReason {
    pub fn name(self) -> &'static str {
        match self {
            KvsReason::Storage => "storage",
            KvsReason::Busy => "busy",
            KvsReason::Latency => "latency",
            KvsReason::Underused => "underused",
        }
    }
}

/// One decision with its reason and the numbers behind it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KvsDecision {
    pub action: KvsAction,
    pub reason: KvsReason,
    pub numbers: KvsNumbers,
}

/// The result of one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct KvsTick {
    pub numbers: KvsNumbers,
    pub decision: Option<KvsDecision>,
}

/// One tick's load figures, kept for the stable window.
#[derive(Clone, Copy, Debug)]
struct Sample {
    occupancy_min: f64,
    occupancy_mean: f64,
    service_us: f64,
}

/// The policy's memory between ticks.
#[derive(Debug)]
pub struct KvsPolicy {
    cfg: KvsAutoscaleConfig,
    started: Instant,
    samples: VecDeque<(Instant, Sample)>,
    last_action: Option<Instant>,
    /// Since when the cluster has been under the low-water marks without a break.
    low_since: Option<Instant>,
}

impl KvsPolicy {
    pub fn new(cfg: KvsAutoscaleConfig, now: Instant) -> KvsPolicy {
        KvsPolicy {
            cfg,
            started: now,
            samples: VecDeque::new(),
            last_action: None,
            low_since: None,
        }
    }

    /// Decide at `now` on `obs`.
    pub fn tick(&mut self, obs: &KvsObservation, now: Instant) -> KvsTick {
        let active: Vec<&KvsNode> = obs
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Active)
            .collect();
        let mut numbers = self.numbers(obs, &active);
        if !active.is_empty() {
            self.remember(now, &active);
        }
        let (min, mean, service) = self.stable();
        (
            numbers.occupancy_min,
            numbers.occupancy_mean,
            numbers.service_us,
        ) = (min, mean, service);
        let decision = self.decide(&active, numbers, now);
        if decision.is_some() {
            self.last_action = Some(now);
            self.low_since = None;
        }
        KvsTick { numbers, decision }
    }

    fn numbers(&self, obs: &KvsObservation, active: &[&KvsNode]) -> KvsNumbers {
        let count = |s: NodeState| obs.nodes.iter().filter(|n| n.state == s).count() as u32;
        let (starting, draining) = (count(NodeState::Starting), count(NodeState::Draining));
        let counted = active.len() as u32 + starting + obs.launches_pending;
        let bytes: u64 = active.iter().map(|n| n.bytes).sum();
        let budget: u64 = active.iter().map(|n| n.budget_bytes).sum();
        let mean_budget = budget as f64 / active.len().max(1) as f64;
        let capacity = mean_budget * f64::from(counted);
        KvsNumbers {
            active: active.len() as u32,
            starting,
            draining,
            pending: obs.launches_pending,
            counted,
            floor: obs.replication.max(self.cfg.min_kvs) as u32,
            bytes,
            budget_bytes: budget,
            storage: if capacity > 0.0 {
                bytes as f64 / capacity
            } else {
                0.0
            },
            ..KvsNumbers::default()
        }
    }

    fn remember(&mut self, now: Instant, active: &[&KvsNode]) {
        let occ = active.iter().map(|n| n.occupancy);
        let requests: u64 = active.iter().map(|n| n.requests).sum();
        let service = active
            .iter()
            .map(|n| n.service_us * n.requests as f64)
            .sum::<f64>();
        self.samples.push_back((
            now,
            Sample {
                occupancy_min: occ.clone().fold(f64::INFINITY, f64::min),
                occupancy_mean: occ.sum::<f64>() / active.len() as f64,
                service_us: if requests > 0 {
                    service / requests as f64
                } else {
                    0.0
                },
            },
        ));
        let window = self.cfg.stable_window();
        while let Some((t, _)) = self.samples.front() {
            if now.saturating_duration_since(*t) > window {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// Means over the stable window: least busy occupancy, mean occupancy, service time.
    fn stable(&self) -> (f64, f64, f64) {
        let n = self.samples.len().max(1) as f64;
        let sum = |f: fn(&Sample) -> f64| self.samples.iter().map(|(_, s)| f(s)).sum::<f64>() / n;
        (
            sum(|s| s.occupancy_min),
            sum(|s| s.occupancy_mean),
            sum(|s| s.service_us),
        )
    }

    /// Whether the policy has watched for a whole stable window (a load rule needs one).
    fn seen_window(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.started) >= self.cfg.stable_window()
    }

    fn decide(&mut self, active: &[&KvsNode], n: KvsNumbers, now: Instant) -> Option<KvsDecision> {
        if !self.cfg.enabled || active.is_empty() {
            return None;
        }
        let cooling = self
            .last_action
            .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.cooldown());
        let low = self.low(active, n, now);
        if cooling {
            return None;
        }
        let room = ((n.counted + n.draining) as usize) < self.cfg.max_kvs;
        let c = &self.cfg;
        let launch = if n.storage > c.storage_high {
            Some(KvsReason::Storage)
        } else if !self.seen_window(now) {
            None
        } else if n.occupancy_min > c.busy_occupancy {
            Some(KvsReason::Busy)
        } else if n.service_us > c.latency_slo_us as f64 && n.occupancy_min > c.idle_occupancy {
            Some(KvsReason::Latency)
        } else {
            None
        };
        if let Some(reason) = launch {
            return room.then_some(KvsDecision {
                action: KvsAction::Launch { count: 1 },
                reason,
                numbers: n,
            });
        }
        let victim = low?;
        let since = self.low_since?;
        let waited = now.saturating_duration_since(since) >= self.cfg.downscale_delay();
        (waited && self.seen_window(now)).then_some(KvsDecision {
            action: KvsAction::Drain { node: victim },
            reason: KvsReason::Underused,
            numbers: n,
        })
    }

    /// The node to remove if the cluster is under the low-water marks now (and since when
    /// it has been, kept in `low_since`).
    fn low(&mut self, active: &[&KvsNode], n: KvsNumbers, now: Instant) -> Option<NodeId> {
        let c = &self.cfg;
        let settled = n.starting == 0 && n.draining == 0 && n.pending == 0;
        let above_floor = n.active > n.floor;
        let victim = active
            .iter()
            .filter(|x| x.removable)
            .min_by(|a, b| {
                a.occupancy
                    .total_cmp(&b.occupancy)
                    .then(a.bytes.cmp(&b.bytes))
                    .then_with(|| a.node.cmp(&b.node))
            })
            .filter(|v| v.occupancy < c.idle_occupancy);
        let fits = victim.is_some_and(|v| {
            let rest = n.budget_bytes.saturating_sub(v.budget_bytes);
            rest > 0 && (n.bytes as f64) < c.storage_low * rest as f64
        });
        let quiet = n.occupancy_mean < c.idle_occupancy;
        match (settled && above_floor && fits && quiet, victim) {
            (true, Some(v)) => {
                self.low_since.get_or_insert(now);
                Some(v.node.clone())
            }
            _ => {
                self.low_since = None;
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "kvs_policy_tests.rs"]
mod tests;
