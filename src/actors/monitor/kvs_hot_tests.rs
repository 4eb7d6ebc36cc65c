//! The hot-key policy with a fake clock: every time bound is a multiple of the configured
//! windows.

use super::*;
use crate::ids::{Generation, NodeRef};
use crate::protocol::HotKey;
use std::time::Duration;

const REPORT: Duration = Duration::from_secs(1);

fn cfg() -> KvsAutoscaleConfig {
    KvsAutoscaleConfig {
        hot_key_window_ms: 5_000,
        hot_key_cool_delay_ms: 10_000,
        hot_key_min_rate: 100.0,
        ..KvsAutoscaleConfig::default()
    }
}

/// One node's one-second report: `other` accesses spread over `keys` keys, plus `hot`.
fn status(node: u32, keys: u64, other: u64, hot: &[(&str, u64)]) -> KvsNodeStatus {
    let accesses = other + hot.iter().map(|h| h.1).sum::<u64>();
    KvsNodeStatus {
        node: NodeRef {
            id: NodeId::new(format!("127.0.0.1:{}", 7000 + node)),
            generation: Generation(1),
        },
        shards: 1,
        keys,
        bytes: 0,
        budget_bytes: 1,
        window_ms: REPORT.as_millis() as u64,
        occupancy: 0.1,
        occupancy_max: 0.1,
        gets: accesses,
        puts: 0,
        requests: accesses,
        service_us_mean: 10.0,
        service_us_max: 10,
        hot_keys: hot
            .iter()
            .map(|(k, c)| HotKey {
                key: k.to_string(),
                count: *c,
                replicas: 1,
            })
            .collect(),
        draining: false,
    }
}

/// Feed `secs` seconds of reports from 3 nodes (1000 keys each, 600 other accesses/s
/// each), `hot` on node 0; tick once a second; return every decision.
fn run(
    p: &mut HotPolicy,
    t0: Instant,
    from: u64,
    secs: u64,
    hot: &[(&str, u64)],
) -> Vec<(u64, HotDecision)> {
    run_with(p, t0, (from, secs), (1_000, 600), hot)
}

/// [`run`] with `keys` per node and `other` accesses per node and second.
fn run_with(
    p: &mut HotPolicy,
    t0: Instant,
    (from, secs): (u64, u64),
    (keys, other): (u64, u64),
    hot: &[(&str, u64)],
) -> Vec<(u64, HotDecision)> {
    let mut out = Vec::new();
    for s in from..from + secs {
        let now = t0 + REPORT * s as u32;
        for n in 0..3 {
            let h = if n == 0 { hot } else { &[] };
            p.record(&status(n, keys, other, h), now);
        }
        out.extend(p.tick(3, now, 1_000 + s).into_iter().map(|d| (s, d)));
    }
    out
}

fn window(c: &KvsAutoscaleConfig) -> u64 {
    c.hot_key_window_ms / 1000
}

#[test]
fn a_key_far_above_the_mean_is_replicated_after_one_window_and_only_then() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = HotPolicy::new(c.clone(), 1, t0);
    let hot = [("hot", 2_000), ("warm", 20)];
    let early = run(&mut p, t0, 0, window(&c) - 1, &hot);
    assert!(early.is_empty(), "nothing before one window: {early:?}");
    let got = run(&mut p, t0, window(&c) - 1, 2, &hot);
    assert_eq!(got.len(), 1, "{got:?}");
    let (_, d) = &got[0];
    assert_eq!(d.key, "hot");
    assert_eq!(d.register.factor, 3, "far over the threshold: every node");
    assert_eq!(d.why.name(), "hot");
    let HotWhy::Hot {
        rate,
        mean,
        threshold,
    } = d.why
    else {
        panic!("{d:?}");
    };
    assert!((rate - 2_000.0).abs() < 1.0, "{rate}");
    assert!(mean < 10.0 && threshold > mean && threshold < rate, "{d:?}");
    assert!(
        d.why.detail().starts_with("rate 2000.0/s vs mean"),
        "{}",
        d.why.detail()
    );
    assert_eq!(p.replicated(), vec![("hot".to_string(), 3)]);
    assert!(
        run(&mut p, t0, window(&c) + 1, 3, &hot).is_empty(),
        "decided once"
    );
}

#[test]
fn uniform_load_and_a_hot_key_under_the_minimum_rate_replicate_nothing() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = HotPolicy::new(c.clone(), 1, t0);
    assert!(run(&mut p, t0, 0, 3 * window(&c), &[]).is_empty());
    let mut quiet = cfg();
    quiet.hot_key_min_rate = 5_000.0;
    let mut p = HotPolicy::new(quiet.clone(), 1, t0);
    assert!(run(&mut p, t0, 0, 3 * window(&quiet), &[("hot", 2_000)]).is_empty());
}

#[test]
fn a_moderately_hot_key_gets_fewer_replicas_than_every_node() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = HotPolicy::new(c.clone(), 1, t0);
    // 42 keys, 40 of them at 150/s: mean 150/s, threshold about 183/s; a key at 300/s
    // is under twice the threshold and gets k + 1 = 2 replicas.
    let spread: Vec<(String, u64)> = (0..40).map(|i| (format!("k{i}"), 150)).collect();
    let mut hot: Vec<(&str, u64)> = spread.iter().map(|(k, c)| (k.as_str(), *c)).collect();
    hot.push(("hot", 300));
    let got = run_with(&mut p, t0, (0, 2 * window(&c)), (14, 0), &hot);
    let factors: Vec<(&str, u32)> = got
        .iter()
        .map(|(_, d)| (d.key.as_str(), d.register.factor))
        .collect();
    assert_eq!(factors, vec![("hot", 2)], "{got:?}");
}

#[test]
fn a_key_cools_back_to_the_default_after_the_delay_without_flapping() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = HotPolicy::new(c.clone(), 2, t0);
    let w = window(&c);
    let up = run(&mut p, t0, 0, 2 * w, &[("hot", 2_000)]);
    assert_eq!(up.len(), 1);
    let up_epoch = up[0].1.register.epoch;
    // Still well above the mean though under the hot mark: kept (hysteresis).
    let kept = run(&mut p, t0, 2 * w, 3 * w, &[("hot", 60)]);
    assert!(kept.is_empty(), "{kept:?}");
    // Load gone: cools only once the window has emptied and the delay has passed.
    let delay = c.hot_key_cool_delay_ms / 1000;
    let down = run(&mut p, t0, 5 * w, w + delay + 2, &[]);
    assert_eq!(down.len(), 1, "{down:?}");
    let (at, d) = &down[0];
    assert!(*at >= 5 * w + delay, "not before the delay: {at}");
    assert_eq!((d.key.as_str(), d.register.factor), ("hot", 2));
    assert_eq!(d.why.name(), "cooled");
    assert!(d.register.epoch > up_epoch);
    assert!(p.replicated().is_empty());
}

#[test]
fn a_monitor_taking_over_continues_above_the_epochs_it_adopts_and_cools_their_keys() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = HotPolicy::new(c.clone(), 1, t0);
    let far = ReplicationOverride {
        epoch: 1_000_000,
        factor: 3,
    };
    p.adopt(&[("old".to_string(), far)]);
    assert_eq!(p.replicated(), vec![("old".to_string(), 3)]);
    let got = run(
        &mut p,
        t0,
        0,
        window(&c) + c.hot_key_cool_delay_ms / 1000 + 1,
        &[("hot", 2_000)],
    );
    let keys: Vec<(&str, u32)> = got
        .iter()
        .map(|(_, d)| (d.key.as_str(), d.register.factor))
        .collect();
    assert_eq!(keys, vec![("hot", 3), ("old", 1)], "{got:?}");
    assert!(got.iter().all(|(_, d)| d.register.epoch > far.epoch));
    assert!(got[1].1.register.epoch > got[0].1.register.epoch);
}

#[test]
fn nothing_when_disabled_or_when_no_node_is_left_to_replicate_to() {
    let mut off = cfg();
    off.hot_key_replication = false;
    let t0 = Instant::now();
    let mut p = HotPolicy::new(off.clone(), 1, t0);
    assert!(run(&mut p, t0, 0, 3 * window(&off), &[("hot", 2_000)]).is_empty());
    let c = cfg();
    let mut p = HotPolicy::new(c.clone(), 3, t0);
    assert!(
        run(&mut p, t0, 0, 3 * window(&c), &[("hot", 2_000)]).is_empty(),
        "k = 3 on 3 nodes: nowhere to add a replica"
    );
}
