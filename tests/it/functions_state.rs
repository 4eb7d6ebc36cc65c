//! State and messages from inside functions: a counter incremented by sequential calls, sets
//! stored as SetUnion, class-based functions initialised once, send/recv between two
//! functions running at the same time.

use crate::functions_support::*;
use cloudburst::ids::Key;
use cloudburst::lattice::LatticeValue;

#[test]
fn counter_incremented_by_twenty_sequential_calls_ends_at_twenty() {
    run(async {
        let (cluster, client) = cluster(2).await;
        register(&client, &["bump"]).await;
        for i in 1..=20 {
            let out = client.call_function("bump", vec![]).await.expect("call");
            assert_eq!(repr(&out), i.to_string());
        }
        let stored = client
            .get_object("counter")
            .await
            .expect("get")
            .expect("set");
        assert_eq!(repr(&stored), "20");
        cluster.stop().await;
    });
}

#[test]
fn a_python_set_is_stored_as_a_set_lattice() {
    run(async {
        let (cluster, client) = cluster(1).await;
        register(&client, &["tag"]).await;
        let out = client
            .call_function("tag", vec![arg("'tags'")])
            .await
            .expect("call");
        assert_eq!(repr(&out), "['x', 'y']");
        let raw = cluster
            .roles
            .kvs
            .client
            .get(&Key::new("tags"))
            .await
            .expect("get");
        match raw {
            Some(LatticeValue::SetUnion(s)) => assert_eq!(s.len(), 2),
            other => panic!("expected a set lattice, got {other:?}"),
        }
        cluster.stop().await;
    });
}

#[test]
fn class_based_function_is_initialised_once() {
    run(async {
        let (cluster, client) = cluster(1).await;
        register(&client, &["model"]).await;
        for x in 1..=5 {
            let out = client
                .call_function("model", vec![arg(&x.to_string())])
                .await
                .expect("call");
            let text = repr(&out);
            // (pid, inits, x * scale): one worker, __init__ ran once
            assert!(text.ends_with(&format!(", 1, {})", x * 3)), "{text}");
        }
        cluster.stop().await;
    });
}

#[test]
fn send_and_recv_between_two_running_functions() {
    run(async {
        let (cluster, client) = cluster(2).await;
        register(&client, &["ping", "pong"]).await;
        let (ping, pong) = futures::join!(
            client.call_function("ping", vec![]),
            client.call_function("pong", vec![])
        );
        assert_eq!(repr(&pong.expect("pong")), "'sent'");
        assert_eq!(repr(&ping.expect("ping")), "[('pong', b'hello')]");
        cluster.stop().await;
    });
}
