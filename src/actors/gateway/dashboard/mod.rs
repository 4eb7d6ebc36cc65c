//! The operator dashboard and `/metrics`, served by nodes playing `gateway` on
//! `gateway.dashboard_listen` (default `http://127.0.0.1:8080/`). Assets are embedded in the
//! binary; the page updates itself over server-sent events.
//!
//! - `core.rs`: snapshots, rates from deltas, the bounded chart history (no I/O).
//! - `sources.rs`: [`DashboardSources`], the pluggable probes the numbers come from.
//! - `sampler.rs`: the actor that samples once a second and publishes on a watch channel.
//! - `http.rs`: the endpoints; `auth.rs`: the token check; `prometheus.rs`: `/metrics` text.
//! - `assets/`: the page (HTML, CSS, JS with hand-written SVG charts).
//!
//! Light by construction: one sample per second whatever the number of viewers, the
//! snapshot serialised once per tick, bounded history on both sides, at most
//! [`http::MAX_EVENT_CLIENTS`] event streams.

pub mod auth;
pub mod core;
pub mod http;
pub mod prometheus;
pub mod sampler;
pub mod sources;

pub use self::auth::{AuthError, AuthPolicy};
pub use self::core::{CacheSample, ExecutorSample, ShardSample, Snapshot};
pub use self::sources::DashboardSources;

use self::sampler::{Sampler, StopSampler, SAMPLE_INTERVAL};
use crate::config::Config;
use actix::{Actor, Addr};
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// HTTP worker threads: the dashboard is for a few operators and a scraper, one thread
/// keeps it off the cores the cluster's work needs.
pub const HTTP_WORKERS: usize = 1;

/// Connections the dashboard server holds at once (beyond it, accepting pauses).
pub const MAX_CONNECTIONS: usize = 256;

/// Seconds a stopping server waits for open requests.
const SHUTDOWN_GRACE_SECS: u64 = 1;

/// A running dashboard: its HTTP server and its sampler.
pub struct DashboardServer {
    addr: SocketAddr,
    /// Served over TLS.
    secure: bool,
    server: ServerHandle,
    sampler: Addr<Sampler>,
}

impl DashboardServer {
    /// Bind `cfg.gateway.dashboard_listen` and start serving; `node` names this node on the
    /// page. Must run inside an actix `System`.
    pub fn start(
        cfg: &Config,
        node: String,
        mut sources: DashboardSources,
        tls: Option<rustls::ServerConfig>,
    ) -> std::io::Result<DashboardServer> {
        sources.here.clone_from(&node);
        let (sampler, feed) = Sampler::new(node.clone(), sources, SAMPLE_INTERVAL);
        let state = web::Data::new(http::State {
            node,
            auth: AuthPolicy {
                token: cfg.gateway.token.clone(),
                metrics_require_token: cfg.gateway.metrics_require_token,
            },
            origins: crate::actors::gateway::origin::OriginPolicy::new(
                &cfg.gateway.allowed_origins,
                cfg.gateway.dashboard_listen.ip().is_loopback(),
            ),
            feed,
            clients: Arc::new(AtomicUsize::new(0)),
        });
        let server =
            HttpServer::new(move || App::new().app_data(state.clone()).configure(http::routes))
                .workers(HTTP_WORKERS)
                .max_connections(MAX_CONNECTIONS)
                .disable_signals()
                .shutdown_timeout(SHUTDOWN_GRACE_SECS);
        let listen = cfg.gateway.dashboard_listen;
        let secure = tls.is_some();
        let server = match tls {
            Some(tls) => server.bind_rustls_0_23(listen, tls)?,
            None => server.bind(listen)?,
        };
        let addr = server.addrs().first().copied().unwrap_or(listen);
        let server = server.run();
        let handle = server.handle();
        actix::spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!(cause = %e, "dashboard server stopped with an error");
            }
        });
        let sampler = sampler.start();
        tracing::info!(listen = %addr, "dashboard listening");
        Ok(DashboardServer {
            addr,
            secure,
            server: handle,
            sampler,
        })
    }

    /// Where it listens (the real port when the config said port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL (`https://` over TLS).
    pub fn url(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }

    /// Stop sampling (open event streams end) and stop the server.
    pub async fn stop(self) {
        let _ = self.sampler.send(StopSampler).await;
        self.server.stop(true).await;
    }
}
