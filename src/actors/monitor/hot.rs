//! Which functions are hot, by the calls the executors report (no I/O; time is passed in):
//! a launched executor loads these before it reports ready (a warm start). Each function's
//! rate decays with a half-life, so what was hot a minute ago fades; the functions calls
//! wait for at a scheduler (scale from zero) come first.

use crate::protocol::load::FunctionLoad;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A function's call count halves over this: recent enough to follow the load, long
/// enough that a function called every few seconds stays hot.
pub const HOT_HALF_LIFE: Duration = Duration::from_secs(30);
/// Functions tracked at most (the coldest go first): bounds memory whatever the number of
/// functions registered.
pub const MAX_TRACKED: usize = 256;
/// Functions a launch loads at most: each is loaded into every worker before the node
/// reports ready, so a long list delays the capacity it brings.
pub const MAX_WARM_AT_LAUNCH: usize = 8;
/// A decayed count below this is forgotten.
const FORGOTTEN: f64 = 0.01;

/// Decayed call counts per function.
#[derive(Debug)]
pub struct Hot {
    counts: HashMap<String, f64>,
    last: Instant,
}

impl Hot {
    pub fn new(now: Instant) -> Self {
        Hot {
            counts: HashMap::new(),
            last: now,
        }
    }

    fn decay(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        if dt <= 0.0 {
            return;
        }
        let factor = 0.5f64.powf(dt / HOT_HALF_LIFE.as_secs_f64());
        self.counts.retain(|_, c| {
            *c *= factor;
            *c >= FORGOTTEN
        });
        self.last = now;
    }

    /// An executor reported the calls of `functions` in its last window.
    pub fn record(&mut self, functions: &[FunctionLoad], now: Instant) {
        self.decay(now);
        for f in functions.iter().filter(|f| f.calls > 0) {
            let n = f64::from(f.calls);
            if let Some(c) = self.counts.get_mut(&f.function) {
                *c += n;
            } else if self.counts.len() < MAX_TRACKED {
                self.counts.insert(f.function.clone(), n);
            } else {
                self.replace_coldest(&f.function, n);
            }
        }
    }

    fn replace_coldest(&mut self, function: &str, count: f64) {
        let coldest = self
            .counts
            .iter()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, v)| (k.clone(), *v))
            .filter(|(_, c)| *c < count);
        if let Some((name, _)) = coldest {
            self.counts.remove(&name);
            self.counts.insert(function.to_string(), count);
        }
    }

    /// What a launch at `now` should load: `waited_for` first (calls wait for them), then
    /// the hottest, at most [`MAX_WARM_AT_LAUNCH`].
    pub fn for_launch(&mut self, waited_for: &[String], now: Instant) -> Vec<String> {
        self.decay(now);
        let mut ranked: Vec<(&String, f64)> = self.counts.iter().map(|(k, v)| (k, *v)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        let mut out: Vec<String> = Vec::with_capacity(MAX_WARM_AT_LAUNCH);
        let names = waited_for.iter().chain(ranked.into_iter().map(|(k, _)| k));
        for name in names {
            if out.len() >= MAX_WARM_AT_LAUNCH {
                break;
            }
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(function: &str, calls: u32) -> FunctionLoad {
        FunctionLoad {
            function: function.into(),
            calls,
            runtime_us: 0,
        }
    }

    #[test]
    fn the_hottest_come_after_the_waited_for_and_old_calls_fade() {
        let t0 = Instant::now();
        let mut h = Hot::new(t0);
        h.record(&[calls("old", 100)], t0);
        let later = t0 + HOT_HALF_LIFE * 4;
        h.record(&[calls("new", 10), calls("mid", 7)], later);
        assert_eq!(
            h.for_launch(&["waiting".into(), "mid".into()], later),
            vec!["waiting", "mid", "new", "old"],
            "waited-for first; then by decayed count: new 10, old 100/16"
        );
        let much_later = later + HOT_HALF_LIFE * 20;
        assert!(h.for_launch(&[], much_later).is_empty(), "all forgotten");
    }

    #[test]
    fn tracking_and_launch_lists_are_bounded() {
        let t0 = Instant::now();
        let mut h = Hot::new(t0);
        for i in 0..MAX_TRACKED + 10 {
            h.record(&[calls(&format!("f{i}"), 1 + i as u32)], t0);
        }
        assert_eq!(h.counts.len(), MAX_TRACKED);
        assert!(
            h.counts.contains_key(&format!("f{}", MAX_TRACKED + 9)),
            "a hotter function replaces the coldest"
        );
        assert_eq!(h.for_launch(&[], t0).len(), MAX_WARM_AT_LAUNCH);
    }
}
