//! A standby executor node (`cloudburst node --standby`, spawned by the monitor's local
//! provider): it starts its Python workers first, then waits, outside the cluster, until
//! its parent hands it a launch on stdin. Only then does it join and serve, so the time a
//! launch takes to serve no longer includes starting Python.
//!
//! The launch is one line: `go` followed by a JSON list of the functions to load before
//! the node reports ready (the hot ones, for warm starts), e.g. `go ["square"]`. End of
//! input (the parent went away) or SIGTERM/SIGINT ends the standby without joining.

use super::serve::Signals;
use crate::actors::executor::Prestarted;
use crate::config::Config;
use crate::protocol::scaling::{parse_launch, LaunchLineError};
use crate::pyrt::{PoolConfig, PyRuntimeError, PythonPool};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// Longest launch line read (a list of function names; at most a few KiB in practice):
/// a longer one is refused rather than buffered.
pub const MAX_LAUNCH_LINE: u64 = 64 * 1024;

/// Why a standby did not become a node.
#[derive(Debug, thiserror::Error)]
pub enum StandbyError {
    #[error("standby: {0}")]
    Python(#[from] PyRuntimeError),
    #[error("standby: {0}")]
    BadLine(#[from] LaunchLineError),
}

/// Start the executor's pool, then wait for the launch. `None`: told to stop instead (the
/// pool is shut down).
pub async fn wait_for_launch(cfg: &Config) -> Result<Option<Prestarted>, StandbyError> {
    let exe = match &cfg.executor.worker_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(PyRuntimeError::Socket)?,
    };
    let mut pool_cfg = PoolConfig::from_config(cfg, exe);
    pool_cfg.owner = Some(cfg.node_id().to_string());
    let mut signals = Signals::install();
    let pool = tokio::select! {
        p = PythonPool::start(pool_cfg) => p?,
        signal = signals.recv() => {
            tracing::info!(signal, "standby stopped before its workers were up");
            return Ok(None);
        }
    };
    tracing::info!(
        workers = pool.workers(),
        "standby: workers ready, waiting for a launch"
    );
    let mut line = String::new();
    let mut stdin = BufReader::new(tokio::io::stdin().take(MAX_LAUNCH_LINE));
    let read = tokio::select! {
        r = stdin.read_line(&mut line) => r,
        signal = signals.recv() => {
            tracing::info!(signal, "standby stopped");
            pool.shutdown().await;
            return Ok(None);
        }
    };
    match read {
        Ok(n) if n > 0 && line.ends_with('\n') => match parse_launch(&line) {
            Ok(warm) => Ok(Some(Prestarted { pool, warm })),
            Err(e) => {
                pool.shutdown().await;
                Err(e.into())
            }
        },
        _ => {
            tracing::info!("standby: no launch came (its parent went); stopping");
            pool.shutdown().await;
            Ok(None)
        }
    }
}
