//! Every node's admin HTTP port (`node.admin_listen`, `--admin-listen`), whatever its
//! roles: for orchestrators' probes and for Prometheus.
//!
//! | path | what | token |
//! |---|---|---|
//! | `/healthz` | `ok`: the process serves | no |
//! | `/readyz` | 200 `ready` once joined and not draining, else 503 and why | no |
//! | `/metrics` | this node's own series, each labelled `node` | as the gateway's `/metrics` |
//!
//! The probes reveal nothing but the state word. The port is started once the node's roles
//! started, so a node that answers at all has its roles running.

use super::roles::RoleError;
use crate::actors::gateway::dashboard::auth::{AuthPolicy, Presented};
use crate::actors::gateway::dashboard::prometheus::{self, NodeKvs};
use crate::actors::kvs::report::{GetKvsNodeMetrics, KvsReporter};
use crate::actors::monitor::Monitor;
use crate::config::Config;
use crate::net::membership::{GetView, Membership, View};
use crate::net::Transport;
use crate::protocol::GetAutoscale;
use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::net::SocketAddr;

/// One HTTP worker: probes and a scraper, a few requests a second at most.
const HTTP_WORKERS: usize = 1;
/// Connections held at once (beyond it, accepting pauses): probes and a scraper need few.
const MAX_CONNECTIONS: usize = 64;
/// Seconds a stopping server waits for open requests.
const SHUTDOWN_GRACE_SECS: u64 = 1;
/// Longest a scrape waits for this node's KVS reporter or monitor: both answer from
/// memory, so only a stopping node takes this long (its series are then left out).
const LOCAL_ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// The actors of this node whose figures `/metrics` shows, when it plays their roles.
#[derive(Clone, Default)]
pub struct AdminSources {
    pub kvs: Option<Addr<KvsReporter>>,
    pub monitor: Option<Addr<Monitor>>,
}

struct State {
    node: String,
    transport: Transport,
    membership: Addr<Membership>,
    /// The node was given seeds: it is ready only once it heard from another member.
    joins: bool,
    auth: AuthPolicy,
    sources: AdminSources,
}

/// A running admin port.
pub struct AdminServer {
    addr: SocketAddr,
    server: ServerHandle,
}

impl AdminServer {
    /// Bind `addr` and serve. Prints `cloudburst admin listening on http://<addr>/` on
    /// stdout once bound. Must run inside an actix `System`.
    pub fn start(
        cfg: &Config,
        addr: SocketAddr,
        transport: &Transport,
        membership: &Addr<Membership>,
        sources: AdminSources,
    ) -> Result<AdminServer, RoleError> {
        let state = web::Data::new(State {
            node: transport.local_node().id.to_string(),
            transport: transport.clone(),
            membership: membership.clone(),
            joins: !cfg.node.join.is_empty(),
            auth: AuthPolicy {
                token: cfg.gateway.token.clone(),
                metrics_require_token: cfg.gateway.metrics_require_token,
            },
            sources,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/healthz", web::get().to(|| async { "ok" }))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics))
        })
        .workers(HTTP_WORKERS)
        .max_connections(MAX_CONNECTIONS)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE_SECS)
        .bind(addr)
        .map_err(|source| RoleError::Admin { addr, source })?;
        let bound = server.addrs().first().copied().unwrap_or(addr);
        let server = server.run();
        let handle = server.handle();
        actix::spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!(cause = %e, "admin server stopped with an error");
            }
        });
        println!("cloudburst admin listening on http://{bound}/");
        Ok(AdminServer {
            addr: bound,
            server: handle,
        })
    }

    /// Where it listens (the real port when the config said port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving.
    pub async fn stop(self) {
        self.server.stop(true).await;
    }
}

/// Why this node is not ready, by its own view; `None` when it is.
pub fn not_ready(view: &View, me: &crate::ids::NodeId, joins: bool) -> Option<&'static str> {
    let Some(m) = view.get(me) else {
        return Some("not in its own view");
    };
    if m.draining {
        return Some("draining");
    }
    if joins && view.live().all(|other| &other.node.id == me) {
        return Some("not joined");
    }
    None
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    let why = match state.membership.send(GetView).await {
        Ok(view) => not_ready(&view, &state.transport.local_node().id, state.joins),
        Err(_) => Some("stopping"),
    };
    match why {
        None => HttpResponse::Ok().body("ready"),
        Some(why) => HttpResponse::ServiceUnavailable().body(format!("not ready: {why}")),
    }
}

async fn metrics(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let presented = Presented {
        header: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        ..Presented::default()
    };
    if let Err(e) = state.auth.check(presented, true) {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .json(serde_json::json!({ "error": e.code(), "message": e.to_string() }));
    }
    let kvs = node_kvs(&state.sources).await;
    let text = prometheus::node_series(
        &state.node,
        &crate::metrics::global().snapshot(),
        &state.transport.metrics(),
        &kvs,
    );
    HttpResponse::Ok()
        .content_type(prometheus::CONTENT_TYPE)
        .body(text)
}

/// This node's KVS figures and its monitor's KVS state (each left out if it does not answer
/// within [`LOCAL_ASK_TIMEOUT`]).
async fn node_kvs(sources: &AdminSources) -> NodeKvs {
    let kvs = match &sources.kvs {
        Some(r) => tokio::time::timeout(LOCAL_ASK_TIMEOUT, r.send(GetKvsNodeMetrics))
            .await
            .ok()
            .and_then(Result::ok),
        None => None,
    };
    let monitor = match &sources.monitor {
        Some(m) => tokio::time::timeout(LOCAL_ASK_TIMEOUT, m.send(GetAutoscale))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|a| a.kvs),
        None => None,
    };
    NodeKvs { kvs, monitor }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Generation, NodeId, NodeRef};
    use crate::net::membership::{Member, MemberState};

    fn member(id: &str, state: MemberState, draining: bool) -> Member {
        Member {
            node: NodeRef {
                id: NodeId::new(id),
                generation: Generation(1),
            },
            addr: "127.0.0.1:1".parse().expect("addr"),
            roles: Default::default(),
            state,
            kvs_shards: 0,
            draining,
        }
    }

    fn view(members: Vec<Member>) -> View {
        members.into_iter().collect()
    }

    #[test]
    fn ready_once_joined_and_not_draining() {
        let me = NodeId::new("a");
        let alone = view(vec![member("a", MemberState::Alive, false)]);
        assert_eq!(
            not_ready(&alone, &me, false),
            None,
            "a first node is ready alone"
        );
        assert_eq!(not_ready(&alone, &me, true), Some("not joined"));
        let dead_peer = view(vec![
            member("a", MemberState::Alive, false),
            member("b", MemberState::Dead, false),
        ]);
        assert_eq!(not_ready(&dead_peer, &me, true), Some("not joined"));
        let joined = view(vec![
            member("a", MemberState::Alive, false),
            member("b", MemberState::Alive, false),
        ]);
        assert_eq!(not_ready(&joined, &me, true), None);
        let draining = view(vec![
            member("a", MemberState::Alive, true),
            member("b", MemberState::Alive, false),
        ]);
        assert_eq!(not_ready(&draining, &me, true), Some("draining"));
        assert_eq!(
            not_ready(&view(vec![]), &me, false),
            Some("not in its own view")
        );
    }
}
