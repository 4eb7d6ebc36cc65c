//! Selective replication of hot keys: a pure core with no I/O, driven by explicit time,
//! beside the KVS elasticity policy (`kvs_policy.rs`). It takes every KVS node's report
//! (its hottest keys with their access counts, from a bounded sketch, and its total
//! accesses and keys) and decides, per key, how many replicas it should have.
//!
//! Over `hot_key_window_ms`, per key: its access rate `x` (summed over the nodes, so a
//! replicated key's spread reads still count once each); the cluster's mean rate per key
//! `μ` = all accesses / distinct keys (keys stored / `kvs.replication`); and the spread
//! `σ`, estimated from the reported keys' rates with the rest of the accesses taken as
//! spread evenly over the other keys (the sketch has only the head of the distribution).
//!
//! - **hot** (Anna: accesses > mean + 1σ): `x > μ + hot_key_sigmas·σ` and
//!   `x ≥ hot_key_min_rate` (a key read a few times a second is not worth copies, whatever
//!   its share): the key gets `⌈k · x / (μ + n·σ)⌉` replicas, at least `k + 1`, at most every
//!   KVS node; while it stays hot it may get more, never fewer;
//! - **cooled** (Anna: accesses at the mean or below): a replicated key whose rate is at
//!   most `μ`, or under half of `hot_key_min_rate`, for `hot_key_cool_delay_ms` without a
//!   break returns to the default. The gap between the two marks, and the delay, keep a key
//!   near the line from flapping;
//! - nothing is decided before the policy has watched one window; at most
//!   [`MAX_REPLICATED_KEYS`] keys are replicated at once (the hottest first).
//!
//! Each decision is a register `(epoch, factor)` with an epoch above every one this
//! monitor wrote or adopted (and at least the wall clock in ms, so a monitor taking over
//! with nothing adopted still writes above an earlier one's).

use crate::config::KvsAutoscaleConfig;
use crate::ids::NodeId;
use crate::protocol::{KvsNodeStatus, ReplicationOverride};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// Keys replicated above the default at once: bounds the override table every node holds
/// (with room in [`crate::protocol::kvs_scaling::MAX_REPLICATION_OVERRIDES`] for keys
/// recently returned to the default).
pub const MAX_REPLICATED_KEYS: usize = 64;

/// One node's report as the policy keeps it.
#[derive(Clone, Debug)]
struct Sample {
    node: NodeId,
    window_ms: u64,
    accesses: u64,
    keys: u64,
    hot: Vec<(String, u64)>,
}

/// A key replicated above the default.
#[derive(Clone, Debug)]
struct Held {
    factor: u32,
    /// Since when it has been cool without a break.
    cool_since: Option<Instant>,
}

/// Why a key's factor changed, with the figures (accesses per second).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HotWhy {
    Hot {
        rate: f64,
        mean: f64,
        threshold: f64,
    },
    Cooled {
        rate: f64,
        mean: f64,
    },
}

impl HotWhy {
    /// The reason's name in decision records.
    pub fn name(&self) -> &'static str {
        match self {
            HotWhy::Hot { .. } => "hot",
            HotWhy::Cooled { .. } => "cooled",
        }
    }

    /// The figures, for people.
    pub fn detail(&self) -> String {
        match self {
            HotWhy::Hot {
                rate,
                mean,
                threshold,
            } => format!("rate {rate:.1}/s vs mean {mean:.1}/s (threshold {threshold:.1}/s)"),
            HotWhy::Cooled { rate, mean } => format!("rate {rate:.1}/s vs mean {mean:.1}/s"),
        }
    }
}

/// One key's new replication register.
#[derive(Clone, Debug, PartialEq)]
pub struct HotDecision {
    pub key: String,
    pub register: ReplicationOverride,
    pub why: HotWhy,
}

/// One node's reports over the window, summed (its last key count).
#[derive(Debug, Default)]
struct NodeWindow<'a> {
    span_ms: u64,
    accesses: u64,
    keys: u64,
    hot: BTreeMap<&'a str, u64>,
}

/// The rates of one window.
#[derive(Debug, Default)]
struct Rates {
    keys: BTreeMap<String, f64>,
    mean: f64,
    sigma: f64,
}

/// The policy's memory between ticks.
#[derive(Debug)]
pub struct HotPolicy {
    cfg: KvsAutoscaleConfig,
    replication: usize,
    started: Instant,
    samples: VecDeque<(Instant, Sample)>,
    held: BTreeMap<String, Held>,
    epoch: u64,
}

impl HotPolicy {
    pub fn new(cfg: KvsAutoscaleConfig, replication: usize, now: Instant) -> HotPolicy {
        HotPolicy {
            cfg,
            replication: replication.max(1),
            started: now,
            samples: VecDeque::new(),
            held: BTreeMap::new(),
            epoch: 0,
        }
    }

    /// Take over the registers a previous monitor wrote (as this node holds them): keys
    /// above the default are held (and will cool), epochs continue above theirs.
    pub fn adopt(&mut self, registers: &[(String, ReplicationOverride)]) {
        for (key, reg) in registers {
            self.epoch = self.epoch.max(reg.epoch);
            if reg.factor as usize > self.replication {
                let held = Held {
                    factor: reg.factor,
                    cool_since: None,
                };
                self.held.insert(key.clone(), held);
            }
        }
    }

    /// The keys replicated above the default now, with their factors.
    pub fn replicated(&self) -> Vec<(String, u32)> {
        self.held
            .iter()
            .map(|(k, h)| (k.clone(), h.factor))
            .collect()
    }

    /// A KVS node reported its last window at `now`.
    pub fn record(&mut self, status: &KvsNodeStatus, now: Instant) {
        self.samples.push_back((
            now,
            Sample {
                node: status.node.id.clone(),
                window_ms: status.window_ms,
                accesses: status.gets.saturating_add(status.puts),
                keys: status.keys,
                hot: status
                    .hot_keys
                    .iter()
                    .map(|h| (h.key.clone(), h.count))
                    .collect(),
            },
        ));
        let window = self.cfg.hot_key_window();
        while let Some((t, _)) = self.samples.front() {
            match now.saturating_duration_since(*t) > window {
                true => self.samples.pop_front(),
                false => break,
            };
        }
    }

    /// Decide at `now` (`unix_ms`: the wall clock, for epochs) with `nodes` KVS nodes
    /// to replicate over.
    pub fn tick(&mut self, nodes: usize, now: Instant, unix_ms: u64) -> Vec<HotDecision> {
        let watched = now.saturating_duration_since(self.started) >= self.cfg.hot_key_window();
        if !self.cfg.hot_key_replication || !watched {
            return Vec::new();
        }
        let rates = self.rates();
        let mut out = self.cool(&rates, now, unix_ms);
        out.extend(self.heat(&rates, nodes, unix_ms));
        out
    }

    /// Keys that cooled for the delay go back to the default.
    fn cool(&mut self, rates: &Rates, now: Instant, unix_ms: u64) -> Vec<HotDecision> {
        let mut out = Vec::new();
        let (delay, floor) = (
            self.cfg.hot_key_cool_delay(),
            self.cfg.hot_key_min_rate / 2.0,
        );
        let mut cooled = Vec::new();
        for (key, held) in &mut self.held {
            let rate = rates.keys.get(key).copied().unwrap_or(0.0);
            if rate > rates.mean && rate >= floor {
                held.cool_since = None;
                continue;
            }
            let since = *held.cool_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= delay {
                let why = HotWhy::Cooled {
                    rate,
                    mean: rates.mean,
                };
                cooled.push((key.clone(), why));
            }
        }
        for (key, why) in cooled {
            self.held.remove(&key);
            let factor = u32::try_from(self.replication).unwrap_or(u32::MAX);
            out.push(self.decision(key, factor, why, unix_ms));
        }
        out
    }

    /// Hot keys get (more) replicas, the hottest first.
    fn heat(&mut self, rates: &Rates, nodes: usize, unix_ms: u64) -> Vec<HotDecision> {
        let k = self.replication;
        if nodes <= k {
            return Vec::new();
        }
        let threshold = rates.mean + self.cfg.hot_key_sigmas * rates.sigma;
        let mut hot: Vec<(&String, f64)> = rates
            .keys
            .iter()
            .filter(|(_, x)| **x > threshold && **x >= self.cfg.hot_key_min_rate)
            .map(|(key, x)| (key, *x))
            .collect();
        hot.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut out = Vec::new();
        for (key, rate) in hot {
            let want = (k as f64 * rate / threshold.max(f64::MIN_POSITIVE)).ceil();
            let want = (want.min(nodes as f64) as usize).clamp(k + 1, nodes);
            let want = u32::try_from(want).unwrap_or(u32::MAX);
            let had = self.held.get(key).map(|h| h.factor);
            if had.is_some_and(|f| f >= want)
                || (had.is_none() && self.held.len() >= MAX_REPLICATED_KEYS)
            {
                continue;
            }
            self.held.insert(
                key.clone(),
                Held {
                    factor: want,
                    cool_since: None,
                },
            );
            let why = HotWhy::Hot {
                rate,
                mean: rates.mean,
                threshold,
            };
            out.push(self.decision(key.clone(), want, why, unix_ms));
        }
        out
    }

    fn decision(&mut self, key: String, factor: u32, why: HotWhy, unix_ms: u64) -> HotDecision {
        self.epoch = unix_ms.max(self.epoch + 1);
        HotDecision {
            key,
            register: ReplicationOverride {
                epoch: self.epoch,
                factor,
            },
            why,
        }
    }

    /// Per-key rates, the mean and the spread over the window (see the module doc).
    fn rates(&self) -> Rates {
        let mut per_node: BTreeMap<&NodeId, NodeWindow> = BTreeMap::new();
        for (_, s) in &self.samples {
            let n = per_node.entry(&s.node).or_default();
            n.span_ms += s.window_ms;
            n.accesses += s.accesses;
            n.keys = s.keys;
            for (k, c) in &s.hot {
                *n.hot.entry(k.as_str()).or_default() += c;
            }
        }
        let mut rates = Rates::default();
        let (mut total, mut stored) = (0.0, 0u64);
        for n in per_node.values() {
            let secs = n.span_ms.max(1) as f64 / 1000.0;
            total += n.accesses as f64 / secs;
            stored = stored.saturating_add(n.keys);
            for (k, c) in &n.hot {
                *rates.keys.entry(k.to_string()).or_default() += *c as f64 / secs;
            }
        }
        let distinct = (stored as f64 / self.replication as f64).max(1.0);
        rates.mean = total / distinct;
        let head: f64 = rates.keys.values().sum();
        let rest_keys = (distinct - rates.keys.len() as f64).max(1.0);
        let rest = (total - head).max(0.0);
        let squares = rates.keys.values().map(|x| x * x).sum::<f64>() + rest * rest / rest_keys;
        rates.sigma = (squares / distinct - rates.mean * rates.mean)
            .max(0.0)
            .sqrt();
        rates
    }
}

#[cfg(test)]
#[path = "kvs_hot_tests.rs"]
mod tests;
