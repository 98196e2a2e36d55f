//! [`LexCounter`]: the lexicographic counter (Lasp's `state_lexcounter`; Baquero, Almeida,
//! Cunha, Ferreira, "Composition in State-based Replicated Data Types", Bulletin of the EATCS
//! 123, 2017, §4: the lexicographic product).
//!
//! Each actor owns one entry, a pair `(version, value)` ordered lexicographically: an increment
//! raises the value (`(v, x + n)`), a decrement bumps the version and lowers the value
//! (`(v + 1, x − n)`), so every update by the owner is an inflation of its entry although the
//! value can go down. Entries join by lexicographic max; the counter's value is the sum of the
//! entries' values. A PN-counter does the same with two grow-only counters; this one keeps a
//! single integer per actor.
//!
//! Hand-written: `crdts` has no lexicographic counter.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Actor, Lattice, Numeric, Query};

/// A counter of lexicographic pairs per actor. See the [module docs](self).
///
/// ```
/// use rasp_lattice::{LexCounter, Lattice, Query};
///
/// let mut a = LexCounter::bottom();
/// a.inc(1, 5);
/// let d = a.dec(1, 2);
/// let mut b = LexCounter::bottom();
/// b.inc(2, 1);
/// b.join(&a);
/// assert_eq!(b.query(), 4);
/// assert!(!b.join(&d), "a duplicate delivery changes nothing");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LexCounter {
    /// actor → (version, value); absent means `(0, 0)`, which is never stored.
    entries: BTreeMap<Actor, (u64, i64)>,
}

impl LexCounter {
    /// `actor`'s entry `(version, value)`.
    pub fn entry(&self, actor: Actor) -> (u64, i64) {
        self.entries.get(&actor).copied().unwrap_or((0, 0))
    }

    /// The entries, by actor.
    pub fn entries(&self) -> &BTreeMap<Actor, (u64, i64)> {
        &self.entries
    }

    fn single(actor: Actor, e: (u64, i64)) -> Self {
        LexCounter {
            entries: BTreeMap::from([(actor, e)]),
        }
    }

    /// The delta of adding `n` on behalf of `actor` (bottom if `n` is 0).
    pub fn inc_delta(&self, actor: Actor, n: u64) -> Self {
        if n == 0 {
            return Self::default();
        }
        let (v, x) = self.entry(actor);
        Self::single(
            actor,
            (v, x.saturating_add(i64::try_from(n).unwrap_or(i64::MAX))),
        )
    }

    /// The delta of subtracting `n` on behalf of `actor`: a new version, so the lower value
    /// still inflates (bottom if `n` is 0).
    pub fn dec_delta(&self, actor: Actor, n: u64) -> Self {
        if n == 0 {
            return Self::default();
        }
        let (v, x) = self.entry(actor);
        Self::single(
            actor,
            (
                v.saturating_add(1),
                x.saturating_sub(i64::try_from(n).unwrap_or(i64::MAX)),
            ),
        )
    }

    /// Adds `n` on behalf of `actor`; returns the delta.
    pub fn inc(&mut self, actor: Actor, n: u64) -> Self {
        let d = self.inc_delta(actor, n);
        self.join(&d);
        d
    }

    /// Subtracts `n` on behalf of `actor`; returns the delta.
    pub fn dec(&mut self, actor: Actor, n: u64) -> Self {
        let d = self.dec_delta(actor, n);
        self.join(&d);
        d
    }
}

impl Lattice for LexCounter {
    fn bottom() -> Self {
        Self::default()
    }
    fn is_bottom(&self) -> bool {
        self.entries.is_empty()
    }
    fn join(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for (&a, &e) in &other.entries {
            if e > self.entry(a) {
                self.entries.insert(a, e);
                changed = true;
            }
        }
        changed
    }
    fn leq(&self, other: &Self) -> bool {
        self.entries.iter().all(|(a, e)| *e <= other.entry(*a))
    }
    fn decompose(&self) -> Vec<Self> {
        // Each entry is a chain element: join-irreducible.
        self.entries
            .iter()
            .map(|(&a, &e)| Self::single(a, e))
            .collect()
    }
    fn delta(&self, other: &Self) -> Self {
        LexCounter {
            entries: self
                .entries
                .iter()
                .filter(|(a, e)| **e > other.entry(**a))
                .map(|(&a, &e)| (a, e))
                .collect(),
        }
    }
    fn threshold_value(&self) -> Option<i64> {
        Some(self.value())
    }
}

impl Query for LexCounter {
    type Value = i64;
    fn query(&self) -> i64 {
        self.value()
    }
}

/// Not monotone: a decrement lowers the value.
impl Numeric for LexCounter {
    const MONOTONE: bool = false;
    fn value(&self) -> i64 {
        self.entries
            .values()
            .fold(0i64, |s, (_, x)| s.saturating_add(*x))
    }
}
