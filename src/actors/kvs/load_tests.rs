//! The hot-key sketch and the load meter.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

fn k(i: u64) -> Key {
    Key::new(format!("k{i}"))
}

#[test]
fn the_sketch_stays_bounded_and_keeps_the_heavy_keys() {
    let mut s = HotKeys::new(8);
    // 10 000 cold keys once each, interleaved with 3 hot keys 5 000 times each: each hot
    // key has more than the 25 000 accesses / 8 counters the sketch guarantees to find.
    for i in 0..10_000u64 {
        s.access(&k(1_000_000 + i));
        if i % 2 == 0 {
            for h in 0..3 {
                s.access(&k(h));
            }
        }
    }
    assert!(s.len() <= 8);
    let mut top: Vec<String> = s.top(3).into_iter().map(|(k, _)| k).collect();
    top.sort();
    assert_eq!(top, vec!["k0", "k1", "k2"]);
}

#[test]
fn counts_are_exact_while_the_keys_fit() {
    let mut s = HotKeys::new(4);
    for (key, n) in [(1, 5), (2, 3), (3, 1)] {
        for _ in 0..n {
            s.access(&k(key));
        }
    }
    assert_eq!(
        s.top(10),
        vec![("k1".into(), 5), ("k2".into(), 3), ("k3".into(), 1)]
    );
}

proptest! {
    /// Space-Saving's guarantee: a key accessed more than N / capacity times is tracked,
    /// with an estimate no lower than its true count.
    #[test]
    fn heavy_hitters_are_never_missed(accesses in proptest::collection::vec(0u64..200, 1..2_000)) {
        let cap = 16;
        let mut s = HotKeys::new(cap);
        let mut truth = std::collections::HashMap::new();
        for a in &accesses {
            // Skew: small numbers are much more likely.
            let key = a % (1 + a / 10);
            s.access(&k(key));
            *truth.entry(key).or_insert(0u64) += 1;
        }
        let est: std::collections::HashMap<String, u64> = s.top(cap).into_iter().collect();
        let n = accesses.len() as u64;
        for (key, count) in truth {
            if count > n / cap as u64 {
                let got = est.get(&format!("k{key}")).copied();
                prop_assert!(got.is_some_and(|g| g >= count), "k{key}: {count} of {n}, got {got:?}");
            }
        }
    }
}

#[test]
fn a_window_reports_rates_occupancy_and_resets() {
    let mut m = LoadMeter::new(1_000_000);
    for _ in 0..3 {
        m.read(&k(7));
        m.served(100);
    }
    m.wrote(&k(8));
    m.served(700);
    let w = m.take(2_000_000, 2, 50);
    assert_eq!((w.gets, w.puts, w.requests), (3, 1, 4));
    assert_eq!(
        (w.window_us, w.busy_us, w.service_us_max),
        (1_000_000, 1_000, 700)
    );
    assert!((w.occupancy() - 0.001).abs() < 1e-9);
    assert_eq!(w.hot, vec![("k7".into(), 3), ("k8".into(), 1)]);
    assert_eq!((w.keys, w.bytes), (2, 50));
    let next = m.take(3_000_000, 2, 50);
    assert_eq!(
        (next.requests, next.hot.len(), next.window_us),
        (0, 0, 1_000_000)
    );
    assert_eq!(next.occupancy(), 0.0);
}

/// The meter's estimate of each key's count in one window of `accesses` (keys in order).
fn window_estimates(accesses: impl Iterator<Item = Key>) -> (ShardLoad, HashMap<String, u64>) {
    let mut m = LoadMeter::new(1_000_000);
    for key in accesses {
        m.read(&key);
        m.served(1);
    }
    let w = m.take(2_000_000, 0, 0);
    let est = w.hot.iter().cloned().collect();
    (w, est)
}

/// A sampled count `c` is within this many standard deviations (`sqrt(HOT_SAMPLE_ONE_IN *
/// c)`) of the truth: a chance under 1e-6 of failing for a random seed (the seed is fixed,
/// so each test is deterministic).
const SIGMAS: f64 = 5.0;

fn assert_close(est: &HashMap<String, u64>, key: &str, truth: u64) {
    let got = est.get(key).copied().unwrap_or(0);
    let bound = SIGMAS * ((HOT_SAMPLE_ONE_IN * truth) as f64).sqrt();
    let off = got.abs_diff(truth) as f64;
    assert!(
        off <= bound,
        "{key}: estimated {got}, true {truth}, bound ±{bound:.0}"
    );
}

#[test]
fn sampled_counts_of_a_busy_window_stay_within_the_stated_bound() {
    // 200 000 accesses: three hot keys at 20 %, 10 % and 5 %, the rest spread over 1 000
    // cold keys (the benchmark's pattern), far past the exact part of the window.
    let n = 200_000u64;
    let key = |i: u64| match i % 20 {
        0..=3 => k(0),
        4 | 5 => k(1),
        6 => k(2),
        _ => k(1_000 + i % 1_000),
    };
    let (w, est) = window_estimates((0..n).map(key));
    assert_eq!(
        (w.gets, w.requests),
        (n, n),
        "request counts are never sampled"
    );
    assert_close(&est, "k0", n / 5);
    assert_close(&est, "k1", n / 10);
    assert_close(&est, "k2", n / 20);
    let top: Vec<&str> = w.hot.iter().take(3).map(|(k, _)| k.as_str()).collect();
    assert_eq!(top, vec!["k0", "k1", "k2"]);
}

#[test]
fn a_workload_in_step_with_the_sampling_period_is_still_counted() {
    // The hot key is every 16th access: a sampler taking every 16th access would count it
    // 16 times over or not at all; the random one is unbiased.
    let n = 160_000u64;
    let key = |i: u64| match i % HOT_SAMPLE_ONE_IN {
        0 => k(0),
        _ => k(1_000 + i % 997),
    };
    let (_, est) = window_estimates((0..n).map(key));
    assert_close(&est, "k0", n / HOT_SAMPLE_ONE_IN);
}

#[test]
fn a_quiet_window_is_counted_exactly() {
    // Up to HOT_EXACT_ACCESSES, every access counts once: no sampling error at all.
    let n = HOT_EXACT_ACCESSES;
    let (_, est) = window_estimates((0..n).map(|i| k(i % 4)));
    for i in 0..4 {
        assert_eq!(est.get(&format!("k{i}")).copied(), Some(n / 4));
    }
}

#[test]
fn one_service_time_counts_at_most_the_cap() {
    // A wall-clock step inside a request must not count as hours of busy time.
    let mut m = LoadMeter::new(0);
    m.served(3_600_000_000);
    m.served(10);
    let w = m.take(1_000_000, 0, 0);
    assert_eq!(
        (w.service_us_max, w.busy_us),
        (MAX_SERVICE_US, MAX_SERVICE_US + 10)
    );
}
