//! The one generic law checker, run over every lattice type (and over [`LatticeValue`]s of
//! one kind, alone and mixed with tombstones and values recreated after them) with
//! hand-picked and random values.
//!
//! It checks, over all pairs and triples of the given values plus bottom: idempotence,
//! commutativity, associativity, bottom as identity, that `merge`'s bool is truthful
//! (true if and only if the value changed), and that `merge_ref` agrees with `merge`.
//!
//! [`LatticeValue`]: super::LatticeValue

use super::Lattice;
use std::fmt::{self, Debug, Display};

/// One of the laws of [`Lattice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// `a ⊔ a == a`, and the merge reports no change.
    Idempotence,
    /// `a ⊔ b == b ⊔ a`.
    Commutativity,
    /// `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`.
    Associativity,
    /// `a ⊔ ⊥ == ⊥ ⊔ a == a`.
    BottomIdentity,
    /// `a.merge(b)` returns true if and only if `a` changed.
    TruthfulReturn,
    /// `merge_ref` gives the same value and the same bool as `merge`.
    MergeRefAgrees,
    /// The merge itself returned an error (e.g. a kind mismatch).
    MergeFailed,
}

/// A broken law, with the values that break it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LawViolation {
    /// Which law.
    pub law: Law,
    /// The inputs and results, in `Debug` form.
    pub detail: String,
}

impl Display for LawViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lattice law {:?} violated: {}", self.law, self.detail)
    }
}

impl std::error::Error for LawViolation {}

fn violation(law: Law, detail: String) -> Result<(), LawViolation> {
    Err(LawViolation { law, detail })
}

/// Check every law of [`Lattice`] on `values` (plus bottom, which is always added).
pub fn check_laws<L: Lattice>(values: &[L]) -> Result<(), LawViolation> {
    check_laws_with(values, &L::default(), |a: &mut L, b: L| {
        Ok::<bool, std::convert::Infallible>(a.merge(b))
    })?;
    for a in values {
        for b in values {
            let (mut by_value, mut by_ref) = (a.clone(), a.clone());
            let changed = (by_value.merge(b.clone()), by_ref.merge_ref(b));
            if by_value != by_ref || changed.0 != changed.1 {
                return violation(
                    Law::MergeRefAgrees,
                    format!(
                        "a = {a:?}, b = {b:?}: merge gave {by_value:?} ({}), \
                         merge_ref gave {by_ref:?} ({})",
                        changed.0, changed.1
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Check the laws for any type with a fallible `merge` and a given `bottom`: this is how
/// [`LatticeValue`](super::LatticeValue)s of one kind are checked.
pub fn check_laws_with<T, E, F>(values: &[T], bottom: &T, merge: F) -> Result<(), LawViolation>
where
    T: Clone + PartialEq + Debug,
    E: Display,
    F: Fn(&mut T, T) -> Result<bool, E>,
{
    let join = |a: &T, b: &T| -> Result<(T, bool), LawViolation> {
        let mut out = a.clone();
        match merge(&mut out, b.clone()) {
            Ok(changed) => Ok((out, changed)),
            Err(e) => Err(LawViolation {
                law: Law::MergeFailed,
                detail: format!("a = {a:?}, b = {b:?}: {e}"),
            }),
        }
    };
    let mut all: Vec<T> = values.to_vec();
    all.push(bottom.clone());
    for a in &all {
        check_unary(a, bottom, &join)?;
    }
    for a in &all {
        for b in &all {
            check_pair(a, b, &join)?;
        }
    }
    for a in &all {
        for b in &all {
            let (ab, _) = join(a, b)?;
            for c in &all {
                let (left, _) = join(&ab, c)?;
                let (bc, _) = join(b, c)?;
                let (right, _) = join(a, &bc)?;
                if left != right {
                    return violation(
                        Law::Associativity,
                        format!(
                            "a = {a:?}, b = {b:?}, c = {c:?}: \
                             (a⊔b)⊔c = {left:?} but a⊔(b⊔c) = {right:?}"
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

type Join<'a, T> = dyn Fn(&T, &T) -> Result<(T, bool), LawViolation> + 'a;

fn check_unary<T: PartialEq + Debug>(
    a: &T,
    bottom: &T,
    join: &Join<T>,
) -> Result<(), LawViolation> {
    let (aa, changed) = join(a, a)?;
    if aa != *a || changed {
        return violation(
            Law::Idempotence,
            format!("a = {a:?}: a⊔a = {aa:?}, reported changed = {changed}"),
        );
    }
    let (a_bottom, changed) = join(a, bottom)?;
    if a_bottom != *a || changed {
        return violation(
            Law::BottomIdentity,
            format!("a = {a:?}: a⊔⊥ = {a_bottom:?}, reported changed = {changed}"),
        );
    }
    let (bottom_a, changed) = join(bottom, a)?;
    if bottom_a != *a || changed != (a != bottom) {
        return violation(
            Law::BottomIdentity,
            format!("a = {a:?}: ⊥⊔a = {bottom_a:?}, reported changed = {changed}"),
        );
    }
    Ok(())
}

fn check_pair<T: PartialEq + Debug>(a: &T, b: &T, join: &Join<T>) -> Result<(), LawViolation> {
    let (ab, changed) = join(a, b)?;
    let (ba, _) = join(b, a)?;
    if ab != ba {
        return violation(
            Law::Commutativity,
            format!("a = {a:?}, b = {b:?}: a⊔b = {ab:?} but b⊔a = {ba:?}"),
        );
    }
    if changed != (ab != *a) {
        return violation(
            Law::TruthfulReturn,
            format!("a = {a:?}, b = {b:?}: a⊔b = {ab:?} but merge returned {changed}"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the left operand unless the right one is larger, except that 3 always wins
    /// over 2 and 2 over 3 (no order at all): not commutative.
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Broken(u8);

    impl Lattice for Broken {
        fn merge(&mut self, other: Self) -> bool {
            let take = other.0 > self.0 || (self.0, other.0) == (3, 2);
            if take {
                self.0 = other.0;
            }
            take
        }
    }

    /// Reports a change that did not happen.
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Liar(u8);

    impl Lattice for Liar {
        fn merge(&mut self, other: Self) -> bool {
            self.0 = self.0.max(other.0);
            other.0 > 0
        }
    }

    #[test]
    fn max_of_u8_passes() {
        #[derive(Clone, Debug, Default, PartialEq)]
        struct M(u8);
        impl Lattice for M {
            fn merge(&mut self, other: Self) -> bool {
                let changed = other.0 > self.0;
                self.0 = self.0.max(other.0);
                changed
            }
        }
        check_laws(&[M(0), M(1), M(7), M(255)]).unwrap();
    }

    #[test]
    fn catches_non_commutative_merge() {
        let err = check_laws(&[Broken(2), Broken(3)]).unwrap_err();
        assert_eq!(err.law, Law::Commutativity, "{err}");
    }

    #[test]
    fn catches_lying_return() {
        let err = check_laws(&[Liar(1), Liar(2)]).unwrap_err();
        assert!(
            matches!(err.law, Law::Idempotence | Law::TruthfulReturn),
            "{err}"
        );
    }

    #[test]
    fn reports_merge_errors() {
        let err = check_laws_with(&[1u8], &0, |_, _| Err::<bool, _>("nope")).unwrap_err();
        assert_eq!(err.law, Law::MergeFailed);
        assert!(err.to_string().contains("nope"));
    }
}
