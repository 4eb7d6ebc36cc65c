use super::*;
use crate::ids::Key;
use crate::lattice::{LatticeValue, Max, SetUnion};
use crate::storage::files;
use crate::storage::fs::Fs;
use crate::storage::log::tests::{apply, opts, start, state, DIR};
use crate::storage::record::{encode, header};
use crate::storage::sim::SimFs;
use crate::storage::Durability;
use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn max(n: i64) -> LatticeValue {
    LatticeValue::Max(Max::new(n))
}

fn write_file(fs: &SimFs, path: &Path, magic: [u8; 8], records: &[Record]) {
    let mut buf = header(magic).to_vec();
    for r in records {
        encode(r, &mut buf).unwrap();
    }
    fs.create_dir_all(Path::new(DIR)).unwrap();
    let mut f = fs.create(path).unwrap();
    f.append(&buf).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(Path::new(DIR)).unwrap();
}

fn put(k: &str, v: LatticeValue) -> Record {
    Record::Put {
        key: Key::new(k),
        value: v,
    }
}

#[test]
fn a_torn_tail_is_cut_and_the_next_recovery_is_clean() {
    for torn in [1, 5, 9, 13, 40] {
        let fs = SimFs::new();
        let (log, _) = start(&fs, opts(Durability::Always));
        log.put(Key::new("synced"), max(1));
        log.sync_point().unwrap().blocking_recv().unwrap().unwrap();
        let mut o = opts(Durability::Interval);
        o.flush_interval = std::time::Duration::from_secs(3600);
        log.close();
        // A second run that never syncs: its records are the unsynced tail.
        let (log, _) = start(&fs, o);
        log.put(Key::new("volatile"), max(2));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while log
            .counters()
            .records
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let cut = fs.power_loss(torn);
        log.close();
        let (got, rec) = state(&cut);
        assert_eq!(got.get(&Key::new("synced")), Some(&max(1)), "torn {torn}");
        assert!(rec.torn.is_some() || got.len() == 2, "torn {torn}: {rec:?}");
        let (again, rec2) = state(&cut);
        assert_eq!(
            rec2.torn, None,
            "torn {torn}: the first recovery cut the tail"
        );
        assert_eq!(again, got);
    }
}

#[test]
fn a_bad_record_before_the_last_segment_is_corruption() {
    let fs = SimFs::new();
    let dir = Path::new(DIR);
    write_file(
        &fs,
        &files::segment(dir, 1),
        SEGMENT_MAGIC,
        &[put("a", max(1))],
    );
    write_file(
        &fs,
        &files::segment(dir, 2),
        SEGMENT_MAGIC,
        &[put("b", max(2))],
    );
    assert!(fs.flip_byte(&files::segment(dir, 1), HEADER_BYTES + 10));
    let err = recover(&fs, dir, &mut |_| {}).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("seg-00000000000000000001.log"),
        "{err}"
    );
}

#[test]
fn an_incomplete_snapshot_is_refused_and_leftovers_are_cleaned() {
    let fs = SimFs::new();
    let dir = Path::new(DIR);
    write_file(
        &fs,
        &files::snapshot(dir, 3),
        SNAPSHOT_MAGIC,
        &[put("a", max(1))],
    );
    let err = recover(&fs, dir, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("no end record"), "{err}");

    let fs = SimFs::new();
    let snap = [put("a", max(1)), Record::End { count: 1 }];
    write_file(&fs, &files::snapshot(dir, 3), SNAPSHOT_MAGIC, &snap);
    write_file(&fs, &files::snapshot(dir, 1), SNAPSHOT_MAGIC, &snap);
    write_file(
        &fs,
        &files::segment(dir, 2),
        SEGMENT_MAGIC,
        &[put("old", max(0))],
    );
    write_file(
        &fs,
        &files::segment(dir, 4),
        SEGMENT_MAGIC,
        &[put("b", max(2))],
    );
    write_file(&fs, &files::snapshot_temp(dir, 5), SNAPSHOT_MAGIC, &[]);
    let (got, rec) = state(&fs);
    assert_eq!(
        got.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        (rec.snapshot, rec.segments, rec.next_segment),
        (Some(3), 1, 5)
    );
    let left = files::Listing::of(&fs, dir).unwrap();
    assert_eq!((left.snapshots, left.segments), (vec![3], vec![4]));
    assert!(left.temps.is_empty());
}

/// One change of a random history: keys 0..3 hold Max counters, 3..6 sets.
#[derive(Clone, Debug)]
enum Change {
    Put(u8, i64),
    Forget(u8),
}

fn record(c: &Change) -> Record {
    match *c {
        Change::Put(k, n) if k < 3 => put(&format!("k{k}"), max(n)),
        Change::Put(k, n) => put(
            &format!("k{k}"),
            LatticeValue::SetUnion(SetUnion::from_iter([Bytes::from(n.to_string())])),
        ),
        Change::Forget(k) => Record::Forget {
            key: Key::new(format!("k{k}")),
        },
    }
}

fn arb_change() -> impl Strategy<Value = Change> {
    prop_oneof![
        6 => (0u8..6, 0i64..20).prop_map(|(k, n)| Change::Put(k, n)),
        1 => (0u8..6).prop_map(Change::Forget),
    ]
}

fn fold(records: impl IntoIterator<Item = Record>) -> BTreeMap<Key, LatticeValue> {
    let mut s = BTreeMap::new();
    records.into_iter().for_each(|r| apply(&mut s, r));
    s
}

proptest! {
    /// A snapshot started after `rotate` changes takes each key's value at a later moment
    /// of its own (writes go on meanwhile); recovering it and the segment after it gives
    /// the state of the whole history, and replaying that segment a second time changes
    /// nothing.
    #[test]
    fn replay_over_a_fuzzy_snapshot_is_exact_and_idempotent(
        history in prop::collection::vec(arb_change(), 0..60),
        rotate_at in any::<prop::sample::Index>(),
        taken_at in prop::collection::vec(any::<prop::sample::Index>(), 6),
    ) {
        let records: Vec<Record> = history.iter().map(record).collect();
        let r = rotate_at.index(records.len() + 1);
        let at_rotation = fold(records[..r].iter().cloned());
        let mut snap = Vec::new();
        for (i, key) in at_rotation.keys().enumerate() {
            let t = r + taken_at[i % taken_at.len()].index(records.len() - r + 1);
            if let Some(v) = fold(records[..t].iter().cloned()).get(key) {
                snap.push(Record::Put { key: key.clone(), value: v.clone() });
            }
        }
        snap.push(Record::End { count: snap.len() as u64 });
        let fs = SimFs::new();
        let dir = Path::new(DIR);
        write_file(&fs, &files::segment(dir, 1), SEGMENT_MAGIC, &records[..r]);
        write_file(&fs, &files::snapshot(dir, 1), SNAPSHOT_MAGIC, &snap);
        write_file(&fs, &files::segment(dir, 2), SEGMENT_MAGIC, &records[r..]);
        let whole = fold(records.iter().cloned());
        prop_assert_eq!(&state(&fs).0, &whole);
        write_file(&fs, &files::segment(dir, 3), SEGMENT_MAGIC, &records[r..]);
        prop_assert_eq!(&state(&fs).0, &whole);
    }
}
