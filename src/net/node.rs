//! `cloudburst node`: one node of a real cluster. Starts the transport, membership and the
//! Echo service, joins the seed if given, prints one readiness line on stdout, and on
//! SIGTERM / Ctrl-C tells its peers it is leaving and exits 0.
//!
//! Readiness line (tests wait on it): `cloudburst node <id> listening on <addr> generation <n>`.

use crate::app::{EXIT_FAILURE, EXIT_USAGE};
use crate::config::Config;
use crate::net::echo::EchoService;
use crate::net::membership::{LeaveCluster, Membership};
use crate::net::transport::Transport;
use std::io::Write;
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
    let transport = match Transport::start(&cfg, None).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let membership = Membership::start(transport.clone(), &cfg);
    EchoService::start(transport.clone(), Some(membership.clone().recipient()));
    let kvs = crate::actors::kvs::KvsTier::start(&transport, &membership, &cfg);
    let pending: Vec<String> = cfg
        .node
        .roles
        .iter()
        .filter(|r| **r != crate::config::Role::Kvs)
        .map(|r| r.to_string())
        .collect();
    if !pending.is_empty() {
        tracing::warn!(
            roles = %pending.join(","),
            "roles not available yet in this build; this node does not play them"
        );
    }
    let me = transport.local_node().clone();
    println!(
        "cloudburst node {} listening on {} generation {}",
        me.id,
        transport.local_addr(),
        me.generation.0
    );
    let _ = std::io::stdout().flush();
    let signal = wait_for_signal().await;
    tracing::info!(signal, "leaving the cluster");
    let acks = membership.send(LeaveCluster).await.unwrap_or(0);
    tracing::info!(acknowledged_by = acks, "left; shutting down");
    transport.shutdown().await;
    kvs.stop();
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT), naming which.
async fn wait_for_signal() -> &'static str {
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
