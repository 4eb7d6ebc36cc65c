//! One function's view of state under its call's consistency mode: the I/O loop of the
//! session. Every read and write of a running function (`cb.get`, `cb.put`, referenced
//! arguments, a stored result) goes through its [`Session`], which asks its
//! [`SessionCore`] what to do, does it (this node's cache, the KVS through it, the home
//! cache of a repeatable-read call) and feeds the answer back. The rules of each mode
//! (last-writer-wins, distributed-session repeatable read, distributed-session causal, and
//! the metadata bounds) are stated in `session_core/mod.rs`, with the tests that show each.
//! What the session saw travels to the downstream functions in the triggers
//! ([`SessionMeta`]).

use super::env::ExecEnv;
pub use super::session_core::{
    causal_writer, clock_of, fingerprint, prune, SessionError, WRITE_TIME,
};
use super::session_core::{encode_into, error, LocalView, ReadStep, SessionCore, WriteStep};
use crate::actors::cache::CacheHandle;
use crate::actors::kvs::KvsError;
use crate::clock::now_micros;
use crate::ids::{CallId, Key, NodeRef};
use crate::lattice::{LatticeValue, Tombstone, VectorClock};
use crate::net::{ActorRef, ServiceId};
use crate::protocol::{
    to_lattice, Consistency, ErrorCode, ReleaseSession, Schedule, SessionMeta, SessionRead,
    RESERVED_PREFIX,
};
use crate::pyrt::PyValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of consistency metadata this process produced: session metadata sent in
/// triggers, plus what stored values carry beyond the encoded value (an Lww timestamp; a
/// causal value's clock and dependencies). Read by `cloudburst bench consistency`.
static METADATA_BYTES: AtomicU64 = AtomicU64::new(0);
/// Repeatable-read keys fetched from a home cache on another node.
static REMOTE_PINNED_READS: AtomicU64 = AtomicU64::new(0);

/// Causal: keys re-read from the KVS to satisfy the session order, the causal cut or a
/// first write (not counting the lease refreshes inside the cache).
static CAUSAL_REREADS: AtomicU64 = AtomicU64::new(0);

/// `(metadata bytes, remote pinned reads, causal re-reads)` of this process so far.
pub fn overhead_counters() -> (u64, u64, u64) {
    (
        METADATA_BYTES.load(Ordering::Relaxed),
        REMOTE_PINNED_READS.load(Ordering::Relaxed),
        CAUSAL_REREADS.load(Ordering::Relaxed),
    )
}

fn count_rereads(n: usize) {
    CAUSAL_REREADS.fetch_add(n as u64, Ordering::Relaxed);
}

/// Bytes `v` encodes to on the wire.
fn encoded_len<T: serde::Serialize>(v: &T) -> usize {
    let mut n = 0;
    if encode_into(v, |b| n += b.len()) {
        n
    } else {
        0
    }
}

/// Count the encoded size of session metadata about to be sent `copies` times.
pub fn count_sent(meta: &SessionMeta, copies: usize) {
    if !meta.is_empty() && copies > 0 {
        let n = encoded_len(meta) * copies;
        METADATA_BYTES.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn count_stored(value: &LatticeValue, payload: usize) {
    let n = encoded_len(value).saturating_sub(payload);
    METADATA_BYTES.fetch_add(n as u64, Ordering::Relaxed);
}

impl From<KvsError> for SessionError {
    fn from(e: KvsError) -> Self {
        let code = match e {
            KvsError::Reserved { .. } => ErrorCode::InvalidRequest,
            _ => ErrorCode::StorageError,
        };
        SessionError {
            code,
            message: e.to_string(),
        }
    }
}

/// The session looks at this node's cache without I/O.
impl LocalView for CacheHandle {
    fn held_version(&self, key: &Key, fp: u64) -> Option<LatticeValue> {
        self.with_held(key, |v| (fingerprint(Some(v)) == fp).then(|| v.clone()))
            .flatten()
    }

    fn held_clock(&self, key: &Key) -> Option<VectorClock> {
        self.with_held(key, |v| clock_of(Some(v)))
    }
}

fn payload_len(v: &PyValue) -> usize {
    match v {
        PyValue::Packed(b) => b.len(),
        PyValue::PackedSet(items) | PyValue::Concurrent(items) => {
            items.iter().map(|b| b.len()).sum()
        }
    }
}

/// The reads and writes of one running function.
pub struct Session {
    env: Arc<ExecEnv>,
    mode: Consistency,
    /// The session's id: the call's, or a fresh one for a re-run (see `session_of`).
    call: CallId,
    home: Option<NodeRef>,
    core: Mutex<SessionCore>,
}

impl Session {
    /// The session of the function `schedule` names, having seen `meta` upstream.
    pub fn new(env: Arc<ExecEnv>, schedule: &Schedule, meta: SessionMeta) -> Self {
        Session {
            mode: schedule.consistency,
            call: schedule.session(),
            home: schedule.home.clone(),
            core: Mutex::new(SessionCore::new(
                meta,
                env.causal_writer,
                env.causal.horizon,
            )),
            env,
        }
    }

    /// The consistency mode.
    pub fn mode(&self) -> Consistency {
        self.mode
    }

    fn core(&self) -> MutexGuard<'_, SessionCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What to pass downstream.
    pub fn snapshot(&self) -> SessionMeta {
        self.core().meta().clone()
    }

    /// Values of `keys`, in order, as the mode allows.
    pub async fn get(&self, keys: &[Key]) -> Result<Vec<Option<LatticeValue>>, SessionError> {
        let cache = &self.env.cache;
        let (mut read, mut step) = match self.mode {
            Consistency::Lww => return Ok(cache.get(keys).await?),
            Consistency::RepeatableRead => {
                let home = self.home_cache()?;
                if *home == self.env.me.node {
                    let values = cache.session_read(self.call, keys).await?;
                    self.core().pinned_here(keys, &values);
                    return Ok(values);
                }
                self.core().read_pinned(keys.to_vec(), cache)
            }
            Consistency::Causal => {
                let values = cache.get_confirmed(keys, self.env.causal.lease).await?;
                self.core()
                    .read_causal(keys.to_vec(), values, cache, now_micros())
            }
        };
        loop {
            let answer = match step {
                ReadStep::Serve(values) => return Ok(values),
                ReadStep::ReadKvs(keys) => {
                    count_rereads(keys.len());
                    cache.refresh(&keys).await?
                }
                ReadStep::FetchPinned(keys) => self.fetch_pinned(keys).await?,
            };
            step = self.core().feed(&mut read, answer, cache, now_micros())?;
        }
    }

    /// Store `value` under `key` as the mode writes it.
    pub async fn put(&self, key: Key, value: PyValue) -> Result<(), SessionError> {
        match self.mode {
            Consistency::Causal => self.put_causal(key, value).await,
            Consistency::Lww | Consistency::RepeatableRead => {
                let payload = payload_len(&value);
                let v = to_lattice(value, &self.env.clock);
                count_stored(&v, payload);
                Ok(self.env.cache.put_user(key, v).await?)
            }
        }
    }

    /// Delete `key`: a tombstone from this node's write clock, in every mode (a delete is
    /// last-writer-wins even in a causal call: a causal write after it recreates the key).
    /// Platform keys cannot be deleted from a function.
    pub async fn delete(&self, key: Key) -> Result<(), SessionError> {
        if key.as_str().starts_with(RESERVED_PREFIX) {
            let why = format!("keys under `{RESERVED_PREFIX}` are reserved for the platform");
            return Err(error(ErrorCode::InvalidRequest, why));
        }
        let t = LatticeValue::Tombstone(Tombstone::new(self.env.clock.next()));
        Ok(self.env.cache.put(key, t).await?)
    }

    fn home_cache(&self) -> Result<&NodeRef, SessionError> {
        self.home.as_ref().ok_or_else(|| {
            error(
                ErrorCode::InternalError,
                "a repeatable-read call without a home node".into(),
            )
        })
    }

    /// The session's pinned versions of `keys`, from its home cache on another node.
    async fn fetch_pinned(
        &self,
        keys: Vec<Key>,
    ) -> Result<Vec<Option<LatticeValue>>, SessionError> {
        REMOTE_PINNED_READS.fetch_add(keys.len() as u64, Ordering::Relaxed);
        let to = ActorRef::new(self.home_cache()?.clone(), ServiceId::Cache, 0);
        let read = SessionRead {
            session: self.call,
            keys,
        };
        self.env
            .transport
            .handle::<SessionRead>(to)
            .send(read)
            .await
            .map_err(|e| {
                error(
                    ErrorCode::Unavailable,
                    format!("cannot reach the session's home cache: {e}"),
                )
            })?
            .map_err(|e| error(ErrorCode::StorageError, e))
    }

    async fn put_causal(&self, key: Key, value: PyValue) -> Result<(), SessionError> {
        let PyValue::Packed(bytes) = value else {
            return Err(error(
                ErrorCode::InvalidRequest,
                "causal mode stores single objects; put a set from a non-causal call".into(),
            ));
        };
        let payload = bytes.len();
        let cache = &self.env.cache;
        let mut step = {
            let core = self.core();
            let mut dots = self.env.dots();
            core.write_causal(key, bytes, cache, &mut dots, now_micros())
        };
        let (key, value, clock) = loop {
            match step {
                WriteStep::Write { key, value, clock } => break (key, value, clock),
                WriteStep::ReadKvs(write) => {
                    count_rereads(1);
                    let stored = cache.refresh(std::slice::from_ref(write.key())).await?;
                    let core = self.core();
                    let mut dots = self.env.dots();
                    step = core.feed_write(write, stored[0].as_ref(), &mut dots, now_micros());
                }
            }
        };
        let _settle = Settle {
            env: &self.env,
            key: key.clone(),
        };
        count_stored(&value, payload);
        cache
            .put_user(key.clone(), value)
            .await
            .map_err(|e| match e {
                KvsError::KindMismatch { .. } => error(
                    ErrorCode::InvalidRequest,
                    format!(
                        "`{key}` holds a non-causal value; causal calls write causal values: {e}"
                    ),
                ),
                e => e.into(),
            })?;
        self.core().wrote(key, clock);
        Ok(())
    }
}

/// A causal write's dot is in flight until its put ends, however it ends (stored, refused,
/// or the function abandoned): the dot table may forget the key only then.
struct Settle<'a> {
    env: &'a ExecEnv,
    key: Key,
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        self.env.dots().settled(&self.key);
    }
}

/// Release the pins of a repeatable-read call at its home (nothing for other modes).
pub fn release(env: &ExecEnv, mode: Consistency, call: CallId, home: Option<&NodeRef>) {
    if mode != Consistency::RepeatableRead {
        return;
    }
    let Some(home) = home else { return };
    if *home == env.me.node {
        env.cache.release_session(call);
        return;
    }
    let to = ActorRef::new(home.clone(), ServiceId::Cache, 0);
    let msg = ReleaseSession { session: call };
    if let Err(e) = env.transport.handle::<ReleaseSession>(to).tell(msg) {
        tracing::debug!(call = %call, cause = %e, "pins not released (they will expire)");
    }
}
