//! What running calls share with their executor: the pool, state, transport, mailboxes, the
//! write clock, and the functions loaded from the registry (cached by name + content hash).

use super::mailbox::Mailboxes;
use crate::actors::cache::{CacheHandle, StateAccess};
use crate::clock::{node_clock, LwwClock};
use crate::ids::CallId;
use crate::net::{ActorRef, Transport};
use crate::protocol::records::{function_hash, function_key, read_function};
use crate::protocol::{CallFailure, ErrorCode, FunctionError, FunctionRecord};
use crate::pyrt::{FunctionSpec, PythonPool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
    /// The last dot this node gave each key it wrote causally (see `session.rs`).
    causal_seqs: Mutex<HashMap<crate::ids::Key, u64>>,
    pub mailboxes: Mailboxes,
    /// Timeout of functions registered without one.
    pub default_timeout: Duration,
    functions: Mutex<HashMap<String, Arc<FunctionSpec>>>,
    /// Where function records are loaded from (the KVS, not the cache).
    registry: Arc<dyn StateAccess>,
    /// Attempts of calls with functions running here: what stops them, and how many run.
    running: Mutex<HashMap<(CallId, u32), (CancellationToken, usize)>>,
}

/// One function of an attempt of a call running on this executor; dropped when it ends.
pub struct Running<'a> {
    env: &'a ExecEnv,
    key: (CallId, u32),
    /// Cancelled when the attempt is.
    pub token: CancellationToken,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut all = self.env.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, n)) = all.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                all.remove(&self.key);
            }
        }
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
            causal_writer: super::session::causal_writer(&me.node),
            me,
            transport,
            pool,
            cache,
            causal,
            causal_seqs: Mutex::new(HashMap::new()),
            registry,
            mailboxes: Mailboxes::default(),
            default_timeout,
            functions: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// A function of attempt `attempt` of `call` starts running here.
    pub fn running(&self, call: CallId, attempt: u32) -> Running<'_> {
        let key = (call, attempt);
        let mut all = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let (token, n) = all
            .entry(key)
            .or_insert_with(|| (CancellationToken::new(), 0));
        *n += 1;
        Running {
            env: self,
            key,
            token: token.clone(),
        }
    }

    /// Stop the functions of `call`'s attempts below `before` running here; how many
    /// attempts had some.
    pub fn cancel_running(&self, call: CallId, before: u32) -> usize {
        let mut all = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut stopped = 0;
        all.retain(|(c, attempt), (token, _)| {
            let stop = *c == call && *attempt < before;
            if stop {
                token.cancel();
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
        let found = function_hash(&record);
        if found != hash {
            return Err(CallFailure::new(
                ErrorCode::StaleFunction,
                format!("function `{name}` was re-registered after this call was scheduled"),
            ));
        }
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

    /// Whether this node has given `key` a causal dot since it started (else the next one
    /// must be found above what the KVS holds).
    pub fn knows_seq(&self, key: &crate::ids::Key) -> bool {
        let seqs = self.causal_seqs.lock().unwrap_or_else(|p| p.into_inner());
        seqs.contains_key(key)
    }

    /// The next dot of this node for `key`: above the last it gave and above `known`.
    /// Past [`MAX_CAUSAL_KEYS`] keys the table is emptied (each key then costs one KVS
    /// read at its next write).
    pub fn next_seq(&self, key: &crate::ids::Key, known: u64) -> u64 {
        let mut seqs = self.causal_seqs.lock().unwrap_or_else(|p| p.into_inner());
        if seqs.len() >= MAX_CAUSAL_KEYS && !seqs.contains_key(key) {
            seqs.clear();
        }
        let last = seqs.entry(key.clone()).or_insert(0);
        *last = (*last).max(known).saturating_add(1);
        *last
    }
}

/// Keys whose last causal dot an executor remembers, at most.
pub const MAX_CAUSAL_KEYS: usize = 1 << 20;
