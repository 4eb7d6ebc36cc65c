//! Unit tests of the KVS elasticity policy with a fake clock: one test per rule, the
//! floor, one departure at a time, and a flapping load. Time bounds are multiples of the
//! configured windows.

use super::*;
use std::time::Duration;

/// Short windows, as the tests of the whole system use: tick 100 ms, stable 1 s,
/// downscale delay 3 s, cooldown 500 ms; 1000-byte budgets.
fn cfg() -> KvsAutoscaleConfig {
    KvsAutoscaleConfig {
        min_kvs: 1,
        max_kvs: 5,
        stable_window_ms: 1_000,
        downscale_delay_ms: 3_000,
        cooldown_ms: 500,
        ..KvsAutoscaleConfig::default()
    }
}

const TICK: Duration = Duration::from_millis(100);
const BUDGET: u64 = 1_000;

/// An active KVS node holding `bytes`, `occupancy` busy.
fn node(name: &str, bytes: u64, occupancy: f64, removable: bool) -> KvsNode {
    KvsNode {
        node: NodeId::new(name),
        state: NodeState::Active,
        bytes,
        budget_bytes: BUDGET,
        occupancy,
        service_us: 50.0,
        requests: 100,
        removable,
    }
}

/// `n` nodes at k = 2, the first two started by hand, sharing `bytes` evenly.
fn tier(n: usize, bytes: u64, occupancy: f64) -> KvsObservation {
    KvsObservation {
        nodes: (0..n)
            .map(|i| node(&format!("k{i}"), bytes / n as u64, occupancy, i >= 2))
            .collect(),
        launches_pending: 0,
        replication: 2,
    }
}

/// Drive `p` every tick from `from` for `span` on `obs`; the decisions with their times.
fn run(
    p: &mut KvsPolicy,
    from: Instant,
    span: Duration,
    obs: impl Fn(Duration) -> KvsObservation,
) -> Vec<(Duration, KvsDecision)> {
    let mut out = vec![];
    let mut t = Duration::ZERO;
    while t <= span {
        if let Some(d) = p.tick(&obs(t), from + t).decision {
            out.push((t, d));
        }
        t += TICK;
    }
    out
}

#[test]
fn storage_past_the_high_mark_launches_one_node_at_once() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = KvsPolicy::new(c.clone(), t0);
    // 2 nodes of 1000 bytes: 61 % of 2000 is past 60 %; no window is needed for storage.
    let d = p.tick(&tier(2, 1_220, 0.0), t0).decision.expect("a launch");
    assert_eq!(d.action, KvsAction::Launch { count: 1 });
    assert_eq!(d.reason, KvsReason::Storage);
    assert!((d.numbers.storage - 0.61).abs() < 1e-9);
    // 59 % launches nothing, ever.
    let mut q = KvsPolicy::new(c.clone(), t0);
    assert!(run(&mut q, t0, c.stable_window() * 5, |_| tier(2, 1_180, 0.0)).is_empty());
}

#[test]
fn a_pending_launch_counts_as_capacity() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = KvsPolicy::new(c.clone(), t0);
    let mut obs = tier(2, 1_300, 0.0);
    obs.launches_pending = 1;
    // 1300 over 3 × 1000 is 43 %: nothing more, even after the cooldown.
    assert!(run(&mut p, t0, c.cooldown() * 4, |_| obs.clone()).is_empty());
    // 1900 over 3000 is 63 %: one more.
    obs.nodes.iter_mut().for_each(|n| n.bytes = 950);
    let d = p
        .tick(&obs, t0 + c.cooldown() * 5)
        .decision
        .expect("a launch");
    assert_eq!((d.reason, d.numbers.counted), (KvsReason::Storage, 3));
}

#[test]
fn every_node_busy_over_the_stable_window_launches() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = KvsPolicy::new(c.clone(), t0);
    let busy = |_| tier(2, 0, 0.9);
    let got = run(&mut p, t0, c.stable_window() * 2, busy);
    let (at, d) = got.first().expect("a launch");
    assert_eq!(d.reason, KvsReason::Busy);
    // Not before a whole stable window was seen.
    assert!(*at >= c.stable_window(), "{at:?}");
    // One busy node and one idle one: not every node is busy, no launch.
    let mut q = KvsPolicy::new(c.clone(), t0);
    let uneven = |_| {
        let mut o = tier(2, 0, 0.9);
        o.nodes[1].occupancy = 0.1;
        o
    };
    assert!(run(&mut q, t0, c.stable_window() * 3, uneven).is_empty());
}

#[test]
fn latency_over_the_slo_launches_only_when_the_nodes_are_in_use() {
    let c = cfg();
    let t0 = Instant::now();
    let slow = |occ: f64| {
        move |_| {
            let mut o = tier(2, 0, occ);
            o.nodes.iter_mut().for_each(|n| n.service_us = 5_000.0);
            o
        }
    };
    let mut p = KvsPolicy::new(c.clone(), t0);
    let got = run(&mut p, t0, c.stable_window() * 2, slow(0.2));
    assert_eq!(got.first().map(|(_, d)| d.reason), Some(KvsReason::Latency));
    // Slow but idle (a few large requests): nothing.
    let mut q = KvsPolicy::new(c.clone(), t0);
    assert!(run(&mut q, t0, c.stable_window() * 3, slow(0.01)).is_empty());
}

#[test]
fn never_beyond_max_kvs_draining_nodes_included() {
    let c = KvsAutoscaleConfig {
        max_kvs: 3,
        ..cfg()
    };
    let t0 = Instant::now();
    let mut p = KvsPolicy::new(c.clone(), t0);
    let mut obs = tier(2, 1_900, 0.0);
    obs.nodes.push(KvsNode {
        state: NodeState::Draining,
        ..node("k9", 0, 0.0, true)
    });
    assert!(run(&mut p, t0, c.cooldown() * 4, |_| obs.clone()).is_empty());
}

#[test]
fn the_least_busy_launched_node_is_removed_after_the_delay() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = KvsPolicy::new(c.clone(), t0);
    let quiet = |_| {
        let mut o = tier(4, 200, 0.01);
        o.nodes[3].occupancy = 0.0;
        o
    };
    let got = run(&mut p, t0, c.downscale_delay() * 2, quiet);
    let (at, d) = got.first().expect("a removal");
    assert_eq!(
        d.action,
        KvsAction::Drain {
            node: NodeId::new("k3")
        }
    );
    assert_eq!(d.reason, KvsReason::Underused);
    assert!(*at >= c.downscale_delay(), "{at:?}");
    assert!(*at <= c.downscale_delay() + 2 * TICK, "{at:?}");
}

#[test]
fn nodes_started_by_hand_and_the_floor_are_never_removed() {
    let c = cfg();
    let t0 = Instant::now();
    // Two nodes at k = 2: at the floor.
    let mut p = KvsPolicy::new(c.clone(), t0);
    assert!(run(&mut p, t0, c.downscale_delay() * 3, |_| tier(2, 0, 0.0)).is_empty());
    // Three nodes, all started by hand: none removable.
    let mut q = KvsPolicy::new(c.clone(), t0);
    let by_hand = |_| {
        let mut o = tier(3, 0, 0.0);
        o.nodes.iter_mut().for_each(|n| n.removable = false);
        o
    };
    assert!(run(&mut q, t0, c.downscale_delay() * 3, by_hand).is_empty());
    // min_kvs above the replication raises the floor.
    let c3 = KvsAutoscaleConfig {
        min_kvs: 3,
        ..cfg()
    };
    let mut r = KvsPolicy::new(c3, t0);
    assert!(run(&mut r, t0, c.downscale_delay() * 3, |_| tier(3, 0, 0.0)).is_empty());
}

#[test]
fn one_departure_at_a_time() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = KvsPolicy::new(c.clone(), t0);
    let one_leaving = |_| {
        let mut o = tier(4, 0, 0.0);
        o.nodes[3].state = NodeState::Draining;
        o
    };
    assert!(run(&mut p, t0, c.downscale_delay() * 3, one_leaving).is_empty());
}

#[test]
fn data_that_would_not_fit_the_rest_keeps_the_node() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = KvsPolicy::new(c.clone(), t0);
    // 3 nodes, 700 bytes: 23 % now, 35 % of the two that would remain (above 30 %).
    assert!(run(&mut p, t0, c.downscale_delay() * 3, |_| tier(3, 700, 0.0)).is_empty());
    // 500 bytes: 25 % of the remaining two, so the launched node goes.
    let mut q = KvsPolicy::new(c.clone(), t0);
    assert_eq!(
        run(&mut q, t0, c.downscale_delay() * 2, |_| tier(3, 500, 0.0)).len(),
        1
    );
}

#[test]
fn a_flapping_load_restarts_the_delay() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = KvsPolicy::new(c.clone(), t0);
    // Busy for one tick every half downscale delay: never quiet for a whole delay.
    let half = c.downscale_delay().as_millis() as u64 / 2;
    let flapping = |t: Duration| {
        let spike = (t.as_millis() as u64 % half) < TICK.as_millis() as u64;
        tier(3, 0, if spike { 0.5 } else { 0.0 })
    };
    let got = run(&mut p, t0, c.downscale_delay() * 4, flapping);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn cooldown_separates_actions_and_disabled_decides_nothing() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = KvsPolicy::new(c.clone(), t0);
    // The launched nodes never join: one launch per cooldown while storage over the
    // counted nodes stays past the mark (2900 over 2, 3, 4 nodes; not over 5).
    let mut pending = 0;
    let mut times = vec![];
    let mut t = Duration::ZERO;
    while t <= c.cooldown() * 10 {
        let mut o = tier(2, 2_900, 0.0);
        o.launches_pending = pending;
        if let Some(d) = p.tick(&o, t0 + t).decision {
            pending += 1;
            times.push(t);
            assert_eq!(d.reason, KvsReason::Storage);
        }
        t += TICK;
    }
    assert_eq!(times.len(), 3, "{times:?}");
    for w in times.windows(2) {
        assert!(w[1] - w[0] >= c.cooldown(), "{times:?}");
    }
    let off = KvsAutoscaleConfig {
        enabled: false,
        ..cfg()
    };
    let mut q = KvsPolicy::new(off, t0);
    assert!(run(&mut q, t0, c.downscale_delay() * 2, |_| tier(3, 1_900, 0.9)).is_empty());
}

#[test]
fn no_active_node_decides_nothing() {
    let c = cfg();
    let t0 = Instant::now();
    let mut p = KvsPolicy::new(c.clone(), t0);
    let forming = |_| KvsObservation {
        nodes: vec![KvsNode {
            state: NodeState::Starting,
            ..node("k0", 0, 0.0, true)
        }],
        launches_pending: 0,
        replication: 2,
    };
    assert!(run(&mut p, t0, c.downscale_delay() * 2, forming).is_empty());
}
