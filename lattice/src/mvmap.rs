//! [`MVMap`]: the multi-value map, key → the set of concurrently written values (an add-wins
//! map of multi-value registers: the ORMap of Almeida, Shoker, Baquero, "Delta State Replicated
//! Data Types", JPDC 2018, §7.3, with the MVRegister of §7.4 as value; Lasp's `state_mvmap`).
//!
//! Writing a key replaces every value of it this replica has seen; writes that did not see each
//! other are all kept, so a key reads as one value after a sequential history and as several
//! after concurrent writes, until a later write supersedes them. Removing a key retires the
//! values it has seen; a concurrent write survives (add-wins).
//!
//! A thin typed layer over [`AWMap`]`<K, `[`MVRegister`]`<V>>`, so it shares its O(delta) join.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::set::Element;
use crate::{delegate_lattice, AWMap, Actor, Cardinality, Lattice, MVRegister, Query};

/// A map from keys to multi-value registers. See the [module docs](self).
///
/// ```
/// use std::collections::BTreeSet;
/// use rasp_lattice::{Lattice, MVMap};
///
/// let mut a = MVMap::<char, u32>::bottom();
/// let mut b = a.clone();
/// let da = a.write(1, 'k', 1);
/// let db = b.write(2, 'k', 2); // concurrent with a's write
/// a.join(&db);
/// b.join(&da);
/// assert_eq!(a, b);
/// assert_eq!(a.get(&'k'), BTreeSet::from([1, 2]));
/// a.write(1, 'k', 3); // saw both: replaces both
/// assert_eq!(a.get(&'k'), BTreeSet::from([3]));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Element, V: Element",
    deserialize = "K: Element, V: Element"
))]
pub struct MVMap<K: Element, V: Element>(AWMap<K, MVRegister<V>>);

delegate_lattice!(MVMap<K, V> where K: Element, V: Element);

impl<K: Element, V: Element> Default for MVMap<K, V> {
    fn default() -> Self {
        MVMap(AWMap::default())
    }
}

impl<K: Element, V: Element> MVMap<K, V> {
    /// The delta of writing `value` at `key` on behalf of `actor` (replaces the values of
    /// `key` seen here).
    pub fn write_delta(&self, actor: Actor, key: K, value: V) -> Self {
        MVMap(
            self.0
                .update_delta(key, |r: &mut MVRegister<V>| r.write(actor, value)),
        )
    }

    /// Writes `value` at `key` on behalf of `actor`; returns the delta.
    pub fn write(&mut self, actor: Actor, key: K, value: V) -> Self {
        let d = self.write_delta(actor, key, value);
        self.join(&d);
        d
    }

    /// The delta of removing `key` (the values seen here; bottom if absent).
    pub fn remove_delta(&self, key: &K) -> Self {
        MVMap(self.0.remove_delta(key))
    }

    /// Removes `key`; returns the delta.
    pub fn remove(&mut self, key: &K) -> Self {
        let d = self.remove_delta(key);
        self.join(&d);
        d
    }

    /// The values of `key` (empty if absent): one after sequential writes, several after
    /// concurrent ones.
    pub fn get(&self, key: &K) -> BTreeSet<V> {
        self.0.get(key).map(|r| r.query()).unwrap_or_default()
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// The present keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.keys()
    }

    /// The number of present keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key is present (the state need not be bottom).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying add-wins map.
    pub fn as_awmap(&self) -> &AWMap<K, MVRegister<V>> {
        &self.0
    }
}

impl<K: Element, V: Element> Query for MVMap<K, V> {
    type Value = BTreeMap<K, BTreeSet<V>>;
    fn query(&self) -> Self::Value {
        self.0.query()
    }
}

/// Not monotone: removing a key shrinks the map.
impl<K: Element, V: Element> Cardinality for MVMap<K, V> {
    const MONOTONE: bool = false;
    fn cardinality(&self) -> usize {
        self.0.len()
    }
}
