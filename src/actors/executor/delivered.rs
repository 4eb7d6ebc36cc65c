//! Deliveries told in batches: when a call's sink delivered its result, the scheduler that
//! placed the call must learn it (to forget the call), but not at once. The executor keeps
//! the deliveries of a short while ([`DELIVERED_DELAY`]) and tells the scheduler all of
//! them in one [`AttemptsDelivered`], so the call path pays no message per call (a message
//! per call cost the node's single actor thread ~1–2 µs on the call's critical path).
//! Failures are told at once, alone: the scheduler acts on them.
//!
//! Only deliveries to a scheduler of this node are batched. Until a scheduler is told, it
//! keeps the call, and would run it again if an executor of the call were gone: a batch
//! lost with its executor (a killed node) would make a remote scheduler re-run delivered
//! calls, but a scheduler of the same node dies with the batch. A scheduler of another
//! node is told at once ([`crate::protocol::AttemptEnded`]). A drain waits for the batch
//! to go (the executor's load counts it), and stopping the executor sends it.

use crate::ids::CallId;
use crate::net::{ActorRef, Transport};
use crate::protocol::AttemptsDelivered;
use std::sync::Mutex;
use std::time::Duration;

/// How long a delivery may wait to be told: short against failure detection (an executor
/// death is noticed after seconds), long against the time of a call (~0.1 ms), so a busy
/// executor tells many at once.
pub const DELIVERED_DELAY: Duration = Duration::from_millis(2);
/// Deliveries waiting at most; a batch this large is told at once (bounds the memory and
/// the message: ~16 bytes each).
pub const MAX_DELIVERED_BATCH: usize = 1024;

/// Deliveries not told yet, per scheduler (usually one).
#[derive(Debug, Default)]
pub struct Delivered {
    pending: Mutex<Batches>,
}

#[derive(Debug, Default)]
struct Batches {
    per_scheduler: Vec<(ActorRef, Vec<(CallId, u32)>)>,
    count: usize,
}

/// What the caller of [`Delivered::add`] must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Nothing: a flush is due already.
    Waits,
    /// The first one waiting: flush after [`DELIVERED_DELAY`].
    First,
    /// The batch is full: flush now.
    Full,
}

impl Delivered {
    /// Attempt `attempt` of `call`, placed by `scheduler`, delivered its result.
    pub fn add(&self, scheduler: &ActorRef, call: CallId, attempt: u32) -> Added {
        let mut b = self.lock();
        match b.per_scheduler.iter_mut().find(|(s, _)| s == scheduler) {
            Some((_, calls)) => calls.push((call, attempt)),
            None => b
                .per_scheduler
                .push((scheduler.clone(), vec![(call, attempt)])),
        }
        b.count += 1;
        match b.count {
            1 => Added::First,
            n if n >= MAX_DELIVERED_BATCH => Added::Full,
            _ => Added::Waits,
        }
    }

    /// Deliveries not told yet.
    pub fn len(&self) -> usize {
        self.lock().count
    }

    /// Whether every delivery was told.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tell every scheduler its waiting deliveries (one message each).
    pub fn flush(&self, transport: &Transport) {
        let batches = std::mem::take(&mut *self.lock()).per_scheduler;
        for (scheduler, attempts) in batches {
            let n = attempts.len();
            let msg = AttemptsDelivered { attempts };
            if let Err(e) = transport
                .handle::<AttemptsDelivered>(scheduler.clone())
                .tell(msg)
            {
                tracing::warn!(scheduler = %scheduler, calls = n, cause = %e,
                    "the scheduler was not told of delivered calls (it keeps them until their deadline)");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Batches> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Generation, NodeId, NodeRef};
    use crate::net::ServiceId;

    fn scheduler(name: &str) -> ActorRef {
        let node = NodeRef {
            id: NodeId::new(name),
            generation: Generation(1),
        };
        ActorRef::new(node, ServiceId::Scheduler, 0)
    }

    #[test]
    fn the_first_waits_a_full_batch_goes_at_once() {
        let d = Delivered::default();
        let (a, b) = (scheduler("a"), scheduler("b"));
        assert_eq!(d.add(&a, CallId(1), 0), Added::First);
        assert_eq!(d.add(&b, CallId(2), 1), Added::Waits);
        assert_eq!(d.add(&a, CallId(3), 0), Added::Waits);
        assert_eq!(d.len(), 3);
        let b = d.lock();
        assert_eq!(b.per_scheduler.len(), 2, "one batch per scheduler");
        assert_eq!(b.per_scheduler[0].1, vec![(CallId(1), 0), (CallId(3), 0)]);
        drop(b);
        for i in 3..MAX_DELIVERED_BATCH - 1 {
            assert_eq!(d.add(&a, CallId(10 + i as u64), 0), Added::Waits);
        }
        assert_eq!(d.add(&a, CallId(1), 0), Added::Full);
    }
}
