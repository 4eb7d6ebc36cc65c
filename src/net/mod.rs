//! Node-to-node transport, membership and the consistent hash ring.
//!
//! Actors on different nodes exchange the same typed messages they exchange locally: actor
//! code holds a [`Handle`] and sends; whether the target is in this process or on another
//! node is the [`Transport`]'s business. The wire protocol is described in [`wire`] and
//! [`handshake`].
//!
//! - [`service`]: `ServiceId`, the `RemoteMessage` trait, `ActorRef` addresses.
//! - [`error`]: `NetError`, shared by local and remote sends and carried on the wire.
//! - [`wire`]: the `Envelope`, bincode payloads, length-delimited frames, decode limits.
//! - [`frame`]: the hot path: envelopes encoded straight from messages, borrowed decoding.
//! - `varint`: the bincode primitives of the envelope header, written and read by hand.
//! - [`cluster`]: the cluster id every handshake checks (join, yield, refuse).
//! - [`handshake`]: protocol version, identities, HMAC-SHA256 challenge-response secret proof.
//! - [`metrics`]: transport counters and their snapshot.
//! - `registry`: local recipients and the type-erased decoders `register` installs.
//! - `conn`: drives one authenticated connection (routing, batched writes, back-pressure).
//! - `link`: outbound links per peer: bounded queue, pending requests, reconnect backoff.
//! - `pending`: requests awaiting their response, and one deadline sweeper per link.
//! - [`transport`]: `Transport`: listener, links, registry, `handle`, shutdown.
//! - [`handle`]: `Handle` (local or remote) and `RemoteRecipient`.
//! - [`ring`]: a deterministic consistent hash ring with virtual nodes.
//! - [`seed`]: `host:port` seeds, resolved again on every join attempt.
//! - [`membership`]: the cluster view, heartbeats, failure detection, join and leave.
//! - [`echo`]: the Echo service every node runs (tests, benchmark, pairwise ping).

pub mod cluster;
pub mod echo;
pub mod error;
pub mod frame;
pub mod handle;
pub mod handshake;
pub mod membership;
pub mod metrics;
pub mod ring;
pub mod seed;
pub mod service;
pub mod transport;
pub mod wire;

pub(crate) mod conn;
mod link;
mod pending;
mod registry;
mod varint;

pub use error::NetError;
pub use handle::{Handle, RemoteRecipient};
pub use membership::{Member, MemberState, View};
pub use metrics::NetMetricsSnapshot;
pub use ring::HashRing;
pub use service::{ActorRef, RemoteMessage, ServiceId};
pub use transport::Transport;
