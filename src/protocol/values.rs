//! Python values in the KVS, no I/O (the gateway, the executors and the harness store and
//! read them the same way): `PyValue::Pickled` is stored as an Lww register,
//! `PyValue::PickledSet` as a SetUnion.

use crate::clock::LwwClock;
use crate::lattice::{LatticeValue, Lww, SetUnion};
use crate::pyrt::PyValue;

/// A Python value as the KVS stores it, timestamped by `clock` when it is an Lww write.
pub fn to_lattice(value: PyValue, clock: &LwwClock) -> LatticeValue {
    match value {
        PyValue::Pickled(b) => LatticeValue::Lww(Lww::new(clock.next(), b)),
        // Concurrent values are only ever read; stored back they would be a set.
        PyValue::PickledSet(items) | PyValue::Concurrent(items) => {
            LatticeValue::SetUnion(items.into_iter().collect())
        }
    }
}

/// A stored value as Python sees it. A deleted key (a tombstone) and the Lww register's
/// bottom (never written) read as `None`, but a written empty payload is a value like any other (a client of the raw
/// protocol may store empty bytes, and must read them back); a
/// causal value with one version reads as that value, with several as
/// [`PyValue::Concurrent`]; other lattice kinds cannot be read from Python and give an
/// error naming the key and kind.
pub fn to_python(key: &str, value: Option<LatticeValue>) -> Result<Option<PyValue>, String> {
    match value.and_then(LatticeValue::into_live) {
        None => Ok(None),
        Some(LatticeValue::Lww(l)) if l == Lww::default() => Ok(None),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::writer_clock;
    use crate::ids::WriterId;
    use bytes::Bytes;

    #[test]
    fn values_round_trip_and_kinds() {
        let clock = writer_clock(WriterId(3));
        let one = PyValue::Pickled(Bytes::from_static(b"p1"));
        let lv = to_lattice(one.clone(), &clock);
        assert!(matches!(&lv, LatticeValue::Lww(l) if l.timestamp.writer == WriterId(3)));
        assert_eq!(to_python("k", Some(lv)).expect("reads"), Some(one));
        let set = PyValue::PickledSet(vec![Bytes::from_static(b"a")]);
        let lv = to_lattice(set.clone(), &clock);
        assert!(matches!(lv, LatticeValue::SetUnion(_)));
        assert_eq!(to_python("k", Some(lv)).expect("reads"), Some(set));
        assert_eq!(to_python("k", None).expect("missing"), None);
        let empty = PyValue::Pickled(Bytes::new());
        let lv = to_lattice(empty.clone(), &clock);
        assert_eq!(
            to_python("k", Some(lv)).expect("reads"),
            Some(empty),
            "not missing"
        );
        let deleted = LatticeValue::Tombstone(crate::lattice::Tombstone::new(clock.next()));
        assert_eq!(to_python("k", Some(deleted)).expect("deleted"), None);
        let bottom = LatticeValue::Lww(Lww::default());
        assert_eq!(to_python("k", Some(bottom)).expect("bottom"), None);
        let max = LatticeValue::bottom(crate::lattice::LatticeKind::Max);
        let e = to_python("k", Some(max)).unwrap_err();
        assert!(e.contains("max"), "{e}");
    }
}
