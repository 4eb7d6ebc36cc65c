//! The dashboard and `/metrics` on a real `cloudburst node --roles kvs,gateway` process:
//! token enforcement, the snapshot and event stream after KVS puts from a client in the
//! test process, the Prometheus text, and a headless-Chromium look at the live page.
//! (Function-call checks run against `cloudburst local`: python/tests/test_dashboard.py.)

use crate::dashboard_support::*;
use crate::transport_support::{client, eventually, run, view_of, Workdir, SECRET};
use bytes::Bytes;
use cloudburst::actors::kvs::{KvsClient, Routing, RoutingTable};
use cloudburst::ids::{Key, WriterId};
use cloudburst::lattice::{LatticeValue, Lww, Timestamp};
use cloudburst::net::Transport;
use serde_json::Value;
use std::time::Duration;

const TOKEN: &str = "dash-token";
const KEYS: u64 = 24;
const LIMIT: Duration = Duration::from_secs(10);

fn node(w: &Workdir, name: &str, extra_config: &str) -> GatewayNode {
    let config = w.dir.path().join(format!("{name}.toml"));
    let base = std::fs::read_to_string(&w.config).expect("base config");
    // `extra_config` holds `[gateway]` keys; the base config already has that table.
    let text = base.replace("[gateway]\n", &format!("[gateway]\n{extra_config}"));
    std::fs::write(&config, text).expect("config");
    GatewayNode::spawn(
        &config,
        w.log(name),
        SECRET,
        TOKEN,
        &["--roles", "kvs,gateway", "--kvs-shards", "2"],
    )
}

/// A KVS client in the test process that routes by the node's view.
async fn kvs_client(n: &GatewayNode) -> (Transport, KvsClient) {
    let t = client(SECRET, "dash-test-client").await;
    t.connect_hint(&n.node.id, n.addr);
    let view = view_of(&t, &n.node).await.expect("view");
    let routing = RoutingTable::new(Routing::from_view(&view, 64, 1));
    (t.clone(), KvsClient::new(t, routing))
}

async fn put_keys(kvs: &KvsClient, n: u64) {
    for i in 0..n {
        let v = Lww::new(Timestamp::new(i + 1, WriterId(7)), Bytes::from("value"));
        kvs.put(Key::new(format!("dash/{i}")), LatticeValue::Lww(v))
            .await
            .expect("put");
    }
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn kvs_keys(snapshot: &Value) -> u64 {
    snapshot["shards"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["keys"].as_u64()).sum())
        .unwrap_or(0)
}

#[test]
fn protected_endpoints_answer_401_without_the_token() {
    run(async {
        let w = Workdir::new();
        let n = node(&w, "auth", "");
        for path in [
            "/",
            "/assets/app.js",
            "/assets/style.css",
            "/api/snapshot",
            "/api/history",
            "/api/events",
            "/metrics",
        ] {
            let r = get(n.dashboard, path, None).await;
            assert_eq!(r.status, 401, "{path} without a token");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            assert!(r.body.contains("missing_token"), "{path}: {}", r.body);
            let r = get(n.dashboard, path, Some("Bearer wrong")).await;
            assert_eq!(r.status, 401, "{path} with a wrong token");
            assert!(r.body.contains("invalid_token"), "{path}: {}", r.body);
        }
        // The page's ?token= becomes a cookie page scripts cannot read, and leaves the URL.
        let traded = get(n.dashboard, &format!("/?token={TOKEN}"), None).await;
        assert_eq!(traded.status, 303);
        assert_eq!(traded.header("location"), Some("/"));
        let cookie = traded.header("set-cookie").unwrap_or_default().to_string();
        assert!(
            cookie.starts_with(&format!("cloudburst_token={TOKEN};")),
            "{cookie}"
        );
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let wrong = get(n.dashboard, "/?token=wrong", None).await;
        assert_eq!(wrong.status, 401, "a wrong token is not traded");
        let with_cookie = [("Cookie", format!("cloudburst_token={TOKEN}"))];
        let with_cookie: Vec<(&str, &str)> =
            with_cookie.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = get_with(n.dashboard, "/", &with_cookie).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("<title>Cloudburst dashboard</title>"));
        let metrics = get(n.dashboard, "/metrics", Some(&bearer())).await;
        assert_eq!(metrics.status, 200);
        assert!(metrics
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"));
        assert_eq!(get(n.dashboard, "/healthz", None).await.status, 200);
    });
}

#[test]
fn pages_of_other_origins_and_rebound_names_are_refused() {
    run(async {
        let w = Workdir::new();
        let n = node(
            &w,
            "origin",
            "allowed_origins = [\"https://ops.example\"]\n",
        );
        let auth = bearer();
        let (own, dash) = (format!("http://{}", n.dashboard), n.dashboard);
        let ask = |headers: Vec<(&'static str, String)>| {
            let auth = auth.clone();
            async move {
                let mut all: Vec<(&str, &str)> = vec![("Authorization", auth.as_str())];
                all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
                get_with(dash, "/api/snapshot", &all).await
            }
        };
        let hostile = ask(vec![("Origin", "http://evil.example".into())]).await;
        assert_eq!(hostile.status, 403, "{}", hostile.body);
        assert!(
            hostile.body.contains("forbidden_origin"),
            "{}",
            hostile.body
        );
        let rebound = ask(vec![("Host", format!("evil.example:{}", dash.port()))]).await;
        assert_eq!(rebound.status, 403, "{}", rebound.body);
        for ok in [own.as_str(), "https://ops.example"] {
            let r = ask(vec![("Origin", ok.to_string())]).await;
            assert_ne!(r.status, 403, "{ok}: {}", r.body);
        }
        assert_ne!(ask(vec![]).await.status, 403, "no Origin: a program");
    });
}

#[test]
fn metrics_can_be_left_open_while_the_page_stays_protected() {
    run(async {
        let w = Workdir::new();
        let n = node(&w, "open", "metrics_require_token = false\n");
        assert_eq!(get(n.dashboard, "/metrics", None).await.status, 200);
        assert_eq!(get(n.dashboard, "/", None).await.status, 401);
        assert_eq!(get(n.dashboard, "/api/snapshot", None).await.status, 401);
    });
}

#[test]
fn snapshot_metrics_and_events_follow_kvs_puts() {
    run(async {
        let w = Workdir::new();
        let n = node(&w, "live", "");
        let (t, kvs) = kvs_client(&n).await;
        put_keys(&kvs, KEYS).await;
        let auth = bearer();
        let snap: Value = eventually(LIMIT, "the snapshot to count every key", || async {
            let r = get(n.dashboard, "/api/snapshot", Some(&auth)).await;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            (kvs_keys(&v) == KEYS).then_some(v)
        })
        .await;
        assert_eq!(snap["version"], 1);
        let me = &snap["nodes"][0];
        assert_eq!(me["id"], n.node.id.as_str());
        assert_eq!(me["state"], "alive");
        assert_eq!(me["roles"], serde_json::json!(["kvs", "gateway"]));
        assert_eq!(snap["shards"].as_array().map(Vec::len), Some(2));
        let puts: u64 = (0..2)
            .filter_map(|i| snap["shards"][i]["puts"].as_u64())
            .sum();
        assert_eq!(puts, KEYS);

        let text = get(n.dashboard, "/metrics", Some(&auth)).await.body;
        let series_sum = |name: &str| -> u64 {
            text.lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        assert_eq!(series_sum("cloudburst_kvs_keys"), KEYS, "{text}");
        assert_eq!(series_sum("cloudburst_kvs_puts_total"), KEYS);
        assert_eq!(series_sum("cloudburst_node_up"), 1);
        assert!(text.contains("# TYPE cloudburst_function_calls_total counter"));

        let events = read_events(n.dashboard, &format!("?token={TOKEN}"), 2).await;
        assert_eq!(events[0].0, "history", "history comes first");
        let history: Vec<Value> = serde_json::from_str(&events[0].1).expect("history json");
        assert!(!history.is_empty());
        let at: Vec<u64> = events
            .iter()
            .filter(|(e, _)| e == "snapshot")
            .map(|(_, d)| serde_json::from_str::<Value>(d).expect("snapshot json"))
            .map(|v| v["at_ms"].as_u64().expect("at_ms"))
            .collect();
        assert!(
            at.windows(2).all(|p| p[0] < p[1]),
            "fresh snapshots: {at:?}"
        );
        t.shutdown().await;
    });
}

#[test]
fn browser_shows_node_roles_and_key_counts_live() {
    run(async {
        let w = Workdir::new();
        let n = node(&w, "browser", "");
        let (t, kvs) = kvs_client(&n).await;
        let screenshot = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test-artifacts/dashboard-node.png");
        let _ = std::fs::remove_file(&screenshot);
        let (url, keys) = (n.url(), KEYS.to_string());
        let (node_id, shot) = (n.node.id.to_string(), screenshot.display().to_string());
        let mut browser = BrowserCheck::start(&[
            "--url",
            &url,
            "--token",
            TOKEN,
            "--expect-text",
            &node_id,
            "--expect-text",
            "kvs, gateway",
            "--expect-kvs-keys",
            &keys,
            "--screenshot",
            &shot,
        ]);
        // The page is open and rendered before the keys exist: it must update by itself.
        // (Blocking this thread while waiting is fine: nothing in-process needs to run.)
        browser.wait_line("page ready", BROWSER_TIMEOUT);
        put_keys(&kvs, KEYS).await;
        browser.finish(BROWSER_TIMEOUT);
        assert!(screenshot.exists(), "screenshot saved");
        t.shutdown().await;
    });
}
