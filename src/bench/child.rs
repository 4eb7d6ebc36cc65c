//! Child node processes for benchmarks: spawn `cloudburst node ...` on 127.0.0.1, wait for
//! its readiness line, kill it when the guard drops (error paths included).

use crate::ids::{Generation, NodeId, NodeRef};
use anyhow::{anyhow, bail, Context as _};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a child node may take to print its readiness line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running child node; killed when dropped.
pub struct ChildNode {
    child: Child,
    pub node: NodeRef,
    pub addr: SocketAddr,
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A random cluster secret for one benchmark run.
pub fn random_secret() -> String {
    format!("bench-{:016x}", rand::random::<u64>())
}

/// `--bootstrap` for a node given no `--join` (the first node of a benchmark's cluster).
pub fn bootstrap_unless_joining(args: &[&str]) -> Option<&'static str> {
    (!args.contains(&"--join")).then_some("--bootstrap")
}

/// Start `cloudburst node --listen 127.0.0.1:0 <args>` with `secret` and wait until ready.
pub fn spawn_node(args: &[&str], secret: &str) -> anyhow::Result<ChildNode> {
    let exe = std::env::current_exe().context("locating the cloudburst binary")?;
    let child = Command::new(exe)
        .args(["node", "--listen", "127.0.0.1:0"])
        .args(args)
        .args(bootstrap_unless_joining(args))
        .env("CLOUDBURST_CLUSTER_SECRET", secret)
        .env("RUST_LOG", "error")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a child node")?;
    let mut guard = ChildNode {
        child,
        node: NodeRef {
            id: NodeId::new(""),
            generation: Generation(0),
        },
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let stdout = guard
        .child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {} // keep draining so the child never blocks on stdout
    });
    let line = match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Some(Ok(line))) => line,
        _ => bail!("the child node did not become ready in {READY_TIMEOUT:?}"),
    };
    let (node, addr) = parse_ready(&line)?;
    guard.node = node;
    guard.addr = addr;
    Ok(guard)
}

/// `cloudburst node <id> listening on <addr> generation <n>` (see `node::node_line`).
pub fn parse_ready(line: &str) -> anyhow::Result<(NodeRef, SocketAddr)> {
    crate::node::parse_node_line(line).ok_or_else(|| anyhow!("unexpected readiness line: {line}"))
}
