//! The hot-key sketch and the load meter.

use super::*;
use proptest::prelude::*;

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
