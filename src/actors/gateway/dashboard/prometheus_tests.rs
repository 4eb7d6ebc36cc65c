//! Unit tests of the exposition text: family headers, cumulative buckets, escaping.
//! (The integration tests parse it with a real Prometheus parser.)

use super::*;
use crate::actors::gateway::dashboard::core::{NodeCalls, NodeRow, ShardSample};
use crate::metrics::Registry;
use crate::net::metrics::NetMetricsSnapshot;
use std::time::Duration;

fn lines_of<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .collect()
}

#[test]
fn call_counters_and_cumulative_histogram() {
    let r = Registry::default();
    r.record(CallKind::Function, "sq", Duration::from_micros(40), true);
    r.record(CallKind::Function, "sq", Duration::from_micros(200), true);
    r.record(CallKind::Function, "sq", Duration::from_secs(20), false);
    let text = node_series(
        "n1",
        &r.snapshot(),
        &NetMetricsSnapshot::default(),
        &NodeKvs::default(),
    );
    assert!(text.contains("# TYPE cloudburst_function_calls_total counter"));
    assert!(text.contains(
        "cloudburst_function_calls_total{node=\"n1\",function=\"sq\",status=\"ok\"} 2\n"
    ));
    assert!(text.contains(
        "cloudburst_function_calls_total{node=\"n1\",function=\"sq\",status=\"error\"} 1\n"
    ));
    assert!(text.contains("# TYPE cloudburst_function_duration_seconds histogram"));
    let buckets = lines_of(&text, "cloudburst_function_duration_seconds_bucket");
    assert_eq!(buckets.len(), BUCKETS_US.len() + 1);
    assert_eq!(
        buckets[0],
        "cloudburst_function_duration_seconds_bucket{node=\"n1\",function=\"sq\",le=\"0.00005\"} 1"
    );
    assert!(buckets[2].ends_with("le=\"0.00025\"} 2"));
    assert!(buckets[BUCKETS_US.len()].ends_with("le=\"+Inf\"} 3"));
    assert!(text
        .contains("cloudburst_function_duration_seconds_count{node=\"n1\",function=\"sq\"} 3\n"));
    assert!(text.contains(
        "cloudburst_function_duration_seconds_sum{node=\"n1\",function=\"sq\"} 20.00024\n"
    ));
    assert!(text.contains("# TYPE cloudburst_dag_calls_total counter"));
    assert!(text.contains("cloudburst_transport_frames_in_total{node=\"n1\"} 0\n"));
}

#[test]
fn label_values_are_escaped() {
    let r = Registry::default();
    r.record(CallKind::Dag, "a\"b\\c\nd", Duration::from_micros(1), true);
    let text = node_series(
        "n1",
        &r.snapshot(),
        &NetMetricsSnapshot::default(),
        &NodeKvs::default(),
    );
    assert!(
        text.contains(r#"{node="n1",dag="a\"b\\c\nd",status="ok"} 1"#),
        "{text}"
    );
}

#[test]
fn cluster_series_from_the_sample() {
    let sample = Sample {
        nodes: vec![NodeRow {
            id: "n1".into(),
            generation: 1,
            addr: "127.0.0.1:1".into(),
            roles: vec!["gateway".into(), "kvs".into()],
            state: "alive".into(),
            kvs_shards: 1,
            draining: false,
        }],
        shards: vec![
            ShardSample {
                node: "n1".into(),
                shard: 0,
                keys: Some(4),
                bytes: 40,
                gets: 2,
                puts: 4,
                ..ShardSample::default()
            },
            ShardSample {
                node: "n2".into(),
                shard: 1,
                error: Some("down".into()),
                ..ShardSample::default()
            },
        ],
        transport: Some(NetMetricsSnapshot {
            frames_in: 9,
            ..NetMetricsSnapshot::default()
        }),
        ..Sample::default()
    };
    let text = render("n1", Some(&sample), 2);
    for line in [
        "cloudburst_node_up{node=\"n1\"} 1",
        "cloudburst_node_role{node=\"n1\",role=\"kvs\"} 1",
        "cloudburst_kvs_keys{node=\"n1\",shard=\"0\"} 4",
        "cloudburst_kvs_bytes{node=\"n1\",shard=\"0\"} 40",
        "cloudburst_kvs_puts_total{node=\"n1\",shard=\"0\"} 4",
        "cloudburst_kvs_shard_up{node=\"n2\",shard=\"1\"} 0",
        "cloudburst_transport_frames_in_total{node=\"n1\"} 9",
        "cloudburst_dashboard_clients 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    assert!(
        !text.contains("cloudburst_kvs_keys{node=\"n2\""),
        "no value for a silent shard"
    );
}

#[test]
fn every_family_is_declared_once_before_its_samples() {
    let r = Registry::default();
    r.record(CallKind::Function, "f", Duration::from_micros(1), true);
    r.record(CallKind::Function, "g", Duration::from_micros(1), true);
    let sample = Sample {
        node_calls: vec![
            NodeCalls {
                node: "n1".into(),
                calls: r.snapshot(),
            },
            NodeCalls {
                node: "n2".into(),
                calls: r.snapshot(),
            },
        ],
        ..Sample::default()
    };
    let text = render("n1", Some(&sample), 0);
    assert!(text
        .contains("cloudburst_function_calls_total{node=\"n2\",function=\"g\",status=\"ok\"} 1"));
    let mut seen = std::collections::HashSet::new();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = l.split_whitespace().nth(2).unwrap_or_default().to_string();
        assert!(seen.insert(name.clone()), "{name} declared twice");
    }
}

#[test]
fn autoscale_series_show_the_acting_monitors_last_tick() {
    let none = render("n1", Some(&Sample::default()), 0);
    assert!(
        !none.contains("cloudburst_autoscale"),
        "no monitor, no series"
    );
    let sample = Sample {
        autoscale: Some(crate::protocol::AutoscaleState {
            decisions_total: 5,
            last: Some(crate::protocol::Numbers {
                desired: 3,
                active: 2,
                starting: 1,
                pending: 1,
                capacity: 4,
                demand_now: 6.5,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Sample::default()
    };
    let text = render("n1", Some(&sample), 0);
    for line in [
        "cloudburst_autoscale_desired_executors 3",
        "cloudburst_autoscale_executors{state=\"active\"} 2",
        "cloudburst_autoscale_executors{state=\"starting\"} 1",
        "cloudburst_autoscale_executors{state=\"draining\"} 0",
        "cloudburst_autoscale_executors{state=\"pending\"} 1",
        "cloudburst_autoscale_demand 6.5",
        "cloudburst_autoscale_capacity_workers 4",
        "cloudburst_autoscale_decisions_total 5",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
}

fn kvs_status(node: &str, bytes: u64, occupancy: f64) -> crate::protocol::KvsNodeStatus {
    crate::protocol::KvsNodeStatus {
        node: crate::ids::NodeRef {
            id: crate::ids::NodeId::new(node),
            generation: crate::ids::Generation(1),
        },
        shards: 2,
        keys: 7,
        bytes,
        budget_bytes: 1_000,
        window_ms: 1_000,
        occupancy,
        occupancy_max: occupancy,
        gets: 30,
        puts: 5,
        requests: 35,
        service_us_mean: 12.0,
        service_us_max: 40,
        hot_keys: vec![crate::protocol::HotKey {
            key: "k".into(),
            count: 20,
            replicas: 2,
        }],
        draining: false,
    }
}

fn kvs_state() -> crate::protocol::KvsAutoscaleState {
    crate::protocol::KvsAutoscaleState {
        replication: 2,
        last: crate::protocol::KvsNumbers {
            active: 3,
            starting: 1,
            storage: 0.625,
            ..Default::default()
        },
        decision_counts: vec![crate::protocol::KvsDecisionCount {
            action: "launch".into(),
            reason: "storage".into(),
            count: 2,
        }],
        nodes: vec![kvs_status("k1", 600, 0.25)],
        ..Default::default()
    }
}

const KVS_TIER_LINES: [&str; 4] = [
    "cloudburst_kvs_autoscale_nodes{state=\"active\"} 3",
    "cloudburst_kvs_autoscale_nodes{state=\"starting\"} 1",
    "cloudburst_kvs_autoscale_storage 0.625",
    "cloudburst_kvs_autoscale_decisions_total{action=\"launch\",reason=\"storage\"} 2",
];

#[test]
fn the_gateway_shows_the_kvs_tier_as_the_monitor_sees_it() {
    let sample = Sample {
        autoscale: Some(crate::protocol::AutoscaleState {
            kvs: Some(kvs_state()),
            ..Default::default()
        }),
        ..Sample::default()
    };
    let text = render("n1", Some(&sample), 0);
    let node_lines = [
        "cloudburst_kvs_node_bytes{node=\"k1\"} 600",
        "cloudburst_kvs_node_budget_bytes{node=\"k1\"} 1000",
        "cloudburst_kvs_node_keys{node=\"k1\"} 7",
        "cloudburst_kvs_node_occupancy{node=\"k1\"} 0.25",
    ];
    for line in KVS_TIER_LINES.iter().chain(&node_lines) {
        assert!(
            text.lines().any(|l| l == *line),
            "missing `{line}` in\n{text}"
        );
    }
}

#[test]
fn a_nodes_own_series_carry_its_kvs_figures_and_its_monitors() {
    let none = node_series(
        "n1",
        &[],
        &NetMetricsSnapshot::default(),
        &NodeKvs::default(),
    );
    assert!(!none.contains("cloudburst_kvs"), "no kvs role, no series");
    let mut metrics = crate::protocol::KvsNodeMetrics::default();
    metrics.add(kvs_status("n1", 100, 0.5));
    metrics.add(kvs_status("n1", 200, 0.75));
    let kvs = NodeKvs {
        kvs: Some(metrics),
        monitor: Some(kvs_state()),
    };
    let text = node_series("n1", &[], &NetMetricsSnapshot::default(), &kvs);
    let node_lines = [
        "cloudburst_kvs_node_bytes{node=\"n1\"} 200",
        "cloudburst_kvs_node_occupancy{node=\"n1\"} 0.75",
        "cloudburst_kvs_node_gets_total{node=\"n1\"} 60",
        "cloudburst_kvs_node_puts_total{node=\"n1\"} 10",
        "# TYPE cloudburst_kvs_node_gets_total counter",
    ];
    for line in KVS_TIER_LINES.iter().chain(&node_lines) {
        assert!(
            text.lines().any(|l| l == *line),
            "missing `{line}` in\n{text}"
        );
    }
}
