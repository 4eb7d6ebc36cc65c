//! Shared helpers for the function-plane tests: test functions pickled by the venv's python
//! (exactly as the client does), Python values made and read through the embedded
//! interpreter, and an in-process cluster (real transport on 127.0.0.1:0, real KVS shards,
//! scheduler, executor with real worker processes).
#![allow(dead_code)]

use crate::common::pickling;
use crate::common::wait;
#[allow(unused_imports)] // not every test module uses it
pub use wait::{eventually, until};

use bytes::Bytes;
use cloudburst::config::{parse_roles, Config};
use cloudburst::local::{LocalClient, LocalCluster};
use cloudburst::protocol::Arg;
use cloudburst::pyrt::FunctionKind;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

pub const READY: Duration = Duration::from_secs(15);

const FUNCTIONS: &str = r#"
import cloudpickle, os, sys, time

def incr(cb, x):
    return x + 1

def square(cb, x):
    return x * x

def fan_src(cb, x):
    return x

def left(cb, x):
    return ("left", x + 1)

def right(cb, x):
    return ("right", x * 10)

def join(cb, *parts):
    # each upstream's tuple arrives spread into two arguments
    return [parts[0:2], parts[2:4]]

def bump(cb):
    n = (cb.get("counter") or 0) + 1
    cb.put("counter", n)
    return n

def tag(cb, key):
    cb.put(key, {"x", "y"})
    return sorted(cb.get(key))

class Model:
    inits = 0
    def __init__(self, cb, scale):
        Model.inits += 1
        self.scale = scale
    def run(self, cb, x):
        return (os.getpid(), Model.inits, x * self.scale)

def fails(cb, x):
    def inner():
        raise ValueError("bad input %r" % (x,))
    inner()

def sleepy(cb, s):
    time.sleep(s)
    return s

def whoami(cb, *args):
    return cb.getid()

def ping(cb):
    cb.put("ping-id", cb.getid())
    deadline = time.time() + 10
    while time.time() < deadline:
        got = cb.recv()
        if got:
            return [(sender.rsplit("/", 1)[1], payload) for sender, payload in got]
        time.sleep(0.005)
    return "no message"

def pong(cb):
    deadline = time.time() + 10
    while time.time() < deadline:
        dest = cb.get("ping-id")
        if dest:
            cb.send(dest, b"hello")
            return "sent"
        time.sleep(0.005)
    return "no ping"

def cpu(cb, n):
    import os, time
    start = time.monotonic()
    sum(i * i for i in range(n))
    return (os.getpid(), start, time.monotonic())

out = {
    "incr": incr, "square": square, "fan_src": fan_src, "left": left, "right": right,
    "join": join, "bump": bump, "tag": tag, "model": (Model, (3,)), "fails": fails,
    "sleepy": sleepy, "whoami": whoami, "ping": ping, "pong": pong, "cpu": cpu,
}
for name, f in out.items():
    print(name, cloudpickle.dumps(f).hex())
"#;

/// cloudpickle bytes of a test function (see `FUNCTIONS`).
pub fn pickled(name: &str) -> Bytes {
    static ALL: OnceLock<HashMap<String, Bytes>> = OnceLock::new();
    pickling::pickled_in(&ALL, FUNCTIONS, name)
}

pub use pickling::value;

/// `Arg::Value(value(expr))`.
pub fn arg(expr: &str) -> Arg {
    Arg::Value(value(expr))
}

#[allow(unused_imports)] // not every test module uses it
pub use pickling::repr;

/// Arguments for one function of a DAG.
pub fn args_for(function: &str, args: Vec<Arg>) -> BTreeMap<String, Vec<Arg>> {
    [(function.to_string(), args)].into_iter().collect()
}

/// A node config for tests: loopback, port 0, `workers` Python workers of the built binary.
pub fn config(roles: &str, workers: usize) -> Config {
    let mut c = Config::default();
    c.node.roles = parse_roles(roles).expect("roles");
    c.node.listen = "127.0.0.1:0".parse().expect("addr");
    c.node.cluster_secret = "functions-test-secret".into();
    c.kvs.shards_per_node = 1;
    // As `transport_support::CONFIG`: quick, but no suspicion of a node starved for a moment.
    c.membership.heartbeat_ms = 50;
    c.membership.suspect_after_ms = 1000;
    c.membership.dead_after_ms = 2000;
    c.executor.workers = workers;
    c.executor.worker_exe = Some(env!("CARGO_BIN_EXE_cloudburst").into());
    c.validate().expect("valid test config");
    c
}

/// A one-node cluster with every function role, ready, and a client.
pub async fn cluster(workers: usize) -> (LocalCluster, LocalClient) {
    let c = LocalCluster::start(config("kvs,scheduler,executor", workers))
        .await
        .expect("cluster starts");
    c.wait_ready(1, READY).await.expect("ready");
    let client = c.client().await.expect("client");
    (c, client)
}

/// Register test functions by name (`model` as a class).
pub async fn register(client: &LocalClient, names: &[&str]) {
    for n in names {
        let kind = if *n == "model" {
            FunctionKind::Class
        } else {
            FunctionKind::Plain
        };
        client
            .register_function(client.record(n, kind, pickled(n)))
            .await
            .unwrap_or_else(|e| panic!("register {n}: {e}"));
    }
}

/// Run an async test body inside an actix System.
pub fn run<F: Future<Output = ()>>(body: F) {
    crate::common::logs::init();
    actix::System::new().block_on(body);
}
