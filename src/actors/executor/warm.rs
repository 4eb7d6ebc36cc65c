//! Warm starts: before a new executor reports ready, it loads the functions its launch
//! named (the hot ones, by the monitor's per-function rates) into every worker, so a
//! class function's `__init__` (a model being loaded) has run before its first call. The
//! executor then reports which functions it holds warm (shown on the dashboard; schedulers
//! prefer it for those that are class functions).

use super::env::ExecEnv;
use super::library::Invocation;
use super::session::Session;
use crate::ids::CallId;
use crate::protocol::{Schedule, SessionMeta};
use crate::pyrt::PyCall;
use std::sync::Arc;
use std::time::Instant;

/// Load `functions` into every worker of `env`'s pool (as registered now); returns the ones
/// loaded. A function that cannot be loaded is logged and left to load on its first call.
pub async fn load(env: &Arc<ExecEnv>, functions: &[String]) -> Vec<String> {
    let mut warm = Vec::with_capacity(functions.len());
    for name in functions {
        let started = Instant::now();
        match load_one(env, name).await {
            Ok(()) => {
                tracing::info!(function = %name, ms = started.elapsed().as_millis() as u64,
                    "function loaded before this executor reports ready");
                warm.push(name.clone());
            }
            Err(why) => {
                tracing::warn!(function = %name, cause = %why, "function not loaded ahead (it loads on its first call)");
            }
        }
    }
    warm
}

async fn load_one(env: &Arc<ExecEnv>, name: &str) -> Result<(), String> {
    let function = env.registered(name).await.map_err(|f| f.message)?;
    let schedule = warm_schedule(name, function.hash);
    let session = Arc::new(Session::new(env.clone(), &schedule, SessionMeta::default()));
    let lib = Arc::new(Invocation::new(
        env.clone(),
        format!("{}/warm/{name}", env.me.node.id),
        session,
    ));
    // At start nothing else runs: each of these calls holds a different idle worker.
    let calls = (0..env.pool.workers()).map(|_| {
        let call = PyCall {
            warm: true,
            ..PyCall::new(function.clone(), vec![], env.default_timeout)
        };
        env.pool.call(call, lib.clone())
    });
    for outcome in futures::future::join_all(calls).await {
        outcome.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The schedule a warm load's user library sees: no call (id 0), last-writer-wins, nobody
/// to tell of its end.
fn warm_schedule(function: &str, hash: u64) -> Schedule {
    Schedule::alone(CallId(0), function, hash)
}
