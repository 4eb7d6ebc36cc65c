//! `cloudburst node`: one node of a real cluster. Starts the transport, membership and the
//! Echo service, joins the seed if given, prints one readiness line on stdout, and on
//! SIGTERM / Ctrl-C tells its peers it is leaving and exits 0.
//!
//! Readiness line (tests wait on it): `cloudburst node <id> listening on <addr> generation <n>`.

use crate::app::{EXIT_FAILURE, EXIT_USAGE};
use crate::config::Config;
use crate::ids::{Generation, NodeId, NodeRef};
use crate::roles::NodeRoles;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Run a node until it is told to stop.
pub fn run(cfg: Config) -> ExitCode {
    if cfg.node.cluster_secret.is_empty() {
        eprintln!(
            "error: a node needs a cluster secret (--cluster-secret or CLOUDBURST_CLUSTER_SECRET)"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    actix::System::new().block_on(serve(cfg))
}

async fn serve(cfg: Config) -> ExitCode {
    let roles = match NodeRoles::start(&cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            // Exit at once: roles already started (shard threads, timers) must not be torn
            // down by dropping the actix System mid-start, which panics in actix.
            std::process::exit(i32::from(EXIT_FAILURE));
        }
    };
    let me = roles.transport.local_node().clone();
    println!("{}", ready_line(&me, roles.transport.local_addr()));
    let _ = std::io::stdout().flush();
    let signal = wait_for_signal().await;
    tracing::info!(signal, "leaving the cluster");
    let acks = roles.stop().await;
    tracing::info!(acknowledged_by = acks, "left; shut down");
    ExitCode::SUCCESS
}

/// The readiness line: `cloudburst node <id> listening on <addr> generation <n>`.
pub fn ready_line(me: &NodeRef, addr: SocketAddr) -> String {
    format!(
        "cloudburst node {} listening on {addr} generation {}",
        me.id, me.generation.0
    )
}

/// The node and peer address a [`ready_line`] names; `None` for any other line.
pub fn parse_ready_line(line: &str) -> Option<(NodeRef, SocketAddr)> {
    let w: Vec<&str> = line.split_whitespace().collect();
    if w.len() != 8 || w[..2] != ["cloudburst", "node"] || w[3..5] != ["listening", "on"] {
        return None;
    }
    let node = NodeRef {
        id: NodeId::new(w[2]),
        generation: Generation(w[7].parse().ok()?),
    };
    Some((node, w[5].parse().ok()?))
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT), naming which.
pub async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!(cause = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_parses_back() {
        let me = NodeRef {
            id: NodeId::new("127.0.0.1:7100"),
            generation: Generation(42),
        };
        let addr: SocketAddr = "127.0.0.1:7100".parse().expect("addr");
        assert_eq!(parse_ready_line(&ready_line(&me, addr)), Some((me, addr)));
        assert_eq!(
            parse_ready_line("cloudburst dashboard listening on http://x/"),
            None
        );
    }
}
