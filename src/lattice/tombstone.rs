//! Deletes as lattice values: a [`Tombstone`] records that a key was deleted at a time; a
//! [`Recreated`] value is what was written to the key after the delete was seen.
//!
//! # How a delete merges with the other kinds
//! Every stored value stands somewhere against deletes: a delete at `t` stands at `t`, an
//! Lww register at its write's timestamp, a value of a kind whose writes carry no time
//! (sets, counters, causal values: [`Untimed`]) below every timestamp, and a [`Recreated`]
//! value at the delete it came after. Where values stand decides a merge: the one that
//! stands later wins whole. At the same time, a recreated value ranks above the bare
//! tombstone it came after, which ranks above an Lww register of that very timestamp; two
//! recreated values after the same delete merge their contents (as their kind does); two
//! equal tombstones are one. So:
//! - a later Lww write beats a delete, an earlier one loses to it;
//! - a delete beats every value of an untimed kind it meets: on a replica that had not seen
//!   the delete yet when such a write came, the write is lost (a write concurrent with a
//!   delete may lose);
//! - a write of an untimed kind that reaches a replica *after* the delete is taken as
//!   written after it ([`written_over`]): it becomes a [`Recreated`] value that beats the
//!   tombstone on every replica, so delete-then-write works for every kind.
//!
//! These rules order values lexicographically by (epoch, rank, content), with a lattice
//! only in the last place, so merge stays associative, commutative and idempotent over
//! the values of one kind together with tombstones (checked by the law checker).
//!
//! A bare tombstone reads as a missing key; replicas drop it once it is safe (the KVS core
//! says when). A recreated value is never turned back into a plain one: a replica that
//! collapsed it while another still held the tombstone would lose the writes it made since.

use super::{
    ByteSize, Lattice, LatticeError, LatticeKind, LatticeValue, Max, MultiKeyCausal, OrderedSet,
    Priority, SetUnion, SingleKeyCausal, Timestamp,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// A delete of a key at `at` (the deleter's write clock). Bottom: a delete at time zero.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Tombstone {
    /// When and by whom the key was deleted.
    pub at: Timestamp,
}

impl Tombstone {
    /// A delete at `at`.
    pub fn new(at: Timestamp) -> Self {
        Tombstone { at }
    }
}

impl Lattice for Tombstone {
    fn merge(&mut self, other: Self) -> bool {
        if other.at > self.at {
            self.at = other.at;
            true
        } else {
            false
        }
    }
}

impl ByteSize for Tombstone {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// A value of a kind whose writes carry no time of their own (every kind but Lww and the
/// delete family): what a [`Recreated`] value holds. Its own enum, not a boxed
/// [`LatticeValue`], so a decoded value cannot nest without bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Untimed {
    SetUnion(SetUnion<Bytes>),
    Max(Max<i64>),
    OrderedSet(OrderedSet<Bytes>),
    Priority(Priority<u64, Bytes>),
    SingleKeyCausal(SingleKeyCausal),
    MultiKeyCausal(MultiKeyCausal),
}

impl Untimed {
    /// `value` if its kind carries no write time, else `value` back unchanged.
    pub fn from_value(value: LatticeValue) -> Result<Untimed, LatticeValue> {
        use LatticeValue as V;
        match value {
            V::SetUnion(v) => Ok(Untimed::SetUnion(v)),
            V::Max(v) => Ok(Untimed::Max(v)),
            V::OrderedSet(v) => Ok(Untimed::OrderedSet(v)),
            V::Priority(v) => Ok(Untimed::Priority(v)),
            V::SingleKeyCausal(v) => Ok(Untimed::SingleKeyCausal(v)),
            V::MultiKeyCausal(v) => Ok(Untimed::MultiKeyCausal(v)),
            other @ (V::Lww(_) | V::Tombstone(_) | V::Recreated(_)) => Err(other),
        }
    }

    /// The kind of the value.
    pub fn kind(&self) -> LatticeKind {
        match self {
            Untimed::SetUnion(_) => LatticeKind::SetUnion,
            Untimed::Max(_) => LatticeKind::Max,
            Untimed::OrderedSet(_) => LatticeKind::OrderedSet,
            Untimed::Priority(_) => LatticeKind::Priority,
            Untimed::SingleKeyCausal(_) => LatticeKind::SingleKeyCausal,
            Untimed::MultiKeyCausal(_) => LatticeKind::MultiKeyCausal,
        }
    }

    /// Merge as the kind does; values of different kinds are refused, unchanged.
    fn merge(&mut self, other: Untimed) -> Result<bool, LatticeError> {
        use Untimed as U;
        merge_same_kind!(U, self, other;
            SetUnion, Max, OrderedSet, Priority, SingleKeyCausal, MultiKeyCausal)
    }

    fn byte_size(&self) -> usize {
        match self {
            Untimed::SetUnion(v) => v.byte_size(),
            Untimed::Max(v) => v.byte_size(),
            Untimed::OrderedSet(v) => v.byte_size(),
            Untimed::Priority(v) => v.byte_size(),
            Untimed::SingleKeyCausal(v) => v.byte_size(),
            Untimed::MultiKeyCausal(v) => v.byte_size(),
        }
    }
}

impl From<Untimed> for LatticeValue {
    fn from(v: Untimed) -> Self {
        match v {
            Untimed::SetUnion(v) => LatticeValue::SetUnion(v),
            Untimed::Max(v) => LatticeValue::Max(v),
            Untimed::OrderedSet(v) => LatticeValue::OrderedSet(v),
            Untimed::Priority(v) => LatticeValue::Priority(v),
            Untimed::SingleKeyCausal(v) => LatticeValue::SingleKeyCausal(v),
            Untimed::MultiKeyCausal(v) => LatticeValue::MultiKeyCausal(v),
        }
    }
}

/// A value of an untimed kind written to a key after its delete was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recreated {
    /// The delete the value came after.
    pub deleted: Tombstone,
    /// What was written since.
    pub value: Untimed,
}

impl Recreated {
    /// Approximate bytes, for size limits and statistics.
    pub fn byte_size(&self) -> usize {
        self.deleted.byte_size() + self.value.byte_size()
    }
}

/// Where a value stands against deletes: `(epoch, rank)` (see the module doc).
fn standing(v: &LatticeValue) -> (Option<Timestamp>, u8) {
    match v {
        LatticeValue::Lww(l) => (Some(l.timestamp), 0),
        LatticeValue::Tombstone(t) => (Some(t.at), 1),
        LatticeValue::Recreated(r) => (Some(r.deleted.at), 2),
        _ => (None, 0),
    }
}

/// Whether merging `t` into `v` would leave it unchanged.
pub(super) fn covers(v: &LatticeValue, t: &Tombstone) -> bool {
    standing(v) >= (Some(t.at), 1)
}

/// True for a tombstone or a recreated value (the merges this module decides).
pub(super) fn is_delete_family(v: &LatticeValue) -> bool {
    matches!(v, LatticeValue::Tombstone(_) | LatticeValue::Recreated(_))
}

/// Merge where at least one side is a tombstone or a recreated value; `Ok(true)` if `a`
/// changed. Only two recreated values of different kinds after the same delete fail.
pub(super) fn merge(a: &mut LatticeValue, b: LatticeValue) -> Result<bool, LatticeError> {
    match standing(a).cmp(&standing(&b)) {
        Ordering::Greater => Ok(false),
        Ordering::Less => {
            *a = b;
            Ok(true)
        }
        Ordering::Equal => match (a, b) {
            (LatticeValue::Recreated(x), LatticeValue::Recreated(y)) => x.value.merge(y.value),
            // Equal tombstones (the only other way to stand equal here).
            _ => Ok(false),
        },
    }
}

/// `incoming`, a client's write, as applied over `stored`: a write of an untimed kind that
/// finds the key deleted is taken as written after the delete (a [`Recreated`] value);
/// anything else is unchanged. Merging the result is then an ordinary merge.
pub fn written_over(stored: Option<&LatticeValue>, incoming: LatticeValue) -> LatticeValue {
    let deleted = match stored {
        Some(LatticeValue::Tombstone(t)) => *t,
        Some(LatticeValue::Recreated(r)) => r.deleted,
        _ => return incoming,
    };
    match Untimed::from_value(incoming) {
        Ok(value) => LatticeValue::Recreated(Box::new(Recreated { deleted, value })),
        Err(incoming) => incoming,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WriterId;
    use crate::lattice::laws::check_laws;
    use crate::lattice::strategies::roundtrip;
    use crate::lattice::Lww;

    fn ts(t: u64) -> Timestamp {
        Timestamp::new(t, WriterId(1))
    }

    fn set(items: &[&'static str]) -> LatticeValue {
        LatticeValue::SetUnion(
            items
                .iter()
                .map(|s| Bytes::from_static(s.as_bytes()))
                .collect(),
        )
    }

    fn tomb(t: u64) -> LatticeValue {
        LatticeValue::Tombstone(Tombstone::new(ts(t)))
    }

    fn merged(mut a: LatticeValue, b: LatticeValue) -> LatticeValue {
        a.merge(b).expect("merges");
        a
    }

    #[test]
    fn tombstones_alone_are_a_lattice() {
        let t = |time, w| Tombstone::new(Timestamp::new(time, WriterId(w)));
        check_laws(&[
            Tombstone::default(),
            t(1, 1),
            t(1, 2),
            t(2, 0),
            t(u64::MAX, 0),
        ])
        .unwrap();
    }

    #[test]
    fn a_later_lww_write_beats_a_delete_and_an_earlier_one_loses() {
        let old = LatticeValue::Lww(Lww::new(ts(1), "old"));
        let new = LatticeValue::Lww(Lww::new(ts(3), "new"));
        assert_eq!(merged(old.clone(), tomb(2)), tomb(2));
        assert_eq!(merged(tomb(2), old), tomb(2));
        assert_eq!(merged(tomb(2), new.clone()), new);
        assert_eq!(merged(new.clone(), tomb(2)), new);
        let same_time = LatticeValue::Lww(Lww::new(ts(2), "tie"));
        assert_eq!(merged(same_time, tomb(2)), tomb(2), "a delete wins a tie");
    }

    #[test]
    fn a_delete_beats_untimed_values_and_a_write_after_it_beats_the_delete() {
        assert_eq!(merged(set(&["a"]), tomb(5)), tomb(5));
        assert_eq!(merged(tomb(5), set(&["a"])), tomb(5));
        let again = written_over(Some(&tomb(5)), set(&["b"]));
        assert!(matches!(&again, LatticeValue::Recreated(r) if r.deleted.at == ts(5)));
        assert_eq!(again.kind(), LatticeKind::SetUnion);
        // Wherever the delete and the rewrite meet, the rewrite stands.
        assert_eq!(merged(tomb(5), again.clone()), again);
        assert_eq!(merged(set(&["a"]), again.clone()), again);
        // Later writes reaching the recreated key join it.
        let more = written_over(Some(&again), set(&["c"]));
        let both = merged(again.clone(), more);
        assert_eq!(both.clone().into_live(), Some(set(&["b", "c"])));
        // A later delete wins again.
        assert_eq!(merged(both, tomb(6)), tomb(6));
    }

    #[test]
    fn writes_that_find_no_delete_and_timed_writes_are_not_changed() {
        let lww = LatticeValue::Lww(Lww::new(ts(9), "v"));
        assert_eq!(written_over(Some(&tomb(5)), lww.clone()), lww);
        assert_eq!(written_over(None, set(&["a"])), set(&["a"]));
        assert_eq!(written_over(Some(&set(&["x"])), set(&["a"])), set(&["a"]));
        assert_eq!(written_over(Some(&tomb(5)), tomb(7)), tomb(7));
    }

    #[test]
    fn recreated_values_of_different_kinds_are_refused() {
        let a = written_over(Some(&tomb(5)), set(&["a"]));
        let b = written_over(Some(&tomb(5)), LatticeValue::Max(Max::new(1)));
        let mut x = a.clone();
        assert!(matches!(x.merge(b), Err(LatticeError::KindMismatch { .. })));
        assert_eq!(x, a);
    }

    #[test]
    fn delete_family_values_round_trip() {
        for v in [tomb(3), written_over(Some(&tomb(3)), set(&["a"]))] {
            assert_eq!(roundtrip(&v), v);
        }
    }
}
