//! The provider against a mock API server on 127.0.0.1 that records every request
//! (method, path, body, token, content type) and answers from a script the way the API
//! server does; each test asserts the exact requests.

use super::*;
use crate::actors::monitor::launches::{Effect, Launches};
use crate::config::KubernetesConfig;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const NS: &str = "cb";
const DEPLOY: &str = "/apis/apps/v1/namespaces/cb/deployments/cloudburst-executor/scale";
const STS: &str = "/apis/apps/v1/namespaces/cb/statefulsets/cloudburst-kvs/scale";
const EXEC_PODS: &str = "/api/v1/namespaces/cb/pods?labelSelector=app.kubernetes.io%2Fname%3Dcloudburst%2Capp.kubernetes.io%2Fcomponent%3Dexecutor";
const TOKEN: &str = "token-1";

/// One request as the mock saw it.
#[derive(Debug, PartialEq)]
struct Seen {
    method: String,
    path: String,
    body: Option<Value>,
}

struct Mock {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests with a wrong token or content type.
    bad: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    token_file: PathBuf,
}

/// Serve `script`'s answers (status, body) in order, one request per connection.
fn mock(script: Vec<(u16, Value)>) -> Mock {
    serve(script, None)
}

/// [`mock`] over TLS with `tls` (`https://`).
fn serve(script: Vec<(u16, Value)>, tls: Option<Arc<rustls::ServerConfig>>) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(vec![]));
    let bad = Arc::new(Mutex::new(vec![]));
    let (s, b) = (seen.clone(), bad.clone());
    std::thread::spawn(move || {
        for (status, reply) in script {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            match &tls {
                None => answer(stream, status, &reply, &s, &b),
                Some(cfg) => {
                    let Ok(conn) = rustls::ServerConnection::new(cfg.clone()) else {
                        return;
                    };
                    answer(
                        rustls::StreamOwned::new(conn, stream),
                        status,
                        &reply,
                        &s,
                        &b,
                    );
                }
            }
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
    Mock {
        url,
        seen,
        bad,
        _dir: dir,
        token_file,
    }
}

fn answer<S: Read + Write>(
    stream: S,
    status: u16,
    reply: &Value,
    seen: &Mutex<Vec<Seen>>,
    bad: &Mutex<Vec<String>>,
) {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return; // a client that refused our certificate
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut length, mut auth, mut ctype) = (0usize, String::new(), String::new());
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').expect("header colon");
        match k.to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse().expect("length"),
            "authorization" => auth = v.trim().to_string(),
            "content-type" => ctype = v.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).expect("body");
    let body: Option<Value> =
        (length > 0).then(|| serde_json::from_slice(&body).expect("json body"));
    if auth != format!("Bearer {TOKEN}") {
        bad.lock()
            .expect("lock")
            .push(format!("{method} {path}: token {auth:?}"));
    }
    let want_ctype = match method.as_str() {
        "PATCH" => "application/merge-patch+json",
        "PUT" => "application/json",
        _ => "",
    };
    if ctype != want_ctype {
        bad.lock()
            .expect("lock")
            .push(format!("{method} {path}: content type {ctype:?}"));
    }
    seen.lock().expect("lock").push(Seen {
        method,
        path: path.clone(),
        body,
    });
    let text = reply.to_string();
    let w = r.get_mut();
    // Lists come chunked, as the API server sends large answers; the rest sized.
    let head = if path.contains("pods?") {
        format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{text}\r\n0\r\n\r\n", text.len())
    } else {
        format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}", text.len())
    };
    let _ = w.write_all(head.as_bytes());
    let _ = w.flush();
}

impl Mock {
    fn provider(&self) -> KubeProvider {
        self.provider_with_ca(None)
    }

    fn provider_with_ca(&self, ca_file: Option<PathBuf>) -> KubeProvider {
        let k = KubernetesConfig {
            enabled: true,
            api_server: self.url.clone(),
            namespace: NS.into(),
            token_file: Some(self.token_file.clone()),
            ca_file,
            ..KubernetesConfig::default()
        };
        KubeProvider::new(KubeSettings::in_cluster(&k, 4).expect("settings")).expect("provider")
    }

    /// The requests so far (drained), after checking each carried the token.
    fn take(&self) -> Vec<Seen> {
        assert_eq!(*self.bad.lock().expect("lock"), Vec::<String>::new());
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }
}

fn req(method: &str, path: &str, body: Option<Value>) -> Seen {
    Seen {
        method: method.into(),
        path: path.into(),
        body,
    }
}

fn scale(name: &str, rv: &str, replicas: u32) -> Value {
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": name, "namespace": NS, "uid": "u-1", "resourceVersion": rv,
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": "app.kubernetes.io/name=cloudburst"}})
}

/// The body a scale change must PUT: the object read, new replicas, same resource version.
fn put_scale(name: &str, rv: &str, replicas: u32) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": rv},
        "spec": {"replicas": replicas}})
}

fn pod(name: &str, component: &str, phase: &str, waiting: Option<&str>) -> Value {
    let state = match waiting {
        Some(r) => json!({"waiting": {"reason": r}}),
        None => json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
    };
    json!({"metadata": {"name": name, "namespace": NS,
            "labels": {"app.kubernetes.io/name": "cloudburst", COMPONENT_LABEL: component}},
        "status": {"phase": phase, "containerStatuses": [{"name": "node", "ready": false, "state": state}]}})
}

fn list(pods: Vec<Value>) -> Value {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": pods})
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
        "reason": reason, "message": message})
}

fn ids(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(NodeId::new).collect()
}

#[test]
fn launch_scales_the_deployment_up_and_returns_the_pods_that_appear() {
    let a = pod("x-a", "executor", "Running", None);
    let m = mock(vec![
        (200, list(vec![a.clone()])),
        (200, scale("cloudburst-executor", "41", 1)),
        (200, scale("cloudburst-executor", "42", 3)),
        (
            200,
            list(vec![
                a.clone(),
                pod("x-c", "executor", "Pending", Some("ContainerCreating")),
            ]),
        ),
        (
            200,
            list(vec![
                a,
                pod("x-c", "executor", "Pending", None),
                pod("x-b", "executor", "Pending", None),
            ]),
        ),
    ]);
    let mut p = m.provider();
    let launched = p.launch(NodeKind::Executor, 2, &[]).expect("launch");
    assert_eq!(launched, ids(&["x-b", "x-c"]));
    assert_eq!(
        m.take(),
        vec![
            req("GET", EXEC_PODS, None),
            req("GET", DEPLOY, None),
            req(
                "PUT",
                DEPLOY,
                Some(put_scale("cloudburst-executor", "41", 3))
            ),
            req("GET", EXEC_PODS, None),
            req("GET", EXEC_PODS, None),
        ]
    );
}

#[test]
fn a_conflict_reads_the_scale_again_and_builds_on_what_changed() {
    let m = mock(vec![
        (200, list(vec![])),
        (200, scale("cloudburst-executor", "7", 1)),
        (409, status(409, "Conflict", "the object has been modified")),
        (200, scale("cloudburst-executor", "8", 2)),
        (200, scale("cloudburst-executor", "9", 3)),
        (200, list(vec![pod("x-new", "executor", "Pending", None)])),
    ]);
    let launched = m
        .provider()
        .launch(NodeKind::Executor, 1, &[])
        .expect("launch");
    assert_eq!(launched, ids(&["x-new"]));
    assert_eq!(
        m.take(),
        vec![
            req("GET", EXEC_PODS, None),
            req("GET", DEPLOY, None),
            req(
                "PUT",
                DEPLOY,
                Some(put_scale("cloudburst-executor", "7", 2))
            ),
            req("GET", DEPLOY, None),
            req(
                "PUT",
                DEPLOY,
                Some(put_scale("cloudburst-executor", "8", 3))
            ),
            req("GET", EXEC_PODS, None),
        ]
    );
}

#[test]
fn conflicts_without_end_fail_the_launch_and_the_limit_is_never_passed() {
    let mut script = vec![(200, list(vec![]))];
    for _ in 0..=MAX_CONFLICT_RETRIES {
        script.push((200, scale("cloudburst-executor", "7", 1)));
        script.push((409, status(409, "Conflict", "modified")));
    }
    let m = mock(script);
    let err = m
        .provider()
        .launch(NodeKind::Executor, 1, &[])
        .expect_err("conflicts");
    assert!(err.to_string().contains("409 Conflict"), "{err}");
    assert_eq!(m.take().len(), 1 + 2 * (MAX_CONFLICT_RETRIES as usize + 1));

    let m = mock(vec![
        (200, list(vec![])),
        (200, scale("cloudburst-executor", "7", 3)),
    ]);
    let err = m
        .provider()
        .launch(NodeKind::Executor, 2, &[])
        .expect_err("limit 4");
    assert!(
        matches!(err, ProviderError::AtLimit { asked: 2, limit: 4 }),
        "{err}"
    );
    assert_eq!(
        m.take(),
        vec![req("GET", EXEC_PODS, None), req("GET", DEPLOY, None)],
        "no PUT past the limit"
    );
}

#[test]
fn terminate_marks_the_victim_cheapest_before_the_scale_down_and_only_once() {
    let b = pod("x-b", "executor", "Running", None);
    let mut deleting = b.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    let m = mock(vec![
        (200, b.clone()),
        (200, b),
        (200, scale("cloudburst-executor", "5", 3)),
        (200, scale("cloudburst-executor", "6", 2)),
        (
            200,
            list(vec![pod("x-a", "executor", "Running", None), deleting]),
        ),
    ]);
    let mut p = m.provider();
    p.terminate(&NodeId::new("x-b")).expect("terminate");
    p.terminate(&NodeId::new("x-b"))
        .expect("again: nothing to do");
    let pod_path = "/api/v1/namespaces/cb/pods/x-b";
    let patch = json!({"metadata": {"annotations": {
        "controller.kubernetes.io/pod-deletion-cost": "-2147483648"}}});
    assert_eq!(
        m.take(),
        vec![
            req("GET", pod_path, None),
            req("PATCH", pod_path, Some(patch)),
            req("GET", DEPLOY, None),
            req(
                "PUT",
                DEPLOY,
                Some(put_scale("cloudburst-executor", "5", 2))
            ),
        ],
        "annotated, then scaled down by one; the second terminate asks nothing"
    );
    let listed = p.list();
    assert_eq!(
        listed,
        vec![
            ProvidedNode {
                node: NodeId::new("x-a"),
                running: true
            },
            ProvidedNode {
                node: NodeId::new("x-b"),
                running: false
            },
        ]
    );
    assert_eq!(m.take(), vec![req("GET", EXEC_PODS, None)]);
}

#[test]
fn a_pod_already_gone_or_going_is_not_scaled_down_for() {
    let mut going = pod("x-b", "executor", "Running", None);
    going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    let m = mock(vec![
        (404, status(404, "NotFound", "pods \"x-a\" not found")),
        (200, going),
    ]);
    let mut p = m.provider();
    p.terminate(&NodeId::new("x-a")).expect("gone");
    p.terminate(&NodeId::new("x-b")).expect("going");
    assert_eq!(
        m.take(),
        vec![
            req("GET", "/api/v1/namespaces/cb/pods/x-a", None),
            req("GET", "/api/v1/namespaces/cb/pods/x-b", None),
        ]
    );
}

#[test]
fn a_failing_api_server_keeps_the_last_list_and_names_its_error() {
    let m = mock(vec![
        (200, list(vec![pod("x-a", "executor", "Running", None)])),
        (500, status(500, "InternalError", "etcd is sad")),
        (
            403,
            status(403, "Forbidden", "cannot patch resource \"pods\""),
        ),
    ]);
    let mut p = m.provider();
    let first = p.list();
    assert_eq!(p.list(), first, "a failed list keeps the last one");
    let err = p.terminate(&NodeId::new("x-a")).expect_err("forbidden");
    assert!(
        err.to_string().contains("403 cannot patch resource"),
        "{err}"
    );
}

#[test]
fn a_pod_that_never_becomes_ready_is_replaced_and_a_crash_looping_one_at_once() {
    let timeout = Duration::from_secs(30);
    let mut launches = Launches::new(timeout, 3);
    let t0 = Instant::now();
    let stuck = pod("x-b", "executor", "Pending", Some("ContainerCreating"));
    let m = mock(vec![
        // launch 1
        (200, list(vec![])),
        (200, scale("cloudburst-executor", "1", 0)),
        (200, scale("cloudburst-executor", "2", 1)),
        (200, list(vec![stuck.clone()])),
        // a tick before the timeout, and at it
        (200, list(vec![stuck.clone()])),
        (200, list(vec![stuck.clone()])),
        // terminate x-b
        (200, stuck.clone()),
        (200, stuck.clone()),
        (200, scale("cloudburst-executor", "3", 1)),
        (200, scale("cloudburst-executor", "4", 0)),
        // launch again: x-c crash-loops
        (200, list(vec![stuck.clone()])),
        (200, scale("cloudburst-executor", "4", 0)),
        (200, scale("cloudburst-executor", "5", 1)),
        (
            200,
            list(vec![
                stuck,
                pod("x-c", "executor", "Running", Some("CrashLoopBackOff")),
            ]),
        ),
        (
            200,
            list(vec![pod(
                "x-c",
                "executor",
                "Running",
                Some("CrashLoopBackOff"),
            )]),
        ),
    ]);
    let mut p = m.provider();
    launches.launched(p.launch(NodeKind::Executor, 1, &[]).expect("launch"), t0);
    let joined = BTreeSet::new();
    let early = launches.reconcile(&joined, &p.list(), t0 + timeout - Duration::from_secs(1));
    assert_eq!(early, vec![], "not late yet");
    let effects = launches.reconcile(&joined, &p.list(), t0 + timeout);
    assert_eq!(
        effects,
        vec![Effect::Terminate(NodeId::new("x-b")), Effect::Relaunch(1)]
    );
    p.terminate(&NodeId::new("x-b")).expect("terminate");
    let again = p.launch(NodeKind::Executor, 1, &[]).expect("relaunch");
    assert_eq!(again, ids(&["x-c"]));
    launches.launched(again, t0 + timeout);
    let effects = launches.reconcile(&joined, &p.list(), t0 + timeout);
    assert_eq!(
        effects,
        vec![Effect::Terminate(NodeId::new("x-c")), Effect::Relaunch(1)],
        "a crash-looping pod fails without waiting for the timeout"
    );
    let seen = m.take();
    let writes: Vec<&Seen> = seen.iter().filter(|s| s.method != "GET").collect();
    assert_eq!(
        writes,
        vec![
            &req(
                "PUT",
                DEPLOY,
                Some(put_scale("cloudburst-executor", "1", 1))
            ),
            &req(
                "PATCH",
                "/api/v1/namespaces/cb/pods/x-b",
                Some(json!({"metadata": {"annotations": {
                    "controller.kubernetes.io/pod-deletion-cost": "-2147483648"}}}))
            ),
            &req(
                "PUT",
                DEPLOY,
                Some(put_scale("cloudburst-executor", "3", 0))
            ),
            &req(
                "PUT",
                DEPLOY,
                Some(put_scale("cloudburst-executor", "4", 1))
            ),
        ]
    );
}

#[test]
fn kvs_nodes_grow_by_ordinal_and_only_the_highest_is_removed() {
    let kvs1 = pod("cloudburst-kvs-1", "kvs", "Running", None);
    let kvs2 = pod("cloudburst-kvs-2", "kvs", "Running", None);
    let m = mock(vec![
        (200, scale("cloudburst-kvs", "10", 3)),
        (200, scale("cloudburst-kvs", "10", 3)),
        (200, scale("cloudburst-kvs", "11", 5)),
        (200, kvs1),
        (200, scale("cloudburst-kvs", "11", 5)),
        (200, kvs2),
        (200, scale("cloudburst-kvs", "12", 3)),
        (200, scale("cloudburst-kvs", "13", 2)),
    ]);
    let mut p = m.provider();
    assert_eq!(
        p.kvs_victim().expect("victim"),
        Some(NodeId::new("cloudburst-kvs-2"))
    );
    let grown = p.launch_kvs(2).expect("grow");
    assert_eq!(grown, ids(&["cloudburst-kvs-3", "cloudburst-kvs-4"]));
    let err = p
        .terminate(&NodeId::new("cloudburst-kvs-1"))
        .expect_err("not the highest");
    assert_eq!(
        err.to_string(),
        "cannot terminate node cloudburst-kvs-1: cloudburst-kvs has 5 replicas: only its highest ordinal can be removed (drain that one)"
    );
    p.terminate(&NodeId::new("cloudburst-kvs-2"))
        .expect("the highest of 3");
    assert_eq!(
        m.take(),
        vec![
            req("GET", STS, None),
            req("GET", STS, None),
            req("PUT", STS, Some(put_scale("cloudburst-kvs", "10", 5))),
            req("GET", "/api/v1/namespaces/cb/pods/cloudburst-kvs-1", None),
            req("GET", STS, None),
            req("GET", "/api/v1/namespaces/cb/pods/cloudburst-kvs-2", None),
            req("GET", STS, None),
            req("PUT", STS, Some(put_scale("cloudburst-kvs", "12", 2))),
        ],
        "no PUT for a KVS pod that is not the highest ordinal"
    );
}

#[test]
fn https_checks_the_api_servers_certificate_against_the_ca() {
    use crate::actors::gateway::tls::{server_config, write_test_certificates};
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = write_test_certificates(dir.path(), &["127.0.0.1".to_string()]).expect("certs");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other =
        write_test_certificates(other_dir.path(), &["127.0.0.1".to_string()]).expect("certs");
    let tls = Arc::new(server_config(&ours.cert, &ours.key).expect("server config"));
    let a = pod("x-a", "executor", "Running", None);
    let m = serve(
        vec![(200, list(vec![a.clone()])), (200, list(vec![a]))],
        Some(tls),
    );
    let listed = m.provider_with_ca(Some(ours.ca.clone())).list();
    assert_eq!(
        listed,
        vec![ProvidedNode {
            node: NodeId::new("x-a"),
            running: true
        }]
    );
    assert_eq!(m.take(), vec![req("GET", EXEC_PODS, None)]);
    // A server whose certificate another CA signed is refused: nothing is listed.
    assert_eq!(m.provider_with_ca(Some(other.ca)).list(), vec![]);
    assert_eq!(m.take(), vec![], "no request reached a server not trusted");
}
