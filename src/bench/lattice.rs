//! `cloudburst bench lattice`: merges per second per lattice type, single-threaded.
//!
//! Workload: for each type and payload size (8 B and 1 KiB byte strings, drawn from a pool
//! of 256 random values), pairs `(state, incoming)` are built outside the timed region, then
//! a batch of [`BATCH`] merges `state.merge(incoming)` is timed (consuming `incoming`, as a
//! KVS does with a received value). A few warm-up batches are discarded. Per type the report
//! gives the median and p99 over batches of the nanoseconds per merge, merges/s at the
//! median, and (JSON only) merges/s over the whole measured time. What the pairs look like:
//! - `lww`, `priority`, `max`: random timestamp / priority / number: about half the merges
//!   replace the state.
//! - `set_union`, `ordered_set`: a set of 8 elements merged with a set of 4 (2 already in
//!   the state, 2 random from the pool).
//! - `map`: `Map<u64, Lww>` of 8 keys (out of 16) merged with one of 4 keys.
//! - `vector_clock`: two clocks of 8 writers with random counters.
//! - `single_key_causal`, `multi_key_causal` (3 dependencies of 4 writers): one version each,
//!   4 writers; the incoming write dominates, is concurrent or is dominated (a third each).

use super::stats::percentile;
use crate::cli::BenchArgs;
use crate::ids::{Key, WriterId};
use crate::lattice::{
    Dependencies, Lattice, Lww, Map, Max, MultiKeyCausal, OrderedSet, Priority, SetUnion,
    SingleKeyCausal, Timestamp, VectorClock,
};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::Serialize;
use std::hint::black_box;
use std::time::Instant;

/// Merges per timed batch: long enough to dwarf the two clock reads (~25 ns each), short
/// enough (a few to a few hundred microseconds) that few batches are hit by a context switch
/// on a shared machine, so the p99 over batches mostly shows the merges themselves.
pub const BATCH: usize = 200;
/// Untimed batches first, for caches, the allocator and the CPU clock to settle.
const WARMUP_BATCHES: usize = 5;
/// Measured merges per type and size when `--iterations` is not given.
pub const DEFAULT_MERGES: usize = 200_000;
/// Distinct payloads per size; elements are drawn from it, so sets overlap realistically.
const POOL: usize = 256;
/// Payload sizes measured for the types that carry bytes.
const SIZES: [usize; 2] = [8, 1024];

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Lattice type, snake_case.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Payload size of each value or element, in bytes.
    pub value_bytes: usize,
    /// Measured merges.
    pub merges: usize,
    /// Merges per second at the median batch (`1e9 / ns_per_merge_median`): robust to the
    /// other tenants of a shared machine.
    pub merges_per_s: f64,
    /// Measured merges divided by their total time (includes any interference).
    pub merges_per_s_mean: f64,
    /// Median over batches of nanoseconds per merge.
    pub ns_per_merge_median: f64,
    /// 99th percentile over batches of nanoseconds per merge.
    pub ns_per_merge_p99: f64,
    /// Share of merges that changed the state, in percent (shows the workload's mix).
    pub changed_pct: f64,
}

#[derive(Serialize)]
struct Report<'a> {
    workload: &'static str,
    batch_merges: usize,
    results: &'a [Row],
}

/// Run the benchmark: print a table, then with `--json` one JSON object as the last line.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let merges = args.iterations.unwrap_or(DEFAULT_MERGES);
    anyhow::ensure!(merges > 0, "--iterations must be at least 1");
    let batches = merges.div_ceil(BATCH);
    let mut rows = Vec::new();
    for size in SIZES {
        let mut g = Gen::new(size);
        rows.push(measure("lww", size, batches, &mut g, lww_pair));
        rows.push(measure("priority", size, batches, &mut g, priority_pair));
        rows.push(measure("set_union", size, batches, &mut g, set_union_pair));
        rows.push(measure(
            "ordered_set",
            size,
            batches,
            &mut g,
            ordered_set_pair,
        ));
        rows.push(measure("map", size, batches, &mut g, map_pair));
        rows.push(measure(
            "single_key_causal",
            size,
            batches,
            &mut g,
            single_pair,
        ));
        rows.push(measure(
            "multi_key_causal",
            size,
            batches,
            &mut g,
            multi_pair,
        ));
    }
    let mut g = Gen::new(8);
    rows.push(measure("max", 8, batches, &mut g, max_pair));
    rows.push(measure("vector_clock", 8, batches, &mut g, clock_pair));
    print_table(&rows);
    if args.json {
        let report = Report {
            workload: "lattice",
            batch_merges: BATCH,
            results: &rows,
        };
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// Time `batches` batches of merges of pairs made by `make` (after the warm-up batches).
fn measure<L: Lattice>(
    kind: &'static str,
    value_bytes: usize,
    batches: usize,
    g: &mut Gen,
    make: fn(&mut Gen) -> (L, L),
) -> Row {
    let mut ns_per_merge = Vec::with_capacity(batches);
    let (mut total_ns, mut changed) = (0u128, 0usize);
    for batch in 0..WARMUP_BATCHES + batches {
        let pairs: Vec<(L, L)> = (0..BATCH).map(|_| make(g)).collect();
        let mut out = Vec::with_capacity(BATCH);
        let mut batch_changed = 0usize;
        let start = Instant::now();
        for (mut state, incoming) in pairs {
            batch_changed += usize::from(state.merge(black_box(incoming)));
            out.push(black_box(state));
        }
        let elapsed = start.elapsed().as_nanos();
        drop(black_box(out));
        if batch >= WARMUP_BATCHES {
            total_ns += elapsed;
            changed += batch_changed;
            ns_per_merge.push(elapsed as f64 / BATCH as f64);
        }
    }
    ns_per_merge.sort_by(f64::total_cmp);
    let merges = batches * BATCH;
    // Non-empty: `run` ensures batches >= 1.
    let median = percentile(&ns_per_merge, 50.0);
    Row {
        kind,
        value_bytes,
        merges,
        merges_per_s: 1e9 / median.max(f64::MIN_POSITIVE),
        merges_per_s_mean: merges as f64 / (total_ns.max(1) as f64 / 1e9),
        ns_per_merge_median: median,
        ns_per_merge_p99: percentile(&ns_per_merge, 99.0),
        changed_pct: 100.0 * changed as f64 / merges as f64,
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "lattice merges, single thread, {BATCH} merges a batch (see docs/benchmarks.md)\n\
         {:<18} {:>6} {:>14} {:>12} {:>12} {:>8}",
        "type", "bytes", "merges/s", "ns median", "ns p99", "changed"
    );
    for r in rows {
        println!(
            "{:<18} {:>6} {:>14.0} {:>12.1} {:>12.1} {:>7.0}%",
            r.kind,
            r.value_bytes,
            r.merges_per_s,
            r.ns_per_merge_median,
            r.ns_per_merge_p99,
            r.changed_pct
        );
    }
}

/// Deterministic source of workload values: a seeded RNG and a pool of payloads.
struct Gen {
    rng: StdRng,
    pool: Vec<Bytes>,
}

impl Gen {
    fn new(value_bytes: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(0x1a77_1ce5);
        let pool = (0..POOL)
            .map(|_| {
                let mut v = vec![0u8; value_bytes];
                rng.fill_bytes(&mut v);
                Bytes::from(v)
            })
            .collect();
        Gen { rng, pool }
    }

    fn payload(&mut self) -> Bytes {
        // In bounds: the pool has exactly POOL payloads.
        self.pool[self.rng.gen_range(0..POOL)].clone()
    }

    fn lww(&mut self) -> Lww {
        let ts = Timestamp::new(
            self.rng.gen_range(0..1000),
            WriterId(self.rng.gen_range(0..4)),
        );
        Lww::new(ts, self.payload())
    }

    /// A clock over writers `1..=writers` (0 is the reserved base) with counters in `1..100`.
    fn clock(&mut self, writers: u64) -> VectorClock {
        (1..=writers)
            .map(|w| (WriterId(w), self.rng.gen_range(1..100)))
            .collect()
    }

    /// Two clocks: the incoming one dominates, is concurrent or is dominated.
    fn causal_clocks(&mut self) -> (VectorClock, VectorClock) {
        let base = self.clock(4);
        let (mut state, mut incoming) = (base.clone(), base);
        match self.rng.gen_range(0..3) {
            0 => incoming.increment(WriterId(self.rng.gen_range(1..=4))),
            1 => {
                state.increment(WriterId(1));
                incoming.increment(WriterId(2))
            }
            _ => state.increment(WriterId(self.rng.gen_range(1..=4))),
        };
        (state, incoming)
    }

    fn deps(&mut self) -> Dependencies {
        (0..3)
            .map(|k| (Key::new(format!("dep-{k}")), self.clock(4)))
            .collect()
    }
}

fn lww_pair(g: &mut Gen) -> (Lww, Lww) {
    (g.lww(), g.lww())
}

fn priority_pair(g: &mut Gen) -> (Priority<u64, Bytes>, Priority<u64, Bytes>) {
    let mut one = || Priority::new(g.rng.gen_range(0..1000), g.payload());
    (one(), one())
}

fn max_pair(g: &mut Gen) -> (Max<i64>, Max<i64>) {
    (Max::new(g.rng.gen()), Max::new(g.rng.gen()))
}

/// 8 elements, and 4 of which 2 come from the state.
fn set_elements(g: &mut Gen) -> (Vec<Bytes>, Vec<Bytes>) {
    let state: Vec<Bytes> = (0..8).map(|_| g.payload()).collect();
    // In bounds: `state` has 8 elements.
    let incoming = vec![state[1].clone(), state[5].clone(), g.payload(), g.payload()];
    (state, incoming)
}

fn set_union_pair(g: &mut Gen) -> (SetUnion<Bytes>, SetUnion<Bytes>) {
    let (a, b) = set_elements(g);
    (a.into_iter().collect(), b.into_iter().collect())
}

fn ordered_set_pair(g: &mut Gen) -> (OrderedSet<Bytes>, OrderedSet<Bytes>) {
    let (a, b) = set_elements(g);
    (a.into_iter().collect(), b.into_iter().collect())
}

fn map_pair(g: &mut Gen) -> (Map<u64, Lww>, Map<u64, Lww>) {
    let mut entries =
        |n: usize| -> Map<u64, Lww> { (0..n).map(|_| (g.rng.gen_range(0..16), g.lww())).collect() };
    (entries(8), entries(4))
}

fn clock_pair(g: &mut Gen) -> (VectorClock, VectorClock) {
    (g.clock(8), g.clock(8))
}

fn single_pair(g: &mut Gen) -> (SingleKeyCausal, SingleKeyCausal) {
    let (a, b) = g.causal_clocks();
    (
        SingleKeyCausal::new(a, g.payload()),
        SingleKeyCausal::new(b, g.payload()),
    )
}

fn multi_pair(g: &mut Gen) -> (MultiKeyCausal, MultiKeyCausal) {
    let (a, b) = g.causal_clocks();
    let state = MultiKeyCausal::new(a, g.deps(), g.payload());
    (state, MultiKeyCausal::new(b, g.deps(), g.payload()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_run_measures_every_row() {
        let mut g = Gen::new(8);
        let row = measure("single_key_causal", 8, 2, &mut g, single_pair);
        assert_eq!(row.merges, 2 * BATCH);
        assert!(row.ns_per_merge_median > 0.0 && row.merges_per_s > 0.0);
        assert!(row.changed_pct > 30.0 && row.changed_pct < 90.0, "{row:?}");
        let json = serde_json::to_string(&row).unwrap_or_default();
        assert!(json.contains("\"type\":\"single_key_causal\""), "{json}");
    }
}
