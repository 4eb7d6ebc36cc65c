//! Process-wide call metrics: every actor that finishes a function or DAG call records it
//! here; `/metrics` and the dashboard read snapshots. Names of exported series are the
//! constants below (documented in docs/metrics.md once exported).
//!
//! Recording is lock-free on the hot path after a name's first call (a `DashMap` entry of
//! atomics); latency goes into fixed histogram buckets. The last [`RECENT_CALLS`] calls are
//! also kept (a short mutex-guarded ring) so the dashboard can list them.
//!
//! Every series `/metrics` exports is named by a constant here (see docs/metrics.md).

use crate::ids::CallId;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Counter of function calls, labels `function`, `status`.
pub const FUNCTION_CALLS: &str = "cloudburst_function_calls_total";
/// Histogram of function call latency in seconds, label `function`.
pub const FUNCTION_LATENCY: &str = "cloudburst_function_duration_seconds";
/// Counter of DAG calls, labels `dag`, `status`.
pub const DAG_CALLS: &str = "cloudburst_dag_calls_total";
/// Histogram of DAG call latency in seconds, label `dag`.
pub const DAG_LATENCY: &str = "cloudburst_dag_duration_seconds";

/// Gauge: 1 while a member is alive or suspect, 0 when dead or left; label `node`.
pub const NODE_UP: &str = "cloudburst_node_up";
/// Gauge, always 1: one series per role a member plays; labels `node`, `role`.
pub const NODE_ROLE: &str = "cloudburst_node_role";
/// Gauge: keys stored by a KVS shard (tombstones included); labels `node`, `shard`.
pub const KVS_KEYS: &str = "cloudburst_kvs_keys";
/// Gauge: keys of a KVS shard holding a tombstone not collected yet; labels `node`, `shard`.
pub const KVS_TOMBSTONES: &str = "cloudburst_kvs_tombstones";
/// Gauge: bytes of values stored by a KVS shard; labels `node`, `shard`.
pub const KVS_BYTES: &str = "cloudburst_kvs_bytes";
/// Gauge: 1 when the shard answered the last stats request; labels `node`, `shard`.
pub const KVS_SHARD_UP: &str = "cloudburst_kvs_shard_up";
/// Counter prefix of a KVS shard's operation counters (`cloudburst_kvs_<op>_total` for op in
/// gets, puts, gossip_in, gossip_out, rejected); labels `node`, `shard`.
pub const KVS_OPS_PREFIX: &str = "cloudburst_kvs_";
/// Counter: cache reads served from memory; label `node`.
pub const CACHE_HITS: &str = "cloudburst_cache_hits_total";
/// Counter: cache reads that went to the KVS; label `node`.
pub const CACHE_MISSES: &str = "cloudburst_cache_misses_total";
/// Counter: keys evicted from a cache; label `node`.
pub const CACHE_EVICTIONS: &str = "cloudburst_cache_evictions_total";
/// Gauge: keys held by a cache; label `node`.
pub const CACHE_KEYS: &str = "cloudburst_cache_keys";
/// Gauge: keys pinned by repeatable-read sessions in a cache; label `node`.
pub const CACHE_PINNED: &str = "cloudburst_cache_pinned_keys";
/// Gauge: bytes held by a cache; label `node`.
pub const CACHE_BYTES: &str = "cloudburst_cache_bytes";
/// Gauge: a cache's capacity in bytes; label `node`.
pub const CACHE_CAPACITY: &str = "cloudburst_cache_capacity_bytes";
/// Gauge: fraction (0..=1) of an executor's Python workers running a call; label `node`.
pub const EXECUTOR_UTILISATION: &str = "cloudburst_executor_utilisation";
/// Gauge: Python worker processes of an executor; label `node`.
pub const EXECUTOR_WORKERS: &str = "cloudburst_executor_workers";
/// Gauge: Python workers an executor started beyond its size while functions wait on the
/// platform; label `node`.
pub const EXECUTOR_EXTRA_WORKERS: &str = "cloudburst_executor_extra_workers";
/// Gauge: executor nodes the acting monitor's stable window asks for.
pub const AUTOSCALE_DESIRED: &str = "cloudburst_autoscale_desired_executors";
/// Gauge, label `state` (active, starting, draining, pending): executor nodes as the
/// acting monitor counts them.
pub const AUTOSCALE_EXECUTORS: &str = "cloudburst_autoscale_executors";
/// Gauge: calls in flight plus queued on active executors (the monitor's last tick).
pub const AUTOSCALE_DEMAND: &str = "cloudburst_autoscale_demand";
/// Gauge: workers of active executor nodes (the monitor's last tick).
pub const AUTOSCALE_CAPACITY: &str = "cloudburst_autoscale_capacity_workers";
/// Counter: decisions the acting monitor took (launch, drain, terminate, ...).
pub const AUTOSCALE_DECISIONS: &str = "cloudburst_autoscale_decisions_total";
/// Counter: cold starts (calls waited with no executor until one was ready).
pub const AUTOSCALE_COLD_STARTS: &str = "cloudburst_autoscale_cold_starts_total";
/// Gauge: calls the schedulers hold because no executor runs (the monitor's last tick).
pub const AUTOSCALE_WAITING: &str = "cloudburst_autoscale_waiting_calls";
/// Gauge: bytes a KVS node's shards hold (its last report); label `node`.
pub const KVS_NODE_BYTES: &str = "cloudburst_kvs_node_bytes";
/// Gauge: a KVS node's memory budget (`kvs.memory_budget_bytes`); label `node`.
pub const KVS_NODE_BUDGET: &str = "cloudburst_kvs_node_budget_bytes";
/// Gauge: keys a KVS node's shards hold; label `node`.
pub const KVS_NODE_KEYS: &str = "cloudburst_kvs_node_keys";
/// Gauge: mean busy time of a KVS node's shards over its last report window (0..=1);
/// label `node`.
pub const KVS_NODE_OCCUPANCY: &str = "cloudburst_kvs_node_occupancy";
/// Counter: keys clients read from a KVS node since it started; label `node`.
pub const KVS_NODE_GETS: &str = "cloudburst_kvs_node_gets_total";
/// Counter: keys clients wrote to a KVS node since it started; label `node`.
pub const KVS_NODE_PUTS: &str = "cloudburst_kvs_node_puts_total";
/// Gauge, label `state` (active, starting, draining, pending): KVS nodes as the acting
/// monitor counts them.
pub const KVS_AUTOSCALE_NODES: &str = "cloudburst_kvs_autoscale_nodes";
/// Gauge: the KVS tier's bytes over its counted nodes' budget (the monitor's last tick).
pub const KVS_AUTOSCALE_STORAGE: &str = "cloudburst_kvs_autoscale_storage";
/// Counter: KVS decisions and provider actions the monitor took; labels `action`, `reason`.
pub const KVS_AUTOSCALE_DECISIONS: &str = "cloudburst_kvs_autoscale_decisions_total";
/// Counter prefix of this node's transport counters (`cloudburst_transport_<field>_total`,
/// one per field of `NetMetricsSnapshot`); label `node`.
pub const TRANSPORT_PREFIX: &str = "cloudburst_transport_";
/// Gauge: dashboards connected to the live event stream of this gateway.
pub const DASHBOARD_CLIENTS: &str = "cloudburst_dashboard_clients";
/// Counter: calls this gateway answered with an error (wherever it arose: a function, the
/// scheduler, the gateway itself), one per call; label `code`.
pub const CALL_FAILURES: &str = "cloudburst_call_failures_total";
/// Counter: results this gateway dropped because their call had ended already (a re-run's
/// second result, or one after a timeout or cancel).
pub const DUPLICATE_RESULTS: &str = "cloudburst_duplicate_results_total";

/// How many finished calls the recent-calls ring keeps: enough for the dashboard's table,
/// small enough that recording stays a short critical section.
pub const RECENT_CALLS: usize = 50;

/// Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf).
pub const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    10_000_000,
];

/// What was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    Function,
    Dag,
}

/// One finished call, as the dashboard's recent-calls table shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentCall {
    /// The node that recorded it (filled in when a node reports its calls; empty before).
    pub node: String,
    pub kind: CallKind,
    pub name: String,
    /// The call id, when the recorder knew it.
    pub call: Option<String>,
    /// The same id as a number, for looking up the call's logs in this process (not sent).
    #[serde(skip)]
    pub call_id: Option<CallId>,
    /// What the call printed on the node that recorded it (the start of its logs), filled
    /// in when the node reports its calls.
    pub log: Option<String>,
    pub ok: bool,
    /// Stable error code of a failed call (`function_error`, `timeout`, ...), when known.
    pub error: Option<String>,
    pub duration_us: u64,
    /// When it finished, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Counters and latency histogram of one function or DAG.
#[derive(Debug, Default)]
pub struct CallSeries {
    ok: AtomicU64,
    errors: AtomicU64,
    sum_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
}

/// A point-in-time copy of one series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSnapshot {
    pub kind: CallKind,
    pub name: String,
    pub ok: u64,
    pub errors: u64,
    pub sum_us: u64,
    /// Non-cumulative counts per bucket of [`BUCKETS_US`], then the +Inf bucket.
    pub buckets: Vec<u64>,
}

impl CallSnapshot {
    pub fn count(&self) -> u64 {
        self.ok + self.errors
    }

    /// Latency at quantile `q` (0..=1) in microseconds, as the upper bound of the bucket
    /// that holds it (`None` with no calls; the +Inf bucket reports the largest bound).
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(
                    BUCKETS_US
                        .get(i)
                        .copied()
                        .unwrap_or(BUCKETS_US[BUCKETS_US.len() - 1]),
                );
            }
        }
        BUCKETS_US.last().copied()
    }
}

/// All call series of this process, and the most recent calls.
#[derive(Debug, Default)]
pub struct Registry {
    /// Series by name, one map per kind (keyed by the name alone, so that a lookup
    /// borrows the name rather than allocating a key per call).
    functions: DashMap<String, CallSeries>,
    dags: DashMap<String, CallSeries>,
    recent: Mutex<VecDeque<RecentCall>>,
    failures: DashMap<&'static str, AtomicU64>,
    duplicates: AtomicU64,
}

/// What a gateway counted of the calls it answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayCounts {
    /// Failed calls per error code, sorted by code.
    pub failures: Vec<(&'static str, u64)>,
    pub duplicates: u64,
}

impl Registry {
    /// Record one finished call (no call id, no error code).
    pub fn record(&self, kind: CallKind, name: &str, took: Duration, ok: bool) {
        let error = if ok { None } else { Some("error") };
        self.record_call(kind, name, None, took, error);
    }

    /// Record one finished call with its id and, when it failed, its stable error code.
    pub fn record_call(
        &self,
        kind: CallKind,
        name: &str,
        call: Option<CallId>,
        took: Duration,
        error: Option<&str>,
    ) {
        let ok = error.is_none();
        self.bump_series(kind, name, took, ok);
        let mut ring = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // Reuse the oldest entry's strings once the ring is full: no allocation per call.
        let mut entry = match ring.len() >= RECENT_CALLS {
            true => ring.pop_front(),
            false => None,
        }
        .unwrap_or_else(|| RecentCall {
            node: String::new(),
            kind,
            name: String::new(),
            call: None,
            call_id: None,
            log: None,
            ok,
            error: None,
            duration_us: 0,
            at_ms: 0,
        });
        entry.kind = kind;
        entry.name.clear();
        entry.name.push_str(name);
        set_display(&mut entry.call, call);
        entry.call_id = call;
        entry.log = None;
        set_display(&mut entry.error, error);
        entry.ok = ok;
        entry.duration_us = micros(took);
        entry.at_ms = unix_ms();
        ring.push_back(entry);
    }

    /// A call answered with the error `code` (counted once per call).
    pub fn record_failure(&self, code: &'static str) {
        if let Some(n) = self.failures.get(code) {
            n.fetch_add(1, Relaxed);
            return;
        }
        self.failures.entry(code).or_default().fetch_add(1, Relaxed);
    }

    /// A result dropped because its call had ended already.
    pub fn record_duplicate(&self) {
        self.duplicates.fetch_add(1, Relaxed);
    }

    /// The gateway's counters now.
    pub fn gateway_counts(&self) -> GatewayCounts {
        let mut failures: Vec<(&'static str, u64)> = self
            .failures
            .iter()
            .map(|e| (*e.key(), e.value().load(Relaxed)))
            .collect();
        failures.sort();
        GatewayCounts {
            failures,
            duplicates: self.duplicates.load(Relaxed),
        }
    }

    /// The most recent calls, newest first.
    pub fn recent(&self) -> Vec<RecentCall> {
        let ring = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().cloned().collect()
    }

    fn series(&self, kind: CallKind) -> &DashMap<String, CallSeries> {
        match kind {
            CallKind::Function => &self.functions,
            CallKind::Dag => &self.dags,
        }
    }

    fn bump_series(&self, kind: CallKind, name: &str, took: Duration, ok: bool) {
        let map = self.series(kind);
        let series = match map.get(name) {
            Some(s) => s,
            None => map.entry(name.to_string()).or_default().downgrade(),
        };
        let us = micros(took);
        if ok {
            series.ok.fetch_add(1, Relaxed);
        } else {
            series.errors.fetch_add(1, Relaxed);
        }
        series.sum_us.fetch_add(us, Relaxed);
        let i = BUCKETS_US.partition_point(|b| *b < us);
        series.buckets[i].fetch_add(1, Relaxed);
    }

    /// Every series, sorted by kind then name.
    pub fn snapshot(&self) -> Vec<CallSnapshot> {
        let kinds = [CallKind::Function, CallKind::Dag];
        let mut out: Vec<CallSnapshot> = kinds
            .into_iter()
            .flat_map(|kind| self.series(kind).iter().map(move |e| (kind, e)))
            .map(|(kind, e)| {
                let (name, s) = (e.key(), e.value());
                CallSnapshot {
                    kind,
                    name: name.clone(),
                    ok: s.ok.load(Relaxed),
                    errors: s.errors.load(Relaxed),
                    sum_us: s.sum_us.load(Relaxed),
                    buckets: s.buckets.iter().map(|b| b.load(Relaxed)).collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        out
    }
}

/// The series of several nodes added up by kind and name (buckets added bucket by bucket),
/// sorted by kind then name.
pub fn merge_calls<'a>(nodes: impl IntoIterator<Item = &'a [CallSnapshot]>) -> Vec<CallSnapshot> {
    let mut merged: std::collections::BTreeMap<(CallKind, &str), CallSnapshot> = Default::default();
    for c in nodes.into_iter().flatten() {
        let m = merged
            .entry((c.kind, c.name.as_str()))
            .or_insert_with(|| CallSnapshot {
                ok: 0,
                errors: 0,
                sum_us: 0,
                buckets: vec![0; c.buckets.len()],
                ..c.clone()
            });
        m.ok += c.ok;
        m.errors += c.errors;
        m.sum_us += c.sum_us;
        if m.buckets.len() < c.buckets.len() {
            m.buckets.resize(c.buckets.len(), 0);
        }
        for (slot, n) in m.buckets.iter_mut().zip(&c.buckets) {
            *slot += n;
        }
    }
    merged.into_values().collect()
}

/// The newest `limit` of several nodes' recent calls, newest first.
pub fn merge_recent(
    nodes: impl IntoIterator<Item = Vec<RecentCall>>,
    limit: usize,
) -> Vec<RecentCall> {
    let mut all: Vec<RecentCall> = nodes.into_iter().flatten().collect();
    all.sort_by_key(|c| std::cmp::Reverse(c.at_ms));
    all.truncate(limit);
    all
}

/// Set `slot` to `value` written out, reusing the string `slot` holds.
fn set_display(slot: &mut Option<String>, value: Option<impl std::fmt::Display>) {
    use std::fmt::Write;
    match value {
        None => *slot = None,
        Some(v) => {
            let s = slot.get_or_insert_with(String::new);
            s.clear();
            // Writing into a String cannot fail.
            let _ = write!(s, "{v}");
        }
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    crate::clock::now_micros() / 1000
}

/// The process-wide registry.
pub fn global() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// Record a finished function call in the process-wide registry.
pub fn record_function_call(name: &str, took: Duration, ok: bool) {
    global().record(CallKind::Function, name, took, ok);
}

/// Record a finished DAG call in the process-wide registry.
pub fn record_dag_call(name: &str, took: Duration, ok: bool) {
    global().record(CallKind::Dag, name, took, ok);
}

/// Record a finished function call with its id and, when it failed, its error code.
pub fn record_function_outcome(call: CallId, name: &str, took: Duration, error: Option<&str>) {
    global().record_call(CallKind::Function, name, Some(call), took, error);
}

/// Record a finished DAG call with its id and, when it failed, its error code.
pub fn record_dag_outcome(call: CallId, name: &str, took: Duration, error: Option<&str>) {
    global().record_call(CallKind::Dag, name, Some(call), took, error);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_quantiles() {
        let r = Registry::default();
        for _ in 0..98 {
            r.record(CallKind::Function, "f", Duration::from_micros(80), true);
        }
        r.record(CallKind::Function, "f", Duration::from_millis(3), false);
        r.record(CallKind::Function, "f", Duration::from_secs(60), true);
        r.record(CallKind::Dag, "d", Duration::from_micros(10), true);
        let s = r.snapshot();
        assert_eq!(s.len(), 2);
        let f = &s[0];
        assert_eq!(
            (f.kind, f.name.as_str(), f.ok, f.errors),
            (CallKind::Function, "f", 99, 1)
        );
        assert_eq!(f.quantile_us(0.5), Some(100));
        assert_eq!(f.quantile_us(0.99), Some(5_000));
        assert_eq!(f.quantile_us(1.0), Some(10_000_000));
        assert_eq!(s[1].quantile_us(0.5), Some(50));
        let empty = CallSnapshot {
            ok: 0,
            errors: 0,
            ..s[1].clone()
        };
        assert_eq!(empty.quantile_us(0.5), None);
    }

    #[test]
    fn the_series_of_several_nodes_add_up() {
        let (a, b) = (Registry::default(), Registry::default());
        a.record(CallKind::Function, "f", Duration::from_micros(80), true);
        b.record(CallKind::Function, "f", Duration::from_millis(3), false);
        b.record(CallKind::Dag, "d", Duration::from_micros(10), true);
        let (sa, sb) = (a.snapshot(), b.snapshot());
        let m = merge_calls([&sa[..], &sb[..]]);
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].kind, m[0].ok, m[0].errors),
            (CallKind::Function, 1, 1)
        );
        assert_eq!(m[0].sum_us, 3_080);
        assert_eq!(m[0].buckets.iter().sum::<u64>(), 2);
        assert_eq!(m[0].quantile_us(1.0), Some(5_000));
        assert_eq!((m[1].kind, m[1].count()), (CallKind::Dag, 1));
        let recent = merge_recent([a.recent(), b.recent()], 2);
        assert_eq!(recent.len(), 2);
        assert!(recent[0].at_ms >= recent[1].at_ms);
    }

    #[test]
    fn recent_calls_are_bounded_and_newest_first() {
        let r = Registry::default();
        for i in 0..(RECENT_CALLS as u64 + 7) {
            let err = (i % 2 == 1).then_some("timeout");
            r.record_call(
                CallKind::Dag,
                "d",
                Some(CallId(i)),
                Duration::from_micros(i),
                err,
            );
        }
        let recent = r.recent();
        assert_eq!(recent.len(), RECENT_CALLS);
        let last = RECENT_CALLS as u64 + 6;
        assert_eq!(recent[0].call, Some(CallId(last).to_string()));
        assert_eq!((recent[0].ok, recent[0].duration_us), (true, last));
        assert_eq!(recent[1].error.as_deref(), Some("timeout"));
        assert_eq!(r.snapshot()[0].count(), RECENT_CALLS as u64 + 7);
    }
}
