//! The wire format: every frame (after the handshake) is one bincode-encoded [`Envelope`]
//! inside a length-delimited frame (4-byte big-endian length, tokio-util
//! `LengthDelimitedCodec`). The payload is the bincode of the typed message, of its reply,
//! or of a [`NetError`], so the envelope can be routed without knowing the message type.

use crate::ids::NodeRef;
use crate::net::error::NetError;
use crate::net::service::ActorRef;
use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Encoder, LengthDelimitedCodec};

/// Bumped on any incompatible change of the envelope, the handshake or a message that
/// crosses nodes, so nodes that could not decode each other are refused at the handshake.
/// 2: `CallFailure.code` is an `ErrorCode`, no longer a string.
/// 3: tombstones in `LatticeValue`; `KvsRequest::CheckTombstones`; `Member.draining`;
///    `KvsRequest::PutUser` and `KvsError::Reserved` (writes on behalf of user code).
/// 4: calls carry their attempt and placing scheduler; `AttemptEnded`, `Cancel`,
///    `CancelCall`; call options and deadlines.
/// 5: `AttemptsDelivered` (an executor tells the deliveries of calls in batches).
/// 6: the handshake's `Hello` and `Welcome` carry the sender's cluster claim;
///    `HandoffConfirmed` (a KVS shard's hand-off after a routing change is complete).
/// 7: `ReplicationOverrides` (the monitor's per-key replication of hot keys); hot keys in
///    `KvsReport` carry their replica count, KVS decisions their key.
/// 8: `ClaimCall` (a gateway claims a call sent again after a failover).
pub const PROTOCOL_VERSION: u32 = 8;

/// Bytes of the length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// What an envelope is: a request expecting a response, the response, or a one-way message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Answer with a `Response` carrying the same correlation id.
    Request { corr: u64 },
    /// `ok`: the payload is the reply; otherwise it is a [`NetError`].
    Response { corr: u64, ok: bool },
    /// No answer expected.
    OneWay,
}

/// One message on the wire.
///
/// For a response, `to.node` is the requester and `to.service`/`to.instance` name the
/// actor that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeRef,
    pub to: ActorRef,
    /// The message type within the service ([`crate::net::RemoteMessage::TAG`]).
    pub tag: u16,
    pub kind: Kind,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// bincode of any serde value, as the payload of an envelope.
pub fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, NetError> {
    bincode::serde::encode_to_vec(value, config()).map_err(NetError::codec)
}

/// Decode a payload; trailing bytes are an error (a frame is exactly one value).
///
/// A peer controls every length prefix inside the payload, and bincode allocates a
/// declared length before reading it. The decode limit (bytes bincode may claim for the
/// values it builds) is therefore tied to the input size: at most [`DECODE_AMPLIFICATION`]
/// times the input, rounded up to a bucket, so a 20-byte frame cannot make us allocate GiBs.
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, NetError> {
    const KIB: usize = 1024;
    let n = bytes.len().saturating_mul(DECODE_AMPLIFICATION);
    let decoded = if n <= 64 * KIB {
        decode_limited::<T, { 64 * KIB }>(bytes)
    } else if n <= 4 * KIB * KIB {
        decode_limited::<T, { 4 * KIB * KIB }>(bytes)
    } else if n <= 256 * KIB * KIB {
        decode_limited::<T, { 256 * KIB * KIB }>(bytes)
    } else {
        decode_limited::<T, { u32::MAX as usize }>(bytes)
    };
    let (value, used) = decoded?;
    if used != bytes.len() {
        return Err(NetError::Codec(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// How much memory decoding may claim per input byte (a `Vec<u64>` of small varints
/// legitimately claims 8 bytes per wire byte; headroom on top).
pub const DECODE_AMPLIFICATION: usize = 16;

/// Decode a `T` from the start of `bytes`, ignoring what follows it (for reading the
/// leading fields of a message whose layout may differ, such as a peer's protocol version).
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, NetError> {
    const LIMIT: usize = 64 * 1024;
    decode_limited::<T, LIMIT>(bytes).map(|(value, _)| value)
}

fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), NetError> {
    let cfg = config().with_limit::<LIMIT>();
    bincode::serde::decode_from_slice::<T, _>(bytes, cfg).map_err(NetError::codec)
}

/// Encode an envelope as a frame body (without the length prefix), checking the size limit.
pub fn encode_envelope(env: &Envelope, max_frame: usize) -> Result<Bytes, NetError> {
    let body = encode_payload(env)?;
    if body.len() > max_frame {
        return Err(NetError::FrameTooLarge {
            size: body.len(),
            max: max_frame,
        });
    }
    Ok(Bytes::from(body))
}

/// Decode one frame body into an envelope. Never panics, whatever the bytes.
pub fn decode_envelope(frame: &[u8]) -> Result<Envelope, NetError> {
    decode_payload(frame)
}

/// Append `body` with its length prefix to `out` (what the writer sends in one batch).
pub fn push_frame(
    codec: &mut LengthDelimitedCodec,
    body: Bytes,
    out: &mut BytesMut,
) -> Result<(), NetError> {
    codec.encode(body, out).map_err(NetError::codec)
}

/// A codec for peer frames with the given limit (oversized frames are a read error).
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
        .length_field_length(LENGTH_PREFIX_BYTES)
        .new_codec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Generation, NodeId};
    use crate::net::service::ServiceId;
    use proptest::prelude::*;
    use tokio_util::codec::Decoder;

    fn sample() -> Envelope {
        let node = NodeRef {
            id: NodeId::new("127.0.0.1:6100"),
            generation: Generation(42),
        };
        Envelope {
            from: node.clone(),
            to: ActorRef::new(node, ServiceId::Echo, 3),
            tag: 1,
            kind: Kind::Request { corr: 9 },
            payload: vec![1, 2, 3, 255],
        }
    }

    #[test]
    fn envelope_round_trips() {
        let env = sample();
        let bytes = encode_envelope(&env, 1024).expect("encodes");
        assert_eq!(decode_envelope(&bytes).expect("decodes"), env);
    }

    #[test]
    fn oversized_envelope_is_refused_on_send() {
        let mut env = sample();
        env.payload = vec![0; 2048];
        assert!(matches!(
            encode_envelope(&env, 1024),
            Err(NetError::FrameTooLarge { max: 1024, .. })
        ));
    }

    #[test]
    fn error_payload_round_trips() {
        let e = NetError::NoSuchActor {
            service: ServiceId::Cache,
            tag: 2,
            instance: 7,
        };
        let bytes = encode_payload(&e).expect("encodes");
        assert_eq!(decode_payload::<NetError>(&bytes).expect("decodes"), e);
    }

    #[test]
    fn huge_declared_length_is_an_error_not_an_allocation() {
        // A Vec<u8> claiming 2^62 bytes, then nothing.
        let bytes = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0x40];
        assert!(decode_payload::<Vec<u8>>(&bytes).is_err());
        let bytes = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0x40];
        assert!(decode_payload::<Vec<String>>(&bytes).is_err());
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode_envelope(&sample(), 1024).expect("encodes").to_vec();
        bytes.push(0);
        assert!(decode_envelope(&bytes).is_err());
    }

    #[test]
    fn codec_frames_round_trip_and_limit_holds() {
        let mut c = codec(64);
        let mut out = BytesMut::new();
        push_frame(&mut c, Bytes::from_static(b"hello"), &mut out).expect("fits");
        push_frame(&mut c, Bytes::from_static(b"world!"), &mut out).expect("fits");
        assert_eq!(
            &c.decode(&mut out).expect("ok").expect("frame")[..],
            b"hello"
        );
        assert_eq!(
            &c.decode(&mut out).expect("ok").expect("frame")[..],
            b"world!"
        );
        let mut big = BytesMut::from(&[0u8, 0, 1, 0][..]);
        assert!(c.decode(&mut big).is_err(), "a 256-byte frame exceeds 64");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_envelope(&bytes);
            let mut c = codec(256);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(frame)) = c.decode(&mut buf) {
                let _ = decode_envelope(&frame);
            }
        }

        #[test]
        fn truncated_envelopes_never_panic(cut in 0usize..64, flip in any::<u8>()) {
            let bytes = encode_envelope(&sample(), 1024).expect("encodes");
            let cut = cut.min(bytes.len());
            prop_assert!(cut == bytes.len() || decode_envelope(&bytes[..cut]).is_err());
            let mut mangled = bytes.to_vec();
            // A huge declared payload length must be an error, not an allocation.
            if cut == 0 { mangled.splice(0..0, [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]); }
            if let Some(b) = mangled.get_mut(cut) { *b ^= flip; }
            let _ = decode_envelope(&mangled);
        }
    }
}
