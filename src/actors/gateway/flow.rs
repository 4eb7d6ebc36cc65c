//! What one client connection may make the gateway hold, in bytes and in frames:
//!
//! - [`Outbox`]: responses waiting for a client to read them, within
//!   `gateway.max_queued_response_bytes` per connection. Responses are written in
//!   fragments of [`RESPONSE_FRAGMENT_BYTES`], so the outgoing queue (32 messages in
//!   actix-ws) holds at most 32 fragments beyond the budget. A client that does not read
//!   is disconnected when the budget is exceeded (one response larger than the budget may
//!   be sent when nothing else waits).
//! - [`Intake`]: bytes of messages still arriving (partial frames, unfinished
//!   continuations), summed over every connection of the gateway within
//!   `gateway.max_receiving_bytes`; the connection whose bytes would exceed it is closed.
//! - [`ControlRate`]: pings, pongs and text frames beyond [`MAX_CONTROL_FRAMES`] a
//!   [`CONTROL_WINDOW`] close the connection (they are answered, so a flood costs work
//!   and, unread, memory).
//! - [`Socket`]: the connection's socket, to cut when the client stopped reading (a close
//!   frame would wait behind what it did not read).

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_ws::{Item, Session};
use futures::Stream;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Largest websocket frame of a response; larger responses are sent as continuations.
pub const RESPONSE_FRAGMENT_BYTES: usize = 64 * 1024;

/// Control frames a client may send per [`CONTROL_WINDOW`]: a client needs one pong per
/// server ping and perhaps pings of its own; far more is a flood.
pub const MAX_CONTROL_FRAMES: u32 = 64;
/// The window [`MAX_CONTROL_FRAMES`] counts in.
pub const CONTROL_WINDOW: Duration = Duration::from_secs(1);

/// The error message [`CountedPayload`] fails a connection with at the receiving budget.
pub const RECEIVING_FULL: &str = "receiving_limit";

/// Why a response was not sent.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closed.
    Closed,
    /// The client does not read: its responses exceed the budget.
    Overflow,
}

/// One connection's responses on their way out (see the module doc).
pub struct Outbox {
    session: tokio::sync::Mutex<Session>,
    queued: AtomicUsize,
    budget: usize,
    overflow: CancellationToken,
}

impl Outbox {
    pub fn new(session: Session, budget: usize) -> Outbox {
        Outbox {
            session: tokio::sync::Mutex::new(session),
            queued: AtomicUsize::new(0),
            budget,
            overflow: CancellationToken::new(),
        }
    }

    /// Resolves once a response did not fit the budget (or could not be sent in time).
    pub async fn overflowed(&self) {
        self.overflow.cancelled().await
    }

    /// Mark the client a slow reader (e.g. a response timed out half-sent).
    pub fn overflow(&self) {
        self.overflow.cancel();
    }

    /// Bytes of responses waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Send one response message, in fragments if it is large, after the responses before it.
    pub async fn send(&self, response: Vec<u8>) -> Result<(), SendError> {
        let mut left = Queued {
            counter: &self.queued,
            bytes: response.len(),
        };
        let before = self.queued.fetch_add(left.bytes, Ordering::AcqRel);
        if before > 0 && before + left.bytes > self.budget {
            self.overflow.cancel();
            return Err(SendError::Overflow);
        }
        let mut session = self.session.lock().await;
        let message = Bytes::from(response);
        if message.len() <= RESPONSE_FRAGMENT_BYTES {
            session
                .binary(message)
                .await
                .map_err(|_| SendError::Closed)?;
            left.sent(left.bytes);
            return Ok(());
        }
        let mut chunks = message
            .chunks(RESPONSE_FRAGMENT_BYTES)
            .enumerate()
            .peekable();
        while let Some((i, chunk)) = chunks.next() {
            let chunk = message.slice_ref(chunk);
            let n = chunk.len();
            let item = match (i, chunks.peek().is_none()) {
                (0, _) => Item::FirstBinary(chunk),
                (_, true) => Item::Last(chunk),
                (_, false) => Item::Continue(chunk),
            };
            session
                .continuation(item)
                .await
                .map_err(|_| SendError::Closed)?;
            left.sent(n);
        }
        Ok(())
    }
}

/// The part of a response still counted as queued; uncounted when dropped.
struct Queued<'a> {
    counter: &'a AtomicUsize,
    bytes: usize,
}

impl Queued<'_> {
    fn sent(&mut self, n: usize) {
        let n = n.min(self.bytes);
        self.counter.fetch_sub(n, Ordering::AcqRel);
        self.bytes -= n;
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Bytes received on one connection since its last complete message, counted against the
/// gateway-wide budget (see the module doc).
pub struct Intake {
    global: Arc<AtomicUsize>,
    held: AtomicUsize,
    budget: usize,
}

impl Intake {
    /// A connection's intake, counting into `global` (shared by every connection) up to
    /// `budget`.
    pub fn new(global: Arc<AtomicUsize>, budget: usize) -> Arc<Intake> {
        Arc::new(Intake {
            global,
            held: AtomicUsize::new(0),
            budget,
        })
    }

    /// Count `n` more bytes received; false (nothing counted) if they do not fit.
    fn take(&self, n: usize) -> bool {
        let before = self.global.fetch_add(n, Ordering::AcqRel);
        if before + n > self.budget {
            self.global.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        self.held.fetch_add(n, Ordering::AcqRel);
        true
    }

    /// A complete message arrived: what was held is no longer a partial message.
    pub fn release(&self) {
        let held = self.held.swap(0, Ordering::AcqRel);
        self.global.fetch_sub(held, Ordering::AcqRel);
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.release();
    }
}

/// A connection's incoming bytes, counted by its [`Intake`]; a chunk beyond the budget
/// fails the connection with [`RECEIVING_FULL`].
pub struct CountedPayload {
    inner: Payload,
    intake: Arc<Intake>,
}

impl CountedPayload {
    pub fn new(inner: Payload, intake: Arc<Intake>) -> Self {
        CountedPayload { inner, intake }
    }
}

impl Stream for CountedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) if !self.intake.take(chunk.len()) => Poll::Ready(Some(
                Err(PayloadError::Io(std::io::Error::other(RECEIVING_FULL))),
            )),
            other => other,
        }
    }
}

/// Counts a client's control frames in fixed windows.
pub struct ControlRate {
    window: Instant,
    count: u32,
}

impl ControlRate {
    pub fn new(now: Instant) -> Self {
        ControlRate {
            window: now,
            count: 0,
        }
    }

    /// Count one control frame at `now`; false once the window's allowance is spent.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window) >= CONTROL_WINDOW {
            self.window = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= MAX_CONTROL_FRAMES
    }
}

/// A duplicate of a connection's socket, taken when it was accepted, to cut the connection
/// when its client stopped reading. (A duplicate keeps the socket itself open until this
/// is dropped, so the descriptor cannot name another connection meanwhile.)
#[derive(Clone)]
pub struct Socket(Arc<OwnedFd>);

impl Socket {
    /// The duplicate for a TCP connection, plain or TLS, as `HttpServer::on_connect` sees it.
    pub fn of_connection(conn: &dyn std::any::Any) -> Option<Socket> {
        use actix_tls::accept::rustls_0_23::TlsStream;
        use actix_web::rt::net::TcpStream;
        let tcp = match conn.downcast_ref::<TcpStream>() {
            Some(tcp) => tcp,
            None => conn.downcast_ref::<TlsStream<TcpStream>>()?.get_ref().0,
        };
        let fd = std::os::fd::AsFd::as_fd(tcp).try_clone_to_owned().ok()?;
        Some(Socket(Arc::new(fd)))
    }

    /// Shut the connection down both ways: whatever waits to be written is dropped, and the
    /// server lets go of the connection.
    pub fn cut(&self) {
        // SAFETY: shutdown on a descriptor this value owns.
        unsafe { libc::shutdown(self.0.as_raw_fd(), libc::SHUT_RDWR) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiving_budget_is_shared_and_given_back() {
        let global = Arc::new(AtomicUsize::new(0));
        let (a, b) = (
            Intake::new(global.clone(), 100),
            Intake::new(global.clone(), 100),
        );
        assert!(a.take(60));
        assert!(!b.take(50), "over the shared budget");
        assert!(b.take(40));
        assert_eq!(global.load(Ordering::Acquire), 100);
        a.release();
        assert!(b.take(50));
        drop(b);
        assert_eq!(global.load(Ordering::Acquire), 0);
    }

    #[test]
    fn control_frames_beyond_the_window_allowance_are_refused() {
        let t = Instant::now();
        let mut r = ControlRate::new(t);
        assert!((0..MAX_CONTROL_FRAMES).all(|_| r.allow(t)));
        assert!(!r.allow(t));
        assert!(r.allow(t + CONTROL_WINDOW), "a new window");
    }
}
