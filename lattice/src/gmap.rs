//! [`GMap`]: a grow-only map from keys to lattices, joined key-wise (nestable).
//!
//! Hand-written: `crdts::Map` is an observed-remove map over CmRDT values with no delta
//! mutators or decomposition; a grow-only map of arbitrary lattices is simpler and is the
//! "GMap" workload of the ICDE'19 experiments.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::set::Element;
use crate::{Cardinality, Lattice, Query};

/// A grow-only map: key → lattice value; keys are never removed, values only inflate.
/// Values equal to bottom are never stored, so equal maps are structurally equal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Ord, V: Serialize",
    deserialize = "K: DeserializeOwned + Ord, V: DeserializeOwned"
))]
pub struct GMap<K: Ord, V>(BTreeMap<K, V>);

impl<K: Ord, V> Default for GMap<K, V> {
    fn default() -> Self {
        GMap(BTreeMap::new())
    }
}

impl<K: Element, V: Lattice> GMap<K, V> {
    /// The delta of applying mutator `f` (which mutates a value and returns its delta, e.g.
    /// `|c| c.inc(actor, 1)`) to the value at `key`, without changing `self`.
    pub fn apply_delta(&self, key: K, f: impl FnOnce(&mut V) -> V) -> Self {
        let mut v = self.0.get(&key).cloned().unwrap_or_else(V::bottom);
        let d = f(&mut v);
        if d.is_bottom() {
            Self::default()
        } else {
            GMap(BTreeMap::from([(key, d)]))
        }
    }

    /// Applies mutator `f` to the value at `key` (bottom if absent); returns the map's delta
    /// `{key: δ}` (bottom if `f`'s delta is bottom).
    pub fn apply(&mut self, key: K, f: impl FnOnce(&mut V) -> V) -> Self {
        let d = self.apply_delta(key, f);
        self.join(&d);
        d
    }

    /// The value at `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.0.get(key)
    }

    /// Whether `key` has a (non-bottom) value.
    pub fn contains_key(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map is empty (bottom).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter()
    }
}

impl<K: Element, V: Lattice> Lattice for GMap<K, V> {
    fn bottom() -> Self {
        Self::default()
    }
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }
    /// O(|other| · log |self| + cost of the value joins): iterates `other` only.
    fn join(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for (k, v) in &other.0 {
            match self.0.get_mut(k) {
                Some(mine) => changed |= mine.join(v),
                None => {
                    if !v.is_bottom() {
                        self.0.insert(k.clone(), v.clone());
                        changed = true;
                    }
                }
            }
        }
        changed
    }
    fn leq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .all(|(k, v)| other.0.get(k).is_some_and(|o| v.leq(o)))
    }
    fn decompose(&self) -> Vec<Self> {
        self.0
            .iter()
            .flat_map(|(k, v)| {
                v.decompose()
                    .into_iter()
                    .map(move |p| GMap(BTreeMap::from([(k.clone(), p)])))
            })
            .collect()
    }
    fn delta(&self, other: &Self) -> Self {
        let bottom = V::bottom();
        GMap(
            self.0
                .iter()
                .filter_map(|(k, v)| {
                    let d = v.delta(other.0.get(k).unwrap_or(&bottom));
                    (!d.is_bottom()).then(|| (k.clone(), d))
                })
                .collect(),
        )
    }
    fn threshold_cardinality(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

impl<K: Element, V: Lattice + Query> Query for GMap<K, V> {
    type Value = BTreeMap<K, V::Value>;
    fn query(&self) -> Self::Value {
        self.0.iter().map(|(k, v)| (k.clone(), v.query())).collect()
    }
}

/// Monotone: keys are never removed.
impl<K: Element, V: Lattice> Cardinality for GMap<K, V> {
    const MONOTONE: bool = true;
    fn cardinality(&self) -> usize {
        self.0.len()
    }
}

impl<K: Element, V: Lattice> FromIterator<(K, V)> for GMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = GMap::default();
        for (k, v) in iter {
            m.join(&GMap(BTreeMap::from([(k, v)])));
        }
        m
    }
}
