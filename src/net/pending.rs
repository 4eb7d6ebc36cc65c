//! Requests sent on a link and not yet answered, and their timeouts.
//!
//! Every request has a deadline, but it does not get a tokio timer of its own (registering
//! and removing one costs about a microsecond a request, a few percent of a loopback round
//! trip). Instead one sweeper task per link sleeps until the earliest deadline it knows of,
//! fails what has expired with `Timeout`, and sleeps again. A request whose deadline is
//! earlier than the sweeper's wake-up time re-arms it; with the usual single request
//! timeout deadlines only grow, so a busy link costs the sweeper one wake-up per timeout
//! period, and an idle link none.

use crate::net::error::NetError;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// A response as the waiting caller sees it: `ok` says whether the payload is the reply or a
/// [`NetError`].
pub(crate) type Response = Result<(bool, Bytes), NetError>;
type ResponseSlot = oneshot::Sender<Response>;

struct Waiter {
    slot: ResponseSlot,
    /// `None`: waits as long as the connection lives (a timeout too large to represent).
    deadline: Option<Instant>,
}

#[derive(Default)]
struct Waiting {
    by_corr: HashMap<u64, Waiter>,
    /// When the sweeper will look next (`None`: it waits to be told). Every deadline in
    /// `by_corr` is at or after it.
    next_sweep: Option<Instant>,
}

/// Requests sent on a link and not yet answered, by correlation id.
#[derive(Default)]
pub(crate) struct Pending {
    next: AtomicU64,
    waiting: Mutex<Waiting>,
    /// Tells the sweeper a deadline earlier than its wake-up time arrived.
    rearm: Notify,
}

impl Pending {
    /// A fresh correlation id and the receiver its response will arrive on; if it has not
    /// arrived by `deadline`, the sweeper sends `Timeout` instead.
    pub(crate) fn insert(&self, deadline: Option<Instant>) -> (u64, oneshot::Receiver<Response>) {
        let corr = self.next.fetch_add(1, Ordering::Relaxed);
        let (slot, rx) = oneshot::channel();
        let rearm = {
            let mut w = self.lock();
            w.by_corr.insert(corr, Waiter { slot, deadline });
            match deadline {
                Some(d) if w.next_sweep.is_none_or(|s| d < s) => {
                    w.next_sweep = Some(d);
                    true
                }
                _ => false,
            }
        };
        if rearm {
            self.rearm.notify_one();
        }
        (corr, rx)
    }

    /// Forget a request (timed out, or its caller gave up).
    pub(crate) fn cancel(&self, corr: u64) {
        self.lock().by_corr.remove(&corr);
    }

    /// Hand a response to its caller; false if nobody waits for it (e.g. it timed out).
    pub(crate) fn complete(&self, corr: u64, ok: bool, payload: Bytes) -> bool {
        let waiter = self.lock().by_corr.remove(&corr);
        match waiter {
            Some(w) => w.slot.send(Ok((ok, payload))).is_ok(),
            None => false,
        }
    }

    /// Fail every waiting request with `err`; returns how many there were.
    pub(crate) fn fail_all(&self, err: &NetError) -> usize {
        let drained: Vec<Waiter> = self.lock().by_corr.drain().map(|(_, w)| w).collect();
        let n = drained.len();
        for w in drained {
            let _ = w.slot.send(Err(err.clone()));
        }
        n
    }

    /// Fail the requests whose deadline is at or before `now` with `Timeout`; returns when
    /// to look again (`None`: nothing has a deadline).
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut w = self.lock();
        let mut next: Option<Instant> = None;
        let mut expired = Vec::new();
        for (corr, waiter) in &w.by_corr {
            match waiter.deadline {
                Some(d) if d <= now => expired.push(*corr),
                Some(d) => next = Some(next.map_or(d, |n| n.min(d))),
                None => {}
            }
        }
        let slots: Vec<ResponseSlot> = expired
            .iter()
            .filter_map(|corr| w.by_corr.remove(corr))
            .map(|waiter| waiter.slot)
            .collect();
        w.next_sweep = next;
        drop(w);
        for slot in slots {
            let _ = slot.send(Err(NetError::Timeout));
        }
        next
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sweeper of one link's pending requests; ends on `shutdown`.
pub(crate) async fn sweep(pending: &Pending, shutdown: &CancellationToken) {
    loop {
        let wake_at = pending.expire(Instant::now());
        let sleep = async {
            match wake_at {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = pending.rearm.notified() => {}
            _ = sleep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expired_requests_get_timeout_and_the_rest_wait() {
        let p = Pending::default();
        let t0 = Instant::now();
        let (_, mut soon) = p.insert(Some(t0 + Duration::from_millis(10)));
        let (_, mut later) = p.insert(Some(t0 + Duration::from_millis(20)));
        let (_, mut never) = p.insert(None);
        assert_eq!(
            p.expire(t0 + Duration::from_millis(10)),
            Some(t0 + Duration::from_millis(20))
        );
        assert_eq!(soon.try_recv(), Ok(Err(NetError::Timeout)));
        assert!(later.try_recv().is_err(), "not due yet");
        assert_eq!(p.expire(t0 + Duration::from_millis(30)), None);
        assert_eq!(later.try_recv(), Ok(Err(NetError::Timeout)));
        assert!(never.try_recv().is_err(), "no deadline: still waiting");
        assert_eq!(p.fail_all(&NetError::ConnectionLost), 1);
    }

    #[test]
    fn an_earlier_deadline_rearms_the_sweeper_and_a_later_one_does_not() {
        let p = Pending::default();
        let t0 = Instant::now();
        let _first = p.insert(Some(t0 + Duration::from_secs(5)));
        assert_eq!(p.lock().next_sweep, Some(t0 + Duration::from_secs(5)));
        let _later = p.insert(Some(t0 + Duration::from_secs(6)));
        assert_eq!(p.lock().next_sweep, Some(t0 + Duration::from_secs(5)));
        let _earlier = p.insert(Some(t0 + Duration::from_secs(1)));
        assert_eq!(p.lock().next_sweep, Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn answered_and_cancelled_requests_leave_no_entry() {
        let p = Pending::default();
        let (a, mut rx) = p.insert(Some(Instant::now()));
        let (b, _rx_b) = p.insert(None);
        assert!(p.complete(a, true, Bytes::from_static(b"x")));
        assert!(matches!(rx.try_recv(), Ok(Ok((true, _)))));
        assert!(!p.complete(a, true, Bytes::new()), "answered once only");
        p.cancel(b);
        assert!(p.lock().by_corr.is_empty());
    }
}
