//! The cluster id, checked in every handshake so that two clusters never mix silently.
//!
//! A node is in one of three states ([`ClusterState`]):
//! - `Joining`: it has no id yet (it joins through `--join` seeds and has no recorded
//!   cluster): it takes the id of the first cluster whose member it reaches.
//! - `Fresh(id)`: it formed a new cluster in this run (`--bootstrap`, `cloudburst local`),
//!   nobody has joined it yet, and it is younger than the time members remember a dead
//!   node ([`ClusterGate::settle`]). A fresh cluster holds nothing worth keeping apart, so
//!   it **yields**: when a member of an established cluster reaches it (a seed restarted
//!   without its data is probed by its former members), it takes that cluster's id and
//!   the views merge. Two fresh clusters meeting keep the smaller id.
//! - `Member(id)`: it belongs to cluster `id` (someone joined it, it joined someone, or its
//!   data directory records the id). A peer of another established cluster is refused.
//!
//! [`decide`] is the pure rule; [`ClusterGate`] holds a node's state for its handshakes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use tokio::sync::watch;

/// Bytes of randomness in a new cluster id (ids are compared, never guessed at: 128 bits
/// make two independently formed clusters collide with negligible probability).
const CLUSTER_ID_BYTES: usize = 16;

/// Start of the handshake refusal sent to a peer of another cluster; the join code
/// recognises it (a node pointed at another cluster must not retry forever).
pub const OTHER_CLUSTER: &str = "belongs to another cluster";

/// A cluster's id: random hex, made once by the node that formed it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterId(String);

impl ClusterId {
    /// A new random id.
    pub fn random() -> ClusterId {
        ClusterId(
            (0..CLUSTER_ID_BYTES)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect(),
        )
    }

    /// An id read back from a data directory or a test.
    pub fn new(id: impl Into<String>) -> ClusterId {
        ClusterId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which cluster a node belongs to, as far as it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    /// No id yet: takes the id of the first cluster it meets.
    Joining,
    /// Formed in this run and joined by nobody yet: yields to an established cluster.
    Fresh(ClusterId),
    /// Belongs to this cluster.
    Member(ClusterId),
}

impl ClusterState {
    /// The id, if the node has one.
    pub fn id(&self) -> Option<&ClusterId> {
        match self {
            ClusterState::Joining => None,
            ClusterState::Fresh(id) | ClusterState::Member(id) => Some(id),
        }
    }

    /// What this node tells a peer in the handshake.
    pub fn claim(&self) -> Claim {
        Claim {
            id: self.id().cloned(),
            fresh: matches!(self, ClusterState::Fresh(_)),
        }
    }
}

/// The cluster a peer says it belongs to (sent in the handshake, bound by its MAC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub id: Option<ClusterId>,
    /// The peer formed its cluster in this run and nobody joined it: it will yield.
    pub fresh: bool,
}

/// Admit a peer making `theirs` claim, given `mine`: the state to continue with, or why
/// the peer is refused.
pub fn decide(mine: &ClusterState, theirs: &Claim) -> Result<ClusterState, String> {
    use ClusterState::{Fresh, Joining, Member};
    let Some(their_id) = &theirs.id else {
        // A joining node: it takes our id; a fresh cluster joined by someone is established.
        return Ok(match mine {
            Fresh(id) => Member(id.clone()),
            other => other.clone(),
        });
    };
    let adopt = || Member(their_id.clone());
    match mine {
        Joining => Ok(adopt()),
        Member(id) | Fresh(id) if id == their_id => Ok(Member(id.clone())),
        Member(id) if theirs.fresh => Ok(Member(id.clone())),
        Member(id) => Err(format!(
            "the peer {OTHER_CLUSTER} ({their_id}; this node's is {id}): \
             start it with --join naming a member of its own cluster"
        )),
        Fresh(_) if !theirs.fresh => Ok(adopt()),
        Fresh(id) if their_id < id => Ok(adopt()),
        Fresh(id) => Ok(Member(id.clone())),
    }
}

/// A node's cluster state, shared by its handshakes; changes can be watched (the data
/// directory records the id the node ends up with).
#[derive(Debug, Clone)]
pub struct ClusterGate(Arc<watch::Sender<ClusterState>>);

impl ClusterGate {
    pub fn new(state: ClusterState) -> ClusterGate {
        ClusterGate(Arc::new(watch::Sender::new(state)))
    }

    /// What to tell a peer now.
    pub fn claim(&self) -> Claim {
        self.0.borrow().claim()
    }

    /// Admit a peer (whose secret was already proven) claiming `theirs`, taking its
    /// cluster's id if this node yields or joins; or refuse it.
    pub fn admit(&self, theirs: &Claim) -> Result<(), String> {
        let mut result = Ok(());
        self.0.send_if_modified(|mine| match decide(mine, theirs) {
            Ok(next) if next != *mine => {
                if let (ClusterState::Fresh(old), Some(new)) = (&*mine, next.id()) {
                    if old != new {
                        tracing::warn!(was = %old, now = %new,
                            "this node formed a new cluster but meets an established one: it joins that");
                    }
                }
                *mine = next;
                true
            }
            Ok(_) => false,
            Err(why) => {
                result = Err(why);
                false
            }
        });
        result
    }

    /// A cluster formed in this run stops yielding: after a while it may hold data, and an
    /// established cluster's members that could be looking for it (a restarted seed's
    /// former members) have forgotten it by then.
    pub fn settle(&self) {
        self.0.send_if_modified(|mine| match mine {
            ClusterState::Fresh(id) => {
                *mine = ClusterState::Member(id.clone());
                true
            }
            _ => false,
        });
    }

    /// The current state.
    pub fn state(&self) -> ClusterState {
        self.0.borrow().clone()
    }

    /// Watch the state (the receiver sees every change from now on).
    pub fn watch(&self) -> watch::Receiver<ClusterState> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClusterState::{Fresh, Joining, Member};

    fn id(s: &str) -> ClusterId {
        ClusterId::new(s)
    }

    fn claim(s: Option<&str>, fresh: bool) -> Claim {
        Claim {
            id: s.map(id),
            fresh,
        }
    }

    #[test]
    fn a_joiner_takes_the_first_cluster_it_meets() {
        assert_eq!(
            decide(&Joining, &claim(Some("a"), false)),
            Ok(Member(id("a")))
        );
        assert_eq!(
            decide(&Joining, &claim(Some("a"), true)),
            Ok(Member(id("a")))
        );
        assert_eq!(decide(&Joining, &claim(None, false)), Ok(Joining));
    }

    #[test]
    fn two_established_clusters_refuse_each_other() {
        let why = decide(&Member(id("a")), &claim(Some("b"), false)).expect_err("refused");
        assert!(why.contains(OTHER_CLUSTER), "{why}");
        assert_eq!(
            decide(&Member(id("a")), &claim(Some("a"), false)),
            Ok(Member(id("a")))
        );
    }

    #[test]
    fn a_fresh_cluster_yields_to_an_established_one() {
        assert_eq!(
            decide(&Fresh(id("z")), &claim(Some("b"), false)),
            Ok(Member(id("b")))
        );
        // The established side admits it and keeps its id.
        assert_eq!(
            decide(&Member(id("b")), &claim(Some("z"), true)),
            Ok(Member(id("b")))
        );
    }

    #[test]
    fn two_fresh_clusters_keep_the_smaller_id_on_both_sides() {
        assert_eq!(
            decide(&Fresh(id("b")), &claim(Some("a"), true)),
            Ok(Member(id("a")))
        );
        assert_eq!(
            decide(&Fresh(id("a")), &claim(Some("b"), true)),
            Ok(Member(id("a")))
        );
    }

    #[test]
    fn a_fresh_cluster_joined_by_a_new_node_is_established() {
        assert_eq!(
            decide(&Fresh(id("a")), &claim(None, false)),
            Ok(Member(id("a")))
        );
        assert_eq!(
            decide(&Member(id("a")), &claim(None, false)),
            Ok(Member(id("a")))
        );
    }

    #[test]
    fn the_gate_records_what_it_decided() {
        let gate = ClusterGate::new(Fresh(id("z")));
        let seen = gate.watch();
        assert!(gate.admit(&claim(Some("b"), false)).is_ok());
        assert_eq!(gate.state(), Member(id("b")));
        assert!(seen.has_changed().unwrap_or(false));
        assert!(gate.admit(&claim(Some("c"), false)).is_err());
        assert_eq!(gate.state(), Member(id("b")), "a refusal changes nothing");
    }

    #[test]
    fn a_settled_fresh_cluster_no_longer_yields() {
        let gate = ClusterGate::new(Fresh(id("z")));
        gate.settle();
        assert_eq!(gate.state(), Member(id("z")));
        assert!(gate.admit(&claim(Some("b"), false)).is_err());
    }
}
