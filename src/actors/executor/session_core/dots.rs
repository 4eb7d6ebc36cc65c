//! The causal dots this node gives, shared by every session of the node.

use crate::ids::Key;
use std::collections::HashMap;

/// Keys whose last causal dot an executor remembers, at most (beyond the keys with a write
/// in flight): a bound on the table's memory, about 64 MiB of short keys. A key forgotten
/// costs one KVS read at its next write.
pub const MAX_CAUSAL_KEYS: usize = 1 << 20;

/// The last dot this node gave each key it wrote causally, shared by every session of the
/// node. A key it has no entry for (first write since the node started, or forgotten past
/// the table's bound) must find its next dot above what the KVS holds, so the table only
/// forgets a key once the KVS has its last dot: each dot [`DotTable::next`] gives is *in
/// flight* until [`DotTable::settled`] says its write finished. (Forgetting a key whose
/// write is still on its way would let a concurrent write read the KVS without it and take
/// the same dot: two writes the clocks could not tell apart.)
#[derive(Debug)]
pub struct DotTable {
    last: HashMap<Key, Entry>,
    max_keys: usize,
}

#[derive(Debug, Default)]
struct Entry {
    /// The last dot given.
    dot: u64,
    /// Writes given a dot whose put has not finished.
    in_flight: u32,
}

impl Default for DotTable {
    fn default() -> Self {
        DotTable::with_max_keys(MAX_CAUSAL_KEYS)
    }
}

impl DotTable {
    /// A table that forgets keys past `max_keys` ([`MAX_CAUSAL_KEYS`] by default).
    pub fn with_max_keys(max_keys: usize) -> Self {
        DotTable {
            last: HashMap::new(),
            max_keys,
        }
    }

    /// Whether this node has given `key` a dot since it started (and not forgotten it).
    pub fn knows(&self, key: &Key) -> bool {
        self.last.contains_key(key)
    }

    /// The next dot of this node for `key`: above the last it gave and above `known`; in
    /// flight until [`DotTable::settled`]. Past the table's bound every key with no write
    /// in flight is forgotten.
    pub fn next(&mut self, key: &Key, known: u64) -> u64 {
        if self.last.len() >= self.max_keys && !self.last.contains_key(key) {
            self.last.retain(|_, e| e.in_flight > 0);
        }
        let e = self.last.entry(key.clone()).or_default();
        e.dot = e.dot.max(known).saturating_add(1);
        e.in_flight = e.in_flight.saturating_add(1);
        e.dot
    }

    /// A write of `key` given a dot has finished: stored, refused or abandoned. (A put that
    /// failed may still reach some replica later; a forgotten key's next dot may then miss
    /// it, as a restarted node's first write may.)
    pub fn settled(&mut self, key: &Key) {
        if let Some(e) = self.last.get_mut(key) {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
    }
}
