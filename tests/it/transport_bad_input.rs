//! Garbage from a peer never takes a node down: bytes before the handshake, undecodable
//! frames, unknown services, another generation, an oversized frame. Each is refused,
//! answered or dropped, counted, and the node keeps serving.

use crate::transport_support::*;
use bytes::Bytes;
use cloudburst::ids::{Generation, NodeId, NodeRef};
use cloudburst::net::cluster::{ClusterGate, ClusterState};
use cloudburst::net::echo::{Echo, Stats};
use cloudburst::net::handshake::{self, Identity, Secret, HANDSHAKE_MAX_FRAME};
use cloudburst::net::wire::{
    codec, decode_envelope, decode_payload, encode_envelope, Envelope, Kind,
};
use cloudburst::net::{ActorRef, NetError, ServiceId};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite};

fn request(to: ActorRef, tag: u16, corr: u64) -> Bytes {
    let env = Envelope {
        from: NodeRef {
            id: NodeId::new("raw-peer"),
            generation: Generation(1),
        },
        to,
        tag,
        kind: Kind::Request { corr },
        payload: vec![0, 1, 2],
    };
    encode_envelope(&env, 1 << 20).expect("encodes")
}

#[test]
fn bad_frames_are_dropped_and_counted_and_the_node_keeps_serving() {
    let w = Workdir::new();
    let a = NodeProc::spawn(&w, "a", SECRET, &["--listen", "127.0.0.1:0"]);
    run(async {
        // 1. Garbage instead of a handshake: the node closes the connection.
        let mut raw = TcpStream::connect(a.addr).await.expect("connect");
        raw.write_all(&[0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9])
            .await
            .expect("write");
        let mut sink = Vec::new();
        let _ = raw.read_to_end(&mut sink).await;

        // 2. After an honest handshake: frames that do not decode or route.
        let stream = TcpStream::connect(a.addr).await.expect("connect");
        let (r, wr) = stream.into_split();
        let mut reader = FramedRead::new(r, codec(HANDSHAKE_MAX_FRAME));
        let mut writer = FramedWrite::new(wr, codec(1 << 20));
        let me = Identity {
            node: NodeRef {
                id: NodeId::new("raw-peer"),
                generation: Generation(1),
            },
            listen: "127.0.0.1:9".parse().expect("addr"),
        };
        let joining = ClusterGate::new(ClusterState::Joining);
        handshake::dial(
            &mut reader,
            &mut writer,
            &me,
            &Secret::new(SECRET),
            &joining,
        )
        .await
        .expect("handshake");
        reader.decoder_mut().set_max_frame_length(1 << 20);

        writer
            .send(Bytes::from_static(&[0xff; 40]))
            .await
            .expect("send");
        let unknown = ActorRef::new(a.node.clone(), ServiceId::Cache, 77);
        writer.send(request(unknown, 0, 1)).await.expect("send");
        let stale = NodeRef {
            generation: Generation(a.node.generation.0 - 1),
            ..a.node.clone()
        };
        writer
            .send(request(ActorRef::new(stale, ServiceId::Echo, 0), 0, 2))
            .await
            .expect("send");
        let echo = ActorRef::new(a.node.clone(), ServiceId::Echo, 0);
        writer.send(request(echo, 0, 3)).await.expect("send"); // payload is not an Echo

        let mut errors = Vec::new();
        for _ in 0..3 {
            let frame = reader.next().await.expect("a response").expect("readable");
            let env = decode_envelope(&frame).expect("envelope");
            let Kind::Response { corr, ok: false } = env.kind else {
                panic!("expected an error response, got {:?}", env.kind)
            };
            errors.push((
                corr,
                decode_payload::<NetError>(&env.payload).expect("error"),
            ));
        }
        errors.sort_by_key(|(c, _)| *c);
        assert!(
            matches!(errors[0].1, NetError::NoSuchActor { instance: 77, .. }),
            "{errors:?}"
        );
        assert!(
            matches!(errors[1].1, NetError::StaleGeneration { .. }),
            "{errors:?}"
        );
        assert!(matches!(errors[2].1, NetError::Codec(_)), "{errors:?}");

        // 3. An oversized frame: the node closes this connection.
        let mut raw = writer.into_inner();
        raw.write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 0])
            .await
            .expect("write");
        assert!(
            reader.next().await.is_none_or(|r| r.is_err()),
            "connection closed"
        );

        // The node still serves, and counted everything.
        let t = &client(SECRET, "test-client").await;
        know(t, &[&a]);
        let reply = ask(
            t,
            &a.node,
            Echo {
                payload: b"still here".to_vec(),
            },
        )
        .await;
        assert_eq!(reply.expect("echo").payload, b"still here");
        let s = ask(t, &a.node, Stats).await.expect("stats");
        assert!(s.bad_frames >= 2, "{s:?}");
        assert!(s.bad_connections >= 1, "{s:?}");
        assert!(s.no_such_actor >= 1 && s.stale_generation >= 1, "{s:?}");
        t.shutdown().await;
    });
    let log = a.log_text();
    assert!(log.contains("dropped undecodable frame"), "{log}");
}
