//! Pickling test functions the way the Python client does: the venv's python runs
//! `cloudpickle.dumps` on each function of a source text and prints `name hex` lines.

use bytes::Bytes;
use cloudburst::pyrt::{interp, PyValue};
use pyo3::prelude::*;
use std::collections::HashMap;

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
