//! Shared helpers for the Python runtime tests: functions pickled by the venv's python
//! (exactly as the client does), pickling/unpickling values through the embedded
//! interpreter, a log capture, an in-memory user library and pool construction.
#![allow(dead_code)]

use crate::common::pickling;
use crate::common::wait;
#[allow(unused_imports)] // not every test module uses it
pub use wait::until;

use bytes::Bytes;
use cloudburst::ids::Key;
use cloudburst::pyrt::{
    FunctionKind, FunctionSpec, LibError, PoolConfig, PyCall, PyValue, PythonPool, UserLibrary,
};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

#[allow(unused_imports)] // not every test module uses it
pub use pickling::venv_python;

/// Test functions, defined in `__main__` so cloudpickle pickles them by value.
const FUNCTIONS: &str = r#"
import cloudpickle, os, sys, time

def add(cb, a, b):
    return a + b

def probe(cb, none_arg, set_arg, n):
    return (none_arg is None, sorted(set_arg), n)

def raises(cb, x):
    def inner():
        raise ValueError("bad value %d" % x)
    inner()

def spin(cb):
    while True:
        pass

class Counter:
    inits = 0
    def __init__(self, cb, start):
        Counter.inits += 1
        self.calls = start
    def run(self, cb, x):
        self.calls += 1
        return (os.getpid(), Counter.inits, self.calls, x)

def library(cb, k):
    before = cb.get(k)
    cb.put(k, (before or 0) + 1)
    cb.put("tags", {"a", "b"})
    many = cb.get([k, "missing"])
    cb.send("peer-1", b"hello")
    cb.send("peer-1", {"n": 5})
    return (before, many, cb.getid(), cb.recv())

def lib_error(cb):
    import sys
    try:
        cb.get("forbidden")
    except Exception as e:
        errors = sys.modules[type(e).__module__]  # the package's errors, or the worker's copy
        family = isinstance(e, errors.CloudburstError)
        return (type(e).__name__, e.code, e.retryable, family, str(e))

def errors_fallback(cb):
    # The copy of the client's errors.py every worker loads, for a Python without the
    # client package: importable, and the same families.
    import cloudburst_errors as e
    err = e.error_for("session_expired", "gone")
    return (type(err).__name__, err.code, err.retryable, type(e.error_for("new", "")).__name__)

def gil_probe(cb):
    import threading
    count, stop = [0], [False]
    def spin():
        while not stop[0]:
            count[0] += 1
    t = threading.Thread(target=spin)
    t.start()
    a = count[0]
    time.sleep(0.1)  # releases the GIL: the spinner's rate with the GIL free
    rate = (count[0] - a) / 0.1
    b = count[0]
    started = time.monotonic()
    cb.get("slow")
    waited = time.monotonic() - started
    during = count[0] - b
    stop[0] = True
    t.join()
    return during / (rate * waited)

def cpu(cb, n):
    import os, time
    start = time.monotonic()
    sum(i * i for i in range(n))
    return (os.getpid(), start, time.monotonic())

def printer(cb, marker):
    print("user says", marker)
    return 1

def exits(cb):
    os._exit(3)

def env(cb):
    return (sys.version, sys.prefix)

out = {
    "add": add, "probe": probe, "raises": raises, "spin": spin, "library": library,
    "lib_error": lib_error, "errors_fallback": errors_fallback, "gil_probe": gil_probe, "cpu": cpu, "printer": printer, "exits": exits, "env": env,
    "counter": (Counter, (10,)),
}
for name, f in out.items():
    print(name, cloudpickle.dumps(f).hex())
"#;

/// cloudpickle bytes of a test function (see `FUNCTIONS`).
pub fn pickled(name: &str) -> Bytes {
    static ALL: OnceLock<HashMap<String, Bytes>> = OnceLock::new();
    pickling::pickled_in(&ALL, FUNCTIONS, name)
}

pub fn function(name: &str, kind: FunctionKind) -> Arc<FunctionSpec> {
    Arc::new(FunctionSpec {
        name: name.into(),
        hash: 1,
        body: pickled(name),
        kind,
    })
}

pub fn call(name: &str, args: Vec<Option<PyValue>>, timeout: Duration) -> PyCall {
    let kind = if name == "counter" {
        FunctionKind::Class
    } else {
        FunctionKind::Plain
    };
    PyCall::new(function(name, kind), args, timeout)
}

pub use pickling::value;

#[allow(unused_imports)] // not every test module uses it
pub use pickling::legacy_value;

#[allow(unused_imports)] // not every test module uses it
pub use pickling::repr;

/// Everything logged by this test binary (tracing), for checking forwarded `print` output.
pub fn log_text() -> String {
    crate::common::logs::text()
}

/// Start a pool of `workers` real worker processes (the built `cloudburst` binary).
pub async fn pool(workers: usize) -> PythonPool {
    pool_with(PoolConfig::new(workers, env!("CARGO_BIN_EXE_cloudburst"))).await
}

pub async fn pool_with(cfg: PoolConfig) -> PythonPool {
    crate::common::logs::init();
    PythonPool::start(cfg).await.expect("pool starts")
}

/// An in-memory user library recording what functions did.
#[derive(Default)]
pub struct MemLibrary {
    pub store: Mutex<HashMap<Key, PyValue>>,
    pub sent: Mutex<Vec<(String, Bytes)>>,
    pub inbox: Mutex<Vec<(String, Bytes)>>,
    pub refuse: Option<LibError>,
    /// How long each `get` takes.
    pub get_delay: Option<Duration>,
}

impl UserLibrary for MemLibrary {
    fn get(&self, keys: Vec<Key>) -> BoxFuture<'static, Result<Vec<Option<PyValue>>, LibError>> {
        let r = match &self.refuse {
            Some(why) => Err(why.clone()),
            None => {
                let store = self.store.lock().expect("lock");
                Ok(keys.iter().map(|k| store.get(k).cloned()).collect())
            }
        };
        let delay = self.get_delay;
        Box::pin(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            r
        })
    }
    fn put(&self, key: Key, value: PyValue) -> BoxFuture<'static, Result<(), LibError>> {
        self.store.lock().expect("lock").insert(key, value);
        Box::pin(async { Ok(()) })
    }
    fn delete(&self, key: Key) -> BoxFuture<'static, Result<(), LibError>> {
        self.store.lock().expect("lock").remove(&key);
        Box::pin(async { Ok(()) })
    }
    fn send(&self, dest: String, payload: Bytes) -> BoxFuture<'static, Result<(), LibError>> {
        self.sent.lock().expect("lock").push((dest, payload));
        Box::pin(async { Ok(()) })
    }
    fn recv(&self) -> Vec<(String, Bytes)> {
        std::mem::take(&mut *self.inbox.lock().expect("lock"))
    }
    fn id(&self) -> String {
        "exec-7".into()
    }
}

pub fn lib() -> Arc<dyn UserLibrary> {
    Arc::new(MemLibrary::default())
}
