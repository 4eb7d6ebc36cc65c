//! `cloudburst bench python`: what a call costs through the worker pool versus an embedded
//! in-process call, and the parallel speedup of CPU-bound functions on a 2-worker pool.
//!
//! - no-op overhead: `lambda cb, x: x` called N times (default 10k, after 1k warm-up)
//!   sequentially; in process = attach + decode args + call + encode result through the
//!   same glue the workers run; through the pool = the above plus the socket round trip.
//! - speedup: a CPU-bound function (~0.2 s) alone, then two at once on a 2-worker pool;
//!   speedup = 2 × t(one) / t(two) per round, ideal 2.0.

use super::interp::{self, CallRef, Glue};
use super::{
    FunctionKind, FunctionSpec, LibError, PoolConfig, PyCall, PyValue, PythonPool, UserLibrary,
};
use crate::bench::stats::Summary;
use crate::cli::BenchArgs;
use crate::ids::Key;
use crate::protocol::ErrorCode;
use anyhow::Context;
use bytes::Bytes;
use futures::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEFAULT_ITERATIONS: usize = 10_000;
const WARMUP: usize = 1_000;
/// Loop length of the CPU-bound function (about 0.2 s on this kind of machine).
const CPU_LOOP: u64 = 3_000_000;
/// Repetitions of the speedup measurement: the median and the best round are reported (the
/// machine is shared; the best round is the one least disturbed by other load).
const SPEEDUP_ROUNDS: usize = 5;
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A user library that refuses everything: the benchmarked functions never use it.
struct NoLibrary;

impl UserLibrary for NoLibrary {
    fn get(&self, _: Vec<Key>) -> BoxFuture<'static, Result<Vec<Option<PyValue>>, LibError>> {
        Box::pin(async { Err(no_library()) })
    }
    fn put(&self, _: Key, _: PyValue) -> BoxFuture<'static, Result<(), LibError>> {
        Box::pin(async { Err(no_library()) })
    }
    fn delete(&self, _: Key) -> BoxFuture<'static, Result<(), LibError>> {
        Box::pin(async { Err(no_library()) })
    }
    fn send(&self, _: String, _: Bytes) -> BoxFuture<'static, Result<(), LibError>> {
        Box::pin(async { Err(no_library()) })
    }
    fn recv(&self) -> Vec<(String, Bytes)> {
        Vec::new()
    }
    fn id(&self) -> String {
        "bench".into()
    }
}

fn no_library() -> LibError {
    LibError::new(ErrorCode::Unavailable, "no library in this benchmark")
}

/// Run the benchmark and print the figures (`--json`: last line one JSON object).
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let iterations = args.iterations.unwrap_or(DEFAULT_ITERATIONS).max(1);
    interp::initialize()?;
    let (noop, cpu, one) = Python::attach(pickles).context("pickling the benchmark functions")?;
    let noop = Arc::new(spec("noop", noop));
    let cpu = Arc::new(spec("cpu", cpu));
    let args_one = vec![Some(PyValue::Packed(Bytes::from(one)))];

    let in_process = in_process(&noop, &args_one, iterations)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (pooled, rounds) = rt.block_on(through_pool(&noop, &cpu, &args_one, iterations))?;
    let speedups = speedups(&rounds);
    let median = |pick: fn(&(Duration, Duration)) -> Duration| {
        let mut v: Vec<Duration> = rounds.iter().map(pick).collect();
        v.sort();
        v[v.len() / 2]
    };
    let (t_one, t_two) = (median(|r| r.0), median(|r| r.1));
    let (speedup, best) = (speedups[speedups.len() / 2], speedups[speedups.len() - 1]);

    println!("python no-op call, {iterations} sequential calls after {WARMUP} warm-up:");
    println!(
        "  in process (attach+decode+call+encode): median {:.2} us, p99 {:.2} us",
        in_process.median_us, in_process.p99_us
    );
    println!(
        "  through the worker pool (2 workers):      median {:.2} us, p99 {:.2} us",
        pooled.median_us, pooled.p99_us
    );
    println!(
        "cpu-bound function, {SPEEDUP_ROUNDS} rounds: median one call {:.1} ms, two in parallel {:.1} ms; \
         speedup median {speedup:.2}x, best {best:.2}x (ideal 2.0)",
        t_one.as_secs_f64() * 1e3,
        t_two.as_secs_f64() * 1e3
    );
    if let Some(load) = load_average() {
        println!(
            "1-minute load average at the end: {load:.2} on {} cores",
            num_cores()
        );
    }
    if args.json {
        let json = serde_json::json!({
            "workload": "python",
            "iterations": iterations,
            "noop_in_process": in_process,
            "noop_pool": pooled,
            "cpu_one_ms": t_one.as_secs_f64() * 1e3,
            "cpu_two_parallel_ms": t_two.as_secs_f64() * 1e3,
            "cpu_speedup": speedup,
            "cpu_speedup_best": best,
            "loadavg_1m": load_average(),
        });
        println!("{json}");
    }
    Ok(())
}

/// The 1-minute load average (Linux), recorded because the speedup depends on free cores.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Per-round speedups `2 × one / two`, sorted ascending.
fn speedups(rounds: &[(Duration, Duration)]) -> Vec<f64> {
    let mut s: Vec<f64> = rounds
        .iter()
        .map(|(one, two)| 2.0 * one.as_secs_f64() / two.as_secs_f64())
        .collect();
    s.sort_by(f64::total_cmp);
    s
}

fn spec(name: &str, body: Vec<u8>) -> FunctionSpec {
    FunctionSpec {
        name: name.into(),
        hash: 1,
        body: Bytes::from(body),
        kind: FunctionKind::Plain,
    }
}

/// cloudpickle of the no-op and CPU-bound functions, and the argument `1` as clients send it
/// (MessagePack).
fn pickles(py: Python<'_>) -> PyResult<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let g = PyDict::new(py);
    g.set_item("__name__", "__main__")?;
    py.run(
        c"import cloudpickle, msgpack
noop = cloudpickle.dumps(lambda cb, x: x)
cpu = cloudpickle.dumps(lambda cb, n: sum(i * i for i in range(n)))
one = msgpack.packb(1)",
        Some(&g),
        None,
    )?;
    let get = |k: &str| -> PyResult<Vec<u8>> {
        g.get_item(k)?
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(k.to_string()))?
            .extract()
    };
    Ok((get("noop")?, get("cpu")?, get("one")?))
}

fn in_process(f: &FunctionSpec, args: &[Option<PyValue>], n: usize) -> anyhow::Result<Summary> {
    let glue = Python::attach(Glue::load)?;
    let call = CallRef {
        name: &f.name,
        hash: f.hash,
        kind: f.kind,
        body: Some(&f.body),
        args,
        upstream: 0,
        call: 0,
        attempt: 0,
        warm: false,
    };
    let mut samples = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        let start = Instant::now();
        let out = Python::attach(|py| glue.run(py, call, py.None().bind(py)));
        if i >= WARMUP {
            samples.push(start.elapsed());
        }
        out.outcome.context("in-process no-op call failed")?;
    }
    Summary::of(&samples).context("no samples")
}

async fn through_pool(
    noop: &Arc<FunctionSpec>,
    cpu: &Arc<FunctionSpec>,
    args: &[Option<PyValue>],
    n: usize,
) -> anyhow::Result<(Summary, Vec<(Duration, Duration)>)> {
    let exe = std::env::current_exe()?;
    let pool = PythonPool::start(PoolConfig::new(2, exe)).await?;
    let lib: Arc<dyn UserLibrary> = Arc::new(NoLibrary);
    let call = |f: &Arc<FunctionSpec>, args: Vec<Option<PyValue>>| {
        PyCall::new(f.clone(), args, CALL_TIMEOUT)
    };
    let mut samples = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        let start = Instant::now();
        pool.call(call(noop, args.to_vec()), lib.clone()).await?;
        if i >= WARMUP {
            samples.push(start.elapsed());
        }
    }
    let loop_arg = rmp_serde::to_vec(&CPU_LOOP)?;
    let cpu_args = vec![Some(PyValue::Packed(Bytes::from(loop_arg)))];
    // Warm both workers up with the function (its body is sent once per worker).
    let warm = (call(cpu, cpu_args.clone()), call(cpu, cpu_args.clone()));
    let (a, b) = tokio::join!(
        pool.call(warm.0, lib.clone()),
        pool.call(warm.1, lib.clone())
    );
    a?;
    b?;
    let mut rounds = Vec::new();
    for _ in 0..SPEEDUP_ROUNDS {
        let start = Instant::now();
        pool.call(call(cpu, cpu_args.clone()), lib.clone()).await?;
        let one = start.elapsed();
        let start = Instant::now();
        let (a, b) = tokio::join!(
            pool.call(call(cpu, cpu_args.clone()), lib.clone()),
            pool.call(call(cpu, cpu_args.clone()), lib.clone())
        );
        rounds.push((one, start.elapsed()));
        a?;
        b?;
    }
    pool.shutdown().await;
    let summary = Summary::of(&samples).context("no samples")?;
    Ok((summary, rounds))
}
