//! The monitor actor: the I/O around the pure cores. Every tick it reconciles the provider's
//! launches with membership, builds the policy's observation from the view and the
//! executors' reports, and carries out the decision: a launch through the provider, or a
//! drain request to the chosen node (which finishes what it holds, leaves and exits);
//! once that node has left, the provider terminates (reaps) it.
//!
//! Only the acting monitor (the live, non-draining one with the lowest id) decides; the
//! others keep the reports and stand by. A monitor that starts acting starts its policy
//! afresh, so it does not scale down for one stable window.

use super::hot::Hot;
use super::kvs_scaler::{Io, KvsScaler};
use super::launches::{Effect, Launches, ProvidedNode};
use super::observe::{acting, observe, Reports, REPORT_FRESH};
use super::policy::{Action, Policy};
use super::provider::{NodeKind, NodeProvider};
use super::record::Record;
use crate::config::{AutoscaleConfig, Role};
use crate::ids::{NodeId, NodeRef};
use crate::net::membership::{Membership, Subscribe, View, ViewChanged};
use crate::net::{ActorRef, NetError, ServiceId, Transport};
use crate::protocol::scaling::MAX_WARM_FUNCTIONS;
use crate::protocol::{
    AutoscaleState, DrainNode, ExecutorsWanted, GetAutoscale, KvsReport, MonitorReport,
};
use actix::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The monitor actor.
pub struct Monitor {
    cfg: AutoscaleConfig,
    me: NodeRef,
    transport: Transport,
    view: View,
    reports: Reports,
    /// Some while this monitor acts.
    policy: Option<Policy>,
    launches: Launches,
    provider: Option<Box<dyn NodeProvider>>,
    /// Nodes asked to drain, and when (they are terminated once they left).
    draining: BTreeMap<NodeId, Instant>,
    /// Nodes terminated and not yet gone from the provider's list (not reaped twice).
    terminated: BTreeSet<NodeId>,
    /// How long a drained node may take to leave before it is terminated anyway.
    drain_limit: Duration,
    record: Record,
    /// Calls each scheduler holds for want of an executor, the functions they call, and
    /// when it said so.
    wanted: BTreeMap<NodeId, (u32, Vec<String>, Instant)>,
    /// Calls per function, decayed: what a launched executor loads first.
    hot: Hot,
    /// Since when calls wait with no executor in the cluster (a cold start under way).
    cold_since: Option<Instant>,
    /// The KVS elasticity (its own policy, launches and drains).
    kvs: KvsScaler,
}

/// Local: hand the provider over (the node stops its children itself, with a deadline).
#[derive(Message)]
#[rtype(result = "Option<Box<dyn NodeProvider>>")]
pub struct TakeProvider;

impl Monitor {
    /// Start the monitor on this node with `provider`; `drain_limit` bounds how long a
    /// node asked to drain may take to leave.
    pub fn start(
        transport: &Transport,
        membership: &Addr<Membership>,
        cfg: &AutoscaleConfig,
        provider: Box<dyn NodeProvider>,
        drain_limit: Duration,
        kvs: KvsScaler,
    ) -> Result<Addr<Monitor>, NetError> {
        let monitor = Monitor {
            cfg: cfg.clone(),
            me: transport.local_node().clone(),
            transport: transport.clone(),
            view: View::default(),
            reports: Reports::default(),
            policy: None,
            launches: Launches::new(cfg.launch_timeout(), cfg.max_launch_failures),
            provider: Some(provider),
            draining: BTreeMap::new(),
            terminated: BTreeSet::new(),
            drain_limit,
            record: Record::default(),
            wanted: BTreeMap::new(),
            hot: Hot::new(Instant::now()),
            cold_since: None,
            kvs,
        };
        // The provider may block (a Kubernetes API call, up to its timeouts): the monitor
        // runs on a thread of its own, so the node's other actors (membership's
        // heartbeats) never wait for it.
        let addr = Monitor::start_in_arbiter(&actix::Arbiter::new().handle(), |_| monitor);
        transport.register::<MonitorReport>(0, addr.clone().recipient())?;
        transport.register::<GetAutoscale>(0, addr.clone().recipient())?;
        transport.register::<ExecutorsWanted>(0, addr.clone().recipient())?;
        transport.register::<KvsReport>(0, addr.clone().recipient())?;
        membership.do_send(Subscribe(addr.clone().recipient()));
        Ok(addr)
    }

    /// Stop receiving (the actor stops with the system).
    pub fn unregister(transport: &Transport) {
        transport.unregister::<MonitorReport>(0);
        transport.unregister::<GetAutoscale>(0);
        transport.unregister::<ExecutorsWanted>(0);
        transport.unregister::<KvsReport>(0);
    }

    /// Calls the schedulers hold for want of an executor, as they last said (recently).
    fn calls_waiting(&self, now: Instant) -> u32 {
        self.wanted
            .values()
            .filter(|(_, _, at)| now.saturating_duration_since(*at) < REPORT_FRESH)
            .map(|(n, _, _)| *n)
            .fold(0, u32::saturating_add)
    }

    /// What a node launched now should load before it reports ready.
    fn warm_for_launch(&mut self, now: Instant) -> Vec<String> {
        let waited: Vec<String> = self
            .wanted
            .values()
            .filter(|(n, _, at)| *n > 0 && now.saturating_duration_since(*at) < REPORT_FRESH)
            .flat_map(|(_, functions, _)| functions.iter().cloned())
            .collect();
        self.hot.for_launch(&waited, now)
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let acts = acting(&self.view, &self.me);
        match (acts, self.policy.is_some()) {
            (true, false) => {
                tracing::info!("this monitor acts for the cluster");
                self.policy = Some(Policy::new(self.cfg.clone(), now));
            }
            (false, true) => {
                tracing::info!("another monitor acts; this one stands by");
                self.policy = None;
            }
            _ => {}
        }
        let Some(provider) = self.provider.as_mut() else {
            return;
        };
        let mut io = Io {
            provider: provider.as_mut(),
            transport: &self.transport,
            me: &self.me,
        };
        self.kvs.tick(acts, &self.view, &mut io, now);
        provider.keep_standbys(self.policy.is_some());
        let provided = provider.list_of(NodeKind::Executor);
        self.terminated
            .retain(|n| provided.iter().any(|p| p.node == *n));
        let live: BTreeSet<NodeId> = self.view.live().map(|m| m.node.id.clone()).collect();
        self.reports.retain(&live);
        let effects = self.launches.reconcile(&live, &provided, now);
        let terminated = self.apply(effects);
        self.reap(&provided, &live, &terminated, now);
        let waiting = self.calls_waiting(now);
        let Some(policy) = self.policy.as_mut() else {
            return;
        };
        let provided: BTreeSet<NodeId> = provided.into_iter().map(|p| p.node).collect();
        let asked: BTreeSet<NodeId> = self.draining.keys().cloned().collect();
        let pending = self.launches.pending();
        let obs = observe(
            &self.view,
            &self.reports,
            &provided,
            &asked,
            pending,
            waiting,
            now,
        );
        let tick = policy.tick(&obs, now);
        self.record.tick(tick.numbers);
        let Some(decision) = tick.decision else {
            return;
        };
        match &decision.action {
            Action::Launch { count } if !self.launches.may_launch() => {
                tracing::debug!(count, "launches stopped after repeated failures");
                return;
            }
            Action::Launch { count } => self.launch(*count, "launch_failed"),
            Action::Drain { node } => self.ask_to_drain(node, now),
        }
        self.record.decision(unix_ms(), &decision);
    }

    fn launch(&mut self, count: u32, failure: &str) {
        let warm = self.warm_for_launch(Instant::now());
        let Some(provider) = self.provider.as_mut() else {
            return;
        };
        match provider.launch(NodeKind::Executor, count, &warm) {
            Ok(ids) => self.launches.launched(ids, Instant::now()),
            Err(e) => {
                tracing::warn!(cause = %e, "the provider could not launch executor nodes");
                let n = self.record.last();
                self.record
                    .other(unix_ms(), failure, count, None, &e.to_string(), n);
            }
        }
    }

    fn ask_to_drain(&mut self, node: &NodeId, now: Instant) {
        self.draining.insert(node.clone(), now);
        self.send_drain(node);
    }

    /// (Again) ask `node` to drain; a lost request is repeated every tick until the view
    /// shows it draining.
    fn send_drain(&self, node: &NodeId) {
        let Some(member) = self.view.get(node) else {
            return;
        };
        let target = ActorRef::new(member.node.clone(), ServiceId::Executor, 0);
        let h = self.transport.handle::<DrainNode>(target);
        if let Err(e) = h.tell(DrainNode {
            by: self.me.clone(),
        }) {
            tracing::debug!(node = %node, cause = %e, "drain request not sent");
        }
    }

    /// Carry out what reconciling asked; returns the nodes terminated.
    fn apply(&mut self, effects: Vec<Effect>) -> BTreeSet<NodeId> {
        let n = self.record.last();
        let mut terminated = BTreeSet::new();
        for effect in effects {
            match effect {
                Effect::Terminate(node) => {
                    self.terminate(&node);
                    terminated.insert(node.clone());
                    self.record
                        .other(unix_ms(), "terminate", 0, Some(&node), "not_joined", n);
                }
                Effect::Relaunch(count) => {
                    self.record
                        .other(unix_ms(), "relaunch", count, None, "not_joined", n);
                    self.launch(count, "relaunch_failed");
                }
                Effect::GiveUp { failures } => {
                    tracing::error!(failures, "executor launches keep failing; the monitor launches no more (see the nodes' logs)");
                    self.record
                        .other(unix_ms(), "give_up", failures, None, "launch_failures", n);
                }
            }
        }
        terminated
    }

    /// Terminate the drained nodes that left (or overran the drain limit), and reap
    /// launched nodes whose process ended by itself (but not those in `terminated`).
    fn reap(
        &mut self,
        provided: &[ProvidedNode],
        live: &BTreeSet<NodeId>,
        terminated: &BTreeSet<NodeId>,
        now: Instant,
    ) {
        let n = self.record.last();
        let asked: Vec<(NodeId, Instant)> =
            self.draining.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for (node, since) in asked {
            let left = !live.contains(&node);
            let overran = now.saturating_duration_since(since) >= self.drain_limit;
            if left || overran {
                self.terminate(&node);
                self.draining.remove(&node);
                let reason = if left { "drained" } else { "drain_overran" };
                self.record
                    .other(unix_ms(), "terminate", 0, Some(&node), reason, n);
            } else if self.view.get(&node).is_some_and(|m| !m.draining) {
                self.send_drain(&node);
            }
        }
        for p in provided {
            let known = self.draining.contains_key(&p.node)
                || self.launches.is_pending(&p.node)
                || terminated.contains(&p.node)
                || self.terminated.contains(&p.node);
            if !p.running && !known {
                self.terminate(&p.node);
                self.record
                    .other(unix_ms(), "terminate", 0, Some(&p.node), "exited", n);
            }
        }
    }

    fn terminate(&mut self, node: &NodeId) {
        self.terminated.insert(node.clone());
        if let Some(provider) = self.provider.as_mut() {
            if let Err(e) = provider.terminate(node) {
                tracing::warn!(node = %node, cause = %e, "cannot terminate executor node");
            }
        }
    }

    fn state(&self) -> AutoscaleState {
        AutoscaleState {
            node: self.me.id.to_string(),
            acting: self.policy.is_some(),
            min_executors: u32::try_from(self.cfg.min_executors).unwrap_or(u32::MAX),
            max_executors: u32::try_from(self.cfg.max_executors).unwrap_or(u32::MAX),
            gave_up: !self.launches.may_launch(),
            kvs: Some(self.kvs.state(Instant::now())),
            warm: self.reports.warm(),
            ..self.record.state()
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.cfg.tick(), |act, _| act.tick());
    }
}

impl Handler<MonitorReport> for Monitor {
    type Result = ();
    fn handle(&mut self, msg: MonitorReport, _: &mut Context<Self>) {
        let now = Instant::now();
        self.hot.record(&msg.status.load.functions, now);
        self.reports.record(msg.status, now);
        if let Some(since) = self.cold_since.take() {
            let ms = now.saturating_duration_since(since).as_millis();
            self.record
                .cold_start(u64::try_from(ms).unwrap_or(u64::MAX));
        }
    }
}

impl Handler<KvsReport> for Monitor {
    type Result = ();
    fn handle(&mut self, msg: KvsReport, _: &mut Context<Self>) {
        self.kvs.report(msg.status, Instant::now());
    }
}

impl Handler<ExecutorsWanted> for Monitor {
    type Result = ();
    fn handle(&mut self, msg: ExecutorsWanted, _: &mut Context<Self>) {
        let now = Instant::now();
        let was = self.calls_waiting(now);
        let mut functions = msg.functions;
        functions.truncate(MAX_WARM_FUNCTIONS);
        self.wanted
            .insert(msg.scheduler.id.clone(), (msg.calls, functions, now));
        let none_runs = self.view.live_with_role(Role::Executor).next().is_none();
        if msg.calls > 0 && none_runs && self.cold_since.is_none() {
            self.cold_since = Some(now);
        }
        // A cold start does not wait for the next tick.
        if was == 0 && msg.calls > 0 && self.policy.is_some() {
            self.tick();
        }
    }
}

impl Handler<GetAutoscale> for Monitor {
    type Result = MessageResult<GetAutoscale>;
    fn handle(&mut self, _: GetAutoscale, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state())
    }
}

impl Handler<ViewChanged> for Monitor {
    type Result = ();
    fn handle(&mut self, msg: ViewChanged, _: &mut Context<Self>) {
        self.view = msg.view;
    }
}

impl Handler<TakeProvider> for Monitor {
    type Result = Option<Box<dyn NodeProvider>>;
    fn handle(&mut self, _: TakeProvider, _: &mut Context<Self>) -> Self::Result {
        self.provider.take()
    }
}
