//! Pickling test functions the way the Python client does: the venv's python runs
//! `cloudpickle.dumps` on each function of a source text and prints `name hex` lines.

use bytes::Bytes;
use cloudburst::pyrt::{interp, PyValue};
use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The project venv's python (scripts/setup.sh creates it).
pub fn venv_python() -> String {
    format!("{}/.venv/bin/python3", env!("CARGO_MANIFEST_DIR"))
}

/// Run `program` (which prints one `name hex` line per function) and collect the pickles.
pub fn pickle_all(program: &str) -> HashMap<String, Bytes> {
    let out = std::process::Command::new(venv_python())
        .args(["-c", program])
        .output()
        .expect("runs the venv python (scripts/setup.sh creates it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, hex)| (n.to_string(), Bytes::from(decode_hex(hex))))
        .collect()
}

/// The pickle of function `name` of `program`, pickling the whole program once per test
/// process into `cache`.
pub fn pickled_in(
    cache: &'static OnceLock<HashMap<String, Bytes>>,
    program: &str,
    name: &str,
) -> Bytes {
    let all = cache.get_or_init(|| pickle_all(program));
    all.get(name).cloned().expect("a known test function")
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A Python expression, evaluated in the embedded interpreter and pickled.
#[allow(dead_code)] // not every test crate including this module uses it
pub fn value(expr: &str) -> PyValue {
    interp::initialize().expect("embedded python");
    Python::attach(|py| {
        let code =
            std::ffi::CString::new(format!("__import__('pickle').dumps({expr})")).expect("no NUL");
        let b: Vec<u8> = py
            .eval(&code, None, None)
            .expect("evaluates")
            .extract()
            .expect("bytes");
        PyValue::Pickled(Bytes::from(b))
    })
}

/// `repr()` of an unpickled value (sets and concurrent versions as sorted lists of reprs,
/// so they compare stably).
#[allow(dead_code)] // not every test crate including this module uses it
pub fn repr(v: &PyValue) -> String {
    interp::initialize().expect("embedded python");
    Python::attach(|py| {
        let pickle = py.import("pickle").expect("pickle");
        let load = |b: &Bytes| {
            pickle
                .call_method1("loads", (b.as_ref(),))
                .expect("unpickles")
        };
        match v {
            PyValue::Pickled(b) => load(b).repr().expect("repr").to_string(),
            PyValue::PickledSet(items) | PyValue::Concurrent(items) => {
                let mut r: Vec<String> = items
                    .iter()
                    .map(|b| load(b).repr().expect("repr").to_string())
                    .collect();
                r.sort();
                let kind = if matches!(v, PyValue::Concurrent(_)) {
                    "concurrent"
                } else {
                    "set"
                };
                format!("{kind}{r:?}")
            }
        }
    })
}
