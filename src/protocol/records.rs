//! Function and DAG records as the KVS stores them, no I/O: bincode inside Lww values under
//! [`FUNCTION_PREFIX`] and [`DAG_PREFIX`]; call results for futures under [`RESULT_PREFIX`].
//! Schedulers write the registry; executors read function bodies from it.
//!
//! A delete writes a tombstone (see [`crate::lattice::Tombstone`]); [`read_entry`] treats it
//! as absent, and so an Lww entry with an empty payload, which is how versions before
//! tombstones deleted (an entry is never empty: its bincode has at least the name).

use super::limits::{MAX_FUNCTION_TIMEOUT_MS, MAX_NAME_LEN, MAX_RETRIES};
use super::requests::FunctionError;
use crate::ids::{hash64, CallId, Key};
use crate::lattice::LatticeValue;
use crate::pyrt::FunctionKind;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `__cloudburst/` followed by `$tail`, as a literal.
macro_rules! reserved {
    ($tail:literal) => {
        concat!("__cloudburst/", $tail)
    };
}

pub use crate::ids::RESERVED_PREFIX;
/// KVS key prefix of registered functions (`__cloudburst/functions/<name>`).
pub const FUNCTION_PREFIX: &str = reserved!("functions/");
/// KVS key prefix of registered DAGs.
pub const DAG_PREFIX: &str = reserved!("dags/");
/// KVS key prefix of call results stored for futures (`__cloudburst/results/<call>`).
pub const RESULT_PREFIX: &str = reserved!("results/");

/// Largest registry entry decoded (memory a corrupt entry could make a decoder claim). The
/// KVS refuses larger values anyway (`kvs.max_value_bytes`).
pub const MAX_ENTRY_BYTES: usize = 256 << 20;

/// A registered function as stored in the KVS (bincode inside an Lww value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub name: String,
    pub kind: FunctionKind,
    /// cloudpickle bytes from the client.
    pub body: Bytes,
    /// Client's Python `major.minor` and cloudpickle version (checked at registration).
    pub python: String,
    pub cloudpickle: String,
    /// Per-function timeout; `None` means the executor's default.
    pub timeout_ms: Option<u64>,
    /// Re-runs of a call of this function after system failures; `None`: the default
    /// ([`DEFAULT_RETRIES`]).
    pub retries: Option<u32>,
    /// Whether this function's exception (or timeout) re-runs the call too.
    pub retry_errors: bool,
}

/// Re-runs of a call after system failures when neither the call nor its functions' says.
pub const DEFAULT_RETRIES: u32 = 2;

/// A function record as stored before retries were registered: still read (and taken as
/// asking for the defaults), so a durable registry survives the upgrade.
#[derive(Deserialize)]
struct FunctionRecordV1 {
    name: String,
    kind: FunctionKind,
    body: Bytes,
    python: String,
    cloudpickle: String,
    timeout_ms: Option<u64>,
}

impl From<FunctionRecordV1> for FunctionRecord {
    fn from(r: FunctionRecordV1) -> Self {
        FunctionRecord {
            name: r.name,
            kind: r.kind,
            body: r.body,
            python: r.python,
            cloudpickle: r.cloudpickle,
            timeout_ms: r.timeout_ms,
            retries: None,
            retry_errors: false,
        }
    }
}

/// A type stored as a registry entry: how its payload decodes (older layouts included).
pub trait Entry: Sized {
    /// Decode the payload of the entry stored under `key`.
    fn decode(key: &Key, b: &[u8]) -> Result<Self, FunctionError>;
}

impl Entry for DagSpec {
    fn decode(key: &Key, b: &[u8]) -> Result<Self, FunctionError> {
        decode_as(key, b)
    }
}

impl Entry for FunctionRecord {
    fn decode(key: &Key, b: &[u8]) -> Result<Self, FunctionError> {
        decode_as(key, b).or_else(|e| match decode_as::<FunctionRecordV1>(key, b) {
            Ok(old) => Ok(old.into()),
            Err(_) => Err(e),
        })
    }
}

/// A registered DAG: its functions and edges `(from, to)`. A function with several
/// upstreams receives their results as arguments in the order of this edge list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagSpec {
    pub name: String,
    pub functions: Vec<String>,
    pub connections: Vec<(String, String)>,
}

/// Check a function or DAG name: 1..=[`MAX_NAME_LEN`] bytes, no `/` (names are parts of
/// invocation ids and KVS keys), no whitespace or control characters.
pub fn validate_name(what: &str, name: &str) -> Result<(), FunctionError> {
    let bad = |why: &str| {
        Err(FunctionError::Invalid(format!(
            "{what} name {name:?} {why}"
        )))
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad(&format!("is longer than {MAX_NAME_LEN} bytes"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return bad("contains `/`, whitespace or a control character");
    }
    Ok(())
}

impl FunctionRecord {
    /// The rules every record obeys, at registration and whenever one is read back: a
    /// record is data anyone who could write the KVS might have forged, and a forged one
    /// must be an error, never a function with a new name or an endless timeout.
    pub fn check(&self) -> Result<(), FunctionError> {
        validate_name("function", &self.name)?;
        if self.body.is_empty() {
            return Err(FunctionError::Invalid(format!(
                "function `{}` has an empty body",
                self.name
            )));
        }
        match self.timeout_ms {
            Some(0) => Err(FunctionError::Invalid(
                "a function timeout must be above 0 ms".into(),
            )),
            Some(ms) if ms > MAX_FUNCTION_TIMEOUT_MS => Err(FunctionError::Invalid(format!(
                "a function timeout of {ms} ms is above the maximum of {MAX_FUNCTION_TIMEOUT_MS} ms"
            ))),
            _ => check_retries(self.retries),
        }
    }
}

/// Re-runs asked for (by a function or a call) are at most [`MAX_RETRIES`].
pub fn check_retries(retries: Option<u32>) -> Result<(), FunctionError> {
    match retries {
        Some(n) if n > MAX_RETRIES => Err(FunctionError::Invalid(format!(
            "{n} retries are above the maximum of {MAX_RETRIES}"
        ))),
        _ => Ok(()),
    }
}

/// The function registered as `name`, from a read of its key: `None` when missing or
/// deleted; an error when the entry is corrupt or breaks the record rules, or names
/// another function than its key.
pub fn read_function(
    name: &str,
    value: Option<LatticeValue>,
) -> Result<Option<FunctionRecord>, FunctionError> {
    let key = function_key(name);
    let Some(record) = read_entry::<FunctionRecord>(&key, value)? else {
        return Ok(None);
    };
    let forged = |why: String| FunctionError::Storage(format!("registry entry `{key}` {why}"));
    if record.name != name {
        return Err(forged(format!(
            "names another function (`{}`)",
            record.name
        )));
    }
    record
        .check()
        .map_err(|e| forged(format!("is invalid: {e}")))?;
    Ok(Some(record))
}

/// KVS key of function `name`.
pub fn function_key(name: &str) -> Key {
    Key::new(format!("{FUNCTION_PREFIX}{name}"))
}

/// KVS key of DAG `name`.
pub fn dag_key(name: &str) -> Key {
    Key::new(format!("{DAG_PREFIX}{name}"))
}

/// Default KVS key a call's result is stored under for futures.
pub fn result_key(call: CallId) -> Key {
    Key::new(format!("{RESULT_PREFIX}{call}"))
}

/// Content hash of a function: changes whenever its name, kind or body does. Workers cache
/// unpickled functions by `(name, hash)`, so a re-registered body is never served stale.
pub fn function_hash(record: &FunctionRecord) -> u64 {
    let kind: &[u8] = match record.kind {
        FunctionKind::Plain => b"plain",
        FunctionKind::Class => b"class",
    };
    hash64(&[record.name.as_bytes(), kind, &record.body])
}

/// The payload of a registry entry.
pub fn encode_entry<T: Serialize>(v: &T) -> Result<Bytes, FunctionError> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
        .map(Bytes::from)
        .map_err(|e| FunctionError::Storage(format!("cannot encode registry entry: {e}")))
}

/// Decode the payload of the entry stored under `key`.
pub fn decode_entry<T: Entry>(key: &Key, b: &[u8]) -> Result<T, FunctionError> {
    T::decode(key, b)
}

/// `b` as a `T`, every byte of it.
fn decode_as<T: DeserializeOwned>(key: &Key, b: &[u8]) -> Result<T, FunctionError> {
    let cfg = bincode::config::standard().with_limit::<MAX_ENTRY_BYTES>();
    let corrupt =
        |e: String| FunctionError::Storage(format!("corrupt registry entry `{key}`: {e}"));
    match bincode::serde::decode_from_slice::<T, _>(b, cfg) {
        Ok((v, used)) if used == b.len() => Ok(v),
        Ok((_, used)) => Err(corrupt(format!("{} bytes left over", b.len() - used))),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

/// The entry a read of `key` returned: `None` when missing or deleted (a tombstone).
pub fn read_entry<T: Entry>(
    key: &Key,
    value: Option<LatticeValue>,
) -> Result<Option<T>, FunctionError> {
    match value.and_then(LatticeValue::into_live) {
        None => Ok(None),
        Some(LatticeValue::Lww(l)) if l.value.is_empty() => Ok(None),
        Some(LatticeValue::Lww(l)) => decode_entry(key, &l.value).map(Some),
        Some(other) => Err(FunctionError::Storage(format!(
            "registry entry `{key}` holds a {} lattice, not lww",
            other.kind()
        ))),
    }
}

/// Whether a stored value is a live entry (not a tombstone, nor an empty entry of an
/// earlier version).
pub fn is_live(value: Option<&LatticeValue>) -> bool {
    matches!(value, Some(LatticeValue::Lww(l)) if !l.value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WriterId;
    use crate::lattice::{Lww, Timestamp, Tombstone};

    fn record(body: &'static [u8]) -> FunctionRecord {
        FunctionRecord {
            name: "f".into(),
            kind: FunctionKind::Plain,
            body: Bytes::from_static(body),
            python: "3.11".into(),
            cloudpickle: "3.0.0".into(),
            timeout_ms: Some(5),
            retries: Some(4),
            retry_errors: true,
        }
    }

    fn lww(payload: Bytes) -> Option<LatticeValue> {
        Some(LatticeValue::Lww(Lww::new(
            Timestamp::new(1, WriterId(1)),
            payload,
        )))
    }

    #[test]
    fn entries_round_trip_and_hash_follows_the_body() {
        let r = record(b"body");
        let key = function_key("f");
        assert_eq!(key.as_str(), "__cloudburst/functions/f");
        let bytes = encode_entry(&r).expect("encodes");
        let back: FunctionRecord = decode_entry(&key, &bytes).expect("decodes");
        assert_eq!(back, r);
        assert_eq!(
            read_entry::<FunctionRecord>(&key, lww(bytes)),
            Ok(Some(r.clone()))
        );
        assert_ne!(function_hash(&r), function_hash(&record(b"other")));
        let mut class = r.clone();
        class.kind = FunctionKind::Class;
        assert_ne!(function_hash(&r), function_hash(&class));
        assert!(decode_entry::<FunctionRecord>(&key, b"\xff\xff\xff").is_err());
    }

    #[test]
    fn a_record_stored_before_retries_reads_with_the_defaults() {
        #[derive(Serialize)]
        struct V1<'a>(&'a str, FunctionKind, Bytes, &'a str, &'a str, Option<u64>);
        let old = V1(
            "f",
            FunctionKind::Plain,
            Bytes::from_static(b"body"),
            "3.11",
            "3.0.0",
            Some(5),
        );
        let bytes = encode_entry(&old).expect("encodes");
        let key = function_key("f");
        let back: FunctionRecord = decode_entry(&key, &bytes).expect("the old layout decodes");
        assert_eq!((back.retries, back.retry_errors), (None, false));
        assert_eq!((back.name.as_str(), back.timeout_ms), ("f", Some(5)));
        let mut trailing = encode_entry(&record(b"body")).expect("encodes").to_vec();
        trailing.push(0);
        assert!(decode_entry::<FunctionRecord>(&key, &trailing).is_err());
    }

    #[test]
    fn tombstones_and_missing_read_as_absent_and_other_kinds_are_refused() {
        let key = dag_key("d");
        assert_eq!(read_entry::<DagSpec>(&key, None), Ok(None));
        assert_eq!(read_entry::<DagSpec>(&key, lww(Bytes::new())), Ok(None));
        assert!(!is_live(lww(Bytes::new()).as_ref()) && is_live(lww(Bytes::from("x")).as_ref()));
        let deleted = LatticeValue::Tombstone(Tombstone::new(Timestamp::new(2, WriterId(1))));
        assert_eq!(read_entry::<DagSpec>(&key, Some(deleted.clone())), Ok(None));
        assert!(!is_live(Some(&deleted)));
        let max = LatticeValue::bottom(crate::lattice::LatticeKind::Max);
        assert!(matches!(
            read_entry::<DagSpec>(&key, Some(max)),
            Err(FunctionError::Storage(_))
        ));
    }

    #[test]
    fn a_forged_record_read_back_is_an_error_not_a_function() {
        let stored = |r: &FunctionRecord| lww(encode_entry(r).expect("encodes"));
        let good = record(b"body");
        assert_eq!(read_function("f", stored(&good)), Ok(Some(good.clone())));
        assert_eq!(read_function("f", None), Ok(None));
        let mut endless = good.clone();
        endless.timeout_ms = Some(u64::MAX);
        let err = read_function("f", stored(&endless))
            .unwrap_err()
            .to_string();
        assert!(err.contains("above the maximum"), "{err}");
        let mut rerun_forever = good.clone();
        rerun_forever.retries = Some(super::super::limits::MAX_RETRIES + 1);
        let err = read_function("f", stored(&rerun_forever))
            .unwrap_err()
            .to_string();
        assert!(err.contains("retries are above the maximum"), "{err}");
        // A record written under another function's key does not become that function.
        let mut other = good.clone();
        other.name = "victim".into();
        let err = read_function("f", stored(&other)).unwrap_err().to_string();
        assert!(err.contains("names another function"), "{err}");
        let mut bad_name = good.clone();
        bad_name.name = "a/b".into();
        assert!(read_function("a/b", stored(&bad_name)).is_err());
        let mut empty = good;
        empty.body = Bytes::new();
        assert!(read_function("f", stored(&empty)).is_err());
    }

    #[test]
    fn call_options_are_bounded() {
        use super::super::limits::{MAX_CALL_TIMEOUT_MS, MAX_RETRIES};
        use super::super::CallOptions;
        let ok = CallOptions {
            timeout_ms: Some(MAX_CALL_TIMEOUT_MS),
            retries: Some(MAX_RETRIES),
            retry_errors: Some(true),
        };
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(CallOptions::default().check(), Ok(()));
        for bad in [
            CallOptions {
                timeout_ms: Some(0),
                ..ok
            },
            CallOptions {
                timeout_ms: Some(MAX_CALL_TIMEOUT_MS + 1),
                ..ok
            },
            CallOptions {
                retries: Some(MAX_RETRIES + 1),
                ..ok
            },
        ] {
            assert!(
                matches!(bad.check(), Err(FunctionError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn platform_keys_are_reserved() {
        for p in [FUNCTION_PREFIX, DAG_PREFIX, RESULT_PREFIX] {
            assert!(p.starts_with(RESERVED_PREFIX) && p.len() > RESERVED_PREFIX.len());
        }
        assert_eq!(RESERVED_PREFIX, "__cloudburst/");
        assert!(function_key("f").is_reserved() && !Key::new("__cloudburstx").is_reserved());
        let k = result_key(CallId(0xab));
        assert_eq!(k.as_str(), "__cloudburst/results/call-00000000000000ab");
    }
}
