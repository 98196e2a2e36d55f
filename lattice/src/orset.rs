//! [`ORSet`]: the add-wins observed-remove set (AWSet) of Almeida, Shoker, Baquero, "Delta
//! State Replicated Data Types" (JPDC 2018, §7.2), with dataflow-ready causal metadata.
//!
//! State: a dot store (element → non-empty set of *active* dots) and a causal context (every
//! dot seen). Adding `x` mints a fresh dot and retires `x`'s observed dots; removing `x`
//! retires its observed dots. A dot of `x` that the context covers but the store does not hold
//! is **removed** ([`ORSet::is_covered`]); removals leave no tombstones beyond the compact
//! context. Concurrent add and remove: the add's fresh dot was not observed by the remove, so
//! the add wins.
//!
//! **Generic dots.** `ORSet<T, D>` works for any [`DotKind`] `D`; the mutators that mint dots
//! exist for the default [`Dot`]. Derived sets of the dataflow layer (map, filter, product,
//! union, intersection) build states with [`ORSet::from_parts`] and read them with
//! [`ORSet::iter`], [`ORSet::dots`], [`ORSet::context`] and [`ORSet::is_covered`].
//!
//! **O(delta) join.** A dot → element index lets the join apply the removal rule ("drop my
//! dots that other has seen but does not hold") by walking whichever is smaller, other's
//! context or my active dots; additions walk other's store only. Joining a one-element delta
//! into a million-element set costs a few hash look-ups (see `benches/lattice.rs`).
//!
//! Hand-written rather than `crdts::Orswot`: that is an operation-based set with no delta
//! states, no decomposition, and its dots are not exposed for derived sets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::causal::{CausalContext, Dot, DotContext, DotKind};
use crate::set::Element;
use crate::store::{CausalLattice, DotMap, DotSet};
use crate::{Actor, Cardinality, Error, Lattice, Query};

/// An add-wins observed-remove set with elements `T` and dots `D`.
///
/// ```
/// use std::collections::{BTreeMap, BTreeSet};
/// use rasp_lattice::{Lattice, ORSet, Query};
///
/// let mut s = ORSet::<u32>::bottom();
/// s.add(1, 10);
/// s.add(1, 11);
/// let rm = s.remove(&10);
/// let dot10 = rm.context().iter().next().unwrap();
/// assert!(s.is_covered(&dot10)); // 10's dot was seen and is no longer active
///
/// // A derived set, as `map(|x| x / 10)` would build it: f(x) carries the union of the dots
/// // of every x mapping to it, and the source's context, so removals flow through.
/// let mut store: BTreeMap<u32, BTreeSet<_>> = BTreeMap::new();
/// for (x, dots) in s.iter() {
///     store.entry(x / 10).or_default().extend(dots.iter().copied());
/// }
/// let mapped = ORSet::from_parts(store, s.context().clone()).unwrap();
/// assert_eq!(mapped.query(), BTreeSet::from([1]));
/// ```
pub struct ORSet<T: Ord, D: DotKind = Dot> {
    store: BTreeMap<T, BTreeSet<D>>,
    ctx: D::Context,
    /// Auxiliary dot → element index; never iterated where order could leak into results.
    index: HashMap<D, T>,
}

impl<T: Element, D: DotKind> Clone for ORSet<T, D> {
    fn clone(&self) -> Self {
        ORSet {
            store: self.store.clone(),
            ctx: self.ctx.clone(),
            index: self.index.clone(),
        }
    }
}

impl<T: Element, D: DotKind> PartialEq for ORSet<T, D> {
    fn eq(&self, other: &Self) -> bool {
        self.store == other.store && self.ctx == other.ctx
    }
}

impl<T: Element, D: DotKind> fmt::Debug for ORSet<T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ORSet")
            .field("store", &self.store)
            .field("ctx", &self.ctx)
            .finish()
    }
}

impl<T: Element, D: DotKind> Default for ORSet<T, D> {
    fn default() -> Self {
        ORSet {
            store: BTreeMap::new(),
            ctx: D::Context::default(),
            index: HashMap::new(),
        }
    }
}

impl<T: Element, D: DotKind> ORSet<T, D> {
    /// Builds a set from a dot store and a context, checking the invariants: no element has an
    /// empty dot set, every dot is covered by the context, no dot belongs to two elements.
    pub fn from_parts(store: BTreeMap<T, BTreeSet<D>>, ctx: D::Context) -> Result<Self, Error> {
        let mut index = HashMap::with_capacity(store.len());
        for (e, ds) in &store {
            if ds.is_empty() {
                return Err(Error::InvalidCausalState(format!(
                    "element {e:?} has no dot"
                )));
            }
            for d in ds {
                if !ctx.contains(d) {
                    return Err(Error::InvalidCausalState(format!(
                        "dot {d:?} not covered by the context"
                    )));
                }
                if index.insert(d.clone(), e.clone()).is_some() {
                    return Err(Error::InvalidCausalState(format!(
                        "dot {d:?} held by two elements"
                    )));
                }
            }
        }
        Ok(ORSet { store, ctx, index })
    }

    /// The dot store and the context.
    pub fn into_parts(self) -> (BTreeMap<T, BTreeSet<D>>, D::Context) {
        (self.store, self.ctx)
    }

    /// The causal context: every dot seen.
    pub fn context(&self) -> &D::Context {
        &self.ctx
    }

    /// The dot store: element → its active dots.
    pub fn store(&self) -> &BTreeMap<T, BTreeSet<D>> {
        &self.store
    }

    /// The active dots of `x` (`None` if `x` is absent).
    pub fn dots(&self, x: &T) -> Option<&BTreeSet<D>> {
        self.store.get(x)
    }

    /// `(element, active dots)` pairs, in element order.
    pub fn iter(&self) -> impl Iterator<Item = (&T, &BTreeSet<D>)> {
        self.store.iter()
    }

    /// The present elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &T> {
        self.store.keys()
    }

    /// The element an active dot belongs to.
    pub fn element_of(&self, dot: &D) -> Option<&T> {
        self.index.get(dot)
    }

    /// Whether `dot` is removed: the context covers it and the store does not hold it.
    pub fn is_covered(&self, dot: &D) -> bool {
        self.ctx.contains(dot) && !self.index.contains_key(dot)
    }

    /// Whether `x` is present.
    pub fn contains(&self, x: &T) -> bool {
        self.store.contains_key(x)
    }

    /// The number of present elements.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no element is present (the state need not be bottom).
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The number of active dots.
    pub fn active_dots(&self) -> usize {
        self.index.len()
    }

    /// The delta of removing `x`: retires its observed dots (bottom if `x` is absent).
    pub fn remove_delta(&self, x: &T) -> Self {
        let mut d = Self::default();
        if let Some(ds) = self.store.get(x) {
            for dot in ds {
                d.ctx.insert(dot.clone());
            }
        }
        d
    }

    /// Removes `x` (its observed dots); returns the delta.
    pub fn remove(&mut self, x: &T) -> Self {
        let d = self.remove_delta(x);
        self.join(&d);
        d
    }

    /// The delta of removing every element of `xs` (their observed dots; absent elements are
    /// ignored).
    pub fn remove_all_delta<'a>(&self, xs: impl IntoIterator<Item = &'a T>) -> Self
    where
        T: 'a,
    {
        let mut d = Self::default();
        for x in xs {
            if let Some(ds) = self.store.get(x) {
                for dot in ds {
                    d.ctx.insert(dot.clone());
                }
            }
        }
        d
    }

    /// Removes every element of `xs`; returns the delta.
    pub fn remove_all<'a>(&mut self, xs: impl IntoIterator<Item = &'a T>) -> Self
    where
        T: 'a,
    {
        let d = self.remove_all_delta(xs);
        self.join(&d);
        d
    }

    /// The delta of keeping only the elements satisfying `keep` (the others' observed dots are
    /// retired, as by [`ORSet::remove`]).
    pub fn retain_delta(&self, mut keep: impl FnMut(&T) -> bool) -> Self {
        let mut d = Self::default();
        for (x, ds) in &self.store {
            if !keep(x) {
                for dot in ds {
                    d.ctx.insert(dot.clone());
                }
            }
        }
        d
    }

    /// Keeps only the elements satisfying `keep`; returns the delta.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) -> Self {
        let d = self.retain_delta(keep);
        self.join(&d);
        d
    }

    /// The delta of removing every present element.
    pub fn clear_delta(&self) -> Self {
        let mut d = Self::default();
        for dot in self.index.keys() {
            d.ctx.insert(dot.clone());
        }
        d
    }

    /// Removes every present element; returns the delta.
    pub fn clear(&mut self) -> Self {
        let d = self.clear_delta();
        self.join(&d);
        d
    }

    fn insert_dot(&mut self, x: &T, d: D) {
        match self.store.get_mut(x) {
            Some(ds) => {
                ds.insert(d.clone());
            }
            None => {
                self.store.insert(x.clone(), BTreeSet::from([d.clone()]));
            }
        }
        self.index.insert(d, x.clone());
    }

    fn remove_dot(&mut self, d: &D) {
        if let Some(x) = self.index.remove(d) {
            if let Some(ds) = self.store.get_mut(&x) {
                ds.remove(d);
                if ds.is_empty() {
                    self.store.remove(&x);
                }
            }
        }
    }

    fn single(x: Option<&T>, d: D) -> Self {
        let mut s = Self::default();
        s.ctx.insert(d.clone());
        if let Some(x) = x {
            s.insert_dot(x, d);
        }
        s
    }
}

impl<T: Element> ORSet<T, Dot> {
    /// A fresh dot for `actor`.
    pub fn next_dot(&self, actor: Actor) -> Dot {
        self.ctx.next_dot(actor)
    }

    /// The delta of adding `x` on behalf of `actor`: a fresh dot for `x`, and `x`'s observed
    /// dots retired (so each replica keeps at most one dot per element).
    pub fn add_delta(&self, actor: Actor, x: T) -> Self {
        let dot = self.next_dot(actor);
        let mut d = self.remove_delta(&x);
        d.ctx.insert(dot);
        d.insert_dot(&x, dot);
        d
    }

    /// Adds `x` on behalf of `actor`; returns the delta.
    pub fn add(&mut self, actor: Actor, x: T) -> Self {
        let d = self.add_delta(actor, x);
        self.join(&d);
        d
    }

    /// The delta of adding every element of `xs` on behalf of `actor`.
    pub fn add_all_delta(&self, actor: Actor, xs: impl IntoIterator<Item = T>) -> Self {
        let mut d = Self::default();
        let mut next = self.next_dot(actor).counter;
        for x in xs {
            if d.store.contains_key(&x) {
                continue;
            }
            if let Some(ds) = self.store.get(&x) {
                for dot in ds {
                    d.ctx.insert(*dot);
                }
            }
            let dot = Dot::new(actor, next);
            next += 1;
            d.ctx.insert(dot);
            d.insert_dot(&x, dot);
        }
        d
    }

    /// Adds every element of `xs` on behalf of `actor`; returns the delta.
    pub fn add_all(&mut self, actor: Actor, xs: impl IntoIterator<Item = T>) -> Self {
        let d = self.add_all_delta(actor, xs);
        self.join(&d);
        d
    }
}

impl<T: Element, D: DotKind> Lattice for ORSet<T, D> {
    fn bottom() -> Self {
        Self::default()
    }

    fn is_bottom(&self) -> bool {
        self.ctx.is_empty()
    }

    /// Causal join in O(|other's store| + min(|other's context|, |self's active dots|)).
    fn join(&mut self, other: &Self) -> bool {
        let mut changed = false;
        // Removal rule: my active dots that other has seen but does not hold.
        let mut gone: Vec<D> = Vec::new();
        if other.ctx.dot_count() <= self.index.len() as u64 {
            for d in other.ctx.dots() {
                if self.index.contains_key(&d) && !other.index.contains_key(&d) {
                    gone.push(d);
                }
            }
        } else {
            for d in self.index.keys() {
                if !other.index.contains_key(d) && other.ctx.contains(d) {
                    gone.push(d.clone());
                }
            }
        }
        for d in &gone {
            self.remove_dot(d);
            changed = true;
        }
        // Other's active dots I have not seen.
        for (x, ds) in &other.store {
            for d in ds {
                if !self.index.contains_key(d) && !self.ctx.contains(d) {
                    self.insert_dot(x, d.clone());
                    changed = true;
                }
            }
        }
        changed |= self.ctx.join(&other.ctx);
        changed
    }

    fn leq(&self, other: &Self) -> bool {
        if !self.ctx.is_subset(&other.ctx) {
            return false;
        }
        // Every dot other holds that I have seen, I hold too.
        if self.ctx.dot_count() <= other.index.len() as u64 {
            self.ctx
                .dots()
                .all(|d| !other.index.contains_key(&d) || self.index.contains_key(&d))
        } else {
            other
                .index
                .keys()
                .all(|d| !self.ctx.contains(d) || self.index.contains_key(d))
        }
    }

    /// One part per dot of the context: `({x: {d}}, {d})` for an active dot of `x`, `({}, {d})`
    /// for a removed one.
    fn decompose(&self) -> Vec<Self> {
        self.ctx
            .dots()
            .map(|d| Self::single(self.index.get(&d), d))
            .collect()
    }

    /// Active dots of `self` that `other` has not seen, plus removals of `self` (dots seen but
    /// not held) that `other` has not seen or still holds. O(|self's store| + min(|self's
    /// context|, |other's active dots| + |self's context \ other's|)).
    fn delta(&self, other: &Self) -> Self {
        let mut out = Self::default();
        for (x, ds) in &self.store {
            for d in ds {
                if !other.ctx.contains(d) {
                    out.ctx.insert(d.clone());
                    out.insert_dot(x, d.clone());
                }
            }
        }
        if self.ctx.dot_count() <= other.index.len() as u64 {
            for d in self.ctx.dots() {
                if !self.index.contains_key(&d)
                    && (!other.ctx.contains(&d) || other.index.contains_key(&d))
                {
                    out.ctx.insert(d);
                }
            }
        } else {
            for d in self.ctx.dots_not_in(&other.ctx) {
                if !self.index.contains_key(&d) {
                    out.ctx.insert(d);
                }
            }
            for d in other.index.keys() {
                if self.ctx.contains(d) && !self.index.contains_key(d) {
                    out.ctx.insert(d.clone());
                }
            }
        }
        out
    }

    fn threshold_cardinality(&self) -> Option<usize> {
        Some(self.store.len())
    }
}

impl<T: Element, D: DotKind> Query for ORSet<T, D> {
    type Value = BTreeSet<T>;
    fn query(&self) -> BTreeSet<T> {
        self.store.keys().cloned().collect()
    }
}

/// Not monotone: a removal shrinks the set.
impl<T: Element, D: DotKind> Cardinality for ORSet<T, D> {
    const MONOTONE: bool = false;
    fn cardinality(&self) -> usize {
        self.store.len()
    }
}

/// An OR-set is the add-wins map's "set of keys with dot sets", so it can be an
/// [`crate::AWMap`] value (a set per key, removed with the key).
impl<T: Element> CausalLattice for ORSet<T, Dot> {
    type Store = DotMap<T, DotSet>;
    fn to_causal_parts(&self) -> (Self::Store, CausalContext) {
        let store = self
            .store
            .iter()
            .map(|(x, ds)| (x.clone(), DotSet(ds.clone())))
            .collect();
        (DotMap(store), self.ctx.clone())
    }
    fn from_causal_parts(store: Self::Store, ctx: CausalContext) -> Self {
        let mut s = ORSet {
            store: BTreeMap::new(),
            ctx,
            index: HashMap::new(),
        };
        for (x, ds) in store.0 {
            for d in ds.0 {
                s.insert_dot(&x, d);
            }
        }
        s
    }
}

#[derive(Serialize)]
struct ORSetRef<'a, T, D, C> {
    store: &'a BTreeMap<T, BTreeSet<D>>,
    ctx: &'a C,
}

#[derive(Deserialize)]
struct ORSetOwned<T: Ord, D: Ord, C> {
    store: BTreeMap<T, BTreeSet<D>>,
    ctx: C,
}

/// Serialised as `(store, context)`; the index is rebuilt on decoding.
impl<T: Element, D: DotKind> Serialize for ORSet<T, D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ORSetRef {
            store: &self.store,
            ctx: &self.ctx,
        }
        .serialize(s)
    }
}

/// Decoding checks the invariants of [`ORSet::from_parts`]: hostile input is an error.
impl<'de, T: Element, D: DotKind> Deserialize<'de> for ORSet<T, D> {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        let o: ORSetOwned<T, D, D::Context> = ORSetOwned::deserialize(d)?;
        ORSet::from_parts(o.store, o.ctx).map_err(De::Error::custom)
    }
}
