//! Draining a node: the one way a node stops without failing what it holds, whether a
//! SIGTERM, the autoscaler or Kubernetes (`preStop`) asks. [`NodeRoles::drain`] then
//! [`NodeRoles::stop`]:
//!
//! 1. the node declares itself draining in membership and tells every live peer at once:
//!    schedulers stop placing functions on its executor, gateways stop choosing its
//!    scheduler; its own gateway sends its clients to other gateways;
//! 2. its executor finishes the schedules and triggers it holds and the functions it runs,
//!    and stays idle for [`DRAIN_QUIET`] (schedules placed just before the schedulers heard
//!    of the drain arrive meanwhile);
//! 3. its cache keeps serving the repeatable-read pins it holds for calls running elsewhere
//!    until they are released (or expire);
//! 4. its scheduler waits for the calls it placed to end (it keeps each to run it again
//!    if an executor dies under it; stopped, it would fail them with `scheduler_lost`);
//! 5. its gateway, which sent its clients away in step 1 (it answers what they sent
//!    before, then closes their sessions with `going_away`), waits for the calls they
//!    waited for;
//! 6. then [`NodeRoles::stop`]: the gateway closes its sessions (the last role clients
//!    see), the KVS shards hand their keys to the remaining owners, the node leaves, the
//!    Python workers stop.
//!
//! Every wait ends at the deadline the caller gives (what runs past it is cut off by the
//! stop). Peers show the node as draining (the dashboard's node table) from step 1.

use super::roles::NodeRoles;
use crate::actors::scheduler::HeldCalls;
use crate::net::membership::StartDraining;
use std::time::{Duration, Instant};

/// How long the executor, the scheduler and the gateway must have been idle before a drain
/// counts them done: longer than a schedule (or call) sent just before the schedulers (or
/// gateways) heard of the drain takes to arrive.
pub const DRAIN_QUIET: Duration = Duration::from_millis(500);
/// How often a drain looks again at the executor, the pins, the scheduler's and the
/// gateway's calls while it waits.
pub const DRAIN_POLL: Duration = Duration::from_millis(20);
/// Added to the longest function timeout to make a drain's default deadline: time for a
/// function's result to travel and for the pins of calls elsewhere to be released.
pub const DRAIN_SLACK: Duration = Duration::from_secs(10);

/// What a drain saw through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// Peers that acknowledged the news of the drain.
    pub told: usize,
    /// The executor finished everything (true without an executor).
    pub executor_idle: bool,
    /// No repeatable-read pins were left (true without a cache).
    pub pins_released: bool,
    /// The scheduler kept no call any more (true without a scheduler).
    pub scheduler_idle: bool,
    /// The gateway's clients waited for no call any more (true without a gateway).
    pub gateway_idle: bool,
}

impl Drained {
    /// Everything held was finished before the deadline.
    pub fn complete(&self) -> bool {
        self.executor_idle && self.pins_released && self.scheduler_idle && self.gateway_idle
    }
}

impl NodeRoles {
    /// Drain the node (see the module doc) until it holds nothing or `deadline` passes;
    /// call [`NodeRoles::stop`] after it.
    pub async fn drain(&self, deadline: Instant) -> Drained {
        let started = Instant::now();
        let told = self.membership.send(StartDraining).await.unwrap_or(0);
        tracing::info!(told, "draining");
        // Clients go elsewhere from now on: this node's gateway would send their calls to
        // other nodes' schedulers anyway, and a client that kept sending would keep the
        // drain waiting.
        if let Some(g) = &self.gateway {
            g.go_away();
        }
        let executor_idle = match &self.executor {
            Some(e) => {
                wait_until(deadline, DRAIN_QUIET, || async { e.load().await.is_idle() }).await
            }
            None => true,
        };
        let pins_released = match &self.cache {
            Some(c) => {
                let none = || async { c.pinned_sessions() == 0 };
                wait_until(deadline, Duration::ZERO, none).await
            }
            None => true,
        };
        let scheduler_idle = match &self.scheduler {
            // A scheduler that no longer answers keeps nothing it could finish.
            Some(s) => {
                let held = s.send(HeldCalls).await.unwrap_or(0);
                if held > 0 {
                    tracing::info!(
                        calls = held,
                        "drain waits for the calls this scheduler placed"
                    );
                }
                let none = || async { s.send(HeldCalls).await.map_or(true, |n| n == 0) };
                wait_until(deadline, DRAIN_QUIET, none).await
            }
            None => true,
        };
        let gateway_idle = match &self.gateway {
            Some(g) => wait_until(deadline, DRAIN_QUIET, || async { g.in_flight() == 0 }).await,
            None => true,
        };
        let drained = Drained {
            told,
            executor_idle,
            pins_released,
            scheduler_idle,
            gateway_idle,
        };
        let secs = started.elapsed().as_secs_f64();
        if drained.complete() {
            tracing::info!(secs, "drained: nothing held any more");
        } else {
            tracing::warn!(
                secs,
                executor_idle,
                pins_released,
                scheduler_idle,
                gateway_idle,
                "drain deadline passed; what is still held will be cut off"
            );
        }
        drained
    }
}

/// The deadline of a drain starting now with functions of at most `longest_timeout`.
pub fn drain_deadline(longest_timeout: Duration) -> Instant {
    Instant::now() + longest_timeout + DRAIN_SLACK
}

/// Wait until `done()` has held for `quiet`, or `deadline`; whether it did.
async fn wait_until<F: std::future::Future<Output = bool>>(
    deadline: Instant,
    quiet: Duration,
    mut done: impl FnMut() -> F,
) -> bool {
    let mut since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if done().await {
            let t = *since.get_or_insert(now);
            if now.saturating_duration_since(t) >= quiet {
                return true;
            }
        } else {
            since = None;
        }
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_a_quiet_stretch_or_gives_up_at_the_deadline() {
        let start = Instant::now();
        let mut n = 0;
        let done = wait_until(
            start + Duration::from_secs(5),
            Duration::from_millis(50),
            || {
                n += 1;
                let ready = n > 3;
                async move { ready }
            },
        )
        .await;
        assert!(done && start.elapsed() >= Duration::from_millis(50));
        let never = wait_until(Instant::now(), Duration::ZERO, || async { false }).await;
        assert!(!never);
    }
}
