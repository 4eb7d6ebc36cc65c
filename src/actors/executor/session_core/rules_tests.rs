//! The session's rules, one test each, with no cache, KVS or transport: the core is fed
//! what a cache or the KVS would have returned. A property test drives it with random
//! histories and checks what the Python consistency checker checks.

use super::*;
use crate::ids::{Generation, NodeId, NodeRef};
use crate::lattice::{Dependencies, Lww, MultiKeyCausal, Timestamp};
use bytes::Bytes;
use std::collections::HashMap;

const ME: WriterId = WriterId(10);
const OTHER: WriterId = WriterId(20);
const HORIZON: Duration = Duration::from_secs(10);
/// "Now", in µs: far enough from 0 that a write before the horizon has a time.
const NOW: u64 = 1_000_000_000;

/// A cache's content, as the session may look at it.
#[derive(Default)]
struct View(HashMap<Key, LatticeValue>);

impl LocalView for View {
    fn held_version(&self, key: &Key, fp: u64) -> Option<LatticeValue> {
        self.0
            .get(key)
            .filter(|v| fingerprint(Some(v)) == fp)
            .cloned()
    }
    fn held_clock(&self, key: &Key) -> Option<VectorClock> {
        self.0.get(key).map(|v| clock_of(Some(v)))
    }
}

fn view(held: &[(&str, &Option<LatticeValue>)]) -> View {
    View(
        held.iter()
            .filter_map(|(k, v)| Some((Key::new(*k), (*v).clone()?)))
            .collect(),
    )
}

fn k(name: &str) -> Key {
    Key::new(name)
}

fn lww(time: u64, v: &'static str) -> Option<LatticeValue> {
    Some(LatticeValue::Lww(Lww::new(
        Timestamp::new(time, WriterId(7)),
        Bytes::from_static(v.as_bytes()),
    )))
}

/// A clock of `dots` written at `time` (µs).
fn clock(dots: &[(WriterId, u64)], time: u64) -> VectorClock {
    let mut c = VectorClock::new();
    for &(w, n) in dots {
        c.insert_dot(w, n);
    }
    c.advance_to(WRITE_TIME, time);
    c
}

fn causal(c: VectorClock, deps: &[(&str, VectorClock)], v: &'static str) -> Option<LatticeValue> {
    let deps: Dependencies = deps
        .iter()
        .map(|(k, c)| (Key::new(*k), c.clone()))
        .collect();
    Some(LatticeValue::MultiKeyCausal(MultiKeyCausal::new(
        c,
        deps,
        Bytes::from_static(v.as_bytes()),
    )))
}

fn core(meta: SessionMeta) -> SessionCore {
    SessionCore::new(meta, ME, HORIZON)
}

fn pinned(pins: &[(&str, u64)]) -> SessionMeta {
    SessionMeta {
        pinned: pins.iter().map(|(k, fp)| (Key::new(*k), *fp)).collect(),
        ..SessionMeta::default()
    }
}

fn depending(deps: &[(&str, VectorClock)]) -> SessionMeta {
    SessionMeta {
        deps: deps
            .iter()
            .map(|(k, c)| (Key::new(*k), c.clone()))
            .collect(),
        ..SessionMeta::default()
    }
}

#[test]
fn fingerprints_name_versions() {
    assert_eq!(fingerprint(None), 0, "missing");
    assert_eq!(
        fingerprint(lww(1, "a").as_ref()),
        fingerprint(lww(1, "a").as_ref())
    );
    assert_ne!(
        fingerprint(lww(1, "a").as_ref()),
        fingerprint(lww(2, "a").as_ref())
    );
    assert_ne!(fingerprint(lww(1, "a").as_ref()), 0);
    let c = || clock(&[(WriterId(3), 1)], 0);
    assert_ne!(
        fingerprint(causal(c(), &[], "a").as_ref()),
        fingerprint(causal(c(), &[], "b").as_ref())
    );
    assert_eq!(
        fingerprint(causal(c(), &[], "a").as_ref()),
        fingerprint(causal(c(), &[], "a").as_ref())
    );
}

#[test]
fn causal_writers_are_stable_and_never_reserved() {
    let node = |g| NodeRef {
        id: NodeId::new("n1"),
        generation: Generation(g),
    };
    assert_eq!(
        causal_writer(&node(1)),
        causal_writer(&node(2)),
        "restarts keep it"
    );
    let w = causal_writer(&node(1));
    assert!(w != crate::lattice::BASE && w != WRITE_TIME);
}

#[test]
fn first_pin_wins() {
    let mut s = core(SessionMeta::default());
    s.pinned_here(&[k("a")], &[lww(1, "first")]);
    s.pinned_here(&[k("a")], &[lww(2, "second")]);
    assert_eq!(
        s.meta().pinned[&k("a")],
        fingerprint(lww(1, "first").as_ref())
    );
    // Downstream, the local copy of the second version is not served: the first is fetched.
    let mut down = core(s.meta().clone());
    let held = lww(2, "second");
    let (_, step) = down.read_pinned(vec![k("a")], &view(&[("a", &held)]));
    assert_eq!(step, ReadStep::FetchPinned(vec![k("a")]));
}

#[test]
fn absence_is_pinned() {
    let mut s = core(SessionMeta::default());
    s.pinned_here(&[k("a")], &[None]);
    assert_eq!(s.meta().pinned[&k("a")], 0);
    // Written since: a downstream read still sees it missing, without asking the home.
    let mut down = core(s.meta().clone());
    let held = lww(5, "later");
    let (_, step) = down.read_pinned(vec![k("a")], &view(&[("a", &held)]));
    assert_eq!(step, ReadStep::Serve(vec![None]));
}

#[test]
fn downstream_serves_local_copy_only_when_fingerprint_matches() {
    let meta = pinned(&[("a", fingerprint(lww(1, "pinned").as_ref()))]);
    let same = lww(1, "pinned");
    let (_, step) = core(meta.clone()).read_pinned(vec![k("a")], &view(&[("a", &same)]));
    assert_eq!(step, ReadStep::Serve(vec![same.clone()]));

    let newer = lww(2, "newer");
    let mut s = core(meta);
    let v = view(&[("a", &newer)]);
    let (mut read, step) = s.read_pinned(vec![k("a")], &v);
    assert_eq!(step, ReadStep::FetchPinned(vec![k("a")]), "never the KVS");
    let step = s.feed(&mut read, vec![same.clone()], &v, NOW).unwrap();
    assert_eq!(step, ReadStep::Serve(vec![same]));
}

#[test]
fn a_first_read_downstream_pins_what_the_home_returns() {
    let mut s = core(SessionMeta::default());
    let v = View::default();
    let (mut read, step) = s.read_pinned(vec![k("a"), k("b")], &v);
    assert_eq!(step, ReadStep::FetchPinned(vec![k("a"), k("b")]));
    let answer = vec![lww(3, "a"), None];
    let step = s.feed(&mut read, answer.clone(), &v, NOW).unwrap();
    assert_eq!(step, ReadStep::Serve(answer));
    assert_eq!(s.meta().pinned[&k("a")], fingerprint(lww(3, "a").as_ref()));
    assert_eq!(s.meta().pinned[&k("b")], 0);
}

#[test]
fn expired_pin_fails() {
    let meta = pinned(&[("a", fingerprint(lww(1, "pinned").as_ref()))]);
    let mut s = core(meta);
    let v = View::default();
    let (mut read, _) = s.read_pinned(vec![k("a")], &v);
    let e = s
        .feed(&mut read, vec![lww(2, "other")], &v, NOW)
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SessionExpired);
    let (mut read, _) = s.read_pinned(vec![k("a")], &v);
    let e = s.feed(&mut read, vec![], &v, NOW).unwrap_err();
    assert_eq!(
        e.code,
        ErrorCode::InternalError,
        "an answer of another length"
    );
}

#[test]
fn session_order_forces_a_reread() {
    let saw = clock(&[(OTHER, 2)], NOW);
    let mut s = core(depending(&[("a", saw.clone())]));
    let old = causal(clock(&[(OTHER, 1)], NOW), &[], "old");
    let v = view(&[("a", &old)]);
    let (mut read, step) = s.read_causal(vec![k("a")], vec![old], &v, NOW);
    assert_eq!(step, ReadStep::ReadKvs(vec![k("a")]));
    let fresh = causal(saw, &[], "fresh");
    let step = s.feed(&mut read, vec![fresh.clone()], &v, NOW).unwrap();
    assert_eq!(step, ReadStep::Serve(vec![fresh.clone()]));
    // A cached version that covers the session's past is served as it is.
    let (_, step) = s.read_causal(vec![k("a")], vec![fresh.clone()], &v, NOW);
    assert_eq!(step, ReadStep::Serve(vec![fresh]));
}

#[test]
fn store_behind_the_session_fails() {
    let mut s = core(depending(&[("a", clock(&[(OTHER, 2)], NOW))]));
    let old = causal(clock(&[(OTHER, 1)], NOW), &[], "old");
    let v = View::default();
    let (mut read, _) = s.read_causal(vec![k("a")], vec![old.clone()], &v, NOW);
    let e = s.feed(&mut read, vec![old], &v, NOW).unwrap_err();
    assert_eq!(e.code, ErrorCode::StorageError);
}

#[test]
fn causal_cut_refreshes_older_dependencies() {
    let dep = clock(&[(OTHER, 3)], NOW);
    let a = causal(clock(&[(OTHER, 1)], NOW), &[("d", dep.clone())], "a");
    // The cache holds `d` older than `a` depends on: refreshed before the read returns.
    let held_d = causal(clock(&[(OTHER, 2)], NOW), &[], "d2");
    let v = view(&[("d", &held_d)]);
    let mut s = core(SessionMeta::default());
    let (mut read, step) = s.read_causal(vec![k("a")], vec![a.clone()], &v, NOW);
    assert_eq!(step, ReadStep::ReadKvs(vec![k("d")]));
    assert!(
        s.meta().deps.get(&k("d")).unwrap().covers(&dep),
        "joins the session"
    );
    let step = s.feed(&mut read, vec![None], &v, NOW).unwrap();
    assert_eq!(step, ReadStep::Serve(vec![a.clone()]));
    // A later read of `d` now has to cover it.
    let (_, step) = s.read_causal(vec![k("d")], vec![held_d.clone()], &v, NOW);
    assert_eq!(step, ReadStep::ReadKvs(vec![k("d")]));
    // Held up to date, or not held at all: nothing to refresh.
    let fresh_d = causal(dep, &[], "d3");
    for held in [view(&[("d", &fresh_d)]), View::default()] {
        let (_, step) =
            core(SessionMeta::default()).read_causal(vec![k("a")], vec![a.clone()], &held, NOW);
        assert_eq!(step, ReadStep::Serve(vec![a.clone()]));
    }
}

#[test]
fn dependencies_past_the_horizon_are_pruned() {
    let long_ago = NOW - 2 * HORIZON.as_micros() as u64;
    let old = clock(&[(OTHER, 1)], long_ago);
    let recent = clock(&[(OTHER, 1)], NOW);
    assert_eq!(prune(&depending(&[("x", old.clone())]).deps, 0).len(), 1);
    let mut s = core(depending(&[("old", old.clone()), ("new", recent.clone())]));
    // A read's expired dependency is neither refreshed nor joined.
    let a = causal(clock(&[(OTHER, 5)], NOW), &[("gone", old.clone())], "a");
    let held = causal(VectorClock::new(), &[], "stale");
    let v = view(&[("gone", &held)]);
    let (_, step) = s.read_causal(vec![k("a")], vec![a.clone()], &v, NOW);
    assert_eq!(step, ReadStep::Serve(vec![a]));
    let keys: Vec<&str> = s.meta().deps.keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, vec!["a", "new"]);
    // A write carries only the recent ones.
    let mut dots = DotTable::default();
    dots.next(&k("w"), 0);
    let WriteStep::Write { value, .. } = s.write_causal(k("w"), "v".into(), &v, &mut dots, NOW)
    else {
        panic!("the table knows `w`: no KVS read");
    };
    let LatticeValue::MultiKeyCausal(m) = value else {
        panic!("a causal write")
    };
    assert_eq!(m.dependencies().len(), 2);
    let later = NOW + 2 * HORIZON.as_micros() as u64;
    let WriteStep::Write { value, .. } = s.write_causal(k("w"), "v".into(), &v, &mut dots, later)
    else {
        panic!("no KVS read")
    };
    let LatticeValue::MultiKeyCausal(m) = value else {
        panic!("a causal write")
    };
    assert!(m.dependencies().is_empty());
}

/// Write `bytes` under `key` in session `s` with the table knowing the key.
fn write(s: &mut SessionCore, key: &str, bytes: &'static str) -> (LatticeValue, VectorClock) {
    let mut dots = DotTable::default();
    dots.next(&k(key), 100);
    match s.write_causal(k(key), bytes.into(), &View::default(), &mut dots, NOW) {
        WriteStep::Write { key, value, clock } => {
            s.wrote(key, clock.clone());
            (value, clock)
        }
        WriteStep::ReadKvs(_) => panic!("the table knows the key"),
    }
}

#[test]
fn write_supersedes_what_the_session_saw() {
    let seen = causal(clock(&[(OTHER, 1)], NOW), &[], "seen");
    let unseen = causal(clock(&[(OTHER, 2)], NOW), &[], "unseen");
    let mut s = core(SessionMeta::default());
    let (_, step) = s.read_causal(vec![k("a")], vec![seen.clone()], &View::default(), NOW);
    assert_eq!(step, ReadStep::Serve(vec![seen.clone()]));
    let (written, wclock) = write(&mut s, "a", "mine");
    assert!(wclock.covers(&clock_of(seen.as_ref())));
    assert!(!wclock.covers(&clock_of(unseen.as_ref())));
    assert_eq!(wclock.max_dot(ME), 102, "above the table's last dot");
    let mut stored = seen.unwrap();
    stored.merge(written.clone()).unwrap();
    assert_eq!(stored, written, "the version read is replaced");
    // The session's past now includes its own write.
    assert!(s.meta().deps.get(&k("a")).unwrap().covers(&wclock));
}

#[test]
fn concurrent_versions_are_kept() {
    // A blind write (nothing read of `a`) and another session's write: both kept.
    let theirs = causal(clock(&[(OTHER, 1)], NOW), &[], "theirs");
    let (mine, _) = write(&mut core(SessionMeta::default()), "a", "mine");
    let mut stored = theirs.unwrap();
    stored.merge(mine).unwrap();
    let LatticeValue::MultiKeyCausal(m) = &stored else {
        panic!("causal")
    };
    assert_eq!(m.versions().len(), 2);
    // A read returns both.
    let (_, step) = core(SessionMeta::default()).read_causal(
        vec![k("a")],
        vec![Some(stored.clone())],
        &View::default(),
        NOW,
    );
    assert_eq!(step, ReadStep::Serve(vec![Some(stored)]));
}

#[test]
fn first_write_since_start_reads_the_store() {
    let s = core(SessionMeta::default());
    let mut dots = DotTable::default();
    let v = View::default();
    let step = s.write_causal(k("a"), "v".into(), &v, &mut dots, NOW);
    let WriteStep::ReadKvs(pending) = step else {
        panic!("a first write asks the KVS")
    };
    assert_eq!(pending.key(), &k("a"));
    let stored = causal(clock(&[(ME, 7)], NOW), &[], "before the restart");
    let WriteStep::Write { clock, .. } = s.feed_write(pending, stored.as_ref(), &mut dots, NOW)
    else {
        panic!("then writes")
    };
    assert_eq!(clock.max_dot(ME), 8, "continues the numbering");
    // Known now; a held copy with a higher dot of this node is respected too.
    let held = causal(clock_with_dot(20), &[], "held");
    let step = s.write_causal(k("a"), "v".into(), &view(&[("a", &held)]), &mut dots, NOW);
    let WriteStep::Write { clock, .. } = step else {
        panic!("no KVS read once known")
    };
    assert_eq!(clock.max_dot(ME), 21);
}

fn clock_with_dot(n: u64) -> VectorClock {
    clock(&[(ME, n)], NOW)
}

#[test]
fn dot_table_counts_above_what_is_known() {
    let mut t = DotTable::default();
    assert!(!t.knows(&k("a")));
    assert_eq!(t.next(&k("a"), 0), 1);
    assert_eq!(t.next(&k("a"), 0), 2);
    assert_eq!(t.next(&k("a"), 9), 10);
    assert!(t.knows(&k("a")) && !t.knows(&k("b")));
}

#[test]
fn dot_table_past_its_bound_forgets_only_settled_keys() {
    let mut t = DotTable::with_max_keys(2);
    t.next(&k("a"), 0);
    t.settled(&k("a"));
    t.next(&k("b"), 0); // in flight
    t.next(&k("c"), 0);
    assert!(!t.knows(&k("a")), "settled: forgotten");
    assert!(t.knows(&k("b")), "in flight: kept");
    assert!(t.knows(&k("c")));
}

/// Carry a causal write through, the KVS holding `stored` of its key.
fn write_through(
    s: &SessionCore,
    key: &str,
    dots: &mut DotTable,
    stored: &Option<LatticeValue>,
) -> (bool, LatticeValue, VectorClock) {
    let mut read_kvs = false;
    let mut step = s.write_causal(k(key), "v".into(), &View::default(), dots, NOW);
    loop {
        match step {
            WriteStep::Write { value, clock, .. } => return (read_kvs, value, clock),
            WriteStep::ReadKvs(pending) => {
                read_kvs = true;
                step = s.feed_write(pending, stored.as_ref(), dots, NOW);
            }
        }
    }
}

#[test]
fn a_key_forgotten_past_the_bound_continues_its_numbering_from_the_store() {
    let mut dots = DotTable::with_max_keys(1);
    let mut s = core(SessionMeta::default());
    let (_, first, c1) = write_through(&s, "a", &mut dots, &None);
    dots.settled(&k("a"));
    s.wrote(k("a"), c1.clone());
    write_through(&s, "b", &mut dots, &None);
    dots.settled(&k("b"));
    assert!(!dots.knows(&k("a")), "the table overflowed");
    // The next write of `a` reads the store: its dot follows the first, and it supersedes
    // it, so a causal read that has seen it is served a copy that covers the first.
    let (read_kvs, second, c2) = write_through(&s, "a", &mut dots, &Some(first.clone()));
    assert!(read_kvs);
    assert_eq!((c1.max_dot(ME), c2.max_dot(ME)), (1, 2));
    assert!(c2.dominates(&c1));
    let mut stored = first;
    stored.merge(second.clone()).unwrap();
    assert_eq!(stored, second, "the first version is replaced");
}

#[test]
fn a_key_with_a_write_in_flight_keeps_its_dot_past_the_bound() {
    // Session 1 has a dot for `a`, its put not yet stored; other keys overflow the table;
    // session 2 writes `a` while the store still lacks session 1's write.
    let mut dots = DotTable::with_max_keys(1);
    let (one, two) = (core(SessionMeta::default()), core(SessionMeta::default()));
    let (_, _, c1) = write_through(&one, "a", &mut dots, &None);
    write_through(&two, "b", &mut dots, &None);
    dots.settled(&k("b"));
    write_through(&two, "c", &mut dots, &None);
    let (_, _, c2) = write_through(&two, "a", &mut dots, &None);
    assert_ne!(c1, c2, "two writes with one clock could not be told apart");
    assert_eq!(c2.max_dot(ME), 2);
}

#[path = "histories_tests.rs"]
mod histories;
