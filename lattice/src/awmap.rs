//! [`AWMap`]: the add-wins observed-remove map of causal lattices (the ORMap of Almeida,
//! Shoker, Baquero, "Delta State Replicated Data Types", JPDC 2018, §7.3).
//!
//! The map is a [`DotMap`] (key → the value's dot store) with **one causal context shared by
//! all values**. Updating a key runs a value mutator against the value seen with the map's
//! context (so fresh dots are fresh map-wide) and ships `{key: value delta store}` with the
//! value delta's context. Removing a key retires the dots of its value; a concurrent update's
//! fresh dots were not observed by the removal, so the update wins (add-wins) and the value
//! keeps only the concurrent part.
//!
//! **Supported values** ([`CausalLattice`]): [`crate::ORSet`], [`crate::EWFlag`],
//! [`crate::DWFlag`], [`crate::MVRegister`], [`crate::CCounter`] and nested `AWMap`s. Only
//! causal values can be embedded: removal works by forgetting observed dots, which a value
//! without dots (a [`crate::GCounter`], an [`crate::LWWRegister`]) cannot express — the join
//! would resurrect it. Put non-causal lattices in a [`crate::GMap`] instead.
//!
//! Hand-written rather than `crdts::Map`: that is operation-based (CmRDT values, no delta
//! states, no decomposition).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::causal::{CausalContext, Dot};
use crate::set::Element;
use crate::store::{removal_dots, CausalLattice, DotMap, DotStore};
use crate::{Cardinality, Error, Lattice, Query};

/// An add-wins map from keys `K` to causal lattices `V`.
pub struct AWMap<K: Ord, V: CausalLattice> {
    store: DotMap<K, V::Store>,
    ctx: CausalContext,
    /// Auxiliary dot → key index (never iterated where order could leak).
    index: HashMap<Dot, K>,
}

impl<K: Element, V: CausalLattice> Clone for AWMap<K, V> {
    fn clone(&self) -> Self {
        AWMap {
            store: self.store.clone(),
            ctx: self.ctx.clone(),
            index: self.index.clone(),
        }
    }
}

impl<K: Element, V: CausalLattice> PartialEq for AWMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.store == other.store && self.ctx == other.ctx
    }
}

impl<K: Element, V: CausalLattice> fmt::Debug for AWMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AWMap")
            .field("store", &self.store)
            .field("ctx", &self.ctx)
            .finish()
    }
}

impl<K: Element, V: CausalLattice> Default for AWMap<K, V> {
    fn default() -> Self {
        AWMap {
            store: DotMap::default(),
            ctx: CausalContext::new(),
            index: HashMap::new(),
        }
    }
}

impl<K: Element, V: CausalLattice> AWMap<K, V> {
    /// Builds a map from parts, checking that every dot is covered by the context and held
    /// once, and that no key maps to an empty store.
    pub fn from_parts(store: DotMap<K, V::Store>, ctx: CausalContext) -> Result<Self, Error> {
        let mut index = HashMap::new();
        let mut err = None;
        for (k, s) in &store.0 {
            if s.is_empty() {
                return Err(Error::InvalidCausalState(format!(
                    "key {k:?} has an empty value"
                )));
            }
            s.for_each_dot(&mut |d| {
                if !ctx.contains(&d) {
                    err = Some(format!("dot {d:?} not covered by the context"));
                } else if index.insert(d, k.clone()).is_some() {
                    err = Some(format!("dot {d:?} held twice"));
                }
            });
            if let Some(e) = err.take() {
                return Err(Error::InvalidCausalState(e));
            }
        }
        Ok(AWMap { store, ctx, index })
    }

    fn from_parts_unchecked(store: DotMap<K, V::Store>, ctx: CausalContext) -> Self {
        let mut index = HashMap::new();
        for (k, s) in &store.0 {
            s.for_each_dot(&mut |d| {
                index.insert(d, k.clone());
            });
        }
        AWMap { store, ctx, index }
    }

    /// The store (key → value dot store) and the shared context.
    pub fn into_parts(self) -> (DotMap<K, V::Store>, CausalContext) {
        (self.store, self.ctx)
    }

    /// The shared causal context.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// The delta of applying value mutator `f` (e.g. `|s: &mut ORSet<u64>| s.add(actor, 7)`)
    /// to the value at `key` (bottom if absent), without changing `self`. `f` must return the
    /// delta produced by a mutator of `V` on the value it is given.
    pub fn update_delta(&self, key: K, f: impl FnOnce(&mut V) -> V) -> Self {
        let store = self.store.0.get(&key).cloned().unwrap_or_default();
        let mut v = V::from_causal_parts(store, self.ctx.clone());
        let (ds, dc) = f(&mut v).to_causal_parts();
        let mut m = BTreeMap::new();
        if !ds.is_empty() {
            m.insert(key, ds);
        }
        Self::from_parts_unchecked(DotMap(m), dc)
    }

    /// Applies value mutator `f` to the value at `key` in place; returns the map's delta, the
    /// one [`AWMap::update_delta`] returns. The value and the map's context are moved out to
    /// `f` and back, not copied, so an update costs O(delta) for values whose parts move in
    /// O(1) ([`crate::ORSet`], the flags, registers and counters; a nested map rebuilds its
    /// index, O(value)). `f` must be a mutator of `V` (the value after it is the value before
    /// joined with the delta it returns).
    pub fn update(&mut self, key: K, f: impl FnOnce(&mut V) -> V) -> Self {
        let store = self.store.0.remove(&key).unwrap_or_default();
        let mut v = V::from_causal_parts(store, std::mem::take(&mut self.ctx));
        let dv = f(&mut v);
        let (store, ctx) = v.into_causal_parts();
        self.ctx = ctx;
        if !store.is_empty() {
            self.store.0.insert(key.clone(), store);
        }
        let (ds, dc) = dv.into_causal_parts();
        // The delta's context retires this key's dots it does not hold; a dot of another key
        // in it (which no mutator of the value sees) is left to the full join below.
        let mut foreign = false;
        for d in dc.iter() {
            match self.index.get(&d) {
                Some(k) if *k == key => {
                    self.index.remove(&d);
                }
                Some(_) => foreign = true,
                None => {}
            }
        }
        let index = &mut self.index;
        ds.for_each_dot(&mut |d| {
            index.insert(d, key.clone());
        });
        let mut m = BTreeMap::new();
        if !ds.is_empty() {
            m.insert(key, ds);
        }
        let delta = Self::from_parts_unchecked(DotMap(m), dc);
        if foreign {
            self.join(&delta);
        }
        delta
    }

    /// The delta of removing `key`: retires the dots of its value (bottom if absent).
    pub fn remove_delta(&self, key: &K) -> Self {
        let mut ctx = CausalContext::new();
        if let Some(s) = self.store.0.get(key) {
            s.for_each_dot(&mut |d| {
                ctx.insert(d);
            });
        }
        Self::from_parts_unchecked(DotMap::default(), ctx)
    }

    /// Removes `key` (the observed part of its value) in place; returns the delta, the one
    /// [`AWMap::remove_delta`] returns. O(|value at `key`|).
    pub fn remove(&mut self, key: &K) -> Self {
        let mut ctx = CausalContext::new();
        if let Some(s) = self.store.0.remove(key) {
            let index = &mut self.index;
            s.for_each_dot(&mut |d| {
                index.remove(&d);
                ctx.insert(d);
            });
        }
        Self::from_parts_unchecked(DotMap::default(), ctx)
    }

    /// The value at `key`, seen with the map's context.
    pub fn get(&self, key: &K) -> Option<V> {
        self.store
            .0
            .get(key)
            .map(|s| V::from_causal_parts(s.clone(), self.ctx.clone()))
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.store.0.contains_key(key)
    }

    /// The present keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.store.0.keys()
    }

    /// The number of present keys.
    pub fn len(&self) -> usize {
        self.store.0.len()
    }

    /// Whether no key is present (the state need not be bottom).
    pub fn is_empty(&self) -> bool {
        self.store.0.is_empty()
    }
}

impl<K: Element, V: CausalLattice> Lattice for AWMap<K, V> {
    fn bottom() -> Self {
        Self::default()
    }

    fn is_bottom(&self) -> bool {
        self.ctx.is_empty()
    }

    /// Joins only the keys other holds and the keys holding a dot other has removed (found
    /// through the dot index, walking the smaller of other's context and my active dots).
    fn join(&mut self, other: &Self) -> bool {
        let mut keys: BTreeSet<K> = other.store.0.keys().cloned().collect();
        if other.ctx.dot_count() <= self.index.len() as u64 {
            for d in other.ctx.iter() {
                if let Some(k) = self.index.get(&d) {
                    if !other.index.contains_key(&d) {
                        keys.insert(k.clone());
                    }
                }
            }
        } else {
            for (d, k) in &self.index {
                if !other.index.contains_key(d) && other.ctx.contains(d) {
                    keys.insert(k.clone());
                }
            }
        }
        let empty = V::Store::default();
        let mut changed = false;
        for k in keys {
            let o = other.store.0.get(&k).unwrap_or(&empty);
            let mut cur = self.store.0.remove(&k).unwrap_or_default();
            let before = cur.dots();
            if cur.join_with(&self.ctx, o, &other.ctx) {
                changed = true;
                for d in before {
                    self.index.remove(&d);
                }
                let index = &mut self.index;
                cur.for_each_dot(&mut |d| {
                    index.insert(d, k.clone());
                });
            }
            if !cur.is_empty() {
                self.store.0.insert(k, cur);
            }
        }
        changed |= self.ctx.join(&other.ctx);
        changed
    }

    fn leq(&self, other: &Self) -> bool {
        if !self.ctx.is_subset(&other.ctx) {
            return false;
        }
        if self.ctx.dot_count() <= other.index.len() as u64 {
            self.ctx
                .iter()
                .all(|d| !other.index.contains_key(&d) || self.index.contains_key(&d))
        } else {
            other
                .index
                .keys()
                .all(|d| !self.ctx.contains(d) || self.index.contains_key(d))
        }
    }

    fn decompose(&self) -> Vec<Self> {
        let mut singles: HashMap<Dot, DotMap<K, V::Store>> =
            self.store.split().into_iter().collect();
        self.ctx
            .iter()
            .map(|d| {
                let store = singles.remove(&d).unwrap_or_default();
                Self::from_parts_unchecked(store, std::iter::once(d).collect())
            })
            .collect()
    }

    fn delta(&self, other: &Self) -> Self {
        let store = self.store.restrict(&|d| !other.ctx.contains(d));
        let mut ctx: CausalContext = store.dots().into_iter().collect();
        removal_dots(
            &self.ctx,
            &|d| self.index.contains_key(d),
            &other.ctx,
            &|d| other.index.contains_key(d),
            other.index.keys().copied(),
            other.index.len(),
            &mut ctx,
        );
        Self::from_parts_unchecked(store, ctx)
    }

    fn threshold_cardinality(&self) -> Option<usize> {
        Some(self.store.0.len())
    }
}

impl<K: Element, V: CausalLattice + Query> Query for AWMap<K, V> {
    type Value = BTreeMap<K, V::Value>;
    fn query(&self) -> Self::Value {
        self.store
            .0
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    V::from_causal_parts(s.clone(), self.ctx.clone()).query(),
                )
            })
            .collect()
    }
}

/// Not monotone: removing a key shrinks the map.
impl<K: Element, V: CausalLattice> Cardinality for AWMap<K, V> {
    const MONOTONE: bool = false;
    fn cardinality(&self) -> usize {
        self.store.0.len()
    }
}

/// Maps nest: an `AWMap` is itself a causal lattice over a [`DotMap`].
impl<K: Element, V: CausalLattice> CausalLattice for AWMap<K, V> {
    type Store = DotMap<K, V::Store>;
    fn to_causal_parts(&self) -> (Self::Store, CausalContext) {
        (self.store.clone(), self.ctx.clone())
    }
    fn from_causal_parts(store: Self::Store, ctx: CausalContext) -> Self {
        Self::from_parts_unchecked(store, ctx)
    }
}

#[derive(Serialize)]
struct AWMapRef<'a, S, C> {
    store: &'a S,
    ctx: &'a C,
}

#[derive(Deserialize)]
struct AWMapOwned<S, C> {
    store: S,
    ctx: C,
}

/// Serialised as `(store, context)`; the index is rebuilt on decoding.
impl<K: Element, V: CausalLattice> Serialize for AWMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AWMapRef {
            store: &self.store,
            ctx: &self.ctx,
        }
        .serialize(s)
    }
}

/// Decoding checks the invariants of [`AWMap::from_parts`]: hostile input is an error.
impl<'de, K: Element, V: CausalLattice> Deserialize<'de> for AWMap<K, V> {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        let o: AWMapOwned<DotMap<K, V::Store>, CausalContext> = AWMapOwned::deserialize(d)?;
        AWMap::from_parts(o.store, o.ctx).map_err(De::Error::custom)
    }
}
