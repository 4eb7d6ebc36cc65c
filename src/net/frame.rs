//! The hot path of the wire format: encode an envelope straight from a typed message, and
//! decode a borrowed view of an envelope, without intermediate allocations.
//!
//! Both are byte-for-byte the [`Envelope`](crate::net::wire::Envelope) encoding (tested
//! below): bincode writes a struct as its fields in order and `serde_bytes` as a varint
//! length and the bytes, so the header fields, the payload length and the payload bytes can
//! be written one after the other, and read back borrowing from the frame.

use crate::ids::NodeRef;
use crate::net::error::NetError;
use crate::net::service::{ActorRef, ServiceId};
use crate::net::wire::Kind;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
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

#[derive(Serialize)]
struct Header<'a> {
    from: &'a NodeRef,
    to: &'a ActorRef,
    tag: u16,
    kind: Kind,
}

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
    let codec = NetError::codec;
    bincode::serde::encode_into_std_write(msg, payload, config()).map_err(codec)?;
    let mut buf = Vec::with_capacity(payload.len() + HEADER_ESTIMATE);
    let header = Header {
        from,
        to,
        tag,
        kind,
    };
    bincode::serde::encode_into_std_write(&header, &mut buf, config()).map_err(codec)?;
    bincode::serde::encode_into_std_write(payload.len() as u64, &mut buf, config())
        .map_err(codec)?;
    buf.extend_from_slice(payload);
    if buf.len() > max_frame {
        return Err(NetError::FrameTooLarge {
            size: buf.len(),
            max: max_frame,
        });
    }
    Ok(Bytes::from(buf))
}

/// A node reference borrowed from a frame.
#[derive(Debug, Deserialize)]
pub struct NodeRefView<'a> {
    pub id: &'a str,
    pub generation: u64,
}

/// An actor reference borrowed from a frame.
#[derive(Debug, Deserialize)]
pub struct ActorRefView<'a> {
    #[serde(borrow)]
    pub node: NodeRefView<'a>,
    pub service: ServiceId,
    pub instance: u32,
}

/// An envelope borrowed from a frame: nothing is copied.
#[derive(Debug, Deserialize)]
pub struct EnvelopeView<'a> {
    #[serde(borrow)]
    pub from: NodeRefView<'a>,
    #[serde(borrow)]
    pub to: ActorRefView<'a>,
    pub tag: u16,
    pub kind: Kind,
    #[serde(borrow)]
    pub payload: &'a [u8],
}

/// Decode a frame body as a borrowed envelope. Never panics and never allocates in
/// proportion to what the frame claims (strings and bytes are borrowed).
pub fn decode_view(frame: &[u8]) -> Result<EnvelopeView<'_>, NetError> {
    let (view, used): (EnvelopeView<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(frame, config()).map_err(NetError::codec)?;
    if used != frame.len() {
        return Err(NetError::Codec(format!(
            "{} trailing bytes after the envelope",
            frame.len() - used
        )));
    }
    Ok(view)
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
    use crate::net::wire::{encode_envelope, encode_payload, Envelope};
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

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_view(&bytes);
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
