//! Durable nodes coming back, with real processes:
//!
//! - A KVS node that was killed and restarted on its data directory comes back with
//!   *older* data: values overwritten and keys deleted while it was away. It rejoins its
//!   cluster by the id its directory records (restarted with neither `--join` nor
//!   `--bootstrap`), and once it caught up its own shards hold the newer values, the
//!   deletes and the keys written meanwhile: nothing resurrected, nothing lost. Before the
//!   restart, its directory is recovered in this process to show it really holds the old
//!   state (so the check is not vacuous).
//! - A node's data directory copied while it runs (the procedure of `docs/operations.md`)
//!   restores it: every write acknowledged before the copy started is there.

use crate::transport_support::{client, eventually, view_of, NodeProc, Workdir, CONFIG, SECRET};
use bytes::Bytes;
use cloudburst::actors::kvs::node::{disk, open_shards};
use cloudburst::actors::kvs::{KvsClient, KvsReply, KvsRequest, Routing, RoutingTable};
use cloudburst::config::Config;
use cloudburst::ids::{Key, NodeId, WriterId};
use cloudburst::lattice::{LatticeValue, Lww, Timestamp};
use cloudburst::net::membership::MemberState;
use cloudburst::net::Transport;
use cloudburst::storage::log::FatalHook;
use cloudburst::storage::{DataDir, NodeFile, StorageError};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Keys of each kind the test writes.
const KEYS: u64 = 40;
/// How long catching up may take (hand-off after the routing change).
const CATCH_UP: Duration = Duration::from_secs(30);

fn config() -> String {
    format!("{CONFIG}[kvs]\nreplication = 2\nshards_per_node = 2\ngossip_interval_ms = 20\ndurability = \"always\"\n")
}

fn lww(at: u64, text: &str) -> LatticeValue {
    LatticeValue::Lww(Lww::new(
        Timestamp::new(at, WriterId(1)),
        Bytes::from(text.to_string()),
    ))
}

fn text(v: Option<&LatticeValue>) -> Option<String> {
    match v {
        Some(LatticeValue::Lww(l)) => Some(String::from_utf8_lossy(&l.value).into_owned()),
        Some(LatticeValue::Tombstone(_)) => Some("<deleted>".into()),
        Some(other) => Some(format!("{:?}", other.kind())),
        None => None,
    }
}

fn key(kind: &str, i: u64) -> Key {
    Key::new(format!("{kind}-{i}"))
}

/// A KVS client over the routing `seed` reports, once it holds `nodes` live KVS nodes.
async fn kvs_client(t: &Transport, seed: &NodeProc, nodes: usize, k: usize) -> KvsClient {
    t.connect_hint(&seed.node.id, seed.addr);
    let view = eventually(
        Duration::from_secs(20),
        "the view to hold the kvs nodes",
        || async {
            let v = view_of(t, &seed.node).await.ok()?;
            let live = v.live().filter(|m| m.kvs_shards > 0).count();
            (live == nodes).then_some(v)
        },
    )
    .await;
    for m in view.live() {
        t.connect_hint(&m.node.id, m.addr);
    }
    let vnodes = Config::from_toml(&config())
        .expect("config")
        .kvs
        .virtual_nodes;
    KvsClient::new(
        t.clone(),
        RoutingTable::new(Routing::from_view(&view, vnodes, k)),
    )
}

/// What `node`'s own shards hold for `keys` that it replicates under `routing`.
async fn held_by(
    t: &Transport,
    routing: &Routing,
    node: &NodeId,
    keys: &[Key],
) -> Vec<(Key, Option<String>)> {
    let mut out = Vec::new();
    for k in keys {
        let Some(shard) = routing.replicas(k).into_iter().find(|s| &s.node == node) else {
            continue;
        };
        let Some(actor) = routing.actor(&shard) else {
            continue;
        };
        let req = KvsRequest::Get {
            keys: vec![k.clone()],
        };
        let got = match t.handle::<KvsRequest>(actor).send(req).await {
            Ok(Ok(KvsReply::Values(mut v))) => v.pop().flatten(),
            _ => None,
        };
        out.push((k.clone(), text(got.as_ref())));
    }
    out
}

/// Recover a copy of the data directory `dir` in this process: key -> value text.
async fn recovered(dir: &Path, shards: usize, keys: &[Key]) -> Vec<(Key, Option<String>)> {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_tree(dir, copy.path());
    let _ = std::fs::remove_file(copy.path().join("LOCK"));
    let data = DataDir::open(copy.path()).expect("open the copy");
    let mut cfg = Config::from_toml(&config()).expect("config");
    cfg.node.data_dir = Some(copy.path().to_path_buf());
    cfg.kvs.shards_per_node = shards;
    let ignore: FatalHook = Arc::new(|_: &StorageError| {});
    let mut opened = open_shards(&data, &cfg, disk(), ignore)
        .await
        .expect("recover the copy");
    let mut out = Vec::new();
    for k in keys {
        let v = opened.iter_mut().find_map(|o| o.core.get(k));
        out.push((k.clone(), text(v.as_ref())));
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            // A file a snapshot deletes meanwhile is skipped (a newer snapshot covers it).
            let _ = std::fs::copy(entry.path(), &target);
        }
    }
}

fn node_file(dir: &Path) -> NodeFile {
    let text = std::fs::read_to_string(dir.join("node.json")).expect("node.json");
    serde_json::from_str(&text).expect("node.json parses")
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn kvs_args(dir: &Path) -> Vec<String> {
    ["--roles", "kvs", "--listen", "127.0.0.1:0", "--data-dir"]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.to_string_lossy().into_owned()])
        .collect()
}

#[test]
fn a_node_rejoining_with_older_data_neither_resurrects_nor_loses_writes() {
    let w = Workdir::new();
    std::fs::write(&w.config, config()).expect("config");
    let dirs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| w.dir.path().join(n))
        .collect();
    let args: Vec<Vec<String>> = dirs.iter().map(|d| kvs_args(d)).collect();
    let a = NodeProc::spawn(&w, "a", SECRET, &strs(&args[0]));
    let join = a.addr.to_string();
    let with_join = |i: usize| [strs(&args[i]), vec!["--join", join.as_str()]].concat();
    let b = NodeProc::spawn(&w, "b", SECRET, &with_join(1));
    let mut c = NodeProc::spawn(&w, "c", SECRET, &with_join(2));
    let (kept, doomed, fresh): (Vec<Key>, Vec<Key>, Vec<Key>) = (
        (0..KEYS).map(|i| key("kept", i)).collect(),
        (0..KEYS).map(|i| key("doomed", i)).collect(),
        (0..KEYS).map(|i| key("fresh", i)).collect(),
    );
    crate::transport_support::run(async {
        let t = client(SECRET, "rejoin-test").await;
        let kvs = kvs_client(&t, &a, 3, 2).await;
        for k in kept.iter().chain(&doomed) {
            kvs.put(k.clone(), lww(1, "old")).await.expect("old write");
        }
        c.kill();
        let kvs = kvs_client(&t, &a, 2, 2).await;
        for k in &kept {
            kvs.put(k.clone(), lww(2, "new")).await.expect("new write");
        }
        for k in &doomed {
            kvs.delete(k.clone(), Timestamp::new(2, WriterId(1)))
                .await
                .expect("delete");
        }
        for k in &fresh {
            kvs.put(k.clone(), lww(2, "fresh"))
                .await
                .expect("fresh write");
        }
        // What c comes back with: the old values, the doomed keys alive.
        let all: Vec<Key> = kept.iter().chain(&doomed).cloned().collect();
        let before = recovered(&dirs[2], 2, &all).await;
        let old = before
            .iter()
            .filter(|(_, v)| v.as_deref() == Some("old"))
            .count();
        assert!(
            old > KEYS as usize / 2,
            "c's directory should hold old values: {before:?}"
        );
    });
    // Restarted with neither --join nor --bootstrap: it rejoins by its recorded cluster.
    let c = NodeProc::spawn_exact(&w, "c2", SECRET, &strs(&args[2]));
    let ids: Vec<_> = dirs.iter().map(|d| node_file(d).cluster_id).collect();
    assert!(
        ids[0].is_some() && ids.iter().all(|id| id == &ids[0]),
        "cluster ids: {ids:?}"
    );
    crate::transport_support::run(async {
        let t = client(SECRET, "rejoin-check").await;
        let kvs = kvs_client(&t, &a, 3, 2).await;
        let view = view_of(&t, &a.node).await.expect("view");
        assert_eq!(
            view.get(&c.node.id).map(|m| (m.node.generation, m.state)),
            Some((c.node.generation, MemberState::Alive)),
            "a holds the restarted c alive"
        );
        let routing = kvs.routing();
        let want = |k: &Key| -> &str {
            match k.as_str().split('-').next() {
                Some("kept") => "new",
                Some("doomed") => "<deleted>",
                _ => "fresh",
            }
        };
        let all: Vec<Key> = kept.iter().chain(&doomed).chain(&fresh).cloned().collect();
        let wrong = eventually(CATCH_UP, "c to hold the newer state", || async {
            let held = held_by(&t, &routing, &c.node.id, &all).await;
            let wrong: Vec<_> = held
                .into_iter()
                .filter(|(k, v)| v.as_deref() != Some(want(k)))
                .collect();
            wrong.is_empty().then_some(wrong)
        })
        .await;
        assert!(wrong.is_empty());
        for k in &all {
            let got = kvs.get(k).await.expect("read");
            let shown = text(got.as_ref());
            let ok = match want(k) {
                "<deleted>" => shown.is_none() || shown.as_deref() == Some("<deleted>"),
                v => shown.as_deref() == Some(v),
            };
            assert!(ok, "{k}: {shown:?}, want {}", want(k));
        }
    });
    drop((a, b, c));
}

/// Copy a running node's data directory as `docs/operations.md` says: `node.json`, then
/// per shard its segments first, then its snapshots (a file deleted meanwhile is skipped).
fn backup(data: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    std::fs::copy(data.join("node.json"), to.join("node.json")).expect("node.json");
    let kvs = data.join("kvs");
    for shard in std::fs::read_dir(&kvs).expect("kvs dir") {
        let shard = shard.expect("entry").path();
        let dest = to.join("kvs").join(shard.file_name().expect("name"));
        std::fs::create_dir_all(&dest).expect("mkdir");
        for suffix in [".log", ".snap"] {
            let mut files: Vec<_> = std::fs::read_dir(&shard)
                .expect("shard dir")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect();
            files.sort();
            for f in files {
                let _ = std::fs::copy(&f, dest.join(f.file_name().expect("name")));
            }
        }
    }
}

#[test]
fn a_directory_copied_while_the_node_writes_restores_every_earlier_write() {
    let w = Workdir::new();
    // Small segments and snapshots: several rotate and are deleted while the copy runs.
    let cfg = format!("{CONFIG}[kvs]\nreplication = 1\nshards_per_node = 2\ndurability = \"always\"\nsegment_bytes = 4096\nsnapshot_min_bytes = 4096\n");
    std::fs::write(&w.config, cfg).expect("config");
    let data = w.dir.path().join("data");
    let args = kvs_args(&data);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut node = NodeProc::spawn(&w, "n", SECRET, &argv);
    let copy = w.dir.path().join("backup");
    let (before, after) = actix::System::new().block_on(async {
        let t = client(SECRET, "backup-test").await;
        let kvs = kvs_client(&t, &node, 1, 1).await;
        let mut before = Vec::new();
        for i in 0..300u64 {
            let k = key("backed", i % 100);
            kvs.put(k.clone(), lww(i + 1, &format!("v{}", i + 1)))
                .await
                .expect("write");
            before.push((k, format!("v{}", i + 1)));
        }
        // Writes go on while the directory is copied.
        let writer = {
            let kvs = kvs.clone();
            actix::spawn(async move {
                let mut after = 0u64;
                for i in 300..900u64 {
                    let k = key("backed", i % 100);
                    if kvs.put(k, lww(i + 1, &format!("v{}", i + 1))).await.is_ok() {
                        after += 1;
                    }
                }
                after
            })
        };
        let (data, copy) = (data.clone(), copy.clone());
        tokio::task::spawn_blocking(move || backup(&data, &copy))
            .await
            .expect("backup");
        let after = writer.await.expect("writer");
        (before, after)
    });
    assert!(after > 0, "writes ran during the copy");
    let status = node.terminate();
    assert!(status.success(), "the node stops cleanly: {status:?}");
    std::fs::rename(&data, w.dir.path().join("data.old")).expect("move the data away");
    std::fs::rename(&copy, &data).expect("restore the backup");
    let node = NodeProc::spawn(&w, "restored", SECRET, &argv);
    crate::transport_support::run(async {
        let t = client(SECRET, "restore-check").await;
        let kvs = kvs_client(&t, &node, 1, 1).await;
        // The last value each key had before the copy started, at least.
        let mut last = std::collections::BTreeMap::new();
        for (i, (k, _)) in before.iter().enumerate() {
            last.insert(k.clone(), i as u64 + 1);
        }
        for (k, at) in last {
            let got = kvs.get(&k).await.expect("read");
            let have = match &got {
                Some(LatticeValue::Lww(l)) => l.timestamp.time,
                _ => 0,
            };
            assert!(
                have >= at,
                "{k}: restored {got:?}, acknowledged at {at} before the copy"
            );
        }
    });
}
