//! [`Pair`]: the product of two lattices, ordered and joined component-wise.

use serde::{Deserialize, Serialize};

use crate::{Lattice, Query};

/// The product lattice `A × B`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair<A, B>(pub A, pub B);

impl<A: Lattice, B: Lattice> Pair<A, B> {
    /// Applies mutator `f` (which returns its delta) to the first component; returns the
    /// pair's delta `(δ, ⊥)`.
    pub fn update_first(&mut self, f: impl FnOnce(&mut A) -> A) -> Self {
        Pair(f(&mut self.0), B::bottom())
    }

    /// Applies mutator `f` (which returns its delta) to the second component; returns the
    /// pair's delta `(⊥, δ)`.
    pub fn update_second(&mut self, f: impl FnOnce(&mut B) -> B) -> Self {
        Pair(A::bottom(), f(&mut self.1))
    }
}

impl<A: Lattice, B: Lattice> Lattice for Pair<A, B> {
    fn bottom() -> Self {
        Pair(A::bottom(), B::bottom())
    }
    fn is_bottom(&self) -> bool {
        self.0.is_bottom() && self.1.is_bottom()
    }
    fn join(&mut self, other: &Self) -> bool {
        let a = self.0.join(&other.0);
        let b = self.1.join(&other.1);
        a || b
    }
    fn leq(&self, other: &Self) -> bool {
        self.0.leq(&other.0) && self.1.leq(&other.1)
    }
    fn decompose(&self) -> Vec<Self> {
        let a = self.0.decompose().into_iter().map(|a| Pair(a, B::bottom()));
        let b = self.1.decompose().into_iter().map(|b| Pair(A::bottom(), b));
        a.chain(b).collect()
    }
    fn delta(&self, other: &Self) -> Self {
        Pair(self.0.delta(&other.0), self.1.delta(&other.1))
    }
}

impl<A: Query, B: Query> Query for Pair<A, B> {
    type Value = (A::Value, B::Value);
    fn query(&self) -> Self::Value {
        (self.0.query(), self.1.query())
    }
}
