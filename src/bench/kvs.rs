//! `cloudburst bench kvs`: KVS latency and throughput against a real KVS node over loopback.
//!
//! The server is a child `cloudburst node --roles kvs` process (replication 1, the
//! default shard count); the client is the benchmark process (an in-process transport and [`KvsClient`]
//! routing by the node's membership view). Workloads: sequential 8-byte put then get
//! (`iterations`, default 10k, after 1k warm-up), sequential 1 MiB put then get (200 after
//! 20 warm-up), and `IN_FLIGHT` concurrent clients doing 8-byte gets and puts (half each)
//! for `PIPELINE_DURATION`.

use crate::actors::kvs::{KvsClient, Routing, RoutingTable};
use crate::bench::child::{random_secret, spawn_node};
use crate::bench::stats::Summary;
use crate::cli::BenchArgs;
use crate::config::{Config, Durability, Role};
use crate::ids::{Key, NodeId, WriterId};
use crate::lattice::{LatticeValue, Lww, Timestamp};
use crate::net::membership::GetView;
use crate::net::{ActorRef, ServiceId, Transport};
use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

pub const DEFAULT_ITERATIONS: usize = 10_000;
pub const WARMUP: usize = 1_000;
pub const LARGE_ITERATIONS: usize = 200;
pub const LARGE_WARMUP: usize = 20;
pub const LARGE_BYTES: usize = 1 << 20;
pub const SMALL_BYTES: usize = 8;
pub const IN_FLIGHT: usize = 64;
pub const PIPELINE_DURATION: Duration = Duration::from_millis(3_000);
/// Distinct keys the small workloads cycle through.
const SMALL_KEYS: u64 = 1_000;

#[derive(Debug, serde::Serialize)]
struct Results {
    workload: &'static str,
    server: &'static str,
    iterations: usize,
    get_8b_median_us: f64,
    get_8b_p99_us: f64,
    put_8b_median_us: f64,
    put_8b_p99_us: f64,
    get_1mb_median_ms: f64,
    get_1mb_p99_ms: f64,
    put_1mb_median_ms: f64,
    put_1mb_p99_ms: f64,
    in_flight: usize,
    pipelined_ops_per_s: f64,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(modes) = &args.durability {
        if modes.len() > 1 {
            return super::durability::run(modes, args.json);
        }
    }
    let mode = args
        .durability
        .as_ref()
        .and_then(|m| m.first().copied())
        .unwrap_or(Durability::None);
    let secret = random_secret();
    let tmp = tempfile::tempdir().context("a temporary data directory")?;
    let dir = tmp.path().to_string_lossy().into_owned();
    let mut node_args = vec!["--roles", "kvs", "--replication", "1"];
    node_args.extend(["--durability", mode.as_str()]);
    if mode != Durability::None {
        node_args.extend(["--data-dir", dir.as_str()]);
    }
    let server = spawn_node(&node_args, &secret)?;
    let iterations = args.iterations.unwrap_or(DEFAULT_ITERATIONS).max(1);
    let (node, addr) = (server.node.clone(), server.addr);
    let results = actix::System::new().block_on(measure(secret, node, addr, iterations))?;
    drop(server);
    print_table(&results);
    if args.json {
        println!("{}", serde_json::to_string(&results)?);
    }
    Ok(())
}

pub(crate) async fn connect(
    secret: String,
    server: crate::ids::NodeRef,
    addr: SocketAddr,
) -> anyhow::Result<(Transport, KvsClient)> {
    let mut cfg = Config::default();
    cfg.node.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.node.cluster_secret = secret;
    cfg.node.roles = [Role::Gateway].into_iter().collect();
    let t = Transport::start(&cfg, Some(NodeId::new("bench-client"))).await?;
    t.connect_hint(&server.id, addr);
    let view = t
        .handle::<GetView>(ActorRef::new(server, ServiceId::Membership, 0))
        .send(GetView)
        .await
        .context("asking the KVS node for its view")?;
    let routing = Routing::from_view(&view, cfg.kvs.virtual_nodes, 1);
    if routing.is_empty() {
        return Err(anyhow!("the server node reports no KVS shards"));
    }
    let client = KvsClient::new(t.clone(), RoutingTable::new(routing));
    Ok((t, client))
}

pub(crate) fn value(n: u64, size: usize) -> LatticeValue {
    LatticeValue::Lww(Lww::new(
        Timestamp::new(n, WriterId(1)),
        Bytes::from(vec![(n % 251) as u8; size]),
    ))
}

pub(crate) fn small_key(i: u64) -> Key {
    Key::new(format!("bench-small-{}", i % SMALL_KEYS))
}

/// `count` sequential puts then gets of `size`-byte values after `warmup` of each.
async fn sequential(
    kvs: &KvsClient,
    size: usize,
    warmup: usize,
    count: usize,
    key: impl Fn(u64) -> Key,
) -> anyhow::Result<(Summary, Summary)> {
    let mut puts = timed_puts(kvs, 0..(warmup + count) as u64, size, &key).await?;
    puts.drain(..warmup.min(puts.len()));
    let mut gets = Vec::with_capacity(count);
    for i in 0..(warmup + count) as u64 {
        let start = Instant::now();
        let got = kvs.get(&key(i)).await?;
        if i as usize >= warmup {
            gets.push(start.elapsed());
        }
        if got.is_none() {
            return Err(anyhow!("key {} vanished", key(i)));
        }
    }
    let s = |v: &[Duration]| Summary::of(v).ok_or_else(|| anyhow!("no samples"));
    Ok((s(&puts)?, s(&gets)?))
}

/// The time of each sequential put of a `size`-byte value, for `i` in `range`: the value
/// `value(i + 1, size)` under `key(i)`.
pub(crate) async fn timed_puts(
    kvs: &KvsClient,
    range: Range<u64>,
    size: usize,
    key: impl Fn(u64) -> Key,
) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(range.end.saturating_sub(range.start) as usize);
    for i in range {
        let v = value(i + 1, size);
        let start = Instant::now();
        kvs.put(key(i), v).await?;
        out.push(start.elapsed());
    }
    Ok(out)
}

/// One operation of a concurrent workload.
pub(crate) enum Op {
    Put(Key, LatticeValue),
    Get(Key),
}

/// `in_flight` workers, each doing `op(i, n)` in turn until `duration` has passed (`n`: the
/// worker's operations so far; `i`: `n` in a range of the worker's own): (operations, time).
pub(crate) async fn concurrent(
    kvs: &KvsClient,
    in_flight: usize,
    duration: Duration,
    op: impl Fn(u64, u64) -> Op + Clone + 'static,
) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let deadline = start + duration;
    let workers = (0..in_flight as u64).map(|w| {
        let (kvs, op) = (kvs.clone(), op.clone());
        actix::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                match op(w * 1_000_003 + done, done) {
                    Op::Put(key, value) => kvs.put(key, value).await?,
                    Op::Get(key) => drop(kvs.get(&key).await?),
                }
                done += 1;
            }
            Ok::<u64, crate::actors::kvs::KvsError>(done)
        })
    });
    let mut total = 0;
    for w in futures::future::join_all(workers).await {
        total += w.context("concurrent worker")??;
    }
    Ok((total, start.elapsed()))
}

async fn pipelined(kvs: &KvsClient) -> anyhow::Result<f64> {
    let (ops, took) = concurrent(kvs, IN_FLIGHT, PIPELINE_DURATION, |i, done| {
        if done % 2 == 0 {
            Op::Put(small_key(i), value(i + 1, SMALL_BYTES))
        } else {
            Op::Get(small_key(i))
        }
    })
    .await?;
    Ok(ops as f64 / took.as_secs_f64())
}

async fn measure(
    secret: String,
    server: crate::ids::NodeRef,
    addr: SocketAddr,
    iterations: usize,
) -> anyhow::Result<Results> {
    let (t, kvs) = connect(secret, server, addr).await?;
    let (put_s, get_s) = sequential(&kvs, SMALL_BYTES, WARMUP, iterations, small_key).await?;
    let large_key = |i: u64| Key::new(format!("bench-large-{}", i % 16));
    let (put_l, get_l) =
        sequential(&kvs, LARGE_BYTES, LARGE_WARMUP, LARGE_ITERATIONS, large_key).await?;
    let ops = pipelined(&kvs).await?;
    t.shutdown().await;
    Ok(Results {
        workload: "kvs",
        server:
            "a child `cloudburst node --roles kvs` (replication 1); client in the benchmark process",
        iterations,
        get_8b_median_us: get_s.median_us,
        get_8b_p99_us: get_s.p99_us,
        put_8b_median_us: put_s.median_us,
        put_8b_p99_us: put_s.p99_us,
        get_1mb_median_ms: get_l.median_us / 1e3,
        get_1mb_p99_ms: get_l.p99_us / 1e3,
        put_1mb_median_ms: put_l.median_us / 1e3,
        put_1mb_p99_ms: put_l.p99_us / 1e3,
        in_flight: IN_FLIGHT,
        pipelined_ops_per_s: ops,
    })
}

fn print_table(r: &Results) {
    println!("kvs benchmark (server: {})", r.server);
    println!("{:<28} {:>12} {:>12}", "operation", "median", "p99");
    println!(
        "{:<28} {:>9.1} µs {:>9.1} µs",
        "get 8 B (sequential)", r.get_8b_median_us, r.get_8b_p99_us
    );
    println!(
        "{:<28} {:>9.1} µs {:>9.1} µs",
        "put 8 B (sequential)", r.put_8b_median_us, r.put_8b_p99_us
    );
    println!(
        "{:<28} {:>9.2} ms {:>9.2} ms",
        "get 1 MiB (sequential)", r.get_1mb_median_ms, r.get_1mb_p99_ms
    );
    println!(
        "{:<28} {:>9.2} ms {:>9.2} ms",
        "put 1 MiB (sequential)", r.put_1mb_median_ms, r.put_1mb_p99_ms
    );
    println!(
        "{:<28} {:>12.0} ops/s ({} in flight, 8 B, half gets half puts)",
        "pipelined", r.pipelined_ops_per_s, r.in_flight
    );
}
