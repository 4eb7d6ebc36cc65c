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

/// Encoding and decoding of values as the client protocol and the workers do it: native
/// MessagePack, pickles inside extension type 1, and protocol 1's plain pickles still read.
const CODEC: &str = r#"
import msgpack, pickle
def _ext(code, data):
    return pickle.loads(data) if code == 1 else msgpack.ExtType(code, data)
def pack(obj):
    return msgpack.packb(obj, use_bin_type=True, strict_types=True,
                         default=lambda o: msgpack.ExtType(1, pickle.dumps(o)))
def unpack(data):
    if len(data) > 1 and data[0] == 0x80:
        return pickle.loads(data)
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext)
"#;

/// Call `f` with the codec's module namespace.
fn with_codec<T>(f: impl FnOnce(Python<'_>, &Bound<'_, pyo3::types::PyDict>) -> T) -> T {
    interp::initialize().expect("embedded python");
    Python::attach(|py| {
        let ns = pyo3::types::PyDict::new(py);
        let code = std::ffi::CString::new(CODEC).expect("no NUL");
        py.run(&code, Some(&ns), Some(&ns)).expect("codec");
        f(py, &ns)
    })
}

/// A Python expression, evaluated in the embedded interpreter and encoded as a client
/// encodes a value.
#[allow(dead_code)] // not every test module uses it
pub fn value(expr: &str) -> PyValue {
    with_codec(|py, ns| {
        let code = std::ffi::CString::new(format!("pack({expr})")).expect("no NUL");
        let b: Vec<u8> = py
            .eval(&code, Some(ns), Some(ns))
            .expect("evaluates")
            .extract()
            .expect("bytes");
        PyValue::Packed(Bytes::from(b))
    })
}

/// A Python expression, evaluated and pickled as protocol 1 stored values.
#[allow(dead_code)] // not every test module uses it
pub fn legacy_value(expr: &str) -> PyValue {
    with_codec(|py, ns| {
        let code =
            std::ffi::CString::new(format!("pickle.dumps({expr}, protocol=5)")).expect("no NUL");
        let b: Vec<u8> = py
            .eval(&code, Some(ns), Some(ns))
            .expect("evaluates")
            .extract()
            .expect("bytes");
        PyValue::Packed(Bytes::from(b))
    })
}

/// `repr()` of a decoded value (sets and concurrent versions as sorted lists of reprs,
/// so they compare stably).
#[allow(dead_code)] // not every test module uses it
pub fn repr(v: &PyValue) -> String {
    with_codec(|_py, ns| {
        let unpack = ns.get_item("unpack").expect("dict").expect("unpack");
        let load = |b: &Bytes| unpack.call1((b.as_ref(),)).expect("decodes");
        match v {
            PyValue::Packed(b) => load(b).repr().expect("repr").to_string(),
            PyValue::PackedSet(items) | PyValue::Concurrent(items) => {
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
