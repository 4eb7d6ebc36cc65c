//! The function and DAG registry in the KVS: [`FunctionRecord`]s and [`DagSpec`]s are
//! bincode-encoded inside Lww values under [`FUNCTION_PREFIX`] and [`DAG_PREFIX`]. Any
//! scheduler or executor reads them through a [`StateAccess`].
//!
//! Lattices cannot forget a key, so a delete writes a newer Lww value with an empty payload
//! (a tombstone); reads and listings treat it as absent.

use super::messages::{DagSpec, FunctionError, FunctionRecord, DAG_PREFIX, FUNCTION_PREFIX};
use super::messages::{Listing, RESULT_PREFIX};
use crate::actors::cache::StateAccess;
use crate::actors::kvs::{KvsClient, KvsError};
use crate::clock::LwwClock;
use crate::ids::{hash64, CallId, Key};
use crate::lattice::{LatticeValue, Lww};
use crate::pyrt::FunctionKind;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest registry entry decoded (memory a corrupt entry could make a decoder claim). The
/// KVS refuses larger values anyway (`kvs.max_value_bytes`).
pub const MAX_ENTRY_BYTES: usize = 256 << 20;

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

fn storage(e: KvsError) -> FunctionError {
    FunctionError::Storage(e.to_string())
}

fn encode<T: Serialize>(v: &T) -> Result<Bytes, FunctionError> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
        .map(Bytes::from)
        .map_err(|e| FunctionError::Storage(format!("cannot encode registry entry: {e}")))
}

fn decode<T: DeserializeOwned>(key: &Key, b: &[u8]) -> Result<T, FunctionError> {
    let cfg = bincode::config::standard().with_limit::<MAX_ENTRY_BYTES>();
    bincode::serde::decode_from_slice::<T, _>(b, cfg)
        .map(|(v, _)| v)
        .map_err(|e| FunctionError::Storage(format!("corrupt registry entry `{key}`: {e}")))
}

/// Read one entry; `None` when missing or deleted.
async fn load<T: DeserializeOwned>(
    state: &dyn StateAccess,
    key: Key,
) -> Result<Option<T>, FunctionError> {
    let mut got = state.get(vec![key.clone()]).await.map_err(storage)?;
    match got.pop().flatten() {
        None => Ok(None),
        Some(LatticeValue::Lww(l)) if l.value.is_empty() => Ok(None),
        Some(LatticeValue::Lww(l)) => decode(&key, &l.value).map(Some),
        Some(other) => Err(FunctionError::Storage(format!(
            "registry entry `{key}` holds a {} lattice, not lww",
            other.kind()
        ))),
    }
}

async fn store(
    state: &dyn StateAccess,
    clock: &LwwClock,
    key: Key,
    payload: Bytes,
) -> Result<(), FunctionError> {
    let value = LatticeValue::Lww(Lww::new(clock.next(), payload));
    state.put(key, value).await.map_err(storage)
}

/// The function named `name`, if registered.
pub async fn load_function(
    state: &dyn StateAccess,
    name: &str,
) -> Result<Option<FunctionRecord>, FunctionError> {
    load(state, function_key(name)).await
}

/// The DAG named `name`, if registered.
pub async fn load_dag(
    state: &dyn StateAccess,
    name: &str,
) -> Result<Option<DagSpec>, FunctionError> {
    load(state, dag_key(name)).await
}

/// Store (or replace) a function.
pub async fn store_function(
    state: &dyn StateAccess,
    clock: &LwwClock,
    record: &FunctionRecord,
) -> Result<(), FunctionError> {
    store(state, clock, function_key(&record.name), encode(record)?).await
}

/// Store (or replace) a DAG.
pub async fn store_dag(
    state: &dyn StateAccess,
    clock: &LwwClock,
    spec: &DagSpec,
) -> Result<(), FunctionError> {
    store(state, clock, dag_key(&spec.name), encode(spec)?).await
}

/// Delete a DAG (a tombstone); `UnknownDag` if there is none.
pub async fn delete_dag(
    state: &dyn StateAccess,
    clock: &LwwClock,
    name: &str,
) -> Result<(), FunctionError> {
    if load_dag(state, name).await?.is_none() {
        return Err(FunctionError::UnknownDag(name.to_string()));
    }
    store(state, clock, dag_key(name), Bytes::new()).await
}

/// Delete a function (a tombstone); `UnknownFunction` if there is none. DAGs that use it
/// then fail at call time with `unknown_function`.
pub async fn delete_function(
    state: &dyn StateAccess,
    clock: &LwwClock,
    name: &str,
) -> Result<(), FunctionError> {
    if load_function(state, name).await?.is_none() {
        return Err(FunctionError::UnknownFunction(name.to_string()));
    }
    store(state, clock, function_key(name), Bytes::new()).await
}

/// Names of registered (not deleted) functions or DAGs starting with `prefix`, sorted.
pub async fn list(
    kvs: &KvsClient,
    what: Listing,
    prefix: &str,
) -> Result<Vec<String>, FunctionError> {
    let base = match what {
        Listing::Functions => FUNCTION_PREFIX,
        Listing::Dags => DAG_PREFIX,
    };
    let keys = kvs
        .list(&format!("{base}{prefix}"))
        .await
        .map_err(storage)?;
    let values = kvs.get_many(&keys).await.map_err(storage)?;
    Ok(keys
        .iter()
        .zip(values)
        .filter(|(_, v)| matches!(v, Some(LatticeValue::Lww(l)) if !l.value.is_empty()))
        .filter_map(|(k, _)| k.as_str().strip_prefix(base).map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &'static [u8]) -> FunctionRecord {
        FunctionRecord {
            name: "f".into(),
            kind: FunctionKind::Plain,
            body: Bytes::from_static(body),
            python: "3.11".into(),
            cloudpickle: "3.0.0".into(),
            timeout_ms: Some(5),
        }
    }

    #[test]
    fn entries_round_trip_and_hash_follows_the_body() {
        let r = record(b"body");
        let key = function_key("f");
        assert_eq!(key.as_str(), "__cloudburst/functions/f");
        let back: FunctionRecord = decode(&key, &encode(&r).expect("encodes")).expect("decodes");
        assert_eq!(back, r);
        assert_ne!(function_hash(&r), function_hash(&record(b"other")));
        let mut class = r.clone();
        class.kind = FunctionKind::Class;
        assert_ne!(function_hash(&r), function_hash(&class));
        assert!(decode::<FunctionRecord>(&key, b"\xff\xff\xff").is_err());
    }
}
