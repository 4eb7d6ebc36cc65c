//! The executor autoscaling policy: a pure core with no I/O, driven by explicit time.
//!
//! Every tick the monitor hands it what the cluster looks like ([`Observation`]: each
//! executor node's state and load, and launches the provider has not yet seen join) and
//! gets back the numbers it computed and at most one [`Decision`] with its reason.
//!
//! The rules, in the order they are tried:
//! - demand = Σ (calls in flight + queued) over active executors, averaged over a stable
//!   and a short panic window; capacity = Σ workers of active (ready, not draining) nodes;
//! - desired nodes = ceil(demand / (target × workers per node)), clamped to
//!   `[min_executors, max_executors]`;
//! - nodes counted = active + starting + launched-but-not-joined (capacity already asked
//!   for); draining nodes are not counted;
//! - below `min_executors`: launch up to it;
//! - panic (the panic window's demand reaches `panic_threshold` × capacity): scale up at
//!   once on the panic window; otherwise scale up on the stable window; at most
//!   `max_scale_up_rate` × the count per decision, never beyond `max_executors`;
//! - scale down one node at a time, only when demand stayed below target (one node fewer
//!   would still carry it) for `downscale_delay`, with no node starting, draining or pending,
//!   and not within one stable window of the policy's start (a restarted monitor has no
//!   history); the victim is idle, holds no waiting schedules, was launched by the provider,
//!   and has the smallest cache;
//! - after any action, nothing for `cooldown`, and the downscale delay starts again;
//! - scale from zero: calls wait at a scheduler and no node is counted: launch one at once
//!   (no cooldown); with `min_executors = 0` the last node is drained once demand was nil
//!   for `idle_to_zero`.

use crate::config::AutoscaleConfig;
use crate::ids::NodeId;
pub use crate::protocol::Numbers;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What an executor node is doing, as it reports itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Joined but not yet ready to take calls.
    Starting,
    /// Ready and taking new calls.
    Active,
    /// Finishing what it holds, taking nothing new; leaves when done.
    Draining,
}

/// One executor node as the monitor sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorNode {
    pub node: NodeId,
    pub state: NodeState,
    pub workers: u32,
    /// Calls in flight plus queued, averaged over the node's last report interval.
    pub demand: f64,
    /// Calls running or queued at the last report: a node with any is busy.
    pub in_flight: u32,
    pub queued: u32,
    /// DAG schedules it holds that wait for triggers: removing it would strand them.
    pub waiting_schedules: u32,
    /// Bytes in its cache (the smallest useful cache is the cheapest to lose).
    pub cache_bytes: u64,
    /// Launched by the node provider, so the provider can remove it. The executor inside
    /// the monitor's own process (`cloudburst local`) and nodes started by hand are not.
    pub removable: bool,
}

impl ExecutorNode {
    fn busy(&self) -> bool {
        self.in_flight > 0 || self.queued > 0 || self.waiting_schedules > 0
    }
}

/// The cluster at one tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub executors: Vec<ExecutorNode>,
    /// Nodes the provider launched that have not joined yet.
    pub launches_pending: u32,
    /// Calls the schedulers hold because no executor runs.
    pub calls_waiting: u32,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Action {
    /// Launch this many executor nodes.
    Launch { count: u32 },
    /// Drain this node, then (once it has left) terminate it.
    Drain { node: NodeId },
}

/// Why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Fewer nodes than `min_executors`.
    BelowMinimum,
    /// The panic window's demand reached the panic threshold times the capacity.
    Panic,
    /// The stable window's demand needs more nodes.
    Stable,
    /// Demand stayed below target for the downscale delay.
    Idle,
    /// Calls wait and no executor node runs or is coming: one is launched at once.
    FromZero,
}

/// One decision with its reason and the numbers behind it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub action: Action,
    pub reason: Reason,
    pub numbers: Numbers,
}

/// The result of one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub numbers: Numbers,
    pub decision: Option<Decision>,
}

/// The policy's state: the demand history and when it last acted.
#[derive(Debug)]
pub struct Policy {
    cfg: AutoscaleConfig,
    started: Instant,
    /// (time, demand) per tick, oldest first, no older than the stable window.
    samples: VecDeque<(Instant, f64)>,
    last_action: Option<Instant>,
    /// Since when demand has fitted on one node fewer (reset by any action).
    below_since: Option<Instant>,
}

impl Policy {
    /// A policy starting at `now` with no history (so no scale-down for one stable window).
    pub fn new(cfg: AutoscaleConfig, now: Instant) -> Self {
        Policy {
            cfg,
            started: now,
            samples: VecDeque::new(),
            last_action: None,
            below_since: None,
        }
    }

    pub fn config(&self) -> &AutoscaleConfig {
        &self.cfg
    }

    /// Record `obs` at `now` and decide.
    pub fn tick(&mut self, obs: &Observation, now: Instant) -> Tick {
        let numbers = self.measure(obs, now);
        let decision = self.decide(obs, &numbers, now);
        if decision.is_some() {
            self.last_action = Some(now);
            self.below_since = None;
        }
        Tick { numbers, decision }
    }

    fn measure(&mut self, obs: &Observation, now: Instant) -> Numbers {
        let count = |s: NodeState| obs.executors.iter().filter(|e| e.state == s).count() as u32;
        let active = obs
            .executors
            .iter()
            .filter(|e| e.state == NodeState::Active);
        // A report is checked where it arrives; a non-finite figure here counts as none.
        let demand_now: f64 = active
            .clone()
            .map(|e| {
                if e.demand.is_finite() {
                    e.demand.max(0.0)
                } else {
                    0.0
                }
            })
            .sum();
        let capacity = active.map(|e| e.workers).sum();
        self.samples.push_back((now, demand_now));
        let horizon = now.checked_sub(self.cfg.stable_window());
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| horizon.is_some_and(|h| *t < h))
        {
            self.samples.pop_front();
        }
        let (active, starting, draining) = (
            count(NodeState::Active),
            count(NodeState::Starting),
            count(NodeState::Draining),
        );
        let counted = active + starting + obs.launches_pending;
        let demand_stable = self.average(self.cfg.stable_window(), now);
        Numbers {
            demand_now,
            demand_stable,
            demand_panic: self.average(self.cfg.panic_window(), now),
            capacity,
            active,
            starting,
            draining,
            pending: obs.launches_pending,
            counted,
            desired: self.nodes_for(demand_stable, self.workers_per_node(obs)),
            waiting: obs.calls_waiting,
        }
    }

    /// Mean demand of the samples within `window` of `now` (the current one included).
    fn average(&self, window: Duration, now: Instant) -> f64 {
        let since = now.checked_sub(window);
        let recent: Vec<f64> = self
            .samples
            .iter()
            .filter(|(t, _)| since.is_none_or(|s| *t >= s))
            .map(|(_, d)| *d)
            .collect();
        recent.iter().sum::<f64>() / recent.len().max(1) as f64
    }

    /// Workers a new node brings: the mean over the nodes that reported some (1 when none
    /// did; a starting node has not said yet).
    fn workers_per_node(&self, obs: &Observation) -> f64 {
        let sized = obs.executors.iter().filter(|e| e.workers > 0);
        let n = sized.clone().count();
        let total: u32 = sized.map(|e| e.workers).sum();
        if n == 0 || total == 0 {
            1.0
        } else {
            f64::from(total) / n as f64
        }
    }

    /// ceil(demand / (target × workers)), clamped to the configured limits.
    fn nodes_for(&self, demand: f64, workers_per_node: f64) -> u32 {
        let per_node = self.cfg.target_utilisation * workers_per_node;
        let raw = (demand / per_node).ceil();
        let raw = if raw.is_finite() && raw > 0.0 {
            raw
        } else {
            0.0
        };
        let (lo, hi) = (self.cfg.min_executors as f64, self.cfg.max_executors as f64);
        raw.clamp(lo, hi) as u32
    }

    fn decide(&mut self, obs: &Observation, n: &Numbers, now: Instant) -> Option<Decision> {
        let fits_one_fewer = n.counted > 0
            && n.demand_now
                <= self.cfg.target_utilisation
                    * self.workers_per_node(obs)
                    * f64::from(n.counted - 1);
        if !fits_one_fewer || obs.calls_waiting > 0 {
            self.below_since = None;
        } else if self.below_since.is_none() {
            self.below_since = Some(now);
        }
        let decide = |action, reason| {
            Some(Decision {
                action,
                reason,
                numbers: *n,
            })
        };
        let max = self.cfg.max_executors as u32;
        let min = self.cfg.min_executors as u32;
        // Draining nodes still occupy a slot under the maximum until they are gone.
        let room = max.saturating_sub(n.counted + n.draining);
        // A call waits with nothing to run it: no cooldown holds that back.
        if n.counted == 0 && n.waiting > 0 && room > 0 {
            return decide(Action::Launch { count: 1 }, Reason::FromZero);
        }
        if self
            .last_action
            .is_some_and(|t| now.duration_since(t) < self.cfg.cooldown())
        {
            return None;
        }
        let short = min.saturating_sub(n.counted).min(room);
        if short > 0 {
            return decide(Action::Launch { count: short }, Reason::BelowMinimum);
        }
        if let Some((count, reason)) = self.scale_up(obs, n, room) {
            return decide(Action::Launch { count }, reason);
        }
        let victim = self.scale_down_victim(obs, n, now)?;
        decide(Action::Drain { node: victim }, Reason::Idle)
    }

    /// How many nodes to launch now, and why; `None` when enough are counted.
    fn scale_up(&self, obs: &Observation, n: &Numbers, room: u32) -> Option<(u32, Reason)> {
        let panic = n.demand_panic > 0.0
            && n.demand_panic >= self.cfg.panic_threshold * f64::from(n.capacity);
        let (want, reason) = if panic {
            let need = self.nodes_for(n.demand_panic, self.workers_per_node(obs));
            (need.max(n.desired), Reason::Panic)
        } else {
            (n.desired, Reason::Stable)
        };
        let rate_cap = ((f64::from(n.counted.max(1)) * self.cfg.max_scale_up_rate).floor() as u32)
            .saturating_sub(n.counted)
            .max(1);
        let count = want.saturating_sub(n.counted).min(room).min(rate_cap);
        (count > 0).then_some((count, reason))
    }

    /// The node to drain now, if every scale-down rule allows one.
    fn scale_down_victim(&self, obs: &Observation, n: &Numbers, now: Instant) -> Option<NodeId> {
        let settled = n.starting == 0 && n.draining == 0 && n.pending == 0;
        let warmed_up = now.duration_since(self.started) >= self.cfg.stable_window();
        // The last node goes after the scale-to-zero grace period, the others after the
        // downscale delay.
        let delay = if n.counted == 1 {
            self.cfg.idle_to_zero()
        } else {
            self.cfg.downscale_delay()
        };
        let delay_over = self
            .below_since
            .is_some_and(|t| now.duration_since(t) >= delay);
        let above_min = n.counted > self.cfg.min_executors as u32 && n.desired < n.counted;
        if !(settled && warmed_up && delay_over && above_min) {
            return None;
        }
        obs.executors
            .iter()
            .filter(|e| e.state == NodeState::Active && e.removable && !e.busy())
            .min_by(|a, b| (a.cache_bytes, &a.node).cmp(&(b.cache_bytes, &b.node)))
            .map(|e| e.node.clone())
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
