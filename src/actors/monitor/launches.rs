//! Launches the monitor asked the node provider for, reconciled every tick (no I/O; time is
//! passed in): a launched node that joins is done; one that has not joined within the
//! launch timeout, or whose process ended, is terminated and launched again; after
//! `max_launch_failures` failures in a row the monitor stops launching and says so, rather
//! than spawn broken nodes for ever.

use crate::ids::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What the provider says of a node it launched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvidedNode {
    pub node: NodeId,
    /// Its process (or pod) still runs.
    pub running: bool,
}

/// What reconciling asks the monitor to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// This launch failed: terminate what is left of it.
    Terminate(NodeId),
    /// Launch this many again in place of failed launches.
    Relaunch(u32),
    /// Too many launches failed in a row: no more launches (said once).
    GiveUp { failures: u32 },
}

/// Launches not yet joined, and the run of failures.
#[derive(Debug)]
pub struct Launches {
    timeout: Duration,
    max_failures: u32,
    pending: BTreeMap<NodeId, Instant>,
    failures: u32,
    gave_up: bool,
}

impl Launches {
    pub fn new(timeout: Duration, max_failures: u32) -> Self {
        Launches {
            timeout,
            max_failures: max_failures.max(1),
            pending: BTreeMap::new(),
            failures: 0,
            gave_up: false,
        }
    }

    /// The provider started `nodes` at `now`.
    pub fn launched(&mut self, nodes: impl IntoIterator<Item = NodeId>, now: Instant) {
        for n in nodes {
            self.pending.insert(n, now);
        }
    }

    /// Launches not yet joined (capacity already asked for).
    pub fn pending(&self) -> u32 {
        u32::try_from(self.pending.len()).unwrap_or(u32::MAX)
    }

    /// Whether `node` is a launch not yet joined.
    pub fn is_pending(&self, node: &NodeId) -> bool {
        self.pending.contains_key(node)
    }

    /// Whether the monitor may still launch.
    pub fn may_launch(&self) -> bool {
        !self.gave_up
    }

    /// Failed launches in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Match pending launches against the members that joined and what the provider
    /// runs; returns what to do about the failed ones.
    pub fn reconcile(
        &mut self,
        joined: &BTreeSet<NodeId>,
        provided: &[ProvidedNode],
        now: Instant,
    ) -> Vec<Effect> {
        let running: BTreeSet<&NodeId> = provided
            .iter()
            .filter(|p| p.running)
            .map(|p| &p.node)
            .collect();
        let (mut failed, mut joined_now) = (vec![], false);
        self.pending.retain(|node, since| {
            if joined.contains(node) {
                joined_now = true;
                return false;
            }
            let late = now.saturating_duration_since(*since) >= self.timeout;
            if late || !running.contains(node) {
                failed.push(node.clone());
                return false;
            }
            true
        });
        if joined_now {
            // A launch worked: the failures before it were not a broken setup.
            self.failures = 0;
        }
        if failed.is_empty() {
            return vec![];
        }
        self.failures = self.failures.saturating_add(failed.len() as u32);
        let mut effects: Vec<Effect> = failed.iter().cloned().map(Effect::Terminate).collect();
        if self.gave_up {
            return effects;
        }
        if self.failures >= self.max_failures {
            self.gave_up = true;
            effects.push(Effect::GiveUp {
                failures: self.failures,
            });
        } else {
            effects.push(Effect::Relaunch(failed.len() as u32));
        }
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: &str) -> NodeId {
        NodeId::new(n)
    }

    fn up(names: &[&str]) -> Vec<ProvidedNode> {
        names
            .iter()
            .map(|n| ProvidedNode {
                node: id(n),
                running: true,
            })
            .collect()
    }

    fn set(names: &[&str]) -> BTreeSet<NodeId> {
        names.iter().map(|n| id(n)).collect()
    }

    #[test]
    fn a_joined_launch_is_done_and_a_late_one_is_terminated_and_relaunched() {
        let t0 = Instant::now();
        let mut l = Launches::new(Duration::from_secs(10), 3);
        l.launched([id("a"), id("b")], t0);
        assert_eq!(l.pending(), 2);
        let nine = t0 + Duration::from_secs(9);
        assert_eq!(l.reconcile(&set(&["a"]), &up(&["a", "b"]), nine), vec![]);
        assert_eq!(l.pending(), 1, "b still has time");
        let ten = t0 + Duration::from_secs(10);
        let effects = l.reconcile(&set(&["a"]), &up(&["a", "b"]), ten);
        assert_eq!(
            effects,
            vec![Effect::Terminate(id("b")), Effect::Relaunch(1)]
        );
        assert_eq!((l.pending(), l.failures()), (0, 1));
    }

    #[test]
    fn a_launch_whose_process_ended_fails_at_once() {
        let t0 = Instant::now();
        let mut l = Launches::new(Duration::from_secs(10), 3);
        l.launched([id("a")], t0);
        let gone = [ProvidedNode {
            node: id("a"),
            running: false,
        }];
        let effects = l.reconcile(&set(&[]), &gone, t0);
        assert_eq!(
            effects,
            vec![Effect::Terminate(id("a")), Effect::Relaunch(1)]
        );
    }

    #[test]
    fn repeated_failures_stop_the_launches_and_say_so_once() {
        let t0 = Instant::now();
        let mut l = Launches::new(Duration::from_secs(1), 2);
        let late = |k: u64| t0 + Duration::from_secs(k);
        l.launched([id("a")], t0);
        assert_eq!(
            l.reconcile(&set(&[]), &up(&["a"]), late(1)).last(),
            Some(&Effect::Relaunch(1))
        );
        l.launched([id("b")], late(1));
        let effects = l.reconcile(&set(&[]), &up(&["b"]), late(2));
        assert_eq!(
            effects,
            vec![Effect::Terminate(id("b")), Effect::GiveUp { failures: 2 }]
        );
        assert!(!l.may_launch());
        // A launch already under way that fails later is cleaned up, not announced again.
        l.launched([id("c")], late(2));
        assert_eq!(
            l.reconcile(&set(&[]), &up(&["c"]), late(3)),
            vec![Effect::Terminate(id("c"))]
        );
    }

    #[test]
    fn a_success_resets_the_run_of_failures() {
        let t0 = Instant::now();
        let mut l = Launches::new(Duration::from_secs(1), 2);
        l.launched([id("a")], t0);
        l.reconcile(&set(&[]), &up(&["a"]), t0 + Duration::from_secs(1));
        assert_eq!(l.failures(), 1);
        l.launched([id("b")], t0 + Duration::from_secs(1));
        l.reconcile(&set(&["b"]), &up(&["b"]), t0 + Duration::from_secs(1));
        assert_eq!((l.failures(), l.may_launch()), (0, true));
    }
}
