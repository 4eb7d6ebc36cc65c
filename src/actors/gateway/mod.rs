//! The gateway: client websocket sessions (docs/protocol.md), results pushed back to them,
//! and the operator dashboard with `/metrics` ([`dashboard`], its own HTTP listener).
//!
//! A client connects over a websocket and sends MessagePack requests. Object ops go
//! straight to the KVS; registrations and calls go to a scheduler (this node's if it plays
//! the role). A call's sink executor sends [`CallFinished`] to
//! this gateway's [`router::ResultRouter`], which hands it to the waiting request: the
//! direct-response call itself, or a later `await` of the future. Nothing polls. The
//! gateway keeps every call it sent until it ends ([`results`]): each has a deadline, a
//! call whose scheduler dies ends with `scheduler_lost`, and every await of an ended call
//! answers the same. A call carries the id its client minted, if it sent one: the same
//! request sent again (after a reconnect) is answered as the first, not run again. When
//! the node drains, [`Gateway::go_away`] sends the clients to other gateways.
//!
//! # Layout
//! - [`protocol`]: the wire types, decoding in two steps, error codes.
//! - [`core`]: scheduler choice, conversions (no I/O).
//! - [`results`]: the calls sent, their waiters and how they ended (no I/O).
//! - [`claim`]: a call sent again after a failover, claimed from the executors.
//! - [`ops`]: carrying out one request; [`logs`]: a call's logs gathered from the nodes.
//! - [`session`]: one websocket connection (heartbeat, timeouts, back-pressure).
//! - [`flow`]: what a connection may make the gateway hold (responses unread, partial
//!   messages, control frames).
//! - [`server`]: the HTTP listener, token and origin checks, upgrade.
//! - [`origin`]: which web pages may use the gateway (`Origin`, `Host`), no I/O.
//! - [`router`]: the actors receiving results and membership views.
//! - [`dashboard`]: the dashboard, `/metrics` and their sampler.
//! - [`tls`]: the certificate and key of `wss://` and `https://`; test certificates.

pub mod claim;
pub mod core;
pub mod dashboard;
pub mod flow;
pub mod logs;
pub mod msgvalue;
pub mod ops;
pub mod origin;
pub mod protocol;
pub mod results;
pub mod router;
pub mod server;
pub mod session;
pub mod tls;

use self::results::CallBook;
use self::router::{ResultRouter, Results, ViewWatcher};
use crate::actors::kvs::KvsClient;
use crate::clock::{node_clock, LwwClock};
use crate::config::Config;
use crate::lattice::Timestamp;
use crate::net::membership::{Membership, Subscribe};
use crate::net::{ActorRef, ServiceId, Transport, View};
use crate::protocol::CallFinished;
use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The limits a session enforces (from `cfg.gateway`).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_message_bytes: usize,
    /// Bytes of request messages one connection may have running (`gateway.max_in_flight_bytes`).
    pub max_in_flight_bytes: usize,
    /// Bytes of responses one connection may leave unread.
    pub max_queued_response_bytes: usize,
    /// Bytes of partly received messages over every connection.
    pub max_receiving_bytes: usize,
    pub heartbeat: Duration,
    pub client_timeout: Duration,
    /// The client token, when auth is on.
    pub token: Option<String>,
    /// Which web pages may open a websocket.
    pub origins: origin::OriginPolicy,
}

/// What every session shares.
pub struct GatewayState {
    pub kvs: KvsClient,
    pub transport: Transport,
    pub results: Results,
    pub limits: Limits,
    /// Bytes of partly received messages now, over every connection.
    pub receiving: Arc<std::sync::atomic::AtomicUsize>,
    /// Where sink executors push results: this gateway's router.
    pub me: ActorRef,
    view: Arc<RwLock<View>>,
    /// This node's Lww write clock (shared by every writer of the node).
    clock: Arc<LwwClock>,
    spread: AtomicU64,
    /// Cancelled when the node drains: sessions send their clients elsewhere
    /// ([`Gateway::go_away`]).
    pub going_away: CancellationToken,
}

impl GatewayState {
    /// A scheduler to talk to (see [`core::pick_scheduler`]).
    pub fn scheduler(&self) -> Option<ActorRef> {
        let spread = self.spread.fetch_add(1, Ordering::Relaxed);
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        core::pick_scheduler(&view, &self.transport.local_node().id, spread)
    }

    /// A fresh Lww timestamp for a client write.
    pub fn timestamp(&self) -> Timestamp {
        self.clock.next()
    }
}

/// A running gateway.
pub struct Gateway {
    /// Where clients connect (the bound address; port 0 resolved).
    pub client_addr: SocketAddr,
    /// Clients connect over TLS (`wss://`).
    secure: bool,
    server: actix_web::dev::ServerHandle,
    results: Results,
    going_away: CancellationToken,
}

impl Gateway {
    /// Start the result router, the view watcher and the client listener (over TLS when
    /// given its config). Must run inside an actix `System`. Fails (naming the address)
    /// when the client listener cannot bind.
    pub fn start(
        transport: &Transport,
        membership: &Addr<Membership>,
        kvs: KvsClient,
        cfg: &Config,
        tls: Option<rustls::ServerConfig>,
    ) -> std::io::Result<Gateway> {
        let results: Results = Arc::new(Mutex::new(CallBook::default()));
        let router = ResultRouter {
            results: results.clone(),
        }
        .start();
        let waiting = results.clone();
        transport
            .register::<CallFinished>(0, router.recipient())
            .map_err(std::io::Error::other)?;
        let view = Arc::new(RwLock::new(View::default()));
        let watcher = ViewWatcher {
            view: view.clone(),
            results: results.clone(),
        }
        .start();
        membership.do_send(Subscribe(watcher.recipient()));
        let me = transport.local_node().clone();
        let clock = node_clock(&me);
        let g = &cfg.gateway;
        let state = Arc::new(GatewayState {
            kvs,
            transport: transport.clone(),
            results,
            limits: Limits {
                max_message_bytes: g.max_message_bytes,
                max_in_flight_bytes: g.max_in_flight_bytes,
                max_queued_response_bytes: g.max_queued_response_bytes,
                max_receiving_bytes: g.max_receiving_bytes,
                heartbeat: Duration::from_millis(g.heartbeat_ms),
                client_timeout: Duration::from_millis(g.client_timeout_ms),
                token: g.token.clone(),
                origins: origin::OriginPolicy::new(
                    &g.allowed_origins,
                    g.client_listen.ip().is_loopback(),
                ),
            },
            receiving: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            me: ActorRef::new(me, ServiceId::Gateway, 0),
            view,
            clock,
            spread: AtomicU64::new(0),
            going_away: CancellationToken::new(),
        });
        let going_away = state.going_away.clone();
        let secure = tls.is_some();
        let (server, client_addr) = server::start(state, g.client_listen, g.http_workers, tls)?;
        tracing::info!(listen = %client_addr, tls = secure, "gateway listening for clients");
        Ok(Gateway {
            client_addr,
            secure,
            server,
            results: waiting,
            going_away,
        })
    }

    /// The node drains: clients are sent elsewhere. New connections are refused (HTTP 503);
    /// each session stops reading requests, answers those it took, and closes with 1001
    /// `going_away`, so a client given several gateways moves to another and sends there
    /// what it had not been answered.
    pub fn go_away(&self) {
        self.going_away.cancel();
    }

    /// Calls whose result a client of this gateway waits for now (a drain waits for none).
    pub fn in_flight(&self) -> usize {
        router::lock(&self.results).waiting()
    }

    /// The URL clients connect to.
    pub fn client_url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}", self.client_addr)
    }

    /// Stop accepting clients and close the sessions (bounded grace).
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}
