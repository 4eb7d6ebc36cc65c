//! Starting the KVS tier on a node: the shard actors (one arbiter thread each, shared
//! nothing) when the node plays the `kvs` role, and on every node the routing watcher that
//! rebuilds the [`RoutingTable`] from the membership view and tells local shards to hand
//! off keys when it changes, and merges the monitor's replication overrides of hot keys
//! into it (telling local shards to fill a key's new replicas, or drop its extra copies).

use super::client::KvsClient;
use super::durable::{self, Core, Durable};
use super::messages::{DeclareLost, HandoffConfirmed, KvsRequest, ShardAddr};
use super::overrides::{Changed, OverrideTable};
use super::report::KvsReporter;
use super::routing::{Routing, RoutingTable};
use super::shard::{Drain, HandOffKeys, KvsShard, RoutingChanged, ShardOptions, HANDOFF_RETRY};
use crate::config::{Config, Role};
use crate::ids::{NodeId, NodeRef};
use crate::net::membership::{MemberState, Membership, Subscribe, View, ViewChanged};
use crate::net::{ActorRef, NetError, ServiceId, Transport};
use crate::protocol::kvs_scaling::MAX_SETTLE_MS;
use crate::protocol::{DrainKvsNode, ReplicationOverrides};
use crate::storage::fs::{DiskFs, Fs};
use crate::storage::log::FatalHook;
use crate::storage::{DataDir, ShardLog, StorageError};
use actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A shard's store recovered from its directory, and its log.
pub struct OpenedShard {
    pub core: Core,
    pub durable: Durable,
}

/// Recover every KVS shard of this node from `data` (in parallel, off the actix threads)
/// and start their logs. Needs `cfg.storage()` (a data directory and a mode but `none`).
pub async fn open_shards(
    data: &DataDir,
    cfg: &Config,
    fs: Arc<dyn Fs>,
    fatal: FatalHook,
) -> Result<Vec<OpenedShard>, StorageError> {
    let Some(storage) = cfg.storage() else {
        return Ok(Vec::new());
    };
    let started = Instant::now();
    let opening = (0..cfg.kvs_shards() as u32).map(|i| {
        let (dir, fs, fatal) = (data.shard_dir(i), fs.clone(), fatal.clone());
        let (max, opts) = (cfg.kvs.max_value_bytes, storage.log.clone());
        let expiry = ShardOptions::from_config(cfg).expiry;
        tokio::task::spawn_blocking(move || durable::open_shard(fs, &dir, max, expiry, opts, fatal))
    });
    let mut shards = Vec::new();
    for joined in futures::future::join_all(opening).await {
        let opened = joined.map_err(|e| StorageError::Io {
            path: data.path().display().to_string(),
            message: format!("recovery task failed: {e}"),
        });
        match opened.and_then(|r| r) {
            Ok((core, log, recovered)) => {
                tracing::info!(
                    keys = core.keys().len(),
                    records = recovered.records,
                    bytes = recovered.bytes,
                    snapshot = ?recovered.snapshot,
                    torn = recovered.torn.is_some(),
                    "kvs shard recovered"
                );
                shards.push(OpenedShard {
                    core,
                    durable: Durable::new(log),
                });
            }
            Err(e) => {
                shards
                    .iter()
                    .for_each(|s: &OpenedShard| s.durable.log().close());
                return Err(e);
            }
        }
    }
    tracing::info!(shards = shards.len(), secs = started.elapsed().as_secs_f64(), durability = %storage.log.durability, "kvs state recovered");
    Ok(shards)
}

/// The real disk, for [`open_shards`].
pub fn disk() -> Arc<dyn Fs> {
    Arc::new(DiskFs)
}

/// What the KVS tier of one node consists of.
pub struct KvsTier {
    pub routing: RoutingTable,
    pub client: KvsClient,
    pub shards: Vec<Addr<KvsShard>>,
    arbiters: Vec<Arbiter>,
    logs: Vec<ShardLog>,
    /// Notified when the monitor asks this KVS node to leave.
    pub drain_requested: Arc<tokio::sync::Notify>,
    /// This node's load reporter, when it plays `kvs` (its figures for `/metrics`).
    pub reporter: Option<Addr<KvsReporter>>,
}

impl KvsTier {
    /// Start the shards (if this node plays `kvs`), empty, and the routing watcher.
    pub fn start(
        transport: &Transport,
        membership: &Addr<Membership>,
        cfg: &Config,
    ) -> Result<KvsTier, NetError> {
        KvsTier::start_with(transport, membership, cfg, Vec::new())
    }

    /// [`KvsTier::start`] with the state `opened` from the shards' directories (one per
    /// shard). When a shard cannot register, the shards started so far are stopped.
    pub fn start_with(
        transport: &Transport,
        membership: &Addr<Membership>,
        cfg: &Config,
        opened: Vec<OpenedShard>,
    ) -> Result<KvsTier, NetError> {
        let routing =
            RoutingTable::new(Routing::new([], cfg.kvs.virtual_nodes, cfg.kvs.replication));
        let mut shards = Vec::new();
        let mut arbiters = Vec::new();
        let logs: Vec<ShardLog> = opened.iter().map(|o| o.durable.log().clone()).collect();
        let mut opened = opened.into_iter();
        if cfg.node.roles.contains(&Role::Kvs) {
            for i in 0..cfg.kvs_shards() as u32 {
                let state = opened.next();
                let arbiter = Arbiter::new();
                let me = ShardAddr {
                    node: transport.local_node().id.clone(),
                    shard: i,
                };
                let (t, r) = (transport.clone(), routing.clone());
                let opts = ShardOptions::from_config(cfg);
                let addr = KvsShard::start_in_arbiter(&arbiter.handle(), move |_| {
                    let shard = KvsShard::new(me, opts, t, r);
                    match state {
                        Some(s) => shard.with_durable(s.core, s.durable),
                        None => shard,
                    }
                });
                arbiters.push(arbiter);
                if let Err(e) = transport.register::<KvsRequest>(i, addr.clone().recipient()) {
                    for a in &arbiters {
                        a.stop();
                    }
                    return Err(e);
                }
                shards.push(addr);
            }
        }
        let watcher = RoutingWatcher {
            table: routing.clone(),
            transport: transport.clone(),
            members: Vec::new(),
            shards: shards.iter().map(|a| a.clone().recipient()).collect(),
            hand_off: shards.iter().map(|a| a.clone().recipient()).collect(),
            overrides: OverrideTable::new(cfg.kvs.replication),
            wake: None,
            vnodes: cfg.kvs.virtual_nodes,
            replication: cfg.kvs.replication,
            warned_single_copy: false,
        }
        .start();
        // Every node's routing watcher takes an operator's declaration and the shards'
        // hand-off confirmations (instance 0).
        let registered = transport
            .register::<DeclareLost>(0, watcher.clone().recipient())
            .and_then(|()| transport.register::<HandoffConfirmed>(0, watcher.clone().recipient()))
            .and_then(|()| {
                transport.register::<ReplicationOverrides>(0, watcher.clone().recipient())
            });
        if let Err(e) = registered {
            for a in &arbiters {
                a.stop();
            }
            return Err(e);
        }
        membership.do_send(Subscribe(watcher.recipient()));
        let drain_requested = Arc::new(tokio::sync::Notify::new());
        let mut reporter_addr = None;
        if !shards.is_empty() {
            let budget = cfg.kvs_memory_budget();
            let (t, s, d) = (transport.clone(), shards.clone(), drain_requested.clone());
            let reporter = KvsReporter::new(t, s, budget, d, routing.clone()).start();
            if let Err(e) = transport.register::<DrainKvsNode>(0, reporter.clone().recipient()) {
                for a in &arbiters {
                    a.stop();
                }
                return Err(e);
            }
            membership.do_send(Subscribe(reporter.clone().recipient()));
            reporter_addr = Some(reporter);
        }
        Ok(KvsTier {
            client: KvsClient::new(transport.clone(), routing.clone()),
            routing,
            shards,
            arbiters,
            logs,
            drain_requested,
            reporter: reporter_addr,
        })
    }

    /// Hand every key of this node's shards to the owners that remain without it (before a
    /// graceful leave), again while a batch was not acknowledged, for at most `limit`.
    /// Returns whether every shard's every batch was acknowledged.
    pub async fn drain(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let all = futures::future::join_all(self.shards.iter().map(|s| s.send(Drain)));
            let done = match tokio::time::timeout_at(deadline, all).await {
                Ok(results) => results.into_iter().all(|r| matches!(r, Ok(true))),
                Err(_) => return false,
            };
            if done {
                return true;
            }
            if tokio::time::Instant::now() + HANDOFF_RETRY >= deadline {
                return false;
            }
            tracing::info!("a hand-off batch was not acknowledged; handing off again");
            tokio::time::sleep(HANDOFF_RETRY).await;
        }
    }

    /// Stop the shard threads.
    pub fn stop(&self) {
        for a in &self.arbiters {
            a.stop();
        }
    }

    /// After [`KvsTier::stop`]: write and sync what the shards' logs hold, off the actix
    /// threads.
    pub async fn close_logs(&self) {
        let logs = self.logs.clone();
        if logs.is_empty() {
            return;
        }
        let closed = tokio::task::spawn_blocking(move || logs.iter().for_each(ShardLog::close));
        if let Err(e) = closed.await {
            tracing::error!(cause = %e, "closing the kvs logs failed");
        }
    }
}

/// Rebuilds the routing from each new view; tells local shards when it changed. Relays
/// the local shards' hand-off confirmations to every other live member.
struct RoutingWatcher {
    table: RoutingTable,
    transport: Transport,
    /// The other live members of the last view.
    members: Vec<NodeRef>,
    shards: Vec<Recipient<RoutingChanged>>,
    hand_off: Vec<Recipient<HandOffKeys>>,
    /// The monitor's replication overrides as this node holds them.
    overrides: OverrideTable,
    /// When the override timer fires next (one timer at a time).
    wake: Option<Instant>,
    vnodes: usize,
    replication: usize,
    /// Whether the single-copy warning was logged (once per process).
    warned_single_copy: bool,
}

impl Actor for RoutingWatcher {
    type Context = Context<Self>;
}

impl Handler<ViewChanged> for RoutingWatcher {
    type Result = ();

    fn handle(&mut self, msg: ViewChanged, _: &mut Context<Self>) {
        let crashed = msg
            .view
            .members
            .values()
            .filter(|m| m.roles.contains(&Role::Kvs) && m.state == MemberState::Dead);
        self.table.set_crashed(crashed.count());
        let me = &self.transport.local_node().id;
        self.members = msg
            .view
            .live()
            .filter(|m| &m.node.id != me)
            .map(|m| m.node.clone())
            .collect();
        let next = Routing::from_view(&msg.view, self.vnodes, self.replication);
        let current = self.table.get();
        if current.id() == next.id() {
            return;
        }
        self.note_crashes(&msg.view, &current, &next);
        if self.replication == 1 && next.nodes().count() > 1 && !self.warned_single_copy {
            self.warned_single_copy = true;
            tracing::warn!("kvs.replication = 1 with several KVS nodes: when one dies, the keys it holds are lost (with a data directory: unreachable until it restarts) and read as unavailable meanwhile");
        }
        tracing::info!(kvs_nodes = next.nodes().count(), "kvs routing changed");
        let previous = self.table.set(next);
        let change = RoutingChanged {
            previous,
            current: self.table.get(),
        };
        for s in &self.shards {
            s.do_send(change.clone());
        }
    }
}

impl RoutingWatcher {
    /// KVS nodes that leave the routing dead crashed (their keys were not handed off);
    /// crashed nodes back in the routing returned.
    fn note_crashes(&self, view: &View, current: &Routing, next: &Routing) {
        let crashed: Vec<NodeId> = current
            .nodes()
            .map(|n| &n.node.id)
            .filter(|id| next.node(id).is_none())
            .filter(|id| view.get(id).is_some_and(|m| m.state == MemberState::Dead))
            .cloned()
            .collect();
        let returned: Vec<NodeId> = self
            .table
            .crashed_nodes()
            .into_iter()
            .filter(|id| next.node(id).is_some())
            .collect();
        if !crashed.is_empty() {
            tracing::warn!(nodes = ?crashed, replication = self.replication,
                "kvs node(s) crashed: keys none of whose replicas is left read as unavailable until one returns");
        }
        if !crashed.is_empty() || !returned.is_empty() {
            self.table.note_crashes(&crashed, &returned);
        }
    }
}

impl Handler<DeclareLost> for RoutingWatcher {
    type Result = Result<bool, String>;

    fn handle(&mut self, msg: DeclareLost, _: &mut Context<Self>) -> Self::Result {
        if self.table.get().node(&msg.node).is_some() {
            return Err(format!(
                "{} is a live KVS node here: only a crashed node's data can be declared lost",
                msg.node
            ));
        }
        let held = self.table.declare_lost(&msg.node);
        tracing::warn!(node = %msg.node, held,
            "an operator declared a crashed kvs node's data lost: keys only it held now read as missing");
        Ok(held)
    }
}

impl Handler<HandoffConfirmed> for RoutingWatcher {
    type Result = ();

    fn handle(&mut self, msg: HandoffConfirmed, _: &mut Context<Self>) {
        if msg.shard.node == self.transport.local_node().id {
            for m in &self.members {
                let to = ActorRef::new(m.clone(), ServiceId::KvsShard, 0);
                if let Err(e) = self
                    .transport
                    .handle::<HandoffConfirmed>(to)
                    .tell(msg.clone())
                {
                    tracing::debug!(peer = %m.id, cause = %e, "hand-off confirmation not relayed");
                }
            }
        }
        let changed = self.table.changed_at();
        if self.table.confirm_handoff(msg.to, msg.shard) {
            tracing::info!(
                secs = changed.elapsed().as_secs_f64(),
                "kvs hand-off confirmed by every shard: reads no longer ask the previous owners"
            );
        }
    }
}

impl Handler<ReplicationOverrides> for RoutingWatcher {
    type Result = ();

    fn handle(&mut self, msg: ReplicationOverrides, ctx: &mut Context<Self>) {
        let settle = Duration::from_millis(msg.settle_ms.min(MAX_SETTLE_MS));
        let changed = self.overrides.merge(&msg.entries, settle, Instant::now());
        self.table
            .set_override_registers(self.overrides.registers());
        self.apply_overrides(changed, ctx);
    }
}

impl RoutingWatcher {
    /// Route with the overrides as they are now, and have local shards hand off the keys
    /// `changed` names (after the routing, so they see it); come back when the next change
    /// is due.
    fn apply_overrides(&mut self, changed: Changed, ctx: &mut Context<Self>) {
        if changed.routing {
            self.table.set_overrides(self.overrides.routing_map());
            tracing::info!(keys = ?changed.hand_off, "kvs hot-key replication changed");
        }
        if !changed.hand_off.is_empty() {
            for s in &self.hand_off {
                s.do_send(HandOffKeys(changed.hand_off.clone()));
            }
        }
        let Some(due) = self.overrides.next_due() else {
            return;
        };
        if self.wake.is_some_and(|w| w <= due) {
            return;
        }
        self.wake = Some(due);
        ctx.run_later(due.saturating_duration_since(Instant::now()), |act, ctx| {
            act.wake = None;
            let changed = act.overrides.tick(Instant::now());
            act.apply_overrides(changed, ctx);
        });
    }
}
