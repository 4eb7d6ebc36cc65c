//! The power-loss checker: writers put counters and note each acknowledgement; the power
//! is cut while they run; what the disk kept is recovered and compared with what was
//! acknowledged before the cut. The checker first shows it sees a loss (`interval` mode
//! loses its open window), then that `always` loses nothing acknowledged.

use super::log::tests::{apply, opts, start, DIR};
use super::recovery::recover;
use super::sim::SimFs;
use super::Durability;
use crate::ids::Key;
use crate::lattice::{LatticeValue, Max};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 4;
/// How long writers run before the power is cut.
const RUN_FOR: Duration = Duration::from_millis(300);
/// Each writer pauses after this many puts.
const PACE_EVERY: i64 = 10;

struct Outcome {
    /// `(key, value, when acknowledged)` for every write acknowledged before the cut.
    acked: Vec<(Key, i64, Instant)>,
    cut_at: Instant,
    recovered: BTreeMap<Key, LatticeValue>,
}

impl Outcome {
    /// Acknowledged writes whose value (or a larger one) is not on the disk.
    fn lost(&self) -> Vec<&(Key, i64, Instant)> {
        self.acked
            .iter()
            .filter(|(k, n, _)| match self.recovered.get(k) {
                Some(LatticeValue::Max(m)) => m.get().is_none_or(|v| v < n),
                _ => true,
            })
            .collect()
    }
}

fn run(durability: Durability, flush_interval: Duration) -> Outcome {
    let fs = SimFs::new();
    fs.set_sync_delay(Duration::from_millis(1));
    let mut o = opts(durability);
    o.flush_interval = flush_interval;
    // What waits for the disk adds to the window: keep it small, as a shard's admission does.
    o.max_pending_bytes = 64 << 10;
    let (log, _) = start(&fs, o);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (log, acked, stop) = (log.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0i64;
                while !stop.load(Relaxed) {
                    // Paced well below what the writer thread keeps up with, as the shard
                    // actor's rate is; a write the log cannot take now is not applied.
                    if n % PACE_EVERY == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    if log.admit().is_err() {
                        continue;
                    }
                    n += 1;
                    let key = Key::new(format!("counter-{w}-{}", n % 8));
                    log.put(key.clone(), LatticeValue::Max(Max::new(n)));
                    if let Some(rx) = log.sync_point() {
                        if !matches!(rx.blocking_recv(), Ok(Ok(()))) {
                            continue; // not acknowledged
                        }
                    }
                    let mut a = acked.lock().unwrap();
                    a.push((key, n, Instant::now()));
                }
            })
        })
        .collect();
    std::thread::sleep(RUN_FOR);
    // Cut the power with the acknowledgement list held: nothing is acknowledged meanwhile.
    let (acked_before, after, cut_at) = {
        let a = acked.lock().unwrap();
        (a.clone(), fs.power_loss(0), Instant::now())
    };
    stop.store(true, Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    log.close();
    let mut recovered = BTreeMap::new();
    recover(&after, Path::new(DIR), &mut |r| apply(&mut recovered, r)).unwrap();
    Outcome {
        acked: acked_before,
        cut_at,
        recovered,
    }
}

#[test]
fn interval_mode_loses_at_most_its_window_and_the_checker_sees_it() {
    let window = Duration::from_millis(150);
    let out = run(Durability::Interval, window);
    let lost = out.lost();
    assert!(
        !lost.is_empty(),
        "the checker must see the open window's writes lost ({} acknowledged)",
        out.acked.len()
    );
    // A sync runs at least every `window`; one may be running as the power goes, and
    // what waits for the disk (bounded by admission) adds its write time; on a loaded
    // two-core machine the threads also wait for a core: allow that much more.
    let slack = Duration::from_millis(250);
    for (k, n, at) in &lost {
        let age = out.cut_at.saturating_duration_since(*at);
        assert!(
            age <= window + slack,
            "{k} = {n} acknowledged {age:?} before the cut was lost: beyond the window"
        );
    }
}

#[test]
fn always_mode_loses_nothing_acknowledged() {
    let out = run(Durability::Always, Duration::from_millis(150));
    assert!(out.acked.len() > 100, "only {} writes", out.acked.len());
    let lost = out.lost();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}
