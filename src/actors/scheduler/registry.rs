//! The function and DAG registry in the KVS: the scheduler stores, deletes and lists
//! [`FunctionRecord`]s and [`DagSpec`]s (their format and keys are
//! [`crate::protocol::records`]); any scheduler reads them through a [`StateAccess`].

use crate::actors::cache::StateAccess;
use crate::actors::kvs::{KvsClient, KvsError};
use crate::clock::LwwClock;
use crate::ids::Key;
use crate::lattice::{LatticeValue, Lww, Tombstone};
use crate::protocol::records::{
    dag_key, encode_entry, function_key, is_live, read_entry, read_function, Entry,
};
use crate::protocol::{
    DagSpec, FunctionError, FunctionRecord, Listing, DAG_PREFIX, FUNCTION_PREFIX,
};
use bytes::Bytes;

fn storage(e: KvsError) -> FunctionError {
    FunctionError::Storage(e.to_string())
}

/// Read one entry; `None` when missing or deleted.
async fn load<T: Entry>(state: &dyn StateAccess, key: Key) -> Result<Option<T>, FunctionError> {
    let mut got = state.get(vec![key.clone()]).await.map_err(storage)?;
    read_entry(&key, got.pop().flatten())
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

/// Delete an entry: a tombstone newer than every write so far from this node's clock.
async fn remove(state: &dyn StateAccess, clock: &LwwClock, key: Key) -> Result<(), FunctionError> {
    let value = LatticeValue::Tombstone(Tombstone::new(clock.next()));
    state.put(key, value).await.map_err(storage)
}

/// The function named `name`, if registered.
pub async fn load_function(
    state: &dyn StateAccess,
    name: &str,
) -> Result<Option<FunctionRecord>, FunctionError> {
    let mut got = state.get(vec![function_key(name)]).await.map_err(storage)?;
    read_function(name, got.pop().flatten())
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
    store(
        state,
        clock,
        function_key(&record.name),
        encode_entry(record)?,
    )
    .await
}

/// Store (or replace) a DAG.
pub async fn store_dag(
    state: &dyn StateAccess,
    clock: &LwwClock,
    spec: &DagSpec,
) -> Result<(), FunctionError> {
    store(state, clock, dag_key(&spec.name), encode_entry(spec)?).await
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
    remove(state, clock, dag_key(name)).await
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
    remove(state, clock, function_key(name)).await
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
        .filter(|(_, v)| is_live(v.as_ref()))
        .filter_map(|(k, _)| k.as_str().strip_prefix(base).map(str::to_string))
        .collect())
}
