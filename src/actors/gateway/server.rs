//! The client listener: an actix-web server whose only route upgrades to the websocket
//! (at `/` and `/ws`), checking first that no foreign web page asks (`Origin`, `Host`:
//! see [`super::origin`]) and then the client token when one is configured.

use super::flow::{CountedPayload, Intake, Outbox, Socket};
use super::session;
use super::GatewayState;
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::FromRequest;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures::Stream;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Client connections per worker thread: bounds sockets and per-session buffers.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 1024;

/// Seconds a stopping server lets open sessions finish.
const SHUTDOWN_GRACE_SECS: u64 = 1;

/// Bind `listen` and serve clients on `workers` threads (each a single-threaded runtime
/// serving many sessions; `gateway.http_workers`), over TLS when given its config.
/// Returns the server handle and the bound address.
pub fn start(
    state: Arc<GatewayState>,
    listen: SocketAddr,
    workers: usize,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<(actix_web::dev::ServerHandle, SocketAddr)> {
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/", web::get().to(upgrade))
            .route("/ws", web::get().to(upgrade))
    })
    .on_connect(|conn, ext| {
        if let Some(socket) = Socket::of_connection(conn) {
            ext.insert(socket);
        }
    })
    .workers(workers)
    .max_connections(MAX_CONNECTIONS_PER_WORKER)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_GRACE_SECS);
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(listen, tls),
        None => server.bind(listen),
    }
    .map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for clients on {listen}: {e}"),
        )
    })?;
    let bound = server.addrs().first().copied().unwrap_or(listen);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(cause = %e, "client listener failed");
        }
    });
    Ok((handle, bound))
}

/// Check the origin and the token, then upgrade and hand the connection to a session task.
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<GatewayState>,
) -> actix_web::Result<HttpResponse> {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let checked = state
        .limits
        .origins
        .check(header(header::ORIGIN), header(header::HOST));
    if let Err(e) = checked {
        tracing::debug!(cause = %e, "websocket refused to a web page");
        return Ok(HttpResponse::Forbidden().body(format!("{}: {e}\n", e.code())));
    }
    if state.going_away.is_cancelled() {
        return Ok(HttpResponse::ServiceUnavailable()
            .body("going_away: this gateway is draining; connect to another\n"));
    }
    if let Some(token) = &state.limits.token {
        if !presented(&req).is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes()))) {
            return Ok(HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .body("unauthorized: missing or wrong client token\n"));
        }
    }
    // Every byte the connection sends counts against the gateway's receiving budget until
    // it completes a message.
    let intake = Intake::new(state.receiving.clone(), state.limits.max_receiving_bytes);
    let counted: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(CountedPayload::new(body.into_inner(), intake.clone()));
    let mut payload = Payload::from(counted);
    let body = web::Payload::from_request(&req, &mut payload).await?;
    let (response, ws, stream) = actix_ws::handle(&req, body)?;
    let max = state.limits.max_message_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let peer = req
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into());
    let conn = session::Connection {
        outbox: Arc::new(Outbox::new(
            ws.clone(),
            state.limits.max_queued_response_bytes,
        )),
        intake,
        socket: req.conn_data::<Socket>().cloned(),
    };
    let state = state.into_inner();
    actix_web::rt::spawn(session::run(state, ws, stream, conn, peer));
    Ok(response)
}

/// The token a client presented: `Authorization: Bearer <token>` or `?token=<token>`.
fn presented(req: &HttpRequest) -> Option<String> {
    if let Some(h) = req.headers().get("authorization") {
        let h = h.to_str().ok()?;
        return h.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("token").cloned())
}
