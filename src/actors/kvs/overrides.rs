//! A node's copy of the monitor's per-key replication overrides (hot keys), with no I/O.
//!
//! Each entry is a last-writer-wins register `(epoch, factor)` ([`ReplicationOverride`]):
//! a merge keeps the higher one, so the table can go down again (a cooled key returns to
//! the default), and stale or repeated messages change nothing. From the registers the node
//! derives what its routing uses for each key, [`KeyReplicas`]:
//!
//! - **writes** (and gossip, hand-off) go to `write` replicas: raised at once when a factor
//!   rises (new writes reach the new replicas; the shards holding the key fill them with
//!   its value), lowered at once when it falls (the other replicas still hold every write);
//! - **reads** choose among `read` replicas: raised only `settle` after a rise (the new
//!   replicas were filled and every node writes to them), lowered at once on a fall;
//! - the copies a fall leaves over are **dropped** only `settle` after it (every node routes
//!   without them by then): [`OverrideTable::due`] names the keys whose shards should hand
//!   them to the remaining replicas and release them.
//!
//! A key whose replicas are all the default is left out of the routing's map, and a node
//! with no override at all gives its routing no map: the common read pays nothing.

use crate::ids::Key;
use crate::protocol::kvs_scaling::MAX_REPLICATION_OVERRIDES;
use crate::protocol::ReplicationOverride;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many replicas routing gives one key (each at least `kvs.replication`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyReplicas {
    pub write: usize,
    pub read: usize,
}

/// The routing's view of the overrides: only keys with more than the default replicas.
pub type OverrideMap = Arc<HashMap<Key, KeyReplicas>>;

#[derive(Clone, Debug)]
struct Entry {
    reg: ReplicationOverride,
    write: usize,
    read: usize,
    /// When reads rise to `write` (after a rise) or the left-over copies go (after a fall).
    due: Option<Instant>,
}

/// What a merge or a tick changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// The routing's map must be rebuilt.
    pub routing: bool,
    /// Keys whose shards should hand them to their current replicas now (fill new ones),
    /// and release the copies they no longer own.
    pub hand_off: Vec<Key>,
}

/// A node's override table.
#[derive(Debug)]
pub struct OverrideTable {
    replication: usize,
    entries: BTreeMap<Key, Entry>,
}

impl OverrideTable {
    /// An empty table for `kvs.replication` = `replication`.
    pub fn new(replication: usize) -> OverrideTable {
        OverrideTable {
            replication: replication.max(1),
            entries: BTreeMap::new(),
        }
    }

    /// Merge the monitor's `entries` at `now`; changes wait `settle` as the module doc says.
    pub fn merge(
        &mut self,
        entries: &[(String, ReplicationOverride)],
        settle: Duration,
        now: Instant,
    ) -> Changed {
        let mut out = Changed::default();
        let base = self.replication;
        for (key, reg) in entries.iter().take(MAX_REPLICATION_OVERRIDES) {
            let key = Key::new(key);
            let factor = (reg.factor as usize).max(base);
            let held = self.entries.get(&key);
            if held.is_some_and(|e| e.reg >= *reg) {
                continue;
            }
            let (write, read) = held.map_or((base, base), |e| (e.write, e.read));
            // A new factor starts the settle time; the same one keeps what is under way.
            let due = match factor != write {
                true => Some(now + settle),
                false => held.and_then(|e| e.due),
            };
            if factor > write {
                out.hand_off.push(key.clone());
            }
            out.routing |= factor != write || read > factor;
            self.entries.insert(
                key,
                Entry {
                    reg: *reg,
                    write: factor,
                    // Reads fall at once, rise when due.
                    read: read.min(factor),
                    due,
                },
            );
        }
        self.bound();
        out
    }

    /// Carry out the changes due at `now`: reads rise to the new replicas, left-over
    /// copies go.
    pub fn tick(&mut self, now: Instant) -> Changed {
        let mut out = Changed::default();
        for (key, e) in &mut self.entries {
            if e.due.is_none_or(|d| d > now) {
                continue;
            }
            e.due = None;
            if e.read < e.write {
                e.read = e.write;
                out.routing = true;
            } else {
                out.hand_off.push(key.clone());
            }
        }
        out
    }

    /// When the next change is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries.values().filter_map(|e| e.due).min()
    }

    /// The registers held, for a monitor taking over (it continues above their epochs).
    pub fn registers(&self) -> Vec<(Key, ReplicationOverride)> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.reg))
            .collect()
    }

    /// What routing uses: the keys with more than the default replicas (None: no key).
    pub fn routing_map(&self) -> Option<OverrideMap> {
        let map: HashMap<Key, KeyReplicas> = self
            .entries
            .iter()
            .filter(|(_, e)| e.write > self.replication || e.read > self.replication)
            .map(|(k, e)| {
                let r = KeyReplicas {
                    write: e.write,
                    read: e.read,
                };
                (k.clone(), r)
            })
            .collect();
        (!map.is_empty()).then(|| Arc::new(map))
    }

    /// At most [`MAX_REPLICATION_OVERRIDES`] entries: settled default ones are forgotten
    /// first (oldest epoch first), as nothing depends on them any more.
    fn bound(&mut self) {
        while self.entries.len() > MAX_REPLICATION_OVERRIDES {
            let base = self.replication;
            let victim = self
                .entries
                .iter()
                .min_by_key(|(_, e)| (e.write > base || e.due.is_some(), e.reg.epoch))
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(2);

    fn reg(key: &str, epoch: u64, factor: u32) -> (String, ReplicationOverride) {
        (key.to_string(), ReplicationOverride { epoch, factor })
    }

    fn replicas(t: &OverrideTable, key: &str) -> Option<KeyReplicas> {
        t.routing_map().and_then(|m| m.get(&Key::new(key)).copied())
    }

    #[test]
    fn a_rise_writes_at_once_and_reads_after_the_settle_time() {
        let now = Instant::now();
        let mut t = OverrideTable::new(1);
        assert!(t.routing_map().is_none(), "no override: no map");
        let c = t.merge(&[reg("hot", 5, 3)], SETTLE, now);
        assert!(c.routing);
        assert_eq!(
            c.hand_off,
            vec![Key::new("hot")],
            "the holders fill the new replicas"
        );
        assert_eq!(replicas(&t, "hot"), Some(KeyReplicas { write: 3, read: 1 }));
        assert_eq!(t.tick(now + SETTLE / 2), Changed::default());
        let c = t.tick(now + SETTLE);
        assert!(c.routing && c.hand_off.is_empty());
        assert_eq!(replicas(&t, "hot"), Some(KeyReplicas { write: 3, read: 3 }));
        assert_eq!(t.next_due(), None);
    }

    #[test]
    fn a_fall_reads_and_writes_the_default_at_once_and_drops_copies_after_the_settle_time() {
        let now = Instant::now();
        let mut t = OverrideTable::new(2);
        t.merge(&[reg("hot", 5, 3)], SETTLE, now);
        t.tick(now + SETTLE);
        let c = t.merge(&[reg("hot", 6, 2)], SETTLE, now + 2 * SETTLE);
        assert!(c.routing && c.hand_off.is_empty());
        assert!(t.routing_map().is_none(), "back to the default everywhere");
        assert!(t.tick(now + 2 * SETTLE).hand_off.is_empty(), "not yet");
        let c = t.tick(now + 3 * SETTLE);
        assert_eq!(c.hand_off, vec![Key::new("hot")], "the extra copies go now");
        assert!(t.tick(now + 4 * SETTLE).hand_off.is_empty(), "once");
    }

    #[test]
    fn stale_and_repeated_registers_change_nothing_and_equal_epochs_take_the_larger_factor() {
        let now = Instant::now();
        let mut t = OverrideTable::new(1);
        t.merge(&[reg("k", 10, 3)], SETTLE, now);
        assert_eq!(t.merge(&[reg("k", 10, 3)], SETTLE, now), Changed::default());
        assert_eq!(t.merge(&[reg("k", 9, 1)], SETTLE, now), Changed::default());
        assert_eq!(replicas(&t, "k").map(|r| r.write), Some(3));
        t.merge(&[reg("k", 10, 2)], SETTLE, now);
        assert_eq!(
            replicas(&t, "k").map(|r| r.write),
            Some(3),
            "(10, 2) < (10, 3)"
        );
        t.merge(&[reg("k", 11, 2)], SETTLE, now);
        assert_eq!(
            replicas(&t, "k").map(|r| r.write),
            Some(2),
            "a higher epoch lowers it"
        );
        assert_eq!(t.registers(), vec![(Key::new("k"), reg("k", 11, 2).1)]);
    }

    #[test]
    fn routing_extends_a_hot_keys_base_replicas_and_reads_the_filled_ones_only() {
        use super::super::routing::{KvsNode, Routing, RoutingTable};
        use crate::ids::{Generation, NodeId, NodeRef};
        let node = |i: u32| KvsNode {
            node: NodeRef {
                id: NodeId::new(format!("127.0.0.1:{}", 7000 + i)),
                generation: Generation(1),
            },
            shards: 2,
        };
        let table = RoutingTable::new(Routing::new((0..4).map(node), 16, 1));
        let (hot, cold) = (Key::new("hot"), Key::new("cold"));
        let base = table.get().replicas(&hot);
        let now = Instant::now();
        let mut t = OverrideTable::new(1);
        t.merge(&[reg("hot", 1, 3)], SETTLE, now);
        table.set_overrides(t.routing_map());
        let r = table.get();
        let all = r.replicas(&hot);
        assert_eq!(
            (all.len(), &all[..1]),
            (3, &base[..]),
            "the base replica comes first"
        );
        assert_eq!(r.read_replicas(&hot), base, "not filled yet: read the base");
        assert_eq!(r.replicas(&cold).len(), 1);
        t.tick(now + SETTLE);
        table.set_overrides(t.routing_map());
        assert_eq!(table.get().read_replicas(&hot), all);
        table.set(Routing::new((0..4).map(node), 16, 1));
        assert_eq!(
            table.get().replicas(&hot),
            all,
            "a view change keeps the overrides"
        );
    }

    #[test]
    fn a_factor_below_the_default_is_the_default_and_the_table_is_bounded() {
        let now = Instant::now();
        let mut t = OverrideTable::new(2);
        let c = t.merge(&[reg("k", 1, 0)], SETTLE, now);
        assert!(!c.routing && c.hand_off.is_empty());
        let many: Vec<_> = (0..MAX_REPLICATION_OVERRIDES + 10)
            .map(|i| reg(&format!("k{i}"), i as u64, 1))
            .collect();
        t.merge(&many, SETTLE, now);
        t.merge(&[reg("hot", 1, 3)], SETTLE, now);
        assert!(t.registers().len() <= MAX_REPLICATION_OVERRIDES);
        assert!(replicas(&t, "hot").is_some(), "a live override is kept");
    }
}
