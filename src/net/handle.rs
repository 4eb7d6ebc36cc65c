//! [`Handle`]: how actor code sends to an actor anywhere in the cluster, and
//! [`RemoteRecipient`], the remote half.

use crate::net::error::NetError;
use crate::net::frame::encode_frame;
use crate::net::link::Link;
use crate::net::metrics::bump;
use crate::net::service::{ActorRef, RemoteMessage, ServiceId};
use crate::net::transport::Shared;
use crate::net::wire::{decode_payload, Kind};
use actix::Recipient;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TrySendError;

/// A handle to one actor, local or remote. Obtain it from `Transport::handle`.
pub enum Handle<M: RemoteMessage> {
    /// In this process: the message is handed over as is.
    Local {
        recipient: Recipient<M>,
        /// Default for [`Handle::send`].
        timeout: Duration,
    },
    /// On another node: encoded and sent through the peer link.
    Remote(RemoteRecipient<M>),
    /// Cannot be reached (e.g. another generation of this node): every send fails with it.
    Unreachable(NetError),
}

impl<M: RemoteMessage> Clone for Handle<M> {
    fn clone(&self) -> Self {
        match self {
            Handle::Local { recipient, timeout } => Handle::Local {
                recipient: recipient.clone(),
                timeout: *timeout,
            },
            Handle::Remote(r) => Handle::Remote(r.clone()),
            Handle::Unreachable(e) => Handle::Unreachable(e.clone()),
        }
    }
}

impl<M: RemoteMessage> Handle<M> {
    /// Request/response with the configured request timeout.
    pub async fn send(&self, msg: M) -> Result<M::Result, NetError> {
        let t = match self {
            Handle::Local { timeout, .. } => *timeout,
            Handle::Remote(r) => r.default_timeout(),
            Handle::Unreachable(e) => return Err(e.clone()),
        };
        self.send_timeout(msg, t).await
    }

    /// Request/response, failing with `Timeout` after `t` (the pending entry is removed).
    pub async fn send_timeout(&self, msg: M, t: Duration) -> Result<M::Result, NetError> {
        match self {
            Handle::Local { recipient, .. } => {
                match tokio::time::timeout(t, recipient.send(msg)).await {
                    Ok(r) => r.map_err(NetError::from),
                    Err(_) => Err(NetError::Timeout),
                }
            }
            Handle::Remote(r) => r.send_timeout(msg, t).await,
            Handle::Unreachable(e) => Err(e.clone()),
        }
    }

    /// One-way: `Err(QueueFull)` when the peer queue or local mailbox is full, rather than
    /// buffering without bound.
    pub fn tell(&self, msg: M) -> Result<(), NetError> {
        match self {
            Handle::Local { recipient, .. } => recipient.try_send(msg).map_err(|e| match e {
                actix::prelude::SendError::Full(_) => NetError::QueueFull,
                actix::prelude::SendError::Closed(_) => NetError::Mailbox("mailbox closed".into()),
            }),
            Handle::Remote(r) => r.tell(msg),
            Handle::Unreachable(e) => Err(e.clone()),
        }
    }

    /// True when the target is in this process.
    pub fn is_local(&self) -> bool {
        matches!(self, Handle::Local { .. })
    }
}

/// The remote half of a [`Handle`]: encodes `M` into an envelope for the target's link.
pub struct RemoteRecipient<M> {
    shared: Arc<Shared>,
    target: ActorRef,
    link: OnceLock<Arc<Link>>,
    _message: PhantomData<fn(M)>,
}

impl<M> Clone for RemoteRecipient<M> {
    fn clone(&self) -> Self {
        RemoteRecipient {
            shared: self.shared.clone(),
            target: self.target.clone(),
            link: self.link.clone(),
            _message: PhantomData,
        }
    }
}

impl<M: RemoteMessage> RemoteRecipient<M> {
    pub(crate) fn new(shared: Arc<Shared>, target: ActorRef) -> Self {
        RemoteRecipient {
            shared,
            target,
            link: OnceLock::new(),
            _message: PhantomData,
        }
    }

    /// The actor this handle sends to.
    pub fn target(&self) -> &ActorRef {
        &self.target
    }

    fn default_timeout(&self) -> Duration {
        Duration::from_millis(self.shared.cfg.request_timeout_ms)
    }

    fn link(&self) -> Result<&Arc<Link>, NetError> {
        if let Some(l) = self.link.get() {
            return Ok(l);
        }
        if self.shared.shutdown.is_cancelled() {
            return Err(NetError::Shutdown);
        }
        let found = self
            .shared
            .link(&self.target.node.id)
            .ok_or_else(|| NetError::UnknownNode(self.target.node.id.clone()))?;
        Ok(self.link.get_or_init(|| found))
    }

    /// `PeerDown` when membership holds the target suspect or dead. Membership's own
    /// messages always go: they are how a suspect peer is heard from again.
    fn refuse_if_down(&self, link: &Link) -> Result<(), NetError> {
        if M::SERVICE != ServiceId::Membership && link.is_down() {
            bump(&self.shared.metrics.peer_down_failed);
            return Err(NetError::PeerDown(self.target.node.id.clone()));
        }
        Ok(())
    }

    fn frame(&self, msg: &M, kind: Kind) -> Result<bytes::Bytes, NetError> {
        let max = self.shared.cfg.max_frame_bytes;
        encode_frame(&self.shared.me, &self.target, M::TAG, kind, msg, max)
    }

    /// Request/response: waits for queue space and for the reply, together bounded by `t`
    /// (the link's sweeper fails the request with `Timeout` at its deadline).
    /// If the caller drops this future early, the pending entry is removed (no leak).
    pub async fn send_timeout(&self, msg: M, t: Duration) -> Result<M::Result, NetError> {
        let link = self.link()?;
        let (corr, mut rx) = link.pending.insert(Instant::now().checked_add(t));
        let mut guard = PendingGuard {
            pending: &link.pending,
            corr,
            armed: true,
        };
        // Checked after the insert: a link marked down from now on fails this request.
        self.refuse_if_down(link)?;
        let frame = self.frame(&msg, Kind::Request { corr })?;
        let answer = match link.tx.try_send(frame) {
            Ok(()) => rx.await,
            Err(TrySendError::Closed(_)) => return Err(NetError::Shutdown),
            // Wait for queue space, unless the deadline (or a connection failure) comes first.
            Err(TrySendError::Full(frame)) => tokio::select! {
                biased;
                answer = &mut rx => answer,
                sent = link.tx.send(frame) => match sent {
                    Ok(()) => rx.await,
                    Err(_) => return Err(NetError::Shutdown),
                },
            },
        };
        let (ok, payload) = match answer {
            Ok(Ok(r)) => {
                guard.armed = false; // answered: the entry is already gone
                r
            }
            Ok(Err(NetError::Timeout)) => {
                guard.armed = false; // the sweeper removed it
                bump(&self.shared.metrics.timeouts);
                return Err(NetError::Timeout);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(NetError::ConnectionLost),
        };
        if ok {
            decode_payload::<M::Result>(&payload)
        } else {
            Err(decode_payload::<NetError>(&payload)?)
        }
    }

    /// One-way: `Err(QueueFull)` if the peer queue is full.
    pub fn tell(&self, msg: M) -> Result<(), NetError> {
        // Not refused when the peer is down: a one-way message (a result pushed to a
        // gateway, a trigger) has no reply to wait for, and a peer that was only suspect
        // (slow, not frozen) must still get it; a dead peer's queue is dropped anyway.
        let link = self.link()?;
        let frame = self.frame(&msg, Kind::OneWay)?;
        link.tx.try_send(frame).map_err(|e| match e {
            TrySendError::Full(_) => {
                bump(&self.shared.metrics.queue_full);
                NetError::QueueFull
            }
            TrySendError::Closed(_) => NetError::Shutdown,
        })
    }
}

/// Removes a request's pending entry when the request ends without its response (error,
/// timeout, or the caller dropping the future).
struct PendingGuard<'a> {
    pending: &'a crate::net::pending::Pending,
    corr: u64,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pending.cancel(self.corr);
        }
    }
}
