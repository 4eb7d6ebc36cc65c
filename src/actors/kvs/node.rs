//! Starting the KVS tier on a node: the shard actors (one arbiter thread each, shared
//! nothing) when the node plays the `kvs` role, and on every node the routing watcher that
//! rebuilds the [`RoutingTable`] from the membership view and tells local shards to hand
//! off keys when it changes.

use super::client::KvsClient;
use super::messages::{KvsRequest, ShardAddr};
use super::routing::{Routing, RoutingTable};
use super::shard::{Drain, KvsShard, RoutingChanged};
use crate::config::{Config, Role};
use crate::net::membership::{Membership, Subscribe, ViewChanged};
use crate::net::{NetError, Transport};
use actix::prelude::*;
use std::time::Duration;

/// What the KVS tier of one node consists of.
pub struct KvsTier {
    pub routing: RoutingTable,
    pub client: KvsClient,
    pub shards: Vec<Addr<KvsShard>>,
    arbiters: Vec<Arbiter>,
}

impl KvsTier {
    /// Start the shards (if this node plays `kvs`) and the routing watcher. When a shard
    /// cannot register, the shards started so far are stopped.
    pub fn start(
        transport: &Transport,
        membership: &Addr<Membership>,
        cfg: &Config,
    ) -> Result<KvsTier, NetError> {
        let routing =
            RoutingTable::new(Routing::new([], cfg.kvs.virtual_nodes, cfg.kvs.replication));
        let mut shards = Vec::new();
        let mut arbiters = Vec::new();
        if cfg.node.roles.contains(&Role::Kvs) {
            for i in 0..cfg.kvs_shards() as u32 {
                let arbiter = Arbiter::new();
                let me = ShardAddr {
                    node: transport.local_node().id.clone(),
                    shard: i,
                };
                let (t, r) = (transport.clone(), routing.clone());
                let max = cfg.kvs.max_value_bytes;
                let every = Duration::from_millis(cfg.kvs.gossip_interval_ms);
                let addr = KvsShard::start_in_arbiter(&arbiter.handle(), move |_| {
                    KvsShard::new(me, max, t, r, every)
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
            shards: shards.iter().map(|a| a.clone().recipient()).collect(),
            vnodes: cfg.kvs.virtual_nodes,
            replication: cfg.kvs.replication,
        }
        .start();
        membership.do_send(Subscribe(watcher.recipient()));
        Ok(KvsTier {
            client: KvsClient::new(transport.clone(), routing.clone()),
            routing,
            shards,
            arbiters,
        })
    }

    /// Hand every key of this node's shards to the owners that remain without it (before a
    /// graceful leave), waiting at most `limit`. Returns whether every shard finished.
    pub async fn drain(&self, limit: Duration) -> bool {
        let all = futures::future::join_all(self.shards.iter().map(|s| s.send(Drain)));
        match tokio::time::timeout(limit, all).await {
            Ok(results) => results.into_iter().all(|r| matches!(r, Ok(true))),
            Err(_) => false,
        }
    }

    /// Stop the shard threads.
    pub fn stop(&self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}

/// Rebuilds the routing from each new view; tells local shards when it changed.
struct RoutingWatcher {
    table: RoutingTable,
    shards: Vec<Recipient<RoutingChanged>>,
    vnodes: usize,
    replication: usize,
}

impl Actor for RoutingWatcher {
    type Context = Context<Self>;
}

impl Handler<ViewChanged> for RoutingWatcher {
    type Result = ();

    fn handle(&mut self, msg: ViewChanged, _: &mut Context<Self>) {
        let next = Routing::from_view(&msg.view, self.vnodes, self.replication);
        let current = self.table.get();
        if same_nodes(&current, &next) {
            return;
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

fn same_nodes(a: &Routing, b: &Routing) -> bool {
    let mut x: Vec<_> = a.nodes().map(|n| (n.node.clone(), n.shards)).collect();
    let mut y: Vec<_> = b.nodes().map(|n| (n.node.clone(), n.shards)).collect();
    x.sort();
    y.sort();
    x == y
}
