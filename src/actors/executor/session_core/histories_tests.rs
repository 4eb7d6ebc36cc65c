//! Random histories: other sessions write, caches lag behind the store, the session
//! reads and writes and hands its metadata downstream. Checked: no two reads of a key in
//! one repeatable-read session differ; no causal read is older than the session's past;
//! after a causal read, the cache holds no dependency new to the session in an older
//! version (the causal cut).

use super::*;
use crate::lattice::Lattice;
use proptest::prelude::*;

const KEYS: usize = 3;

fn key(i: usize) -> Key {
    Key::new(format!("k{}", i % KEYS))
}

#[derive(Debug, Clone)]
enum Op {
    /// Another session writes key `.0` (having read it if `.1`; depending on key `.2`).
    Other(usize, bool, usize),
    /// The current node's cache catches up with the store for a key.
    Sync(usize),
    /// The session reads these keys (at the home, for repeatable read, if `.1`).
    Read(Vec<usize>, bool),
    /// The session writes a key.
    Write(usize),
    /// The next function of the session starts on the other node, with what this one saw.
    Downstream,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..KEYS, any::<bool>(), 0..KEYS).prop_map(|(k, r, d)| Op::Other(k, r, d)),
        2 => (0..KEYS).prop_map(Op::Sync),
        4 => (prop::collection::vec(0..KEYS, 1..=KEYS), any::<bool>())
            .prop_map(|(ks, home)| Op::Read(ks, home)),
        2 => (0..KEYS).prop_map(Op::Write),
        1 => Just(Op::Downstream),
    ]
}

/// The store (the merge of every write) and two nodes' caches of it: `cache` is the
/// one of the node the session's current function runs on.
#[derive(Default)]
struct World {
    store: HashMap<Key, LatticeValue>,
    cache: View,
    elsewhere: View,
    writes: u64,
}

impl World {
    /// The next function runs on the other node.
    fn move_on(&mut self) {
        std::mem::swap(&mut self.cache, &mut self.elsewhere);
    }

    fn put(&mut self, k: Key, v: LatticeValue) {
        match self.store.get_mut(&k) {
            Some(held) => {
                held.merge(v).unwrap();
            }
            None => {
                self.store.insert(k, v);
            }
        }
    }

    /// What a cache refresh returns: the store's copy, now held.
    fn refresh(&mut self, keys: &[Key]) -> Vec<Option<LatticeValue>> {
        keys.iter()
            .map(|k| {
                let v = self.store.get(k).cloned();
                if let Some(v) = &v {
                    self.cache.0.insert(k.clone(), v.clone());
                }
                v
            })
            .collect()
    }

    /// What a cache read returns: what it holds, else the store's copy.
    fn cached(&mut self, keys: &[Key]) -> Vec<Option<LatticeValue>> {
        keys.iter()
            .map(|k| match self.cache.0.get(k) {
                Some(v) => Some(v.clone()),
                None => self.refresh(std::slice::from_ref(k)).pop().flatten(),
            })
            .collect()
    }

    fn other_write(&mut self, k: usize, read: bool, dep: usize) {
        self.writes += 1;
        let mut c = match (read, self.store.get(&key(k))) {
            (true, held) => clock_of(held),
            (false, _) => VectorClock::new(),
        };
        c.insert_dot(OTHER, self.writes);
        c.advance_to(WRITE_TIME, NOW);
        let mut deps = Dependencies::new();
        let dc = clock_of(self.store.get(&key(dep)));
        if dep != k && !dc.is_empty() {
            deps.merge_entry(key(dep), dc);
        }
        let v = MultiKeyCausal::new(c, deps, Bytes::from(vec![k as u8]));
        self.put(key(k), LatticeValue::MultiKeyCausal(v));
    }

    fn other_lww(&mut self, k: usize) {
        self.writes += 1;
        let v = Lww::new(Timestamp::new(self.writes, OTHER), Bytes::from(vec![1]));
        self.store.insert(key(k), LatticeValue::Lww(v));
    }
}

/// Drive a read to its end the way the I/O loop does.
fn finish(
    s: &mut SessionCore,
    w: &mut World,
    pins: &mut HashMap<Key, Option<LatticeValue>>,
    mut read: Read,
    mut step: ReadStep,
) -> Result<Vec<Option<LatticeValue>>, SessionError> {
    loop {
        let answer = match step {
            ReadStep::Serve(values) => return Ok(values),
            ReadStep::ReadKvs(keys) => w.refresh(&keys),
            ReadStep::FetchPinned(keys) => home_read(w, pins, &keys),
        };
        step = s.feed(&mut read, answer, &w.cache, NOW)?;
    }
}

/// The home cache: the session's pins, pinning the store's copy on a first read.
fn home_read(
    w: &World,
    pins: &mut HashMap<Key, Option<LatticeValue>>,
    keys: &[Key],
) -> Vec<Option<LatticeValue>> {
    keys.iter()
        .map(|k| {
            pins.entry(k.clone())
                .or_insert_with(|| w.store.get(k).cloned())
                .clone()
        })
        .collect()
}

proptest! {
    #[test]
    fn repeatable_reads_never_differ(ops in prop::collection::vec(op(), 1..60)) {
        let mut w = World::default();
        let mut pins = HashMap::new();
        let mut s = core(SessionMeta::default());
        let mut first: HashMap<Key, Option<LatticeValue>> = HashMap::new();
        for op in ops {
            match op {
                Op::Other(k, ..) | Op::Write(k) => w.other_lww(k),
                Op::Sync(k) => { w.refresh(&[key(k)]); }
                Op::Downstream => {
                    w.move_on();
                    s = core(s.meta().clone());
                }
                Op::Read(ks, home) => {
                    let keys: Vec<Key> = ks.into_iter().map(key).collect();
                    let values = if home {
                        let values = home_read(&w, &mut pins, &keys);
                        s.pinned_here(&keys, &values);
                        values
                    } else {
                        let (read, step) = s.read_pinned(keys.clone(), &w.cache);
                        finish(&mut s, &mut w, &mut pins, read, step).unwrap()
                    };
                    for (k, v) in keys.into_iter().zip(values) {
                        let was = first.entry(k.clone()).or_insert_with(|| v.clone());
                        prop_assert_eq!(&*was, &v, "two reads of {} differ", k);
                    }
                }
            }
        }
    }

    #[test]
    fn causal_reads_cover_the_session_past(ops in prop::collection::vec(op(), 1..60)) {
        let mut w = World::default();
        // Smaller than the keys: the table overflows and forgets keys.
        let mut dots = DotTable::with_max_keys(KEYS - 1);
        let mut s = core(SessionMeta::default());
        let mut past: HashMap<Key, VectorClock> = HashMap::new();
        for op in ops {
            match op {
                Op::Other(k, read, dep) => w.other_write(k, read, dep),
                Op::Sync(k) => { w.refresh(&[key(k)]); }
                Op::Downstream => {
                    w.move_on();
                    s = core(s.meta().clone());
                }
                Op::Read(ks, _) => {
                    let keys: Vec<Key> = ks.into_iter().map(key).collect();
                    let before = past.clone();
                    let cached = w.cached(&keys);
                    let (read, step) = s.read_causal(keys.clone(), cached, &w.cache, NOW);
                    let values = finish(&mut s, &mut w, &mut HashMap::new(), read, step).unwrap();
                    for (k, v) in keys.iter().zip(&values) {
                        let c = clock_of(v.as_ref());
                        if let Some(need) = past.get(k) {
                            prop_assert!(c.covers(need), "a read of {} older than the session's past", k);
                        }
                        past.entry(k.clone()).or_default().merge(c);
                    }
                    for v in values.iter().flatten() {
                        let LatticeValue::MultiKeyCausal(m) = v else { continue };
                        // Version by version: two concurrent versions' dependencies on a
                        // key, merged, are no version's dependency.
                        for (_, version) in m.versions().iter() {
                            for (dk, dc) in version.dependencies.iter() {
                                // A dependency already in the session's past is left to
                                // the session order (a later read of it re-reads).
                                let known = before.get(dk).is_some_and(|c| c.covers(dc));
                                let held = w.cache.held_clock(dk);
                                prop_assert!(known || held.is_none_or(|h| h.covers(dc)), "{} held older than read", dk);
                                past.entry(dk.clone()).or_default().merge(dc.clone());
                            }
                        }
                    }
                }
                Op::Write(k) => {
                    let mut step = s.write_causal(key(k), "mine".into(), &w.cache, &mut dots, NOW);
                    let (k, value, clock) = loop {
                        match step {
                            WriteStep::Write { key, value, clock } => break (key, value, clock),
                            WriteStep::ReadKvs(pending) => {
                                let stored = w.refresh(std::slice::from_ref(pending.key()));
                                step = s.feed_write(pending, stored[0].as_ref(), &mut dots, NOW);
                            }
                        }
                    };
                    if let Some(need) = past.get(&k) {
                        prop_assert!(clock.covers(need), "a write that misses what the session saw");
                    }
                    w.put(k.clone(), value.clone());
                    w.cache.0.entry(k.clone()).or_insert_with(|| value.clone()).merge(value).unwrap();
                    dots.settled(&k);
                    s.wrote(k.clone(), clock.clone());
                    past.entry(k).or_default().merge(clock);
                }
            }
        }
    }
}
