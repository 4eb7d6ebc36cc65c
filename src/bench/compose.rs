//! `cloudburst bench compose`: the DAG `incr -> square` through the in-process API.
//!
//! One in-process node ([`LocalCluster`]: KVS shard, scheduler, executor with its Python
//! worker pool of one worker per core) and the Rust client of [`crate::local`]. The
//! functions are pickled by the executors' Python with cloudpickle, as the client would.
//! Measured: `iterations` (default 1000) sequential DAG calls after [`WARMUP`], each from
//! the client's `CallDag` to the pushed `CallFinished`; then the same for a one-function
//! call of `square`. Median and p99 in µs.

use crate::bench::stats::Summary;
use crate::cli::BenchArgs;
use crate::config::{parse_roles, Config};
use crate::local::{LocalClient, LocalCluster};
use crate::protocol::Arg;
use crate::pyrt::{interp, FunctionKind, PyValue};
use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub const DEFAULT_ITERATIONS: usize = 1_000;
pub const WARMUP: usize = 50;
/// How long the node may take to start its workers and see its own KVS shard.
const READY: Duration = Duration::from_secs(30);

/// Pickles the benchmark's functions and encodes its values as clients do (hex, one per
/// line).
const SCRIPT: &str = r#"
import cloudpickle, msgpack
def incr(cb, x):
    return x + 1
def square(cb, x):
    return x * x
for name, obj in [("incr", cloudpickle.dumps(incr)), ("square", cloudpickle.dumps(square)),
                  ("one", msgpack.packb(1)), ("four", msgpack.packb(4))]:
    print(name, obj.hex())
"#;

#[derive(Debug, serde::Serialize)]
struct Results {
    workload: &'static str,
    iterations: usize,
    workers: usize,
    dag_median_us: f64,
    dag_p99_us: f64,
    function_median_us: f64,
    function_p99_us: f64,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let iterations = args.iterations.unwrap_or(DEFAULT_ITERATIONS).max(1);
    let pickles = pickle_with_executor_python(SCRIPT)?;
    let results = actix::System::new().block_on(measure(iterations, pickles))?;
    println!(
        "compose: incr -> square, {} sequential calls after {WARMUP} warm-up, in-process API, {} workers",
        results.iterations, results.workers
    );
    println!(
        "  dag call        median {:>8.1} µs   p99 {:>8.1} µs",
        results.dag_median_us, results.dag_p99_us
    );
    println!(
        "  function call   median {:>8.1} µs   p99 {:>8.1} µs",
        results.function_median_us, results.function_p99_us
    );
    if args.json {
        println!("{}", serde_json::to_string(&results)?);
    }
    Ok(())
}

/// Run `script` with the executors' Python; it prints `name hex` lines (pickles).
pub(crate) fn pickle_with_executor_python(script: &str) -> anyhow::Result<HashMap<String, Bytes>> {
    let python = interp::python_program();
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        return Err(anyhow!(
            "pickling the functions failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, hex)| Ok((n.to_string(), Bytes::from(decode_hex(hex)?))))
        .collect()
}

fn decode_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("bad hex from python"))
        })
        .collect()
}

pub(crate) fn get(p: &HashMap<String, Bytes>, name: &str) -> anyhow::Result<Bytes> {
    p.get(name)
        .cloned()
        .ok_or_else(|| anyhow!("python did not pickle `{name}`"))
}

async fn measure(iterations: usize, p: HashMap<String, Bytes>) -> anyhow::Result<Results> {
    let mut cfg = Config::default();
    cfg.node.roles = parse_roles("kvs,scheduler,executor").map_err(|e| anyhow!(e))?;
    cfg.node.listen = ([127, 0, 0, 1], 0).into();
    cfg.kvs.shards_per_node = 1;
    let workers = cfg.executor_workers();
    let cluster = LocalCluster::start(cfg).await?;
    cluster.wait_ready(1, READY).await?;
    let client = cluster.client().await?;
    for name in ["incr", "square"] {
        let record = client.record(name, FunctionKind::Plain, get(&p, name)?);
        client.register_function(record).await?;
    }
    client
        .register_dag("compose", &["incr", "square"], &[("incr", "square")])
        .await?;
    let one = Arg::Value(PyValue::Packed(get(&p, "one")?));
    let four = PyValue::Packed(get(&p, "four")?);
    let dag = time_calls(iterations, || dag_call(&client, one.clone(), &four)).await?;
    let function = time_calls(iterations, || async {
        let out = client.call_function("square", vec![one.clone()]).await?;
        (out == PyValue::Packed(get(&p, "one")?))
            .then_some(())
            .ok_or_else(|| anyhow!("square(1) returned {out:?}"))
    })
    .await?;
    cluster.stop().await;
    Ok(Results {
        workload: "compose",
        iterations,
        workers,
        dag_median_us: dag.median_us,
        dag_p99_us: dag.p99_us,
        function_median_us: function.median_us,
        function_p99_us: function.p99_us,
    })
}

async fn dag_call(client: &LocalClient, one: Arg, four: &PyValue) -> anyhow::Result<()> {
    let args: BTreeMap<String, Vec<Arg>> = [("incr".to_string(), vec![one])].into();
    let out = client.call_dag("compose", args).await?;
    (out == *four)
        .then_some(())
        .ok_or_else(|| anyhow!("compose(1) returned {out:?}, not 4"))
}

async fn time_calls<F, Fut>(iterations: usize, mut call: F) -> anyhow::Result<Summary>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..WARMUP + iterations {
        let t = Instant::now();
        call().await?;
        if i >= WARMUP {
            samples.push(t.elapsed());
        }
    }
    Summary::of(&samples).ok_or_else(|| anyhow!("no samples"))
}
