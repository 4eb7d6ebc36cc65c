//! Leasing workers out of a [`super::PythonPool`]: the bounded wait for an idle worker,
//! the lease that returns or replaces it, and the background replacement of dead workers.

use super::pool::Inner;
use super::process::{self, Worker};
use super::CallError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::TryAcquireError;
use tracing::{error, warn};

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
            warn!(
                worker = w.index,
                "python call abandoned mid-call; replacing its worker"
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
    dead.kill().await;
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
