//! The cache against a real KVS: one `cloudburst node --roles kvs` process; the test
//! process is an executor+scheduler node of the same cluster (transport, membership, KVS
//! routing, the cache) with a probe registered as its scheduler; a second in-process
//! transport plays another client writing to the KVS directly.

use crate::transport_support::*;
use actix::prelude::*;
use bytes::Bytes;
use cloudburst::actors::cache::{CacheHandle, GetCacheStats, StateAccess};
use cloudburst::actors::kvs::{KvsClient, KvsTier, RoutingTable};
use cloudburst::config::{Config, Role};
use cloudburst::ids::{Key, WriterId};
use cloudburst::lattice::{LatticeValue, Lww, Timestamp};
use cloudburst::net::membership::{GetView, Membership};
use cloudburst::net::{MemberState, Transport};
use cloudburst::protocol::CacheKeysReport;
use std::slice::from_ref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KVS_CONFIG: &str = "
[kvs]
replication = 1
shards_per_node = 2
gossip_interval_ms = 20
";

const WAIT: Duration = Duration::from_secs(10);

fn workdir() -> Workdir {
    let w = Workdir::new();
    std::fs::write(&w.config, format!("{CONFIG}{KVS_CONFIG}")).expect("config");
    w
}

fn kvs_node() -> (Workdir, NodeProc) {
    let w = workdir();
    let n = NodeProc::spawn(
        &w,
        "kvs",
        SECRET,
        &["--roles", "kvs", "--listen", "127.0.0.1:0"],
    );
    (w, n)
}

/// Records every scheduler report it receives.
struct Probe(Arc<Mutex<Vec<CacheKeysReport>>>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<CacheKeysReport> for Probe {
    type Result = ();
    fn handle(&mut self, msg: CacheKeysReport, _: &mut Context<Self>) {
        self.0.lock().expect("probe lock").push(msg);
    }
}

/// The test process as an executor+scheduler node joined to `seed`.
struct ExecNode {
    transport: Transport,
    kvs: KvsTier,
    cache: CacheHandle,
    reports: Arc<Mutex<Vec<CacheKeysReport>>>,
}

async fn exec_node(seed: &NodeProc, capacity: usize) -> ExecNode {
    let mut cfg = Config::from_toml(&format!("{CONFIG}{KVS_CONFIG}")).expect("config");
    cfg.node.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.node.join = vec![seed.addr.to_string()];
    cfg.node.cluster_secret = SECRET.into();
    cfg.node.roles = [Role::Executor, Role::Scheduler].into_iter().collect();
    cfg.executor.cache_capacity_bytes = capacity;
    cfg.executor.cache_report_interval_ms = 100;
    cfg.validate().expect("valid config");
    let transport = Transport::start(&cfg, None).await.expect("transport");
    let reports = Arc::new(Mutex::new(Vec::new()));
    let probe = Probe(reports.clone()).start();
    transport
        .register::<CacheKeysReport>(0, probe.recipient())
        .expect("probe");
    let membership =
        Membership::start(transport.clone(), &cfg, cfg.node.join.clone()).expect("membership");
    let kvs = KvsTier::start(&transport, &membership, &cfg).expect("kvs tier");
    let cache =
        CacheHandle::start(&transport, &membership, kvs.client.clone(), &cfg).expect("cache");
    // Ready when this node routes to the KVS node and the KVS node sees this node alive
    // (so it can push to the cache).
    let me = transport.local_node().clone();
    eventually(WAIT, "the kvs node and this node to see each other", || {
        let (t, routing, m, me) = (
            transport.clone(),
            kvs.routing.clone(),
            membership.clone(),
            me.clone(),
        );
        let seed = seed.node.clone();
        async move {
            let mine = m.send(GetView).await.ok()?;
            let theirs = view_of(&t, &seed).await.ok()?;
            let seen = theirs.get(&me.id).map(|m| m.state) == Some(MemberState::Alive);
            let routed = !routing.get().all_shards().is_empty() && mine.get(&seed.id).is_some();
            (seen && routed).then_some(())
        }
    })
    .await;
    ExecNode {
        transport,
        kvs,
        cache,
        reports,
    }
}

/// Another client of the KVS (its own transport), routing from the KVS node's view.
async fn writer(kvs: &NodeProc) -> KvsClient {
    let t = client(SECRET, "writer").await;
    know(&t, &[kvs]);
    let view = eventually(WAIT, "the kvs node's view", || async {
        view_of(&t, &kvs.node).await.ok()
    })
    .await;
    let routing = cloudburst::actors::kvs::Routing::from_view(&view, 64, 1);
    KvsClient::new(t, RoutingTable::new(routing))
}

fn lww(time: u64, v: &str) -> LatticeValue {
    LatticeValue::Lww(Lww::new(
        Timestamp::new(time, WriterId(7)),
        Bytes::copy_from_slice(v.as_bytes()),
    ))
}

/// Sum of a counter over the KVS shards.
async fn shard_total(c: &KvsClient, f: fn(&cloudburst::actors::kvs::ShardStats) -> u64) -> u64 {
    c.stats()
        .await
        .into_iter()
        .map(|(s, r)| f(&r.unwrap_or_else(|e| panic!("stats of {s}: {e}"))))
        .sum()
}

#[test]
fn read_through_hits_pushed_updates_and_own_writes() {
    let (_w, kvs) = kvs_node();
    run(async {
        let node = exec_node(&kvs, 1 << 20).await;
        let other = writer(&kvs).await;
        let cache = &node.cache;
        let k = Key::new("counter");
        other.put(k.clone(), lww(1, "one")).await.expect("put");

        assert_eq!(
            cache.get(from_ref(&k)).await.expect("get"),
            vec![Some(lww(1, "one"))]
        );
        let s = cache.stats();
        assert_eq!(
            (s.hits, s.misses, s.keys),
            (0, 1, 1),
            "first read is a miss"
        );
        assert_eq!(
            cache.get(from_ref(&k)).await.expect("get"),
            vec![Some(lww(1, "one"))]
        );
        assert_eq!(cache.stats().hits, 1, "second read is a hit");

        // Another client's write reaches the cache by push, not by a miss.
        other.put(k.clone(), lww(2, "two")).await.expect("put");
        eventually(WAIT, "the pushed update", || async {
            let v = cache.get(from_ref(&k)).await.ok()?;
            (v == vec![Some(lww(2, "two"))]).then_some(())
        })
        .await;
        let s = cache.stats();
        assert_eq!(s.misses, 1, "updates arrived without another miss");
        assert!(s.updates >= 1);

        // Own writes are acknowledged by the KVS and readable here at once.
        StateAccess::put(cache, k.clone(), lww(3, "three"))
            .await
            .expect("own put");
        assert_eq!(
            StateAccess::get(cache, vec![k.clone()]).await.expect("get"),
            vec![Some(lww(3, "three"))]
        );
        assert_eq!(other.get(&k).await.expect("kvs get"), Some(lww(3, "three")));
        assert_eq!(cache.stats().misses, 1);

        // A missing key reads as None, is not cached, and leaves no subscription behind.
        let none = Key::new("nobody-wrote-this");
        assert_eq!(cache.get(from_ref(&none)).await.expect("get"), vec![None]);
        assert_eq!(cache.stats().keys, 1);
        eventually(WAIT, "only the held key to stay subscribed", || async {
            (shard_total(&other, |s| s.subscriptions).await == 1).then_some(())
        })
        .await;
        node.transport.shutdown().await;
        node.kvs.stop();
    });
}

#[test]
fn eviction_under_a_small_capacity_then_read_through_again() {
    let (_w, kvs) = kvs_node();
    run(async {
        let value = "v".repeat(1000);
        // Room for three entries of ~1 KiB.
        let node = exec_node(&kvs, 3 * 1200).await;
        let other = writer(&kvs).await;
        let cache = &node.cache;
        let keys: Vec<Key> = (0..5).map(|i| Key::new(format!("big-{i}"))).collect();
        for k in &keys {
            other.put(k.clone(), lww(1, &value)).await.expect("put");
        }
        for k in &keys {
            assert_eq!(
                cache.get(from_ref(k)).await.expect("get"),
                vec![Some(lww(1, &value))]
            );
        }
        let s = cache.stats();
        assert_eq!((s.keys, s.evictions, s.misses), (3, 2, 5));
        assert!(s.bytes <= s.capacity);
        // Evicted keys are unsubscribed: the shards end up with one subscription per held key.
        eventually(WAIT, "evicted keys to be unsubscribed", || async {
            (shard_total(&other, |s| s.subscriptions).await == 3).then_some(())
        })
        .await;
        // The oldest key was evicted: reading it again reads through (and evicts another).
        assert_eq!(
            cache.get(from_ref(&keys[0])).await.expect("get"),
            vec![Some(lww(1, &value))]
        );
        let s = cache.stats();
        assert_eq!((s.misses, s.evictions, s.keys), (6, 3, 3));
        // And it is fresh: an update written after the re-read is pushed to it.
        other
            .put(keys[0].clone(), lww(2, "new"))
            .await
            .expect("put");
        eventually(WAIT, "the update of the re-read key", || async {
            let v = cache.get(from_ref(&keys[0])).await.ok()?;
            (v == vec![Some(lww(2, "new"))]).then_some(())
        })
        .await;
        node.transport.shutdown().await;
        node.kvs.stop();
    });
}

#[test]
fn concurrent_misses_share_one_kvs_read() {
    let (_w, kvs) = kvs_node();
    run(async {
        let node = exec_node(&kvs, 1 << 20).await;
        let other = writer(&kvs).await;
        let k = Key::new("shared");
        other.put(k.clone(), lww(1, "x")).await.expect("put");
        let before = shard_total(&other, |s| s.gets).await;
        let reads = (0..16).map(|_| {
            let c = node.cache.clone();
            let k = k.clone();
            async move { c.get(&[k]).await }
        });
        for r in futures::future::join_all(reads).await {
            assert_eq!(r.expect("get"), vec![Some(lww(1, "x"))]);
        }
        let after = shard_total(&other, |s| s.gets).await;
        assert_eq!(after - before, 1, "16 concurrent misses, one KVS read");
        assert_eq!(node.cache.stats().misses, 16);
        node.transport.shutdown().await;
        node.kvs.stop();
    });
}

#[test]
fn periodic_report_reaches_the_scheduler() {
    let (_w, kvs) = kvs_node();
    run(async {
        let node = exec_node(&kvs, 1 << 20).await;
        let other = writer(&kvs).await;
        let keys: Vec<Key> = ["r1", "r2", "r3"].into_iter().map(Key::new).collect();
        for k in &keys {
            other.put(k.clone(), lww(1, "v")).await.expect("put");
        }
        node.cache.get(&keys).await.expect("get");
        let me = node.transport.local_node().clone();
        let report = eventually(WAIT, "a report listing the held keys", || async {
            let got = node.reports.lock().expect("reports").last().cloned()?;
            (got.keys.len() == 3).then_some(got)
        })
        .await;
        assert_eq!(report.node, me);
        let mut listed = report.keys.clone();
        listed.sort();
        assert_eq!(listed, keys);
        // A hit makes a key the most recently used, which reports list first.
        node.cache.get(&keys[..1]).await.expect("get");
        assert_eq!(
            node.cache.held_keys()[0],
            keys[0],
            "most recently used first"
        );
        node.transport.shutdown().await;
        node.kvs.stop();
    });
}

#[test]
fn an_executor_node_process_runs_a_cache_that_answers_stats() {
    let w = workdir();
    let exec = NodeProc::spawn(
        &w,
        "exec",
        SECRET,
        &["--roles", "kvs,executor", "--listen", "127.0.0.1:0"],
    );
    run(async {
        let t = client(SECRET, "dashboard").await;
        know(&t, &[&exec]);
        let stats = ask(&t, &exec.node, GetCacheStats)
            .await
            .expect("cache stats");
        let defaults = Config::default().executor;
        assert_eq!(stats.capacity, defaults.cache_capacity_bytes as u64);
        assert_eq!((stats.hits, stats.misses, stats.keys), (0, 0, 0));
        t.shutdown().await;
    });
}
