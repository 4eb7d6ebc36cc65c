//! Cache hit and miss latency against a real KVS node process, next to a local actor round
//! trip and a direct KVS read for scale. Prints numbers, asserts none (timing is not a test):
//!
//! `cargo test --release --test it cache_latency -- --ignored --nocapture`
//!
//! Measured on the 2-core dev machine under load average 5-9 (medians, 8-byte values, one
//! KVS node process on loopback): hit 0.22 µs (0.24 µs through `StateAccess`), local actor
//! round trip 0.70 µs, miss 115 µs (subscribe round trip, then read round trip), direct
//! `KvsClient::get` 50 µs.

use crate::transport_support::*;
use actix::prelude::*;
use bytes::Bytes;
use cloudburst::actors::cache::{CacheHandle, StateAccess};
use cloudburst::actors::kvs::KvsTier;
use cloudburst::config::{Config, Role};
use cloudburst::ids::{Key, WriterId};
use cloudburst::lattice::{LatticeValue, Lww, Timestamp};
use cloudburst::net::membership::Membership;
use cloudburst::net::Transport;
use std::time::{Duration, Instant};

const HITS: usize = 10_000;
const MISSES: usize = 1_000;

struct Nop;
impl Actor for Nop {
    type Context = Context<Self>;
}
#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);
impl Handler<Ping> for Nop {
    type Result = u64;
    fn handle(&mut self, p: Ping, _: &mut Context<Self>) -> u64 {
        p.0
    }
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let q = |f: f64| samples[((samples.len() as f64 * f) as usize).min(samples.len() - 1)];
    println!(
        "{name:<28} n={:<6} median {:>8.2?}  p99 {:>8.2?}",
        samples.len(),
        q(0.5),
        q(0.99)
    );
}

#[test]
#[ignore = "a measurement, run with --release --ignored --nocapture"]
fn hit_and_miss_latency() {
    let w = Workdir::new();
    let kvs_cfg = "[kvs]\nreplication = 1\nshards_per_node = 1\n";
    std::fs::write(&w.config, format!("{CONFIG}{kvs_cfg}")).expect("config");
    let kvs = NodeProc::spawn(
        &w,
        "kvs",
        SECRET,
        &["--roles", "kvs", "--listen", "127.0.0.1:0"],
    );
    run(async {
        let mut cfg = Config::from_toml(&format!("{CONFIG}{kvs_cfg}")).expect("config");
        cfg.node.listen = "127.0.0.1:0".parse().expect("addr");
        cfg.node.join = vec![kvs.addr.to_string()];
        cfg.node.cluster_secret = SECRET.into();
        cfg.node.roles = [Role::Executor].into_iter().collect();
        let t = Transport::start(&cfg, None).await.expect("transport");
        let m = Membership::start(t.clone(), &cfg, cfg.node.join.clone()).expect("membership");
        let tier = KvsTier::start(&t, &m, &cfg).expect("kvs tier");
        let cache = CacheHandle::start(&t, &m, tier.client.clone(), &cfg).expect("cache");
        let routing = tier.routing.clone();
        eventually(Duration::from_secs(10), "kvs routing", || {
            let r = routing.clone();
            async move { (!r.get().all_shards().is_empty()).then_some(()) }
        })
        .await;
        let value = LatticeValue::Lww(Lww::new(
            Timestamp::new(1, WriterId(1)),
            Bytes::from(vec![7u8; 8]),
        ));
        let keys: Vec<Key> = (0..MISSES).map(|i| Key::new(format!("k{i}"))).collect();
        for k in &keys {
            tier.client
                .put(k.clone(), value.clone())
                .await
                .expect("put");
        }
        // Misses: each key read once through the cache (subscribe, then read).
        let mut miss = Vec::new();
        for k in &keys {
            let s = Instant::now();
            cache.get(std::slice::from_ref(k)).await.expect("miss");
            miss.push(s.elapsed());
        }
        // A direct KVS read of the same keys, for scale.
        let mut direct = Vec::new();
        for k in &keys {
            let s = Instant::now();
            tier.client.get(k).await.expect("kvs get");
            direct.push(s.elapsed());
        }
        let mut hit = Vec::new();
        let mut hit_trait = Vec::new();
        for i in 0..HITS {
            let k = &keys[i % keys.len()];
            let s = Instant::now();
            cache.get(std::slice::from_ref(k)).await.expect("hit");
            hit.push(s.elapsed());
            let s = Instant::now();
            StateAccess::get(&cache, vec![k.clone()])
                .await
                .expect("hit");
            hit_trait.push(s.elapsed());
        }
        let nop = Nop.start();
        let mut actor = Vec::new();
        for i in 0..HITS as u64 {
            let s = Instant::now();
            nop.send(Ping(i)).await.expect("ping");
            actor.push(s.elapsed());
        }
        let st = cache.stats();
        println!("cache stats: {st:?}");
        summary("cache hit (CacheHandle::get)", hit);
        summary("cache hit (StateAccess::get)", hit_trait);
        summary("local actor round trip", actor);
        summary("cache miss (read-through)", miss);
        summary("KvsClient::get (no cache)", direct);
        t.shutdown().await;
        tier.stop();
    });
}
