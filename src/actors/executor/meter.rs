//! The executor's load meter: calls in the executor integrated over time, so a status
//! reports busy worker-seconds and mean demand over its window rather than a sample.
//!
//! A call is counted from when the executor starts it (running or waiting for a worker) to
//! when it ends. Busy workers are taken as min(calls, workers): the pool hands a free
//! worker to a waiting call at once.

use crate::protocol::load::{FunctionLoad, MAX_REPORTED_FUNCTIONS};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Distinct functions tracked within one window; calls of others still count in the
/// totals. Bounds the meter's memory when a window sees very many functions.
pub const MAX_TRACKED_FUNCTIONS: usize = 4 * MAX_REPORTED_FUNCTIONS;

/// The load of one window, as [`SharedMeter::take`] hands it out.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowLoad {
    pub window: Duration,
    pub occupancy: f64,
    pub demand: f64,
    /// Calls in the executor at the window's end.
    pub in_flight: u32,
    /// Most calls first, at most [`MAX_REPORTED_FUNCTIONS`].
    pub functions: Vec<FunctionLoad>,
}

/// Time-weighted counts of calls in the executor (no I/O; time is passed in), shared by
/// the executor and its running calls. A call's start touches only atomics, its end the
/// atomics and one short lock for its function's figures.
///
/// The integral of the call count is kept as Σ ±t over its changes (−t when a call starts
/// at t, +t when one ends): adding count(now) × now gives ∫ count dt since `epoch`, so a
/// window's area is the difference of two such values, with no lock per change. The busy
/// workers (min(count, workers)) are integrated the same way, changing only when the count
/// crosses the number of workers. A `take` racing a call's start or end may misplace that
/// call by the nanoseconds between its two atomic updates.
#[derive(Debug)]
pub struct SharedMeter {
    epoch: Instant,
    workers: u32,
    calls: AtomicU32,
    demand_acc: AtomicI64,
    busy_acc: AtomicI64,
    window: Mutex<Window>,
}

/// The current window: where it started, and its functions' figures so far.
#[derive(Debug)]
struct Window {
    start: Instant,
    /// ∫ count and ∫ busy since `epoch` at `start`, in call-nanoseconds.
    demand_at_start: i128,
    busy_at_start: i128,
    functions: HashMap<String, FunctionLoad>,
}

impl SharedMeter {
    pub fn new(workers: usize, now: Instant) -> Arc<Self> {
        let workers = u32::try_from(workers).unwrap_or(u32::MAX).max(1);
        Arc::new(SharedMeter {
            epoch: now,
            workers,
            calls: AtomicU32::new(0),
            demand_acc: AtomicI64::new(0),
            busy_acc: AtomicI64::new(0),
            window: Mutex::new(Window {
                start: now,
                demand_at_start: 0,
                busy_at_start: 0,
                functions: HashMap::new(),
            }),
        })
    }

    fn nanos(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(i64::MAX)
    }

    /// Calls in the executor now.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed) as usize
    }

    /// A call started.
    pub fn enter(&self, now: Instant) {
        let t = self.nanos(now);
        let before = self.calls.fetch_add(1, Ordering::Relaxed);
        self.demand_acc.fetch_sub(t, Ordering::Relaxed);
        if before < self.workers {
            self.busy_acc.fetch_sub(t, Ordering::Relaxed);
        }
    }

    /// A call of `function` (if it was a function run) ended after `spent`. Every `leave`
    /// follows its `enter` (see [`Running`]).
    pub fn leave(&self, function: Option<&str>, spent: Duration, now: Instant) {
        let t = self.nanos(now);
        let before = self.calls.fetch_sub(1, Ordering::Relaxed);
        self.demand_acc.fetch_add(t, Ordering::Relaxed);
        if before <= self.workers {
            self.busy_acc.fetch_add(t, Ordering::Relaxed);
        }
        let Some(name) = function else { return };
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let tracked = w.functions.len() < MAX_TRACKED_FUNCTIONS;
        let entry = match w.functions.get_mut(name) {
            Some(e) => e,
            None if tracked => w.functions.entry(name.to_owned()).or_insert(FunctionLoad {
                function: name.to_owned(),
                ..FunctionLoad::default()
            }),
            None => return,
        };
        entry.calls = entry.calls.saturating_add(1);
        let us = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        entry.runtime_us = entry.runtime_us.saturating_add(us);
    }

    /// ∫ count dt and ∫ busy dt since `epoch` up to `now`, in call-nanoseconds.
    fn integrals(&self, now: Instant) -> (i128, i128, u32) {
        let t = i128::from(self.nanos(now));
        let calls = self.calls.load(Ordering::Relaxed);
        let demand = i128::from(self.demand_acc.load(Ordering::Relaxed));
        let busy = i128::from(self.busy_acc.load(Ordering::Relaxed));
        let n = i128::from(calls);
        (
            demand + n * t,
            busy + n.min(i128::from(self.workers)) * t,
            calls,
        )
    }

    /// The window since the last `take` (or the start), and begin the next one.
    pub fn take(&self, now: Instant) -> WindowLoad {
        let (demand, busy, in_flight) = self.integrals(now);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let window = now.saturating_duration_since(w.start);
        let nanos = window.as_nanos() as f64;
        let mean = |area: i128| {
            if nanos > 0.0 {
                (area as f64 / nanos).max(0.0)
            } else {
                0.0
            }
        };
        let mut functions: Vec<FunctionLoad> = w.functions.drain().map(|(_, f)| f).collect();
        functions.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.function.cmp(&b.function)));
        functions.truncate(MAX_REPORTED_FUNCTIONS);
        let load = WindowLoad {
            window,
            occupancy: (mean(busy - w.busy_at_start) / f64::from(self.workers)).min(1.0),
            demand: mean(demand - w.demand_at_start),
            in_flight,
            functions,
        };
        w.start = w.start.max(now);
        w.demand_at_start = demand;
        w.busy_at_start = busy;
        load
    }
}

/// One call in the executor (a function run, or a failure being reported): counted while
/// it lives. It borrows the function's name (nothing is allocated per call).
pub struct Running<'a> {
    meter: Arc<SharedMeter>,
    function: Option<&'a str>,
    since: Instant,
}

impl<'a> Running<'a> {
    pub fn start(meter: &Arc<SharedMeter>, function: Option<&'a str>) -> Running<'a> {
        let since = Instant::now();
        meter.enter(since);
        Running {
            meter: meter.clone(),
            function,
            since,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let spent = now.saturating_duration_since(self.since);
        self.meter.leave(self.function, spent, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn means_are_integrated_over_the_window_not_sampled() {
        let t0 = Instant::now();
        let m = SharedMeter::new(2, t0);
        // Three calls for the first 100 ms of a 400 ms window, none at its end: a sample
        // at the end would say 0; the integral says 3 × 0.1 / 0.4.
        for _ in 0..3 {
            m.enter(t0);
        }
        for _ in 0..3 {
            m.leave(Some("f"), ms(100), t0 + ms(100));
        }
        let w = m.take(t0 + ms(400));
        assert_eq!((w.window, w.in_flight), (ms(400), 0));
        assert!((w.demand - 0.75).abs() < 1e-9, "{w:?}");
        // Only 2 of the 3 calls had a worker: 2 × 0.1 / (2 workers × 0.4).
        assert!((w.occupancy - 0.25).abs() < 1e-9, "{w:?}");
        assert_eq!(
            w.functions,
            vec![FunctionLoad {
                function: "f".into(),
                calls: 3,
                runtime_us: 300_000
            }]
        );
        // The next window starts empty; a call still in flight counts all through it.
        m.enter(t0 + ms(400));
        let w = m.take(t0 + ms(600));
        assert!((w.demand - 1.0).abs() < 1e-9 && w.in_flight == 1, "{w:?}");
        assert!(w.functions.is_empty());
    }

    #[test]
    fn the_function_list_is_bounded_and_most_called_first() {
        let t0 = Instant::now();
        let m = SharedMeter::new(1, t0);
        for i in 0..MAX_TRACKED_FUNCTIONS + 10 {
            m.enter(t0);
            m.leave(Some(&format!("f{i}")), ms(1), t0);
        }
        m.enter(t0);
        m.leave(Some("f3"), ms(1), t0);
        let w = m.take(t0 + ms(10));
        assert_eq!(w.functions.len(), MAX_REPORTED_FUNCTIONS);
        assert_eq!(
            (w.functions[0].function.as_str(), w.functions[0].calls),
            ("f3", 2)
        );
    }

    #[test]
    fn a_running_guard_counts_while_it_lives() {
        let meter = SharedMeter::new(1, Instant::now());
        let a = Running::start(&meter, Some("f"));
        let b = Running::start(&meter, None);
        assert_eq!(meter.calls(), 2);
        drop((a, b));
        assert_eq!(meter.calls(), 0);
        let w = meter.take(Instant::now());
        assert_eq!(w.functions.len(), 1, "only function runs are named");
    }
}
