//! The gateway's logic, with no I/O: the choice of scheduler, and conversions between the
//! client protocol's types and the cluster's. (Its calls and their results: `results`.)

use super::protocol::{ErrorBody, GatewayError, MsgValue, WireArg, WireConsistency, WireValue};
use crate::config::Role;
use crate::ids::{CallId, Key, NodeId, CALL_ID_BITS};
use crate::lattice::{LatticeValue, Lww, SetUnion, Timestamp};
use crate::net::{ActorRef, ServiceId, View};
use crate::protocol::{
    to_python, Arg, CallFailure, Consistency, ErrorCode, FunctionError, MAX_KEY_BYTES,
    RESERVED_PREFIX,
};
use crate::pyrt::PyValue;
use bytes::Bytes;

/// The scheduler to send a call to: this node's if it plays the role, else one of the live
/// schedulers chosen by `spread` (any varying number, e.g. a counter). Schedulers of
/// draining nodes only when no other is left.
pub fn pick_scheduler(view: &View, me: &NodeId, spread: u64) -> Option<ActorRef> {
    let mut live: Vec<_> = view.serving_with_role(Role::Scheduler).collect();
    if live.is_empty() {
        live = view.live_with_role(Role::Scheduler).collect();
    }
    let chosen = live
        .iter()
        .find(|m| &m.node.id == me)
        .or_else(|| live.get((spread % live.len().max(1) as u64) as usize))?;
    Some(ActorRef::new(chosen.node.clone(), ServiceId::Scheduler, 0))
}

/// A call id minted by a client, checked: below 2^[`CALL_ID_BITS`], as every call id (so
/// every language holds it exactly).
pub fn client_call_id(id: u64) -> Result<CallId, GatewayError> {
    if id >> CALL_ID_BITS != 0 {
        return Err(GatewayError::Invalid(format!(
            "call id {id} is not below 2^{CALL_ID_BITS}"
        )));
    }
    Ok(CallId(id))
}

/// A client key, checked (non-empty, bounded); `write` refuses the reserved prefix.
pub fn client_key(key: String, write: bool) -> Result<Key, GatewayError> {
    if key.is_empty() {
        return Err(GatewayError::Invalid("empty key".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(GatewayError::Invalid(format!(
            "key of {} bytes is longer than the maximum of {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if write && key.starts_with(RESERVED_PREFIX) {
        return Err(GatewayError::Invalid(format!(
            "keys under `{RESERVED_PREFIX}` are reserved for the platform"
        )));
    }
    Ok(Key::new(key))
}

/// The lattice a client value is stored as: a set as SetUnion, anything else as Lww.
/// Concurrent versions are what reads of causal keys return; they cannot be put.
pub fn to_lattice(value: WireValue, at: Timestamp) -> Result<LatticeValue, GatewayError> {
    match value {
        WireValue::Value(b) => Ok(LatticeValue::Lww(Lww::new(at, b.0))),
        WireValue::Set(items) => Ok(LatticeValue::SetUnion(
            items.into_iter().map(|v| v.0).collect::<SetUnion<_>>(),
        )),
        WireValue::Concurrent(_) => Err(GatewayError::Invalid(
            "concurrent versions are read-only: put one value".into(),
        )),
    }
}

/// What a client gets back for a stored lattice: Lww and SetUnion hold Python values, and
/// causal values (written by causal calls) one value or several concurrent ones.
pub fn from_lattice(key: &Key, value: LatticeValue) -> Result<Option<WireValue>, GatewayError> {
    let kind = value.kind();
    match to_python(key.as_str(), Some(value)) {
        Ok(Some(v)) => wire_value(v).map(Some),
        Ok(None) => Ok(None),
        Err(_) => Err(GatewayError::UnsupportedValue {
            key: key.to_string(),
            kind: kind.to_string(),
        }),
    }
}

/// A stored value or a call's result as the client protocol carries it, checked to be
/// whole MessagePack (or a legacy pickle) so that copying it into a response cannot fail.
pub fn wire_value(v: PyValue) -> Result<WireValue, GatewayError> {
    let one = |b: Bytes| {
        let v = MsgValue(b);
        v.check().map(|()| v).map_err(|e| GatewayError::Storage {
            code: ErrorCode::StorageError,
            message: format!("a stored value or result is corrupt: {e}"),
        })
    };
    let many = |items: Vec<Bytes>| items.into_iter().map(one).collect::<Result<Vec<_>, _>>();
    Ok(match v {
        PyValue::Packed(b) => WireValue::Value(one(b)?),
        PyValue::PackedSet(v) => WireValue::Set(many(v)?),
        PyValue::Concurrent(v) => WireValue::Concurrent(many(v)?),
    })
}

/// Call arguments, with referenced keys checked.
pub fn to_args(args: Vec<WireArg>) -> Result<Vec<Arg>, GatewayError> {
    args.into_iter()
        .map(|a| match a {
            WireArg::Value(b) => Ok(Arg::Value(PyValue::Packed(b.0))),
            WireArg::Ref(k) => client_key(k, false).map(Arg::Reference),
        })
        .collect()
}

/// The cluster's consistency mode for the protocol's.
pub fn consistency(c: WireConsistency) -> Consistency {
    match c {
        WireConsistency::Lww => Consistency::Lww,
        WireConsistency::RepeatableRead => Consistency::RepeatableRead,
        WireConsistency::Causal => Consistency::Causal,
    }
}

/// A scheduler's refusal as the client sees it.
pub fn function_error(e: &FunctionError) -> ErrorBody {
    ErrorBody {
        code: e.code(),
        message: e.to_string(),
        exception_type: None,
        traceback: None,
    }
}

/// A failed call as the client sees it.
pub fn failure(f: CallFailure) -> ErrorBody {
    ErrorBody {
        code: f.code,
        message: f.message,
        exception_type: f.exception_type,
        traceback: f.traceback,
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
