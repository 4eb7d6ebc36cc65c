//! The cache co-located with each executor node (DESIGN §3): read-through from the KVS,
//! write-through to it, kept fresh by KVS subscriptions.
//!
//! [`StateAccess`] is what executors use to read and write state; the KVS client implements
//! it directly (no caching), the cache implements it with caching.

pub mod messages;

use crate::actors::kvs::{KvsClient, KvsError};
use crate::ids::Key;
use crate::lattice::LatticeValue;
use futures::future::BoxFuture;

/// Reading and writing lattice state, wherever it comes from.
pub trait StateAccess: Send + Sync + 'static {
    /// Values of `keys`, in order; `None` for a missing key.
    fn get(
        &self,
        keys: Vec<Key>,
    ) -> BoxFuture<'static, Result<Vec<Option<LatticeValue>>, KvsError>>;
    /// Merge `value` into `key`; `Ok` once the write is acknowledged by the KVS.
    fn put(&self, key: Key, value: LatticeValue) -> BoxFuture<'static, Result<(), KvsError>>;
}

impl StateAccess for KvsClient {
    fn get(
        &self,
        keys: Vec<Key>,
    ) -> BoxFuture<'static, Result<Vec<Option<LatticeValue>>, KvsError>> {
        let c = self.clone();
        Box::pin(async move { c.get_many(&keys).await })
    }

    fn put(&self, key: Key, value: LatticeValue) -> BoxFuture<'static, Result<(), KvsError>> {
        let c = self.clone();
        Box::pin(async move { c.put(key, value).await })
    }
}
