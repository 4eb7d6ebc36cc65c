//! The executor's load meter: calls in the executor integrated over time, so a status
//! reports busy worker-seconds and mean demand over its window rather than a sample.
//!
//! A call is counted from when the executor starts it (running or waiting for a worker) to
//! when it ends. Busy workers are taken as min(calls, workers): the pool hands a free
//! worker to a waiting call at once.

use crate::protocol::load::{FunctionLoad, MAX_REPORTED_FUNCTIONS};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Distinct functions tracked within one window; calls of others still count in the
/// totals. Bounds the meter's memory when a window sees very many functions.
pub const MAX_TRACKED_FUNCTIONS: usize = 4 * MAX_REPORTED_FUNCTIONS;

/// The load of one window, as [`LoadMeter::take`] hands it out.
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

/// Time-weighted counts of calls in the executor (no I/O; time is passed in).
#[derive(Debug)]
pub struct LoadMeter {
    workers: u32,
    calls: u32,
    last: Instant,
    window_start: Instant,
    /// Call-seconds and busy-worker-seconds since `window_start`.
    demand_area: f64,
    busy_area: f64,
    functions: HashMap<String, FunctionLoad>,
}

impl LoadMeter {
    pub fn new(workers: u32, now: Instant) -> Self {
        LoadMeter {
            workers: workers.max(1),
            calls: 0,
            last: now,
            window_start: now,
            demand_area: 0.0,
            busy_area: 0.0,
            functions: HashMap::new(),
        }
    }

    /// Calls in the executor now.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.demand_area += f64::from(self.calls) * dt;
        self.busy_area += f64::from(self.calls.min(self.workers)) * dt;
        self.last = self.last.max(now);
    }

    /// A call started.
    pub fn enter(&mut self, now: Instant) {
        self.advance(now);
        self.calls = self.calls.saturating_add(1);
    }

    /// A call of `function` (if it was a function run) ended after `spent`.
    pub fn leave(&mut self, function: Option<&str>, spent: Duration, now: Instant) {
        self.advance(now);
        self.calls = self.calls.saturating_sub(1);
        let Some(name) = function else { return };
        let tracked = self.functions.len() < MAX_TRACKED_FUNCTIONS;
        let entry = match self.functions.get_mut(name) {
            Some(e) => e,
            None if tracked => self
                .functions
                .entry(name.to_owned())
                .or_insert(FunctionLoad {
                    function: name.to_owned(),
                    ..FunctionLoad::default()
                }),
            None => return,
        };
        entry.calls = entry.calls.saturating_add(1);
        let us = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        entry.runtime_us = entry.runtime_us.saturating_add(us);
    }

    /// The window since the last `take` (or the start), and begin the next one.
    pub fn take(&mut self, now: Instant) -> WindowLoad {
        self.advance(now);
        let window = now.saturating_duration_since(self.window_start);
        let secs = window.as_secs_f64();
        let mean = |area: f64| if secs > 0.0 { area / secs } else { 0.0 };
        let mut functions: Vec<FunctionLoad> = self.functions.drain().map(|(_, f)| f).collect();
        functions.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.function.cmp(&b.function)));
        functions.truncate(MAX_REPORTED_FUNCTIONS);
        let load = WindowLoad {
            window,
            occupancy: (mean(self.busy_area) / f64::from(self.workers)).min(1.0),
            demand: mean(self.demand_area),
            in_flight: self.calls,
            functions,
        };
        self.window_start = self.last;
        self.demand_area = 0.0;
        self.busy_area = 0.0;
        load
    }
}

/// A [`LoadMeter`] shared by the executor and its running calls.
#[derive(Debug)]
pub struct SharedMeter(Mutex<LoadMeter>);

impl SharedMeter {
    pub fn new(workers: usize, now: Instant) -> Arc<Self> {
        let workers = u32::try_from(workers).unwrap_or(u32::MAX);
        Arc::new(SharedMeter(Mutex::new(LoadMeter::new(workers, now))))
    }

    fn with<R>(&self, f: impl FnOnce(&mut LoadMeter) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Calls in the executor now.
    pub fn calls(&self) -> usize {
        self.with(|m| m.calls() as usize)
    }

    pub fn take(&self, now: Instant) -> WindowLoad {
        self.with(|m| m.take(now))
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
        meter.with(|m| m.enter(since));
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
        self.meter.with(|m| m.leave(self.function, spent, now));
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
        let mut m = LoadMeter::new(2, t0);
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
        let mut m = LoadMeter::new(1, t0);
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
