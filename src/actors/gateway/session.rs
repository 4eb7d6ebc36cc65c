//! One client websocket session: reads messages, runs each request as its own task (so a
//! connection shared by many threads pipelines its requests), writes each response when it
//! is ready, pings the client and closes it when it goes silent.
//!
//! Back-pressure: at most [`MAX_IN_FLIGHT`] requests, holding at most
//! `gateway.max_in_flight_bytes` of request messages (a larger message runs alone), run per
//! session; beyond that the session stops reading until enough finish (still pinging the
//! client, so one that went away is noticed). Every task ends with the session.
//!
//! A client that does not read its responses is disconnected once they exceed
//! `gateway.max_queued_response_bytes`, or one was not sent within the client timeout; one
//! that stops sending requests and pongs, after the client timeout (its own pings do not
//! count); one that floods control frames, at once. See [`super::flow`].

use super::flow::{ControlRate, Intake, Outbox, Socket, MAX_CONTROL_FRAMES, RECEIVING_FULL};
use super::ops;
use super::protocol::{self, GatewayError};
use super::{GatewayState, Limits};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Requests running at once on one connection. Each holds its decoded request (up to the
/// message limit) and, for calls, a result slot; this bounds a connection's memory while
/// leaving room for many client threads sharing it.
pub const MAX_IN_FLIGHT: usize = 256;

/// The unit of the per-connection byte budget (`gateway.max_in_flight_bytes`): large puts
/// from many threads of one client queue behind each other instead of holding up to
/// [`MAX_IN_FLIGHT`] times the message limit.
const KIB: usize = 1024;

/// Longest close reason sent: a close frame holds 125 bytes, two of them the code.
const MAX_CLOSE_REASON: usize = 123;

/// Why a session ended (for the log).
#[derive(Debug)]
enum End {
    ClientClosed,
    Silent,
    TooLarge,
    Protocol(String),
    Gone,
    /// Its responses exceeded `gateway.max_queued_response_bytes`: it does not read.
    SlowReader,
    /// Its partial messages would exceed the gateway's `gateway.max_receiving_bytes`.
    Busy,
    /// Too many control frames.
    Flood,
    /// The gateway drains: the client is sent elsewhere once its requests are answered.
    GoingAway,
}

impl End {
    /// Whether the client may not be reading: its socket is cut rather than left to drain.
    fn unread(&self) -> bool {
        matches!(self, End::Silent | End::SlowReader | End::Flood | End::Gone)
    }
}

/// What one session holds: its outbox, its share of the receiving budget, its socket.
pub struct Connection {
    pub outbox: Arc<Outbox>,
    pub intake: Arc<Intake>,
    pub socket: Option<Socket>,
}

/// Serve one upgraded connection until it closes.
pub async fn run(
    state: Arc<GatewayState>,
    mut session: Session,
    mut stream: AggregatedMessageStream,
    conn: Connection,
    peer: String,
) {
    let cancel = CancellationToken::new();
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let budget_kib = (state.limits.max_in_flight_bytes / KIB).max(1);
    let byte_permits = Arc::new(Semaphore::new(budget_kib));
    let mut heartbeat = tokio::time::interval(state.limits.heartbeat);
    let mut last_heard = Instant::now();
    let mut control = ControlRate::new(last_heard);
    tracing::debug!(client = %peer, "client session opened");
    let end = loop {
        let msg = tokio::select! {
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > state.limits.client_timeout {
                    break End::Silent;
                }
                if !ping(&mut session, state.limits.heartbeat).await {
                    break End::Gone;
                }
                continue;
            }
            _ = conn.outbox.overflowed() => break End::SlowReader,
            _ = state.going_away.cancelled() => break End::GoingAway,
            m = stream.recv() => m,
        };
        match msg {
            None => break End::Gone,
            Some(Ok(AggregatedMessage::Binary(frame))) => {
                last_heard = Instant::now();
                conn.intake.release();
                // At a limit: stop reading until requests finish, but keep pinging so a
                // client that went away is noticed (and its tasks cancelled).
                let Some(permit) = acquire(&permits, 1, &mut session, &mut heartbeat, &state).await
                else {
                    break End::Gone;
                };
                // A message larger than the whole budget takes all of it (it runs alone).
                let kib = frame.len().div_ceil(KIB).clamp(1, budget_kib);
                let kib = u32::try_from(kib).unwrap_or(u32::MAX);
                let Some(bytes_permit) =
                    acquire(&byte_permits, kib, &mut session, &mut heartbeat, &state).await
                else {
                    break End::Gone;
                };
                let (state, out, cancel) = (state.clone(), conn.outbox.clone(), cancel.clone());
                actix_web::rt::spawn(async move {
                    let response = tokio::select! {
                        _ = cancel.cancelled() => return,
                        r = respond(&state, &frame) => r,
                    };
                    drop(frame);
                    // A client that stops reading must not hold this task forever: a
                    // response not sent within the client timeout ends the session.
                    let limit = state.limits.client_timeout;
                    if tokio::time::timeout(limit, out.send(response))
                        .await
                        .is_err()
                    {
                        out.overflow();
                    }
                    drop((permit, bytes_permit));
                });
            }
            Some(Ok(msg)) if !control.allow(Instant::now()) => {
                tracing::debug!(client = %peer, kind = ?std::mem::discriminant(&msg), "control flood");
                break End::Flood;
            }
            Some(Ok(AggregatedMessage::Text(_))) => {
                conn.intake.release();
                let err = GatewayError::MalformedFrame(
                    "text messages are not part of the protocol: send binary MessagePack".into(),
                );
                let answer = protocol::encode_err(None, &err.body());
                if conn.outbox.send(answer).await.is_err() {
                    break End::Gone;
                }
            }
            Some(Ok(AggregatedMessage::Ping(p))) => {
                let answered = tokio::time::timeout(state.limits.heartbeat, session.pong(&p)).await;
                if !matches!(answered, Ok(Ok(()))) {
                    break End::Gone;
                }
            }
            // A pong answers our ping: the client reads.
            Some(Ok(AggregatedMessage::Pong(_))) => last_heard = Instant::now(),
            Some(Ok(AggregatedMessage::Close(_))) => break End::ClientClosed,
            Some(Err(e)) => break classify(e),
        }
    };
    if let End::GoingAway = end {
        // Answer what was taken (each task holds a permit until its response is sent);
        // what the client sent after is not read: it sends that to another gateway.
        let all = MAX_IN_FLIGHT as u32;
        let answered = permits.acquire_many(all);
        let _ = tokio::time::timeout(state.limits.client_timeout, answered).await;
    }
    cancel.cancel();
    tracing::debug!(client = %peer, end = ?end, queued = conn.outbox.queued(), "client session closed");
    let reason = close_reason(&end, &state.limits);
    let grace = state.limits.heartbeat;
    let closed = tokio::time::timeout(grace, session.close(reason)).await;
    if end.unread() || closed.is_err() {
        if let Some(socket) = conn.socket {
            // The close frame (queued, not yet written) has one heartbeat to go out; a
            // client that does not read never takes it, and is cut off then.
            actix_web::rt::spawn(async move {
                tokio::time::sleep(grace).await;
                socket.cut();
            });
        }
    }
}

/// Ping the client; false if the connection is gone or the ping could not even be queued
/// within `limit` (the client stopped reading).
async fn ping(session: &mut Session, limit: std::time::Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, session.ping(b"")).await,
        Ok(Ok(()))
    )
}

/// Take `n` permits: at once if free, else waiting while still pinging on every
/// heartbeat; `None` when the client is gone.
async fn acquire(
    permits: &Arc<Semaphore>,
    n: u32,
    session: &mut Session,
    heartbeat: &mut tokio::time::Interval,
    state: &GatewayState,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(p) = permits.clone().try_acquire_many_owned(n) {
        return Some(p);
    }
    loop {
        tokio::select! {
            p = permits.clone().acquire_many_owned(n) => return p.ok(),
            _ = heartbeat.tick() => {
                if !ping(session, state.limits.heartbeat).await {
                    return None;
                }
            }
        }
    }
}

/// Decode, execute and encode one request.
async fn respond(state: &GatewayState, frame: &[u8]) -> Vec<u8> {
    crate::fuzz::record::frame(crate::fuzz::Target::ClientRequest, frame);
    match protocol::decode(frame) {
        Err((id, err)) => protocol::encode_err(id, &err.body()),
        Ok((id, request)) => match ops::execute(state, request).await {
            Ok(reply) => protocol::encode_ok(id, &reply),
            Err(body) => protocol::encode_err(Some(id), &body),
        },
    }
}

fn classify(e: actix_ws::ProtocolError) -> End {
    match e {
        actix_ws::ProtocolError::Overflow => End::TooLarge,
        actix_ws::ProtocolError::Io(ref io) if io.to_string().contains(RECEIVING_FULL) => End::Busy,
        // actix-ws reports an over-long continuation as this I/O error.
        actix_ws::ProtocolError::Io(ref io) if io.to_string().contains("maximum") => End::TooLarge,
        other => End::Protocol(other.to_string()),
    }
}

fn close_reason(end: &End, limits: &Limits) -> Option<CloseReason> {
    let (code, description) = match end {
        End::ClientClosed => (CloseCode::Normal, None),
        End::Gone => return None,
        End::Silent => (
            CloseCode::Policy,
            Some("client_timeout: no request or pong within the client timeout".to_string()),
        ),
        End::TooLarge => (
            CloseCode::Size,
            Some(format!(
                "message_too_large: the limit is {} bytes",
                limits.max_message_bytes
            )),
        ),
        End::SlowReader => (
            CloseCode::Policy,
            Some(format!(
                "slow_reader: more than {} bytes of responses unread",
                limits.max_queued_response_bytes
            )),
        ),
        End::Busy => (
            CloseCode::Again,
            Some("server_busy: too many large messages arriving at once; send it again".into()),
        ),
        End::Flood => (
            CloseCode::Policy,
            Some(format!(
                "control_flood: more than {MAX_CONTROL_FRAMES} pings, pongs or text frames a second"
            )),
        ),
        End::Protocol(e) => (CloseCode::Protocol, Some(format!("protocol_error: {e}"))),
        End::GoingAway => (
            CloseCode::Away,
            Some("going_away: the gateway is draining; connect to another".into()),
        ),
    };
    // A close reason must fit a control frame (123 bytes of text).
    let description = description.map(|mut d| {
        let mut cut = d.len().min(MAX_CLOSE_REASON);
        while !d.is_char_boundary(cut) {
            cut -= 1;
        }
        d.truncate(cut);
        d
    });
    Some(CloseReason { code, description })
}
