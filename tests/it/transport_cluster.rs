//! Three real node processes: join through one seed, same view everywhere, typed
//! request/response and one-way messages between every pair; a wrong secret is refused.

use crate::transport_support::*;
use cloudburst::net::echo::{Echo, Note, NoteAll, NoteCount, PingAll, Stats};
use cloudburst::net::NetError;
use std::time::Duration;

#[test]
fn three_nodes_join_and_every_pair_talks() {
    let w = Workdir::new();
    let a = NodeProc::spawn(&w, "a", SECRET, &["--listen", "127.0.0.1:0"]);
    let seed = a.addr.to_string();
    let join = ["--listen", "127.0.0.1:0", "--join", seed.as_str()];
    let b = NodeProc::spawn(&w, "b", SECRET, &join);
    let c = NodeProc::spawn(&w, "c", SECRET, &join);
    let nodes = [&a, &b, &c];
    run(async {
        let t = &client(SECRET, "test-client").await;
        know(t, &nodes);
        let expected = &all_alive(&nodes);
        eventually(
            Duration::from_secs(10),
            "the same 3-node view everywhere",
            move || async move {
                for n in nodes {
                    let v = view_of(t, &n.node).await.ok()?;
                    if v.summary() != *expected {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;

        // Request/response between every pair (each node pings the two others).
        for n in nodes {
            let reports = ask(t, &n.node, PingAll).await.expect("ping all");
            assert_eq!(reports.len(), 2, "{} pinged {reports:?}", n.node);
            assert!(
                reports.iter().all(|r| r.ok),
                "{} pinged {reports:?}",
                n.node
            );
        }

        // One-way between every pair: each node notes the two others.
        for (i, n) in nodes.iter().enumerate() {
            let sent = ask(t, &n.node, NoteAll { seq: i as u64 })
                .await
                .expect("note all");
            assert_eq!(sent, 2);
        }
        eventually(
            Duration::from_secs(5),
            "two notes at every node",
            move || async move {
                for n in nodes {
                    if ask(t, &n.node, NoteCount).await.ok()?.count != 2 {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;

        // From this process: a typed echo and one-way notes to each node.
        for n in nodes {
            let payload: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
            let reply = ask(
                t,
                &n.node,
                Echo {
                    payload: payload.clone(),
                },
            )
            .await;
            assert_eq!(reply.expect("echo").payload, payload);
            let h = t.handle::<Note>(n.actor(cloudburst::net::ServiceId::Echo));
            for seq in 0..100 {
                h.tell(Note { seq }).expect("queue has room");
            }
        }
        eventually(
            Duration::from_secs(5),
            "100 more notes at every node",
            move || async move {
                for n in nodes {
                    let s = ask(t, &n.node, NoteCount).await.ok()?;
                    if (s.count, s.last_seq) != (102, Some(99)) {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
        t.shutdown().await;
    });
}

#[test]
fn wrong_secret_is_refused_counted_and_logged() {
    let w = Workdir::new();
    let a = NodeProc::spawn(&w, "a", SECRET, &["--listen", "127.0.0.1:0"]);
    let seed = a.addr.to_string();
    let intruder = NodeProc::spawn(
        &w,
        "intruder",
        "not-the-secret",
        &["--listen", "127.0.0.1:0", "--join", seed.as_str()],
    );
    run(async {
        let bad = client("not-the-secret", "bad-client").await;
        match bad.identify(a.addr).await {
            Err(NetError::Refused(reason)) => assert!(reason.contains("secret"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        know(&bad, &[&a]);
        let echo = ask(&bad, &a.node, Echo { payload: vec![1] }).await;
        assert!(matches!(echo, Err(NetError::Refused(_))), "{echo:?}");

        let t = &client(SECRET, "good-client").await;
        know(t, &[&a]);
        let stats = ask(t, &a.node, Stats).await.expect("stats");
        assert!(stats.refused_handshakes >= 2, "{stats:?}");
        let intruder_log = || intruder.log_text();
        eventually(
            Duration::from_secs(5),
            "the intruder to be refused",
            || async { intruder_log().contains("join refused").then_some(()) },
        )
        .await;
        let view = view_of(t, &a.node).await.expect("view");
        assert!(view.get(&intruder.node.id).is_none(), "{view:?}");
        assert_eq!(view.members.len(), 1);
        bad.shutdown().await;
        t.shutdown().await;
    });
    let log = a.log_text();
    assert!(log.contains("wrong cluster secret"), "{log}");
}
