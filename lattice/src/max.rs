//! [`MaxInt`]: the lattice of naturals under `max`.
//!
//! Hand-written: `crdts` has no max-register.

use serde::{Deserialize, Serialize};

use crate::{Lattice, Numeric, Query};

/// A natural number joined by `max`; bottom is 0.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct MaxInt(pub u64);

impl MaxInt {
    /// The delta of raising the value to at least `v` (bottom if already there).
    pub fn set_delta(&self, v: u64) -> Self {
        if v > self.0 {
            MaxInt(v)
        } else {
            MaxInt(0)
        }
    }

    /// Raises the value to at least `v`; returns the delta.
    pub fn set(&mut self, v: u64) -> Self {
        let d = self.set_delta(v);
        self.join(&d);
        d
    }

    /// The delta of adding `n` to the value.
    pub fn inc_delta(&self, n: u64) -> Self {
        self.set_delta(self.0.saturating_add(n))
    }

    /// Adds `n` to the value; returns the delta.
    pub fn inc(&mut self, n: u64) -> Self {
        let d = self.inc_delta(n);
        self.join(&d);
        d
    }
}

impl Lattice for MaxInt {
    fn bottom() -> Self {
        MaxInt(0)
    }
    fn is_bottom(&self) -> bool {
        self.0 == 0
    }
    fn join(&mut self, other: &Self) -> bool {
        if other.0 > self.0 {
            self.0 = other.0;
            true
        } else {
            false
        }
    }
    fn leq(&self, other: &Self) -> bool {
        self.0 <= other.0
    }
    fn decompose(&self) -> Vec<Self> {
        // A chain: every non-bottom element is join-irreducible.
        if self.is_bottom() {
            vec![]
        } else {
            vec![*self]
        }
    }
    fn delta(&self, other: &Self) -> Self {
        if self.0 > other.0 {
            *self
        } else {
            MaxInt(0)
        }
    }
    fn threshold_value(&self) -> Option<i64> {
        Some(self.value())
    }
    crate::summary_hooks!();
}

/// The summary is the value itself (a chain has nothing smaller to say).
impl crate::Summarize for MaxInt {
    type Summary = u64;
    fn summary(&self) -> u64 {
        self.0
    }
    fn delta_since(&self, summary: &u64) -> Self {
        self.delta(&MaxInt(*summary))
    }
}

impl Query for MaxInt {
    type Value = u64;
    fn query(&self) -> u64 {
        self.0
    }
}

/// Monotone: the value never decreases.
impl Numeric for MaxInt {
    const MONOTONE: bool = true;
    fn value(&self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}
