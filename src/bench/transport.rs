//! `cloudburst bench transport`: peer transport round trip and pipelined throughput between
//! two processes on 127.0.0.1.
//!
//! The benchmark process is itself one node (the client: an in-process `Transport` on a
//! single-threaded actix System); the other is a child `cloudburst node` process running the
//! Echo service. (a) sequential request/response of a small `Echo`: median and p99;
//! (b) `IN_FLIGHT` requests kept in flight for `PIPELINE_DURATION`: requests per second.
//! The child is killed on exit, error included (a drop guard).

use crate::bench::child::{random_secret, spawn_node};
use crate::bench::stats::Summary;
use crate::cli::BenchArgs;
use crate::config::Config;
use crate::ids::{NodeId, NodeRef};
use crate::net::echo::Echo;
use crate::net::{ActorRef, Handle, ServiceId, Transport};
use anyhow::{anyhow, Context as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Round trips measured by default (after the warm-up).
pub const DEFAULT_ITERATIONS: usize = 10_000;
/// Round trips before measuring (connection set-up, allocator and cache warm-up).
pub const WARMUP: usize = 1_000;
/// Requests kept in flight in the pipelined phase.
pub const IN_FLIGHT: usize = 32;
/// Length of the pipelined phase.
pub const PIPELINE_DURATION: Duration = Duration::from_millis(2_500);
/// Payload of the small message.
pub const PAYLOAD_BYTES: usize = 16;
/// What the benchmark measured.
#[derive(Debug, Clone, serde::Serialize)]
struct Results {
    workload: &'static str,
    client: &'static str,
    payload_bytes: usize,
    iterations: usize,
    rtt_median_us: f64,
    rtt_p99_us: f64,
    rtt_mean_us: f64,
    in_flight: usize,
    pipelined_requests: u64,
    pipelined_seconds: f64,
    pipelined_req_per_s: f64,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let secret = random_secret();
    let guard = spawn_node(&["--roles", "kvs"], &secret)?;
    let (server, addr) = (guard.node.clone(), guard.addr);
    let iterations = args.iterations.unwrap_or(DEFAULT_ITERATIONS).max(1);
    // Measured from an actix task, where actor code sends from (the future given to
    // `block_on` itself sits outside the arbiter's `LocalSet`, and every wake-up of it from
    // a `LocalSet` task costs tokio an extra non-blocking poll of the I/O driver).
    let results = actix::System::new().block_on(async move {
        actix::spawn(measure(secret, server, addr, iterations))
            .await
            .context("measuring task")?
    })?;
    drop(guard);
    print_table(&results);
    if args.json {
        println!("{}", serde_json::to_string(&results)?);
    }
    Ok(())
}

async fn measure(
    secret: String,
    server: NodeRef,
    addr: SocketAddr,
    iterations: usize,
) -> anyhow::Result<Results> {
    let mut cfg = Config::default();
    cfg.node.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.node.cluster_secret = secret;
    let t = Transport::start(&cfg, Some(NodeId::new("bench-client"))).await?;
    t.connect_hint(&server.id, addr);
    let h: Handle<Echo> = t.handle(ActorRef::new(server, ServiceId::Echo, 0));
    let payload = vec![7u8; PAYLOAD_BYTES];
    for _ in 0..WARMUP {
        h.send(Echo {
            payload: payload.clone(),
        })
        .await?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let msg = Echo {
            payload: payload.clone(),
        };
        let start = Instant::now();
        h.send(msg).await?;
        samples.push(start.elapsed());
    }
    let rtt = Summary::of(&samples).ok_or_else(|| anyhow!("no samples"))?;
    let (requests, seconds) = pipelined(&h, &payload).await?;
    t.shutdown().await;
    Ok(Results {
        workload: "transport",
        client: "in the benchmark process; server: a child `cloudburst node`",
        payload_bytes: PAYLOAD_BYTES,
        iterations,
        rtt_median_us: rtt.median_us,
        rtt_p99_us: rtt.p99_us,
        rtt_mean_us: rtt.mean_us,
        in_flight: IN_FLIGHT,
        pipelined_requests: requests,
        pipelined_seconds: seconds,
        pipelined_req_per_s: requests as f64 / seconds,
    })
}

/// Keep `IN_FLIGHT` requests outstanding for `PIPELINE_DURATION`; (requests, seconds).
async fn pipelined(h: &Handle<Echo>, payload: &[u8]) -> anyhow::Result<(u64, f64)> {
    let start = Instant::now();
    let deadline = start + PIPELINE_DURATION;
    let workers = (0..IN_FLIGHT).map(|_| {
        let h = h.clone();
        let payload = payload.to_vec();
        actix::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                h.send(Echo {
                    payload: payload.clone(),
                })
                .await?;
                done += 1;
            }
            Ok::<u64, crate::net::NetError>(done)
        })
    });
    let mut total = 0;
    for w in futures::future::join_all(workers).await {
        total += w.context("pipelined worker")??;
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

fn print_table(r: &Results) {
    println!(
        "transport benchmark ({}-byte Echo over 127.0.0.1)",
        r.payload_bytes
    );
    println!("  client: this process; server: a child `cloudburst node` process");
    println!("  {:<44} {:>12}", "measure", "value");
    println!(
        "  {:<44} {:>9.1} us",
        format!("round trip median ({} sequential)", r.iterations),
        r.rtt_median_us
    );
    println!("  {:<44} {:>9.1} us", "round trip p99", r.rtt_p99_us);
    println!(
        "  {:<44} {:>9.0} /s",
        format!(
            "pipelined, {} in flight, {:.1} s",
            r.in_flight, r.pipelined_seconds
        ),
        r.pipelined_req_per_s
    );
}
