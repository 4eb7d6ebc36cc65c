//! `cloudburst bench consistency`: the same DAG workload under each consistency mode.
//!
//! Two in-process nodes on real loopback sockets, each an executor with its own cache and
//! Python workers (node A also runs the KVS shard and the scheduler), so functions of one
//! call run on either node and repeatable read fetches pins across nodes. The DAG
//! `read1 -> read2 -> write` (every function reads two of 8 keys; the sink reads one and
//! writes it), called sequentially through the in-process API; the modes take turns in
//! rounds of 50 calls so that machine noise hits them alike. Reported per mode: median,
//! p99 and mean latency, and the consistency metadata per call (session metadata sent in
//! triggers plus what stored values carry beyond the encoded value) and repeatable-read
//! keys fetched from the other node's cache per call, and causal re-reads from the KVS per
//! call.

use super::compose::{get, pickle_with_executor_python, WARMUP};
use super::stats::Summary;
use crate::actors::executor::session::overhead_counters;
use crate::cli::BenchArgs;
use crate::config::{parse_roles, Config};
use crate::local::LocalCluster;
use crate::node::NodeRoles;
use crate::protocol::{Arg, Consistency};
use crate::pyrt::{FunctionKind, PyValue};
use anyhow::anyhow;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub const DEFAULT_ITERATIONS: usize = 1_000;
const ROUND: usize = 50;
const READY: Duration = Duration::from_secs(30);
const MODES: [Consistency; 3] = [
    Consistency::Lww,
    Consistency::RepeatableRead,
    Consistency::Causal,
];

const SCRIPT: &str = r#"
import cloudpickle, msgpack
def read(cb, prefix, i, *upstream):
    cb.get(prefix + "k%d" % (i % 8))
    cb.get(prefix + "k%d" % ((i + 3) % 8))
    return i
def write(cb, prefix, i, *upstream):
    k = prefix + "k%d" % ((i + 5) % 8)
    cb.get(k)
    cb.put(k, i)
    return i
print("read", cloudpickle.dumps(read).hex())
print("write", cloudpickle.dumps(write).hex())
for m in ("lww", "repeatable_read", "causal"):
    print(m, msgpack.packb(m + "/").hex())
for i in range(8):
    print("i%d" % i, msgpack.packb(i).hex())
"#;

#[derive(Debug, serde::Serialize)]
struct ModeResult {
    mode: String,
    median_us: f64,
    p99_us: f64,
    mean_us: f64,
    metadata_bytes_per_call: f64,
    remote_pinned_reads_per_call: f64,
    causal_rereads_per_call: f64,
}

#[derive(Debug, serde::Serialize)]
struct Results {
    workload: &'static str,
    iterations: usize,
    modes: Vec<ModeResult>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let iterations = args.iterations.unwrap_or(DEFAULT_ITERATIONS).max(ROUND);
    let pickles = pickle_with_executor_python(SCRIPT)?;
    let results = actix::System::new().block_on(measure(iterations, pickles))?;
    println!(
        "consistency: DAG read -> read -> write over 8 keys, two executor nodes, {} sequential calls per mode in rounds of {ROUND}",
        results.iterations
    );
    for m in &results.modes {
        println!(
            "  {:<16} median {:>8.1} µs   p99 {:>8.1} µs   mean {:>8.1} µs   metadata {:>7.1} B/call   remote pinned reads {:.2}/call   causal re-reads {:.2}/call",
            m.mode, m.median_us, m.p99_us, m.mean_us, m.metadata_bytes_per_call, m.remote_pinned_reads_per_call, m.causal_rereads_per_call
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&results)?);
    }
    Ok(())
}

fn node_config(roles: &str, secret: &str) -> anyhow::Result<Config> {
    let mut cfg = Config::default();
    cfg.node.roles = parse_roles(roles).map_err(|e| anyhow!(e))?;
    cfg.node.listen = ([127, 0, 0, 1], 0).into();
    cfg.node.cluster_secret = secret.to_string();
    cfg.kvs.shards_per_node = 1;
    cfg.executor.workers = 1;
    Ok(cfg)
}

const FUNCTIONS: [&str; 3] = ["read1", "read2", "write"];

async fn measure(iterations: usize, p: HashMap<String, Bytes>) -> anyhow::Result<Results> {
    let secret = format!("bench-{:x}", rand::random::<u64>());
    let a = LocalCluster::start(node_config("kvs,scheduler,executor", &secret)?).await?;
    let b = NodeRoles::start(&a.join_config(&node_config("executor", &secret)?)).await?;
    a.wait_ready(2, READY).await?;
    let client = a.client().await?;
    for (name, body) in [("read1", "read"), ("read2", "read"), ("write", "write")] {
        let record = client.record(name, FunctionKind::Plain, get(&p, body)?);
        client.register_function(record).await?;
    }
    client
        .register_dag(
            "consistency",
            &FUNCTIONS,
            &[("read1", "read2"), ("read2", "write")],
        )
        .await?;
    let value = |name: &str| get(&p, name).map(|b| Arg::Value(PyValue::Packed(b)));
    let one_call = |mode: Consistency, n: usize| {
        let args = value(&mode.to_string()).and_then(|prefix| {
            let i = value(&format!("i{}", n % 8))?;
            Ok(FUNCTIONS
                .iter()
                .map(|f| (f.to_string(), vec![prefix.clone(), i.clone()]))
                .collect::<BTreeMap<String, Vec<Arg>>>())
        });
        let client = &client;
        async move {
            client.call_dag_in("consistency", args?, mode).await?;
            anyhow::Ok(())
        }
    };
    for mode in MODES {
        for n in 0..WARMUP {
            one_call(mode, n).await?;
        }
    }
    let mut samples: HashMap<Consistency, Vec<Duration>> = HashMap::new();
    let mut overhead: HashMap<Consistency, (u64, u64, u64)> = HashMap::new();
    let mut n = 0;
    for _ in 0..iterations.div_ceil(ROUND) {
        for mode in MODES {
            let (bytes0, remote0, reread0) = overhead_counters();
            for _ in 0..ROUND {
                n += 1;
                let t = Instant::now();
                one_call(mode, n).await?;
                samples.entry(mode).or_default().push(t.elapsed());
            }
            let (bytes1, remote1, reread1) = overhead_counters();
            let o = overhead.entry(mode).or_default();
            o.0 += bytes1.saturating_sub(bytes0);
            o.1 += remote1.saturating_sub(remote0);
            o.2 += reread1.saturating_sub(reread0);
        }
    }
    b.stop().await;
    a.stop().await;
    let mut modes = Vec::new();
    for mode in MODES {
        let s = samples.get(&mode).map(Vec::as_slice).unwrap_or_default();
        let summary = Summary::of(s).ok_or_else(|| anyhow!("no samples"))?;
        let (bytes, remote, rereads) = overhead.get(&mode).copied().unwrap_or_default();
        let calls = s.len().max(1) as f64;
        modes.push(ModeResult {
            mode: mode.to_string(),
            median_us: summary.median_us,
            p99_us: summary.p99_us,
            mean_us: summary.mean_us,
            metadata_bytes_per_call: bytes as f64 / calls,
            remote_pinned_reads_per_call: remote as f64 / calls,
            causal_rereads_per_call: rereads as f64 / calls,
        });
    }
    Ok(Results {
        workload: "consistency",
        iterations: n / MODES.len(),
        modes,
    })
}
