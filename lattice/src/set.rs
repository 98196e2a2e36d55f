//! Grow-only sets ([`GSet`]) and two-phase sets ([`TwoPSet`]).
//!
//! Hand-written rather than `crdts::GSet`: that has no delta mutators, no decomposition and
//! no change-reporting merge.

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Cardinality, Lattice, Query};

/// Bounds every set element satisfies.
pub trait Element:
    Clone + Ord + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}
impl<T: Clone + Ord + Debug + Serialize + DeserializeOwned + Send + Sync + 'static> Element for T {}

/// A grow-only set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: DeserializeOwned + Ord"))]
pub struct GSet<T: Ord>(BTreeSet<T>);

impl<T: Ord> Default for GSet<T> {
    fn default() -> Self {
        GSet(BTreeSet::new())
    }
}

impl<T: Element> GSet<T> {
    /// The delta of adding `x` (bottom if already present).
    pub fn add_delta(&self, x: T) -> Self {
        if self.0.contains(&x) {
            Self::default()
        } else {
            GSet(BTreeSet::from([x]))
        }
    }

    /// Adds `x`; returns the delta.
    pub fn add(&mut self, x: T) -> Self {
        let d = self.add_delta(x);
        self.join(&d);
        d
    }

    /// Whether `x` is present.
    pub fn contains(&self, x: &T) -> bool {
        self.0.contains(x)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty (i.e. bottom).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }

    /// The underlying set.
    pub fn as_set(&self) -> &BTreeSet<T> {
        &self.0
    }
}

impl<T: Element> FromIterator<T> for GSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        GSet(iter.into_iter().collect())
    }
}

impl<T: Element> Lattice for GSet<T> {
    fn bottom() -> Self {
        Self::default()
    }
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }
    /// O(|other| log |self|): iterates `other` only.
    fn join(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for x in &other.0 {
            if !self.0.contains(x) {
                self.0.insert(x.clone());
                changed = true;
            }
        }
        changed
    }
    fn leq(&self, other: &Self) -> bool {
        self.0.len() <= other.0.len() && self.0.iter().all(|x| other.0.contains(x))
    }
    fn decompose(&self) -> Vec<Self> {
        self.0
            .iter()
            .map(|x| GSet(BTreeSet::from([x.clone()])))
            .collect()
    }
    /// O(|self| log |other|).
    fn delta(&self, other: &Self) -> Self {
        GSet(
            self.0
                .iter()
                .filter(|x| !other.0.contains(x))
                .cloned()
                .collect(),
        )
    }
    fn threshold_cardinality(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

impl<T: Element> Query for GSet<T> {
    type Value = BTreeSet<T>;
    fn query(&self) -> BTreeSet<T> {
        self.0.clone()
    }
}

/// Monotone: a grow-only set never shrinks.
impl<T: Element> Cardinality for GSet<T> {
    const MONOTONE: bool = true;
    fn cardinality(&self) -> usize {
        self.0.len()
    }
}

/// A two-phase set: an element can be added and then removed once for ever (a removed element
/// cannot be re-added). A pair of grow-only sets (added, removed); the value is their
/// difference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: DeserializeOwned + Ord"))]
pub struct TwoPSet<T: Ord> {
    added: GSet<T>,
    removed: GSet<T>,
}

impl<T: Ord> Default for TwoPSet<T> {
    fn default() -> Self {
        TwoPSet {
            added: GSet::default(),
            removed: GSet::default(),
        }
    }
}

impl<T: Element> TwoPSet<T> {
    /// The delta of adding `x`.
    pub fn add_delta(&self, x: T) -> Self {
        TwoPSet {
            added: self.added.add_delta(x),
            removed: GSet::default(),
        }
    }

    /// Adds `x` (no effect on the value if `x` was ever removed); returns the delta.
    pub fn add(&mut self, x: T) -> Self {
        let d = self.add_delta(x);
        self.join(&d);
        d
    }

    /// The delta of removing `x`: bottom unless `x` is currently present (only an observed
    /// element can be removed).
    pub fn remove_delta(&self, x: &T) -> Self {
        if self.contains(x) {
            TwoPSet {
                added: GSet::default(),
                removed: GSet(BTreeSet::from([x.clone()])),
            }
        } else {
            Self::default()
        }
    }

    /// Removes `x` for ever if present; returns the delta.
    pub fn remove(&mut self, x: &T) -> Self {
        let d = self.remove_delta(x);
        self.join(&d);
        d
    }

    /// Whether `x` is present (added and not removed).
    pub fn contains(&self, x: &T) -> bool {
        self.added.contains(x) && !self.removed.contains(x)
    }

    /// The set of elements ever added.
    pub fn added(&self) -> &GSet<T> {
        &self.added
    }

    /// The set of elements removed.
    pub fn removed(&self) -> &GSet<T> {
        &self.removed
    }
}

impl<T: Element> Lattice for TwoPSet<T> {
    fn bottom() -> Self {
        Self::default()
    }
    fn is_bottom(&self) -> bool {
        self.added.is_bottom() && self.removed.is_bottom()
    }
    fn join(&mut self, other: &Self) -> bool {
        let a = self.added.join(&other.added);
        let b = self.removed.join(&other.removed);
        a || b
    }
    fn leq(&self, other: &Self) -> bool {
        self.added.leq(&other.added) && self.removed.leq(&other.removed)
    }
    fn decompose(&self) -> Vec<Self> {
        let a = self.added.decompose().into_iter().map(|added| TwoPSet {
            added,
            removed: GSet::default(),
        });
        let r = self.removed.decompose().into_iter().map(|removed| TwoPSet {
            added: GSet::default(),
            removed,
        });
        a.chain(r).collect()
    }
    fn delta(&self, other: &Self) -> Self {
        TwoPSet {
            added: self.added.delta(&other.added),
            removed: self.removed.delta(&other.removed),
        }
    }
    fn threshold_cardinality(&self) -> Option<usize> {
        Some(self.cardinality())
    }
}

impl<T: Element> Query for TwoPSet<T> {
    type Value = BTreeSet<T>;
    fn query(&self) -> BTreeSet<T> {
        self.added
            .iter()
            .filter(|x| !self.removed.contains(x))
            .cloned()
            .collect()
    }
}

/// Not monotone: a removal shrinks the set.
impl<T: Element> Cardinality for TwoPSet<T> {
    const MONOTONE: bool = false;
    fn cardinality(&self) -> usize {
        self.added
            .iter()
            .filter(|x| !self.removed.contains(x))
            .count()
    }
}
