//! A peer of another protocol version is refused for its version, also when its handshake
//! messages have another layout than ours.

use super::*;
use crate::ids::{Generation, NodeId};
use crate::net::cluster::ClusterState;
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

/// The handshake messages of protocol version 5 before the cluster claim was added:
/// what a node of that build sends and understands.
#[derive(Debug, Serialize, Deserialize)]
enum OldMsg {
    Hello {
        version: u32,
        who: Identity,
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
        mac: Tag,
    },
    Refused {
        reason: String,
    },
}

/// An acceptor of this build against a first message `hello`: what it returns, and
/// what the peer reads back, decoded as an old-layout message.
async fn accept_from(hello: Vec<u8>) -> (Result<Identity, HandshakeError>, OldMsg) {
    let (a, b) = tokio::io::duplex(HANDSHAKE_MAX_FRAME);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let mut old_r = FramedRead::new(ar, codec(HANDSHAKE_MAX_FRAME));
    let mut old_w = FramedWrite::new(aw, codec(HANDSHAKE_MAX_FRAME));
    let (mut br, mut bw) = (
        FramedRead::new(br, codec(HANDSHAKE_MAX_FRAME)),
        FramedWrite::new(bw, codec(HANDSHAKE_MAX_FRAME)),
    );
    old_w.send(Bytes::from(hello)).await.expect("send hello");
    let gate = ClusterGate::new(ClusterState::Joining);
    let ours = accept(&mut br, &mut bw, &ident("new"), &Secret::new("s"), &gate).await;
    // Closed, so an acceptor that sent nothing fails the read below rather than hangs it.
    drop((br, bw));
    let frame = old_r.next().await.expect("an answer").expect("a frame");
    let theirs: OldMsg = decode_payload(&frame).expect("an old node decodes the answer");
    (ours, theirs)
}

#[tokio::test]
async fn a_node_of_an_older_layout_is_refused_for_its_version_not_a_decode_error() {
    let hello = OldMsg::Hello {
        version: 5,
        who: ident("old"),
        nonce: [7; 32],
    };
    let frame = encode_payload(&hello).expect("encode");
    assert!(
        decode_payload::<Msg>(&frame).is_err(),
        "the layouts differ: a plain decode fails"
    );
    let (ours, theirs) = accept_from(frame).await;
    let want = format!("protocol version 5 is not supported (this node speaks {PROTOCOL_VERSION})");
    assert!(
        matches!(&ours, Err(HandshakeError::RefusedByUs(r)) if *r == want),
        "{ours:?}"
    );
    assert!(
        matches!(&theirs, OldMsg::Refused { reason } if *reason == want),
        "{theirs:?}"
    );
}

#[tokio::test]
async fn a_node_of_the_previous_version_with_the_same_layout_is_refused_too() {
    let hello = Msg::Hello {
        version: PROTOCOL_VERSION - 1,
        who: ident("old"),
        cluster: ClusterGate::new(ClusterState::Joining).claim(),
        nonce: [7; 32],
    };
    let (ours, theirs) = accept_from(encode_payload(&hello).expect("encode")).await;
    assert!(
        matches!(&ours, Err(HandshakeError::RefusedByUs(r)) if r.contains("not supported")),
        "{ours:?}"
    );
    assert!(matches!(theirs, OldMsg::Refused { .. }), "{theirs:?}");
}

#[test]
fn garbage_is_still_a_protocol_error() {
    assert!(matches!(
        decode_msg(&[0, PROTOCOL_VERSION as u8, 1, 2]),
        Err(HandshakeError::Protocol(_))
    ));
    assert!(matches!(decode_msg(&[]), Err(HandshakeError::Protocol(_))));
}
