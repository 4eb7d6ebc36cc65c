//! Pickling test functions the way the Python client does: the venv's python runs
//! `cloudpickle.dumps` on each function of a source text and prints `name hex` lines.

use bytes::Bytes;
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
