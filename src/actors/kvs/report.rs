//! A KVS node's load report: once per [`KVS_REPORT_INTERVAL`] the reporter takes every
//! local shard's [`ShardLoad`] (which starts its next window), sums them into a
//! [`KvsNodeStatus`] with the node's memory budget (each hot key with its replica count
//! in the node's routing), and sends it to every live monitor.
//! It also takes the monitor's [`DrainKvsNode`]: the node then drains and stops as on
//! SIGTERM (its shards hand every key to the remaining owners before it leaves).

use super::load::ShardLoad;
use super::routing::RoutingTable;
use super::shard::KvsShard;
use crate::config::Role;
use crate::ids::{Key, NodeRef};
use crate::net::membership::ViewChanged;
use crate::net::{ActorRef, ServiceId, Transport};
use crate::protocol::kvs_scaling::MAX_REPORTED_HOT_KEYS;
use crate::protocol::{DrainKvsNode, HotKey, KvsNodeMetrics, KvsNodeStatus, KvsReport};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often a KVS node reports its load: often enough that the monitor's windows (of
/// seconds) average several reports, rarely enough to cost nothing.
pub const KVS_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Local: a shard's load since the last time it was asked; a new window starts.
#[derive(Message)]
#[rtype(result = "ShardLoad")]
pub struct TakeLoad;

impl Handler<TakeLoad> for KvsShard {
    type Result = MessageResult<TakeLoad>;
    fn handle(&mut self, _: TakeLoad, _: &mut Context<Self>) -> Self::Result {
        let (keys, bytes) = self.core.size();
        let now = crate::clock::now_micros();
        MessageResult(self.meter.take(now, keys, bytes))
    }
}

/// A node's status from its shards' loads of one window; `replicas` tells a key's replica
/// count.
pub fn node_status(
    node: NodeRef,
    loads: &[ShardLoad],
    (budget_bytes, draining): (u64, bool),
    replicas: impl Fn(&str) -> u32,
) -> KvsNodeStatus {
    let n = loads.len().max(1) as f64;
    let requests: u64 = loads.iter().map(|l| l.requests).sum();
    let service_sum: u64 = loads.iter().map(|l| l.service_us_sum).sum();
    let mut hot: HashMap<&str, u64> = HashMap::new();
    // A key lives in one shard of a node: summing is exact across shards.
    for l in loads {
        for (k, c) in &l.hot {
            *hot.entry(k.as_str()).or_default() += c;
        }
    }
    let mut hot_keys: Vec<(String, u64)> =
        hot.into_iter().map(|(k, c)| (k.to_string(), c)).collect();
    hot_keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    hot_keys.truncate(MAX_REPORTED_HOT_KEYS);
    let hot_keys = hot_keys
        .into_iter()
        .map(|(key, count)| HotKey {
            replicas: replicas(&key),
            key,
            count,
        })
        .collect();
    KvsNodeStatus {
        node,
        shards: u32::try_from(loads.len()).unwrap_or(u32::MAX),
        keys: loads.iter().map(|l| l.keys).sum(),
        bytes: loads.iter().map(|l| l.bytes).sum(),
        budget_bytes,
        window_ms: loads.iter().map(|l| l.window_us).max().unwrap_or(0) / 1000,
        occupancy: loads.iter().map(ShardLoad::occupancy).sum::<f64>() / n,
        occupancy_max: loads.iter().map(ShardLoad::occupancy).fold(0.0, f64::max),
        gets: loads.iter().map(|l| l.gets).sum(),
        puts: loads.iter().map(|l| l.puts).sum(),
        requests,
        service_us_mean: match requests {
            0 => 0.0,
            r => service_sum as f64 / r as f64,
        },
        service_us_max: loads.iter().map(|l| l.service_us_max).max().unwrap_or(0),
        hot_keys,
        draining,
    }
}

/// Local: this node's last report and its totals since start (for its admin port).
#[derive(Message)]
#[rtype(result = "KvsNodeMetrics")]
pub struct GetKvsNodeMetrics;

/// Gathers this node's shards' loads and reports them to the monitors.
pub struct KvsReporter {
    pub transport: Transport,
    pub shards: Vec<Addr<KvsShard>>,
    pub budget_bytes: u64,
    monitors: Vec<ActorRef>,
    draining: bool,
    /// Notified when a monitor asks this node to leave ([`DrainKvsNode`]).
    drain_requested: Arc<Notify>,
    /// The last report, and the windows' gets and puts added up.
    metrics: KvsNodeMetrics,
    routing: RoutingTable,
}

impl KvsReporter {
    pub fn new(
        transport: Transport,
        shards: Vec<Addr<KvsShard>>,
        budget_bytes: u64,
        drain_requested: Arc<Notify>,
        routing: RoutingTable,
    ) -> Self {
        KvsReporter {
            transport,
            shards,
            budget_bytes,
            monitors: Vec::new(),
            draining: false,
            drain_requested,
            metrics: KvsNodeMetrics::default(),
            routing,
        }
    }

    fn report(&self, ctx: &mut Context<Self>) {
        let shards = self.shards.clone();
        let (me, budget, draining) = (
            self.transport.local_node().clone(),
            self.budget_bytes,
            self.draining,
        );
        let (transport, monitors) = (self.transport.clone(), self.monitors.clone());
        let routing = self.routing.clone();
        let gather = async move {
            let asked = futures::future::join_all(shards.iter().map(|s| s.send(TakeLoad)));
            let loads: Vec<ShardLoad> = asked.await.into_iter().filter_map(Result::ok).collect();
            let routing = routing.get();
            let replicas = |k: &str| {
                let n = routing.replicas(&Key::new(k)).len();
                u32::try_from(n).unwrap_or(u32::MAX)
            };
            let status = node_status(me, &loads, (budget, draining), replicas);
            for m in &monitors {
                let h = transport.handle::<KvsReport>(m.clone());
                if let Err(e) = h.tell(KvsReport {
                    status: status.clone(),
                }) {
                    tracing::debug!(monitor = %m, cause = %e, "kvs status not sent");
                }
            }
            status
        };
        ctx.spawn(
            gather
                .into_actor(self)
                .map(|status, act, _| act.metrics.add(status)),
        );
    }
}

impl Actor for KvsReporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(KVS_REPORT_INTERVAL, |act, ctx| act.report(ctx));
    }
}

impl Handler<ViewChanged> for KvsReporter {
    type Result = ();
    fn handle(&mut self, msg: ViewChanged, _: &mut Context<Self>) {
        self.monitors = msg
            .view
            .live_with_role(Role::Monitor)
            .map(|m| ActorRef::new(m.node.clone(), ServiceId::Monitor, 0))
            .collect();
        let me = self.transport.local_node();
        self.draining = msg
            .view
            .get(&me.id)
            .is_some_and(|m| m.node == *me && m.draining);
    }
}

impl Handler<GetKvsNodeMetrics> for KvsReporter {
    type Result = MessageResult<GetKvsNodeMetrics>;
    fn handle(&mut self, _: GetKvsNodeMetrics, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.metrics.clone())
    }
}

impl Handler<DrainKvsNode> for KvsReporter {
    type Result = ();
    fn handle(&mut self, msg: DrainKvsNode, _: &mut Context<Self>) {
        tracing::info!(monitor = %msg.by, "the monitor asks this kvs node to leave");
        self.drain_requested.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Generation, NodeId};

    fn load(busy_us: u64, requests: u64, hot: &[(&str, u64)], bytes: u64) -> ShardLoad {
        ShardLoad {
            window_us: 1_000_000,
            busy_us,
            gets: requests,
            puts: 0,
            requests,
            service_us_sum: busy_us,
            service_us_max: busy_us / requests.max(1),
            hot: hot.iter().map(|(k, c)| (k.to_string(), *c)).collect(),
            keys: 10,
            bytes,
        }
    }

    #[test]
    fn a_node_sums_its_shards() {
        let node = NodeRef {
            id: NodeId::new("n"),
            generation: Generation(1),
        };
        let loads = [
            load(500_000, 100, &[("a", 50), ("b", 5)], 1_000),
            load(100_000, 100, &[("c", 60)], 3_000),
        ];
        let s = node_status(node, &loads, (10_000, false), |k| match k {
            "c" => 3,
            _ => 1,
        });
        assert_eq!(
            (s.shards, s.keys, s.bytes, s.budget_bytes),
            (2, 20, 4_000, 10_000)
        );
        assert!((s.occupancy - 0.3).abs() < 1e-9 && (s.occupancy_max - 0.5).abs() < 1e-9);
        assert_eq!((s.requests, s.gets, s.window_ms), (200, 200, 1_000));
        assert!((s.service_us_mean - 3_000.0).abs() < 1e-9);
        let hot: Vec<(&str, u64, u32)> = s
            .hot_keys
            .iter()
            .map(|h| (h.key.as_str(), h.count, h.replicas))
            .collect();
        assert_eq!(hot, vec![("c", 60, 3), ("a", 50, 1), ("b", 5, 1)]);
    }

    #[test]
    fn a_node_without_requests_reports_zeroes() {
        let node = NodeRef {
            id: NodeId::new("n"),
            generation: Generation(1),
        };
        let s = node_status(node, &[], (1, true), |_| 1);
        assert_eq!((s.requests, s.service_us_mean, s.occupancy), (0, 0.0, 0.0));
        assert!(s.draining);
    }
}
