//! [`Transport`]: the node's peer listener, its outbound links and its local registry.
//!
//! Actor code asks for a [`Handle`] to an [`ActorRef`]; local targets get their actix
//! `Recipient` directly (no serialisation), remote ones a [`RemoteRecipient`] that goes
//! through the peer's link. Every task the transport spawns is tracked and ends on
//! [`Transport::shutdown`].

use crate::config::{Config, TransportConfig};
use crate::ids::{Generation, NodeId, NodeRef};
use crate::net::cluster::{ClusterGate, ClusterState};
use crate::net::conn::{drive, Conn, Ended};
use crate::net::error::NetError;
use crate::net::handle::{Handle, RemoteRecipient};
use crate::net::handshake::{self, Identity, Secret, HANDSHAKE_MAX_FRAME};
use crate::net::link::{dial, handshake_failed, Link};
use crate::net::metrics::{bump, NetMetrics, NetMetricsSnapshot};
use crate::net::registry::Registry;
use crate::net::service::{ActorRef, RemoteMessage};
use crate::net::wire::codec;
use actix::Recipient;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Inbound connections served at once. Each costs a task and its buffers; a cluster needs
/// one per peer node, so this only stops a flood of connections from exhausting memory.
pub const MAX_INBOUND_CONNECTIONS: usize = 1024;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// How long `shutdown` waits for tasks to finish after telling them to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// State shared by the transport's handles and tasks.
pub(crate) struct Shared {
    pub me: NodeRef,
    pub identity: Identity,
    pub secret: Secret,
    /// Which cluster this node belongs to, checked in every handshake.
    pub cluster: ClusterGate,
    pub cfg: TransportConfig,
    pub registry: Registry,
    pub metrics: NetMetrics,
    pub links: Mutex<HashMap<NodeId, Arc<Link>>>,
    /// How many links are marked down: readers that only need "is anyone down?" (the
    /// common answer is no) read this instead of locking `links`.
    pub down_links: AtomicUsize,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// The actix arbiter the transport was started on, if any: its tasks run there.
    pub arbiter: Option<actix::ArbiterHandle>,
}

impl Shared {
    /// The link to `node`, if an address for it is known.
    pub(crate) fn link(&self, node: &NodeId) -> Option<Arc<Link>> {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned()
    }

    /// Start a tracked transport task. Inside an actix `System` it runs on the arbiter the
    /// transport was started on, as a task of the arbiter's `LocalSet`, like the actors it
    /// delivers to: a wake-up between a connection task and an actor then stays inside the
    /// `LocalSet`, instead of crossing to the runtime's own queue and back, which costs
    /// tokio an extra non-blocking poll of the I/O driver (one `epoll_wait` syscall) per
    /// crossing. Without an arbiter (a plain tokio runtime) it is an ordinary tokio task.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let task = self.tasks.track_future(task);
        match &self.arbiter {
            Some(arbiter) => {
                if !arbiter.spawn(task) {
                    tracing::debug!("arbiter stopped; transport task not started");
                }
            }
            None => {
                tokio::spawn(task);
            }
        }
    }
}

/// The peer transport of one node. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

impl Transport {
    /// Bind `cfg.node.listen` (port 0 picks a free port) and start accepting peers.
    ///
    /// The node is named `me`, or, if `None`, by `cfg.node.id` when set and otherwise by the
    /// address actually bound. Its generation is [`Generation::now`]. Needs a tokio runtime
    /// (an actix `System` provides one).
    pub async fn start(cfg: &Config, me: Option<NodeId>) -> Result<Transport, NetError> {
        Self::start_in(cfg, me, ClusterState::Joining).await
    }

    /// [`Transport::start`] for a node in `cluster` (its handshakes admit peers of that
    /// cluster only; see [`crate::net::cluster`]).
    pub async fn start_in(
        cfg: &Config,
        me: Option<NodeId>,
        cluster: ClusterState,
    ) -> Result<Transport, NetError> {
        let listener = TcpListener::bind(cfg.node.listen)
            .await
            .map_err(|e| NetError::Io(format!("cannot listen on {}: {e}", cfg.node.listen)))?;
        let local = listener
            .local_addr()
            .map_err(|e| NetError::Io(e.to_string()))?;
        // Where other nodes reach us: the advertised address (its port 0 meaning the port
        // bound), else the bound address.
        let local = match cfg.node.advertise {
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), local.port()),
            Some(a) => a,
            None => local,
        };
        let id = me.unwrap_or_else(|| {
            if cfg.node.id.is_empty() {
                NodeId::new(local.to_string())
            } else {
                NodeId::new(&cfg.node.id)
            }
        });
        let node = NodeRef {
            id,
            generation: Generation::now(),
        };
        let shared = Arc::new(Shared {
            me: node.clone(),
            identity: Identity {
                node,
                listen: local,
            },
            secret: Secret::new(&cfg.node.cluster_secret),
            cluster: ClusterGate::new(cluster),
            cfg: cfg.transport.clone(),
            registry: Registry::default(),
            metrics: NetMetrics::default(),
            links: Mutex::new(HashMap::new()),
            down_links: AtomicUsize::new(0),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            arbiter: actix::Arbiter::try_current(),
        });
        shared.spawn(accept_loop(shared.clone(), listener));
        tracing::debug!(node = %shared.me, listen = %local, "transport started");
        Ok(Transport { shared })
    }

    /// This node and its generation.
    pub fn local_node(&self) -> &NodeRef {
        &self.shared.me
    }

    /// The cluster this node belongs to (its id may change once: when it joins, or when
    /// a cluster it formed in this run yields to an established one).
    pub fn cluster(&self) -> &ClusterGate {
        &self.shared.cluster
    }

    /// The address other nodes reach the peer listener at: `node.advertise` when set, else
    /// the address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.identity.listen
    }

    /// The configured request timeout (what [`Handle::send`] uses).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.shared.cfg.request_timeout_ms)
    }

    /// Deliver inbound `M` for `(M::SERVICE, instance)` to this local recipient (replacing
    /// the previous recipient of `M` there). Refused with [`NetError::TagTaken`] when another
    /// message type is registered for `(M::SERVICE, M::TAG)`.
    pub fn register<M: RemoteMessage>(
        &self,
        instance: u32,
        r: Recipient<M>,
    ) -> Result<(), NetError> {
        self.shared.registry.register(instance, r)
    }

    /// Stop delivering `M` for `(M::SERVICE, instance)`; senders then get `NoSuchActor`.
    pub fn unregister<M: RemoteMessage>(&self, instance: u32) {
        self.shared
            .registry
            .unregister(M::SERVICE, M::TAG, instance);
    }

    /// A handle to `target`: local targets get the `Recipient` directly (no
    /// serialisation), remote ones a [`RemoteRecipient`]. A local target that is not
    /// registered, or another generation of this node, gives a handle whose sends fail.
    pub fn handle<M: RemoteMessage>(&self, target: ActorRef) -> Handle<M> {
        let me = &self.shared.me;
        if target.node.id != me.id {
            return Handle::Remote(RemoteRecipient::new(self.shared.clone(), target));
        }
        if target.node.generation != me.generation {
            return Handle::Unreachable(NetError::StaleGeneration {
                node: me.id.clone(),
                addressed: target.node.generation,
                current: me.generation,
            });
        }
        match self.shared.registry.recipient::<M>(target.instance) {
            Some(recipient) => Handle::Local {
                recipient,
                timeout: self.request_timeout(),
            },
            None => Handle::Unreachable(NetError::NoSuchActor {
                service: M::SERVICE,
                tag: M::TAG,
                instance: target.instance,
            }),
        }
    }

    /// How to reach `node` (membership feeds this). Creates the link on first use.
    pub fn connect_hint(&self, node: &NodeId, addr: SocketAddr) {
        hint(&self.shared, node, addr);
    }

    /// Membership holds `node` suspect or dead (`reachable == false`: requests waiting on
    /// it fail now and new ones at once, except membership's own; one-way messages still
    /// go), or alive again.
    /// Returns how many waiting requests were failed.
    pub fn set_reachable(&self, node: &NodeId, reachable: bool) -> usize {
        match self.shared.link(node) {
            Some(link) => link.set_down(&self.shared, !reachable),
            None => 0,
        }
    }

    /// False while membership holds `node` suspect or dead (see [`Self::set_reachable`]).
    pub fn is_reachable(&self, node: &NodeId) -> bool {
        !self.any_down() || self.shared.link(node).is_none_or(|l| !l.is_down())
    }

    /// Whether membership holds any peer suspect or dead (no lock taken).
    pub fn any_down(&self) -> bool {
        self.shared.down_links.load(Ordering::SeqCst) > 0
    }

    /// Connect to `addr`, authenticate, and learn which node (and generation) is there.
    /// Also records `addr` as that node's address. Used to join through a seed address.
    pub async fn identify(&self, addr: SocketAddr) -> Result<NodeRef, NetError> {
        let conn = dial(&self.shared, addr).await?;
        let peer = conn.peer;
        hint(&self.shared, &peer.node.id, peer.listen);
        Ok(peer.node)
    }

    /// Stop accepting, close every connection (pending requests fail with `Shutdown`) and
    /// wait (bounded) for the transport's tasks to end.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("transport tasks still running after the shutdown grace period");
        }
    }

    /// Counters since start.
    pub fn metrics(&self) -> NetMetricsSnapshot {
        self.shared.metrics.snapshot()
    }
}

fn hint(shared: &Arc<Shared>, node: &NodeId, addr: SocketAddr) {
    if *node == shared.me.id || shared.shutdown.is_cancelled() {
        return;
    }
    let mut links = shared.links.lock().unwrap_or_else(|p| p.into_inner());
    match links.get(node) {
        Some(link) => link.set_addr(addr),
        None => {
            links.insert(node.clone(), Link::start(shared, node.clone(), addr));
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let permits = Arc::new(Semaphore::new(MAX_INBOUND_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                let shared2 = shared.clone();
                shared.spawn(async move {
                    serve_inbound(&shared2, stream, addr).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(cause = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// TCP keepalive probes start after this much silence on a peer connection ...
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// ... are repeated this often ...
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// ... and this many unanswered probes (or unacknowledged data for
/// `KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_RETRIES`) close a connection to a host
/// that vanished without a FIN or RST, so its task, its connection permit and the requests
/// waiting on it are freed instead of lingering for the kernel's ~15 minutes.
pub const KEEPALIVE_RETRIES: u32 = 3;

/// No Nagle delay (small request/response frames), plus keepalive and a user timeout so
/// a dead peer is noticed even on a connection we only read from.
pub fn tune_socket(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(stream);
    let ka = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    sock.set_tcp_keepalive(&ka)?;
    #[cfg(target_os = "linux")]
    sock.set_tcp_user_timeout(Some(
        KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_RETRIES,
    ))?;
    Ok(())
}

/// Authenticate an inbound connection and serve it until it ends.
async fn serve_inbound(shared: &Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    if let Err(e) = tune_socket(&stream) {
        tracing::debug!(peer = %addr, cause = %e, "cannot tune peer socket");
    }
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, codec(HANDSHAKE_MAX_FRAME));
    let mut writer = FramedWrite::new(w, codec(HANDSHAKE_MAX_FRAME));
    let limit = Duration::from_millis(shared.cfg.connect_timeout_ms);
    let shook = tokio::time::timeout(
        limit,
        handshake::accept(
            &mut reader,
            &mut writer,
            &shared.identity,
            &shared.secret,
            &shared.cluster,
        ),
    );
    let peer = tokio::select! {
        _ = shared.shutdown.cancelled() => return,
        r = shook => match r {
            Ok(Ok(peer)) => peer,
            Ok(Err(e)) => { handshake_failed(shared, addr, e); return; }
            Err(_) => { tracing::debug!(peer = %addr, "handshake timed out"); return; }
        },
    };
    reader
        .decoder_mut()
        .set_max_frame_length(shared.cfg.max_frame_bytes);
    bump(&shared.metrics.accepted);
    hint(shared, &peer.node.id, peer.listen);
    tracing::debug!(peer = %addr, node = %peer.node, "peer connected");
    let conn = Conn {
        reader,
        writer: writer.into_inner(),
        peer,
        addr,
    };
    match drive(shared, conn, None).await {
        Ended::Failed(cause) => {
            tracing::warn!(peer = %addr, cause = %cause, "inbound connection closed")
        }
        Ended::Closed | Ended::Shutdown => {}
    }
}
