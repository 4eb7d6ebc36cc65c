//! The dashboard's logic, no I/O: turns one [`Sample`] of cumulative counters per second into
//! a [`Snapshot`] (tables with rates from deltas against the previous sample) and keeps a
//! bounded history of [`HistoryPoint`]s for the charts.
//!
//! Counters that go backwards (a restarted node or shard) count as a reset: the delta for
//! that tick is 0, never negative.

use crate::metrics::{CallKind, CallSnapshot, RecentCall};
use crate::net::metrics::NetMetricsSnapshot;
use crate::protocol::{AutoscaleState, KvsNumbers, Numbers};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// Autoscaling decisions a snapshot carries (the newest): the page's decision log.
pub const SNAPSHOT_DECISIONS: usize = 20;

/// Version of the snapshot JSON shape (bumped on an incompatible change).
pub const SNAPSHOT_VERSION: u32 = 1;

/// One member of the cluster, as the membership view of this node records it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeRow {
    pub id: String,
    pub generation: u64,
    pub addr: String,
    pub roles: Vec<String>,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: String,
    pub kvs_shards: u32,
    /// The member is draining: finishing what it holds, taking no new work.
    pub draining: bool,
}

/// Cumulative counters of one KVS shard (or why it did not answer).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ShardSample {
    pub node: String,
    pub shard: u32,
    /// `None` when the shard did not answer; `error` says why.
    pub keys: Option<u64>,
    pub bytes: u64,
    /// Of `keys`, those holding a tombstone not collected yet.
    pub tombstones: u64,
    pub gets: u64,
    pub puts: u64,
    pub gossip_in: u64,
    pub gossip_out: u64,
    pub rejected: u64,
    pub error: Option<String>,
}

/// Cumulative counters of one executor node's cache (mirrors the cache's `CacheStats`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CacheSample {
    pub node: String,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub keys: u64,
    pub bytes: u64,
    pub capacity: u64,
    /// Keys pinned by repeatable-read sessions now.
    pub pinned: u64,
    /// The node is dead: these are no figures, only its place in the table.
    pub down: bool,
}

/// One executor node's Python pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExecutorSample {
    pub node: String,
    pub workers: u64,
    /// Workers started beyond `workers` while functions wait on the platform.
    pub extra_workers: u64,
    /// Fraction of workers running a call, `0.0..=1.0`.
    pub utilisation: f64,
    /// The node is dead: these are no figures, only its place in the table.
    pub down: bool,
}

/// The call series one node recorded (the `node` label of its `/metrics` series).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeCalls {
    pub node: String,
    pub calls: Vec<CallSnapshot>,
}

/// Everything the sources said at one instant (cumulative counters).
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub nodes: Vec<NodeRow>,
    /// Every node's series added up.
    pub calls: Vec<CallSnapshot>,
    /// Each node's series.
    pub node_calls: Vec<NodeCalls>,
    pub recent: Vec<RecentCall>,
    pub shards: Vec<ShardSample>,
    pub caches: Vec<CacheSample>,
    pub executors: Vec<ExecutorSample>,
    pub transport: Option<NetMetricsSnapshot>,
    /// The acting monitor's state, if the cluster has a monitor that answered.
    pub autoscale: Option<AutoscaleState>,
}

/// One function or DAG in the snapshot's tables.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallRow {
    pub name: String,
    pub calls: u64,
    pub ok: u64,
    pub errors: u64,
    pub calls_per_s: f64,
    pub errors_per_s: f64,
    /// Bucket upper bounds (see `metrics::BUCKETS_US`), over all calls since start.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
}

/// One KVS shard in the snapshot, with its operation rate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShardRow {
    #[serde(flatten)]
    pub sample: ShardSample,
    /// (gets + puts) per second since the previous sample.
    pub ops_per_s: f64,
}

/// One cache in the snapshot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CacheRow {
    #[serde(flatten)]
    pub sample: CacheSample,
    /// hits / (hits + misses) since start; `None` before the first read.
    pub hit_ratio: Option<f64>,
}

/// One point of the charts: rates over the last sampling interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub at_ms: u64,
    pub function_calls_per_s: f64,
    pub dag_calls_per_s: f64,
    pub errors_per_s: f64,
    /// p99 of the calls that finished in this interval (`None` when none did).
    pub function_p99_ms: Option<f64>,
    pub dag_p99_ms: Option<f64>,
    pub kvs_ops_per_s: f64,
    pub kvs_keys: u64,
    /// Hit ratio of the reads in this interval, all caches together.
    pub cache_hit_ratio: Option<f64>,
    /// Mean utilisation over the executors.
    pub utilisation: Option<f64>,
    /// Executor nodes by state, demand and capacity, as the acting monitor last counted.
    pub autoscale: Option<Numbers>,
    /// KVS nodes alive in this node's view (whether or not a monitor runs).
    pub kvs_nodes: u32,
    /// KVS nodes by state and the storage figures, as the acting monitor last counted.
    pub kvs: Option<KvsNumbers>,
}

/// What the page renders every second (and `/api/snapshot` returns).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    pub version: u32,
    pub at_ms: u64,
    /// The node serving this dashboard.
    pub node: String,
    pub uptime_s: u64,
    pub nodes: Vec<NodeRow>,
    pub executors: Vec<ExecutorSample>,
    pub functions: Vec<CallRow>,
    pub dags: Vec<CallRow>,
    pub shards: Vec<ShardRow>,
    pub caches: Vec<CacheRow>,
    pub recent: Vec<RecentCall>,
    pub transport: Option<NetMetricsSnapshot>,
    /// The acting monitor's limits, counters and newest decisions (its numbers over time
    /// are in the chart points).
    pub autoscale: Option<AutoscaleState>,
    /// The newest chart point (the page appends it to its bounded history).
    pub point: HistoryPoint,
}

/// Rates and history over a stream of samples.
#[derive(Debug)]
pub struct DashboardCore {
    node: String,
    started_ms: u64,
    capacity: usize,
    history: VecDeque<HistoryPoint>,
    prev: Option<Sample>,
}

impl DashboardCore {
    /// `capacity`: chart points kept (one per sample).
    pub fn new(node: impl Into<String>, started_ms: u64, capacity: usize) -> Self {
        DashboardCore {
            node: node.into(),
            started_ms,
            capacity: capacity.max(1),
            history: VecDeque::new(),
            prev: None,
        }
    }

    /// The chart points kept, oldest first.
    pub fn history(&self) -> Vec<HistoryPoint> {
        self.history.iter().cloned().collect()
    }

    /// Take in the next sample: the snapshot it gives, and one more history point.
    pub fn observe(&mut self, sample: Sample) -> Snapshot {
        let prev = self.prev.as_ref();
        let rates = Rates {
            secs: prev
                .map(|p| sample.at_ms.saturating_sub(p.at_ms) as f64 / 1000.0)
                .filter(|s| *s > 0.0),
        };
        let prev_calls: HashMap<(CallKind, &str), &CallSnapshot> = prev
            .map(|p| {
                p.calls
                    .iter()
                    .map(|c| ((c.kind, c.name.as_str()), c))
                    .collect()
            })
            .unwrap_or_default();
        let rows = |kind| -> Vec<CallRow> {
            let calls = sample.calls.iter().filter(|c| c.kind == kind);
            // A series first seen after the first sample counts from 0.
            let before = |c: &CallSnapshot| match prev_calls.get(&(c.kind, c.name.as_str())) {
                Some(b) => Some((b.count(), b.errors)),
                None => prev.map(|_| (0, 0)),
            };
            calls.map(|c| call_row(c, before(c), rates)).collect()
        };
        let (functions, dags) = (rows(CallKind::Function), rows(CallKind::Dag));
        let shards = shard_rows(&sample, prev, |now, before| rates.per_s(now, before));
        let point = HistoryPoint {
            at_ms: sample.at_ms,
            function_calls_per_s: sum(functions.iter().map(|r| r.calls_per_s)),
            dag_calls_per_s: sum(dags.iter().map(|r| r.calls_per_s)),
            errors_per_s: sum(functions.iter().chain(&dags).map(|r| r.errors_per_s)),
            function_p99_ms: window_p99(&sample.calls, &prev_calls, CallKind::Function),
            dag_p99_ms: window_p99(&sample.calls, &prev_calls, CallKind::Dag),
            kvs_ops_per_s: sum(shards.iter().map(|s| s.ops_per_s)),
            kvs_keys: shards.iter().filter_map(|s| s.sample.keys).sum(),
            cache_hit_ratio: window_hit_ratio(&sample.caches, prev.map(|p| &p.caches[..])),
            utilisation: mean(
                sample
                    .executors
                    .iter()
                    .filter(|e| !e.down)
                    .map(|e| e.utilisation),
            ),
            autoscale: sample.autoscale.as_ref().and_then(|a| a.last),
            kvs_nodes: kvs_nodes(&sample.nodes),
            kvs: sample
                .autoscale
                .as_ref()
                .filter(|a| a.acting)
                .and_then(|a| a.kvs.as_ref())
                .map(|k| k.last),
        };
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            at_ms: sample.at_ms,
            node: self.node.clone(),
            uptime_s: sample.at_ms.saturating_sub(self.started_ms) / 1000,
            nodes: sample.nodes.clone(),
            executors: sample.executors.clone(),
            functions,
            dags,
            shards,
            caches: sample.caches.iter().map(cache_row).collect(),
            recent: sample.recent.clone(),
            transport: sample.transport,
            autoscale: sample.autoscale.as_ref().map(|a| {
                let mut a = a.clone();
                let skip = a.decisions.len().saturating_sub(SNAPSHOT_DECISIONS);
                a.decisions.drain(..skip);
                a
            }),
            point: point.clone(),
        };
        if self.history.len() >= self.capacity {
            self.history.pop_front();
        }
        self.history.push_back(point);
        self.prev = Some(sample);
        snapshot
    }
}

/// Per-second rates over the interval since the previous sample (`secs`: none on the first
/// sample or when no time passed, and then every rate is 0).
#[derive(Clone, Copy)]
struct Rates {
    secs: Option<f64>,
}

impl Rates {
    fn per_s(self, now: u64, before: Option<u64>) -> f64 {
        match (self.secs, before) {
            (Some(s), Some(b)) => now.saturating_sub(b) as f64 / s,
            _ => 0.0,
        }
    }
}

/// One table row; `before` is (calls, errors) at the previous sample.
fn call_row(c: &CallSnapshot, before: Option<(u64, u64)>, rates: Rates) -> CallRow {
    let count = c.count();
    CallRow {
        name: c.name.clone(),
        calls: count,
        ok: c.ok,
        errors: c.errors,
        calls_per_s: rates.per_s(count, before.map(|b| b.0)),
        errors_per_s: rates.per_s(c.errors, before.map(|b| b.1)),
        p50_ms: c.quantile_us(0.5).map(ms),
        p99_ms: c.quantile_us(0.99).map(ms),
        mean_ms: (count > 0).then(|| c.sum_us as f64 / count as f64 / 1000.0),
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Sum starting from +0.0 (`Iterator::sum` of no floats is -0.0, which JSON shows as such).
fn sum(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |a, b| a + b)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn shard_rows(
    sample: &Sample,
    prev: Option<&Sample>,
    rate: impl Fn(u64, Option<u64>) -> f64,
) -> Vec<ShardRow> {
    let before: HashMap<(&str, u32), &ShardSample> = prev
        .map(|p| {
            p.shards
                .iter()
                .filter(|s| s.keys.is_some())
                .map(|s| ((s.node.as_str(), s.shard), s))
                .collect()
        })
        .unwrap_or_default();
    sample
        .shards
        .iter()
        .map(|s| {
            let b = before.get(&(s.node.as_str(), s.shard));
            let ops_per_s = match s.keys {
                Some(_) => rate(s.gets + s.puts, b.map(|b| b.gets + b.puts)),
                None => 0.0,
            };
            ShardRow {
                sample: s.clone(),
                ops_per_s,
            }
        })
        .collect()
}

/// Members playing `kvs` that are alive or suspect.
fn kvs_nodes(nodes: &[NodeRow]) -> u32 {
    let up = |n: &&NodeRow| n.state == "alive" || n.state == "suspect";
    let n = nodes
        .iter()
        .filter(up)
        .filter(|n| n.roles.iter().any(|r| r == "kvs"))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn cache_row(c: &CacheSample) -> CacheRow {
    let reads = c.hits + c.misses;
    CacheRow {
        sample: c.clone(),
        hit_ratio: (reads > 0).then(|| c.hits as f64 / reads as f64),
    }
}

/// Hit ratio of the reads since the previous sample, all caches together.
fn window_hit_ratio(now: &[CacheSample], before: Option<&[CacheSample]>) -> Option<f64> {
    let before: HashMap<&str, &CacheSample> = before
        .unwrap_or_default()
        .iter()
        .map(|c| (c.node.as_str(), c))
        .collect();
    let (mut hits, mut misses) = (0u64, 0u64);
    for c in now {
        let b = before.get(c.node.as_str());
        hits += c.hits.saturating_sub(b.map_or(0, |b| b.hits));
        misses += c.misses.saturating_sub(b.map_or(0, |b| b.misses));
    }
    (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64)
}

/// p99 (ms) of the calls of `kind` that finished since the previous sample.
fn window_p99(
    now: &[CallSnapshot],
    before: &HashMap<(CallKind, &str), &CallSnapshot>,
    kind: CallKind,
) -> Option<f64> {
    let mut window: Option<CallSnapshot> = None;
    for c in now.iter().filter(|c| c.kind == kind) {
        let b = before.get(&(kind, c.name.as_str()));
        let w = window.get_or_insert_with(|| CallSnapshot {
            kind,
            name: String::new(),
            ok: 0,
            errors: 0,
            sum_us: 0,
            buckets: vec![0; c.buckets.len()],
        });
        w.ok += c.count().saturating_sub(b.map_or(0, |b| b.count()));
        for (i, n) in c.buckets.iter().enumerate() {
            let old = b.and_then(|b| b.buckets.get(i)).copied().unwrap_or(0);
            if let Some(slot) = w.buckets.get_mut(i) {
                *slot += n.saturating_sub(old);
            }
        }
    }
    window.and_then(|w| w.quantile_us(0.99)).map(ms)
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
