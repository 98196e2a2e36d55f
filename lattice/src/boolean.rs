//! [`Boolean`]: Lasp's `state_boolean`, the two-element lattice `false < true` with explicit
//! join (logical or).
//!
//! **Explicit join, not enable-wins.** Once any replica sets it, it is `true` everywhere, for
//! good: there is no disable. A flag that can be turned off again is an [`crate::EWFlag`]
//! (enable-wins) or a [`crate::DWFlag`] (disable-wins). Because it cannot go back, every read of
//! it is monotone: a threshold read on `true` that fired stays true.
//!
//! Hand-written: `crdts` has no boolean.

use serde::{Deserialize, Serialize};

use crate::{Actor, Lattice, Numeric, Query};

/// `false < true`, joined by `or`. Bottom is `false`.
///
/// ```
/// use rasp_lattice::{Boolean, Lattice, Query};
///
/// let mut a = Boolean::bottom();
/// let d = a.enable(1);
/// let mut b = Boolean::bottom();
/// assert!(b.join(&d));
/// assert!(b.query() && !b.join(&Boolean::bottom()));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Boolean(bool);

impl Boolean {
    /// The delta of setting it to `true` (bottom if it already is).
    pub fn set_delta(&self) -> Self {
        Boolean(!self.0)
    }

    /// Sets it to `true`; returns the delta.
    pub fn set(&mut self) -> Self {
        let d = self.set_delta();
        self.0 = true;
        d
    }

    /// The delta of enabling, on behalf of `actor`: the flags' signature (see [`crate::flag`]);
    /// the actor is not recorded.
    pub fn enable_delta(&self, _actor: Actor) -> Self {
        self.set_delta()
    }

    /// Enables (sets to `true`) on behalf of `actor`; returns the delta.
    pub fn enable(&mut self, actor: Actor) -> Self {
        let d = self.enable_delta(actor);
        self.join(&d);
        d
    }

    /// The value.
    pub fn get(&self) -> bool {
        self.0
    }
}

impl From<bool> for Boolean {
    fn from(b: bool) -> Self {
        Boolean(b)
    }
}

impl Lattice for Boolean {
    fn bottom() -> Self {
        Boolean(false)
    }
    fn is_bottom(&self) -> bool {
        !self.0
    }
    fn join(&mut self, other: &Self) -> bool {
        let changed = other.0 && !self.0;
        self.0 |= other.0;
        changed
    }
    fn leq(&self, other: &Self) -> bool {
        !self.0 || other.0
    }
    fn decompose(&self) -> Vec<Self> {
        if self.0 {
            vec![*self]
        } else {
            vec![]
        }
    }
    fn delta(&self, other: &Self) -> Self {
        Boolean(self.0 && !other.0)
    }
    fn threshold_value(&self) -> Option<i64> {
        Some(self.value())
    }
}

impl Query for Boolean {
    type Value = bool;
    fn query(&self) -> bool {
        self.0
    }
}

/// `0` or `1`, never decreasing: `Threshold::value(1)` waits for `true`.
impl Numeric for Boolean {
    const MONOTONE: bool = true;
    fn value(&self) -> i64 {
        i64::from(self.0)
    }
}
