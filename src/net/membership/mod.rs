//! Membership: who is in the cluster, their roles, and whether they are alive.
//!
//! `core` holds the pure state machine (view, transitions, merge); this module is the thin
//! actix actor around it: a heartbeat timer, the join through a seed, the wire handlers and
//! `ViewChanged` notifications. Heartbeats carry the sender's whole view (O(n) per message,
//! fine for clusters of tens of nodes).
//!
//! - `core`: `MembershipCore`, `View`, `Member`, `MemberState`.
//! - `messages`: `Join`, `Gossip`, `Leave`, `GetView` (wire); `Subscribe`, `ViewChanged`,
//!   `StartDraining`, `LeaveCluster` (local).

pub mod core;
#[cfg(test)]
mod core_tests;
pub mod messages;

pub use self::core::{Member, MemberState, MembershipCore, Timeouts, View};
pub use self::messages::{
    GetView, Gossip, Join, Leave, LeaveCluster, StartDraining, Subscribe, ViewChanged,
};

use crate::config::Config;
use crate::ids::NodeRef;
use crate::net::cluster::OTHER_CLUSTER;
use crate::net::service::{ActorRef, ServiceId};
use crate::net::transport::Transport;
use crate::net::NetError;
use actix::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Dead members get a heartbeat every this many ticks (not every tick: each costs a failed
/// connection attempt), so nodes that wrongly declared each other dead reconnect.
pub const DEAD_PROBE_EVERY: u64 = 10;

/// Pause between attempts to join through a seed that is not reachable (yet).
pub const JOIN_RETRY: Duration = Duration::from_millis(500);

/// Pause between attempts when the seed refuses us (wrong secret or version): that needs an
/// operator, so retry slowly and log loudly.
pub const JOIN_RETRY_REFUSED: Duration = Duration::from_secs(5);

/// Exit status of a node the cluster refused at join (another replication factor, or a
/// seed of another cluster).
pub const JOIN_REFUSED_EXIT_CODE: i32 = 3;

/// How long a leaving (or draining) node waits for each peer to acknowledge the news.
pub const LEAVE_TIMEOUT: Duration = Duration::from_millis(500);

/// The membership actor of one node (service `Membership`, instance 0).
pub struct Membership {
    core: MembershipCore,
    transport: Transport,
    subscribers: Vec<Recipient<ViewChanged>>,
    heartbeat: Duration,
    /// Members to join through (`host:port`, resolved on every attempt), tried in turn
    /// until one answers (empty: a new cluster).
    seeds: Vec<String>,
    /// The KVS replication factor: a node that runs another is refused at join.
    replication: u32,
    ticks: u64,
}

impl Membership {
    /// Start the actor for this node and register its wire messages on the transport; it
    /// joins the cluster through `seeds` (any live member will do), or forms a new one when
    /// there are none.
    pub fn start(
        transport: Transport,
        cfg: &Config,
        seeds: Vec<String>,
    ) -> Result<Addr<Membership>, NetError> {
        let me = Member {
            node: transport.local_node().clone(),
            addr: transport.local_addr(),
            roles: cfg.node.roles.clone(),
            state: MemberState::Alive,
            kvs_shards: if cfg.node.roles.contains(&crate::config::Role::Kvs) {
                u32::try_from(cfg.kvs_shards()).unwrap_or(u32::MAX)
            } else {
                0
            },
            draining: false,
        };
        let timeouts = Timeouts {
            suspect_after: Duration::from_millis(cfg.membership.suspect_after_ms),
            dead_after: Duration::from_millis(cfg.membership.dead_after_ms),
        };
        let actor = Membership {
            core: MembershipCore::new(me, timeouts, Instant::now()),
            transport: transport.clone(),
            subscribers: Vec::new(),
            heartbeat: Duration::from_millis(cfg.membership.heartbeat_ms),
            seeds,
            replication: u32::try_from(cfg.kvs.replication).unwrap_or(u32::MAX),
            ticks: 0,
        };
        let addr = actor.start();
        transport.register::<Join>(0, addr.clone().recipient())?;
        transport.register::<Gossip>(0, addr.clone().recipient())?;
        transport.register::<Leave>(0, addr.clone().recipient())?;
        transport.register::<GetView>(0, addr.clone().recipient())?;
        Ok(addr)
    }

    fn peer(node: &NodeRef) -> ActorRef {
        ActorRef::new(node.clone(), ServiceId::Membership, 0)
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let changed = self.core.tick(now);
        self.ticks += 1;
        let Some(me) = self.core.me().cloned() else {
            return;
        };
        let gossip = Gossip {
            from: me,
            members: self.core.view().members.values().cloned().collect(),
        };
        let probe_dead = self.ticks % DEAD_PROBE_EVERY == 0;
        for m in self.core.heartbeat_targets(probe_dead) {
            if m.state == MemberState::Dead {
                self.probe_restarted(&m, gossip.clone());
            }
            let h = self.transport.handle::<Gossip>(Self::peer(&m.node));
            if let Err(e) = h.tell(gossip.clone()) {
                tracing::debug!(node = %m.node, cause = %e, "heartbeat not sent");
            }
        }
        if changed {
            self.view_changed();
        }
    }

    /// A dead member may have restarted at its address as a new incarnation, which drops
    /// heartbeats addressed to the old one (and, restarted without its seeds, formed a
    /// cluster of its own): ask who is there now, and if it is the member's newer
    /// generation, send it our view, so the two views merge into one cluster.
    fn probe_restarted(&self, dead: &Member, gossip: Gossip) {
        let (transport, dead) = (self.transport.clone(), dead.node.clone());
        let addr = self.core.view().get(&dead.id).map(|m| m.addr);
        let Some(addr) = addr else {
            return;
        };
        actix::spawn(async move {
            let Ok(now) = transport.identify(addr).await else {
                return;
            };
            if now.id == dead.id && now.generation > dead.generation {
                tracing::info!(node = %now, "a dead member restarted: sending it our view");
                let h = transport.handle::<Gossip>(Membership::peer(&now));
                if let Err(e) = h.tell(gossip) {
                    tracing::debug!(node = %now, cause = %e, "view not sent");
                }
            }
        });
    }

    /// Tell the transport how to reach every member and which are down (suspect, dead or
    /// gone: requests to them fail at once), and the subscribers what changed.
    fn view_changed(&mut self) {
        let view = self.core.view().clone();
        let me = &self.transport.local_node().id;
        for m in view.members.values().filter(|m| &m.node.id != me) {
            if m.state.is_live() {
                self.transport.connect_hint(&m.node.id, m.addr);
            }
            let failed = self
                .transport
                .set_reachable(&m.node.id, m.state == MemberState::Alive);
            if failed > 0 {
                tracing::info!(node = %m.node, state = %m.state, failed, "requests to a down peer failed");
            }
        }
        tracing::info!(
            members = view.members.len(),
            live = view.live().count(),
            view = %view.summary().iter().map(|(n, s)| format!("{n}:{s}")).collect::<Vec<_>>().join(","),
            "view changed"
        );
        self.subscribers.retain(|s| s.connected());
        for s in &self.subscribers {
            // Local, trusted subscribers; the rate is bounded by view changes.
            s.do_send(ViewChanged { view: view.clone() });
        }
    }

    fn join(&mut self, ctx: &mut Context<Self>) {
        let transport = self.transport.clone();
        let Some(me) = self.core.me().cloned() else {
            return;
        };
        let (seeds, replication) = (self.seeds.clone(), self.replication);
        let attempt = async move {
            let pause = |p: Duration| p / seeds.len().max(1) as u32;
            for seed in seeds.iter().cycle() {
                let addrs = match crate::net::seed::resolve(seed).await {
                    Ok(addrs) => addrs,
                    Err(why) => {
                        tracing::warn!(seed = %seed, cause = %why, "join failed; trying the next seed");
                        tokio::time::sleep(pause(JOIN_RETRY)).await;
                        continue;
                    }
                };
                for addr in addrs {
                    let join = Join {
                        member: me.clone(),
                        replication,
                    };
                    match try_join(&transport, addr, join).await {
                        Ok(Ok(joined)) => return Some(joined),
                        Ok(Err(refused)) => {
                            refuse_to_run(seed, &refused);
                            return None;
                        }
                        Err(NetError::Refused(why)) if why.contains(OTHER_CLUSTER) => {
                            refuse_to_run(seed, &why);
                            return None;
                        }
                        Err(e) if e.is_transient() || e == NetError::ConnectionLost => {
                            tracing::warn!(seed = %seed, %addr, cause = %e, "join failed; trying the next seed");
                            tokio::time::sleep(pause(JOIN_RETRY)).await;
                        }
                        Err(e) => {
                            tracing::error!(seed = %seed, %addr, cause = %e, "join refused; check the cluster secret and version");
                            tokio::time::sleep(pause(JOIN_RETRY_REFUSED)).await;
                        }
                    }
                }
            }
            None
        };
        ctx.spawn(attempt.into_actor(self).map(|joined, act, _| {
            let Some((seed, view)) = joined else {
                return;
            };
            let now = Instant::now();
            let mut changed = false;
            if let Some(s) = view.get(&seed.id) {
                changed |= act.core.heard_from(s, now);
            }
            changed |= act.core.merge(view.members.values(), now);
            tracing::info!(seed = %seed, members = view.members.len(), "joined the cluster");
            if changed {
                act.view_changed();
            }
        }));
    }
}

/// Ask the member at `seed` to let us in: its identity and view, or why it refused.
async fn try_join(
    t: &Transport,
    seed: SocketAddr,
    join: Join,
) -> Result<Result<(NodeRef, View), String>, NetError> {
    let seed_ref = t.identify(seed).await?;
    let reply = t
        .handle::<Join>(Membership::peer(&seed_ref))
        .send(join)
        .await?;
    Ok(reply.map(|view| (seed_ref, view)))
}

/// The cluster refused this node for a reason only its operator can mend (its config):
/// running on alone would make a second cluster, so the process stops.
fn refuse_to_run(seed: &str, reason: &str) {
    tracing::error!(seed = %seed, cause = %reason, "the cluster refused this node");
    eprintln!("cloudburst: the cluster at {seed} refused this node: {reason}");
    std::process::exit(JOIN_REFUSED_EXIT_CODE);
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.heartbeat, |act, _| act.on_tick());
        if !self.seeds.is_empty() {
            self.join(ctx);
        }
    }
}

impl Handler<Join> for Membership {
    type Result = MessageResult<Join>;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        tracing::info!(node = %msg.member.node, addr = %msg.member.addr, "join request");
        if msg.replication != self.replication {
            tracing::warn!(node = %msg.member.node, theirs = msg.replication, ours = self.replication,
                "join refused: replication factor differs");
            return MessageResult(Err(format!(
                "this cluster runs KVS replication factor {} and the joining node {} (start it with --replication {})",
                self.replication, msg.replication, self.replication
            )));
        }
        if self.core.heard_from(&msg.member, Instant::now()) {
            self.view_changed();
        }
        MessageResult(Ok(self.core.view().clone()))
    }
}

impl Handler<Gossip> for Membership {
    type Result = ();
    fn handle(&mut self, msg: Gossip, _: &mut Context<Self>) {
        let now = Instant::now();
        let mut changed = self.core.heard_from(&msg.from, now);
        changed |= self.core.merge(&msg.members, now);
        if changed {
            self.view_changed();
        }
    }
}

impl Handler<Leave> for Membership {
    type Result = ();
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        tracing::info!(node = %msg.node, "peer left");
        if self.core.leave(&msg.node, Instant::now()) {
            self.view_changed();
        }
    }
}

impl Handler<GetView> for Membership {
    type Result = MessageResult<GetView>;
    fn handle(&mut self, _: GetView, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.view().clone())
    }
}

impl Handler<Subscribe> for Membership {
    type Result = ();
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        msg.0.do_send(ViewChanged {
            view: self.core.view().clone(),
        });
        self.subscribers.push(msg.0);
    }
}

impl Handler<StartDraining> for Membership {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, _: StartDraining, _: &mut Context<Self>) -> Self::Result {
        if self.core.start_draining() {
            tracing::info!("draining: no new work comes here");
            self.view_changed();
        }
        let Some(me) = self.core.me().cloned() else {
            return Box::pin(async { 0 });
        };
        let gossip = Gossip {
            from: me,
            members: self.core.view().members.values().cloned().collect(),
        };
        let sends: Vec<_> = self
            .core
            .heartbeat_targets(false)
            .into_iter()
            .map(|m| {
                let h = self.transport.handle::<Gossip>(Self::peer(&m.node));
                let g = gossip.clone();
                async move { h.send_timeout(g, LEAVE_TIMEOUT).await.is_ok() }
            })
            .collect();
        Box::pin(async move {
            let acks = futures::future::join_all(sends).await;
            acks.into_iter().filter(|ok| *ok).count()
        })
    }
}

impl Handler<LeaveCluster> for Membership {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, _: LeaveCluster, _: &mut Context<Self>) -> Self::Result {
        let me = self.transport.local_node().clone();
        let sends: Vec<_> = self
            .core
            .heartbeat_targets(false)
            .into_iter()
            .map(|m| {
                let h = self.transport.handle::<Leave>(Self::peer(&m.node));
                let leave = Leave { node: me.clone() };
                async move { h.send_timeout(leave, LEAVE_TIMEOUT).await.is_ok() }
            })
            .collect();
        Box::pin(async move {
            let acks = futures::future::join_all(sends).await;
            acks.into_iter().filter(|ok| *ok).count()
        })
    }
}
