//! Process-wide call metrics: every actor that finishes a function or DAG call records it
//! here; `/metrics` and the dashboard read snapshots. Names of exported series are the
//! constants below (documented in docs/metrics.md once exported).
//!
//! Recording is lock-free on the hot path after a name's first call (a `DashMap` entry of
//! atomics); latency goes into fixed histogram buckets.

use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Counter of function calls, labels `function`, `status`.
pub const FUNCTION_CALLS: &str = "cloudburst_function_calls_total";
/// Histogram of function call latency in seconds, label `function`.
pub const FUNCTION_LATENCY: &str = "cloudburst_function_duration_seconds";
/// Counter of DAG calls, labels `dag`, `status`.
pub const DAG_CALLS: &str = "cloudburst_dag_calls_total";
/// Histogram of DAG call latency in seconds, label `dag`.
pub const DAG_LATENCY: &str = "cloudburst_dag_duration_seconds";

/// Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf).
pub const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    10_000_000,
];

/// What was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallKind {
    Function,
    Dag,
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
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// All call series of this process.
#[derive(Debug, Default)]
pub struct Registry {
    series: DashMap<(CallKind, String), Arc<CallSeries>>,
}

impl Registry {
    /// Record one finished call.
    pub fn record(&self, kind: CallKind, name: &str, took: Duration, ok: bool) {
        let series = match self.series.get(&(kind, name.to_string())) {
            Some(s) => s.clone(),
            None => self
                .series
                .entry((kind, name.to_string()))
                .or_default()
                .clone(),
        };
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
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
        let mut out: Vec<CallSnapshot> = self
            .series
            .iter()
            .map(|e| {
                let ((kind, name), s) = (e.key(), e.value());
                CallSnapshot {
                    kind: *kind,
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
}
