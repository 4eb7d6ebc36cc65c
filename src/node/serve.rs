//! The one serve loop of `cloudburst node` and `cloudburst local`: start the roles, wait
//! until they can serve, print the readiness line, wait for SIGTERM or Ctrl-C, stop. A
//! failure at any step stops what started and comes back as a [`NodeError`]; what the
//! process exits with is the caller's business.

use super::drain::drain_deadline;
use super::ready::{local_line, node_line};
use super::roles::NodeRoles;
use super::{Mode, NodeError};
use crate::config::Config;
use std::io::Write;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How long start-up may take for the KVS routing to include this node's shards.
const ROUTING_DEADLINE: Duration = Duration::from_secs(10);
/// How long start-up may take for the scheduler to learn of the local executor (its
/// Python workers start first; a loaded machine is slow).
const EXECUTOR_DEADLINE: Duration = Duration::from_secs(60);

/// Serve `cfg` as `mode` until a signal. Must run inside an actix `System`. A `standby`
/// node starts its executor's workers first and joins only once launched (see
/// [`super::standby`]).
pub(super) async fn serve(cfg: Config, mode: Mode, standby: bool) -> Result<(), NodeError> {
    let prestarted = match standby {
        false => None,
        true => match super::standby::wait_for_launch(&cfg).await? {
            Some(p) => Some(p),
            None => return Ok(()),
        },
    };
    let roles = NodeRoles::start_with(&cfg, prestarted)
        .await
        .map_err(|source| NodeError::Start { mode, source })?;
    let line = match ready(&roles, mode).await {
        Ok(line) => line,
        Err(e) => {
            roles.stop().await;
            return Err(e);
        }
    };
    let mut signals = Signals::install();
    println!("{line}");
    let _ = std::io::stdout().flush();
    let mut failed = roles.storage.failed.clone();
    let failure = tokio::select! {
        signal = signals.recv() => {
            tracing::info!(signal, "stopping the {mode}");
            None
        }
        () = roles.drain_requested() => {
            tracing::info!("stopping the {mode}: the monitor scales it down");
            None
        }
        why = storage_failure(&mut failed) => {
            tracing::error!(cause = %why, "stopping the {mode}: its KVS log cannot be synced");
            Some(why)
        }
    };
    if failure.is_none() {
        // A second signal cuts the drain short.
        let deadline = drain_deadline(longest_function_timeout(&cfg));
        tokio::select! {
            _ = roles.drain(deadline) => {}
            signal = signals.recv() => tracing::warn!(signal, "drain cut short"),
        }
    }
    let acks = roles.stop().await;
    tracing::info!(acknowledged_by = acks, "left the cluster; shut down");
    match failure {
        None => Ok(()),
        Some(why) => Err(NodeError::Storage(why)),
    }
}

/// The longest a function may run here: the executors' default timeout (a function
/// registered with a longer one is cut off by a drain that runs out).
fn longest_function_timeout(cfg: &Config) -> Duration {
    Duration::from_millis(cfg.executor.function_timeout_ms)
}

/// Resolves once a KVS log failed to sync (never, without a data directory).
async fn storage_failure(failed: &mut tokio::sync::watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(why) = failed.borrow_and_update().clone() {
            return why;
        }
        if failed.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Wait until `roles` can serve what `mode` promises, then say so in its readiness line.
async fn ready(roles: &NodeRoles, mode: Mode) -> Result<String, NodeError> {
    match mode {
        // A node is ready once it listens: its peers and clients wait for what they need.
        Mode::Node => Ok(node_line(
            roles.transport.local_node(),
            roles.transport.local_addr(),
        )),
        // The first client request after `local`'s line must find the KVS and an executor.
        Mode::Local => {
            roles
                .wait_ready(1, ROUTING_DEADLINE, EXECUTOR_DEADLINE)
                .await?;
            let url = roles.gateway.as_ref().map(|g| g.client_url());
            Ok(local_line(url.as_deref()))
        }
    }
}

/// Listeners for SIGTERM and Ctrl-C (SIGINT). Installed before the readiness line: a signal
/// sent as soon as the line is read must stop the node cleanly, not kill it (the default
/// action) before a listener exists.
pub struct Signals {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl Signals {
    /// Take over SIGTERM and SIGINT from now on (a listener that cannot be installed is
    /// logged; that signal keeps its default action).
    pub fn install() -> Signals {
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(cause = %e, signal = name, "cannot listen for this signal");
                None
            }
        };
        Signals {
            term: listen(SignalKind::terminate(), "SIGTERM"),
            int: listen(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Resolves on the first SIGTERM or SIGINT, naming which.
    pub async fn recv(&mut self) -> &'static str {
        async fn next(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => "SIGTERM",
            _ = next(&mut self.int) => "SIGINT",
        }
    }
}
