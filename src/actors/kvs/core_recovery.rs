//! Loading a shard from its log and snapshot, and reading it for a snapshot.

use super::{validate_key, ShardCore, Stored};
use crate::actors::kvs::messages::KvsError;
use crate::ids::Key;
use crate::lattice::LatticeValue;

/// Recovery and snapshots (the durable side in `durable.rs`): loading what the log holds,
/// and reading the store without counting it as access.
impl<S: Ord + Clone, P: Ord + Clone> ShardCore<S, P> {
    /// Merge a value read back from this shard's log or snapshot. It was accepted once, so
    /// no size limit applies (the limit may have been lowered since); the key and kind are
    /// still checked (a record that passes its checksum is still input from a file). Not
    /// counted, not gossiped, not pushed.
    pub fn restore(&mut self, key: Key, value: LatticeValue) -> Result<(), KvsError> {
        validate_key(&key)?;
        match self.store.get_mut(&key) {
            Some(stored) => {
                stored.merge(&key, value, &mut self.bytes)?;
            }
            None => {
                let size = value.size_bytes();
                self.bytes += size;
                self.store.insert(key.clone(), Stored::new(value, size, 0));
            }
        }
        self.after_change(&key);
        Ok(())
    }

    /// Drop a key the log says this shard handed off (or collected).
    pub fn forget(&mut self, key: &Key) {
        if let Some(s) = self.store.remove(key) {
            self.bytes = self.bytes.saturating_sub(s.size);
        }
        self.deletes.removed(key);
    }

    /// Every stored key, in no order.
    pub fn keys(&self) -> Vec<Key> {
        self.store.keys().cloned().collect()
    }

    /// The value of `key` without counting a read.
    pub fn peek(&self, key: &Key) -> Option<&LatticeValue> {
        self.store.get(key).map(|s| &s.value)
    }

    /// Bytes of stored values.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}
