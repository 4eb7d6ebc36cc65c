//! The connection handshake: protocol version, identities, and mutual proof of the cluster
//! secret by challenge-response HMAC-SHA256 (the secret never crosses the wire).
//!
//! ```text
//! dialer   -> Hello     { version, node, listen, cluster, nonce_d }
//! acceptor -> Challenge { version, nonce_a }                    (or Refused: version)
//! dialer   -> Proof     { HMAC(secret, "dial"   | nonce_d | nonce_a | node, listen, cluster) }
//! acceptor -> Welcome   { node, listen, cluster,
//!                         HMAC(secret, "accept" | nonce_d | nonce_a | node, listen, cluster) }
//!             (or Refused: wrong secret, another cluster)
//! ```
//! `cluster` is the sender's [`Claim`]: its cluster id (none while it joins) and whether its
//! cluster is fresh. Each side admits the other's claim only after the secret is proven
//! ([`ClusterGate::admit`]): a node of another established cluster is refused, a fresh
//! cluster yields to an established one.
//! MACs are checked in constant time (`Mac::verify_slice`). Until the handshake is done
//! frames are limited to [`HANDSHAKE_MAX_FRAME`], so an unauthenticated peer cannot make us
//! allocate much.

use crate::ids::NodeRef;
use crate::net::cluster::{Claim, ClusterGate};
use crate::net::wire::{decode_payload, decode_prefix, encode_payload, PROTOCOL_VERSION};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Largest handshake frame: a few hundred bytes are needed; unauthenticated input is small.
pub const HANDSHAKE_MAX_FRAME: usize = 4096;

type HmacSha256 = Hmac<Sha256>;
type Nonce = [u8; 32];
type Tag = [u8; 32];

/// Who we are, as told to peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node: NodeRef,
    /// Where this node listens for peers.
    pub listen: SocketAddr,
}

#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Hello {
        version: u32,
        who: Identity,
        cluster: Claim,
        nonce: Nonce,
    },
    Challenge {
        version: u32,
        nonce: Nonce,
    },
    Proof {
        mac: Tag,
    },
    Welcome {
        who: Identity,
        cluster: Claim,
        mac: Tag,
    },
    Refused {
        reason: String,
    },
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// We refused the peer: the reason was logged and sent to it.
    #[error("refused peer: {0}")]
    RefusedByUs(String),
    /// The peer refused us, giving this reason.
    #[error("refused by peer: {0}")]
    RefusedByPeer(String),
    /// The peer spoke out of turn or sent garbage.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer speaks another protocol version (a message of a layout we cannot decode).
    #[error("{0}")]
    Version(String),
    /// The connection failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The cluster secret, as an HMAC key.
#[derive(Clone)]
pub struct Secret(Bytes);

impl Secret {
    pub fn new(secret: &str) -> Self {
        Secret(Bytes::copy_from_slice(secret.as_bytes()))
    }

    fn mac(&self, label: &[u8], nonce_d: &Nonce, nonce_a: &Nonce, bound: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for part in [label, &nonce_d[..], &nonce_a[..], bound] {
            m.update(&(part.len() as u64).to_be_bytes());
            m.update(part);
        }
        m
    }

    fn tag(&self, label: &[u8], nd: &Nonce, na: &Nonce, bound: &[u8]) -> Tag {
        self.mac(label, nd, na, bound)
            .finalize()
            .into_bytes()
            .into()
    }

    fn verify(&self, label: &[u8], nd: &Nonce, na: &Nonce, bound: &[u8], tag: &Tag) -> bool {
        self.mac(label, nd, na, bound).verify_slice(tag).is_ok()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

const DIAL: &[u8] = b"cloudburst-dial";
const ACCEPT: &[u8] = b"cloudburst-accept";

fn nonce() -> Nonce {
    let mut n = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

fn bound(who: &Identity, cluster: &Claim) -> Vec<u8> {
    encode_payload(&(who, cluster)).unwrap_or_default()
}

async fn send<W: AsyncWrite + Unpin>(
    w: &mut FramedWrite<W, LengthDelimitedCodec>,
    m: &Msg,
) -> Result<(), HandshakeError> {
    let bytes = encode_payload(m).map_err(|e| HandshakeError::Protocol(e.to_string()))?;
    w.send(Bytes::from(bytes)).await?;
    Ok(())
}

async fn recv<R: AsyncRead + Unpin>(
    r: &mut FramedRead<R, LengthDelimitedCodec>,
) -> Result<Msg, HandshakeError> {
    match r.next().await {
        None => Err(HandshakeError::Protocol("connection closed".into())),
        Some(Err(e)) => Err(HandshakeError::Io(e)),
        Some(Ok(frame)) => {
            crate::fuzz::record::frame(crate::fuzz::Target::PeerFrame, &frame);
            decode_msg(&frame)
        }
    }
}

/// Receive the peer's first message (its `Hello` or `Challenge`). One from a node of
/// another protocol version that we cannot decode is refused with the version problem, so
/// both sides log that rather than a decode error.
async fn recv_first<R, W>(
    r: &mut FramedRead<R, LengthDelimitedCodec>,
    w: &mut FramedWrite<W, LengthDelimitedCodec>,
) -> Result<Msg, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match recv(r).await {
        Err(HandshakeError::Version(reason)) => Err(refuse(w, reason).await),
        other => other,
    }
}

/// Decode one handshake message (what a peer sends before it is authenticated). Public
/// for the fuzz target; the message itself is private to the handshake.
pub fn decode_message(frame: &[u8]) -> Result<impl std::fmt::Debug, HandshakeError> {
    decode_msg(frame)
}

fn decode_msg(frame: &[u8]) -> Result<Msg, HandshakeError> {
    decode_payload(frame).map_err(|e| match peer_version(frame) {
        Some(problem) => HandshakeError::Version(problem),
        None => HandshakeError::Protocol(e.to_string()),
    })
}

/// The leading fields of the messages that carry a version, in every protocol version so
/// far: the variant index, then the version. What follows may have another layout.
#[derive(Deserialize)]
enum VersionProbe {
    Hello { version: u32 },
    Challenge { version: u32 },
}

/// For a `Hello` or `Challenge` that does not decode: the version problem, if it comes
/// from a node of another protocol version (whose message layout differs from ours).
fn peer_version(frame: &[u8]) -> Option<String> {
    match decode_prefix::<VersionProbe>(frame).ok()? {
        VersionProbe::Hello { version } | VersionProbe::Challenge { version } => {
            version_problem(version)
        }
    }
}

async fn refuse<W: AsyncWrite + Unpin>(
    w: &mut FramedWrite<W, LengthDelimitedCodec>,
    reason: String,
) -> HandshakeError {
    // Best effort: the peer may already be gone.
    let _ = send(
        w,
        &Msg::Refused {
            reason: reason.clone(),
        },
    )
    .await;
    HandshakeError::RefusedByUs(reason)
}

fn version_problem(version: u32) -> Option<String> {
    (version != PROTOCOL_VERSION).then(|| {
        format!("protocol version {version} is not supported (this node speaks {PROTOCOL_VERSION})")
    })
}

/// Run the dialer's side; on success returns the acceptor's identity.
pub async fn dial<R, W>(
    r: &mut FramedRead<R, LengthDelimitedCodec>,
    w: &mut FramedWrite<W, LengthDelimitedCodec>,
    me: &Identity,
    secret: &Secret,
    gate: &ClusterGate,
) -> Result<Identity, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let nonce_d = nonce();
    let claim = gate.claim();
    send(
        w,
        &Msg::Hello {
            version: PROTOCOL_VERSION,
            who: me.clone(),
            cluster: claim.clone(),
            nonce: nonce_d,
        },
    )
    .await?;
    let nonce_a = match recv_first(r, w).await? {
        Msg::Challenge { version, nonce } => match version_problem(version) {
            Some(reason) => return Err(refuse(w, reason).await),
            None => nonce,
        },
        Msg::Refused { reason } => return Err(HandshakeError::RefusedByPeer(reason)),
        other => return Err(unexpected(&other)),
    };
    let mac = secret.tag(DIAL, &nonce_d, &nonce_a, &bound(me, &claim));
    send(w, &Msg::Proof { mac }).await?;
    match recv(r).await? {
        Msg::Welcome { who, cluster, mac } => {
            if !secret.verify(ACCEPT, &nonce_d, &nonce_a, &bound(&who, &cluster), &mac) {
                return Err(HandshakeError::RefusedByUs(
                    "peer failed the cluster-secret proof".into(),
                ));
            }
            gate.admit(&cluster).map_err(HandshakeError::RefusedByUs)?;
            Ok(who)
        }
        Msg::Refused { reason } => Err(HandshakeError::RefusedByPeer(reason)),
        other => Err(unexpected(&other)),
    }
}

/// Run the acceptor's side; on success returns the dialer's identity.
pub async fn accept<R, W>(
    r: &mut FramedRead<R, LengthDelimitedCodec>,
    w: &mut FramedWrite<W, LengthDelimitedCodec>,
    me: &Identity,
    secret: &Secret,
    gate: &ClusterGate,
) -> Result<Identity, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (who, theirs, nonce_d) = match recv_first(r, w).await? {
        Msg::Hello {
            version,
            who,
            cluster,
            nonce,
        } => match version_problem(version) {
            Some(reason) => return Err(refuse(w, reason).await),
            None => (who, cluster, nonce),
        },
        other => return Err(unexpected(&other)),
    };
    let nonce_a = nonce();
    send(
        w,
        &Msg::Challenge {
            version: PROTOCOL_VERSION,
            nonce: nonce_a,
        },
    )
    .await?;
    let proof = match recv(r).await? {
        Msg::Proof { mac } => mac,
        Msg::Refused { reason } => return Err(HandshakeError::RefusedByPeer(reason)),
        other => return Err(unexpected(&other)),
    };
    if !secret.verify(DIAL, &nonce_d, &nonce_a, &bound(&who, &theirs), &proof) {
        return Err(refuse(w, "wrong cluster secret".into()).await);
    }
    if let Err(why) = gate.admit(&theirs) {
        return Err(refuse(w, why).await);
    }
    let claim = gate.claim();
    let mac = secret.tag(ACCEPT, &nonce_d, &nonce_a, &bound(me, &claim));
    send(
        w,
        &Msg::Welcome {
            who: me.clone(),
            cluster: claim,
            mac,
        },
    )
    .await?;
    Ok(who)
}

fn unexpected(m: &Msg) -> HandshakeError {
    let name = match m {
        Msg::Hello { .. } => "hello",
        Msg::Challenge { .. } => "challenge",
        Msg::Proof { .. } => "proof",
        Msg::Welcome { .. } => "welcome",
        Msg::Refused { .. } => "refused",
    };
    HandshakeError::Protocol(format!("unexpected handshake message `{name}`"))
}

#[cfg(test)]
#[path = "handshake_version_tests.rs"]
mod version_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Generation, NodeId};
    use crate::net::cluster::{ClusterId, ClusterState};
    use crate::net::wire::codec;

    fn ident(name: &str) -> Identity {
        Identity {
            node: NodeRef {
                id: NodeId::new(name),
                generation: Generation(1),
            },
            listen: "127.0.0.1:1".parse().expect("addr"),
        }
    }

    async fn run(
        dial_secret: &str,
        accept_secret: &str,
    ) -> (
        Result<Identity, HandshakeError>,
        Result<Identity, HandshakeError>,
    ) {
        let joining = || ClusterGate::new(ClusterState::Joining);
        run_in(dial_secret, accept_secret, &joining(), &joining()).await
    }

    async fn run_in(
        dial_secret: &str,
        accept_secret: &str,
        dial_gate: &ClusterGate,
        accept_gate: &ClusterGate,
    ) -> (
        Result<Identity, HandshakeError>,
        Result<Identity, HandshakeError>,
    ) {
        let (a, b) = tokio::io::duplex(HANDSHAKE_MAX_FRAME);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let (mut ar, mut aw) = (
            FramedRead::new(ar, codec(HANDSHAKE_MAX_FRAME)),
            FramedWrite::new(aw, codec(HANDSHAKE_MAX_FRAME)),
        );
        let (mut br, mut bw) = (
            FramedRead::new(br, codec(HANDSHAKE_MAX_FRAME)),
            FramedWrite::new(bw, codec(HANDSHAKE_MAX_FRAME)),
        );
        let (d, a) = (ident("dialer"), ident("acceptor"));
        let (ds, as_) = (Secret::new(dial_secret), Secret::new(accept_secret));
        tokio::join!(
            dial(&mut ar, &mut aw, &d, &ds, dial_gate),
            accept(&mut br, &mut bw, &a, &as_, accept_gate)
        )
    }

    #[tokio::test]
    async fn same_secret_is_welcome() {
        let (d, a) = run("s3cret", "s3cret").await;
        assert_eq!(d.expect("dialer ok").node.id.as_str(), "acceptor");
        assert_eq!(a.expect("acceptor ok").node.id.as_str(), "dialer");
    }

    #[tokio::test]
    async fn wrong_secret_is_refused_by_acceptor() {
        let (d, a) = run("wrong", "s3cret").await;
        assert!(matches!(a, Err(HandshakeError::RefusedByUs(r)) if r.contains("secret")));
        assert!(matches!(d, Err(HandshakeError::RefusedByPeer(_))));
    }

    #[tokio::test]
    async fn another_established_cluster_is_refused() {
        let a = ClusterGate::new(ClusterState::Member(ClusterId::new("a")));
        let b = ClusterGate::new(ClusterState::Member(ClusterId::new("b")));
        let (d, acc) = run_in("s3cret", "s3cret", &a, &b).await;
        assert!(
            matches!(acc, Err(HandshakeError::RefusedByUs(r)) if r.contains("another cluster"))
        );
        assert!(
            matches!(d, Err(HandshakeError::RefusedByPeer(r)) if r.contains("another cluster"))
        );
    }

    #[tokio::test]
    async fn a_fresh_cluster_takes_the_id_of_the_member_that_reaches_it() {
        let member = ClusterGate::new(ClusterState::Member(ClusterId::new("old")));
        let fresh = ClusterGate::new(ClusterState::Fresh(ClusterId::new("new")));
        let (d, acc) = run_in("s3cret", "s3cret", &member, &fresh).await;
        assert!(d.is_ok() && acc.is_ok());
        assert_eq!(fresh.state(), ClusterState::Member(ClusterId::new("old")));
        assert_eq!(member.state(), ClusterState::Member(ClusterId::new("old")));
    }
}
