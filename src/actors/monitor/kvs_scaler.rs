//! The monitor's KVS side: the I/O around [`KvsPolicy`]. Every tick of the monitor it
//! reconciles the KVS nodes the provider launched with membership, builds the policy's
//! observation from the view and the KVS nodes' reports, and carries out the decision: a
//! launch through the provider, or a [`DrainKvsNode`] to the chosen node, which hands every
//! key to the owners that remain, leaves, and exits; only once it has left does the
//! provider terminate (reap) it.
//!
//! It also runs the selective replication of hot keys ([`HotPolicy`]): the acting monitor
//! keeps a table of per-key replication registers, adopted from its node's routing when it
//! starts acting, and sends it to every live node whenever it changes and every tick.

use super::kvs_hot::{HotDecision, HotPolicy};
use super::kvs_policy::{KvsAction, KvsDecision, KvsNode, KvsNumbers, KvsObservation, KvsPolicy};
use super::launches::{Effect, Launches};
use super::policy::NodeState;
use super::provider::{NodeKind, NodeProvider};
use crate::actors::kvs::RoutingTable;
use crate::config::{Config, KvsAutoscaleConfig, Role};
use crate::ids::{NodeId, NodeRef};
use crate::net::membership::View;
use crate::net::{ActorRef, ServiceId, Transport};
use crate::protocol::kvs_scaling::{MAX_DECISION_KINDS, MAX_REPLICATION_OVERRIDES};
use crate::protocol::{
    DrainKvsNode, KvsAutoscaleState, KvsDecisionCount, KvsDecisionRecord, KvsNodeStatus,
    ReplicationOverride, ReplicationOverrides,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A KVS report older than this is not taken as the node's load (the node counts as
/// starting): three of the nodes' one-second report intervals.
pub const KVS_REPORT_FRESH: Duration = Duration::from_secs(3);
/// How long a KVS node asked to leave may take before it is terminated anyway: its
/// shards' hand-off is bounded by 30 s, and the leave and exit take a few more.
pub const KVS_DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// KVS decisions kept to show (the newest; older ones are only in the log).
pub const MAX_KVS_DECISIONS_KEPT: usize = crate::protocol::scaling::MAX_DECISIONS_KEPT;

/// The monitor's KVS elasticity.
pub struct KvsScaler {
    cfg: KvsAutoscaleConfig,
    replication: usize,
    reports: BTreeMap<NodeId, (KvsNodeStatus, Instant)>,
    /// Some while this monitor acts.
    policy: Option<KvsPolicy>,
    launches: Launches,
    /// Nodes asked to leave, and when.
    draining: BTreeMap<NodeId, Instant>,
    last: KvsNumbers,
    decisions: VecDeque<KvsDecisionRecord>,
    /// Decisions ever taken, by (action, reason): at most [`MAX_DECISION_KINDS`] kinds.
    counts: BTreeMap<(String, String), u64>,
    /// Some while this monitor acts: the hot keys' replication.
    hot: Option<HotPolicy>,
    /// This node's routing (the override registers it holds, adopted on taking over).
    routing: RoutingTable,
    /// The replication registers this monitor sends (replicated keys, and those returned
    /// to the default lately).
    table: BTreeMap<String, ReplicationOverride>,
}

impl KvsScaler {
    pub fn new(cfg: &Config, routing: RoutingTable) -> KvsScaler {
        let a = &cfg.autoscale;
        KvsScaler {
            cfg: cfg.kvs_autoscale.clone(),
            replication: cfg.kvs.replication,
            reports: BTreeMap::new(),
            policy: None,
            launches: Launches::new(a.launch_timeout(), a.max_launch_failures),
            draining: BTreeMap::new(),
            last: KvsNumbers::default(),
            decisions: VecDeque::new(),
            counts: BTreeMap::new(),
            hot: None,
            routing,
            table: BTreeMap::new(),
        }
    }

    /// A KVS node reported its load.
    pub fn report(&mut self, status: KvsNodeStatus, now: Instant) {
        let status = status.sanitized();
        if let Some(hot) = &mut self.hot {
            hot.record(&status, now);
        }
        self.reports.insert(status.node.id.clone(), (status, now));
    }

    /// The last fresh report of each KVS node.
    fn statuses(&self, now: Instant) -> Vec<KvsNodeStatus> {
        self.reports
            .values()
            .filter(|(_, at)| now.saturating_duration_since(*at) < KVS_REPORT_FRESH)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// What the dashboard shows: the last tick's numbers, the newest decisions (oldest
    /// first) and each KVS node's last report.
    pub fn state(&self, now: Instant) -> KvsAutoscaleState {
        KvsAutoscaleState {
            enabled: self.cfg.enabled,
            min_kvs: u32::try_from(self.cfg.min_kvs).unwrap_or(u32::MAX),
            max_kvs: u32::try_from(self.cfg.max_kvs).unwrap_or(u32::MAX),
            replication: u32::try_from(self.replication).unwrap_or(u32::MAX),
            decision_counts: self
                .counts
                .iter()
                .map(|((action, reason), count)| KvsDecisionCount {
                    action: action.clone(),
                    reason: reason.clone(),
                    count: *count,
                })
                .collect(),
            last: self.last,
            decisions: self.decisions.iter().cloned().collect(),
            nodes: self.statuses(now),
        }
    }

    /// One monitor tick: reconcile, then (when this monitor acts) decide and act.
    pub fn tick(&mut self, acting: bool, view: &View, io: &mut Io<'_>, now: Instant) {
        match (acting, self.policy.is_some()) {
            (true, false) => {
                self.policy = Some(KvsPolicy::new(self.cfg.clone(), now));
                self.take_over(now);
            }
            (false, true) => {
                self.policy = None;
                self.hot = None;
            }
            _ => {}
        }
        let provided = io.provider.list_of(NodeKind::Kvs);
        let live: BTreeSet<NodeId> = view
            .live_with_role(Role::Kvs)
            .map(|m| m.node.id.clone())
            .collect();
        self.reports.retain(|n, _| live.contains(n));
        for effect in self.launches.reconcile(&live, &provided, now) {
            match effect {
                Effect::Terminate(node) => {
                    terminate(io.provider, &node);
                    self.note("terminate", Some(&node), "not_joined");
                }
                Effect::Relaunch(count) => {
                    self.note("relaunch", None, "not_joined");
                    self.launch(io.provider, count, now);
                }
                Effect::GiveUp { .. } => {
                    tracing::error!("kvs node launches keep failing; the monitor launches no more");
                    self.note("give_up", None, "launch_failures");
                }
            }
        }
        self.reap(view, &live, io, now);
        let removable = io.provider.kvs_removable(&provided);
        let obs = self.observe(view, &removable, now);
        let Some(policy) = self.policy.as_mut() else {
            return;
        };
        let tick = policy.tick(&obs, now);
        self.last = tick.numbers;
        if let Some(d) = tick.decision {
            self.carry_out(d, view, io, now);
        }
        self.replicate(view, io, now);
    }

    /// Start acting for hot keys: adopt the registers this node holds (a previous
    /// monitor's), so their keys cool down in time and new epochs continue above theirs.
    fn take_over(&mut self, now: Instant) {
        let mut hot = HotPolicy::new(self.cfg.clone(), self.replication, now);
        let held: Vec<(String, ReplicationOverride)> = self
            .routing
            .override_registers()
            .into_iter()
            .map(|(k, r)| (k.to_string(), r))
            .collect();
        hot.adopt(&held);
        self.table = held.into_iter().collect();
        self.hot = Some(hot);
    }

    /// Decide on the hot keys, and send the table to every live node (when it holds
    /// anything: a cluster that never replicated a key hears nothing).
    fn replicate(&mut self, view: &View, io: &mut Io<'_>, now: Instant) {
        let Some(hot) = self.hot.as_mut() else {
            return;
        };
        let nodes = view
            .live_with_role(Role::Kvs)
            .filter(|m| !m.draining && !self.draining.contains_key(&m.node.id))
            .count();
        for d in hot.tick(nodes, now, unix_ms()) {
            self.table.insert(d.key.clone(), d.register);
            self.note_hot(&d);
        }
        self.bound_table();
        if self.table.is_empty() {
            return;
        }
        let msg = ReplicationOverrides {
            entries: self.table.iter().map(|(k, r)| (k.clone(), *r)).collect(),
            settle_ms: self.cfg.hot_key_settle_ms,
        };
        for m in view.live() {
            let to = ActorRef::new(m.node.clone(), ServiceId::KvsShard, 0);
            if let Err(e) = io
                .transport
                .handle::<ReplicationOverrides>(to)
                .tell(msg.clone())
            {
                tracing::debug!(node = %m.node.id, cause = %e, "replication table not sent");
            }
        }
    }

    /// At most [`MAX_REPLICATION_OVERRIDES`] registers: the oldest returned to the default
    /// go first.
    fn bound_table(&mut self) {
        while self.table.len() > MAX_REPLICATION_OVERRIDES {
            let k = self.replication as u32;
            let oldest = self
                .table
                .iter()
                .min_by_key(|(_, r)| (r.factor > k, r.epoch))
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => self.table.remove(&key),
                None => break,
            };
        }
    }

    /// Log and keep one hot-key decision.
    fn note_hot(&mut self, d: &HotDecision) {
        let action = match d.why {
            super::kvs_hot::HotWhy::Hot { .. } => "replicate",
            super::kvs_hot::HotWhy::Cooled { .. } => "dereplicate",
        };
        let (reason, detail) = (d.why.name(), d.why.detail());
        tracing::info!(action, key = %d.key, replicas = d.register.factor, epoch = d.register.epoch,
            reason, detail = %detail, "kvs autoscale decision");
        self.keep(KvsDecisionRecord {
            at_ms: unix_ms(),
            action: action.to_string(),
            node: None,
            reason: reason.to_string(),
            numbers: self.last,
            key: Some(d.key.clone()),
            replicas: Some(d.register.factor),
            detail,
        });
    }

    fn keep(&mut self, record: KvsDecisionRecord) {
        count_decision(&mut self.counts, &record.action, &record.reason);
        if self.decisions.len() == MAX_KVS_DECISIONS_KEPT {
            self.decisions.pop_front();
        }
        self.decisions.push_back(record);
    }

    /// Terminate the nodes asked to leave once they left (their shards handed every key
    /// off before the leave) or overran [`KVS_DRAIN_LIMIT`]; ask again those the view does
    /// not show leaving yet.
    fn reap(&mut self, view: &View, live: &BTreeSet<NodeId>, io: &mut Io<'_>, now: Instant) {
        let asked: Vec<(NodeId, Instant)> =
            self.draining.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for (node, since) in asked {
            let left = !live.contains(&node);
            let overran = now.saturating_duration_since(since) >= KVS_DRAIN_LIMIT;
            if left || overran {
                terminate(io.provider, &node);
                self.draining.remove(&node);
                let reason = if left { "drained" } else { "drain_overran" };
                self.note("terminate", Some(&node), reason);
            } else if view.get(&node).is_some_and(|m| !m.draining) {
                send_drain(view, &node, io);
            }
        }
    }

    fn observe(&self, view: &View, removable: &BTreeSet<NodeId>, now: Instant) -> KvsObservation {
        let nodes = view
            .live_with_role(Role::Kvs)
            .map(|m| {
                let status = self
                    .reports
                    .get(&m.node.id)
                    .filter(|(s, at)| {
                        now.saturating_duration_since(*at) < KVS_REPORT_FRESH && s.node == m.node
                    })
                    .map(|(s, _)| s);
                let asked = self.draining.contains_key(&m.node.id);
                let state = match status {
                    _ if m.draining || asked => NodeState::Draining,
                    Some(s) if s.draining => NodeState::Draining,
                    Some(_) => NodeState::Active,
                    None => NodeState::Starting,
                };
                KvsNode {
                    node: m.node.id.clone(),
                    state,
                    bytes: status.map_or(0, |s| s.bytes),
                    budget_bytes: status.map_or(0, |s| s.budget_bytes),
                    occupancy: status.map_or(0.0, |s| s.occupancy),
                    service_us: status.map_or(0.0, |s| s.service_us_mean),
                    requests: status.map_or(0, |s| s.requests),
                    removable: removable.contains(&m.node.id),
                }
            })
            .collect();
        KvsObservation {
            nodes,
            launches_pending: self.launches.pending(),
            replication: self.replication,
        }
    }

    fn carry_out(&mut self, d: KvsDecision, view: &View, io: &mut Io<'_>, now: Instant) {
        let reason = d.reason.name();
        match &d.action {
            KvsAction::Launch { count } => {
                if !self.launches.may_launch() {
                    return;
                }
                self.note("launch", None, reason);
                self.launch(io.provider, *count, now);
            }
            KvsAction::Drain { node } => {
                self.note("drain", Some(node), reason);
                self.draining.insert(node.clone(), now);
                send_drain(view, node, io);
            }
        }
    }

    fn launch(&mut self, provider: &mut dyn NodeProvider, count: u32, now: Instant) {
        match provider.launch(NodeKind::Kvs, count, &[]) {
            Ok(ids) => self.launches.launched(ids, now),
            Err(e) => {
                tracing::warn!(cause = %e, "the provider could not launch kvs nodes");
                self.note("launch_failed", None, &e.to_string());
            }
        }
    }

    /// Log and keep one decision or provider action.
    fn note(&mut self, action: &str, node: Option<&NodeId>, reason: &str) {
        let n = self.last;
        tracing::info!(
            action,
            node = node.map(|n| n.as_str()).unwrap_or(""),
            reason,
            active = n.active,
            starting = n.starting,
            draining = n.draining,
            pending = n.pending,
            bytes = n.bytes,
            budget_bytes = n.budget_bytes,
            storage = n.storage,
            occupancy_min = n.occupancy_min,
            occupancy_mean = n.occupancy_mean,
            service_us = n.service_us,
            "kvs autoscale decision"
        );
        self.keep(KvsDecisionRecord {
            at_ms: unix_ms(),
            action: action.to_string(),
            node: node.map(|n| n.to_string()),
            reason: reason.to_string(),
            numbers: n,
            key: None,
            replicas: None,
            detail: String::new(),
        });
    }
}

/// Count one decision under (action, reason), or (action, `other`) once
/// [`MAX_DECISION_KINDS`] kinds are counted.
fn count_decision(counts: &mut BTreeMap<(String, String), u64>, action: &str, reason: &str) {
    let mut kind = (action.to_string(), reason.to_string());
    if !counts.contains_key(&kind) && counts.len() >= MAX_DECISION_KINDS {
        kind.1 = "other".to_string();
    }
    *counts.entry(kind).or_default() += 1;
}

/// What a tick acts through.
pub struct Io<'a> {
    pub provider: &'a mut dyn NodeProvider,
    pub transport: &'a Transport,
    pub me: &'a NodeRef,
}

fn terminate(provider: &mut dyn NodeProvider, node: &NodeId) {
    if let Err(e) = provider.terminate(node) {
        tracing::warn!(node = %node, cause = %e, "cannot terminate kvs node");
    }
}

/// (Again) ask `node` to leave; a lost request is repeated every tick until the view shows
/// it draining.
fn send_drain(view: &View, node: &NodeId, io: &Io<'_>) {
    let Some(member) = view.get(node) else {
        return;
    };
    let target = ActorRef::new(member.node.clone(), ServiceId::Node, 0);
    let h = io.transport.handle::<DrainKvsNode>(target);
    if let Err(e) = h.tell(DrainKvsNode { by: io.me.clone() }) {
        tracing::debug!(node = %node, cause = %e, "kvs drain request not sent");
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_counted_by_kind_and_the_kinds_are_bounded() {
        let mut counts = BTreeMap::new();
        count_decision(&mut counts, "launch", "storage");
        count_decision(&mut counts, "launch", "storage");
        count_decision(&mut counts, "drain", "underused");
        assert_eq!(counts[&("launch".into(), "storage".into())], 2);
        for i in 0..MAX_DECISION_KINDS * 2 {
            count_decision(&mut counts, "launch_failed", &format!("error {i}"));
        }
        assert_eq!(
            counts.len(),
            MAX_DECISION_KINDS + 1,
            "the rest share `other`"
        );
        let other = counts[&("launch_failed".into(), "other".into())];
        assert_eq!(
            other,
            (MAX_DECISION_KINDS * 2 - (MAX_DECISION_KINDS - 2)) as u64
        );
    }
}
