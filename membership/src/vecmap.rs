//! A small ordered map on one sorted vector: the cores' per-peer and per-message tables,
//! which hold a handful of entries (an active view of five, a few missing messages).
//!
//! A `BTreeMap` allocates a whole node (eleven slots) for its first entry and reaches it
//! through a pointer chase; this map allocates exactly its entries and finds them by binary
//! search in one contiguous block. It iterates in key order, as a `BTreeMap` does, so a core
//! that swaps one for the other behaves the same. Insertion and removal move the entries
//! after the key: linear, fine for the small tables it is used for (each use documents its
//! bound). It grows by half its length, so a small table wastes at most a third of its slots.
//! [`SmallMap`] is one while it is small and a `BTreeMap` past that, for tables that are
//! small on most nodes but may grow large.

use std::collections::BTreeMap;

/// A map from `K` to `V` kept as a vector sorted by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// An empty map (no allocation).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn find(&self, k: &K) -> Result<usize, usize> {
        self.entries.binary_search_by(|(x, _)| x.cmp(k))
    }

    /// Inserts `v` at `k`; returns the value it replaced.
    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        match self.find(&k) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, v)),
            Err(i) => {
                // Grow by half (at least two), not by doubling: a table of five entries takes
                // six slots, not eight.
                let len = self.entries.len();
                if len == self.entries.capacity() {
                    self.entries.reserve_exact((len / 2).max(2));
                }
                self.entries.insert(i, (k, v));
                None
            }
        }
    }

    /// Removes `k`; returns its value.
    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.find(k).ok()?;
        let v = self.entries.remove(i).1;
        if self.entries.is_empty() {
            // An emptied table gives its memory back, as an emptied `BTreeMap` does.
            self.entries = Vec::new();
        }
        Some(v)
    }

    /// The value at `k`.
    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        self.find(k).ok().map(|i| &self.entries[i].1)
    }

    /// The value at `k`, mutably.
    pub(crate) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.find(k).ok().map(move |i| &mut self.entries[i].1)
    }

    /// Whether `k` has a value.
    pub(crate) fn contains_key(&self, k: &K) -> bool {
        self.find(k).is_ok()
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry and frees the vector.
    pub(crate) fn clear(&mut self) {
        self.entries = Vec::new();
    }

    /// The values in key order, mutably.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }
}

/// Entries up to which a [`SmallMap`] stays one sorted vector.
const SMALL_MAX: usize = 32;

/// A map that is a [`VecMap`] while small and a `BTreeMap` once it outgrows
/// [`SMALL_MAX`] entries: the few-entry tables of most nodes cost what their entries cost,
/// and a table of tens of thousands (Plumtree's duplicate window under heavy traffic) keeps
/// logarithmic inserts. The same answers as a `BTreeMap` either way.
#[derive(Clone, Debug)]
pub(crate) enum SmallMap<K, V> {
    /// At most [`SMALL_MAX`] entries.
    Small(VecMap<K, V>),
    /// Grew past [`SMALL_MAX`] once.
    Large(BTreeMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Small(VecMap::default())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// An empty map (no allocation).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Inserts `v` at `k`; returns the value it replaced.
    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        match self {
            SmallMap::Small(m) if m.len() < SMALL_MAX || m.contains_key(&k) => m.insert(k, v),
            SmallMap::Small(m) => {
                let mut big: BTreeMap<K, V> = std::mem::take(&mut m.entries).into_iter().collect();
                big.insert(k, v);
                *self = SmallMap::Large(big);
                None
            }
            SmallMap::Large(m) => m.insert(k, v),
        }
    }

    /// Removes `k`; returns its value.
    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        match self {
            SmallMap::Small(m) => m.remove(k),
            SmallMap::Large(m) => m.remove(k),
        }
    }

    /// The value at `k`.
    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        match self {
            SmallMap::Small(m) => m.get(k),
            SmallMap::Large(m) => m.get(k),
        }
    }

    /// Whether `k` has a value.
    pub(crate) fn contains_key(&self, k: &K) -> bool {
        match self {
            SmallMap::Small(m) => m.contains_key(k),
            SmallMap::Large(m) => m.contains_key(k),
        }
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        match self {
            SmallMap::Small(m) => m.len(),
            SmallMap::Large(m) => m.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SmallMap, VecMap};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Any sequence of inserts and removals leaves the same entries, in the same order,
        /// as a `BTreeMap`, with the same answers on the way.
        #[test]
        fn behaves_as_a_btreemap(ops in proptest::collection::vec((any::<bool>(), 0u8..20, any::<u16>()), 0..200)) {
            let mut a = VecMap::new();
            let mut b = BTreeMap::new();
            for (ins, k, v) in ops {
                if ins {
                    prop_assert_eq!(a.insert(k, v), b.insert(k, v));
                } else {
                    prop_assert_eq!(a.remove(&k), b.remove(&k));
                }
                prop_assert_eq!(a.len(), b.len());
                prop_assert_eq!(a.get(&k), b.get(&k));
                prop_assert_eq!(a.contains_key(&k), b.contains_key(&k));
                prop_assert_eq!(a.is_empty(), b.is_empty());
                let av: Vec<u16> = a.values_mut().map(|v| *v).collect();
                let bv: Vec<u16> = b.values_mut().map(|v| *v).collect();
                prop_assert_eq!(av, bv);
            }
        }

        /// The same for the small-then-large map, across its switch.
        #[test]
        fn small_map_behaves_as_a_btreemap(ops in proptest::collection::vec((0u8..4, 0u8..80, any::<u16>()), 0..400)) {
            let mut a = SmallMap::new();
            let mut b = BTreeMap::new();
            for (op, k, v) in ops {
                if op > 0 {
                    prop_assert_eq!(a.insert(k, v), b.insert(k, v));
                } else {
                    prop_assert_eq!(a.remove(&k), b.remove(&k));
                }
                prop_assert_eq!(a.len(), b.len());
                prop_assert_eq!(a.get(&k), b.get(&k));
                prop_assert_eq!(a.contains_key(&k), b.contains_key(&k));
            }
        }
    }
}
