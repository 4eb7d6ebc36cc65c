//! Deletes survive a restart: tombstones are logged, snapshotted and recovered; a value
//! written after a delete comes back as written after it; a collected tombstone stays
//! gone; an expired value is expired again as it is loaded.

use super::*;
use crate::ids::WriterId;
use crate::lattice::{Lww, SetUnion, Timestamp};
use crate::storage::log::tests::{opts, DIR};
use crate::storage::sim::SimFs;
use crate::storage::Durability;
use bytes::Bytes;
use std::time::{Duration, Instant};

fn ts(t: u64) -> Timestamp {
    Timestamp::new(t, WriterId(1))
}

fn lww(t: u64) -> LatticeValue {
    LatticeValue::Lww(Lww::new(ts(t), Bytes::from_static(b"v")))
}

fn tomb(t: u64) -> LatticeValue {
    LatticeValue::Tombstone(Tombstone::new(ts(t)))
}

fn set(item: &'static str) -> LatticeValue {
    LatticeValue::SetUnion(SetUnion::from_iter([Bytes::from_static(item.as_bytes())]))
}

fn open(fs: &SimFs, snapshot_min_bytes: u64) -> (Core, Durable) {
    let hook: FatalHook = Arc::new(|_| {});
    let mut o = opts(Durability::Always);
    o.snapshot_min_bytes = snapshot_min_bytes;
    let expiry = Some(Expiry {
        prefix: "r/".into(),
        ttl_us: 100,
    });
    let fs: Arc<dyn Fs> = Arc::new(fs.clone());
    let (core, log, _) = open_shard(fs, Path::new(DIR), 1 << 20, expiry, o, hook).expect("opens");
    (core, Durable::new(log))
}

fn synced(d: &Durable) {
    if let Some(rx) = d.sync_point() {
        rx.blocking_recv().expect("answer").expect("synced");
    }
}

fn put(core: &mut Core, d: &Durable, key: &str, value: LatticeValue) {
    put_logged(core, Some(d), Key::new(key), value, Origin::Client).expect("put");
}

/// Writes, deletes, a write after a delete, an expired result, a collected tombstone.
fn history(core: &mut Core, d: &Durable) {
    for (k, v) in [("k", lww(1)), ("s", set("a")), ("gone", lww(1))] {
        put(core, d, k, v);
    }
    for k in ["k", "s", "gone"] {
        put(core, d, k, tomb(2));
    }
    put(core, d, "s", set("b"));
    put(core, d, "r/1", lww(10));
    expire_logged(core, Some(d));
    core.take_gossip(|_| Vec::<ShardAddr>::new());
    let t = Tombstone::new(ts(2));
    assert_eq!(collect_logged(core, Some(d), &[(Key::new("gone"), t)]), 1);
}

fn check(core: &Core) {
    assert_eq!(
        core.peek(&Key::new("k")),
        Some(&tomb(2)),
        "the delete is back"
    );
    let s = core
        .peek(&Key::new("s"))
        .cloned()
        .and_then(LatticeValue::into_live);
    assert_eq!(s, Some(set("b")), "the write after the delete, and only it");
    assert_eq!(
        core.peek(&Key::new("gone")),
        None,
        "a collected key stays gone"
    );
    assert_eq!(
        core.peek(&Key::new("r/1")),
        Some(&tomb(110)),
        "expired again"
    );
    let stats = core.stats(0);
    assert_eq!((stats.keys, stats.tombstones), (3, 2));
}

#[test]
fn deletes_are_logged_and_recovered() {
    let fs = SimFs::new();
    let (mut core, d) = open(&fs, 1 << 30);
    history(&mut core, &d);
    check(&core);
    synced(&d);
    d.log().close();
    let (again, d) = open(&fs.power_loss(0), 1 << 30);
    check(&again);
    d.log().close();
}

/// Rewrites that make the log larger than the store.
const LOG_PADDING: u64 = 200;

#[test]
fn deletes_are_snapshotted_and_recovered() {
    let fs = SimFs::new();
    let (mut core, mut d) = open(&fs, 0);
    // A snapshot is due once the log outgrows the store: rewrites of one key grow only
    // the log (each is later than the last, and earlier than the delete of `history`).
    for writer in 0..LOG_PADDING {
        let v = Lww::new(
            Timestamp::new(1, WriterId(writer)),
            Bytes::from_static(b"v"),
        );
        put(&mut core, &d, "k", LatticeValue::Lww(v));
    }
    history(&mut core, &d);
    // The log counts what it wrote toward the next snapshot once it has written it.
    synced(&d);
    assert!(d.maybe_snapshot(&core), "a snapshot is due");
    loop {
        match d.step(&core) {
            Step::Idle => break,
            Step::Later => std::thread::sleep(Duration::from_millis(1)),
            Step::Again => {}
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while d
        .log()
        .counters()
        .snapshots
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(Instant::now() < deadline, "snapshot never completed");
        std::thread::sleep(Duration::from_millis(5));
    }
    synced(&d);
    d.log().close();
    let recovered = fs.power_loss(0);
    let listing = crate::storage::files::Listing::of(&recovered, Path::new(DIR)).expect("lists");
    assert_eq!(listing.snapshots.len(), 1, "{listing:?}");
    let (again, d) = open(&recovered, 0);
    check(&again);
    d.log().close();
}
