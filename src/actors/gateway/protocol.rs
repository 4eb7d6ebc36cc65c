//! The client protocol (docs/protocol.md): binary websocket messages holding MessagePack
//! maps. Every request carries the protocol version `v`, a request `id` chosen by the client
//! and an `op`; every request gets exactly one response carrying the same `id`, either
//! `ok` (the op's result) or `err` (`code`, `message`, and for function errors
//! `exception_type` and `traceback`).
//!
//! Decoding is two-step so that a bad request is still answered under its `id`: first the
//! [`Header`] (version, id, op), then the whole [`Request`]. Nothing here does I/O.

use super::msgvalue;
pub use super::msgvalue::MsgValue;
use crate::protocol::ErrorCode;
use bytes::Bytes;
use serde::de::{self, DeserializeSeed, EnumAccess, IntoDeserializer, VariantAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the client protocol this gateway speaks. A request with another `v` is
/// answered with `unsupported_version`. Version 2 carries values as native MessagePack
/// (version 1 carried every value as a pickle in a bin).
pub const PROTOCOL_VERSION: u32 = 2;

/// A value as it crosses the websocket: one value (stored as a last-writer-wins register),
/// the elements of a set (stored as a SetUnion lattice), or concurrent versions. Each is
/// native MessagePack with pickles inside extension type 1 (see [`MsgValue`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireValue {
    /// `{"value": <value>}`: one value.
    Value(MsgValue),
    /// `{"set": [<value>, ...]}`: the elements of a set.
    Set(Vec<MsgValue>),
    /// `{"concurrent": [<value>, ...]}`: concurrent versions of a key written by causal
    /// calls (server to client only).
    Concurrent(Vec<MsgValue>),
}

impl WireValue {
    /// Payload bytes (what the size limits count).
    pub fn size_bytes(&self) -> usize {
        match self {
            WireValue::Value(b) => b.0.len(),
            WireValue::Set(v) | WireValue::Concurrent(v) => v.iter().map(|b| b.0.len()).sum(),
        }
    }
}

/// A call argument: `{"value": <value>}` or `{"ref": "<key>"}` (a KVS key the executor
/// resolves right before the call).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireArg {
    Value(MsgValue),
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

/// The ops a client may send (the `op` field names the variant; the request's other fields
/// are the variant's, decoded by [`decode`] straight from the frame).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
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
        /// The call's id, minted by the client (below 2^53, unique among its calls): the
        /// same request sent again (after a reconnect) is not run again but answered as
        /// the first was. Without it the gateway mints one.
        #[serde(default)]
        call: Option<u64>,
        /// Sent again after the client lost the gateway that took it: a `call` this gateway
        /// does not know is claimed from the executors before it runs here.
        #[serde(default)]
        resent: bool,
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
        /// The call's id, minted by the client (below 2^53, unique among its calls): the
        /// same request sent again (after a reconnect) is not run again but answered as
        /// the first was. Without it the gateway mints one.
        #[serde(default)]
        call: Option<u64>,
        /// Sent again after the client lost the gateway that took it: a `call` this gateway
        /// does not know is claimed from the executors before it runs here.
        #[serde(default)]
        resent: bool,
    },
    /// Stop a call this gateway made: `true` if it was stopped (it ends with `cancelled`),
    /// `false` if it had ended already.
    Cancel {
        call: u64,
    },
    /// What call `call`'s functions printed and raised, from every node that ran one.
    Logs {
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
    /// A call's logs (`logs`), in the order its function runs finished.
    Logs(Vec<crate::protocol::CallLog>),
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
    #[error("protocol version {got} is not supported: this server speaks version {PROTOCOL_VERSION}, in which values are native MessagePack (pickles only inside extension type 1); upgrade the client")]
    UnsupportedVersion { got: u64 },
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
    "logs",
];

/// How deep a request's fields nest around a value: `call_dag`'s `args` map, a function's
/// argument list, an argument's map, then the value.
const FIELD_NESTING: usize = 3;

/// Decode one binary message into a request. The error comes with the request id when the
/// header could be read, so the client can match it. The header is read first without
/// recursion, bounding how deep the frame nests before serde (which recurses) sees it.
pub fn decode(frame: &[u8]) -> Result<(u64, Request), (Option<u64>, GatewayError)> {
    let header = msgvalue::read_header(frame, msgvalue::MAX_DEPTH + FIELD_NESTING).map_err(
        |(id, e)| match e.starts_with(msgvalue::TOO_DEEP) {
            true => (id, GatewayError::Invalid(format!("a field {e}"))),
            false => (id, GatewayError::MalformedFrame(e)),
        },
    )?;
    let id = header.id;
    let fail = |e: GatewayError| (id, e);
    let Some(id_value) = id else {
        return Err(fail(GatewayError::MalformedFrame("missing `id`".into())));
    };
    match header.v {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(got) => return Err(fail(GatewayError::UnsupportedVersion { got })),
        None => return Err(fail(GatewayError::MalformedFrame("missing `v`".into()))),
    }
    let Some(op) = header.op else {
        return Err(fail(GatewayError::MalformedFrame("missing `op`".into())));
    };
    if !OPS.contains(&op.as_str()) {
        return Err(fail(GatewayError::UnknownOp(op)));
    }
    let mut fields = rmp_serde::Deserializer::from_read_ref(frame);
    let request = Request::deserialize(OpTagged {
        op: &op,
        fields: &mut fields,
    })
    .map_err(|e| fail(GatewayError::Invalid(format!("{op}: {e}"))))?;
    Ok((id_value, request))
}

/// Presents a request frame to `Request`'s derived `Deserialize` as the enum variant `op`
/// whose fields are the frame's map (its `v`, `id` and `op` are ignored as unknown fields).
/// Unlike `#[serde(tag = "op")]`, which first copies the whole frame into an untyped tree
/// (recursively, so a deeply nested value could exhaust the stack), this decodes the
/// frame once, in place.
struct OpTagged<'a, D> {
    op: &'a str,
    fields: D,
}

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for OpTagged<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de, D: serde::Deserializer<'de>> EnumAccess<'de> for OpTagged<'_, D> {
    type Error = D::Error;
    type Variant = OpFields<D>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), D::Error> {
        let variant = seed.deserialize(self.op.into_deserializer())?;
        Ok((variant, OpFields(self.fields)))
    }
}

/// The fields of the op's variant: the frame's map.
struct OpFields<D>(D);

impl<'de, D: serde::Deserializer<'de>> VariantAccess<'de> for OpFields<D> {
    type Error = D::Error;

    fn unit_variant(self) -> Result<(), D::Error> {
        Err(de::Error::custom("every op has fields"))
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, D::Error> {
        Err(de::Error::custom("every op has named fields"))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, D::Error> {
        Err(de::Error::custom("every op has named fields"))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct("request", fields, visitor)
    }
}

/// Encode a success response.
pub fn encode_ok(id: u64, reply: &Reply) -> Vec<u8> {
    let frame = OkFrame {
        v: PROTOCOL_VERSION,
        id,
        ok: reply,
    };
    // Encoding plain structs of strings, bytes and integers, and values checked whole
    // (`core::wire_value`), into a Vec cannot fail; should it ever, the client still gets
    // an error response rather than silence.
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
