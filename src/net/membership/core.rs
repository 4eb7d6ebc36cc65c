//! Membership logic with no I/O: the view, liveness transitions and the merge of views.
//! Time comes in as explicit `now: Instant` arguments, so tests drive it with fake time.
//!
//! Liveness is judged locally from direct contact: a member we have not heard from for
//! `suspect_after` is `Suspect`, for `dead_after` is `Dead`; hearing from it again makes it
//! `Alive`. Gossip from others spreads existence, addresses, roles, newer generations,
//! draining and graceful leaves, never liveness (so a stale "alive" cannot resurrect a dead
//! member).
//!
//! Draining is declared by a member about itself ([`MembershipCore::start_draining`]) and
//! never undone for that incarnation: it still serves what it holds, but no new work goes
//! to it ([`View::serving_with_role`]); it leaves once it is done. Orthogonal to liveness: a
//! draining member can be suspected, die or leave like any other.

use crate::config::Role;
use crate::ids::{NodeId, NodeRef};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Dead and left members are forgotten after this many `dead_after` periods: long enough
/// for every node to have seen the death or leave, short enough to keep a churning
/// cluster's view small.
pub const TOMBSTONE_PERIODS: u32 = 10;

/// Liveness of a member as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberState {
    Alive,
    /// Silent for `suspect_after`: still in the ring, maybe in trouble.
    Suspect,
    /// Silent for `dead_after`: out of the ring.
    Dead,
    /// Said goodbye (graceful leave).
    Left,
}

impl MemberState {
    /// Alive or suspect: still counted as a member (and kept on hash rings).
    pub fn is_live(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        })
    }
}

/// One node as the view records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node: NodeRef,
    /// Where it listens for peers.
    pub addr: SocketAddr,
    pub roles: BTreeSet<Role>,
    pub state: MemberState,
    /// KVS shards on this node (0 unless it plays the kvs role): placement needs it.
    pub kvs_shards: u32,
    /// The member is draining (stopping): finish what it holds, take nothing new.
    pub draining: bool,
}

/// The cluster as one node sees it, ordered by node id (so equal views compare equal).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub members: BTreeMap<NodeId, Member>,
}

/// A view of these members, each under its node id.
impl FromIterator<Member> for View {
    fn from_iter<I: IntoIterator<Item = Member>>(members: I) -> Self {
        View {
            members: members
                .into_iter()
                .map(|m| (m.node.id.clone(), m))
                .collect(),
        }
    }
}

impl View {
    /// The member named `id`, whatever its state.
    pub fn get(&self, id: &NodeId) -> Option<&Member> {
        self.members.get(id)
    }

    /// Members that are alive or suspect.
    pub fn live(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.state.is_live())
    }

    /// Live members playing `role`.
    pub fn live_with_role(&self, role: Role) -> impl Iterator<Item = &Member> {
        self.live().filter(move |m| m.roles.contains(&role))
    }

    /// Live members playing `role` that take new work (not draining).
    pub fn serving_with_role(&self, role: Role) -> impl Iterator<Item = &Member> {
        self.live_with_role(role).filter(|m| !m.draining)
    }

    /// The live schedulers, as the address status and cache reports go to.
    pub fn live_schedulers(&self) -> Vec<crate::net::ActorRef> {
        self.live_with_role(Role::Scheduler)
            .map(|m| crate::net::ActorRef::new(m.node.clone(), crate::net::ServiceId::Scheduler, 0))
            .collect()
    }

    /// Whether `node` (that incarnation) is gone: dead or left, or replaced by a newer
    /// generation. A node the view does not list is not taken for gone (it may not have
    /// been heard of yet).
    pub fn is_gone(&self, node: &NodeRef) -> bool {
        self.get(&node.id).is_some_and(|m| {
            m.node.generation > node.generation
                || (m.node.generation == node.generation && !m.state.is_live())
        })
    }

    /// `(node, state)` pairs: what tests compare between nodes.
    pub fn summary(&self) -> Vec<(NodeRef, MemberState)> {
        self.members
            .values()
            .map(|m| (m.node.clone(), m.state))
            .collect()
    }
}

/// Silence thresholds.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub suspect_after: Duration,
    pub dead_after: Duration,
}

/// The membership state machine of one node.
#[derive(Debug)]
pub struct MembershipCore {
    me: NodeId,
    view: View,
    timeouts: Timeouts,
    /// Last direct contact (live members) or when it died / left (tombstones).
    since: HashMap<NodeId, Instant>,
}

impl MembershipCore {
    /// A view holding only `me` (alive).
    pub fn new(me: Member, timeouts: Timeouts, now: Instant) -> Self {
        let id = me.node.id.clone();
        let mut view = View::default();
        view.members.insert(
            id.clone(),
            Member {
                state: MemberState::Alive,
                ..me
            },
        );
        let mut since = HashMap::new();
        since.insert(id.clone(), now);
        MembershipCore {
            me: id,
            view,
            timeouts,
            since,
        }
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// This node's own entry.
    pub fn me(&self) -> Option<&Member> {
        self.view.get(&self.me)
    }

    /// `who` spoke to us directly (join, heartbeat, reply). Returns true if the view changed.
    pub fn heard_from(&mut self, who: &Member, now: Instant) -> bool {
        let id = &who.node.id;
        if *id == self.me {
            return false;
        }
        let fresh = Member {
            state: MemberState::Alive,
            ..who.clone()
        };
        match self.view.members.get_mut(id) {
            Some(e) if who.node.generation < e.node.generation => false,
            Some(e) if who.node.generation == e.node.generation => {
                if e.state == MemberState::Left {
                    return false;
                }
                self.since.insert(id.clone(), now);
                // Draining is never undone within an incarnation.
                let fresh = Member {
                    draining: fresh.draining || e.draining,
                    ..fresh
                };
                let changed = *e != fresh;
                *e = fresh;
                changed
            }
            _ => {
                self.since.insert(id.clone(), now);
                self.view.members.insert(id.clone(), fresh);
                true
            }
        }
    }

    /// Members learned second-hand (gossip, a join reply). Returns true if the view changed.
    pub fn merge<'a>(
        &mut self,
        members: impl IntoIterator<Item = &'a Member>,
        now: Instant,
    ) -> bool {
        let mut changed = false;
        for m in members {
            changed |= self.merge_one(m, now);
        }
        changed
    }

    fn merge_one(&mut self, m: &Member, now: Instant) -> bool {
        let id = &m.node.id;
        if *id == self.me {
            return false;
        }
        let incoming = match m.state {
            MemberState::Alive | MemberState::Suspect => MemberState::Alive,
            other => other,
        };
        match self.view.members.get_mut(id) {
            None if !m.state.is_live() => false,
            Some(e) if m.node.generation < e.node.generation => false,
            Some(e) if m.node.generation == e.node.generation => {
                let drains = m.draining && !e.draining;
                e.draining |= m.draining;
                if m.state == MemberState::Left && e.state != MemberState::Left {
                    e.state = MemberState::Left;
                    self.since.insert(id.clone(), now);
                    true
                } else {
                    drains
                }
            }
            _ => {
                let entry = Member {
                    state: incoming,
                    ..m.clone()
                };
                self.view.members.insert(id.clone(), entry);
                self.since.insert(id.clone(), now);
                true
            }
        }
    }

    /// This node starts draining. Returns true if the view changed (false: it already was).
    pub fn start_draining(&mut self) -> bool {
        match self.view.members.get_mut(&self.me) {
            Some(e) if !e.draining => {
                e.draining = true;
                true
            }
            _ => false,
        }
    }

    /// `node` (this incarnation) left gracefully. Returns true if the view changed.
    pub fn leave(&mut self, node: &NodeRef, now: Instant) -> bool {
        match self.view.members.get_mut(&node.id) {
            Some(e) if e.node.generation == node.generation && e.state != MemberState::Left => {
                e.state = MemberState::Left;
                self.since.insert(node.id.clone(), now);
                true
            }
            _ => false,
        }
    }

    /// Apply silence timeouts and forget old tombstones. Returns true if the view changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        let Timeouts {
            suspect_after,
            dead_after,
        } = self.timeouts;
        let forget_after = dead_after * TOMBSTONE_PERIODS;
        let mut changed = false;
        let mut forget = Vec::new();
        for (id, m) in self.view.members.iter_mut() {
            if *id == self.me {
                continue;
            }
            let silent = self
                .since
                .get(id)
                .map_or(Duration::MAX, |t| now.saturating_duration_since(*t));
            let next = match m.state {
                MemberState::Alive | MemberState::Suspect if silent >= dead_after => {
                    MemberState::Dead
                }
                MemberState::Alive if silent >= suspect_after => MemberState::Suspect,
                MemberState::Dead | MemberState::Left if silent >= forget_after => {
                    forget.push(id.clone());
                    continue;
                }
                s => s,
            };
            if next != m.state {
                if next == MemberState::Dead {
                    self.since.insert(id.clone(), now);
                }
                m.state = next;
                changed = true;
            }
        }
        for id in forget {
            self.view.members.remove(&id);
            self.since.remove(&id);
            changed = true;
        }
        changed
    }

    /// Members to heartbeat: everyone but this node and those that left. Dead members are
    /// included only when `probe_dead` (they are probed at a lower rate, so two nodes that
    /// declared each other dead during a partition find each other again).
    pub fn heartbeat_targets(&self, probe_dead: bool) -> Vec<Member> {
        self.view
            .members
            .values()
            .filter(|m| m.node.id != self.me)
            .filter(|m| m.state.is_live() || (probe_dead && m.state == MemberState::Dead))
            .cloned()
            .collect()
    }
}
