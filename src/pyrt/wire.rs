//! Frames between a pool (supervisor) and one worker process: a 4-byte big-endian length,
//! then a bincode (`config::standard()`) encoding of [`ToWorker`] or [`FromWorker`]. The
//! same framing as tokio-util's `LengthDelimitedCodec` defaults, which the supervisor uses.
//!
//! The protocol is strictly request/response and one call at a time per worker:
//! `Call`, then any number of `Lib` / `LibReply` pairs, then `Done`. Every frame of a call
//! carries its `seq` (a number the supervisor gives each call of a worker), and both sides
//! check it: a frame of another call (a forked child of the function writing late, user
//! code writing to the socket) breaks the worker instead of answering the wrong call.

use super::{CallError, FunctionKind, LibError, PyEnvironment, PyValue};
use crate::ids::Key;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::io::Read;

/// Bumped on any change to these messages; a worker of another version fails the handshake.
/// 3: a call carries how many of its arguments are upstream results.
/// 4: every frame of a call carries its `seq`.
/// 5: a call carries its call id and attempt.
/// 6: `Done` carries what the call printed.
pub const PROTOCOL_VERSION: u32 = 6;

/// Length prefix size of a frame.
const LEN_BYTES: usize = 4;

/// Supervisor → worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run a function. `body` is sent only if this worker has not loaded `(name, hash)` yet.
    Call(WireCall),
    /// The answer to the worker's last [`FromWorker::Lib`] of call `seq`.
    LibReply { seq: u64, reply: LibReply },
}

/// A call as sent to a worker.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireCall {
    /// The call's number on this worker.
    pub seq: u64,
    pub name: String,
    pub hash: u64,
    pub kind: FunctionKind,
    pub body: Option<Bytes>,
    pub args: Vec<Option<PyValue>>,
    pub upstream: usize,
    /// The call it belongs to and its attempt (for `cb.call_id`, `cb.attempt`).
    pub call: u64,
    pub attempt: u32,
    /// Only load the function (a class function's `__init__` runs), do not call it.
    pub warm: bool,
}

/// The supervisor's borrowed view of [`ToWorker::Call`]: encodes to the same bytes, without
/// copying the body or the arguments.
#[derive(Debug, Serialize)]
pub enum ToWorkerRef<'a> {
    Call(WireCallRef<'a>),
}

/// Borrowed [`WireCall`] (same fields, same order).
#[derive(Debug, Serialize)]
pub struct WireCallRef<'a> {
    pub seq: u64,
    pub name: &'a str,
    pub hash: u64,
    pub kind: FunctionKind,
    pub body: Option<&'a Bytes>,
    pub args: &'a [Option<PyValue>],
    pub upstream: usize,
    pub call: u64,
    pub attempt: u32,
    pub warm: bool,
}

/// Worker → supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// First frame after connecting: the worker is ready.
    Ready { protocol: u32, env: PyEnvironment },
    /// First frame after connecting: the worker cannot serve (it could not be confined),
    /// and why.
    Refused(String),
    /// A user-library request from the running function (call `seq`).
    Lib { seq: u64, req: LibRequest },
    /// Call `seq` finished. `loaded`: the function is now cached in the worker.
    Done {
        seq: u64,
        outcome: Result<PyValue, CallError>,
        loaded: bool,
        /// What the call wrote to stdout and stderr, if anything.
        output: Option<CallOutput>,
    },
}

/// What one call wrote to `sys.stdout` and `sys.stderr` (bounded by the worker; the
/// worker's own streams, and so the executor's log, got every line).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallOutput {
    pub stdout: String,
    pub stderr: String,
    /// The worker cut what came beyond its bound.
    pub truncated: bool,
}

/// A user-library request (see [`super::UserLibrary`]).
#[derive(Debug, Serialize, Deserialize)]
pub enum LibRequest {
    Get(Vec<Key>),
    Put(Key, PyValue),
    Send(String, Bytes),
    Recv,
    Id,
    Delete(Key),
}

/// The answer to a [`LibRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum LibReply {
    Values(Vec<Option<PyValue>>),
    Done,
    Messages(Vec<(String, Bytes)>),
    Id(String),
    Error(LibError),
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {bytes} bytes exceeds the limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error("undecodable frame: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("unencodable frame: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("undecodable frame: {0}")]
    Malformed(String),
}

/// Encode a message as one frame: length prefix and body, ready for one `write_all`.
pub fn encode_frame<T: Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0u8; LEN_BYTES];
    bincode::serde::encode_into_std_write(msg, &mut frame, bincode::config::standard())?;
    let bytes = frame.len() - LEN_BYTES;
    let len = u32::try_from(bytes)
        .ok()
        .filter(|&n| n as usize <= max)
        .ok_or(FrameError::TooLarge { bytes, max })?;
    frame[..LEN_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// Encode a message body (without the length prefix; the supervisor's codec adds it).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    Ok(bincode::serde::encode_to_vec(
        msg,
        bincode::config::standard(),
    )?)
}

/// Decode a message body. The worker runs user code that could write to its socket, so
/// decoding is bounded like peer input: a declared length cannot make us allocate more
/// than a small multiple of the frame (see `net::wire::decode_payload`).
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    crate::net::wire::decode_payload(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Blocking read of one frame body (worker side).
pub fn read_frame(r: &mut impl Read, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; LEN_BYTES];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { bytes: len, max });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_round_trips_through_bincode_and_frames() {
        let call = ToWorker::Call(WireCall {
            seq: 9,
            name: "f".into(),
            hash: 7,
            kind: FunctionKind::Class,
            body: Some(Bytes::from_static(b"\x80\x05body")),
            args: vec![
                None,
                Some(PyValue::Packed(Bytes::from_static(b"x"))),
                Some(PyValue::PackedSet(vec![
                    Bytes::from_static(b"a"),
                    Bytes::new(),
                ])),
            ],
            upstream: 0,
            call: 3,
            attempt: 1,
            warm: false,
        });
        let buf = encode_frame(&call, 1 << 20).expect("encodes");
        let body = read_frame(&mut buf.as_slice(), 1 << 20).expect("reads");
        let ToWorker::Call(back) = decode::<ToWorker>(&body).expect("decodes") else {
            panic!("expected a call")
        };
        assert_eq!(back.body.as_deref(), Some(&b"\x80\x05body"[..]));
        assert_eq!(back.args.len(), 3);
        assert_eq!(back.args[0], None);
        assert_eq!(
            back.args[2],
            Some(PyValue::PackedSet(vec![
                Bytes::from_static(b"a"),
                Bytes::new()
            ]))
        );
    }

    #[test]
    fn borrowed_call_decodes_as_owned_call() {
        let body = Bytes::from_static(b"fn");
        let args = vec![Some(PyValue::Packed(Bytes::from_static(b"1"))), None];
        let msg = ToWorkerRef::Call(WireCallRef {
            seq: 3,
            name: "sq",
            hash: 42,
            kind: FunctionKind::Plain,
            body: Some(&body),
            args: &args,
            upstream: 1,
            call: 7,
            attempt: 2,
            warm: true,
        });
        let ToWorker::Call(back) =
            decode::<ToWorker>(&encode(&msg).expect("encodes")).expect("decodes")
        else {
            panic!("expected a call")
        };
        assert_eq!((back.seq, back.name.as_str(), back.hash), (3, "sq", 42));
        assert_eq!((back.call, back.attempt, back.warm), (7, 2, true));
        assert_eq!(back.body, Some(body));
        assert_eq!((back.args, back.upstream), (args, 1));
    }

    #[test]
    fn errors_round_trip() {
        let done = FromWorker::Done {
            seq: 1,
            outcome: Err(CallError::Timeout {
                after: std::time::Duration::from_millis(300),
            }),
            loaded: true,
            output: None,
        };
        let back: FromWorker = decode(&encode(&done).expect("encodes")).expect("decodes");
        assert!(matches!(
            back,
            FromWorker::Done {
                seq: 1,
                outcome: Err(CallError::Timeout { .. }),
                loaded: true,
                output: None,
            }
        ));
    }

    #[test]
    fn oversized_frames_are_refused_both_ways() {
        let big = ToWorker::LibReply {
            seq: 0,
            reply: LibReply::Error(LibError::new(
                crate::protocol::ErrorCode::InternalError,
                "x".repeat(10),
            )),
        };
        assert!(matches!(
            encode_frame(&big, 4),
            Err(FrameError::TooLarge { max: 4, .. })
        ));
        let frame = [0u8, 0, 0, 10, 1, 2];
        assert!(matches!(
            read_frame(&mut &frame[..], 4),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
