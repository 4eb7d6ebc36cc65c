//! Python values in the KVS, no I/O: `PyValue::Pickled` is stored as an Lww register,
//! `PyValue::PickledSet` as a SetUnion; and the per-writer clock that timestamps Lww writes.

use crate::ids::{NodeRef, WriterId};
use crate::lattice::{LatticeValue, Lww, SetUnion, Timestamp};
use crate::pyrt::PyValue;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};

/// A Python value as the KVS stores it, timestamped by `clock` when it is an Lww write.
pub fn to_lattice(value: PyValue, clock: &Clock) -> LatticeValue {
    match value {
        PyValue::Pickled(b) => LatticeValue::Lww(Lww::new(clock.next(), b)),
        // Concurrent values are only ever read; stored back they would be a set.
        PyValue::PickledSet(items) | PyValue::Concurrent(items) => {
            LatticeValue::SetUnion(items.into_iter().collect())
        }
    }
}

/// A stored value as Python sees it. An empty Lww register (bottom) reads as `None`; a
/// causal value with one version reads as that value, with several as
/// [`PyValue::Concurrent`]; other lattice kinds cannot be read from Python and give an
/// error naming the key and kind.
pub fn to_python(key: &str, value: Option<LatticeValue>) -> Result<Option<PyValue>, String> {
    match value {
        None => Ok(None),
        Some(LatticeValue::Lww(l)) if l.value.is_empty() => Ok(None),
        Some(LatticeValue::Lww(l)) => Ok(Some(PyValue::Pickled(l.value))),
        Some(LatticeValue::SetUnion(s)) => Ok(Some(PyValue::PickledSet(set_items(&s)))),
        Some(LatticeValue::MultiKeyCausal(m)) => Ok(versions(m.values())),
        Some(LatticeValue::SingleKeyCausal(s)) => Ok(versions(s.values())),
        Some(other) => Err(format!(
            "key `{key}` holds a {} lattice; Python functions read lww and set_union values",
            other.kind()
        )),
    }
}

/// One value, several concurrent ones, or none (bottom).
fn versions(values: Vec<&bytes::Bytes>) -> Option<PyValue> {
    match values.as_slice() {
        [] => None,
        [one] => Some(PyValue::Pickled((*one).clone())),
        many => Some(PyValue::Concurrent(
            many.iter().map(|b| (*b).clone()).collect(),
        )),
    }
}

fn set_items(s: &SetUnion<bytes::Bytes>) -> Vec<bytes::Bytes> {
    s.iter().cloned().collect()
}

/// Lww timestamps of one writer: wall-clock microseconds, strictly increasing even if the
/// clock stalls or steps back, so two writes by one writer never tie.
#[derive(Debug)]
pub struct Clock {
    writer: WriterId,
    last: AtomicU64,
}

impl Clock {
    /// A clock for `writer`.
    pub fn new(writer: WriterId) -> Self {
        Clock {
            writer,
            last: AtomicU64::new(0),
        }
    }

    /// A clock whose writer id is derived from `node` (id and generation).
    pub fn for_node(node: &NodeRef) -> Self {
        Clock::new(writer_of(node))
    }

    /// The next timestamp: `max(now, last + 1)`.
    pub fn next(&self) -> Timestamp {
        let now = now_micros();
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let t = now.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, t, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Timestamp::new(t, self.writer),
                Err(seen) => last = seen,
            }
        }
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A writer id for one incarnation of a node (a restarted node writes as a new writer).
pub fn writer_of(node: &NodeRef) -> WriterId {
    WriterId(hash64(&[
        node.id.as_str().as_bytes(),
        &node.generation.0.to_le_bytes(),
    ]))
}

/// A stable 64-bit hash of some byte strings (SHA-256, first 8 bytes).
pub fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn values_round_trip_and_kinds() {
        let clock = Clock::new(WriterId(3));
        let one = PyValue::Pickled(Bytes::from_static(b"p1"));
        let lv = to_lattice(one.clone(), &clock);
        assert!(matches!(&lv, LatticeValue::Lww(l) if l.timestamp.writer == WriterId(3)));
        assert_eq!(to_python("k", Some(lv)).expect("reads"), Some(one));
        let set = PyValue::PickledSet(vec![Bytes::from_static(b"a")]);
        let lv = to_lattice(set.clone(), &clock);
        assert!(matches!(lv, LatticeValue::SetUnion(_)));
        assert_eq!(to_python("k", Some(lv)).expect("reads"), Some(set));
        assert_eq!(to_python("k", None).expect("missing"), None);
        let max = LatticeValue::bottom(crate::lattice::LatticeKind::Max);
        let e = to_python("k", Some(max)).unwrap_err();
        assert!(e.contains("max"), "{e}");
    }

    #[test]
    fn clock_is_strictly_increasing() {
        let c = Clock::new(WriterId(1));
        let mut last = c.next();
        for _ in 0..1000 {
            let t = c.next();
            assert!(t > last);
            last = t;
        }
        assert_ne!(hash64(&[b"ab", b"c"]), hash64(&[b"a", b"bc"]));
    }
}
