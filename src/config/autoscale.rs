//! The `[autoscale]` section: the executor autoscaling policy the monitor applies.
//!
//! Defaults follow the serverless reference points: Knative's 2 s tick, 60 s stable and
//! 6 s panic windows, panic at 200 % of capacity and a target utilisation of 0.7; the 120 s
//! grace period before a scale-down that the original Cloudburst and Anna use.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The executor autoscaling policy. Every threshold the monitor decides on is here.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AutoscaleConfig {
    /// Fewest executor nodes the monitor keeps (it launches up to this many at once). With
    /// 0 an idle cluster holds no executor: a call then waits at the scheduler (within its
    /// deadline) while the monitor launches one.
    pub min_executors: usize,
    /// Most executor nodes, counting those starting and draining; also `--max-executors`.
    /// The monitor never asks for more, whatever the load.
    pub max_executors: usize,
    /// Fraction of the workers that demand (calls in flight plus queued) should keep busy:
    /// desired nodes = ceil(demand / (target × workers per node)). Below 1 so that a burst
    /// finds idle workers while new nodes start.
    pub target_utilisation: f64,
    /// Demand is averaged over this window for ordinary scale-up and for scale-down.
    pub stable_window_ms: u64,
    /// Demand is also averaged over this short window; when it reaches `panic_threshold`
    /// times the capacity, the monitor scales up at once on it.
    pub panic_window_ms: u64,
    /// Panic when the panic window's demand reaches this multiple of the capacity.
    pub panic_threshold: f64,
    /// One decision may multiply the executor count by at most this (2: up to doubling),
    /// so a short spike cannot ask for a fleet.
    pub max_scale_up_rate: f64,
    /// A scale-down needs demand to have stayed below target for this long (and never
    /// happens while a node is starting or draining).
    pub downscale_delay_ms: u64,
    /// No action follows another within this time: the effect of the last one (a node
    /// starting, a drain) shows in the metrics first.
    pub cooldown_ms: u64,
    /// With `min_executors = 0`: the last executor node is drained once no call ran,
    /// queued or waited for this long (Knative's scale-to-zero grace period is 30 s).
    pub idle_to_zero_ms: u64,
    /// How often the monitor decides (and reconciles the node provider).
    pub tick_ms: u64,
    /// A launched node that has not joined the cluster within this long is terminated and
    /// launched again. A node process starts its Python workers in seconds; the serverless
    /// references see cold starts of 4 to 15 s.
    pub launch_timeout_ms: u64,
    /// After this many failed launches in a row the monitor stops launching and says so
    /// (a broken binary or environment would otherwise be spawned for ever).
    pub max_launch_failures: u32,
    /// Executor node processes the local provider keeps started but not joined (their
    /// Python workers up, holding no calls and counted as no capacity): a launch hands one
    /// over, so a new node serves in a fraction of a second instead of starting its
    /// workers first. Each costs its workers' memory while it waits; 0 turns it off.
    pub standby_executors: usize,
}

impl Default for AutoscaleConfig {
    fn default() -> Self {
        AutoscaleConfig {
            min_executors: 1,
            max_executors: 4,
            target_utilisation: 0.7,
            stable_window_ms: 60_000,
            panic_window_ms: 6_000,
            panic_threshold: 2.0,
            max_scale_up_rate: 2.0,
            downscale_delay_ms: 120_000,
            cooldown_ms: 6_000,
            idle_to_zero_ms: 30_000,
            tick_ms: 2_000,
            launch_timeout_ms: 30_000,
            max_launch_failures: 3,
            standby_executors: 1,
        }
    }
}

/// Upper bound on `max_executors`: each executor node is a process with its own Python
/// workers; beyond this a typo (an extra zero) would be taken for a request.
pub const MAX_EXECUTORS_LIMIT: usize = 1_000;

/// Upper bound on `standby_executors`: standby nodes are idle processes with Python
/// workers; a few cover a burst of launches, more only cost memory.
pub const MAX_STANDBY_EXECUTORS: usize = 8;

impl AutoscaleConfig {
    /// Check the section's own rules; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_executors == 0 || self.max_executors > MAX_EXECUTORS_LIMIT {
            return Err(format!(
                "autoscale.max_executors must be between 1 and {MAX_EXECUTORS_LIMIT}"
            ));
        }
        if self.min_executors > self.max_executors {
            return Err(format!(
                "autoscale.min_executors ({}) must not exceed autoscale.max_executors ({})",
                self.min_executors, self.max_executors
            ));
        }
        if !(self.target_utilisation > 0.0 && self.target_utilisation <= 1.0) {
            return Err("autoscale.target_utilisation must be in (0, 1]".into());
        }
        if !(self.panic_threshold > 1.0 && self.panic_threshold.is_finite()) {
            return Err("autoscale.panic_threshold must be a finite number above 1".into());
        }
        if !(self.max_scale_up_rate > 1.0 && self.max_scale_up_rate.is_finite()) {
            return Err("autoscale.max_scale_up_rate must be a finite number above 1".into());
        }
        if self.standby_executors > MAX_STANDBY_EXECUTORS {
            return Err(format!(
                "autoscale.standby_executors must be at most {MAX_STANDBY_EXECUTORS}"
            ));
        }
        if self.tick_ms == 0 {
            return Err("autoscale.tick_ms must be greater than 0".into());
        }
        if self.launch_timeout_ms < self.tick_ms || self.max_launch_failures == 0 {
            return Err("autoscale.launch_timeout_ms must be at least autoscale.tick_ms, and autoscale.max_launch_failures above 0".into());
        }
        if self.panic_window_ms < self.tick_ms {
            return Err("autoscale.panic_window_ms must be at least autoscale.tick_ms".into());
        }
        if self.stable_window_ms < self.panic_window_ms {
            return Err(
                "autoscale.stable_window_ms must be at least autoscale.panic_window_ms".into(),
            );
        }
        Ok(())
    }

    pub fn stable_window(&self) -> Duration {
        Duration::from_millis(self.stable_window_ms)
    }

    pub fn panic_window(&self) -> Duration {
        Duration::from_millis(self.panic_window_ms)
    }

    pub fn downscale_delay(&self) -> Duration {
        Duration::from_millis(self.downscale_delay_ms)
    }

    pub fn cooldown(&self) -> Duration {
        Duration::from_millis(self.cooldown_ms)
    }

    pub fn idle_to_zero(&self) -> Duration {
        Duration::from_millis(self.idle_to_zero_ms)
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    pub fn launch_timeout(&self) -> Duration {
        Duration::from_millis(self.launch_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let c = AutoscaleConfig::default();
        c.validate().expect("defaults validate");
        assert_eq!(
            (c.target_utilisation, c.stable_window_ms, c.panic_window_ms),
            (0.7, 60_000, 6_000)
        );
        assert_eq!(c.downscale_delay_ms, 120_000);
    }

    /// Spoils one key of a default config.
    type Spoil = fn(&mut AutoscaleConfig);

    #[test]
    fn each_bad_value_names_its_key() {
        let cases: [(Spoil, &str); 10] = [
            (|c| c.standby_executors = 99, "standby_executors"),
            (|c| c.launch_timeout_ms = 1, "launch_timeout_ms"),
            (|c| c.max_launch_failures = 0, "max_launch_failures"),
            (|c| c.max_executors = 0, "max_executors"),
            (|c| c.min_executors = 9, "min_executors"),
            (|c| c.target_utilisation = 0.0, "target_utilisation"),
            (|c| c.target_utilisation = f64::NAN, "target_utilisation"),
            (|c| c.panic_threshold = 1.0, "panic_threshold"),
            (|c| c.panic_window_ms = 1, "panic_window_ms"),
            (|c| c.stable_window_ms = 1_000, "stable_window_ms"),
        ];
        for (spoil, key) in cases {
            let mut c = AutoscaleConfig::default();
            spoil(&mut c);
            let err = c.validate().expect_err(key);
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
