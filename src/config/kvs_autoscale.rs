//! The `[kvs_autoscale]` section: the KVS elasticity policy the monitor applies (storage
//! and load), next to the executor policy of `[autoscale]`.
//!
//! Defaults follow Anna's monitoring policy where it has one (add capacity past 60 % of
//! storage, remove a node under 5 % occupancy, a 120 s grace period) and are faster where
//! Anna's 30 s epoch reacts slowly: decisions come every `autoscale.tick_ms`, on loads
//! averaged over `stable_window_ms`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Upper bound on `max_kvs`: each KVS node is a process holding a share of the data;
/// beyond this a typo (an extra zero) would be taken for a request.
pub const MAX_KVS_LIMIT: usize = 1_000;

/// The KVS elasticity policy. Every threshold the monitor decides on is here.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KvsAutoscaleConfig {
    /// Whether the acting monitor adds and removes KVS nodes at all.
    pub enabled: bool,
    /// Fewest KVS nodes: the monitor never goes below `max(kvs.replication, min_kvs)`
    /// (fewer nodes than replicas would leave writes under-replicated).
    pub min_kvs: usize,
    /// Most KVS nodes, counting those starting and leaving.
    pub max_kvs: usize,
    /// Add a node when the cluster's bytes pass this fraction of its memory budget
    /// (Σ bytes / Σ `kvs.memory_budget_bytes`).
    pub storage_high: f64,
    /// A node may be removed only if the others would hold the data under this fraction
    /// of their budget (well below `storage_high`, so a removal does not cause an add).
    pub storage_low: f64,
    /// Add a node when every active KVS node's occupancy (time its shards were busy over
    /// the window) stayed above this over the stable window: they are all busy.
    pub busy_occupancy: f64,
    /// Add a node, when every node is at least `idle_occupancy` busy, if the mean service
    /// time of requests inside the shards stayed above this over the stable window.
    pub latency_slo_us: u64,
    /// The least busy node may be removed when its occupancy and the cluster's mean
    /// stayed under this for `downscale_delay_ms`.
    pub idle_occupancy: f64,
    /// Loads are averaged over this window for every decision.
    pub stable_window_ms: u64,
    /// The cluster must have been under the low-water marks this long before a removal.
    pub downscale_delay_ms: u64,
    /// No KVS action follows another within this time (a new node's hand-off shows in the
    /// figures first).
    pub cooldown_ms: u64,
    /// Whether the acting monitor gives hot keys more replicas (selective replication).
    pub hot_key_replication: bool,
    /// Access rates of keys are measured over this window (Anna: 60 s).
    pub hot_key_window_ms: u64,
    /// A key is hot when its access rate is above the mean rate per key plus this many
    /// standard deviations (Anna: 1).
    pub hot_key_sigmas: f64,
    /// ... and at least this many accesses per second, summed over its replicas: below it
    /// one replica serves the key in a small fraction of a core, copies would buy nothing.
    pub hot_key_min_rate: f64,
    /// A replicated key returns to `kvs.replication` replicas once its rate stayed at most
    /// the mean (or under half of `hot_key_min_rate`) this long.
    pub hot_key_cool_delay_ms: u64,
    /// After a key's replication changes, nodes wait this long before they read from its
    /// new replicas (filled by then, and written by every node) or drop its left-over
    /// copies (no node routes to them by then): several monitor ticks, as the monitor
    /// sends its table every tick.
    pub hot_key_settle_ms: u64,
}

impl Default for KvsAutoscaleConfig {
    fn default() -> Self {
        KvsAutoscaleConfig {
            enabled: true,
            min_kvs: 1,
            max_kvs: 8,
            storage_high: 0.6,
            storage_low: 0.3,
            busy_occupancy: 0.7,
            latency_slo_us: 3_000,
            idle_occupancy: 0.05,
            stable_window_ms: 10_000,
            downscale_delay_ms: 120_000,
            cooldown_ms: 10_000,
            hot_key_replication: true,
            hot_key_window_ms: 10_000,
            hot_key_sigmas: 1.0,
            hot_key_min_rate: 100.0,
            hot_key_cool_delay_ms: 30_000,
            hot_key_settle_ms: 5_000,
        }
    }
}

impl KvsAutoscaleConfig {
    /// Check the section's own rules; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_kvs == 0 || self.max_kvs > MAX_KVS_LIMIT {
            return Err(format!(
                "kvs_autoscale.max_kvs must be between 1 and {MAX_KVS_LIMIT}"
            ));
        }
        if self.min_kvs > self.max_kvs {
            return Err(format!(
                "kvs_autoscale.min_kvs ({}) must not exceed kvs_autoscale.max_kvs ({})",
                self.min_kvs, self.max_kvs
            ));
        }
        let fraction = |x: f64| x > 0.0 && x <= 1.0;
        if !fraction(self.storage_high) || !fraction(self.storage_low) {
            return Err("kvs_autoscale.storage_high and storage_low must be in (0, 1]".into());
        }
        if self.storage_low >= self.storage_high {
            return Err("kvs_autoscale.storage_low must be below storage_high".into());
        }
        if !fraction(self.busy_occupancy) || !fraction(self.idle_occupancy) {
            return Err("kvs_autoscale.busy_occupancy and idle_occupancy must be in (0, 1]".into());
        }
        if self.idle_occupancy >= self.busy_occupancy {
            return Err("kvs_autoscale.idle_occupancy must be below busy_occupancy".into());
        }
        if self.stable_window_ms == 0 {
            return Err("kvs_autoscale.stable_window_ms must be greater than 0".into());
        }
        if self.hot_key_window_ms == 0 {
            return Err("kvs_autoscale.hot_key_window_ms must be greater than 0".into());
        }
        if self.hot_key_settle_ms > crate::protocol::kvs_scaling::MAX_SETTLE_MS {
            return Err(format!(
                "kvs_autoscale.hot_key_settle_ms must be at most {}",
                crate::protocol::kvs_scaling::MAX_SETTLE_MS
            ));
        }
        let finite = |x: f64| x.is_finite() && x >= 0.0;
        if !finite(self.hot_key_sigmas) || !finite(self.hot_key_min_rate) {
            return Err(
                "kvs_autoscale.hot_key_sigmas and hot_key_min_rate must be finite and not negative"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn hot_key_window(&self) -> Duration {
        Duration::from_millis(self.hot_key_window_ms)
    }

    pub fn hot_key_cool_delay(&self) -> Duration {
        Duration::from_millis(self.hot_key_cool_delay_ms)
    }

    pub fn stable_window(&self) -> Duration {
        Duration::from_millis(self.stable_window_ms)
    }

    pub fn downscale_delay(&self) -> Duration {
        Duration::from_millis(self.downscale_delay_ms)
    }

    pub fn cooldown(&self) -> Duration {
        Duration::from_millis(self.cooldown_ms)
    }
}
