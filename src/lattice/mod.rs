//! Lattices: the values of the KVS. Concurrent writes merge instead of conflicting.
//!
//! Every type here is a join-semilattice (see [`Lattice`] for the laws) and is checked by the
//! one generic law checker in [`laws`], with hand-picked and random values.
//!
//! # Types
//! - [`Lww`]: last-writer-wins register; ties on `(time, writer)` are broken by the value
//!   bytes, so merge is commutative even for a buggy writer that reuses a timestamp.
//! - [`SetUnion`]: grow-only set (hash set); [`OrderedSet`]: the same, kept in order.
//! - [`Max`]: the largest value seen; [`Priority`]: the entry with the lowest priority.
//! - [`Map`]: key-wise merge of an inner lattice.
//! - [`VectorClock`]: writer id ([`WriterId`](crate::ids::WriterId), a `u64`) -> counter,
//!   pointwise max, with a causal [`VectorClock::compare`], a base watermark (under the
//!   reserved writer [`BASE`]) that old entries fold into, and per writer a cloud of single
//!   events above its prefix (dots seen out of order).
//! - [`VersionSet`]: the maximal versions under the causal order (the shared core of the
//!   causal lattices); [`SingleKeyCausal`] and [`MultiKeyCausal`] (with dependencies).
//! - [`Tombstone`]: a delete, which merges with every kind (a later write beats it); a
//!   [`Recreated`] value is one of an [`Untimed`] kind written after a delete.
//! - [`LatticeValue`]: the tagged enum the KVS stores, with [`LatticeKind`] as its tag.

/// Merge two values of one enum of lattices (`LatticeValue`, `Untimed`) variant-wise: two
/// values of the same listed variant merge as that lattice does; any other pair is a kind
/// mismatch, neither changed.
macro_rules! merge_same_kind {
    ($enum:ident, $a:expr, $b:expr; $($variant:ident),+ $(,)?) => {
        match ($a, $b) {
            $(($enum::$variant(a), $enum::$variant(b)) => Ok(a.merge(b)),)+
            (have, got) => Err(LatticeError::KindMismatch {
                have: have.kind(),
                got: got.kind(),
            }),
        }
    };
}

pub mod laws;
mod lww;
mod map;
mod max;
mod multi_key_causal;
mod ordered_set;
mod priority;
mod set_union;
mod single_key_causal;
#[cfg(test)]
pub(crate) mod strategies;
mod tombstone;
mod value;
mod vector_clock;
mod version_set;

pub use lww::{Lww, Timestamp};
pub use map::Map;
pub use max::Max;
pub use multi_key_causal::{Dependencies, MultiKeyCausal, MultiKeyVersion};
pub use ordered_set::OrderedSet;
pub use priority::Priority;
pub use set_union::SetUnion;
pub use single_key_causal::SingleKeyCausal;
pub use tombstone::{Recreated, Tombstone, Untimed};
pub use value::{LatticeKind, LatticeValue};
pub use vector_clock::{VectorClock, BASE};
pub use version_set::VersionSet;

/// A join-semilattice.
///
/// For all values `a`, `b`, `c` of the type, writing `a ⊔ b` for "`a` after
/// `a.merge(b)`":
/// - **associative**: `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`;
/// - **commutative**: `a ⊔ b == b ⊔ a`;
/// - **idempotent**: `a ⊔ a == a`;
/// - **bottom**: `Default::default()` is the identity: `a ⊔ ⊥ == ⊥ ⊔ a == a`;
/// - **truthful**: `a.merge(b)` returns true if and only if `a` changed (by `PartialEq`),
///   so a replica gossips only what changed.
///
/// Merges never panic, whatever the input. [`laws::check_laws`] checks all of the above.
pub trait Lattice: Clone + Default + PartialEq + std::fmt::Debug {
    /// Merge `other` into `self`; returns true if and only if `self` changed.
    fn merge(&mut self, other: Self) -> bool;

    /// Merge a borrowed `other` into `self` (clones it by default); same result as `merge`.
    fn merge_ref(&mut self, other: &Self) -> bool {
        self.merge(other.clone())
    }

    /// True if `self` is bottom (`Default::default()`).
    fn is_bottom(&self) -> bool {
        *self == Self::default()
    }
}

/// Approximate heap footprint, for cache capacity and KVS statistics.
pub trait ByteSize {
    /// Approximate bytes used by this value, including its own inline size.
    fn byte_size(&self) -> usize;
}

/// Bytes charged per entry of a collection on top of its elements' own sizes: an estimate of
/// a B-tree or hash-table slot with its pointers, so that many tiny elements are not free.
pub const ENTRY_OVERHEAD_BYTES: usize = 16;

impl ByteSize for bytes::Bytes {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.len()
    }
}

impl ByteSize for crate::ids::Key {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.as_str().len()
    }
}

macro_rules! inline_byte_size {
    ($($t:ty),*) => {$(
        impl ByteSize for $t {
            fn byte_size(&self) -> usize {
                std::mem::size_of::<Self>()
            }
        }
    )*};
}
inline_byte_size!(u64, i64, u32, i32, crate::ids::WriterId);

/// Errors of lattice operations on stored values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LatticeError {
    /// Two values of different kinds cannot be merged (a client wrote the key with another
    /// lattice type). The stored value is left unchanged.
    #[error("cannot merge a {got} value into a {have} value")]
    KindMismatch {
        /// The kind of the value being merged into.
        have: LatticeKind,
        /// The kind of the incoming value.
        got: LatticeKind,
    },
    /// A lattice kind name that is not one of [`LatticeKind::ALL`].
    #[error("unknown lattice kind {0:?}")]
    UnknownKind(String),
}
