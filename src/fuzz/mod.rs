//! The fuzz targets' bodies: each feeds bytes from outside to one decoder the way the
//! node does, then checks what must hold of whatever decodes. No input may make one
//! panic. The libFuzzer targets in `fuzz/` call these; `tests/it/fuzz_corpus.rs` replays the
//! committed corpora and the crashes found so far through them on every test run.
//!
//! - [`client_request`]: a client's websocket message (the gateway's decoder), its value
//!   stored and read back, its arguments converted.
//! - [`peer_frame`]: a peer's frame (the envelope, then the payload as the message type its
//!   service and tag name, as a request and as a response), and a handshake message.
//! - [`worker_frame`]: a Python worker's frame, as the supervisor decodes it (the worker
//!   runs user code, which can write anything to its socket), and the supervisor's frame as
//!   the worker decodes it.
//! - [`lattice_merge`]: two lattice values decoded from the wire, merged both ways: no
//!   panic, and the merge is commutative and idempotent when both ways succeed.
//!
//! [`record`] captures real traffic as seed corpora.

pub mod record;

use crate::actors::gateway::{core, protocol};
use crate::lattice::{LatticeValue, Timestamp};

/// The fuzz targets (the directory names of their corpora).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    ClientRequest,
    PeerFrame,
    WorkerFrame,
    LatticeMerge,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::ClientRequest,
        Target::PeerFrame,
        Target::WorkerFrame,
        Target::LatticeMerge,
    ];

    /// The target's name (`fuzz/fuzz_targets/<name>.rs`, `fuzz/corpus/<name>/`).
    pub fn name(self) -> &'static str {
        match self {
            Target::ClientRequest => "client_request",
            Target::PeerFrame => "peer_frame",
            Target::WorkerFrame => "worker_frame",
            Target::LatticeMerge => "lattice_merge",
        }
    }

    /// Run the target on one input.
    pub fn run(self, data: &[u8]) {
        match self {
            Target::ClientRequest => client_request(data),
            Target::PeerFrame => peer_frame(data),
            Target::WorkerFrame => worker_frame(data),
            Target::LatticeMerge => lattice_merge(data),
        }
    }
}

/// A client's websocket message, as the gateway takes it.
pub fn client_request(data: &[u8]) {
    let request = match protocol::decode(data) {
        Ok((_, request)) => request,
        Err((id, e)) => {
            // The gateway answers a bad request with its error.
            let _ = protocol::encode_err(id, &e.body());
            return;
        }
    };
    match request {
        protocol::Request::PutObject { key, value } => {
            let (Ok(key), Ok(stored)) = (
                core::client_key(key, true),
                core::to_lattice(value.clone(), Timestamp::default()),
            ) else {
                return;
            };
            // A value the gateway accepted reads back as it was put.
            let back = core::from_lattice(&key, stored);
            if let protocol::WireValue::Value(_) = value {
                assert_eq!(back.ok().flatten(), Some(value), "a put value reads back");
            } else {
                assert!(back.is_ok(), "a put set reads back: {back:?}");
            }
        }
        protocol::Request::CallFunction { args, .. } => {
            let _ = core::to_args(args);
        }
        protocol::Request::CallDag { args, .. } => {
            for (_, args) in args {
                let _ = core::to_args(args);
            }
        }
        _ => {}
    }
}

/// A peer's frame body (after the length prefix), or a handshake message.
pub fn peer_frame(data: &[u8]) {
    use crate::net::wire::{decode_envelope, decode_payload, Kind};
    let _ = crate::net::handshake::decode_message(data);
    let view = crate::net::frame::decode_view(data);
    // The borrowed view and the owned envelope are two decoders of one format.
    let owned = decode_envelope(data);
    assert_eq!(
        view.is_ok(),
        owned.is_ok(),
        "the view and the envelope agree"
    );
    let Ok(view) = view else {
        return;
    };
    // A request's or one-way message's payload is the message its service and tag name;
    // a response's, the reply (or the error of a refused request).
    let _ = crate::protocol::tags::decode_by_tag(view.to.service, view.tag, view.payload);
    if let Kind::Response { ok: false, .. } = view.kind {
        let _ = decode_payload::<crate::net::NetError>(view.payload);
    }
}

/// A worker's frame body as the supervisor decodes it; the supervisor's as the worker does.
pub fn worker_frame(data: &[u8]) {
    use crate::pyrt::wire::{decode, FromWorker, ToWorker};
    let _ = decode::<FromWorker>(data);
    let _ = decode::<ToWorker>(data);
}

/// Two lattice values from the wire (the first byte says where the second starts).
pub fn lattice_merge(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let (a, b) = rest.split_at(usize::from(cut).min(rest.len()));
    let decode = crate::net::wire::decode_payload::<LatticeValue>;
    let (Ok(a), Ok(b)) = (decode(a), decode(b)) else {
        return;
    };
    let (mut ab, mut ba) = (a.clone(), b.clone());
    let (one, other) = (ab.merge(b.clone()), ba.merge(a));
    if one.is_ok() && other.is_ok() {
        assert_eq!(ab, ba, "merge is commutative");
        let mut again = ab.clone();
        assert_eq!(again.merge(b), Ok(false), "merge is idempotent");
        assert_eq!(again, ab, "merging again changes nothing");
    }
}
