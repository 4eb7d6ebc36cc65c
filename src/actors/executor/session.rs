//! One function's view of state under its call's consistency mode. Every read
//! and write of a running function (`cb.get`, `cb.put`, referenced arguments, a stored
//! result) goes through its [`Session`]; what the session saw travels to the downstream
//! functions in the triggers ([`SessionMeta`]).
//!
//! # Last-writer-wins
//! Reads come from the node's cache; writes are Lww values timestamped by the executor's
//! clock (monotonic per writer).
//!
//! # Distributed-session repeatable read
//! Every read of key `k` in one call returns the same version, on any node. The call's
//! *home* is the node of its first source function (chosen by the scheduler, carried in
//! every schedule). The first read of `k` pins what the home cache returns (or its absence)
//! for the session ([`crate::actors::cache::CacheHandle::session_read`]; first pin wins, so
//! parallel branches agree). The triggers carry which keys are pinned with a fingerprint of
//! the version; a downstream function on another node serves `k` from its own cache when
//! that holds the same version, and otherwise fetches the pinned one from the home cache
//! (never from the KVS). Writes go to the KVS as under LWW but do not change what later
//! reads of the session return. The sink (or the function that fails the call) releases the
//! pins; pins of a vanished call expire after `consistency.session_ttl_ms` unused, and a
//! read after that fails (`session_expired`) instead of returning another version.
//!
//! # Distributed-session causal
//! Values written in this mode are [`MultiKeyCausal`] lattices: a clock, the session's
//! dependencies (key -> clock it read or wrote), the value. A version's clock is its
//! *history*: the set of writes of that key it has seen, plus its own. Each executor node
//! numbers its writes of a key 1, 2, 3, ... (a *dot* `(node, n)`), so a history is a few
//! counters per node, plus single dots where two concurrent sessions on one node wrote the
//! same key (see `VectorClock`). A write's clock is the session's clock of the key plus its
//! new dot: it supersedes exactly the versions the session read or wrote of that key. A
//! blind write, or two sessions that did not see each other, leave concurrent versions:
//! both are kept and a read returns all of them (Python sees a `cloudburst.Concurrent`
//! tuple). Read a key before writing it to replace it. Every clock also carries the write
//! time under a reserved writer ([`WRITE_TIME`]), for garbage collection.
//! - *Session order*: the session's dependencies travel in the triggers; a read of `k`
//!   whose cached version does not cover what the session already read or wrote of `k` is
//!   re-read from the KVS (which has it: writes are acknowledged by every replica).
//! - *Causal cut*: after reading a version, any of its dependencies the cache holds in an
//!   older version is refreshed from the KVS before the read returns, and the dependencies
//!   join the session's (so later reads of those keys cover them).
//! - The sink's write (and every write) carries the session's dependencies.
//!
//! # Metadata bounds (garbage collection)
//! A clock holds one counter per executor node that ever wrote the key (node ids, not
//! incarnations: a restarted node continues its numbering from what the KVS holds), plus
//! the dots of writes concurrent with others of the same node. Dependencies are dropped
//! once older than a horizon `H` (`consistency.causal_horizon_ms`, judged by their write
//! time), so a dependency set holds at most the keys the session's causal past wrote in the
//! last `H`. Why dropping is safe: causal reads only use a cached value confirmed by the
//! KVS within the lease `L` (`causal_lease_ms`, re-read otherwise), and a write older than
//! `H >= L + request timeout` was acknowledged by every KVS replica before that
//! confirmation: every cache that serves the key has seen it. The rule assumes node clocks
//! agree to well within `H - L - timeout`.

use super::env::ExecEnv;
use crate::actors::kvs::KvsError;
use crate::clock::now_micros;
use crate::ids::{hash64, CallId, Key, NodeRef, WriterId};
use crate::lattice::{Dependencies, LatticeValue, MultiKeyCausal, Tombstone, VectorClock};
use crate::net::{ActorRef, ServiceId};
use crate::protocol::{
    to_lattice, Consistency, ErrorCode, ReleaseSession, Schedule, SessionMeta, SessionRead,
    RESERVED_PREFIX,
};
use crate::pyrt::PyValue;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of consistency metadata this process produced: session metadata sent in
/// triggers, plus what stored values carry beyond the pickled value (an Lww timestamp; a
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

/// Feed `v`'s bincode encoding (the wire form) to `out` piece by piece, without building
/// it; false if it cannot be encoded.
fn encode_into<T: serde::Serialize>(v: &T, out: impl FnMut(&[u8])) -> bool {
    struct Sink<F>(F);
    impl<F: FnMut(&[u8])> std::io::Write for Sink<F> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            (self.0)(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    bincode::serde::encode_into_std_write(v, &mut Sink(out), bincode::config::standard()).is_ok()
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

/// Why a session read or write failed; `code` is what the caller (or the function) sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
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

fn error(code: ErrorCode, message: String) -> SessionError {
    SessionError { code, message }
}

/// A 64-bit identity of a stored version, the same on every node (0: missing). An Lww
/// version is named by its timestamp (writers never reuse one) and length, so a large value
/// is not hashed on every repeatable read; other kinds have no version id and are hashed.
pub fn fingerprint(value: Option<&LatticeValue>) -> u64 {
    let fp = match value {
        None => return 0,
        Some(LatticeValue::Lww(l)) => hash64(&[
            &l.timestamp.time.to_le_bytes(),
            &l.timestamp.writer.0.to_le_bytes(),
            &(l.value.len() as u64).to_le_bytes(),
        ]),
        Some(other) => {
            let mut h = Sha256::new();
            if !encode_into(other, |b| h.update(b)) {
                // Unencodable (cannot happen for stored values): never equal to another.
                return u64::MAX;
            }
            let d = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&d[..8]);
            u64::from_le_bytes(first)
        }
    };
    fp.max(1)
}

/// The vector clock of a stored value (empty when missing, deleted or of a kind without
/// one; a value recreated after a delete has its own).
pub fn clock_of(value: Option<&LatticeValue>) -> VectorClock {
    match value.and_then(LatticeValue::live).as_deref() {
        Some(LatticeValue::MultiKeyCausal(m)) => m.clock(),
        Some(LatticeValue::SingleKeyCausal(s)) => s.clock(),
        _ => VectorClock::new(),
    }
}

/// The reserved writer whose counter in a causal clock is the latest write time (µs) in
/// the history (a max register: never above a later write's).
pub const WRITE_TIME: WriterId = WriterId(u64::MAX);

/// The causal writer id of an executor node: stable across restarts (its id, not its
/// generation), never one of the reserved writers.
pub fn causal_writer(node: &NodeRef) -> WriterId {
    WriterId(hash64(&[node.id.as_str().as_bytes()]).clamp(1, u64::MAX - 1))
}

/// `deps` without the dependencies written before `floor` (µs).
pub fn prune(deps: &Dependencies, floor: u64) -> Dependencies {
    deps.iter()
        .filter(|(_, c)| c.get(WRITE_TIME) > floor)
        .map(|(k, c)| (k.clone(), c.clone()))
        .collect()
}

fn payload_len(v: &PyValue) -> usize {
    match v {
        PyValue::Pickled(b) => b.len(),
        PyValue::PickledSet(items) | PyValue::Concurrent(items) => {
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
    meta: Mutex<SessionMeta>,
}

impl Session {
    /// The session of the function `schedule` names, having seen `meta` upstream.
    pub fn new(env: Arc<ExecEnv>, schedule: &Schedule, meta: SessionMeta) -> Self {
        Session {
            mode: schedule.consistency,
            call: schedule.session(),
            home: schedule.home.clone(),
            meta: Mutex::new(meta),
            env,
        }
    }

    /// The consistency mode.
    pub fn mode(&self) -> Consistency {
        self.mode
    }

    fn meta(&self) -> MutexGuard<'_, SessionMeta> {
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What to pass downstream.
    pub fn snapshot(&self) -> SessionMeta {
        self.meta().clone()
    }

    /// Values of `keys`, in order, as the mode allows.
    pub async fn get(&self, keys: &[Key]) -> Result<Vec<Option<LatticeValue>>, SessionError> {
        match self.mode {
            Consistency::Lww => Ok(self.env.cache.get(keys).await?),
            Consistency::RepeatableRead => self.get_repeatable(keys).await,
            Consistency::Causal => self.get_causal(keys).await,
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

    async fn get_repeatable(
        &self,
        keys: &[Key],
    ) -> Result<Vec<Option<LatticeValue>>, SessionError> {
        let home = self.home_cache()?.clone();
        let cache = &self.env.cache;
        if home == self.env.me.node {
            let values = cache.session_read(self.call, keys).await?;
            self.note_pins(keys, &values);
            return Ok(values);
        }
        // Serve from this node's cache what it holds in the pinned version.
        let mut out: Vec<Option<Option<LatticeValue>>> = {
            let meta = self.meta();
            keys.iter()
                .map(|k| match meta.pinned.get(k) {
                    Some(0) => Some(None),
                    Some(&fp) => cache
                        .with_held(k, |v| (fingerprint(Some(v)) == fp).then(|| v.clone()))
                        .flatten()
                        .map(Some),
                    None => None,
                })
                .collect()
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let wanted: Vec<Key> = missing.iter().map(|&i| keys[i].clone()).collect();
            REMOTE_PINNED_READS.fetch_add(wanted.len() as u64, Ordering::Relaxed);
            let to = ActorRef::new(home, ServiceId::Cache, 0);
            let read = SessionRead {
                session: self.call,
                keys: wanted,
            };
            let values = self
                .env
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
                .map_err(|e| error(ErrorCode::StorageError, e))?;
            if values.len() != missing.len() {
                return Err(error(
                    ErrorCode::InternalError,
                    "the home cache answered another number of keys".into(),
                ));
            }
            let meta = self.meta();
            for (i, v) in missing.into_iter().zip(values) {
                if let Some(&fp) = meta.pinned.get(&keys[i]) {
                    if fingerprint(v.as_ref()) != fp {
                        return Err(error(ErrorCode::SessionExpired,
                            format!(
                                "the version of `{}` this call pinned is gone (the session expired)",
                                keys[i]
                            ),
                        ));
                    }
                }
                out[i] = Some(v);
            }
        }
        let values: Vec<Option<LatticeValue>> = out.into_iter().map(Option::flatten).collect();
        self.note_pins(keys, &values);
        Ok(values)
    }

    fn note_pins(&self, keys: &[Key], values: &[Option<LatticeValue>]) {
        let mut meta = self.meta();
        for (k, v) in keys.iter().zip(values) {
            meta.pinned
                .entry(k.clone())
                .or_insert_with(|| fingerprint(v.as_ref()));
        }
    }

    fn floor(&self) -> u64 {
        now_micros().saturating_sub(self.env.causal.horizon.as_micros() as u64)
    }

    async fn get_causal(&self, keys: &[Key]) -> Result<Vec<Option<LatticeValue>>, SessionError> {
        let cache = &self.env.cache;
        let mut values = cache.get_confirmed(keys, self.env.causal.lease).await?;
        // Session order: cover what the session already saw of each key.
        let mut clocks: Vec<VectorClock> = values.iter().map(|v| clock_of(v.as_ref())).collect();
        let behind: Vec<usize> = {
            let meta = self.meta();
            (0..keys.len())
                .filter(|&i| {
                    meta.deps
                        .get(&keys[i])
                        .is_some_and(|need| !clocks[i].covers(need))
                })
                .collect()
        };
        if !behind.is_empty() {
            let again: Vec<Key> = behind.iter().map(|&i| keys[i].clone()).collect();
            count_rereads(again.len());
            let fresh = cache.refresh(&again).await?;
            let meta = self.meta();
            for (i, v) in behind.into_iter().zip(fresh) {
                let clock = clock_of(v.as_ref());
                if meta
                    .deps
                    .get(&keys[i])
                    .is_some_and(|need| !clock.covers(need))
                {
                    return Err(error(
                        ErrorCode::StorageError,
                        format!(
                            "the store does not have the version of `{}` this session depends on",
                            keys[i]
                        ),
                    ));
                }
                values[i] = v;
                clocks[i] = clock;
            }
        }
        // Causal cut: dependencies this cache holds in an older version are refreshed; the
        // dependencies (and what was read) join the session's.
        let floor = self.floor();
        let mut stale: Vec<Key> = Vec::new();
        {
            let mut meta = self.meta();
            for ((k, v), clock) in keys.iter().zip(&values).zip(clocks) {
                if let Some(LatticeValue::MultiKeyCausal(m)) =
                    v.as_ref().and_then(|v| v.live()).as_deref()
                {
                    for (_, version) in m.versions().iter() {
                        for (dk, dc) in version.dependencies.iter() {
                            let recent = dc.get(WRITE_TIME) > floor;
                            if !recent || meta.deps.get(dk).is_some_and(|c| c.covers(dc)) {
                                continue; // expired, or already checked in this session
                            }
                            let held_behind = cache
                                .with_held(dk, |held| !clock_of(Some(held)).covers(dc))
                                .unwrap_or(false);
                            if held_behind && !stale.contains(dk) {
                                stale.push(dk.clone());
                            }
                            meta.deps.merge_entry(dk.clone(), dc.clone());
                        }
                    }
                }
                if !clock.is_empty() {
                    meta.deps.merge_entry(k.clone(), clock);
                }
            }
            if meta.deps.iter().any(|(_, c)| c.get(WRITE_TIME) <= floor) {
                meta.deps = prune(&meta.deps, floor);
            }
        }
        if !stale.is_empty() {
            count_rereads(stale.len());
            cache.refresh(&stale).await?;
        }
        Ok(values)
    }

    async fn put_causal(&self, key: Key, value: PyValue) -> Result<(), SessionError> {
        let PyValue::Pickled(bytes) = value else {
            return Err(error(
                ErrorCode::InvalidRequest,
                "causal mode stores single objects; put a set from a non-causal call".into(),
            ));
        };
        let floor = self.floor();
        let me = self.env.causal_writer;
        let seen = self.meta().deps.get(&key).cloned().unwrap_or_default();
        // This node's next dot for the key: above any of its dots the session, the cache
        // or (the first time since this node started) the KVS knows of.
        let mut known = seen.max_dot(me);
        if let Some(held) = self
            .env
            .cache
            .with_held(&key, |v| clock_of(Some(v)).max_dot(me))
        {
            known = known.max(held);
        }
        if !self.env.knows_seq(&key) {
            count_rereads(1);
            let stored = self.env.cache.refresh(std::slice::from_ref(&key)).await?;
            known = known.max(clock_of(stored[0].as_ref()).max_dot(me));
        }
        let seq = self.env.next_seq(&key, known);
        let (clock, deps) = {
            let meta = self.meta();
            let mut clock = seen;
            clock.insert_dot(me, seq);
            clock.advance_to(WRITE_TIME, now_micros());
            let deps: Dependencies = meta
                .deps
                .iter()
                .filter(|(k, c)| **k != key && c.get(WRITE_TIME) > floor)
                .map(|(k, c)| (k.clone(), c.clone()))
                .collect();
            (clock, deps)
        };
        let payload = bytes.len();
        let v = LatticeValue::MultiKeyCausal(MultiKeyCausal::new(clock.clone(), deps, bytes));
        count_stored(&v, payload);
        self.env
            .cache
            .put_user(key.clone(), v)
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
        self.meta().deps.merge_entry(key, clock);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Generation, NodeId};
    use crate::lattice::{Lww, Timestamp};
    use bytes::Bytes;

    fn lww(time: u64, v: &'static str) -> Option<LatticeValue> {
        Some(LatticeValue::Lww(Lww::new(
            Timestamp::new(time, WriterId(7)),
            Bytes::from_static(v.as_bytes()),
        )))
    }

    #[test]
    fn fingerprints_name_versions() {
        assert_eq!(fingerprint(None), 0, "missing");
        assert_eq!(
            fingerprint(lww(1, "a").as_ref()),
            fingerprint(lww(1, "a").as_ref())
        );
        assert_ne!(
            fingerprint(lww(1, "a").as_ref()),
            fingerprint(lww(2, "a").as_ref())
        );
        assert_ne!(fingerprint(lww(1, "a").as_ref()), 0);
        let causal = |v: &'static str| {
            let clock = VectorClock::from_iter([(WriterId(3), 1)]);
            Some(LatticeValue::MultiKeyCausal(MultiKeyCausal::new(
                clock,
                Dependencies::new(),
                Bytes::from_static(v.as_bytes()),
            )))
        };
        assert_ne!(
            fingerprint(causal("a").as_ref()),
            fingerprint(causal("b").as_ref())
        );
        assert_eq!(
            fingerprint(causal("a").as_ref()),
            fingerprint(causal("a").as_ref())
        );
    }

    #[test]
    fn old_dependencies_are_dropped() {
        let at = |t: u64| VectorClock::from_iter([(WriterId(3), 1), (WRITE_TIME, t)]);
        let deps: Dependencies = [(Key::new("old"), at(100)), (Key::new("new"), at(300))]
            .into_iter()
            .collect();
        let kept = prune(&deps, 200);
        let keys: Vec<&str> = kept.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, vec!["new"]);
        assert_eq!(prune(&deps, 0).len(), 2);
    }

    #[test]
    fn causal_writers_are_stable_and_never_reserved() {
        let node = |g| NodeRef {
            id: NodeId::new("n1"),
            generation: Generation(g),
        };
        assert_eq!(
            causal_writer(&node(1)),
            causal_writer(&node(2)),
            "restarts keep it"
        );
        let w = causal_writer(&node(1));
        assert!(w != crate::lattice::BASE && w != WRITE_TIME);
    }
}
