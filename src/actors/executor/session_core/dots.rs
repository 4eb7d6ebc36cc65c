//! The causal dots this node gives, shared by every session of the node.

use crate::ids::Key;
use std::collections::HashMap;

/// Keys whose last causal dot an executor remembers, at most.
pub const MAX_CAUSAL_KEYS: usize = 1 << 20;

/// The last dot this node gave each key it wrote causally, shared by every session of the
/// node. A key it has no entry for (first write since the node started, or after the
/// table was emptied) must find its next dot above what the KVS holds.
#[derive(Debug, Default)]
pub struct DotTable {
    last: HashMap<Key, u64>,
}

impl DotTable {
    /// Whether this node has given `key` a dot since it started.
    pub fn knows(&self, key: &Key) -> bool {
        self.last.contains_key(key)
    }

    /// The next dot of this node for `key`: above the last it gave and above `known`.
    /// Past [`MAX_CAUSAL_KEYS`] keys the table is emptied (each key then costs one KVS
    /// read at its next write).
    pub fn next(&mut self, key: &Key, known: u64) -> u64 {
        if self.last.len() >= MAX_CAUSAL_KEYS && !self.last.contains_key(key) {
            self.last.clear();
        }
        let last = self.last.entry(key.clone()).or_insert(0);
        *last = (*last).max(known).saturating_add(1);
        *last
    }
}
