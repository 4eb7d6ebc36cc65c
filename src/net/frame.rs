//! The hot path of the wire format: encode an envelope straight from a typed message, and
//! decode a borrowed view of an envelope, without intermediate allocations.
//!
//! Both are byte-for-byte the [`Envelope`](crate::net::wire::Envelope) encoding (tested
//! below): bincode writes a struct as its fields in order and `serde_bytes` as a varint
//! length and the bytes, so the header fields, the payload length and the payload bytes can
//! be written one after the other, and read back borrowing from the frame. The header
//! fields are written and read by hand ([`crate::net::varint`]), not through serde, which
//! cost several times more; only the payload goes through bincode.

use crate::ids::NodeRef;
use crate::net::error::NetError;
use crate::net::service::{ActorRef, ServiceId};
use crate::net::varint::{self, Reader};
use crate::net::wire::Kind;
use bytes::Bytes;
use serde::Serialize;
use std::cell::RefCell;

/// Room reserved for the header on top of the payload (ids are short addresses).
const HEADER_ESTIMATE: usize = 96;

/// A thread's scratch buffer for payloads is released when it grew beyond this (a large
/// value was sent), so a one-off 50 MB message does not pin 50 MB per thread.
const SCRATCH_KEEP: usize = 1024 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Append the envelope's fields before the payload (`from`, `to`, `tag`, `kind`).
fn put_header(out: &mut Vec<u8>, from: &NodeRef, to: &ActorRef, tag: u16, kind: Kind) {
    put_node(out, from);
    put_node(out, &to.node);
    varint::put_u64(out, u64::from(to.service.index()));
    varint::put_u64(out, u64::from(to.instance));
    varint::put_u64(out, u64::from(tag));
    match kind {
        Kind::Request { corr } => {
            out.push(KIND_REQUEST);
            varint::put_u64(out, corr);
        }
        Kind::Response { corr, ok } => {
            out.push(KIND_RESPONSE);
            varint::put_u64(out, corr);
            out.push(u8::from(ok));
        }
        Kind::OneWay => out.push(KIND_ONE_WAY),
    }
}

fn put_node(out: &mut Vec<u8>, node: &NodeRef) {
    varint::put_bytes(out, node.id.as_str().as_bytes());
    varint::put_u64(out, node.generation.0);
}

/// `Kind`'s variant indexes (one varint byte each).
const KIND_REQUEST: u8 = 0;
const KIND_RESPONSE: u8 = 1;
const KIND_ONE_WAY: u8 = 2;

/// Encode the envelope `{from, to, tag, kind, payload: bincode(msg)}` as one frame body.
pub fn encode_frame<T: Serialize>(
    from: &NodeRef,
    to: &ActorRef,
    tag: u16,
    kind: Kind,
    msg: &T,
    max_frame: usize,
) -> Result<Bytes, NetError> {
    SCRATCH.with(|scratch| {
        let mut payload = scratch.borrow_mut();
        payload.clear();
        let encoded = encode_frame_with(&mut payload, from, to, tag, kind, msg, max_frame);
        if payload.capacity() > SCRATCH_KEEP {
            *payload = Vec::new();
        }
        encoded
    })
}

fn encode_frame_with<T: Serialize>(
    payload: &mut Vec<u8>,
    from: &NodeRef,
    to: &ActorRef,
    tag: u16,
    kind: Kind,
    msg: &T,
    max_frame: usize,
) -> Result<Bytes, NetError> {
    bincode::serde::encode_into_std_write(msg, payload, config()).map_err(NetError::codec)?;
    let mut buf = Vec::with_capacity(payload.len() + HEADER_ESTIMATE);
    put_header(&mut buf, from, to, tag, kind);
    varint::put_bytes(&mut buf, payload);
    if buf.len() > max_frame {
        return Err(NetError::FrameTooLarge {
            size: buf.len(),
            max: max_frame,
        });
    }
    Ok(Bytes::from(buf))
}

/// A node reference borrowed from a frame.
#[derive(Debug)]
pub struct NodeRefView<'a> {
    pub id: &'a str,
    pub generation: u64,
}

/// An actor reference borrowed from a frame.
#[derive(Debug)]
pub struct ActorRefView<'a> {
    pub node: NodeRefView<'a>,
    pub service: ServiceId,
    pub instance: u32,
}

/// An envelope borrowed from a frame: nothing is copied.
#[derive(Debug)]
pub struct EnvelopeView<'a> {
    pub from: NodeRefView<'a>,
    pub to: ActorRefView<'a>,
    pub tag: u16,
    pub kind: Kind,
    pub payload: &'a [u8],
}

/// Decode a frame body as a borrowed envelope. Never panics and never allocates in
/// proportion to what the frame claims (strings and bytes are borrowed).
pub fn decode_view(frame: &[u8]) -> Result<EnvelopeView<'_>, NetError> {
    let mut r = Reader::new(frame);
    let from = node_view(&mut r)?;
    let node = node_view(&mut r)?;
    let service = r.u32()?;
    let service = ServiceId::from_index(service)
        .ok_or_else(|| NetError::Codec(format!("unknown service {service}")))?;
    let to = ActorRefView {
        node,
        service,
        instance: r.u32()?,
    };
    let tag = r.u16()?;
    let kind = match r.u32()? {
        0 => Kind::Request { corr: r.u64()? },
        1 => Kind::Response {
            corr: r.u64()?,
            ok: r.bool()?,
        },
        2 => Kind::OneWay,
        k => return Err(NetError::Codec(format!("unknown envelope kind {k}"))),
    };
    let payload = r.bytes()?;
    if r.remaining() != 0 {
        return Err(NetError::Codec(format!(
            "{} trailing bytes after the envelope",
            r.remaining()
        )));
    }
    Ok(EnvelopeView {
        from,
        to,
        tag,
        kind,
        payload,
    })
}

fn node_view<'a>(r: &mut Reader<'a>) -> Result<NodeRefView<'a>, NetError> {
    Ok(NodeRefView {
        id: r.str()?,
        generation: r.u64()?,
    })
}

/// Where and how to answer one request.
pub(crate) struct ReplyTo {
    pub me: NodeRef,
    pub to: ActorRef,
    pub tag: u16,
    pub corr: u64,
    pub max_frame: usize,
}

impl ReplyTo {
    /// The response frame for `result`. A reply that cannot be encoded or is too large is
    /// answered with that error instead.
    pub(crate) fn frame<T: Serialize>(&self, result: Result<T, NetError>) -> Option<Bytes> {
        let encoded = match &result {
            Ok(value) => self.encode(true, value),
            Err(e) => self.encode(false, e),
        };
        match encoded {
            Ok(frame) => Some(frame),
            Err(e) if result.is_ok() => self.encode(false, &e).ok(),
            Err(e) => {
                tracing::warn!(cause = %e, "cannot encode an error response");
                None
            }
        }
    }

    fn encode<T: Serialize>(&self, ok: bool, value: &T) -> Result<Bytes, NetError> {
        let kind = Kind::Response {
            corr: self.corr,
            ok,
        };
        encode_frame(&self.me, &self.to, self.tag, kind, value, self.max_frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Generation, NodeId};
    use crate::net::wire::{decode_envelope, encode_envelope, encode_payload, Envelope};
    use proptest::prelude::*;

    fn node(name: &str, g: u64) -> NodeRef {
        NodeRef {
            id: NodeId::new(name),
            generation: Generation(g),
        }
    }

    #[test]
    fn fast_encoding_is_the_envelope_encoding() {
        let from = node("127.0.0.1:6100", 7);
        let to = ActorRef::new(node("127.0.0.1:6101", 9), ServiceId::KvsShard, 3);
        for msg in [vec![], vec![1u8; 10], vec![2u8; 300], vec![3u8; 70_000]] {
            let kind = Kind::Request { corr: 1 << 40 };
            let fast = encode_frame(&from, &to, 4, kind, &msg, 1 << 20).expect("fast");
            let env = Envelope {
                from: from.clone(),
                to: to.clone(),
                tag: 4,
                kind,
                payload: encode_payload(&msg).expect("payload"),
            };
            assert_eq!(fast, encode_envelope(&env, 1 << 20).expect("slow"));
            let view = decode_view(&fast).expect("view");
            assert_eq!(view.from.id, "127.0.0.1:6100");
            assert_eq!(view.to.node.generation, 9);
            assert_eq!(
                (view.to.service, view.to.instance, view.tag),
                (ServiceId::KvsShard, 3, 4)
            );
            assert_eq!(view.payload, &env.payload[..]);
        }
    }

    #[test]
    fn too_large_is_refused() {
        let from = node("a", 1);
        let to = ActorRef::new(node("b", 1), ServiceId::Echo, 0);
        let r = encode_frame(&from, &to, 0, Kind::OneWay, &vec![0u8; 5000], 1024);
        assert!(matches!(r, Err(NetError::FrameTooLarge { max: 1024, .. })));
    }

    #[test]
    fn every_service_and_kind_round_trips() {
        let from = node("a", u64::MAX);
        let kinds = [
            Kind::Request { corr: 0 },
            Kind::Response {
                corr: 300,
                ok: false,
            },
            Kind::Response {
                corr: u64::MAX,
                ok: true,
            },
            Kind::OneWay,
        ];
        for (i, service) in ServiceId::ALL.into_iter().enumerate() {
            assert_eq!(encode_payload(&service).expect("serde"), vec![i as u8]);
            for kind in kinds {
                let to = ActorRef::new(node("b", 0), service, u32::MAX);
                let fast = encode_frame(&from, &to, u16::MAX, kind, &(), 1 << 20).expect("fast");
                let view = decode_view(&fast).expect("view");
                assert_eq!((view.to.service, view.kind), (service, kind));
            }
        }
        assert_eq!(ServiceId::from_index(ServiceId::ALL.len() as u32), None);
    }

    fn any_kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            any::<u64>().prop_map(|corr| Kind::Request { corr }),
            (any::<u64>(), any::<bool>()).prop_map(|(corr, ok)| Kind::Response { corr, ok }),
            Just(Kind::OneWay),
        ]
    }

    proptest! {
        #[test]
        fn random_envelopes_match_bincode_both_ways(
            ids in ("[a-z0-9.:]{0,40}", ".{0,300}"),
            gens in (any::<u64>(), 0u64..1000),
            (service, instance, tag) in (0..ServiceId::ALL.len(), any::<u32>(), any::<u16>()),
            kind in any_kind(),
            payload in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let env = Envelope {
                from: node(&ids.0, gens.0),
                to: ActorRef::new(node(&ids.1, gens.1), ServiceId::ALL[service], instance),
                tag,
                kind,
                payload: payload.clone(),
            };
            let slow = encode_envelope(&env, 1 << 20).expect("slow");
            let view = decode_view(&slow).expect("view");
            prop_assert_eq!(view.from.id, env.from.id.as_str());
            prop_assert_eq!(view.from.generation, gens.0);
            prop_assert_eq!(view.to.node.id, env.to.node.id.as_str());
            prop_assert_eq!(view.to.node.generation, gens.1);
            prop_assert_eq!((view.to.service, view.to.instance), (env.to.service, instance));
            prop_assert_eq!((view.tag, view.kind), (tag, kind));
            prop_assert_eq!(view.payload, &payload[..]);
            // The fast encoder writes the payload as bincode of the message: a byte string.
            let msg = serde_bytes::ByteBuf::from(payload.clone());
            let fast = encode_frame(&env.from, &env.to, tag, kind, &msg, 1 << 20).expect("fast");
            let mut expected = env.clone();
            expected.payload = encode_payload(&msg).expect("payload");
            prop_assert_eq!(fast, encode_envelope(&expected, 1 << 20).expect("slow"));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_view(&bytes);
        }

        #[test]
        fn mangled_frames_decode_as_bincode_does(cut in 0usize..200, at in 0usize..200, flip in any::<u8>()) {
            let from = node("127.0.0.1:1", 1 << 50);
            let to = ActorRef::new(node("127.0.0.1:2", 2), ServiceId::Cache, 300);
            let kind = Kind::Response { corr: 70_000, ok: true };
            let mut f = encode_frame(&from, &to, 9, kind, &vec![9u8; 100], 4096).expect("ok").to_vec();
            let at = at.min(f.len() - 1);
            f[at] ^= flip;
            f.truncate(cut.max(1).min(f.len()));
            let by_hand = decode_view(&f).map(|v| (v.from.id.to_owned(), v.to.service, v.kind, v.payload.to_vec()));
            let by_serde = decode_envelope(&f).map(|e| (e.from.id.as_str().to_owned(), e.to.service, e.kind, e.payload));
            prop_assert_eq!(by_hand.is_ok(), by_serde.is_ok(), "{:?} vs {:?}", by_hand, by_serde);
            if let (Ok(a), Ok(b)) = (by_hand, by_serde) {
                prop_assert_eq!(a, b);
            }
        }

        #[test]
        fn truncated_frames_are_errors(cut in 0usize..200) {
            let from = node("127.0.0.1:1", 1);
            let to = ActorRef::new(node("127.0.0.1:2", 2), ServiceId::Echo, 0);
            let f = encode_frame(&from, &to, 0, Kind::OneWay, &vec![9u8; 100], 4096).expect("ok");
            let cut = cut.min(f.len());
            prop_assert!(cut == f.len() || decode_view(&f[..cut]).is_err());
        }
    }
}
