//! The executor: one actor per executor node (`ServiceId::Executor`, instance 0) owning a
//! [`PythonPool`]. It holds schedules until their upstream triggers arrive, runs functions,
//! passes results straight to downstream executors, and reports its status (load, Python
//! version) to every scheduler. Its messages are in [`crate::protocol`].
//!
//! - `core.rs`: schedules and triggers waiting for each other (no I/O).
//! - `run.rs`: running a ready function and delivering its outcome.
//! - `env.rs`: what running calls share; functions loaded by name + content hash.
//! - `delivered.rs`: the deliveries of calls, told to their schedulers in batches.
//! - `claims.rs`: calls another gateway claimed, and delivered outcomes held for them.
//! - `session.rs`: reads and writes under the call's consistency mode.
//! - `library.rs`: the user library (`cb`) of one invocation.
//! - `mailbox.rs`: invocation ids and inboxes for `cb.send` / `cb.recv`.
//! - `meter.rs`: calls in the executor integrated over time (the load it reports).
//! - `warm.rs`: loading the hot functions into every worker before reporting ready.

pub mod claims;
pub mod core;
pub mod delivered;
pub mod env;
pub mod library;
pub mod mailbox;
pub mod meter;
pub mod run;
pub mod session;
pub mod session_core;
pub mod warm;

use self::core::{ExecutorCore, Step};
use self::env::ExecEnv;
use self::meter::{Running, SharedMeter};
use crate::actors::cache::{CacheHandle, StateAccess};
use crate::config::{Config, Role};
use crate::net::membership::{Membership, Subscribe, ViewChanged};
use crate::net::{ActorRef, NetError, ServiceId, Transport};
use crate::protocol::load::MAX_REPORTED_FUNCTIONS;
use crate::protocol::{
    CallFailure, Cancel, ClaimCall, Claimed, Deliver, DrainNode, ErrorCode, ExecutorLoad,
    ExecutorStatus, MonitorReport, NodeState, Schedule, Trigger,
};
use crate::pyrt::{PoolConfig, PyRuntimeError, PythonPool};
use actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often an executor reports its status to the schedulers (and expires waiting
/// entries). Placement reads utilisation this stale at most.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(250);
/// Mailbox of the executor actor: schedules, triggers and sends from the whole cluster
/// queue here; a full mailbox makes senders fail fast (`QueueFull`) rather than buffer.
pub const MAILBOX_CAPACITY: usize = 4096;
/// Schedules and triggers waiting for each other, at most.
pub const MAX_WAITING: usize = 65_536;
/// A schedule or trigger waiting this long is dropped (its call failed or was lost
/// upstream). Longer than any sane function timeout chain.
pub const WAITING_EXPIRY: Duration = Duration::from_secs(600);

/// Why an executor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Python(#[from] PyRuntimeError),
    #[error(transparent)]
    Net(#[from] NetError),
}

/// The executor actor.
pub struct Executor {
    core: ExecutorCore,
    env: Arc<ExecEnv>,
    schedulers: Vec<ActorRef>,
    /// The live monitors: they get the same status (the load they scale on).
    monitors: Vec<ActorRef>,
    /// Told when a monitor asks this node to drain (the node's serve loop waits on it).
    drain_requested: Arc<tokio::sync::Notify>,
    /// Functions running (and failures being reported), integrated over time.
    meter: Arc<SharedMeter>,
    /// This node declared itself draining (it reports so).
    draining: bool,
    /// A node provider launched this node (it reports so: any acting monitor may remove it).
    launched: bool,
}

/// Local: what the executor holds and runs now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Load")]
pub struct GetLoad;

/// An executor's work under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
pub struct Load {
    /// Schedules waiting for upstream results.
    pub held: usize,
    /// Functions running, failures being reported, and deliveries not told to their
    /// schedulers yet.
    pub running: usize,
}

impl Load {
    /// Nothing held, nothing running.
    pub fn is_idle(&self) -> bool {
        self.held == 0 && self.running == 0
    }
}

/// Workers started before the node joined (a standby node), and the functions to load
/// into them before the executor reports ready.
pub struct Prestarted {
    pub pool: PythonPool,
    pub warm: Vec<String>,
}

/// A started executor.
pub struct ExecutorHandle {
    pub addr: Addr<Executor>,
    pub pool: PythonPool,
    /// Its address in the cluster.
    pub actor: ActorRef,
    /// Notified when a monitor asks this node to drain (scale-down).
    pub drain_requested: Arc<tokio::sync::Notify>,
    env: Arc<ExecEnv>,
}

impl ExecutorHandle {
    /// What the executor holds and runs now (idle if it stopped answering).
    pub async fn load(&self) -> Load {
        let idle = Load {
            held: 0,
            running: 0,
        };
        self.addr.send(GetLoad).await.unwrap_or(idle)
    }

    /// Stop serving (telling the schedulers the deliveries they have not heard of yet) and
    /// kill the Python workers.
    pub async fn stop(&self, transport: &Transport) {
        self.env.delivered.flush(transport);
        transport.unregister::<Schedule>(0);
        transport.unregister::<Trigger>(0);
        transport.unregister::<Deliver>(0);
        transport.unregister::<Cancel>(0);
        transport.unregister::<DrainNode>(0);
        transport.unregister::<ClaimCall>(0);
        self.pool.shutdown().await;
    }
}

impl Executor {
    /// Start the pool (waiting for its workers) unless `prestarted` brings one, load the
    /// functions it names, start the actor, and register its messages (its first status
    /// follows: the executor is ready). `cache` serves the user library and argument
    /// references (the node's cache); `registry` is where function bodies are loaded from
    /// (the KVS itself: a cached copy of a re-registered function would look stale).
    pub async fn start(
        transport: &Transport,
        membership: &Addr<Membership>,
        cache: CacheHandle,
        registry: Arc<dyn StateAccess>,
        cfg: &Config,
        prestarted: Option<Prestarted>,
    ) -> Result<ExecutorHandle, StartError> {
        let launched = prestarted.is_some();
        let (pool, warm) = match prestarted {
            Some(p) => (p.pool, p.warm),
            None => {
                let exe = match &cfg.executor.worker_exe {
                    Some(p) => p.clone(),
                    None => std::env::current_exe().map_err(PyRuntimeError::Socket)?,
                };
                let mut pool_cfg = PoolConfig::from_config(cfg, exe);
                pool_cfg.owner = Some(transport.local_node().id.to_string());
                (PythonPool::start(pool_cfg).await?, vec![])
            }
        };
        let me = ActorRef::new(transport.local_node().clone(), ServiceId::Executor, 0);
        let timeout = Duration::from_millis(cfg.executor.function_timeout_ms);
        let env = Arc::new(ExecEnv::new(
            me.clone(),
            transport.clone(),
            pool.clone(),
            cache,
            registry,
            timeout,
            env::CausalTiming::from_config(&cfg.consistency),
        ));
        warm::load(&env, &warm).await;
        let drain_requested = Arc::new(tokio::sync::Notify::new());
        let addr = Executor {
            core: ExecutorCore::new(MAX_WAITING, WAITING_EXPIRY),
            env: env.clone(),
            schedulers: Vec::new(),
            monitors: Vec::new(),
            drain_requested: drain_requested.clone(),
            meter: SharedMeter::new(pool.workers(), Instant::now()),
            draining: false,
            launched,
        }
        .start();
        if let Err(e) = register(transport, &addr) {
            pool.shutdown().await;
            return Err(e.into());
        }
        membership.do_send(Subscribe(addr.clone().recipient()));
        tracing::info!(executor = %me, workers = pool.workers(),
            python = %pool.environment().python, "executor started");
        Ok(ExecutorHandle {
            addr,
            pool,
            actor: me,
            drain_requested,
            env,
        })
    }

    fn status(&self) -> ExecutorStatus {
        let pool = &self.env.pool;
        let window = self.meter.take(Instant::now());
        let load = ExecutorLoad {
            state: if self.draining {
                NodeState::Draining
            } else {
                NodeState::Active
            },
            window_ms: u64::try_from(window.window.as_millis()).unwrap_or(u64::MAX),
            occupancy: window.occupancy,
            demand: window.demand,
            in_flight: window.in_flight,
            held: u32::try_from(self.core.held_schedules()).unwrap_or(u32::MAX),
            cache_bytes: self.env.cache.stats().bytes,
            functions: window.functions,
            warm: self.env.loaded(MAX_REPORTED_FUNCTIONS),
            launched: self.launched,
        };
        ExecutorStatus {
            executor: self.env.me.clone(),
            utilisation: pool.utilisation(),
            queued: u32::try_from(pool.queued()).unwrap_or(u32::MAX),
            workers: u32::try_from(pool.workers()).unwrap_or(u32::MAX),
            python: pool.environment().python.clone(),
            cloudpickle: pool.environment().cloudpickle.clone(),
            load,
        }
    }

    fn report(&self) {
        let status = self.status();
        for s in &self.schedulers {
            let h = self.env.transport.handle::<ExecutorStatus>(s.clone());
            if let Err(e) = h.tell(status.clone()) {
                tracing::debug!(scheduler = %s, cause = %e, "status not sent");
            }
        }
        for m in &self.monitors {
            let h = self.env.transport.handle::<MonitorReport>(m.clone());
            let report = MonitorReport {
                status: status.clone(),
            };
            if let Err(e) = h.tell(report) {
                tracing::debug!(monitor = %m, cause = %e, "status not sent");
            }
        }
    }

    fn act(&mut self, step: Step) {
        match step {
            Step::Wait => {}
            Step::Run(ready) => {
                let (call, attempt) = (ready.schedule.call, ready.schedule.attempt);
                let stoppable = self.env.stoppable();
                let run = stoppable.run();
                let task = actix::spawn(run::run(
                    self.env.clone(),
                    ready,
                    stoppable,
                    self.meter.clone(),
                ));
                self.env.track(run, call, attempt, task.abort_handle());
            }
            Step::Abort(s) => run::abort(&self.env, &s),
            Step::Refused(s) => {
                tracing::warn!(call = %s.call, "too many waiting schedules; call refused");
                let env = self.env.clone();
                let running = Running::start(&self.meter, None);
                actix::spawn(async move {
                    let _running = running;
                    let f = CallFailure::new(
                        ErrorCode::Overloaded,
                        "the executor has too many waiting schedules",
                    );
                    run::finish(&env, &s, Err(f), None).await;
                });
            }
            Step::Full => tracing::warn!("too many waiting triggers; trigger dropped"),
            Step::Stale => tracing::debug!("schedule or trigger of a superseded attempt dropped"),
        }
    }
}

/// Deliver the executor's wire messages to `addr`.
fn register(t: &Transport, addr: &Addr<Executor>) -> Result<(), NetError> {
    t.register::<Schedule>(0, addr.clone().recipient())?;
    t.register::<Trigger>(0, addr.clone().recipient())?;
    t.register::<Cancel>(0, addr.clone().recipient())?;
    t.register::<DrainNode>(0, addr.clone().recipient())?;
    t.register::<ClaimCall>(0, addr.clone().recipient())?;
    t.register::<Deliver>(0, addr.clone().recipient())
}

impl Actor for Executor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(STATUS_INTERVAL, |act, _| {
            act.report();
            let now = Instant::now();
            let (count, schedules) = act.core.expire(now);
            let expired = count + act.env.mailboxes.expire(now);
            act.env.claims.expire(now);
            if expired > 0 {
                tracing::debug!(expired, "dropped waiting schedules, triggers or messages");
            }
            for s in schedules {
                // Its upstream results never came: fail the call rather than leave the
                // caller waiting.
                let env = act.env.clone();
                let running = Running::start(&act.meter, None);
                actix::spawn(async move {
                    let _running = running;
                    let f = CallFailure::new(
                        ErrorCode::Timeout,
                        format!("`{}` waited too long for its upstream results", s.function),
                    );
                    run::finish(&env, &s, Err(f), None).await;
                });
            }
        });
    }
}

impl Handler<Schedule> for Executor {
    type Result = ();
    fn handle(&mut self, msg: Schedule, _: &mut Context<Self>) {
        if self.env.claims.refuses(&msg) {
            tracing::debug!(call = %msg.call, "a schedule of a call claimed by another gateway dropped");
            return;
        }
        let step = self.core.on_schedule(msg, Instant::now());
        self.act(step);
    }
}

impl Handler<Trigger> for Executor {
    type Result = ();
    fn handle(&mut self, msg: Trigger, _: &mut Context<Self>) {
        let step = self.core.on_trigger(msg, Instant::now());
        self.act(step);
    }
}

impl Handler<Cancel> for Executor {
    type Result = ();
    fn handle(&mut self, msg: Cancel, _: &mut Context<Self>) {
        let waiting = self.core.cancel(msg.call, msg.before, Instant::now());
        let running = self.env.cancel_running(msg.call, msg.before);
        tracing::debug!(call = %msg.call, before = msg.before, waiting, running, "call stopped");
    }
}

impl Handler<ClaimCall> for Executor {
    type Result = MessageResult<ClaimCall>;
    fn handle(&mut self, msg: ClaimCall, _: &mut Context<Self>) -> Self::Result {
        let call = msg.call;
        if let Some(outcome) = self.env.claims.claim(call, msg.gateway, Instant::now()) {
            return MessageResult(Claimed::Ended(outcome));
        }
        let default = self.env.default_timeout.as_millis() as u64;
        let waiting = self.core.schedules_of(call);
        let running = self.env.runs_of(call);
        if waiting.is_empty() && running == 0 {
            return MessageResult(Claimed::Unknown);
        }
        // How long what is held here may still take: each function its timeout.
        let within_ms = waiting
            .iter()
            .map(|t| t.unwrap_or(default))
            .chain(std::iter::repeat_n(default, running))
            .fold(0u64, u64::saturating_add);
        tracing::debug!(call = %call, waiting = waiting.len(), running, "call claimed by another gateway");
        MessageResult(Claimed::Running { within_ms })
    }
}

impl Handler<Deliver> for Executor {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        let to = msg.to.clone();
        if let Err(e) = self
            .env
            .mailboxes
            .deliver(&to, msg.from, msg.payload, Instant::now())
        {
            tracing::warn!(to = %to, cause = %e, "message dropped");
        }
    }
}

impl Handler<GetLoad> for Executor {
    type Result = Load;
    fn handle(&mut self, _: GetLoad, _: &mut Context<Self>) -> Load {
        Load {
            held: self.core.held_schedules(),
            running: self.meter.calls() + self.env.delivered.len(),
        }
    }
}

impl Handler<DrainNode> for Executor {
    type Result = ();
    fn handle(&mut self, msg: DrainNode, _: &mut Context<Self>) {
        tracing::info!(monitor = %msg.by, "the monitor asks this node to drain");
        self.drain_requested.notify_one();
    }
}

impl Handler<ViewChanged> for Executor {
    type Result = ();
    fn handle(&mut self, msg: ViewChanged, _: &mut Context<Self>) {
        self.schedulers = msg.view.live_schedulers();
        self.monitors = msg
            .view
            .live_with_role(Role::Monitor)
            .map(|m| ActorRef::new(m.node.clone(), ServiceId::Monitor, 0))
            .collect();
        let me = &self.env.me.node;
        self.draining = msg
            .view
            .get(&me.id)
            .is_some_and(|m| m.node == *me && m.draining);
        self.report();
    }
}
