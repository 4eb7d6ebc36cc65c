//! Names of stored versions and the parts of causal clocks the rules read: the
//! fingerprint that pins a repeatable-read version, a value's clock, this node's causal
//! writer id, the write time that judges the horizon.

use crate::ids::{hash64, NodeRef, WriterId};
use crate::lattice::{Dependencies, LatticeValue, VectorClock};
use sha2::{Digest, Sha256};

/// Feed `v`'s bincode encoding (the wire form) to `out` piece by piece, without building
/// it; false if it cannot be encoded.
pub(in crate::actors::executor) fn encode_into<T: serde::Serialize>(
    v: &T,
    out: impl FnMut(&[u8]),
) -> bool {
    struct Sink<F>(F);
    impl<F: FnMut(&[u8])> std::io::Write for Sink<F> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            (self.0)(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    bincode::serde::encode_into_std_write(v, &mut Sink(out), bincode::config::standard()).is_ok()
}

/// A 64-bit identity of a stored version, the same on every node (0: missing). An Lww
/// version is named by its timestamp (writers never reuse one) and length, so a large value
/// is not hashed on every repeatable read; other kinds have no version id and are hashed.
pub fn fingerprint(value: Option<&LatticeValue>) -> u64 {
    let fp = match value {
        None => return 0,
        Some(LatticeValue::Lww(l)) => hash64(&[
            &l.timestamp.time.to_le_bytes(),
            &l.timestamp.writer.0.to_le_bytes(),
            &(l.value.len() as u64).to_le_bytes(),
        ]),
        Some(other) => {
            let mut h = Sha256::new();
            if !encode_into(other, |b| h.update(b)) {
                // Unencodable (cannot happen for stored values): never equal to another.
                return u64::MAX;
            }
            let d = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&d[..8]);
            u64::from_le_bytes(first)
        }
    };
    fp.max(1)
}

/// The vector clock of a stored value (empty when missing, deleted or of a kind without
/// one; a value recreated after a delete has its own).
pub fn clock_of(value: Option<&LatticeValue>) -> VectorClock {
    match value.and_then(LatticeValue::live).as_deref() {
        Some(LatticeValue::MultiKeyCausal(m)) => m.clock(),
        Some(LatticeValue::SingleKeyCausal(s)) => s.clock(),
        _ => VectorClock::new(),
    }
}

/// The reserved writer whose counter in a causal clock is the latest write time (µs) in
/// the history (a max register: never above a later write's).
pub const WRITE_TIME: WriterId = WriterId(u64::MAX);

/// The causal writer id of an executor node: stable across restarts (its id, not its
/// generation), never one of the reserved writers.
pub fn causal_writer(node: &NodeRef) -> WriterId {
    WriterId(hash64(&[node.id.as_str().as_bytes()]).clamp(1, u64::MAX - 1))
}

/// `deps` without the dependencies written before `floor` (µs).
pub fn prune(deps: &Dependencies, floor: u64) -> Dependencies {
    deps.iter()
        .filter(|(_, c)| c.get(WRITE_TIME) > floor)
        .map(|(k, c)| (k.clone(), c.clone()))
        .collect()
}
