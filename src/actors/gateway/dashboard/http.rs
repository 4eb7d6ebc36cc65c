//! The dashboard's HTTP endpoints (actix-web): thin handlers over the sampler's feed.
//!
//! | path | what | token |
//! |---|---|---|
//! | `/` | the page (HTML) | yes |
//! | `/assets/app.js`, `/assets/style.css` | static code | yes |
//! | `/api/snapshot` | latest snapshot JSON | yes |
//! | `/api/history` | chart points JSON, oldest first | yes |
//! | `/api/events` | server-sent events: `history` once, then `snapshot` each second | yes |
//! | `/metrics` | Prometheus text: the cluster as last sampled | unless `gateway.metrics_require_token = false` |
//! | `/healthz` | `ok` (liveness probe) | no |
//!
//! Every endpoint but `/healthz` refuses web pages of other origins and, on a loopback
//! listener, a `Host` that is not loopback (`super::super::origin`). The page opened as
//! `/?token=T` answers with a redirect to `/` that sets the token cookie
//! ([`super::auth::COOKIE`]), so the token leaves the address bar and the history.

use super::auth::{AuthError, AuthPolicy, Presented, COOKIE};
use super::prometheus;
use super::sampler::Feed;
use crate::actors::gateway::origin::{OriginError, OriginPolicy};
use crate::protocol::ErrorCode;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Live event streams served at once: each holds a connection and wakes once a second; a
/// few operators need a handful, the bound stops a buggy script from exhausting sockets.
pub const MAX_EVENT_CLIENTS: usize = 32;

/// Browsers reconnect this long after a dropped event stream.
const SSE_RETRY_MS: u64 = 2_000;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// What every handler shares.
pub struct State {
    /// This node's id (label of its transport series).
    pub node: String,
    /// Who may see what.
    pub auth: AuthPolicy,
    /// Which web pages may ask.
    pub origins: OriginPolicy,
    /// The sampler's latest output.
    pub feed: Feed,
    /// Event streams open now.
    pub clients: Arc<AtomicUsize>,
}

/// Register the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/assets/app.js", web::get().to(app_js))
        .route("/assets/style.css", web::get().to(style_css))
        .route("/api/snapshot", web::get().to(snapshot))
        .route("/api/history", web::get().to(history))
        .route("/api/events", web::get().to(events))
        .route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(|| async { "ok" }));
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn header(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn query_token(req: &HttpRequest) -> Option<String> {
    web::Query::<TokenQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
}

/// The 403 or 401 response, unless the request may see this endpoint.
fn refuse(req: &HttpRequest, state: &State, is_metrics: bool) -> Option<HttpResponse> {
    let origin = header(req, header::ORIGIN);
    if let Err(e) = state.origins.check(origin, header(req, header::HOST)) {
        return Some(forbidden(req, e));
    }
    let query = query_token(req);
    let cookie = req.cookie(COOKIE);
    let presented = Presented {
        header: header(req, header::AUTHORIZATION),
        cookie: cookie.as_ref().map(|c| c.value()),
        query: query.as_deref(),
    };
    state
        .auth
        .check(presented, is_metrics)
        .err()
        .map(|e| unauthorized(req, e))
}

fn forbidden(req: &HttpRequest, e: OriginError) -> HttpResponse {
    tracing::debug!(path = %req.path(), cause = %e, "dashboard request from a web page refused");
    HttpResponse::Forbidden()
        .json(serde_json::json!({ "error": e.code(), "message": e.to_string() }))
}

fn unauthorized(req: &HttpRequest, e: AuthError) -> HttpResponse {
    tracing::debug!(path = %req.path(), code = %e.code(), "dashboard request refused");
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
        .json(serde_json::json!({ "error": e.code(), "message": e.to_string() }))
}

async fn index(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(r) = refuse(&req, &state, false) {
        return r;
    }
    if let Some(token) = query_token(&req) {
        let alone = Presented {
            query: Some(&token),
            ..Presented::default()
        };
        let valid = state.auth.token.is_some() && state.auth.check(alone, false).is_ok();
        return exchange_for_cookie(&req, valid.then_some(token));
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(INDEX_HTML)
}

/// The `?token=` of the page's URL leaves the address bar (a redirect to the same path
/// without it); a valid one becomes an HttpOnly, SameSite=Strict cookie.
fn exchange_for_cookie(req: &HttpRequest, token: Option<String>) -> HttpResponse {
    // The page takes no other parameter: the redirect drops the whole query.
    let mut r = HttpResponse::SeeOther();
    r.insert_header((header::LOCATION, req.path().to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(token) = token {
        r.cookie(
            actix_web::cookie::Cookie::build(COOKIE, token)
                .path("/")
                .http_only(true)
                .same_site(actix_web::cookie::SameSite::Strict)
                .finish(),
        );
    }
    r.finish()
}

async fn app_js(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(r) = refuse(&req, &state, false) {
        return r;
    }
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(APP_JS)
}

async fn style_css(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(r) = refuse(&req, &state, false) {
        return r;
    }
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLE_CSS)
}

async fn snapshot(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(r) = refuse(&req, &state, false) {
        return r;
    }
    let published = state.feed.borrow().clone();
    match &published.snapshot_json {
        Some(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json.to_string()),
        None => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "error": ErrorCode::NotReady, "message": "no sample yet" })),
    }
}

async fn history(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(r) = refuse(&req, &state, false) {
        return r;
    }
    let published = state.feed.borrow().clone();
    HttpResponse::Ok().json(&*published.history)
}

async fn metrics(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(r) = refuse(&req, &state, true) {
        return r;
    }
    let published = state.feed.borrow().clone();
    let clients = state.clients.load(Ordering::Relaxed);
    let mut text = prometheus::render(&state.node, published.sample.as_deref(), clients);
    text.push_str(&prometheus::gateway_series(
        &crate::metrics::global().gateway_counts(),
    ));
    HttpResponse::Ok()
        .content_type(prometheus::CONTENT_TYPE)
        .body(text)
}

/// Counts an open event stream; released when the stream is dropped.
struct ClientSlot(Arc<AtomicUsize>);

impl ClientSlot {
    fn acquire(clients: &Arc<AtomicUsize>) -> Option<ClientSlot> {
        clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_EVENT_CLIENTS).then_some(n + 1)
            })
            .ok()
            .map(|_| ClientSlot(clients.clone()))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn sse(event: &str, data: &str) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

async fn events(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(r) = refuse(&req, &state, false) {
        return r;
    }
    let Some(slot) = ClientSlot::acquire(&state.clients) else {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "error": ErrorCode::TooManyStreams,
            "message": format!("at most {MAX_EVENT_CLIENTS} live dashboards at once"),
        }));
    };
    let feed = state.feed.clone();
    let stream =
        futures::stream::unfold((feed, slot, true), |(mut feed, slot, first)| async move {
            let chunk = if first {
                let p = feed.borrow_and_update().clone();
                let history = serde_json::to_string(&*p.history).unwrap_or_else(|_| "[]".into());
                let mut out = format!("retry: {SSE_RETRY_MS}\n\n{}", sse("history", &history));
                if let Some(json) = &p.snapshot_json {
                    out.push_str(&sse("snapshot", json));
                }
                out
            } else {
                // Ends the stream when the sampler stops (its sender is dropped).
                feed.changed().await.ok()?;
                let p = feed.borrow_and_update().clone();
                match &p.snapshot_json {
                    Some(json) => sse("snapshot", json),
                    None => ": waiting\n\n".to_string(),
                }
            };
            Some((
                Ok::<_, actix_web::Error>(Bytes::from(chunk)),
                (feed, slot, false),
            ))
        });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(stream)
}
