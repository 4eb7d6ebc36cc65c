//! The KVS tier with real node processes: three `cloudburst node --roles kvs` processes with
//! replication k = 2, a client in the test process routing by the nodes' membership view.

use crate::transport_support::*;
use bytes::Bytes;
use cloudburst::actors::kvs::{KvsClient, KvsError, KvsReply, KvsRequest, Routing, RoutingTable};
use cloudburst::ids::{Key, WriterId};
use cloudburst::lattice::{LatticeValue, Lww, SetUnion, Timestamp};
use cloudburst::net::membership::MemberState;
use cloudburst::net::Transport;
use std::time::Duration;

const KVS_CONFIG: &str = "
[kvs]
replication = 2
shards_per_node = 2
gossip_interval_ms = 20
max_value_bytes = 1048576
";

fn workdir() -> Workdir {
    let w = Workdir::new();
    std::fs::write(&w.config, format!("{CONFIG}{KVS_CONFIG}")).expect("config");
    w
}

fn kvs_node(w: &Workdir, name: &str, seed: Option<&NodeProc>, extra: &[&str]) -> NodeProc {
    let mut args = vec!["--roles", "kvs"];
    if !extra.contains(&"--listen") {
        args.extend(["--listen", "127.0.0.1:0"]);
    }
    let seed_addr = seed.map(|s| s.addr.to_string());
    if let Some(s) = &seed_addr {
        args.extend(["--join", s.as_str()]);
    }
    args.extend_from_slice(extra);
    NodeProc::spawn(w, name, SECRET, &args)
}

/// Routing built from `observer`'s view once it shows `alive` live KVS nodes.
async fn routing_from(t: &Transport, observer: &NodeProc, alive: usize) -> Routing {
    routing_k(t, observer, alive, 2).await
}

/// Like [`routing_from`] with replication `k`.
async fn routing_k(t: &Transport, observer: &NodeProc, alive: usize, k: usize) -> Routing {
    eventually(
        Duration::from_secs(10),
        "the kvs nodes to see each other",
        || async {
            let view = view_of(t, &observer.node).await.ok()?;
            let live = view
                .members
                .values()
                .filter(|m| m.state == MemberState::Alive && m.kvs_shards > 0)
                .count();
            (live == alive).then(|| Routing::from_view(&view, 64, k))
        },
    )
    .await
}

fn lww(time: u64, writer: u64, v: &str) -> LatticeValue {
    LatticeValue::Lww(Lww::new(
        Timestamp::new(time, WriterId(writer)),
        Bytes::copy_from_slice(v.as_bytes()),
    ))
}

fn set_of(item: u32) -> LatticeValue {
    LatticeValue::SetUnion(
        [Bytes::from(item.to_le_bytes().to_vec())]
            .into_iter()
            .collect::<SetUnion<Bytes>>(),
    )
}

/// What every replica of `key` holds, asked directly.
async fn replica_values(t: &Transport, routing: &Routing, key: &Key) -> Vec<Option<LatticeValue>> {
    let mut out = Vec::new();
    for shard in routing.replicas(key) {
        let target = routing.actor(&shard).expect("shard in routing");
        let reply = t
            .handle::<KvsRequest>(target)
            .send(KvsRequest::Get {
                keys: vec![key.clone()],
            })
            .await;
        match reply {
            Ok(Ok(KvsReply::Values(mut v))) => out.push(v.pop().flatten()),
            other => panic!("replica {shard} did not answer: {other:?}"),
        }
    }
    out
}

#[test]
fn puts_reach_every_replica_and_concurrent_writers_converge() {
    let w = workdir();
    let a = kvs_node(&w, "a", None, &[]);
    let b = kvs_node(&w, "b", Some(&a), &[]);
    let c = kvs_node(&w, "c", Some(&a), &[]);
    run(async {
        let t1 = client(SECRET, "writer-1").await;
        let t2 = client(SECRET, "writer-2").await;
        know(&t1, &[&a, &b, &c]);
        know(&t2, &[&a, &b, &c]);
        // Each client learns the routing through a different node.
        let r1 = routing_from(&t1, &a, 3).await;
        let r2 = routing_from(&t2, &c, 3).await;
        assert_eq!(r1.all_shards(), r2.all_shards(), "nodes agree on the ring");
        let c1 = KvsClient::new(t1.clone(), RoutingTable::new(r1.clone()));
        let c2 = KvsClient::new(t2.clone(), RoutingTable::new(r2));

        for i in 0..50 {
            let key = Key::new(format!("key-{i}"));
            c1.put(key.clone(), lww(1, 1, &format!("v{i}")))
                .await
                .expect("put");
            assert_eq!(
                c2.get(&key).await.expect("get"),
                Some(lww(1, 1, &format!("v{i}")))
            );
            let held = replica_values(&t1, &r1, &key).await;
            assert_eq!(held.len(), 2, "k = 2 replicas");
            assert!(held
                .iter()
                .all(|v| v.as_ref() == Some(&lww(1, 1, &format!("v{i}")))));
        }

        // Two writers race on one LWW key and one SetUnion key.
        let (lk, sk) = (Key::new("race-lww"), Key::new("race-set"));
        let writer = |c: KvsClient, id: u64| {
            let (lk, sk) = (lk.clone(), sk.clone());
            async move {
                for n in 0..40u64 {
                    c.put(lk.clone(), lww(n * 2 + id, id, &format!("w{id}-{n}")))
                        .await
                        .expect("lww put");
                    c.put(sk.clone(), set_of((id * 1000 + n) as u32))
                        .await
                        .expect("set put");
                }
            }
        };
        futures::join!(writer(c1.clone(), 1), writer(c2.clone(), 2));
        let want_lww = lww(39 * 2 + 2, 2, "w2-39");
        eventually(Duration::from_secs(5), "replicas to agree", || async {
            let l = replica_values(&t1, &r1, &lk).await;
            let s = replica_values(&t1, &r1, &sk).await;
            let set_full = s.iter().all(|v| match v {
                Some(LatticeValue::SetUnion(set)) => set.len() == 80,
                _ => false,
            });
            (l.iter().all(|v| v.as_ref() == Some(&want_lww)) && set_full && s[0] == s[1])
                .then_some(())
        })
        .await;
    });
}

#[test]
fn acknowledged_writes_survive_a_killed_node_and_a_restart_catches_up() {
    let w = workdir();
    let a = kvs_node(&w, "a", None, &[]);
    let b = kvs_node(&w, "b", Some(&a), &[]);
    let mut c = kvs_node(&w, "c", Some(&a), &["--node-id", "kvs-c"]);
    let c_addr = c.addr.to_string();
    run(async {
        let t = client(SECRET, "client").await;
        know(&t, &[&a, &b, &c]);
        let routing = routing_from(&t, &a, 3).await;
        let kvs = KvsClient::new(t.clone(), RoutingTable::new(routing.clone()));
        let keys: Vec<Key> = (0..200).map(|i| Key::new(format!("durable-{i}"))).collect();
        for (i, k) in keys.iter().enumerate() {
            kvs.put(k.clone(), lww(i as u64 + 1, 9, "x"))
                .await
                .expect("put");
        }

        c.kill();
        // With the old routing (c still in it) reads fall over to the surviving replica.
        for (i, k) in keys.iter().enumerate() {
            let got = kvs.get(k).await.expect("readable after the kill");
            assert_eq!(got, Some(lww(i as u64 + 1, 9, "x")), "{k}");
        }
        // And once the others declare c dead, the ring no longer has it.
        let shrunk = routing_from(&t, &a, 2).await;
        let kvs = KvsClient::new(t.clone(), RoutingTable::new(shrunk));
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                kvs.get(k).await.expect("get"),
                Some(lww(i as u64 + 1, 9, "x"))
            );
        }

        let c2 = kvs_node(
            &w,
            "c2",
            Some(&a),
            &["--node-id", "kvs-c", "--listen", &c_addr],
        );
        know(&t, &[&c2]);
        let grown = routing_from(&t, &a, 3).await;
        let on_c: Vec<&Key> = keys
            .iter()
            .filter(|k| grown.replicas(k).iter().any(|s| s.node == c2.node.id))
            .collect();
        assert!(!on_c.is_empty(), "the restarted node owns some keys");
        eventually(
            Duration::from_secs(10),
            "the restarted node to catch up",
            || async {
                for k in &on_c {
                    let held = replica_values(&t, &grown, k).await;
                    if held.iter().any(|v| v.is_none()) {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
        drop(c2);
    });
}

#[test]
fn bad_puts_get_clear_errors() {
    let w = workdir();
    let a = kvs_node(&w, "a", None, &["--replication", "1"]);
    run(async {
        let t = client(SECRET, "client").await;
        know(&t, &[&a]);
        let k2 = KvsClient::new(t.clone(), RoutingTable::new(routing_from(&t, &a, 1).await));
        let err = k2.put(Key::new("x"), lww(1, 1, "x")).await.unwrap_err();
        assert!(
            matches!(err, KvsError::UnderReplicated { have: 1, want: 2 }),
            "{err}"
        );
        let kvs = KvsClient::new(t.clone(), RoutingTable::new(routing_k(&t, &a, 1, 1).await));
        let k = Key::new("kind");
        kvs.put(k.clone(), set_of(1))
            .await
            .expect("first put fixes the kind");
        let err = kvs.put(k.clone(), lww(1, 1, "x")).await.unwrap_err();
        assert!(matches!(err, KvsError::KindMismatch { .. }), "{err}");
        assert!(err.to_string().contains("set_union"), "{err}");

        let big = LatticeValue::Lww(Lww::new(
            Timestamp::new(1, WriterId(1)),
            Bytes::from(vec![0u8; 2 << 20]),
        ));
        let err = kvs.put(Key::new("big"), big).await.unwrap_err();
        assert!(matches!(err, KvsError::ValueTooLarge { .. }), "{err}");

        let err = kvs.put(Key::new(""), lww(1, 1, "x")).await.unwrap_err();
        assert!(matches!(err, KvsError::Malformed(_)), "{err}");
        // The node still serves.
        assert_eq!(kvs.get(&k).await.expect("get"), Some(set_of(1)));
        assert_eq!(kvs.get(&Key::new("big")).await.expect("get"), None);
    });
}

#[test]
fn a_node_that_leaves_gracefully_hands_its_keys_over_first() {
    let w = workdir();
    let a = kvs_node(&w, "a", None, &["--replication", "1"]);
    let mut b = kvs_node(&w, "b", Some(&a), &["--replication", "1"]);
    run(async {
        let t = client(SECRET, "client").await;
        know(&t, &[&a, &b]);
        let both = routing_k(&t, &a, 2, 1).await;
        let kvs = KvsClient::new(t.clone(), RoutingTable::new(both.clone()));
        let keys: Vec<Key> = (0..100).map(|i| Key::new(format!("leaving-{i}"))).collect();
        for (i, k) in keys.iter().enumerate() {
            kvs.put(k.clone(), lww(i as u64 + 1, 3, "v"))
                .await
                .expect("put");
        }
        let on_b = keys
            .iter()
            .filter(|k| both.replicas(k)[0].node == b.node.id)
            .count();
        assert!(on_b > 0, "b holds some keys (its only copies: k = 1)");
        assert!(b.terminate().success(), "b exits 0 after SIGTERM");
        let alone = routing_k(&t, &a, 1, 1).await;
        let kvs = KvsClient::new(t.clone(), RoutingTable::new(alone));
        for (i, k) in keys.iter().enumerate() {
            let got = kvs.get(k).await.expect("get");
            assert_eq!(
                got,
                Some(lww(i as u64 + 1, 3, "v")),
                "{k} survived b's departure"
            );
        }
    });
}
