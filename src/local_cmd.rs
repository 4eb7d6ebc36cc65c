//! `cloudburst local`: the whole cluster in one process (KVS shards, scheduler, executors
//! with their cache, gateway, monitor), bound to 127.0.0.1 unless told otherwise.
//!
//! Prints one readiness line on stdout once clients can connect:
//! `cloudburst local ready: client ws://127.0.0.1:6200` (tests wait on it; port 0 in the
//! config prints the port actually bound). Ctrl-C or SIGTERM shuts it down and exits 0. A
//! port already in use fails at start with the address in the message and exit code 1.

use crate::app::EXIT_FAILURE;
use crate::config::Config;
use crate::net::node::wait_for_signal;
use crate::roles::NodeRoles;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Bytes of randomness in the cluster secret `local` makes up when none is configured (the
/// peer listener is still reachable on loopback, so it must not be guessable).
const GENERATED_SECRET_BYTES: usize = 32;

/// Run the local cluster until told to stop.
pub fn run(mut cfg: Config) -> ExitCode {
    if cfg.node.cluster_secret.is_empty() {
        cfg.node.cluster_secret = random_secret();
    }
    actix::System::new().block_on(serve(cfg))
}

async fn serve(cfg: Config) -> ExitCode {
    let roles = match NodeRoles::start(&cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the local cluster: {e}");
            // Exit at once: roles already started (shard threads, timers) must not be torn
            // down by dropping the actix System mid-start, which panics in actix.
            std::process::exit(i32::from(EXIT_FAILURE));
        }
    };
    if !kvs_routed(&roles).await {
        eprintln!("error: the local KVS shards did not join the routing table in time");
        roles.stop().await;
        return ExitCode::from(EXIT_FAILURE);
    }
    if !executors_known(&roles).await {
        eprintln!("error: the local scheduler did not hear from its executor in time");
        roles.stop().await;
        return ExitCode::from(EXIT_FAILURE);
    }
    match &roles.gateway {
        Some(g) => println!("cloudburst local ready: client {}", g.client_url()),
        None => println!("cloudburst local ready"),
    }
    let _ = std::io::stdout().flush();
    let signal = wait_for_signal().await;
    tracing::info!(signal, "shutting down the local cluster");
    roles.stop().await;
    ExitCode::SUCCESS
}

/// How long start-up may take for the KVS routing to include this node's shards.
const ROUTING_DEADLINE: Duration = Duration::from_secs(10);
/// How often start-up checks the routing table meanwhile.
const ROUTING_POLL: Duration = Duration::from_millis(5);

/// Wait (bounded) until the KVS routing table knows the local shards, so that the first
/// client request after the readiness line finds them.
async fn kvs_routed(roles: &NodeRoles) -> bool {
    let deadline = tokio::time::Instant::now() + ROUTING_DEADLINE;
    while roles.kvs.client.routing().nodes().next().is_none() {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(ROUTING_POLL).await;
    }
    true
}

/// How long start-up may take for the scheduler to learn of the local executor (its
/// Python workers start first; a loaded machine is slow).
const EXECUTOR_DEADLINE: Duration = Duration::from_secs(60);

/// Wait (bounded) until the local scheduler knows an executor, so that a registration
/// right after the readiness line is not refused with `no_executors`.
async fn executors_known(roles: &NodeRoles) -> bool {
    let Some(scheduler) = &roles.scheduler else {
        return true;
    };
    let deadline = tokio::time::Instant::now() + EXECUTOR_DEADLINE;
    loop {
        if let Ok(known) = scheduler.send(crate::actors::scheduler::GetExecutors).await {
            if !known.is_empty() {
                return true;
            }
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(ROUTING_POLL).await;
    }
}

fn random_secret() -> String {
    (0..GENERATED_SECRET_BYTES)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}
