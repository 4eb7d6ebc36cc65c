//! The transport's error type, shared by local and remote handles and carried on the wire
//! (a request that fails on the remote node comes back as one of these).

use crate::ids::{Generation, NodeId};
use crate::net::service::ServiceId;
use serde::{Deserialize, Serialize};

/// Why a message could not be delivered or answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum NetError {
    /// No response within the request timeout (the request may still have run).
    #[error("request timed out")]
    Timeout,
    /// The connection carrying the request broke (the request may or may not have run).
    #[error("connection lost")]
    ConnectionLost,
    /// The peer refused us (or we refused it): wrong secret, wrong protocol version, ...
    #[error("refused: {0}")]
    Refused(String),
    /// No address is known for this node (membership has not told the transport yet).
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// The message was addressed to another incarnation of the target node.
    #[error("stale generation: {node} is at {current}, message addressed to {addressed}")]
    StaleGeneration {
        node: NodeId,
        addressed: Generation,
        current: Generation,
    },
    /// Nothing is registered for this (service, message tag, instance) on the target node.
    #[error("no actor for {service} instance {instance} (message tag {tag})")]
    NoSuchActor {
        service: ServiceId,
        tag: u16,
        instance: u32,
    },
    /// The peer queue (or local mailbox) is full: back off and retry.
    #[error("queue full")]
    QueueFull,
    /// A payload could not be encoded or decoded.
    #[error("codec error: {0}")]
    Codec(String),
    /// The encoded message exceeds `transport.max_frame_bytes`.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { size: usize, max: usize },
    /// The target actor's mailbox is closed or failed.
    #[error("mailbox error: {0}")]
    Mailbox(String),
    /// A local I/O failure (e.g. the listener cannot bind).
    #[error("i/o error: {0}")]
    Io(String),
    /// The transport is shutting down.
    #[error("transport shut down")]
    Shutdown,
    /// A message type was registered for a `(service, tag)` pair another type holds.
    #[error("{service} message tag {tag} already names `{held}`; `{offered}` cannot take it")]
    TagTaken {
        service: ServiceId,
        tag: u16,
        held: String,
        offered: String,
    },
    /// Membership holds the target node suspect or dead: the request is failed at once
    /// rather than left to wait for a reply that may never come (it may or may not have
    /// run when it was already on its way).
    #[error("node {0} is suspect or dead")]
    PeerDown(NodeId),
}

impl NetError {
    /// True when retrying the same message later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            NetError::Timeout
                | NetError::ConnectionLost
                | NetError::QueueFull
                | NetError::UnknownNode(_)
                | NetError::PeerDown(_)
        )
    }

    pub(crate) fn codec(e: impl std::fmt::Display) -> NetError {
        NetError::Codec(e.to_string())
    }
}

impl From<actix::MailboxError> for NetError {
    fn from(e: actix::MailboxError) -> Self {
        match e {
            actix::MailboxError::Timeout => NetError::Timeout,
            actix::MailboxError::Closed => NetError::Mailbox("mailbox closed".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classification() {
        assert!(NetError::Timeout.is_transient());
        assert!(NetError::QueueFull.is_transient());
        assert!(NetError::PeerDown(NodeId::new("n")).is_transient());
        assert!(!NetError::Refused("x".into()).is_transient());
        assert!(!NetError::Codec("x".into()).is_transient());
    }
}
