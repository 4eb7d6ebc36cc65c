//! What a KVS shard measures of its own load, with no I/O: requests and their service
//! time, the time it was busy over the window (occupancy), and its hottest keys from a
//! bounded sketch (Space-Saving: a fixed number of counters, so a shard of a million keys
//! costs what one of a hundred does). The shard's owner reads and resets it once per
//! report window ([`LoadMeter::take`]).
//!
//! It sits on every client request, so it stays cheap: request and key counts are plain
//! additions, and past the first [`HOT_EXACT_ACCESSES`] accesses of a window the sketch
//! samples ([`HOT_SAMPLE_ONE_IN`]) with its counts scaled back up.

use crate::ids::Key;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Counters of the hot-key sketch per shard. Space-Saving finds every key accessed more
/// than window accesses / `HOT_SKETCH_CAPACITY` times, and overestimates a count by at
/// most that much: 64 finds keys above 1.6 % of a shard's accesses.
pub const HOT_SKETCH_CAPACITY: usize = 64;
/// Hot keys a shard reports per window (the monitor needs the head of the distribution).
pub const HOT_KEYS_REPORTED: usize = 16;
/// Accesses of a window the sketch counts one by one: a quiet shard's counts are exact,
/// and sampling only starts once counts are large enough for its spread to be small.
pub const HOT_EXACT_ACCESSES: u64 = 1_024;
/// Past [`HOT_EXACT_ACCESSES`], the sketch takes one access in this many, drawn at random
/// (a workload cycling through keys cannot fall in step with it), and counts it this many
/// times. The counts stay unbiased; sampling spreads a count `c` by about
/// `sqrt(HOT_SAMPLE_ONE_IN * c)` (one standard deviation: 4 % of 10 000), and a sketch
/// update (a hash and, for a key not tracked, a scan of the counters) then costs one
/// request in 16 instead of every one. A power of two.
pub const HOT_SAMPLE_ONE_IN: u64 = 16;
const _: () = assert!(HOT_SAMPLE_ONE_IN.is_power_of_two());
/// One request's service time is counted at most this long: no request holds a shard for
/// a second, and a step of the wall clock (which times requests) during one would
/// otherwise count as hours of busy time.
pub const MAX_SERVICE_US: u64 = 1_000_000;

/// The most accessed keys of a window, in bounded space (the Space-Saving algorithm).
#[derive(Debug, Clone)]
pub struct HotKeys {
    capacity: usize,
    /// Counter index of each tracked key.
    index: HashMap<Key, usize>,
    /// (key, estimated count, overestimate bound).
    counters: Vec<(Key, u64, u64)>,
}

impl HotKeys {
    pub fn new(capacity: usize) -> HotKeys {
        HotKeys {
            capacity: capacity.max(1),
            index: HashMap::new(),
            counters: Vec::new(),
        }
    }

    /// Count one access of `key`.
    pub fn access(&mut self, key: &Key) {
        self.add(key, 1);
    }

    /// Count `weight` accesses of `key` (weighted Space-Saving: the same guarantee, with
    /// the total weight in place of the number of accesses).
    pub fn add(&mut self, key: &Key, weight: u64) {
        if let Some(&i) = self.index.get(key) {
            self.counters[i].1 += weight;
            return;
        }
        if self.counters.len() < self.capacity {
            self.index.insert(key.clone(), self.counters.len());
            self.counters.push((key.clone(), weight, 0));
            return;
        }
        // Full: the key takes over the smallest counter, inheriting its count as error.
        let Some((i, _)) = self.counters.iter().enumerate().min_by_key(|(_, c)| c.1) else {
            return;
        };
        let min = self.counters[i].1;
        let (old, _, _) =
            std::mem::replace(&mut self.counters[i], (key.clone(), min + weight, min));
        self.index.remove(&old);
        self.index.insert(key.clone(), i);
    }

    /// The `n` keys with the highest estimated counts, highest first (ties by key).
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .counters
            .iter()
            .map(|(k, c, _)| (k.to_string(), *c))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// Keys tracked now (at most the capacity).
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    fn clear(&mut self) {
        self.index.clear();
        self.counters.clear();
    }
}

/// One shard's load over one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardLoad {
    /// Length of the window, µs.
    pub window_us: u64,
    /// Time spent serving requests in the window, µs.
    pub busy_us: u64,
    /// Keys read and written by clients (gossip and hand-off not counted).
    pub gets: u64,
    pub puts: u64,
    /// Requests served, and the sum and maximum of their service times, µs.
    pub requests: u64,
    pub service_us_sum: u64,
    pub service_us_max: u64,
    /// The hottest keys of the window with their estimated access counts (sampled in a
    /// busy window: see [`HOT_SAMPLE_ONE_IN`]).
    pub hot: Vec<(String, u64)>,
    /// Keys and bytes stored at the end of the window.
    pub keys: u64,
    pub bytes: u64,
}

/// Accumulates a shard's load between two reports.
#[derive(Debug, Clone)]
pub struct LoadMeter {
    since_us: u64,
    load: ShardLoad,
    hot: HotKeys,
    /// State of the generator that picks the sampled accesses (xorshift64, never 0).
    rng: u64,
}

impl LoadMeter {
    /// A meter whose first window starts at `now_us`.
    pub fn new(now_us: u64) -> LoadMeter {
        LoadMeter {
            since_us: now_us,
            load: ShardLoad::default(),
            hot: HotKeys::new(HOT_SKETCH_CAPACITY),
            rng: (now_us ^ 0x9E37_79B9_7F4A_7C15).max(1),
        }
    }

    /// A client read `key`.
    pub fn read(&mut self, key: &Key) {
        self.load.gets += 1;
        self.sketch(key);
    }

    /// A client wrote `key`.
    pub fn wrote(&mut self, key: &Key) {
        self.load.puts += 1;
        self.sketch(key);
    }

    /// Count an access (already added to `gets` or `puts`) in the sketch: every one of the
    /// window's first [`HOT_EXACT_ACCESSES`], then one in [`HOT_SAMPLE_ONE_IN`] at random.
    fn sketch(&mut self, key: &Key) {
        if self.load.gets + self.load.puts <= HOT_EXACT_ACCESSES {
            self.hot.add(key, 1);
            return;
        }
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        if (x >> 32) % HOT_SAMPLE_ONE_IN == 0 {
            self.hot.add(key, HOT_SAMPLE_ONE_IN);
        }
    }

    /// One request was served in `service_us` (counted at most [`MAX_SERVICE_US`]).
    pub fn served(&mut self, service_us: u64) {
        let service_us = service_us.min(MAX_SERVICE_US);
        let l = &mut self.load;
        l.requests += 1;
        l.busy_us = l.busy_us.saturating_add(service_us);
        l.service_us_sum = l.service_us_sum.saturating_add(service_us);
        l.service_us_max = l.service_us_max.max(service_us);
    }

    /// The window ending at `now_us`, with the shard's `keys` and `bytes`; a new window
    /// starts.
    pub fn take(&mut self, now_us: u64, keys: u64, bytes: u64) -> ShardLoad {
        let mut load = std::mem::take(&mut self.load);
        load.window_us = now_us.saturating_sub(self.since_us);
        load.hot = self.hot.top(HOT_KEYS_REPORTED);
        load.keys = keys;
        load.bytes = bytes;
        self.hot.clear();
        self.since_us = now_us;
        load
    }
}

impl ShardLoad {
    /// Busy time over the window (0 for an empty window), at most 1.
    pub fn occupancy(&self) -> f64 {
        match self.window_us {
            0 => 0.0,
            w => (self.busy_us as f64 / w as f64).min(1.0),
        }
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
