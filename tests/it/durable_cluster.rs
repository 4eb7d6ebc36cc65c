//! Durable state with real processes: three `cloudburst node --roles kvs` processes with
//! replication k = 2 and data directories, written to by writers in the test process
//! (Max counters and Lww values) while every node is killed with SIGKILL; then every node
//! restarts on its directory. Every acknowledged write must be there with at least its
//! acknowledged value (`always`), or lost only within the flush window (`interval`), and
//! the functions and DAG registered before must still be listed and callable.
//!
//! The function plane runs in the test process (an in-process node playing scheduler and
//! executor, joined to the cluster): before the kill, and a fresh one after the restart, so
//! what it finds came from the restarted KVS, not from memory.

use crate::transport_support::{NodeProc, Workdir, CONFIG, SECRET};
use bytes::Bytes;
use cloudburst::actors::kvs::KvsClient;
use cloudburst::config::Config;
use cloudburst::ids::{Key, WriterId};
use cloudburst::lattice::{LatticeValue, Lww, Max, Timestamp};
use cloudburst::local::{LocalClient, LocalCluster};
use cloudburst::protocol::Listing;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Writers in the test process; each keeps one counter and cycles over a few Lww keys.
const WRITERS: u64 = 8;
const LWW_KEYS: u64 = 16;
/// Acknowledged writes to see before the kill (the load is well under way by then).
const BEFORE_KILL: usize = 400;
const FLUSH_INTERVAL_MS: u64 = 200;

fn kvs_config(durability: &str) -> String {
    format!(
        "{CONFIG}[kvs]\nreplication = 2\nshards_per_node = 2\ngossip_interval_ms = 20\ndurability = \"{durability}\"\nflush_interval_ms = {FLUSH_INTERVAL_MS}\n"
    )
}

struct Cluster {
    nodes: Vec<NodeProc>,
    dirs: Vec<PathBuf>,
}

impl Cluster {
    /// Start (or restart, on the same directories) three kvs nodes; b and c join a.
    fn start(w: &Workdir, round: &str) -> Cluster {
        let dirs: Vec<PathBuf> = ["a", "b", "c"]
            .iter()
            .map(|n| w.dir.path().join(n))
            .collect();
        let mut nodes: Vec<NodeProc> = Vec::new();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let dir = dirs[i].to_string_lossy().into_owned();
            let seed = nodes.first().map(|a| a.addr.to_string());
            let mut args = vec![
                "--roles",
                "kvs",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &dir,
            ];
            if let Some(s) = &seed {
                args.extend(["--join", s.as_str()]);
            }
            nodes.push(NodeProc::spawn(
                w,
                &format!("{name}-{round}"),
                SECRET,
                &args,
            ));
        }
        Cluster { nodes, dirs }
    }

    fn kill_all(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

/// The function plane in this process, joined to the cluster through `seed`.
async fn function_plane(seed: &NodeProc) -> (LocalCluster, LocalClient) {
    let mut cfg: Config = crate::functions_support::config("scheduler,executor", 1);
    let base = Config::from_toml(CONFIG).expect("config");
    cfg.membership = base.membership;
    cfg.transport = base.transport;
    cfg.node.cluster_secret = SECRET.into();
    cfg.node.join = vec![seed.addr.to_string()];
    cfg.kvs.replication = 2;
    let cluster = LocalCluster::start(cfg)
        .await
        .expect("function plane starts");
    cluster
        .wait_ready(1, crate::functions_support::READY)
        .await
        .expect("ready");
    crate::functions_support::until(
        Duration::from_secs(15),
        "all three kvs nodes routed",
        || cluster.roles.kvs.routing.get().nodes().count() == 3,
    )
    .await;
    let client = cluster.client().await.expect("client");
    (cluster, client)
}

/// One acknowledged write: a counter value or an Lww timestamp.
#[derive(Clone, Debug)]
struct Acked {
    key: Key,
    value: LatticeValue,
    at: Instant,
}

fn counter(n: i64) -> LatticeValue {
    LatticeValue::Max(Max::new(n))
}

fn lww(writer: u64, n: u64) -> LatticeValue {
    LatticeValue::Lww(Lww::new(
        Timestamp::new(n, WriterId(writer)),
        Bytes::from(format!("w{writer}-{n}")),
    ))
}

/// One writer putting until `stop`; every acknowledged write is recorded.
async fn write_until_stopped(
    kvs: KvsClient,
    w: u64,
    acked: Arc<Mutex<Vec<Acked>>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Relaxed) {
        n += 1;
        let writes = [
            (Key::new(format!("counter-{w}")), counter(n as i64)),
            (Key::new(format!("lww-{w}-{}", n % LWW_KEYS)), lww(w, n)),
        ];
        for (key, value) in writes {
            if kvs.put(key.clone(), value.clone()).await.is_ok() {
                let at = Instant::now();
                acked.lock().unwrap().push(Acked { key, value, at });
            } else {
                // Nodes are going down: wait a little rather than spin on errors.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// Run an async body inside an actix System and return its value.
fn run_value<T>(body: impl std::future::Future<Output = T>) -> T {
    actix::System::new().block_on(body)
}

/// Whether `have` holds at least `want` (a counter at least as large, an Lww at least as
/// new).
fn covers(have: Option<&LatticeValue>, want: &LatticeValue) -> bool {
    match (have, want) {
        (Some(LatticeValue::Max(h)), LatticeValue::Max(w)) => h.get() >= w.get(),
        (Some(LatticeValue::Lww(h)), LatticeValue::Lww(w)) => h.timestamp >= w.timestamp,
        _ => false,
    }
}

/// What the cluster held after every node was killed under load and restarted.
struct Outcome {
    acked: usize,
    /// Acknowledged writes not there (or older) after the restart.
    lost: Vec<Acked>,
    killed_at: Instant,
    functions: Vec<String>,
    dags: Vec<String>,
    /// The DAG's result after the restart, or why it failed.
    call: Result<String, String>,
}

/// Run the whole scenario in `durability`.
fn kill_every_node_mid_load(durability: &str) -> Outcome {
    let w = Workdir::new();
    std::fs::write(&w.config, kvs_config(durability)).expect("config");
    let mut cluster = Cluster::start(&w, "first");
    let acked = Arc::new(Mutex::new(Vec::<Acked>::new()));
    let killed_at = run_value(async {
        let (plane, client) = function_plane(&cluster.nodes[0]).await;
        crate::functions_support::register(&client, &["incr", "square"]).await;
        client
            .register_dag("pipeline", &["incr", "square"], &[("incr", "square")])
            .await
            .expect("dag registers");
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|wi| {
                let kvs = plane.roles.kvs.client.clone();
                actix::spawn(write_until_stopped(kvs, wi, acked.clone(), stop.clone()))
            })
            .collect();
        let enough = || acked.lock().unwrap().len() >= BEFORE_KILL;
        crate::functions_support::until(Duration::from_secs(30), "writes acknowledged", enough)
            .await;
        let killed_at = Instant::now();
        cluster.kill_all();
        stop.store(true, Relaxed);
        for wr in writers {
            let _ = wr.await;
        }
        plane.stop().await;
        killed_at
    });
    let acked = acked.lock().unwrap().clone();
    let cluster = Cluster::start(&w, "second");
    assert!(cluster.dirs.iter().all(|d| d.join("node.json").exists()));
    run_value(async {
        let (plane, client) = function_plane(&cluster.nodes[0]).await;
        let kvs = &plane.roles.kvs.client;
        let mut lost = Vec::new();
        for a in &acked {
            let got = kvs.get(&a.key).await.expect("read after restart");
            if !covers(got.as_ref(), &a.value) {
                lost.push(a.clone());
            }
        }
        let functions = client.list(Listing::Functions, "").await.expect("list");
        let dags = client.list(Listing::Dags, "").await.expect("list dags");
        let args =
            crate::functions_support::args_for("incr", vec![crate::functions_support::arg("4")]);
        let call = match client.call_dag("pipeline", args).await {
            Ok(v) => Ok(crate::functions_support::repr(&v)),
            Err(e) => Err(e.to_string()),
        };
        plane.stop().await;
        Outcome {
            acked: acked.len(),
            lost,
            killed_at,
            functions,
            dags,
            call,
        }
    })
}

#[test]
fn without_a_log_the_checker_sees_every_write_and_the_registry_lost() {
    let out = kill_every_node_mid_load("none");
    assert!(
        out.acked >= BEFORE_KILL,
        "{} writes acknowledged",
        out.acked
    );
    assert_eq!(out.lost.len(), out.acked, "nothing is kept in none mode");
    assert!(out.functions.is_empty() && out.dags.is_empty());
    assert!(out.call.is_err(), "{:?}", out.call);
}

#[test]
fn always_loses_no_acknowledged_write_when_every_node_is_killed() {
    let out = kill_every_node_mid_load("always");
    assert!(
        out.acked >= BEFORE_KILL,
        "{} writes acknowledged",
        out.acked
    );
    assert!(
        out.lost.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        out.lost.len(),
        out.acked,
        &out.lost[..out.lost.len().min(3)]
    );
    assert_registry_survived(&out);
}

#[test]
fn interval_loses_at_most_the_flush_window_when_every_node_is_killed() {
    let out = kill_every_node_mid_load("interval");
    assert!(
        out.acked >= BEFORE_KILL,
        "{} writes acknowledged",
        out.acked
    );
    let window = Duration::from_millis(FLUSH_INTERVAL_MS);
    for a in &out.lost {
        let age = out.killed_at.saturating_duration_since(a.at);
        assert!(
            age <= window,
            "{} acknowledged {age:?} before the kill was lost (window {window:?})",
            a.key
        );
    }
    assert_registry_survived(&out);
}

fn assert_registry_survived(out: &Outcome) {
    assert_eq!(out.functions, ["incr", "square"], "functions survive");
    assert_eq!(out.dags, ["pipeline"], "the dag survives");
    assert_eq!(
        out.call.as_deref(),
        Ok("25"),
        "the dag runs after the restart"
    );
}
