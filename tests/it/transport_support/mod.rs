//! Shared helpers for the transport and membership integration tests: start real
//! `cloudburst node` processes on 127.0.0.1:0, wait for their readiness line, kill them on
//! drop; an in-process client transport; waiting with a deadline (`common/wait.rs`).
#![allow(dead_code)]

use crate::common::wait;
#[allow(unused_imports)] // not every test module uses it
pub use wait::{eventually, until};

use cloudburst::config::Config;
use cloudburst::ids::{NodeId, NodeRef};
use cloudburst::net::membership::{GetView, MemberState, View};
use cloudburst::net::{ActorRef, NetError, RemoteMessage, ServiceId, Transport};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const SECRET: &str = "test-cluster-secret";

/// Small membership timeouts so failure detection is quick, yet long enough that a node
/// starved of the CPU for a moment (tests run in parallel on a loaded 2-core machine) is
/// not suspected: a suspect node's keys read as unavailable.
pub const CONFIG: &str = "\
[membership]
heartbeat_ms = 50
suspect_after_ms = 1000
dead_after_ms = 2000
[transport]
request_timeout_ms = 2000
reconnect_min_ms = 20
reconnect_max_ms = 200
connect_timeout_ms = 500
[gateway]
client_listen = \"127.0.0.1:0\"
dashboard_listen = \"127.0.0.1:0\"
";

pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A temp dir holding the config file and the nodes' logs.
pub struct Workdir {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Workdir {
    pub fn new() -> Workdir {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("cloudburst.toml");
        std::fs::write(&config, CONFIG).expect("write config");
        Workdir { dir, config }
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }
}

/// One `cloudburst node` child process; killed when dropped.
pub struct NodeProc {
    pub child: Child,
    pub node: NodeRef,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl NodeProc {
    /// Start a node with `args` (after `node --config FILE`, the secret `S` in its
    /// environment, its per-user config directory in the workdir) and wait for its
    /// readiness line. A node given no `--join` forms the cluster (`--bootstrap`).
    pub fn spawn(w: &Workdir, name: &str, secret: &str, args: &[&str]) -> NodeProc {
        let seed = (!args.contains(&"--join")).then_some("--bootstrap");
        let args: Vec<&str> = args.iter().copied().chain(seed).collect();
        NodeProc::spawn_exact(w, name, secret, &args)
    }

    /// [`NodeProc::spawn`] with exactly `args` (no `--bootstrap` added).
    pub fn spawn_exact(w: &Workdir, name: &str, secret: &str, args: &[&str]) -> NodeProc {
        let log = w.log(name);
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cloudburst"))
            .arg("node")
            .arg("--config")
            .arg(&w.config)
            .args(args)
            .env("CLOUDBURST_CLUSTER_SECRET", secret)
            .env("XDG_CONFIG_HOME", w.dir.path())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,cloudburst=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn cloudburst node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("cloudburst node ") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("node {name} not ready in {READY_TIMEOUT:?}; log:\n{text}");
            }
        };
        let (node, addr) = parse_ready(&line);
        NodeProc {
            child,
            node,
            addr,
            log,
        }
    }

    /// Kill at once (SIGKILL): no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (bounded) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let child = &mut self.child;
        wait::blocking(
            Duration::from_secs(5),
            "the node to exit after SIGTERM",
            || child.try_wait().ok().flatten(),
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The actor `(service, 0)` on this node.
    pub fn actor(&self, service: ServiceId) -> ActorRef {
        ActorRef::new(self.node.clone(), service, 0)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cloudburst node <id> listening on <addr> generation <n>`
fn parse_ready(line: &str) -> (NodeRef, SocketAddr) {
    cloudburst::node::parse_node_line(line)
        .unwrap_or_else(|| panic!("unexpected readiness line: {line}"))
}

/// An in-process transport for the test itself (run inside an actix System).
pub async fn client(secret: &str, name: &str) -> Transport {
    let mut cfg = Config::from_toml(CONFIG).expect("config");
    cfg.node.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.node.cluster_secret = secret.to_string();
    Transport::start(&cfg, Some(NodeId::new(name)))
        .await
        .expect("client transport")
}

/// Tell the client where `nodes` are.
pub fn know(t: &Transport, nodes: &[&NodeProc]) {
    for n in nodes {
        t.connect_hint(&n.node.id, n.addr);
    }
}

/// Send `msg` to `(M::SERVICE, 0)` on `node`.
pub async fn ask<M: RemoteMessage>(
    t: &Transport,
    node: &NodeRef,
    msg: M,
) -> Result<M::Result, NetError> {
    t.handle::<M>(ActorRef::new(node.clone(), M::SERVICE, 0))
        .send(msg)
        .await
}

/// The view of `node`.
pub async fn view_of(t: &Transport, node: &NodeRef) -> Result<View, NetError> {
    ask(t, node, GetView).await
}

/// The nodes' ids and generations, all alive, as a view summary lists them.
pub fn all_alive(nodes: &[&NodeProc]) -> Vec<(NodeRef, MemberState)> {
    let mut v: Vec<_> = nodes
        .iter()
        .map(|n| (n.node.clone(), MemberState::Alive))
        .collect();
    v.sort_by(|x, y| x.0.id.cmp(&y.0.id));
    v
}

/// Run an async test body inside an actix System.
pub fn run<F: Future<Output = ()>>(body: F) {
    actix::System::new().block_on(body);
}
