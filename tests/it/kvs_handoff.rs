//! After a routing change, reads that find a key missing ask the previous owners too, but
//! only until every shard handing keys off confirmed it did, not for the whole time bound.
//! Four `cloudburst node --roles kvs` processes (k = 2) and a member in the test process
//! with no role: its own routing watcher and KVS client, as every node has.

use crate::transport_support::*;
use bytes::Bytes;
use cloudburst::actors::kvs::{KvsClient, KvsTier, Routing, RoutingTable};
use cloudburst::config::Config;
use cloudburst::ids::{Key, WriterId};
use cloudburst::lattice::{LatticeValue, Lww, Timestamp};
use cloudburst::net::membership::Membership;
use cloudburst::net::Transport;
use std::sync::Arc;
use std::time::Duration;

const KVS_CONFIG: &str = "
[kvs]
replication = 2
shards_per_node = 2
gossip_interval_ms = 20
";

/// Missing keys read after each change: each read that asks the previous owners counts.
const MISSING_READS: u64 = 20;

fn lww(time: u64, v: &str) -> LatticeValue {
    LatticeValue::Lww(Lww::new(
        Timestamp::new(time, WriterId(5)),
        Bytes::copy_from_slice(v.as_bytes()),
    ))
}

fn kvs_node(w: &Workdir, name: &str, seed: Option<&NodeProc>) -> NodeProc {
    let mut args = vec!["--roles", "kvs", "--listen", "127.0.0.1:0"];
    let seed_addr = seed.map(|s| s.addr.to_string());
    if let Some(s) = &seed_addr {
        args.extend(["--join", s.as_str()]);
    }
    NodeProc::spawn(w, name, SECRET, &args)
}

/// Wait until the member's routing has `nodes` KVS nodes; returns it.
async fn routing_of(tier: &KvsTier, nodes: usize) -> Arc<Routing> {
    let what = format!("a routing over {nodes} kvs nodes");
    eventually(Duration::from_secs(10), &what, || async {
        let r = tier.routing.get();
        (r.nodes().count() == nodes).then_some(r)
    })
    .await
}

/// Read `MISSING_READS` keys nobody wrote; they must read as missing.
async fn read_missing(kvs: &KvsClient, round: &str) {
    for i in 0..MISSING_READS {
        let key = Key::new(format!("never-{round}-{i}"));
        assert_eq!(kvs.get(&key).await.expect("get"), None, "{key}");
    }
}

/// Once the hand-off after the change `before` → `after` is confirmed: every written key
/// reads back from its new owners, and missing reads no longer ask the previous owners,
/// while a client of the same change without confirmations (within the bound) still does.
async fn after_confirmation(
    t: &Transport,
    tier: &KvsTier,
    (before, after): (&Routing, &Routing),
    written: &[(Key, LatticeValue)],
    round: &str,
) {
    let what = format!("every shard to confirm its hand-off ({round})");
    eventually(Duration::from_secs(10), &what, || async {
        tier.routing.handed_off().then_some(())
    })
    .await;
    let kvs = &tier.client;
    for (k, v) in written {
        assert_eq!(kvs.get(k).await.expect("get").as_ref(), Some(v), "{k}");
    }
    let fanouts = kvs.fanout_reads();
    read_missing(kvs, round).await;
    assert_eq!(kvs.fanout_reads(), fanouts, "no fan-out once confirmed");

    let unconfirmed = RoutingTable::new(before.clone());
    unconfirmed.set(after.clone());
    let control = KvsClient::new(t.clone(), unconfirmed);
    read_missing(&control, round).await;
    assert_eq!(
        control.fanout_reads(),
        MISSING_READS,
        "the same reads fan out while a change is unconfirmed"
    );
}

#[test]
fn reads_stop_asking_previous_owners_once_the_handoff_is_confirmed() {
    let w = Workdir::new();
    std::fs::write(&w.config, format!("{CONFIG}{KVS_CONFIG}")).expect("config");
    let a = kvs_node(&w, "a", None);
    let _b = kvs_node(&w, "b", Some(&a));
    let mut c = kvs_node(&w, "c", Some(&a));
    let mut d = kvs_node(&w, "d", Some(&a));
    run(async {
        let mut cfg = Config::from_toml(&format!("{CONFIG}{KVS_CONFIG}")).expect("config");
        cfg.node.listen = "127.0.0.1:0".parse().expect("addr");
        cfg.node.cluster_secret = SECRET.into();
        cfg.node.roles = Default::default();
        cfg.node.join = vec![a.addr.to_string()];
        let t = Transport::start(&cfg, None).await.expect("transport");
        let membership =
            Membership::start(t.clone(), &cfg, cfg.node.join.clone()).expect("membership");
        let tier = KvsTier::start(&t, &membership, &cfg).expect("kvs tier");
        let four = routing_of(&tier, 4).await;
        let written: Vec<(Key, LatticeValue)> = (0..200)
            .map(|i| (Key::new(format!("moved-{i}")), lww(i + 1, "v")))
            .collect();
        for (k, v) in &written {
            tier.client.put(k.clone(), v.clone()).await.expect("put");
        }

        // A crash: the survivors hand the keys d held to their new owners.
        d.kill();
        let three = routing_of(&tier, 3).await;
        after_confirmation(&t, &tier, (&four, &three), &written, "crash").await;

        // A leave: c drains, then the others hand off what their new ranges lack.
        assert!(c.terminate().success(), "c exits 0 after SIGTERM");
        let two = routing_of(&tier, 2).await;
        after_confirmation(&t, &tier, (&three, &two), &written, "leave").await;
        tier.stop();
    });
}
