//! The local node provider: executor nodes as `cloudburst node --roles executor` (and
//! KVS nodes as `cloudburst node --roles kvs`) child processes of this one, on loopback, joining the cluster through this node. Each child's
//! output goes to `<log dir>/<node id>.log`; it is given the cluster secret in its
//! environment (never on its command line) and a config file made from this node's, so
//! its executors run like the ones here. Never more than `limit` children at once.
//!
//! Every child is started as a *standby* (`--standby`): it starts its Python workers, then
//! waits for a launch line on stdin before it joins. While the monitor acts, the provider
//! keeps `autoscale.standby_executors` of them ready; a launch hands a standby over (a new
//! node that serves in a fraction of a second) or, with none ready, starts one and launches
//! it at once. Standbys are not cluster members, count as no capacity, and are not listed.
//!
//! A child is asked to stop by the monitor (a drain request: it drains, leaves and exits
//! by itself); [`LocalProvider::terminate`] sends SIGTERM (which drains it too) to one that
//! still runs, and SIGKILL once [`KILL_AFTER`] passed. Exited children are reaped by
//! [`NodeProvider::list`]. Children get SIGTERM if this process dies (so none outlives it).

use super::launches::ProvidedNode;
use super::provider::{NodeKind, NodeProvider, ProviderError};
use crate::cli::CLUSTER_SECRET_ENV;
use crate::config::{Config, Durability, Role};
use crate::ids::NodeId;
use crate::protocol::scaling::launch_line;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a terminated child may take to drain and exit before it is killed: a drain of
/// an executor that holds nothing ends in about a second; one that does is waited for by
/// the monitor before it terminates.
pub const KILL_AFTER: Duration = Duration::from_secs(30);

/// Prefix of the environment variables the platform reads: none of this process's is
/// passed to a child (its config file says everything), so a variable set for this node
/// (roles, ports, a data directory) cannot make the child collide with it.
const PLATFORM_ENV_PREFIX: &str = "CLOUDBURST_";

/// After a standby exited by itself (a broken environment), no new one is started for
/// this long: launches still work (started on demand) and say why they fail.
pub const STANDBY_RETRY: Duration = Duration::from_secs(30);

/// How long a standby, told to stop (its stdin closed), may take to exit
/// when the provider goes before it is killed: it only has idle workers to stop.
const STANDBY_STOP: Duration = Duration::from_secs(2);

/// One child node.
struct Launched {
    child: Child,
    kind: NodeKind,
    /// When it was told to stop (SIGTERM sent), if it was.
    terminating: Option<Instant>,
}

/// Executor nodes as child processes of this one.
pub struct LocalProvider {
    exe: PathBuf,
    config_file: PathBuf,
    /// The config of a KVS child.
    kvs_config_file: PathBuf,
    log_dir: PathBuf,
    secret: String,
    limit: usize,
    /// Most KVS children at once (`kvs_autoscale.max_kvs`).
    kvs_limit: usize,
    /// Node ids are `<prefix>-<seq>`: unique among this process's children.
    prefix: String,
    seq: u64,
    children: BTreeMap<NodeId, Launched>,
    /// Started children waiting for a launch, oldest first.
    standbys: VecDeque<(NodeId, Child)>,
    /// How many standbys to keep while the monitor acts (`autoscale.standby_executors`).
    standby_target: usize,
    /// Whether standbys are kept now (only the acting monitor keeps them).
    keep_standbys: bool,
    /// No standby is started before this (one exited by itself).
    standby_retry_at: Option<Instant>,
    /// Remove `log_dir` when the provider goes (a throw-away node keeps nothing).
    remove_dir: bool,
}

impl LocalProvider {
    /// A provider whose children join through `join` (this node's peer address), run the
    /// executor section of `cfg`, and log under `log_dir` (made if missing, private).
    pub fn new(cfg: &Config, join: SocketAddr, log_dir: &Path) -> Result<Self, ProviderError> {
        let exe = match &cfg.executor.worker_exe {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| launch_err("this executable", e))?,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(log_dir)
            .map_err(|e| launch_err(&log_dir.display().to_string(), e))?;
        let config_file = log_dir.join("executor-node.toml");
        let text = toml::to_string_pretty(&child_config(cfg, join))
            .map_err(|e| ProviderError::Launch(format!("cannot render the child config: {e}")))?;
        write_private(&config_file, &text)
            .map_err(|e| launch_err(&config_file.display().to_string(), e))?;
        let kvs_config_file = log_dir.join("kvs-node.toml");
        let mut kvs = child_config(cfg, join);
        kvs.node.roles = [Role::Kvs].into_iter().collect();
        let text = toml::to_string_pretty(&kvs)
            .map_err(|e| ProviderError::Launch(format!("cannot render the child config: {e}")))?;
        write_private(&kvs_config_file, &text)
            .map_err(|e| launch_err(&kvs_config_file.display().to_string(), e))?;
        Ok(LocalProvider {
            exe,
            config_file,
            kvs_config_file,
            log_dir: log_dir.to_path_buf(),
            secret: cfg.node.cluster_secret.clone(),
            limit: cfg.autoscale.max_executors,
            kvs_limit: cfg.kvs_autoscale.max_kvs,
            prefix: format!(
                "{}-x{}",
                sanitize(&cfg.node_id().to_string()),
                std::process::id()
            ),
            seq: 0,
            children: BTreeMap::new(),
            standbys: VecDeque::new(),
            standby_target: cfg.autoscale.standby_executors,
            keep_standbys: false,
            standby_retry_at: None,
            remove_dir: false,
        })
    }

    /// Remove the log directory (the child config and logs) when the provider goes.
    pub fn removing_dir_on_drop(mut self) -> Self {
        self.remove_dir = true;
        self
    }

    /// Where child `node` logs.
    pub fn log_path(&self, node: &NodeId) -> PathBuf {
        self.log_dir.join(format!("{node}.log"))
    }

    /// Start a child: an executor node as a standby (it starts its workers, then waits for
    /// its launch line), a KVS node straight away.
    fn spawn_child(&mut self, kind: NodeKind) -> Result<(NodeId, Child), ProviderError> {
        self.seq += 1;
        let id = NodeId::new(format!("{}-{}", self.prefix, self.seq));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.log_path(&id))
            .map_err(|e| launch_err("the child's log file", e))?;
        let err_log = log
            .try_clone()
            .map_err(|e| launch_err("the child's log file", e))?;
        let mut command = Command::new(&self.exe);
        command
            .arg("node")
            .arg("--config")
            .arg(match kind {
                NodeKind::Executor => &self.config_file,
                NodeKind::Kvs => &self.kvs_config_file,
            })
            .arg("--node-id")
            .arg(id.to_string())
            .arg("--ephemeral");
        if kind == NodeKind::Executor {
            command.arg("--standby");
        }
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with(PLATFORM_ENV_PREFIX) {
                command.env_remove(name);
            }
        }
        command
            .env(CLUSTER_SECRET_ENV, &self.secret)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(err_log);
        // SAFETY: prctl only sets a flag of the child between fork and exec; it allocates
        // nothing and touches no lock.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| launch_err(&self.exe.display().to_string(), e))?;
        tracing::debug!(node = %id, kind = kind.name(), pid = child.id(), "started a node");
        Ok((id, child))
    }

    /// Launch one node loading `warm`: a ready standby if there is one, else a new child.
    fn launch_one(&mut self, warm: &[String]) -> Result<NodeId, ProviderError> {
        while let Some((id, mut child)) = self.standbys.pop_front() {
            if !matches!(child.try_wait(), Ok(None)) {
                self.standby_exited(&id, &mut child);
                continue;
            }
            match send_launch(&mut child, warm) {
                Ok(()) => return Ok(self.launched(id, child, NodeKind::Executor, "standby")),
                Err(e) => {
                    tracing::warn!(node = %id, cause = %e, "a standby executor node took no launch; killed");
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        let (id, mut child) = self.spawn_child(NodeKind::Executor)?;
        if let Err(e) = send_launch(&mut child, warm) {
            // It exited already: reconciling sees it ended and counts a failed launch.
            tracing::debug!(node = %id, cause = %e, "the new executor node took no launch");
        }
        Ok(self.launched(id, child, NodeKind::Executor, "new"))
    }

    fn launched(&mut self, id: NodeId, child: Child, kind: NodeKind, how: &str) -> NodeId {
        tracing::info!(node = %id, kind = kind.name(), pid = child.id(), how, log = %self.log_path(&id).display(), "launched a node");
        let l = Launched {
            child,
            kind,
            terminating: None,
        };
        self.children.insert(id.clone(), l);
        id
    }

    /// A standby exited by itself: say so, and start none for [`STANDBY_RETRY`].
    fn standby_exited(&mut self, id: &NodeId, child: &mut Child) {
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        tracing::warn!(node = %id, %status, log = %self.log_path(id).display(), "a standby executor node exited by itself");
        self.standby_retry_at = Some(Instant::now() + STANDBY_RETRY);
    }

    /// Keep [`Self::standby_target`] standbys while standbys are kept, none otherwise.
    fn replenish(&mut self) {
        let mut kept = VecDeque::new();
        while let Some((id, mut child)) = self.standbys.pop_front() {
            match child.try_wait() {
                Ok(None) if self.keep_standbys => kept.push_back((id, child)),
                Ok(None) => stop_standby(child),
                _ => self.standby_exited(&id, &mut child),
            }
        }
        self.standbys = kept;
        let now = Instant::now();
        if !self.keep_standbys || self.standby_retry_at.is_some_and(|t| now < t) {
            return;
        }
        while self.standbys.len() < self.standby_target {
            match self.spawn_child(NodeKind::Executor) {
                Ok(s) => self.standbys.push_back(s),
                Err(e) => {
                    tracing::warn!(cause = %e, "cannot start a standby executor node");
                    self.standby_retry_at = Some(now + STANDBY_RETRY);
                    return;
                }
            }
        }
    }

    /// Reap children that exited and were told to stop; kill those past [`KILL_AFTER`].
    /// Returns how many were reaped.
    fn reap(&mut self) -> usize {
        let mut gone = vec![];
        for (id, l) in self.children.iter_mut() {
            match l.child.try_wait() {
                Ok(Some(status)) if l.terminating.is_some() => {
                    if status.success() {
                        tracing::info!(node = %id, %status, "executor node exited");
                    } else {
                        tracing::warn!(node = %id, %status, log = %self.log_dir.join(format!("{id}.log")).display(), "executor node exited with a failure");
                    }
                    gone.push(id.clone());
                }
                Ok(_) => {
                    if l.terminating.is_some_and(|t| t.elapsed() >= KILL_AFTER) {
                        tracing::warn!(node = %id, "executor node did not exit after SIGTERM; killed");
                        let _ = l.child.kill();
                    }
                }
                Err(e) => tracing::warn!(node = %id, cause = %e, "cannot wait for executor node"),
            }
        }
        for id in &gone {
            self.children.remove(id);
        }
        gone.len()
    }
}

impl Drop for LocalProvider {
    /// Children still running when the provider goes (the node stops) are killed: the
    /// node's stop asked them to drain first (see `super::provider::stop_all`). Standbys
    /// are told to stop and waited for briefly.
    fn drop(&mut self) {
        for (_, child) in self.standbys.drain(..) {
            stop_standby(child);
        }
        for (id, l) in self.children.iter_mut() {
            if let Ok(None) = l.child.try_wait() {
                tracing::warn!(node = %id, "executor node still running as its monitor stops; killed");
                let _ = l.child.kill();
            }
            let _ = l.child.wait();
        }
        if self.remove_dir {
            if let Err(e) = std::fs::remove_dir_all(&self.log_dir) {
                tracing::debug!(dir = %self.log_dir.display(), cause = %e, "executor logs not removed");
            }
        }
    }
}

impl NodeProvider for LocalProvider {
    fn launch(
        &mut self,
        kind: NodeKind,
        count: u32,
        warm: &[String],
    ) -> Result<Vec<NodeId>, ProviderError> {
        let limit = match kind {
            NodeKind::Executor => self.limit,
            NodeKind::Kvs => self.kvs_limit,
        };
        let running = self.children.values().filter(|l| l.kind == kind).count();
        if running + count as usize > limit {
            return Err(ProviderError::AtLimit {
                asked: count,
                limit,
            });
        }
        if kind == NodeKind::Kvs {
            return (0..count)
                .map(|_| {
                    let (id, child) = self.spawn_child(NodeKind::Kvs)?;
                    Ok(self.launched(id, child, NodeKind::Kvs, "new"))
                })
                .collect();
        }
        let launched = (0..count).map(|_| self.launch_one(warm)).collect();
        self.replenish();
        launched
    }

    fn keep_standbys(&mut self, on: bool) {
        self.keep_standbys = on;
        self.replenish();
    }

    fn terminate(&mut self, node: &NodeId) -> Result<(), ProviderError> {
        let Some(l) = self.children.get_mut(node) else {
            return Ok(());
        };
        if l.terminating.is_none() {
            l.terminating = Some(Instant::now());
            if let Ok(None) = l.child.try_wait() {
                let pid = l.child.id() as libc::pid_t;
                // SAFETY: kill only sends a signal to our own child, not yet reaped.
                if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
                    return Err(ProviderError::Terminate {
                        node: node.clone(),
                        cause: std::io::Error::last_os_error().to_string(),
                    });
                }
            }
        }
        self.reap();
        Ok(())
    }

    fn list(&mut self) -> Vec<ProvidedNode> {
        self.reap();
        self.children
            .iter_mut()
            .map(|(id, l)| ProvidedNode {
                node: id.clone(),
                running: matches!(l.child.try_wait(), Ok(None)),
            })
            .collect()
    }

    fn list_of(&mut self, kind: NodeKind) -> Vec<ProvidedNode> {
        self.reap();
        self.children
            .iter_mut()
            .filter(|(_, l)| l.kind == kind)
            .map(|(id, l)| ProvidedNode {
                node: id.clone(),
                running: matches!(l.child.try_wait(), Ok(None)),
            })
            .collect()
    }
}

/// The config a child runs: this node's, as an executor-only node on a free loopback port
/// that joins through `join`, with no secret in it (the environment carries it), no token
/// and no data directory.
fn child_config(cfg: &Config, join: SocketAddr) -> Config {
    let mut c = cfg.clone();
    c.node.roles = [Role::Executor].into_iter().collect();
    c.node.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    c.node.join = vec![join.to_string()];
    c.node.id = String::new();
    c.node.cluster_secret = String::new();
    c.node.data_dir = None;
    c.kvs.durability = Some(Durability::None);
    c.gateway.token = None;
    c
}

/// Hand a standby its launch: the line, then end of input (it reads nothing more).
fn send_launch(child: &mut Child, warm: &[String]) -> std::io::Result<()> {
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    stdin.write_all(launch_line(warm).as_bytes())
}

/// Stop a standby: end its input (it stops its workers and exits), then kill it if
/// it is still there after [`STANDBY_STOP`]. Blocks at most that long.
fn stop_standby(mut child: Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + STANDBY_STOP;
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.wait();
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// `id` with only characters safe in a file name and a node id.
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn launch_err(what: &str, e: std::io::Error) -> ProviderError {
    ProviderError::Launch(format!("{what}: {e}"))
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
