use super::*;
use crate::ids::WriterId;
use crate::lattice::{Lww, Max, Timestamp};
use crate::storage::files::Listing;
use crate::storage::recovery::{recover, Recovered};
use crate::storage::sim::SimFs;
use crate::storage::snapshot::Offer;
use crate::storage::Record;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicUsize;

pub(crate) const DIR: &str = "/data/kvs/shard-0";

pub(crate) fn opts(durability: Durability) -> LogOptions {
    LogOptions {
        durability,
        flush_interval: Duration::from_millis(50),
        segment_bytes: 64 << 20,
        snapshot_min_bytes: 1 << 20,
        max_pending_bytes: 64 << 20,
    }
}

fn max(n: i64) -> LatticeValue {
    LatticeValue::Max(Max::new(n))
}

/// The state a directory recovers to (puts merged, forgets applied).
pub(crate) fn state(fs: &SimFs) -> (BTreeMap<Key, LatticeValue>, Recovered) {
    let mut out: BTreeMap<Key, LatticeValue> = BTreeMap::new();
    let rec = recover(fs, Path::new(DIR), &mut |r| apply(&mut out, r)).expect("recovers");
    (out, rec)
}

pub(crate) fn apply(state: &mut BTreeMap<Key, LatticeValue>, r: Record) {
    match r {
        Record::Put { key, value } => match state.get_mut(&key) {
            Some(v) => {
                v.merge(value).expect("same kind");
            }
            None => {
                state.insert(key, value);
            }
        },
        Record::Forget { key } => {
            state.remove(&key);
        }
        Record::End { .. } => {}
    }
}

pub(crate) fn start(fs: &SimFs, o: LogOptions) -> (ShardLog, Arc<AtomicUsize>) {
    let (_, rec) = state(fs);
    let fatal = Arc::new(AtomicUsize::new(0));
    let f = fatal.clone();
    let hook: FatalHook = Arc::new(move |_| {
        f.fetch_add(1, Relaxed);
    });
    let fs: Arc<dyn Fs> = Arc::new(fs.clone());
    let log = ShardLog::start(fs, Path::new(DIR), o, rec.next_segment, rec.log_bytes, hook)
        .expect("starts");
    (log, fatal)
}

fn wait(log: &ShardLog) -> Result<(), StorageError> {
    match log.sync_point() {
        Some(rx) => rx.blocking_recv().unwrap_or(Err(StorageError::Closed)),
        None => Ok(()),
    }
}

#[test]
fn an_acknowledged_write_survives_a_power_loss_in_always_mode() {
    let fs = SimFs::new();
    let (log, _) = start(&fs, opts(Durability::Always));
    log.put(Key::new("a"), max(1));
    wait(&log).expect("synced");
    let (after, _) = state(&fs.power_loss(0));
    assert_eq!(after.get(&Key::new("a")), Some(&max(1)));
    log.close();
}

#[test]
fn concurrent_writers_share_syncs() {
    let fs = SimFs::new();
    fs.set_sync_delay(Duration::from_millis(2));
    let (log, _) = start(&fs, opts(Durability::Always));
    let (writers, each) = (32, 10);
    std::thread::scope(|s| {
        for w in 0..writers {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..each {
                    log.put(Key::new(format!("w{w}-{i}")), max(i));
                    wait(&log).expect("synced");
                }
            });
        }
    });
    let syncs = fs.syncs();
    let writes = (writers * each) as u64;
    assert!(
        syncs * 4 < writes,
        "{syncs} syncs for {writes} acknowledged writes: group commit did not share them"
    );
    let (after, _) = state(&fs.power_loss(0));
    assert_eq!(after.len() as u64, writes);
    log.close();
}

#[test]
fn interval_mode_syncs_on_its_own_within_the_interval() {
    let fs = SimFs::new();
    let (log, _) = start(&fs, opts(Durability::Interval));
    log.put(Key::new("a"), max(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs.syncs() == 0 {
        assert!(Instant::now() < deadline, "never synced");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(state(&fs.power_loss(0)).0.len(), 1);
    log.close();
}

#[test]
fn close_writes_and_syncs_what_is_queued() {
    let fs = SimFs::new();
    let mut o = opts(Durability::Interval);
    o.flush_interval = Duration::from_secs(3600);
    let (log, _) = start(&fs, o);
    for i in 0..100 {
        log.put(Key::new(format!("k{i}")), max(i));
    }
    log.close();
    assert_eq!(state(&fs.power_loss(0)).0.len(), 100);
    assert_eq!(log.admit(), Err(StorageError::Closed));
}

#[test]
fn a_full_disk_refuses_writes_then_recovers_without_a_torn_record() {
    let fs = SimFs::new();
    let (log, fatal) = start(&fs, opts(Durability::Always));
    log.put(Key::new("before"), max(1));
    wait(&log).expect("synced");
    fs.set_capacity(Some(fs.used() + 10));
    log.put(Key::new("big"), max(2));
    let err = wait(&log).unwrap_err();
    assert!(matches!(err, StorageError::DiskFull { .. }), "{err}");
    assert!(matches!(log.admit(), Err(StorageError::DiskFull { .. })));
    assert_eq!(fatal.load(Relaxed), 0, "a full disk does not stop the node");
    fs.set_capacity(None);
    // The queued change is written by the next retry; then writes are admitted again.
    let deadline = Instant::now() + WRITE_RETRY * 5;
    while log.admit().is_err() {
        assert!(Instant::now() < deadline, "never writable again");
        std::thread::sleep(Duration::from_millis(20));
    }
    log.put(Key::new("after"), max(3));
    wait(&log).expect("synced");
    let (after, rec) = state(&fs.power_loss(0));
    assert_eq!(rec.torn, None, "the partial write was cut back");
    assert_eq!(after.len(), 3, "{after:?}");
    log.close();
}

#[test]
fn a_failed_sync_fails_the_write_and_stops_the_log() {
    let fs = SimFs::new();
    let (log, fatal) = start(&fs, opts(Durability::Always));
    log.put(Key::new("a"), max(1));
    wait(&log).expect("synced");
    fs.fail_syncs(1);
    log.put(Key::new("b"), max(2));
    let err = wait(&log).unwrap_err();
    assert!(matches!(err, StorageError::SyncFailed { .. }), "{err}");
    assert_eq!(fatal.load(Relaxed), 1);
    // Final: later syncs would succeed, but nothing is acknowledged any more.
    assert!(matches!(log.admit(), Err(StorageError::SyncFailed { .. })));
    log.put(Key::new("c"), max(3));
    assert!(wait(&log).is_err());
    log.close();
}

#[test]
fn segments_rotate_and_a_snapshot_replaces_them() {
    let fs = SimFs::new();
    let mut o = opts(Durability::Always);
    o.segment_bytes = 256;
    let (log, _) = start(&fs, o);
    let mut model = BTreeMap::new();
    for i in 0..200i64 {
        let (k, v) = (Key::new(format!("k{}", i % 50)), max(i));
        log.put(k.clone(), v.clone());
        apply(&mut model, Record::Put { key: k, value: v });
    }
    wait(&log).expect("synced");
    let dir = Path::new(DIR);
    let before = Listing::of(&fs, dir).unwrap();
    assert!(before.segments.len() > 5, "{before:?}");
    // Snapshot the model while writes go on: the shard feeds its current values.
    let feed = log.begin_snapshot();
    let more = Record::Put {
        key: Key::new("late"),
        value: max(7),
    };
    if let Record::Put { key, value } = more.clone() {
        log.put(key, value);
    }
    apply(&mut model, more);
    let chunk: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(matches!(feed.offer(chunk), Offer::Taken));
    assert!(matches!(feed.finish(), Offer::Taken));
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.counters().snapshots.load(Relaxed) == 0 {
        assert!(Instant::now() < deadline, "snapshot never completed");
        std::thread::sleep(Duration::from_millis(5));
    }
    wait(&log).expect("synced");
    let after = Listing::of(&fs, dir).unwrap();
    assert_eq!(after.snapshots.len(), 1, "{after:?}");
    let covers = after.snapshots[0];
    assert!(after.segments.iter().all(|s| *s > covers), "{after:?}");
    assert!(before.segments.iter().all(|s| *s <= covers));
    let (recovered, rec) = state(&fs.power_loss(0));
    assert_eq!(recovered, model);
    assert_eq!(rec.snapshot, Some(covers));
    log.close();
}

#[test]
fn a_dropped_feed_abandons_the_snapshot_and_keeps_the_log() {
    let fs = SimFs::new();
    let (log, _) = start(&fs, opts(Durability::Always));
    log.put(Key::new("a"), max(1));
    drop(log.begin_snapshot());
    log.put(Key::new("b"), max(2));
    wait(&log).expect("synced");
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.shared.snapshotting.load(Relaxed) {
        assert!(Instant::now() < deadline, "snapshot never abandoned");
        std::thread::sleep(Duration::from_millis(5));
    }
    let listing = Listing::of(&fs, Path::new(DIR)).unwrap();
    assert!(listing.snapshots.is_empty() && listing.temps.is_empty());
    assert_eq!(state(&fs.power_loss(0)).0.len(), 2);
    log.close();
}

#[test]
fn lww_values_are_logged_like_any_other() {
    let fs = SimFs::new();
    let (log, _) = start(&fs, opts(Durability::Always));
    let v = LatticeValue::Lww(Lww::new(Timestamp::new(3, WriterId(1)), &b"x"[..]));
    log.put(Key::new("a"), v.clone());
    log.forget(Key::new("gone"));
    wait(&log).expect("synced");
    assert_eq!(state(&fs.power_loss(0)).0.get(&Key::new("a")), Some(&v));
    log.close();
}
