//! The client protocol (docs/protocol.md): binary websocket messages holding MessagePack
//! maps. Every request carries the protocol version `v`, a request `id` chosen by the client
//! and an `op`; every request gets exactly one response carrying the same `id`, either
//! `ok` (the op's result) or `err` (`code`, `message`, and for function errors
//! `exception_type` and `traceback`).
//!
//! Decoding is two-step so that a bad request is still answered under its `id`: first the
//! [`Header`] (version, id, op), then the whole [`Request`]. Nothing here does I/O.

use crate::protocol::ErrorCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the client protocol this gateway speaks. A request with another `v` is
/// answered with `unsupported_version`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A pickled Python value as it crosses the websocket: one pickled object, or the pickled
/// elements of a set (stored as a SetUnion lattice).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireValue {
    /// `{"value": <bin>}`: one pickled object.
    Value(Bytes),
    /// `{"set": [<bin>, ...]}`: the elements of a Python set, each pickled.
    Set(Vec<Bytes>),
    /// `{"concurrent": [<bin>, ...]}`: concurrent versions of a key written by causal calls,
    /// each pickled (server to client only).
    Concurrent(Vec<Bytes>),
}

impl WireValue {
    /// Payload bytes (what the size limits count).
    pub fn size_bytes(&self) -> usize {
        match self {
            WireValue::Value(b) => b.len(),
            WireValue::Set(v) | WireValue::Concurrent(v) => v.iter().map(Bytes::len).sum(),
        }
    }
}

/// A call argument: `{"value": <bin>}` (pickled) or `{"ref": "<key>"}` (a KVS key the
/// executor resolves right before the call).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireArg {
    Value(Bytes),
    Ref(String),
}

/// `"plain"` (a callable) or `"class"` (a pickled `(Class, init_args)` pair).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireKind {
    #[default]
    Plain,
    Class,
}

/// `"lww"` (the client's `NORMAL`), `"repeatable_read"` or `"causal"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireConsistency {
    #[default]
    Lww,
    RepeatableRead,
    Causal,
}

/// What `list` lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireListing {
    #[default]
    Functions,
    Dags,
}

/// The fields every request has; decoded first so errors can name the request.
#[derive(Debug, Deserialize)]
pub struct Header {
    pub v: Option<u32>,
    pub id: Option<u64>,
    pub op: Option<String>,
}

/// The ops a client may send (the `op` field names the variant).
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Optional first request: learn the server's limits.
    Hello {
        #[serde(default)]
        client: Option<String>,
    },
    /// A no-op round trip.
    Ping {},
    PutObject {
        key: String,
        value: WireValue,
    },
    GetObject {
        key: String,
    },
    /// Delete a key (later reads answer `nil` until it is written again).
    DeleteObject {
        key: String,
    },
    RegisterFunction {
        name: String,
        body: Bytes,
        #[serde(default)]
        kind: WireKind,
        python: String,
        cloudpickle: String,
        #[serde(default)]
        timeout_ms: Option<u64>,
        #[serde(default)]
        retries: Option<u32>,
        #[serde(default)]
        retry_errors: bool,
    },
    RegisterDag {
        name: String,
        functions: Vec<String>,
        connections: Vec<(String, String)>,
    },
    DeleteDag {
        name: String,
    },
    List {
        #[serde(default)]
        what: WireListing,
        #[serde(default)]
        prefix: Option<String>,
    },
    CallFunction {
        function: String,
        args: Vec<WireArg>,
        #[serde(default)]
        consistency: WireConsistency,
        #[serde(default)]
        direct: bool,
        #[serde(default)]
        output_key: Option<String>,
        /// The call ends within this long (with `timeout` if nothing else).
        #[serde(default)]
        timeout_ms: Option<u64>,
        /// Re-runs after system failures (default: as its functions registered).
        #[serde(default)]
        retries: Option<u32>,
        /// Whether a function's exception or timeout re-runs it too.
        #[serde(default)]
        retry_errors: Option<bool>,
    },
    CallDag {
        dag: String,
        args: BTreeMap<String, Vec<WireArg>>,
        #[serde(default)]
        consistency: WireConsistency,
        #[serde(default)]
        direct: bool,
        #[serde(default)]
        output_key: Option<String>,
        /// The call ends within this long (with `timeout` if nothing else).
        #[serde(default)]
        timeout_ms: Option<u64>,
        /// Re-runs after system failures (default: as its functions registered).
        #[serde(default)]
        retries: Option<u32>,
        /// Whether a function's exception or timeout re-runs it too.
        #[serde(default)]
        retry_errors: Option<bool>,
    },
    /// Stop a call this gateway made: `true` if it was stopped (it ends with `cancelled`),
    /// `false` if it had ended already.
    Cancel {
        call: u64,
    },
    /// Wait for a future's result: answered when it exists (or after `timeout_ms`);
    /// `delete`: delete the stored result once it has been read.
    Await {
        call: u64,
        key: String,
        #[serde(default)]
        timeout_ms: Option<u64>,
        #[serde(default)]
        delete: bool,
    },
}

/// The result of a successful request (the response's `ok` field).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `nil`: done, nothing to return.
    Done(()),
    Hello(HelloReply),
    /// A stored value (or `nil` when the key is missing), a call's result.
    Value(Option<WireValue>),
    /// Names from `list`.
    Names(Vec<String>),
    /// A call accepted as a future: await `call`, whose result will be stored at `key`.
    Future {
        call: u64,
        key: String,
    },
    /// A yes or no (`cancel`).
    Flag(bool),
}

/// What `hello` returns.
#[derive(Debug, Serialize)]
pub struct HelloReply {
    pub protocol: u32,
    pub server: String,
    pub max_message_bytes: usize,
    pub heartbeat_ms: u64,
    pub client_timeout_ms: u64,
}

/// The `err` field of a failed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    pub exception_type: Option<String>,
    pub traceback: Option<String>,
}

#[derive(Serialize)]
struct OkFrame<'a> {
    v: u32,
    id: u64,
    ok: &'a Reply,
}

#[derive(Serialize)]
struct ErrFrame<'a> {
    v: u32,
    id: Option<u64>,
    err: &'a ErrorBody,
}

/// Why a request failed at the gateway (errors from the scheduler and from functions keep
/// their own codes; see [`ErrorBody`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("malformed frame: {0}")]
    MalformedFrame(String),
    #[error("protocol version {got} is not supported (this server speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion { got: u32 },
    #[error("unknown op `{0}`")]
    UnknownOp(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("no result after {0} ms")]
    Timeout(u64),
    #[error("{0} is not known to this gateway (not made here, or its result expired)")]
    UnknownCall(crate::ids::CallId),
    #[error("key `{key}` holds a {kind} lattice, which is not a Python value")]
    UnsupportedValue { key: String, kind: String },
    /// The KVS refused or failed: `code` says how (see `ops::storage`).
    #[error("{message}")]
    Storage { code: ErrorCode, message: String },
}

impl GatewayError {
    /// The error code the client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            GatewayError::MalformedFrame(_) => ErrorCode::MalformedFrame,
            GatewayError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            GatewayError::UnknownOp(_) => ErrorCode::UnknownOp,
            GatewayError::Invalid(_) => ErrorCode::InvalidRequest,
            GatewayError::Unavailable(_) => ErrorCode::Unavailable,
            GatewayError::Timeout(_) => ErrorCode::Timeout,
            GatewayError::UnknownCall(_) => ErrorCode::UnknownCall,
            GatewayError::UnsupportedValue { .. } => ErrorCode::UnsupportedValue,
            GatewayError::Storage { code, .. } => *code,
        }
    }

    /// The error as the client sees it.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            exception_type: None,
            traceback: None,
        }
    }
}

/// Ops this server knows, for the `unknown_op` check.
const OPS: &[&str] = &[
    "hello",
    "ping",
    "put_object",
    "get_object",
    "delete_object",
    "register_function",
    "register_dag",
    "delete_dag",
    "list",
    "call_function",
    "call_dag",
    "await",
    "cancel",
];

/// Decode one binary message into a request. The error comes with the request id when the
/// header could be read, so the client can match it.
pub fn decode(frame: &[u8]) -> Result<(u64, Request), (Option<u64>, GatewayError)> {
    let header: Header = rmp_serde::from_slice(frame)
        .map_err(|e| (None, GatewayError::MalformedFrame(e.to_string())))?;
    let id = header.id;
    let fail = |e: GatewayError| (id, e);
    let Some(id_value) = id else {
        return Err(fail(GatewayError::MalformedFrame("missing `id`".into())));
    };
    match header.v {
        Some(PROTOCOL_VERSION) => {}
        Some(got) => return Err(fail(GatewayError::UnsupportedVersion { got })),
        None => return Err(fail(GatewayError::MalformedFrame("missing `v`".into()))),
    }
    let Some(op) = header.op else {
        return Err(fail(GatewayError::MalformedFrame("missing `op`".into())));
    };
    if !OPS.contains(&op.as_str()) {
        return Err(fail(GatewayError::UnknownOp(op)));
    }
    let request: Request = rmp_serde::from_slice(frame)
        .map_err(|e| fail(GatewayError::Invalid(format!("{op}: {e}"))))?;
    Ok((id_value, request))
}

/// Encode a success response.
pub fn encode_ok(id: u64, reply: &Reply) -> Vec<u8> {
    let frame = OkFrame {
        v: PROTOCOL_VERSION,
        id,
        ok: reply,
    };
    // Encoding plain structs of strings, bytes and integers into a Vec cannot fail; should
    // it ever, the client still gets an error response rather than silence.
    rmp_serde::to_vec_named(&frame).unwrap_or_else(|e| {
        encode_err(
            Some(id),
            &GatewayError::Invalid(format!("cannot encode reply: {e}")).body(),
        )
    })
}

/// Encode an error response (`id` is `nil` when the request's id could not be read).
pub fn encode_err(id: Option<u64>, err: &ErrorBody) -> Vec<u8> {
    let frame = ErrFrame {
        v: PROTOCOL_VERSION,
        id,
        err,
    };
    rmp_serde::to_vec_named(&frame).unwrap_or_default()
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
