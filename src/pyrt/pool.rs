//! [`PythonPool`]: a fixed number of worker processes, a bounded queue of waiting calls,
//! timeouts enforced by killing, and replacement of dead workers in the background.

use super::lease::{checkout, spawn_or_drop, Waits};
use super::process::{self, Broken, Worker};
use super::sockdir;
use super::{CallError, PyCall, PyEnvironment, PyRuntimeError, PyValue, UserLibrary};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Largest frame between pool and worker (a call's body plus arguments, a result, a value
/// got or put): values of tens of MB must work; beyond this a call fails with
/// [`CallError::TooLarge`] instead of the pool buffering without bound.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 << 20;
/// Calls allowed to wait for a busy pool. Beyond it a call fails fast with
/// [`CallError::Overloaded`], so the scheduler can place it elsewhere rather than let an
/// executor's backlog (and memory) grow without bound.
pub const DEFAULT_MAX_QUEUED: usize = 1024;
/// Longest a call waits in the queue before [`CallError::Unavailable`] (e.g. every worker
/// keeps failing to start).
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(60);
/// How long `shutdown` waits for in-flight calls and replacements to wind down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How to run a pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Worker processes; 0 = one per core.
    pub workers: usize,
    /// The `cloudburst` binary (run as `cloudburst worker ...`).
    pub worker_exe: PathBuf,
    /// See [`DEFAULT_MAX_FRAME_BYTES`].
    pub max_frame_bytes: usize,
    /// See [`DEFAULT_MAX_QUEUED`].
    pub max_queued: usize,
    /// See [`DEFAULT_QUEUE_WAIT`].
    pub queue_wait: Duration,
    /// The Python program the workers embed (passed to each on its command line); `None`
    /// = this process's `CLOUDBURST_PYTHON`, else the build-time venv python. Checked
    /// before the workers start (see [`super::probe`]).
    pub python: Option<PathBuf>,
    /// Whose pool this is (the node id): its socket directory is named after it, and at
    /// start the directories a dead process of the same owner left behind are removed.
    pub owner: Option<String>,
    /// Workers started beyond `workers` while workers wait on the platform and calls
    /// queue (see [`DEFAULT_MAX_EXTRA`]).
    pub max_extra: usize,
    /// The only variables of this process's environment the workers (and functions) see;
    /// `CLOUDBURST_*` ones are dropped even if named.
    pub env_allow: Vec<String>,
    /// Address-space limit of each worker, if any (`executor.worker_memory_bytes`).
    pub memory_bytes: Option<u64>,
    /// Who functions run as, what they must not see (see [`super::confine`]).
    pub confinement: super::confine::Confinement,
}

/// Extra workers by default: enough for a few dozen functions that wait for each other on
/// one node (each is a Python process of tens of MB).
pub const DEFAULT_MAX_EXTRA: usize = 32;

impl PoolConfig {
    /// `workers` processes of `worker_exe`, default limits.
    pub fn new(workers: usize, worker_exe: impl Into<PathBuf>) -> Self {
        PoolConfig {
            workers,
            worker_exe: worker_exe.into(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_queued: DEFAULT_MAX_QUEUED,
            queue_wait: DEFAULT_QUEUE_WAIT,
            python: None,
            owner: None,
            env_allow: crate::config::DEFAULT_WORKER_ENV
                .iter()
                .map(|s| s.to_string())
                .collect(),
            memory_bytes: None,
            confinement: Default::default(),
            max_extra: DEFAULT_MAX_EXTRA,
        }
    }

    /// From the node's config, running `worker_exe` (usually `std::env::current_exe()`):
    /// its `[executor]` section, and the paths functions must not see (the user's
    /// Cloudburst config directory, the data directory, the files secrets came from).
    pub fn from_config(cfg: &crate::config::Config, worker_exe: impl Into<PathBuf>) -> Self {
        let e = &cfg.executor;
        let hide = crate::config::user_config_dir()
            .into_iter()
            .chain(cfg.node.data_dir.clone())
            .chain(cfg.private_paths.iter().cloned())
            .collect();
        PoolConfig {
            python: e.python.clone(),
            max_extra: e.max_extra_workers,
            env_allow: e.worker_env.clone(),
            memory_bytes: (e.worker_memory_bytes > 0).then_some(e.worker_memory_bytes),
            confinement: super::confine::Confinement {
                user: e.worker_user(),
                hide,
            },
            ..Self::new(e.workers, worker_exe)
        }
    }

    fn resolved(mut self) -> Result<Self, PyRuntimeError> {
        if self.python.is_none() {
            self.python = Some(super::interp::python_program());
        }
        if self.workers == 0 {
            self.workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > u32::MAX as usize {
            return Err(PyRuntimeError::Config(format!(
                "max_frame_bytes must be between 1 KiB and 4 GiB, not {}",
                self.max_frame_bytes
            )));
        }
        Ok(self)
    }
}

/// A pool of Python worker processes. Cheap to clone (all clones share the pool); the
/// workers are killed by [`PythonPool::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct PythonPool {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) cfg: PoolConfig,
    pub(super) env: PyEnvironment,
    /// Private directory (0700) for the workers' sockets; removed on drop.
    pub(super) sockdir: tempfile::TempDir,
    pub(super) idle: Mutex<Vec<Worker>>,
    /// One permit per idle worker; FIFO, so waiting calls are served in order.
    pub(super) available: Semaphore,
    pub(super) waiting: AtomicUsize,
    pub(super) busy: AtomicUsize,
    /// Workers whose running function waits on the platform now.
    pub(super) blocked: AtomicUsize,
    /// Extra workers alive or starting (at most `cfg.max_extra`).
    pub(super) extra: AtomicUsize,
    /// Leases plus replacements being started: what `shutdown` waits for.
    pub(super) active: AtomicUsize,
    pub(super) wound_down: Notify,
    pub(super) next_seq: AtomicU64,
    pub(super) closed: CancellationToken,
}

impl PythonPool {
    /// Start `cfg.workers` workers and wait until all are ready.
    pub async fn start(cfg: PoolConfig) -> Result<PythonPool, PyRuntimeError> {
        let cfg = cfg.resolved()?;
        if let Some(owner) = &cfg.owner {
            for dir in sockdir::sweep(&std::env::temp_dir(), owner) {
                info!(dir = %dir.display(), "removed the socket directory of a dead pool");
            }
        }
        let sockdir = sockdir::create(cfg.owner.as_deref()).map_err(PyRuntimeError::Socket)?;
        // The chosen Python is checked while the workers start (a new executor node is
        // ready sooner); when the check fails, its error is the one reported.
        let probe = async {
            match &cfg.python {
                Some(python) => super::probe::check(python).await.map(|found| {
                    tracing::info!(python = %python.display(), version = %found.python,
                        cloudpickle = found.cloudpickle.as_deref().unwrap_or(""), "executors' python checked");
                }),
                None => Ok(()),
            }
        };
        let spawned = futures::future::join_all(
            (0..cfg.workers).map(|i| process::spawn(&cfg, sockdir.path(), i, i as u64)),
        );
        let (probed, started) = futures::join!(probe, spawned);
        let mut workers = Vec::with_capacity(started.len());
        let mut failure = probed.err();
        for s in started {
            match s {
                Ok(w) => workers.push(w),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        let env = match (failure, workers.first()) {
            (None, Some((_, env))) => env.clone(),
            (failure, _) => {
                futures::future::join_all(workers.into_iter().map(|(w, _)| w.kill())).await;
                return Err(failure.unwrap_or(PyRuntimeError::Config("no workers".into())));
            }
        };
        if let Some((_, other)) = workers.iter().find(|(_, e)| *e != env) {
            let msg = format!("{env:?} vs {other:?}");
            futures::future::join_all(workers.into_iter().map(|(w, _)| w.kill())).await;
            return Err(PyRuntimeError::Mismatch(msg));
        }
        let n = workers.len();
        let inner = Arc::new(Inner {
            env,
            sockdir,
            idle: Mutex::new(workers.into_iter().map(|(w, _)| w).collect()),
            available: Semaphore::new(n),
            waiting: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            blocked: AtomicUsize::new(0),
            extra: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            wound_down: Notify::new(),
            next_seq: AtomicU64::new(n as u64),
            closed: CancellationToken::new(),
            cfg,
        });
        Ok(PythonPool { inner })
    }

    /// Run one call on an idle worker (waiting in the queue if all are busy). Dropping the
    /// future stops the call: while it waits, at once; while it runs, by killing its worker
    /// (a replacement starts in the background).
    pub async fn call(
        &self,
        call: PyCall,
        lib: Arc<dyn UserLibrary>,
    ) -> Result<PyValue, CallError> {
        let mut lease = checkout(&self.inner).await?;
        let waits = Waits::new(&self.inner);
        let stop = {
            let worker = lease.worker();
            tokio::select! {
                biased;
                _ = self.inner.closed.cancelled() => Stop::ShutDown,
                r = tokio::time::timeout(call.timeout, worker.call(&call, &*lib, &waits)) => match r {
                    Ok(Ok(outcome)) => Stop::Done(outcome),
                    Ok(Err(Broken(why))) => Stop::Crashed(why),
                    Err(_) => Stop::Timeout,
                },
            }
        };
        drop(waits);
        let function = &call.function.name;
        match stop {
            Stop::Done(Err(CallError::MemoryLimit)) => {
                warn!(worker = lease.index(), function = %function,
                    "python function ran out of the worker's memory limit; replacing the worker");
                lease.replace();
                Err(CallError::MemoryLimit)
            }
            Stop::Done(outcome) => {
                lease.release();
                outcome
            }
            Stop::Timeout => {
                warn!(worker = lease.index(), function = %function, timeout = ?call.timeout,
                    "python function timed out; killing its worker");
                lease.replace();
                Err(CallError::Timeout {
                    after: call.timeout,
                })
            }
            Stop::Crashed(why) => {
                warn!(worker = lease.index(), function = %function, cause = %why,
                    "python worker crashed; replacing it");
                lease.replace();
                Err(CallError::WorkerCrashed(why))
            }
            Stop::ShutDown => {
                lease.kill_now().await;
                Err(CallError::ShutDown)
            }
        }
    }

    /// The Python the workers run (read from a worker at start).
    pub fn environment(&self) -> &PyEnvironment {
        &self.inner.env
    }

    /// Fraction of workers running a call now, in `0.0..=1.0` (extra workers count as
    /// the pool being full).
    pub fn utilisation(&self) -> f64 {
        let busy = self.inner.busy.load(Ordering::Relaxed) as f64;
        (busy / self.inner.cfg.workers as f64).min(1.0)
    }

    /// Extra workers alive or starting now (see [`PoolConfig::max_extra`]).
    pub fn extra_workers(&self) -> usize {
        self.inner.extra.load(Ordering::Relaxed)
    }

    /// Number of worker processes.
    pub fn workers(&self) -> usize {
        self.inner.cfg.workers
    }

    /// Calls waiting for a worker now.
    pub fn queued(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Refuse new calls, stop in-flight ones (`CallError::ShutDown`), kill and reap every
    /// worker. Idempotent.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.closed.cancel();
        inner.available.close();
        let idle = std::mem::take(&mut *inner.lock_idle());
        futures::future::join_all(idle.into_iter().map(Worker::kill)).await;
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        loop {
            let wound_down = inner.wound_down.notified();
            if inner.active.load(Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, wound_down).await.is_err() {
                warn!(
                    active = inner.active.load(Ordering::Acquire),
                    "python pool shutdown timed out"
                );
                return;
            }
        }
    }
}

impl std::fmt::Debug for PythonPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonPool")
            .field("workers", &self.workers())
            .field("busy", &self.inner.busy.load(Ordering::Relaxed))
            .field("queued", &self.queued())
            .field("python", &self.inner.env.python)
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Idle workers are killed as their `Child` drops (kill_on_drop).
        self.closed.cancel();
    }
}

impl Inner {
    pub(super) fn lock_idle(&self) -> MutexGuard<'_, Vec<Worker>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Give a healthy worker back (or kill it if the pool is closed, or retire it if it is
    /// an extra worker no call waits for).
    pub(super) fn checkin(&self, worker: Worker) {
        if self.closed.is_cancelled() {
            spawn_or_drop(worker.kill());
            return;
        }
        if worker.extra && self.waiting.load(Ordering::Acquire) == 0 {
            self.extra.fetch_sub(1, Ordering::AcqRel);
            spawn_or_drop(worker.kill());
            return;
        }
        self.lock_idle().push(worker);
        self.available.add_permits(1);
    }

    pub(super) fn leave(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.wound_down.notify_waiters();
        }
    }
}

enum Stop {
    Done(Result<PyValue, CallError>),
    Timeout,
    Crashed(String),
    ShutDown,
}
