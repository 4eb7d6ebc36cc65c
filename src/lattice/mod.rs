//! Lattices: the values of the KVS. Concurrent writes merge instead of conflicting.

/// A join-semilattice. `merge` must be associative, commutative and idempotent, and
/// `Default::default()` is bottom (the identity of `merge`).
pub trait Lattice: Clone + Default + PartialEq + std::fmt::Debug {
    /// Merge `other` into `self`; returns true if and only if `self` changed.
    fn merge(&mut self, other: Self) -> bool;
}
