//! What running calls share with their executor: the pool, state, transport, mailboxes, the
//! write clock, and the functions loaded from the registry (cached by name + content hash).

use super::claims::Claims;
use super::delivered::Delivered;
use super::mailbox::Mailboxes;
use super::session_core::{causal_writer, DotTable};
use crate::actors::cache::{CacheHandle, StateAccess};
use crate::clock::{node_clock, LwwClock};
use crate::ids::CallId;
use crate::net::{ActorRef, Transport};
use crate::protocol::records::{function_hash, function_key, read_function};
use crate::protocol::{CallFailure, ErrorCode, FunctionError, FunctionRecord};
use crate::pyrt::{FunctionSpec, PythonPool};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;

/// Functions kept loaded per executor; when full the cache is emptied (re-loading costs one
/// KVS read; workers keep their own unpickled copies).
pub const MAX_CACHED_FUNCTIONS: usize = 4096;

/// The causal mode's timing rules (see `session.rs`).
#[derive(Clone, Copy, Debug)]
pub struct CausalTiming {
    /// Cached values confirmed by the KVS longer ago are re-read before a causal read.
    pub lease: Duration,
    /// Clock entries and dependencies older than this are dropped.
    pub horizon: Duration,
}

impl CausalTiming {
    pub fn from_config(c: &crate::config::ConsistencyConfig) -> Self {
        CausalTiming {
            lease: Duration::from_millis(c.causal_lease_ms),
            horizon: Duration::from_millis(c.causal_horizon_ms),
        }
    }
}

/// Shared by an executor actor and its running calls.
pub struct ExecEnv {
    /// This executor.
    pub me: ActorRef,
    pub transport: Transport,
    pub pool: PythonPool,
    /// This node's cache: every read and write of state (through a session).
    pub cache: CacheHandle,
    /// This node's Lww write clock (shared by every writer of the node).
    pub clock: Arc<LwwClock>,
    /// The causal mode's lease and horizon.
    pub causal: CausalTiming,
    /// This node's writer id in causal clocks.
    pub causal_writer: crate::ids::WriterId,
    /// The last dot this node gave each key it wrote causally.
    dots: Mutex<DotTable>,
    pub mailboxes: Mailboxes,
    /// Deliveries of calls not told to their schedulers yet.
    pub delivered: Delivered,
    /// Calls other gateways claimed, and the outcomes delivered here held for them.
    pub claims: Claims,
    /// Timeout of functions registered without one.
    pub default_timeout: Duration,
    functions: Mutex<HashMap<String, Arc<FunctionSpec>>>,
    /// Where function records are loaded from (the KVS, not the cache).
    registry: Arc<dyn StateAccess>,
    /// Functions running here, by run number: the attempt of the call each belongs to, and
    /// its task while a `Cancel` may still stop it (`None` once it passes its outcome on).
    running: Mutex<HashMap<u64, RunEntry>>,
    /// The next run number.
    next_run: AtomicU64,
}

/// A function running here: its call, the attempt, and its task while a cancel may stop it.
type RunEntry = (CallId, u32, Option<AbortHandle>);

/// One function run on this executor that a `Cancel` of its attempt stops (by aborting its
/// task) until [`Stoppable::finishing`] is called: when the function's Python call is over, before
/// its outcome is passed on, so a cancel never cuts a delivery short. The run counts as
/// running here (for a claim of its call) until its outcome is passed on.
pub struct Stoppable {
    env: Arc<ExecEnv>,
    run: u64,
}

impl Stoppable {
    /// Its run number (see [`ExecEnv::track`]).
    pub fn run(&self) -> u64 {
        self.run
    }

    /// The Python call is over: a `Cancel` no longer stops the run; it still counts as
    /// running here until this is dropped (its outcome passed on).
    pub fn finishing(&self) {
        let mut all = self.env.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = all.get_mut(&self.run) {
            entry.2 = None;
        }
    }
}

impl Drop for Stoppable {
    fn drop(&mut self) {
        let mut all = self.env.running.lock().unwrap_or_else(|p| p.into_inner());
        all.remove(&self.run);
    }
}

impl ExecEnv {
    pub fn new(
        me: ActorRef,
        transport: Transport,
        pool: PythonPool,
        cache: CacheHandle,
        registry: Arc<dyn StateAccess>,
        default_timeout: Duration,
        causal: CausalTiming,
    ) -> Self {
        ExecEnv {
            clock: node_clock(&me.node),
            causal_writer: causal_writer(&me.node),
            me,
            transport,
            pool,
            cache,
            causal,
            dots: Mutex::new(DotTable::default()),
            registry,
            mailboxes: Mailboxes::default(),
            delivered: Delivered::default(),
            claims: Claims::default(),
            default_timeout,
            functions: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            next_run: AtomicU64::new(0),
        }
    }

    /// A function is about to be spawned here: see [`Stoppable`]. (Cancelling aborts the
    /// task: a call that is never cancelled costs no token and no extra polled future.)
    pub fn stoppable(self: &Arc<Self>) -> Stoppable {
        Stoppable {
            env: self.clone(),
            run: self.next_run.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The task of run `run` (a [`Stoppable`] it holds) runs a function of attempt `attempt`
    /// of `call`: a `Cancel` of that attempt aborts it from now on. Called right after the
    /// task is spawned, before it first runs (so before its `Stoppable` can be dropped).
    pub fn track(&self, run: u64, call: CallId, attempt: u32, task: AbortHandle) {
        let mut all = self.running.lock().unwrap_or_else(|p| p.into_inner());
        all.insert(run, (call, attempt, Some(task)));
    }

    /// Functions of `call` running here (or passing their outcome on).
    pub fn runs_of(&self, call: CallId) -> usize {
        let all = self.running.lock().unwrap_or_else(|p| p.into_inner());
        all.values().filter(|(c, _, _)| *c == call).count()
    }

    /// Stop the functions of `call`'s attempts below `before` running here (their tasks
    /// are aborted: a waiting call leaves the queue, a running one's worker is replaced);
    /// how many were.
    pub fn cancel_running(&self, call: CallId, before: u32) -> usize {
        let mut all = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut stopped = 0;
        all.retain(|_, (c, attempt, task)| {
            let stop = *c == call && *attempt < before && task.is_some();
            if let (true, Some(task)) = (stop, task) {
                task.abort();
                stopped += 1;
            }
            !stop
        });
        stopped
    }

    fn cached(&self, name: &str, hash: u64) -> Option<Arc<FunctionSpec>> {
        let all = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        all.get(name).filter(|f| f.hash == hash).cloned()
    }

    /// The function `name` as registered with content `hash`: from the cache, else loaded
    /// from the registry. A different registered hash means it was re-registered after the
    /// call was scheduled: the call fails rather than run another body.
    pub async fn function(&self, name: &str, hash: u64) -> Result<Arc<FunctionSpec>, CallFailure> {
        if let Some(f) = self.cached(name, hash) {
            return Ok(f);
        }
        let spec = self.registered(name).await?;
        if spec.hash != hash {
            return Err(CallFailure::new(
                ErrorCode::StaleFunction,
                format!("function `{name}` was re-registered after this call was scheduled"),
            ));
        }
        Ok(spec)
    }

    /// The function `name` as registered now, loaded from the registry (and cached).
    pub async fn registered(&self, name: &str) -> Result<Arc<FunctionSpec>, CallFailure> {
        let record = self
            .load(name)
            .await
            .map_err(|e| CallFailure::new(e.code(), e.to_string()))?
            .ok_or_else(|| {
                CallFailure::new(
                    ErrorCode::UnknownFunction,
                    format!("no function named `{name}`"),
                )
            })?;
        let hash = function_hash(&record);
        let spec = Arc::new(FunctionSpec {
            name: record.name,
            hash,
            body: record.body,
            kind: record.kind,
        });
        let mut all = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= MAX_CACHED_FUNCTIONS {
            all.clear();
        }
        all.insert(name.to_string(), spec.clone());
        Ok(spec)
    }
}

impl ExecEnv {
    /// The registration of function `name`, if any (checked: see
    /// [`crate::protocol::records::read_function`]).
    async fn load(&self, name: &str) -> Result<Option<FunctionRecord>, FunctionError> {
        let mut got = self
            .registry
            .get(vec![function_key(name)])
            .await
            .map_err(|e| FunctionError::Storage(e.to_string()))?;
        read_function(name, got.pop().flatten())
    }

    /// The functions loaded here (at most `limit` names, sorted): what it holds warm.
    pub fn loaded(&self, limit: usize) -> Vec<String> {
        let all = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = all.keys().cloned().collect();
        names.sort();
        names.truncate(limit);
        names
    }

    /// The causal dots this node gave (shared by its sessions; see `session_core/dots.rs`).
    pub fn dots(&self) -> std::sync::MutexGuard<'_, DotTable> {
        self.dots.lock().unwrap_or_else(|p| p.into_inner())
    }
}
