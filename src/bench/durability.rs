//! `cloudburst bench kvs --durability none,interval,always`: what each durability mode costs
//! a KVS put, measured alternately in one run, and what recovery costs.
//!
//! One child `cloudburst node --roles kvs` per mode (its own temporary data directory);
//! [`ROUNDS`] rounds, each measuring every mode in turn: sequential 8-byte puts (median,
//! p99) and [`IN_FLIGHT`] concurrent 8-byte puts for [`PIPELINE_ROUND`]. Ratios are against
//! `none` from the same run. After each mode's sequential puts, the disk's own `fdatasync`
//! of a small append to an open file (what the log's syncs do). Then recovery, in this process: a shard
//! directory of [`RECOVERY_RECORDS`] small records and one of [`RECOVERY_BYTES`] in
//! [`RECOVERY_VALUE_BYTES`]-byte values is written, dropped from the page cache, and read
//! back into a shard store: seconds per million records and per GiB.

use super::child::{random_secret, spawn_node, ChildNode};
use super::kvs::{concurrent, connect, small_key, timed_puts, value, Op, SMALL_BYTES};
use super::stats::Summary;
use crate::actors::kvs::durable::{replay, Core};
use crate::actors::kvs::KvsClient;
use crate::ids::Key;
use crate::storage::fs::{DiskFs, Fs};
use crate::storage::log::FatalHook;
use crate::storage::{Durability, LogOptions, ShardLog};
use anyhow::{anyhow, Context as _};
use serde::Serialize;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rounds over the modes (alternation spreads the machine's drift over every mode).
pub const ROUNDS: usize = 3;
/// Sequential puts per mode per round.
pub const SEQUENTIAL_PER_ROUND: usize = 400;
/// Concurrent writers of the pipelined phase. Group commit shares one sync among the writes
/// queued while the last one ran, so `always` can reach at most `IN_FLIGHT / fsync time`:
/// with 64 writers and a 2 ms sync that is 32k puts/s, below what `none` serves; 256 fill
/// a sync as a loaded shard's clients would.
pub const IN_FLIGHT: usize = 256;
pub const PIPELINE_ROUND: Duration = Duration::from_millis(1_500);
/// Distinct keys of the sequential puts.
const SEQUENTIAL_KEYS: u64 = 1_000;
/// Timestamps of one round's pipelined puts start this far above the last round's.
const PIPELINE_ROUND_STRIDE: u64 = 1 << 40;
/// fdatasync samples after each mode's sequential puts.
pub const FSYNC_PER_ROUND: usize = 100;
pub const RECOVERY_RECORDS: u64 = 1_000_000;
pub const RECOVERY_BYTES: u64 = 256 << 20;
pub const RECOVERY_VALUE_BYTES: usize = 4096;

#[derive(Debug, Serialize)]
pub struct ModeResult {
    pub durability: Durability,
    pub put_8b_median_us: f64,
    pub put_8b_p99_us: f64,
    pub pipelined_put_ops_per_s: f64,
    pub put_median_vs_none: f64,
    pub pipelined_vs_none: f64,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub workload: &'static str,
    pub server: &'static str,
    pub rounds: usize,
    pub in_flight: usize,
    pub modes: Vec<ModeResult>,
    pub fdatasync_median_ms: f64,
    pub fdatasync_p99_ms: f64,
    pub recovery_records: u64,
    pub recovery_s_per_million_records: f64,
    pub recovery_bytes: u64,
    pub recovery_s_per_gib: f64,
    /// How much the process's resident memory peaked above its level before recovering
    /// the large directory (`VmHWM` after resetting it, minus `VmRSS` before), and that
    /// over the directory's bytes: recovery holds the data plus one record, so this stays
    /// near the in-memory size of the data and never grows with the log's length alone.
    pub recovery_peak_rss_bytes: Option<u64>,
    pub recovery_peak_rss_over_bytes: Option<f64>,
}

pub fn run(modes: &[Durability], json: bool) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("a temporary directory")?;
    let secret = random_secret();
    let mut nodes: Vec<(Durability, ChildNode)> = Vec::new();
    for &mode in modes {
        let dir = tmp.path().join(mode.as_str());
        let dir = dir.to_string_lossy().into_owned();
        let mut args = vec!["--roles", "kvs", "--replication", "1"];
        args.extend(["--durability", mode.as_str()]);
        if mode != Durability::None {
            args.extend(["--data-dir", dir.as_str()]);
        }
        nodes.push((mode, spawn_node(&args, &secret)?));
    }
    let results = actix::System::new().block_on(measure(&secret, &nodes, tmp.path()))?;
    drop(nodes);
    print_table(&results);
    if json {
        println!("{}", serde_json::to_string(&results)?);
    }
    Ok(())
}

async fn measure(
    secret: &str,
    nodes: &[(Durability, ChildNode)],
    tmp: &Path,
) -> anyhow::Result<Results> {
    let mut clients = Vec::new();
    for (mode, node) in nodes {
        let (t, kvs) = connect(secret.to_string(), node.node.clone(), node.addr).await?;
        clients.push((*mode, t, kvs));
    }
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); nodes.len()];
    let mut pipelined: Vec<(u64, Duration)> = vec![(0, Duration::ZERO); nodes.len()];
    let mut fsyncs = Vec::new();
    let mut probe = FsyncProbe::create(tmp)?;
    for round in 0..ROUNDS {
        for (i, (_, _, kvs)) in clients.iter().enumerate() {
            let base = (round * SEQUENTIAL_PER_ROUND) as u64;
            latencies[i].extend(sequential_puts(kvs, base).await?);
            fsyncs.extend(probe.samples()?);
            let (ops, took) = pipelined_puts(kvs, round as u64).await?;
            pipelined[i].0 += ops;
            pipelined[i].1 += took;
        }
    }
    for (_, t, _) in &clients {
        t.shutdown().await;
    }
    let summaries = latencies
        .iter()
        .map(|l| Summary::of(l).ok_or_else(|| anyhow!("no samples")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rates: Vec<f64> = pipelined
        .iter()
        .map(|(ops, took)| *ops as f64 / took.as_secs_f64())
        .collect();
    let none = nodes.iter().position(|(m, _)| *m == Durability::None);
    let modes = nodes
        .iter()
        .enumerate()
        .map(|(i, (mode, _))| ModeResult {
            durability: *mode,
            put_8b_median_us: summaries[i].median_us,
            put_8b_p99_us: summaries[i].p99_us,
            pipelined_put_ops_per_s: rates[i],
            put_median_vs_none: none.map_or(f64::NAN, |n| {
                summaries[i].median_us / summaries[n].median_us
            }),
            pipelined_vs_none: none.map_or(f64::NAN, |n| rates[i] / rates[n]),
        })
        .collect();
    let fsync = Summary::of(&fsyncs).ok_or_else(|| anyhow!("no fsync samples"))?;
    let small = recovery(tmp, RECOVERY_RECORDS, SMALL_BYTES)?;
    let large_records = RECOVERY_BYTES / RECOVERY_VALUE_BYTES as u64;
    let large = recovery(tmp, large_records, RECOVERY_VALUE_BYTES)?;
    let gib = large.1 as f64 / (1u64 << 30) as f64;
    Ok(Results {
        workload: "kvs durability",
        server: "one child `cloudburst node --roles kvs` per mode (replication 1); client in the benchmark process",
        rounds: ROUNDS,
        in_flight: IN_FLIGHT,
        modes,
        fdatasync_median_ms: fsync.median_us / 1e3,
        fdatasync_p99_ms: fsync.p99_us / 1e3,
        recovery_records: RECOVERY_RECORDS,
        recovery_s_per_million_records: small.0 / (RECOVERY_RECORDS as f64 / 1e6),
        recovery_bytes: large.1,
        recovery_s_per_gib: large.0 / gib,
        recovery_peak_rss_bytes: large.2,
        recovery_peak_rss_over_bytes: large.2.map(|p| p as f64 / large.1.max(1) as f64),
    })
}

/// Sequential puts to keys of their own (the pipelined puts' newer timestamps must not
/// turn them into merges that change nothing and are not logged).
async fn sequential_puts(kvs: &KvsClient, base: u64) -> anyhow::Result<Vec<Duration>> {
    let range = base..base + SEQUENTIAL_PER_ROUND as u64;
    let key = |i: u64| Key::new(format!("bench-seq-{}", i % SEQUENTIAL_KEYS));
    timed_puts(kvs, range, SMALL_BYTES, key).await
}

/// `IN_FLIGHT` writers putting 8-byte values for [`PIPELINE_ROUND`]: (puts, time). Every
/// put is newer than any before it (its timestamp grows with the round), so every put
/// changes its key and is logged.
async fn pipelined_puts(kvs: &KvsClient, round: u64) -> anyhow::Result<(u64, Duration)> {
    concurrent(kvs, IN_FLIGHT, PIPELINE_ROUND, move |i, _| {
        let newer = (round + 1) * PIPELINE_ROUND_STRIDE + i;
        Op::Put(small_key(i), value(newer, SMALL_BYTES))
    })
    .await
}

/// fdatasync of a small append, as the log does it: one file kept open (like a segment),
/// a 36-byte record appended before each sync. Sampled right after each mode's sequential
/// puts, in the same conditions.
struct FsyncProbe {
    file: std::fs::File,
}

impl FsyncProbe {
    fn create(tmp: &Path) -> anyhow::Result<FsyncProbe> {
        let mut file = std::fs::File::create(tmp.join("fsync-probe"))?;
        file.write_all(&[0u8; 16])?;
        file.sync_all()?;
        Ok(FsyncProbe { file })
    }

    fn samples(&mut self) -> anyhow::Result<Vec<Duration>> {
        let mut out = Vec::with_capacity(FSYNC_PER_ROUND);
        for _ in 0..FSYNC_PER_ROUND {
            self.file.write_all(&[7u8; 36])?;
            let start = Instant::now();
            self.file.sync_data()?;
            out.push(start.elapsed());
        }
        Ok(out)
    }
}

/// Write a shard directory of `records` values of `size` bytes (through the log, as a
/// shard does), evict it from the page cache, and time its recovery: (seconds, bytes, how
/// far resident memory peaked above where it was, when `/proc` tells).
fn recovery(tmp: &Path, records: u64, size: usize) -> anyhow::Result<(f64, u64, Option<u64>)> {
    let dir = tmp.join(format!("recovery-{records}-{size}"));
    let fs: Arc<dyn Fs> = Arc::new(DiskFs);
    let opts = LogOptions {
        durability: Durability::Interval,
        flush_interval: Duration::from_secs(1),
        segment_bytes: 64 << 20,
        snapshot_min_bytes: u64::MAX,
        max_pending_bytes: 64 << 20,
    };
    fs.create_dir_all(&dir)?;
    let fatal: FatalHook = Arc::new(|e| tracing::error!(cause = %e, "benchmark log failed"));
    let log = ShardLog::start(fs.clone(), &dir, opts, 1, 0, fatal)?;
    for i in 0..records {
        while log.admit().is_err() {
            std::thread::sleep(Duration::from_millis(1));
        }
        log.put(Key::new(format!("rec-{i}")), value(i + 1, size));
    }
    log.close();
    let mut bytes = 0;
    for name in fs.list(&dir)? {
        let f = std::fs::File::open(dir.join(&name))?;
        bytes += f.metadata()?.len();
        // SAFETY: advice on a descriptor this function owns; no memory is involved.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    let mut core = Core::new(usize::MAX);
    let before = resident_bytes("VmRSS:");
    // Writing 5 resets the peak (VmHWM) to the current resident size.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let start = Instant::now();
    let rec = replay(&DiskFs, &dir, &mut core)?;
    let secs = start.elapsed().as_secs_f64();
    let peak = match (reset, before, resident_bytes("VmHWM:")) {
        (true, Some(b), Some(p)) => Some(p.saturating_sub(b)),
        _ => None,
    };
    if rec.records != records || core.keys().len() as u64 != records {
        return Err(anyhow!(
            "recovered {} records, {} keys, of {records}",
            rec.records,
            core.keys().len()
        ));
    }
    drop(core);
    std::fs::remove_dir_all(&dir)?;
    Ok((secs, bytes, peak))
}

/// A `/proc/self/status` memory field (`VmRSS:`, `VmHWM:`) in bytes.
fn resident_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn print_table(r: &Results) {
    println!("kvs durability benchmark (server: {})", r.server);
    println!(
        "{:<10} {:>14} {:>12} {:>10} {:>16} {:>10}",
        "mode", "put median", "put p99", "vs none", "pipelined put/s", "vs none"
    );
    for m in &r.modes {
        println!(
            "{:<10} {:>11.1} µs {:>9.1} µs {:>9.2}x {:>16.0} {:>9.2}x",
            m.durability.as_str(),
            m.put_8b_median_us,
            m.put_8b_p99_us,
            m.put_median_vs_none,
            m.pipelined_put_ops_per_s,
            m.pipelined_vs_none
        );
    }
    println!(
        "fdatasync of a small append: median {:.2} ms, p99 {:.2} ms",
        r.fdatasync_median_ms, r.fdatasync_p99_ms
    );
    println!(
        "recovery: {:.2} s per million records, {:.2} s per GiB ({} records of 8 B; {} MiB of 4 KiB values; page cache dropped first)",
        r.recovery_s_per_million_records,
        r.recovery_s_per_gib,
        r.recovery_records,
        r.recovery_bytes >> 20
    );
    if let (Some(peak), Some(ratio)) = (r.recovery_peak_rss_bytes, r.recovery_peak_rss_over_bytes) {
        println!(
            "recovery memory: resident peak {} MiB above the start for {} MiB on disk ({ratio:.2}x)",
            peak >> 20,
            r.recovery_bytes >> 20
        );
    }
}
