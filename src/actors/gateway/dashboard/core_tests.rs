//! Unit tests of the dashboard core: rates from deltas, resets, windowed quantiles and
//! hit ratios, the bounded history.

use super::*;
use crate::metrics::{CallKind, Registry};
use std::time::Duration;

fn calls(registry: &Registry) -> Vec<CallSnapshot> {
    registry.snapshot()
}

fn shard(node: &str, gets: u64, puts: u64, keys: u64) -> ShardSample {
    ShardSample {
        node: node.into(),
        shard: 0,
        keys: Some(keys),
        gets,
        puts,
        ..ShardSample::default()
    }
}

#[test]
fn first_sample_has_no_rates_but_has_totals() {
    let r = Registry::default();
    r.record(
        CallKind::Function,
        "square",
        Duration::from_micros(80),
        true,
    );
    let mut core = DashboardCore::new("n1", 0, 10);
    let s = core.observe(Sample {
        at_ms: 5_000,
        calls: calls(&r),
        shards: vec![shard("n1", 3, 4, 2)],
        ..Sample::default()
    });
    assert_eq!(s.uptime_s, 5);
    assert_eq!(s.functions.len(), 1);
    assert_eq!((s.functions[0].calls, s.functions[0].calls_per_s), (1, 0.0));
    assert_eq!(s.functions[0].p50_ms, Some(0.1));
    assert!(s.dags.is_empty());
    assert_eq!(s.shards[0].ops_per_s, 0.0);
    assert_eq!(s.point.kvs_keys, 2);
}

#[test]
fn rates_come_from_deltas_over_elapsed_time() {
    let r = Registry::default();
    r.record(CallKind::Dag, "pipe", Duration::from_micros(80), true);
    let mut core = DashboardCore::new("n1", 0, 10);
    core.observe(Sample {
        at_ms: 1_000,
        calls: calls(&r),
        shards: vec![shard("n1", 10, 0, 1)],
        ..Sample::default()
    });
    for _ in 0..4 {
        r.record(CallKind::Dag, "pipe", Duration::from_millis(3), false);
    }
    r.record(CallKind::Function, "new", Duration::from_micros(80), true);
    let s = core.observe(Sample {
        at_ms: 3_000,
        calls: calls(&r),
        shards: vec![shard("n1", 30, 20, 5)],
        ..Sample::default()
    });
    let pipe = &s.dags[0];
    assert_eq!((pipe.calls, pipe.errors), (5, 4));
    assert_eq!((pipe.calls_per_s, pipe.errors_per_s), (2.0, 2.0));
    assert_eq!(
        s.functions[0].calls_per_s, 0.5,
        "a new series counts from 0"
    );
    assert_eq!(s.shards[0].ops_per_s, 20.0);
    assert_eq!(s.point.dag_calls_per_s, 2.0);
    assert_eq!(s.point.errors_per_s, 2.0);
    assert_eq!(s.point.dag_p99_ms, Some(5.0), "only this window's calls");
    assert_eq!(s.point.kvs_ops_per_s, 20.0);
}

#[test]
fn counter_reset_gives_zero_not_negative() {
    let mut core = DashboardCore::new("n1", 0, 10);
    core.observe(Sample {
        at_ms: 1_000,
        shards: vec![shard("n1", 100, 100, 9)],
        ..Sample::default()
    });
    let s = core.observe(Sample {
        at_ms: 2_000,
        shards: vec![shard("n1", 1, 0, 0)],
        ..Sample::default()
    });
    assert_eq!(s.shards[0].ops_per_s, 0.0);
}

#[test]
fn unanswered_shard_has_no_rate_and_keeps_its_error() {
    let mut core = DashboardCore::new("n1", 0, 10);
    let down = ShardSample {
        node: "n2".into(),
        error: Some("timeout".into()),
        ..ShardSample::default()
    };
    core.observe(Sample {
        at_ms: 1_000,
        shards: vec![down.clone()],
        ..Sample::default()
    });
    let s = core.observe(Sample {
        at_ms: 2_000,
        shards: vec![down],
        ..Sample::default()
    });
    assert_eq!(s.shards[0].sample.error.as_deref(), Some("timeout"));
    assert_eq!((s.shards[0].ops_per_s, s.point.kvs_keys), (0.0, 0));
}

#[test]
fn cache_ratios_total_and_windowed() {
    let cache = |hits, misses| CacheSample {
        node: "e1".into(),
        hits,
        misses,
        ..CacheSample::default()
    };
    let mut core = DashboardCore::new("n1", 0, 10);
    let s = core.observe(Sample {
        at_ms: 1_000,
        caches: vec![cache(0, 0)],
        ..Sample::default()
    });
    assert_eq!(
        (s.caches[0].hit_ratio, s.point.cache_hit_ratio),
        (None, None)
    );
    core.observe(Sample {
        at_ms: 2_000,
        caches: vec![cache(10, 10)],
        ..Sample::default()
    });
    let s = core.observe(Sample {
        at_ms: 3_000,
        caches: vec![cache(19, 11)],
        ..Sample::default()
    });
    assert_eq!(s.caches[0].hit_ratio, Some(19.0 / 30.0));
    assert_eq!(s.point.cache_hit_ratio, Some(0.9));
}

#[test]
fn utilisation_is_the_mean_over_executors() {
    let e = |u| ExecutorSample {
        node: "e".into(),
        workers: 2,
        extra_workers: 0,
        utilisation: u,
        down: false,
    };
    let dead = ExecutorSample {
        down: true,
        ..e(0.0)
    };
    let mut core = DashboardCore::new("n1", 0, 10);
    let s = core.observe(Sample {
        at_ms: 1_000,
        executors: vec![e(0.5), e(1.0), dead],
        ..Sample::default()
    });
    assert_eq!(
        s.point.utilisation,
        Some(0.75),
        "a dead executor is no idle one"
    );
    let s = core.observe(Sample {
        at_ms: 2_000,
        ..Sample::default()
    });
    assert_eq!(s.point.utilisation, None);
}

#[test]
fn history_is_bounded_oldest_dropped() {
    let mut core = DashboardCore::new("n1", 0, 3);
    for t in 1..=5 {
        core.observe(Sample {
            at_ms: t * 1_000,
            ..Sample::default()
        });
    }
    let h = core.history();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].at_ms, 3_000);
    assert_eq!(h[2].at_ms, 5_000);
}

#[test]
fn same_timestamp_twice_gives_no_division_by_zero() {
    let mut core = DashboardCore::new("n1", 0, 3);
    core.observe(Sample {
        at_ms: 1_000,
        shards: vec![shard("n1", 0, 0, 0)],
        ..Sample::default()
    });
    let s = core.observe(Sample {
        at_ms: 1_000,
        shards: vec![shard("n1", 5, 0, 0)],
        ..Sample::default()
    });
    assert!(s.shards[0].ops_per_s.is_finite());
    assert_eq!(s.shards[0].ops_per_s, 0.0);
}

#[test]
fn snapshot_serialises_with_flattened_rows() {
    let mut core = DashboardCore::new("n1", 0, 3);
    let s = core.observe(Sample {
        at_ms: 1_000,
        shards: vec![shard("n1", 1, 1, 7)],
        ..Sample::default()
    });
    let v = serde_json::to_value(&s).expect("json");
    assert_eq!(v["version"], 1);
    assert_eq!(v["shards"][0]["keys"], 7);
    assert_eq!(v["shards"][0]["node"], "n1");
    assert!(v["point"]["kvs_ops_per_s"].is_number());
    let text = serde_json::to_string(&s).expect("json");
    assert!(!text.contains("-0.0"), "no negative zeros: {text}");
}

fn member(id: &str, roles: &[&str], state: &str) -> NodeRow {
    NodeRow {
        id: id.into(),
        generation: 1,
        addr: "127.0.0.1:1".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        state: state.into(),
        kvs_shards: 1,
        draining: false,
    }
}

#[test]
fn a_point_counts_the_live_kvs_nodes_and_carries_the_acting_monitors_kvs_figures() {
    let nodes = vec![
        member("a", &["kvs", "gateway"], "alive"),
        member("b", &["kvs"], "suspect"),
        member("c", &["kvs"], "dead"),
        member("d", &["executor"], "alive"),
    ];
    let kvs = crate::protocol::KvsAutoscaleState {
        last: KvsNumbers {
            active: 2,
            starting: 1,
            ..KvsNumbers::default()
        },
        ..Default::default()
    };
    let monitor = |acting| AutoscaleState {
        acting,
        kvs: Some(kvs.clone()),
        ..AutoscaleState::default()
    };
    let mut core = DashboardCore::new("a", 0, 10);
    let s = core.observe(Sample {
        at_ms: 1_000,
        nodes: nodes.clone(),
        autoscale: Some(monitor(true)),
        ..Sample::default()
    });
    assert_eq!(s.point.kvs_nodes, 2, "alive and suspect kvs members");
    assert_eq!(s.point.kvs.map(|k| (k.active, k.starting)), Some((2, 1)));
    let standby = core.observe(Sample {
        at_ms: 2_000,
        nodes,
        autoscale: Some(monitor(false)),
        ..Sample::default()
    });
    assert_eq!(
        standby.point.kvs, None,
        "a standing-by monitor counts nothing"
    );
}
