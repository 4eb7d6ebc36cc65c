//! An in-process cluster and a small Rust client for it: enough to drive functions and DAGs
//! from tests and benchmarks before (and beside) the websocket gateway.
//!
//! [`LocalCluster`] is a thin layer over [`NodeRoles`]: one node (whatever roles the config
//! names; it needs `scheduler`) plus a probe standing in for a gateway, registered for
//! [`CallFinished`] at [`PROBE_INSTANCE`] (the real gateway uses instance 0). More nodes
//! join with [`LocalCluster::join_config`] + [`NodeRoles::start`].

use crate::actors::kvs::{KvsClient, KvsError};
use crate::actors::scheduler::GetExecutors;
use crate::clock::{node_clock, LwwClock};
use crate::config::Config;
use crate::ids::{CallId, Key};
use crate::net::{ActorRef, Handle, NetError, RemoteMessage, ServiceId};
use crate::node::{NodeRoles, RoleError};
use crate::protocol::{
    to_lattice, to_python, Arg, CallAccepted, CallDag, CallFailure, CallFinished, CallFunction,
    CallOptions, Consistency, DagSpec, DeleteDag, FunctionError, FunctionRecord, List, Listing,
    RegisterDag, RegisterFunction, Reply,
};
use crate::pyrt::{FunctionKind, PyValue};
use actix::prelude::*;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Instance of the harness's result probe on the gateway service.
pub const PROBE_INSTANCE: u32 = 0xFFFF_0001;
/// Default limit on waiting for one call's result.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Mailbox of the probe: one result per call in flight.
const PROBE_MAILBOX: usize = 4096;
/// Pause between readiness checks.
const READY_POLL: Duration = Duration::from_millis(10);

/// What went wrong in the harness or a call made through it.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot start the node: {0}")]
    Start(#[from] RoleError),
    #[error("the cluster is not ready: {0}")]
    NotReady(String),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("refused: {0}")]
    Function(#[from] FunctionError),
    #[error("call failed ({}): {}", .0.code, .0.message)]
    Failed(CallFailure),
    #[error(transparent)]
    Kvs(#[from] KvsError),
    #[error("no result within {0:?}")]
    Timeout(Duration),
}

/// One in-process node with a result probe.
pub struct LocalCluster {
    pub roles: NodeRoles,
    probe: Addr<ResultProbe>,
}

impl LocalCluster {
    /// Start a node for `cfg` (a cluster secret is made up if none is set). Must run inside
    /// an actix `System`.
    pub async fn start(mut cfg: Config) -> Result<LocalCluster, LocalError> {
        if cfg.node.cluster_secret.is_empty() {
            cfg.node.cluster_secret = format!("local-{:x}", rand::random::<u64>());
        }
        // Like `cloudburst local`: a harness given no seeds forms its own cluster.
        if cfg.node.join.is_empty() {
            cfg.node.bootstrap = true;
        }
        let roles = NodeRoles::start(&cfg).await?;
        let probe = ResultProbe::default().start();
        roles
            .transport
            .register::<CallFinished>(PROBE_INSTANCE, probe.clone().recipient())?;
        Ok(LocalCluster { roles, probe })
    }

    /// A config for another node joining this one (same secret and limits).
    pub fn join_config(&self, base: &Config) -> Config {
        let mut c = base.clone();
        c.node.join = vec![self.roles.transport.local_addr().to_string()];
        c.node.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        c
    }

    /// Wait until the KVS routes keys and the scheduler can place on `executors` executors.
    pub async fn wait_ready(&self, executors: usize, limit: Duration) -> Result<(), LocalError> {
        let scheduler = self.scheduler()?;
        let deadline = Instant::now() + limit;
        loop {
            let routed = self.roles.kvs.routing.get().nodes().count() > 0;
            let known = scheduler
                .send(GetExecutors)
                .await
                .map(|e| e.len())
                .unwrap_or(0);
            if routed && known >= executors {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LocalError::NotReady(format!(
                    "kvs routed: {routed}, executors known: {known} of {executors} after {limit:?}"
                )));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    fn scheduler(&self) -> Result<&Addr<crate::actors::scheduler::Scheduler>, LocalError> {
        self.roles
            .scheduler
            .as_ref()
            .ok_or_else(|| LocalError::NotReady("this node plays no scheduler".into()))
    }

    /// A client of this node's scheduler; registrations carry the Python version its
    /// executors report (call after [`LocalCluster::wait_ready`]).
    pub async fn client(&self) -> Result<LocalClient, LocalError> {
        let execs = self
            .scheduler()?
            .send(GetExecutors)
            .await
            .map_err(NetError::from)?;
        let first = execs.first().ok_or(FunctionError::NoExecutors)?;
        let t = &self.roles.transport;
        let me = t.local_node().clone();
        Ok(LocalClient {
            python: first.python.clone(),
            cloudpickle: first.cloudpickle.clone(),
            call_dag: t.handle(ActorRef::new(me.clone(), ServiceId::Scheduler, 0)),
            call_function: t.handle(ActorRef::new(me.clone(), ServiceId::Scheduler, 0)),
            scheduler: ActorRef::new(me.clone(), ServiceId::Scheduler, 0),
            probe: self.probe.clone(),
            probe_ref: ActorRef::new(me.clone(), ServiceId::Gateway, PROBE_INSTANCE),
            kvs: self.roles.kvs.client.clone(),
            transport: t.clone(),
            clock: node_clock(&me),
            next_call: Arc::new(AtomicU64::new(rand::random::<u64>() >> 1)),
            call_timeout: CALL_TIMEOUT,
        })
    }

    /// Stop the node.
    pub async fn stop(self) {
        self.roles.stop().await;
    }
}

/// A Rust client of one scheduler: registrations, calls awaiting their pushed result, and
/// objects in the KVS. Cheap to clone.
#[derive(Clone)]
pub struct LocalClient {
    python: String,
    cloudpickle: String,
    call_dag: Handle<CallDag>,
    call_function: Handle<CallFunction>,
    scheduler: ActorRef,
    probe: Addr<ResultProbe>,
    probe_ref: ActorRef,
    kvs: KvsClient,
    transport: crate::net::Transport,
    clock: Arc<LwwClock>,
    next_call: Arc<AtomicU64>,
    /// How long a call waits for its result.
    pub call_timeout: Duration,
}

impl LocalClient {
    async fn ask<M: RemoteMessage<Result = Result<T, FunctionError>>, T: Send + 'static>(
        &self,
        m: M,
    ) -> Result<T, LocalError> {
        let h = self.transport.handle::<M>(self.scheduler.clone());
        Ok(h.send(m).await??)
    }

    /// A record for `body` (cloudpickle bytes) with the executors' Python version.
    pub fn record(&self, name: &str, kind: FunctionKind, body: Bytes) -> FunctionRecord {
        FunctionRecord {
            name: name.into(),
            kind,
            body,
            python: self.python.clone(),
            cloudpickle: self.cloudpickle.clone(),
            timeout_ms: None,
            retries: None,
            retry_errors: false,
        }
    }

    pub async fn register_function(&self, record: FunctionRecord) -> Result<(), LocalError> {
        self.ask(RegisterFunction { record }).await
    }

    /// Register a DAG from names and `(from, to)` edges.
    pub async fn register_dag(
        &self,
        name: &str,
        functions: &[&str],
        edges: &[(&str, &str)],
    ) -> Result<(), LocalError> {
        let spec = DagSpec {
            name: name.into(),
            functions: functions.iter().map(|f| f.to_string()).collect(),
            connections: edges
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        self.ask(RegisterDag { spec }).await
    }

    pub async fn delete_dag(&self, name: &str) -> Result<(), LocalError> {
        self.ask(DeleteDag { name: name.into() }).await
    }

    pub async fn list(&self, what: Listing, prefix: &str) -> Result<Vec<String>, LocalError> {
        self.ask(List {
            what,
            prefix: prefix.into(),
        })
        .await
    }

    /// A fresh call id.
    pub fn call_id(&self) -> CallId {
        CallId(self.next_call.fetch_add(1, Ordering::Relaxed))
    }

    fn push_here(&self) -> Reply {
        Reply {
            push_to: Some(self.probe_ref.clone()),
            store_at: None,
        }
    }

    async fn outcome(
        &self,
        call: CallId,
        rx: oneshot::Receiver<Outcome>,
        accepted: Result<Result<CallAccepted, FunctionError>, NetError>,
    ) -> Result<PyValue, LocalError> {
        if let Err(e) = accepted
            .map_err(LocalError::from)
            .and_then(|r| r.map_err(LocalError::from))
        {
            self.probe.do_send(Forget(call));
            return Err(e);
        }
        match tokio::time::timeout(self.call_timeout, rx).await {
            Ok(Ok(r)) => r.map_err(LocalError::Failed),
            Ok(Err(_)) => Err(LocalError::NotReady("the result probe stopped".into())),
            Err(_) => {
                self.probe.do_send(Forget(call));
                Err(LocalError::Timeout(self.call_timeout))
            }
        }
    }

    /// Call a DAG and wait for its result (direct response).
    pub async fn call_dag(
        &self,
        dag: &str,
        args: BTreeMap<String, Vec<Arg>>,
    ) -> Result<PyValue, LocalError> {
        self.call_dag_in(dag, args, Consistency::Lww).await
    }

    /// [`Self::call_dag`] under the `consistency` mode.
    pub async fn call_dag_in(
        &self,
        dag: &str,
        args: BTreeMap<String, Vec<Arg>>,
        consistency: Consistency,
    ) -> Result<PyValue, LocalError> {
        let call = self.call_id();
        let rx = self.expect(call).await?;
        let msg = CallDag {
            call,
            dag: dag.into(),
            args,
            consistency,
            reply: self.push_here(),
            options: CallOptions::default(),
        };
        let accepted = self.call_dag.send(msg).await;
        self.outcome(call, rx, accepted).await
    }

    /// Call one function and wait for its result.
    pub async fn call_function(
        &self,
        function: &str,
        args: Vec<Arg>,
    ) -> Result<PyValue, LocalError> {
        let call = self.call_id();
        let rx = self.expect(call).await?;
        let msg = CallFunction {
            call,
            function: function.into(),
            args,
            consistency: Consistency::Lww,
            reply: self.push_here(),
            options: CallOptions::default(),
        };
        let accepted = self.call_function.send(msg).await;
        self.outcome(call, rx, accepted).await
    }

    /// Call a DAG with its result stored under `key` only (a future); returns once accepted.
    pub async fn call_dag_stored(
        &self,
        dag: &str,
        args: BTreeMap<String, Vec<Arg>>,
        key: Key,
    ) -> Result<CallId, LocalError> {
        let call = self.call_id();
        let reply = Reply {
            push_to: None,
            store_at: Some(key),
        };
        let msg = CallDag {
            call,
            dag: dag.into(),
            args,
            consistency: Consistency::Lww,
            reply,
            options: CallOptions::default(),
        };
        self.call_dag.send(msg).await??;
        Ok(call)
    }

    async fn expect(&self, call: CallId) -> Result<oneshot::Receiver<Outcome>, LocalError> {
        let (tx, rx) = oneshot::channel();
        self.probe
            .send(Expect(call, tx))
            .await
            .map_err(NetError::from)?;
        Ok(rx)
    }

    /// Store a Python value (a set as a SetUnion, anything else Lww).
    pub async fn put_object(&self, key: &str, value: PyValue) -> Result<(), LocalError> {
        Ok(self
            .kvs
            .put(Key::new(key), to_lattice(value, &self.clock))
            .await?)
    }

    /// Read a Python value.
    pub async fn get_object(&self, key: &str) -> Result<Option<PyValue>, LocalError> {
        let v = self.kvs.get(&Key::new(key)).await?;
        to_python(key, v).map_err(|m| LocalError::Kvs(KvsError::Malformed(m)))
    }
}

type Outcome = Result<PyValue, CallFailure>;

#[derive(Message)]
#[rtype(result = "()")]
struct Expect(CallId, oneshot::Sender<Outcome>);

#[derive(Message)]
#[rtype(result = "()")]
struct Forget(CallId);

/// Stands in for a gateway: hands each pushed result to the caller waiting for it.
#[derive(Default)]
struct ResultProbe {
    waiting: HashMap<CallId, oneshot::Sender<Outcome>>,
}

impl Actor for ResultProbe {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(PROBE_MAILBOX);
    }
}

impl Handler<Expect> for ResultProbe {
    type Result = ();
    fn handle(&mut self, Expect(call, tx): Expect, _: &mut Context<Self>) {
        self.waiting.insert(call, tx);
    }
}

impl Handler<Forget> for ResultProbe {
    type Result = ();
    fn handle(&mut self, Forget(call): Forget, _: &mut Context<Self>) {
        self.waiting.remove(&call);
    }
}

impl Handler<CallFinished> for ResultProbe {
    type Result = ();
    fn handle(&mut self, msg: CallFinished, _: &mut Context<Self>) {
        match self.waiting.remove(&msg.call) {
            Some(tx) => {
                let _ = tx.send(msg.outcome);
            }
            None => tracing::debug!(call = %msg.call, "result for a call nobody waits for"),
        }
    }
}
