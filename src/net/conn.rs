//! One established, authenticated connection, driven by a single task: it reads frames and
//! routes them (requests and one-way messages to local actors, responses to waiting
//! callers), and writes queued requests and finished responses in batches — everything
//! ready is appended to one buffer and written with one syscall.
//!
//! Back-pressure: at most [`MAX_INFLIGHT_PER_CONNECTION`] inbound messages are being
//! delivered at once (reading pauses beyond that, so TCP pushes back on the peer), and at
//! most [`OUT_HIGH_WATER`] bytes wait to be written (taking new work pauses beyond that).
//! Responses are always read, so two nodes can never wait on each other's writes.

use crate::ids::{Generation, NodeId, NodeRef};
use crate::net::error::NetError;
use crate::net::frame::{decode_view, EnvelopeView, ReplyTo};
use crate::net::handshake::Identity;
use crate::net::metrics::{add, bump};
use crate::net::pending::Pending;
use crate::net::registry::Delivery;
use crate::net::service::ActorRef;
use crate::net::transport::Shared;
use crate::net::wire::{codec, push_frame, Kind};
use bytes::{Bytes, BytesMut};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

/// Inbound messages being delivered per connection before reading pauses. Bounds the
/// memory and actor-mailbox pressure one peer can cause; 32 pipelined requests per caller
/// times a few callers fit comfortably.
pub const MAX_INFLIGHT_PER_CONNECTION: usize = 1024;

/// Bytes buffered for writing before the connection stops taking new frames (a batch is
/// written with one syscall; this bounds the buffer when the peer reads slowly).
pub const OUT_HIGH_WATER: usize = 1024 * 1024;

/// Initial capacity of the write buffer (a typical batch of small frames).
const OUT_INITIAL_CAPACITY: usize = 64 * 1024;

/// An authenticated connection, ready to be driven.
pub(crate) struct Conn {
    pub reader: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    pub writer: OwnedWriteHalf,
    /// Who is on the other side (from the handshake).
    pub peer: Identity,
    /// The socket address of the other side.
    pub addr: SocketAddr,
}

/// Why [`drive`] returned.
#[derive(Debug)]
pub(crate) enum Ended {
    Shutdown,
    Closed,
    Failed(String),
}

/// Work queued for the peer on an outbound link (absent on inbound connections).
pub(crate) struct Outbound<'a> {
    pub queue: &'a mut mpsc::Receiver<Bytes>,
    pub pending: &'a Pending,
    /// A frame taken from the queue before the connection existed.
    pub first: Option<Bytes>,
}

type Inflight = FuturesUnordered<Delivery>;

/// Drive `conn` until it closes, fails or the transport shuts down.
pub(crate) async fn drive(
    shared: &Shared,
    conn: Conn,
    mut outbound: Option<Outbound<'_>>,
) -> Ended {
    let Conn {
        mut reader,
        mut writer,
        peer,
        addr,
    } = conn;
    let mut ctx = ConnCtx {
        shared,
        peer: peer.node,
        addr,
        out: BytesMut::with_capacity(OUT_INITIAL_CAPACITY),
        enc: codec(shared.cfg.max_frame_bytes),
        inflight: FuturesUnordered::new(),
    };
    if let Some(first) = outbound.as_mut().and_then(|o| o.first.take()) {
        ctx.push(first);
    }
    // Created once: a fresh `cancelled()` per iteration would register and unregister a
    // waiter (two lock round trips) for every frame.
    let shutdown = shared.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        let can_read = ctx.inflight.len() < MAX_INFLIGHT_PER_CONNECTION;
        let can_fill = ctx.out.len() < OUT_HIGH_WATER;
        let has_queue = outbound.is_some();
        tokio::select! {
            biased;
            _ = &mut shutdown => return Ended::Shutdown,
            frame = reader.next(), if can_read => match frame {
                None => return Ended::Closed,
                Some(Err(e)) => {
                    bump(&shared.metrics.bad_connections);
                    return Ended::Failed(format!("unreadable frame: {e}"));
                }
                Some(Ok(frame)) => ctx.on_frame(frame, outbound.as_ref().map(|o| o.pending)),
            },
            Some(done) = ctx.inflight.next(), if can_fill && !ctx.inflight.is_empty() => {
                if let Some(frame) = done {
                    ctx.push(frame);
                }
            }
            Some(frame) = next_queued(&mut outbound), if can_fill && has_queue => {
                ctx.push(frame);
                ctx.drain_queue(&mut outbound);
            }
            written = writer.write_buf(&mut ctx.out), if !ctx.out.is_empty() => match written {
                Ok(0) => return Ended::Closed,
                Ok(_) => {}
                Err(e) => return Ended::Failed(format!("write failed: {e}")),
            },
        }
    }
}

async fn next_queued(outbound: &mut Option<Outbound<'_>>) -> Option<Bytes> {
    match outbound {
        Some(o) => o.queue.recv().await,
        None => std::future::pending().await,
    }
}

/// Per-connection state of [`drive`].
struct ConnCtx<'a> {
    shared: &'a Shared,
    peer: NodeRef,
    addr: SocketAddr,
    out: BytesMut,
    enc: LengthDelimitedCodec,
    inflight: Inflight,
}

impl ConnCtx<'_> {
    /// Append one frame to the write batch.
    fn push(&mut self, body: Bytes) {
        let len = body.len() as u64;
        match push_frame(&mut self.enc, body, &mut self.out) {
            Ok(()) => {
                bump(&self.shared.metrics.frames_out);
                add(&self.shared.metrics.bytes_out, len);
            }
            Err(e) => tracing::warn!(peer = %self.addr, cause = %e, "frame not sent"),
        }
    }

    /// Take whatever else is queued, up to the high-water mark.
    fn drain_queue(&mut self, outbound: &mut Option<Outbound<'_>>) {
        let Some(o) = outbound else { return };
        while self.out.len() < OUT_HIGH_WATER {
            match o.queue.try_recv() {
                Ok(frame) => self.push(frame),
                Err(_) => break,
            }
        }
    }

    fn on_frame(&mut self, frame: BytesMut, pending: Option<&Pending>) {
        let m = &self.shared.metrics;
        bump(&m.frames_in);
        add(&m.bytes_in, frame.len() as u64);
        let frame = frame.freeze();
        crate::fuzz::record::frame(crate::fuzz::Target::PeerFrame, &frame);
        let env = match decode_view(&frame) {
            Ok(env) => env,
            Err(e) => {
                bump(&m.bad_frames);
                tracing::warn!(peer = %self.addr, cause = %e, "dropped undecodable frame");
                return;
            }
        };
        match env.kind {
            Kind::Response { corr, ok } => match pending {
                Some(p) => {
                    if !p.complete(corr, ok, frame.slice_ref(env.payload)) {
                        tracing::debug!(peer = %self.addr, corr, "late response dropped");
                    }
                }
                None => {
                    bump(&m.bad_frames);
                    tracing::warn!(peer = %self.addr, "dropped response on an inbound connection");
                }
            },
            Kind::Request { corr } => self.on_request(&env, corr),
            Kind::OneWay => self.on_one_way(&env),
        }
    }

    fn on_request(&mut self, env: &EnvelopeView<'_>, corr: u64) {
        let started = self
            .route(env)
            .and_then(|()| self.deliver(env, Some(self.reply_to(env, corr))));
        match started {
            Ok(delivery) => self.inflight.push(delivery),
            Err(e) => {
                let frame = self.reply_to(env, corr).frame::<()>(Err(e));
                self.push_opt(frame);
            }
        }
    }

    /// Answers go to the authenticated peer of this connection.
    fn reply_to(&self, env: &EnvelopeView<'_>, corr: u64) -> ReplyTo {
        ReplyTo {
            me: self.shared.me.clone(),
            to: ActorRef::new(self.peer.clone(), env.to.service, env.to.instance),
            tag: env.tag,
            corr,
            max_frame: self.shared.cfg.max_frame_bytes,
        }
    }

    fn on_one_way(&mut self, env: &EnvelopeView<'_>) {
        let delivered = self.route(env).and_then(|()| self.deliver(env, None));
        match delivered {
            Ok(delivery) => self.inflight.push(delivery),
            Err(e) => {
                bump(&self.shared.metrics.dropped_one_way);
                tracing::warn!(peer = %self.addr, service = %env.to.service, instance = env.to.instance, cause = %e, "dropped one-way message");
            }
        }
    }

    fn push_opt(&mut self, frame: Option<Bytes>) {
        if let Some(f) = frame {
            self.push(f);
        }
    }

    /// Check the addressee is this node, this generation.
    fn route(&self, env: &EnvelopeView<'_>) -> Result<(), NetError> {
        let m = &self.shared.metrics;
        let me = &self.shared.me;
        let to = &env.to.node;
        if to.id != me.id.as_str() {
            bump(&m.bad_frames);
            return Err(NetError::UnknownNode(NodeId::new(to.id)));
        }
        if to.generation != me.generation.0 {
            bump(&m.stale_generation);
            tracing::debug!(peer = %self.peer, addressed = to.generation, "message for another generation");
            return Err(NetError::StaleGeneration {
                node: me.id.clone(),
                addressed: Generation(to.generation),
                current: me.generation,
            });
        }
        Ok(())
    }

    /// Decode the payload for the local actor and start delivering it.
    fn deliver(
        &self,
        env: &EnvelopeView<'_>,
        reply: Option<ReplyTo>,
    ) -> Result<Delivery, NetError> {
        let m = &self.shared.metrics;
        let to = &env.to;
        let routed =
            self.shared
                .registry
                .dispatch(to.service, env.tag, to.instance, env.payload, reply);
        match &routed {
            Err(NetError::NoSuchActor { .. }) => bump(&m.no_such_actor),
            Err(e @ NetError::Codec(_)) => {
                bump(&m.bad_frames);
                tracing::warn!(peer = %self.addr, service = %to.service, cause = %e, "dropped undecodable payload");
            }
            _ => {}
        }
        routed
    }
}
