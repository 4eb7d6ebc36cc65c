//! Leasing workers out of a [`super::PythonPool`]: the bounded wait for an idle worker,
//! the lease that returns or replaces it, the background replacement of dead workers, and
//! extra workers while workers wait on the platform.
//!
//! Extra workers: a function that waits for another (looping on `recv`, or on `get` of a
//! key another function will write) holds its worker; if every worker is held so and the
//! others' calls queue, nothing would ever run them. So while calls queue, the pool starts
//! one extra worker per worker waiting on the platform, up to `max_extra`. An extra worker
//! that finishes a call when no call queues is retired; one that dies is not replaced.

use super::pool::Inner;
use super::process::{self, Waiting, Worker};
use super::CallError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::TryAcquireError;
use tracing::{error, info, warn};

/// First and longest delay between attempts to start a replacement worker.
const RESPAWN_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Take an idle worker, waiting in the bounded queue if there is none.
pub(super) async fn checkout(inner: &Arc<Inner>) -> Result<Lease, CallError> {
    loop {
        let permit = match inner.available.try_acquire() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Err(CallError::ShutDown),
            Err(TryAcquireError::NoPermits) => {
                let _queued = QueueSlot::take(&inner.waiting, inner.cfg.max_queued)
                    .ok_or(CallError::Overloaded)?;
                grow(inner);
                match tokio::time::timeout(inner.cfg.queue_wait, inner.available.acquire()).await {
                    Err(_) => {
                        return Err(CallError::Unavailable {
                            waited: inner.cfg.queue_wait,
                        })
                    }
                    Ok(Err(_)) => return Err(CallError::ShutDown),
                    Ok(Ok(p)) => p,
                }
            }
        };
        permit.forget();
        let Some(worker) = inner.lock_idle().pop() else {
            error!("python pool: a permit without an idle worker (bug)");
            return Err(CallError::Unavailable {
                waited: Duration::ZERO,
            });
        };
        inner.busy.fetch_add(1, Ordering::Relaxed);
        inner.active.fetch_add(1, Ordering::AcqRel);
        let mut lease = Lease {
            worker: Some(worker),
            inner: inner.clone(),
        };
        if lease.worker().has_exited() {
            warn!(
                worker = lease.index(),
                "idle python worker had exited; replacing it"
            );
            lease.replace();
            continue;
        }
        return Ok(lease);
    }
}

/// Whether one call's function waits on the platform, kept in the pool's `blocked` count
/// (and taken out of it when the call ends).
pub(super) struct Waits<'a> {
    inner: &'a Arc<Inner>,
    on: AtomicBool,
}

impl<'a> Waits<'a> {
    pub(super) fn new(inner: &'a Arc<Inner>) -> Self {
        Waits {
            inner,
            on: AtomicBool::new(false),
        }
    }
}

impl Waiting for Waits<'_> {
    fn waiting(&self, on_platform: bool) {
        if self.on.swap(on_platform, Ordering::AcqRel) == on_platform {
            return;
        }
        if on_platform {
            self.inner.blocked.fetch_add(1, Ordering::AcqRel);
            grow(self.inner);
        } else {
            self.inner.blocked.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Waits<'_> {
    fn drop(&mut self) {
        if *self.on.get_mut() {
            self.inner.blocked.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Start an extra worker if calls queue while more workers wait on the platform than
/// extra workers exist (bounded by `max_extra`).
fn grow(inner: &Arc<Inner>) {
    let reserved = inner
        .extra
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |extra| {
            let wanted = inner
                .blocked
                .load(Ordering::Acquire)
                .min(inner.cfg.max_extra);
            let queued = inner.waiting.load(Ordering::Acquire) > 0;
            (queued && extra < wanted && !inner.closed.is_cancelled()).then_some(extra + 1)
        });
    if let Ok(extra) = reserved {
        inner.active.fetch_add(1, Ordering::AcqRel);
        spawn_or_drop(start_extra(Arc::downgrade(inner), extra));
    }
}

/// Start extra worker number `n` (counted in `extra` and `active` by the caller) and give
/// it to the queue.
async fn start_extra(pool: Weak<Inner>, n: usize) {
    let Some(inner) = pool.upgrade() else { return };
    let index = inner.cfg.workers + n;
    let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
    let started = tokio::select! {
        biased;
        _ = inner.closed.cancelled() => None,
        s = process::spawn(&inner.cfg, inner.sockdir.path(), index, seq) => Some(s),
    };
    match started {
        Some(Ok((mut worker, _))) => {
            tracing::info!(
                worker = index,
                "extra python worker started: workers wait on the platform while calls queue"
            );
            worker.extra = true;
            inner.checkin(worker);
        }
        Some(Err(e)) => {
            warn!(worker = index, cause = %e, "starting an extra python worker failed");
            inner.extra.fetch_sub(1, Ordering::AcqRel);
        }
        None => {
            inner.extra.fetch_sub(1, Ordering::AcqRel);
        }
    }
    inner.leave();
}

/// A place in the queue of waiting calls, released on drop.
struct QueueSlot<'a>(&'a AtomicUsize);

impl<'a> QueueSlot<'a> {
    fn take(waiting: &'a AtomicUsize, max: usize) -> Option<Self> {
        let before = waiting.fetch_add(1, Ordering::AcqRel);
        let slot = QueueSlot(waiting);
        (before < max).then_some(slot)
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A worker checked out for one call. Dropped without `release` (the caller's future was
/// cancelled mid-call), the worker's state is unknown, so it is replaced.
pub(super) struct Lease {
    worker: Option<Worker>,
    inner: Arc<Inner>,
}

impl Lease {
    pub(super) fn worker(&mut self) -> &mut Worker {
        self.worker
            .as_mut()
            .expect("a lease holds its worker until it ends")
    }

    pub(super) fn index(&self) -> usize {
        self.worker.as_ref().map_or(usize::MAX, |w| w.index)
    }

    pub(super) fn release(mut self) {
        if let Some(w) = self.worker.take() {
            self.inner.checkin(w);
        }
    }

    pub(super) fn replace(mut self) {
        if let Some(w) = self.worker.take() {
            self.inner.active.fetch_add(1, Ordering::AcqRel);
            spawn_or_drop(replace(Arc::downgrade(&self.inner), w));
        }
    }

    pub(super) async fn kill_now(mut self) {
        if let Some(w) = self.worker.take() {
            w.kill().await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            info!(
                worker = w.index,
                "python call stopped mid-call (its caller cancelled it); replacing its worker"
            );
            self.inner.active.fetch_add(1, Ordering::AcqRel);
            spawn_or_drop(replace(Arc::downgrade(&self.inner), w));
        }
        self.inner.busy.fetch_sub(1, Ordering::Relaxed);
        self.inner.leave();
    }
}

/// Kill a worker, then start its replacement, retrying with backoff until it is ready or
/// the pool is closed or gone. Counted in `active` by the caller.
async fn replace(pool: Weak<Inner>, dead: Worker) {
    let index = dead.index;
    let extra = dead.extra;
    dead.kill().await;
    if extra {
        // Not replaced: the pool grows again if functions still wait.
        if let Some(inner) = pool.upgrade() {
            inner.extra.fetch_sub(1, Ordering::AcqRel);
            inner.leave();
        }
        return;
    }
    let mut delay = RESPAWN_BACKOFF.0;
    loop {
        let Some(inner) = pool.upgrade() else { return };
        let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let started = tokio::select! {
            biased;
            _ = inner.closed.cancelled() => break inner.leave(),
            s = process::spawn(&inner.cfg, inner.sockdir.path(), index, seq) => s,
        };
        match started {
            Ok((worker, env)) => {
                if env != inner.env {
                    warn!(worker = index, python = %env.version, "replacement worker runs a different python");
                }
                inner.checkin(worker);
                break inner.leave();
            }
            Err(e) => {
                warn!(worker = index, cause = %e, retry_in = ?delay, "starting a replacement python worker failed")
            }
        }
        drop(inner);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RESPAWN_BACKOFF.1);
    }
}

/// Run a clean-up future on the current tokio runtime; without one, dropping is the best we
/// can do (kill_on_drop still kills the process).
pub(super) fn spawn_or_drop(f: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(f);
        }
        Err(_) => error!("no tokio runtime to replace a python worker on"),
    }
}
