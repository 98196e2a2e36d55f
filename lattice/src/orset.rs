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
use crate::store::{CausalLattice, DotStore};
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
    body: ORSetStore<T, D>,
    ctx: D::Context,
}

/// The dot store of an [`ORSet`] (element → its active dots) with its dot → element index:
/// the set without its causal context. It is the [`CausalLattice::Store`] of an OR-set
/// embedded in an [`crate::AWMap`], so that the map hands a value to a mutator and takes it
/// back by moving it, without rebuilding the index (the map stays O(delta) per update).
///
/// Serialised as the bare map element → dots (the same bytes as a [`crate::DotMap`] of
/// [`crate::DotSet`]);
/// decoding rejects an element with no dot and a dot held by two elements.
pub struct ORSetStore<T: Ord, D: DotKind = Dot> {
    store: BTreeMap<T, BTreeSet<D>>,
    /// Auxiliary dot → element index; never iterated where order could leak into results.
    index: HashMap<D, T>,
}

impl<T: Element, D: DotKind> Clone for ORSetStore<T, D> {
    fn clone(&self) -> Self {
        ORSetStore {
            store: self.store.clone(),
            index: self.index.clone(),
        }
    }
}

impl<T: Element, D: DotKind> PartialEq for ORSetStore<T, D> {
    fn eq(&self, other: &Self) -> bool {
        self.store == other.store
    }
}

impl<T: Element, D: DotKind> fmt::Debug for ORSetStore<T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.store.fmt(f)
    }
}

impl<T: Ord, D: DotKind> Default for ORSetStore<T, D> {
    fn default() -> Self {
        ORSetStore {
            store: BTreeMap::new(),
            index: HashMap::new(),
        }
    }
}

impl<T: Element, D: DotKind> ORSetStore<T, D> {
    /// Builds the store, checking that no element has an empty dot set and no dot belongs to
    /// two elements.
    fn from_map(store: BTreeMap<T, BTreeSet<D>>) -> Result<Self, Error> {
        let mut index = HashMap::with_capacity(store.len());
        for (e, ds) in &store {
            if ds.is_empty() {
                return Err(Error::InvalidCausalState(format!(
                    "element {e:?} has no dot"
                )));
            }
            for d in ds {
                if index.insert(d.clone(), e.clone()).is_some() {
                    return Err(Error::InvalidCausalState(format!(
                        "dot {d:?} held by two elements"
                    )));
                }
            }
        }
        Ok(ORSetStore { store, index })
    }

    /// Element → its active dots.
    pub fn map(&self) -> &BTreeMap<T, BTreeSet<D>> {
        &self.store
    }

    /// The element an active dot belongs to.
    pub fn element_of(&self, dot: &D) -> Option<&T> {
        self.index.get(dot)
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

    /// Removes `x` and its dots, recording each retired dot in `out`.
    fn retire(&mut self, x: &T, out: &mut D::Context) {
        if let Some(ds) = self.store.remove(x) {
            for dot in ds {
                self.index.remove(&dot);
                out.insert(dot);
            }
        }
    }

    /// The causal join of the stores (Almeida et al., JPDC 2018, §5: `(s ∩ s') ∪ (s \ c') ∪
    /// (s' \ c)`) where `ctx` is mine and `other_ctx` is other's; the contexts are joined by the
    /// caller. O(|other's store| + min(|other_ctx|, |my active dots|)), and O(|other's store|)
    /// when `other_ctx` covers no dot that other does not hold (no removal to apply).
    fn join_with_ctx(&mut self, ctx: &D::Context, other: &Self, other_ctx: &D::Context) -> bool {
        let mut changed = false;
        // Removal rule: my active dots that other has seen but does not hold. Other covers
        // `dot_count - |index|` dots it does not hold; none means nothing to remove.
        let other_seen = other_ctx.dot_count();
        if other_seen > other.index.len() as u64 && !self.index.is_empty() {
            let mut gone: Vec<D> = Vec::new();
            if other_seen <= self.index.len() as u64 {
                for d in other_ctx.dots() {
                    if self.index.contains_key(&d) && !other.index.contains_key(&d) {
                        gone.push(d);
                    }
                }
            } else {
                for d in self.index.keys() {
                    if !other.index.contains_key(d) && other_ctx.contains(d) {
                        gone.push(d.clone());
                    }
                }
            }
            for d in &gone {
                self.remove_dot(d);
                changed = true;
            }
        }
        // Other's active dots I have not seen (every dot I hold is in `ctx`).
        for (x, ds) in &other.store {
            for d in ds {
                if !ctx.contains(d) {
                    self.insert_dot(x, d.clone());
                    changed = true;
                }
            }
        }
        changed
    }
}

/// The store of an OR-set inside an [`crate::AWMap`] value: joined under the map's context.
impl<T: Element> DotStore for ORSetStore<T, Dot> {
    fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        for ds in self.store.values() {
            ds.iter().for_each(|d| f(*d));
        }
    }
    fn join_with(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) -> bool {
        self.join_with_ctx(ctx, other, other_ctx)
    }
    fn split(&self) -> Vec<(Dot, Self)> {
        let mut out = Vec::with_capacity(self.index.len());
        for (x, ds) in &self.store {
            for d in ds {
                let mut s = Self::default();
                s.insert_dot(x, *d);
                out.push((*d, s));
            }
        }
        out
    }
    fn restrict(&self, keep: &dyn Fn(&Dot) -> bool) -> Self {
        let mut s = Self::default();
        for (x, ds) in &self.store {
            for d in ds {
                if keep(d) {
                    s.insert_dot(x, *d);
                }
            }
        }
        s
    }
}

impl<T: Element, D: DotKind> Serialize for ORSetStore<T, D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.store.serialize(s)
    }
}

impl<'de, T: Element, D: DotKind> Deserialize<'de> for ORSetStore<T, D> {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        let store = BTreeMap::<T, BTreeSet<D>>::deserialize(d)?;
        ORSetStore::from_map(store).map_err(De::Error::custom)
    }
}

impl<T: Element, D: DotKind> Clone for ORSet<T, D> {
    fn clone(&self) -> Self {
        ORSet {
            body: self.body.clone(),
            ctx: self.ctx.clone(),
        }
    }
}

impl<T: Element, D: DotKind> PartialEq for ORSet<T, D> {
    fn eq(&self, other: &Self) -> bool {
        self.body.store == other.body.store && self.ctx == other.ctx
    }
}

impl<T: Element, D: DotKind> fmt::Debug for ORSet<T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ORSet")
            .field("store", &self.body.store)
            .field("ctx", &self.ctx)
            .finish()
    }
}

impl<T: Element, D: DotKind> Default for ORSet<T, D> {
    fn default() -> Self {
        ORSet {
            body: ORSetStore::default(),
            ctx: D::Context::default(),
        }
    }
}

impl<T: Element, D: DotKind> ORSet<T, D> {
    /// Builds a set from a dot store and a context, checking the invariants: no element has an
    /// empty dot set, every dot is covered by the context, no dot belongs to two elements.
    pub fn from_parts(store: BTreeMap<T, BTreeSet<D>>, ctx: D::Context) -> Result<Self, Error> {
        for ds in store.values() {
            for d in ds {
                if !ctx.contains(d) {
                    return Err(Error::InvalidCausalState(format!(
                        "dot {d:?} not covered by the context"
                    )));
                }
            }
        }
        let body = ORSetStore::from_map(store)?;
        Ok(ORSet { body, ctx })
    }

    /// The dot store and the context.
    pub fn into_parts(self) -> (BTreeMap<T, BTreeSet<D>>, D::Context) {
        (self.body.store, self.ctx)
    }

    /// The causal context: every dot seen.
    pub fn context(&self) -> &D::Context {
        &self.ctx
    }

    /// The dot store: element → its active dots.
    pub fn store(&self) -> &BTreeMap<T, BTreeSet<D>> {
        &self.body.store
    }

    /// The active dots of `x` (`None` if `x` is absent).
    pub fn dots(&self, x: &T) -> Option<&BTreeSet<D>> {
        self.body.store.get(x)
    }

    /// `(element, active dots)` pairs, in element order.
    pub fn iter(&self) -> impl Iterator<Item = (&T, &BTreeSet<D>)> {
        self.body.store.iter()
    }

    /// The present elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &T> {
        self.body.store.keys()
    }

    /// The element an active dot belongs to.
    pub fn element_of(&self, dot: &D) -> Option<&T> {
        self.body.index.get(dot)
    }

    /// Whether `dot` is removed: the context covers it and the store does not hold it.
    pub fn is_covered(&self, dot: &D) -> bool {
        self.ctx.contains(dot) && !self.body.index.contains_key(dot)
    }

    /// Whether `x` is present.
    pub fn contains(&self, x: &T) -> bool {
        self.body.store.contains_key(x)
    }

    /// The number of present elements.
    pub fn len(&self) -> usize {
        self.body.store.len()
    }

    /// Whether no element is present (the state need not be bottom).
    pub fn is_empty(&self) -> bool {
        self.body.store.is_empty()
    }

    /// The number of active dots.
    pub fn active_dots(&self) -> usize {
        self.body.index.len()
    }

    /// The delta of removing `x`: retires its observed dots (bottom if `x` is absent).
    pub fn remove_delta(&self, x: &T) -> Self {
        let mut d = Self::default();
        if let Some(ds) = self.body.store.get(x) {
            for dot in ds {
                d.ctx.insert(dot.clone());
            }
        }
        d
    }

    /// Removes `x` (its observed dots) in place; returns the delta, [`ORSet::remove_delta`].
    pub fn remove(&mut self, x: &T) -> Self {
        let mut d = Self::default();
        // The retired dots are already in my context: only the store and the index change.
        self.body.retire(x, &mut d.ctx);
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
            if let Some(ds) = self.body.store.get(x) {
                for dot in ds {
                    d.ctx.insert(dot.clone());
                }
            }
        }
        d
    }

    /// Removes every element of `xs` in place; returns the delta,
    /// [`ORSet::remove_all_delta`].
    pub fn remove_all<'a>(&mut self, xs: impl IntoIterator<Item = &'a T>) -> Self
    where
        T: 'a,
    {
        let mut d = Self::default();
        for x in xs {
            self.body.retire(x, &mut d.ctx);
        }
        d
    }

    /// The delta of keeping only the elements satisfying `keep` (the others' observed dots are
    /// retired, as by [`ORSet::remove`]).
    pub fn retain_delta(&self, mut keep: impl FnMut(&T) -> bool) -> Self {
        let mut d = Self::default();
        for (x, ds) in &self.body.store {
            if !keep(x) {
                for dot in ds {
                    d.ctx.insert(dot.clone());
                }
            }
        }
        d
    }

    /// Keeps only the elements satisfying `keep`, in place; returns the delta,
    /// [`ORSet::retain_delta`].
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> Self {
        let mut d = Self::default();
        let index = &mut self.body.index;
        self.body.store.retain(|x, ds| {
            if keep(x) {
                return true;
            }
            for dot in ds.iter() {
                index.remove(dot);
                d.ctx.insert(dot.clone());
            }
            false
        });
        d
    }

    /// The delta of removing every present element.
    pub fn clear_delta(&self) -> Self {
        let mut d = Self::default();
        for dot in self.body.index.keys() {
            d.ctx.insert(dot.clone());
        }
        d
    }

    /// Removes every present element, in place; returns the delta, [`ORSet::clear_delta`].
    pub fn clear(&mut self) -> Self {
        let mut d = Self::default();
        for ds in std::mem::take(&mut self.body.store).into_values() {
            for dot in ds {
                d.ctx.insert(dot);
            }
        }
        self.body.index.clear();
        d
    }

    fn single(x: Option<&T>, d: D) -> Self {
        let mut s = Self::default();
        s.ctx.insert(d.clone());
        if let Some(x) = x {
            s.body.insert_dot(x, d);
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
        d.body.insert_dot(&x, dot);
        d
    }

    /// Gives `x` the single fresh dot `dot` in place (its old dots leave the index and go to
    /// `d`'s context), and records `x ↦ {dot}` in the delta `d`. The caller records `dot` in both
    /// contexts.
    fn add_in_place(&mut self, x: T, dot: Dot, d: &mut Self) {
        self.give_only_dot(&x, dot, d);
        d.body.store.insert(x.clone(), BTreeSet::from([dot]));
        d.body.index.insert(dot, x);
    }

    /// Makes `dot` the only dot of `x` in this set's store and index; `x`'s old dots leave
    /// the index and go to `d`'s context (they are retired by the delta `d`).
    fn give_only_dot(&mut self, x: &T, dot: Dot, d: &mut Self) {
        match self.body.store.get_mut(x) {
            Some(ds) => {
                for old in std::mem::take(ds) {
                    self.body.index.remove(&old);
                    d.ctx.insert(old);
                }
                ds.insert(dot);
            }
            None => {
                self.body.store.insert(x.clone(), BTreeSet::from([dot]));
            }
        }
        self.body.index.insert(dot, x.clone());
    }

    /// Adds `x` on behalf of `actor` in place; returns the delta, [`ORSet::add_delta`].
    pub fn add(&mut self, actor: Actor, x: T) -> Self {
        let dot = self.next_dot(actor);
        let mut d = Self::default();
        self.add_in_place(x, dot, &mut d);
        self.ctx.insert(dot);
        d.ctx.insert(dot);
        d
    }

    /// The delta of adding every element of `xs` on behalf of `actor`.
    pub fn add_all_delta(&self, actor: Actor, xs: impl IntoIterator<Item = T>) -> Self {
        let mut d = Self::default();
        let mut next = self.next_dot(actor).counter;
        for x in xs {
            if d.body.store.contains_key(&x) {
                continue;
            }
            if let Some(ds) = self.body.store.get(&x) {
                for dot in ds {
                    d.ctx.insert(*dot);
                }
            }
            let dot = Dot::new(actor, next);
            next += 1;
            d.ctx.insert(dot);
            d.body.insert_dot(&x, dot);
        }
        d
    }

    /// Adds every element of `xs` on behalf of `actor` in place (one fresh dot per distinct
    /// element, in order of first occurrence); returns the delta, [`ORSet::add_all_delta`].
    ///
    /// The batch is sorted once, so the delta's store is built in bulk and my store is walked
    /// in order.
    pub fn add_all(&mut self, actor: Actor, xs: impl IntoIterator<Item = T>) -> Self {
        // Distinct elements in element order, each with its position of first occurrence
        // (a stable sort keeps the first occurrence first; dedup keeps it).
        let mut batch: Vec<(T, usize)> = xs.into_iter().zip(0..).collect();
        batch.sort_by(|a, b| a.0.cmp(&b.0));
        batch.dedup_by(|later, first| later.0 == first.0);
        // Fresh counters in order of first occurrence, past everything of `actor` I have seen.
        let first = self.next_dot(actor).counter;
        let mut by_position: Vec<usize> = (0..batch.len()).collect();
        by_position.sort_unstable_by_key(|&j| batch[j].1);
        let mut counters = vec![0u64; batch.len()];
        for (rank, &j) in by_position.iter().enumerate() {
            counters[j] = first + rank as u64;
        }
        let mut d = Self::default();
        self.body.index.reserve(batch.len());
        d.body.index.reserve(batch.len());
        let mut delta_store = Vec::with_capacity(batch.len());
        for ((x, _), c) in batch.into_iter().zip(counters) {
            let dot = Dot::new(actor, c);
            self.give_only_dot(&x, dot, &mut d);
            d.body.index.insert(dot, x.clone());
            delta_store.push((x, BTreeSet::from([dot])));
        }
        let next = first + delta_store.len() as u64;
        d.body.store = delta_store.into_iter().collect();
        for c in first..next {
            self.ctx.insert(Dot::new(actor, c));
            d.ctx.insert(Dot::new(actor, c));
        }
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

    /// Causal join in O(|other's store| + min(|other's context|, |self's active dots|)), and
    /// O(|other's store|) when other has removed nothing.
    fn join(&mut self, other: &Self) -> bool {
        let changed = self.body.join_with_ctx(&self.ctx, &other.body, &other.ctx);
        self.ctx.join(&other.ctx) || changed
    }

    fn leq(&self, other: &Self) -> bool {
        if !self.ctx.is_subset(&other.ctx) {
            return false;
        }
        // Every dot other holds that I have seen, I hold too.
        if self.ctx.dot_count() <= other.body.index.len() as u64 {
            self.ctx
                .dots()
                .all(|d| !other.body.index.contains_key(&d) || self.body.index.contains_key(&d))
        } else {
            other
                .body
                .index
                .keys()
                .all(|d| !self.ctx.contains(d) || self.body.index.contains_key(d))
        }
    }

    /// One part per dot of the context: `({x: {d}}, {d})` for an active dot of `x`, `({}, {d})`
    /// for a removed one.
    fn decompose(&self) -> Vec<Self> {
        self.ctx
            .dots()
            .map(|d| Self::single(self.body.index.get(&d), d))
            .collect()
    }

    /// Active dots of `self` that `other` has not seen, plus removals of `self` (dots seen but
    /// not held) that `other` has not seen or still holds. O(|self's store| + min(|self's
    /// context|, |other's active dots| + |self's context \ other's|)).
    fn delta(&self, other: &Self) -> Self {
        let mut out = Self::default();
        for (x, ds) in &self.body.store {
            for d in ds {
                if !other.ctx.contains(d) {
                    out.ctx.insert(d.clone());
                    out.body.insert_dot(x, d.clone());
                }
            }
        }
        if self.ctx.dot_count() <= other.body.index.len() as u64 {
            for d in self.ctx.dots() {
                if !self.body.index.contains_key(&d)
                    && (!other.ctx.contains(&d) || other.body.index.contains_key(&d))
                {
                    out.ctx.insert(d);
                }
            }
        } else {
            for d in self.ctx.dots_not_in(&other.ctx) {
                if !self.body.index.contains_key(&d) {
                    out.ctx.insert(d);
                }
            }
            for d in other.body.index.keys() {
                if self.ctx.contains(d) && !self.body.index.contains_key(d) {
                    out.ctx.insert(d.clone());
                }
            }
        }
        out
    }

    fn threshold_cardinality(&self) -> Option<usize> {
        Some(self.body.store.len())
    }
    crate::summary_hooks!();
}

/// The summary of an OR-set is the summary ([`DotContext::summary`]) of its causal context
/// (every dot it has seen: for [`Dot`]s a version vector plus a dot cloud) and that of its
/// active dots, without the elements (JPDC 2018, §7.2: the context is what a delta-group is
/// judged against; the active dots say which of the dots seen there are still held, so that
/// only the removals it has not applied travel). The delta since it holds the active dots
/// the summary has not seen (with their elements) and, as context only, the dots of
/// `self`'s context it has not seen and the removals of dots it still holds. One pass over
/// `self`'s context: O(its dot count).
impl<T: Element, D: DotKind> crate::Summarize for ORSet<T, D> {
    type Summary = (
        <D::Context as DotContext<D>>::Summary,
        <D::Context as DotContext<D>>::Summary,
    );
    fn summary(&self) -> Self::Summary {
        let mut active = D::Context::default();
        for d in self.body.index.keys() {
            active.insert(d.clone());
        }
        (self.ctx.summary(), active.summary())
    }
    fn delta_since(&self, summary: &Self::Summary) -> Self {
        let (seen, held) = summary;
        let mut out = Self::default();
        for d in self.ctx.dots() {
            let seen = D::Context::summary_contains(seen, &d);
            match self.body.index.get(&d) {
                Some(x) if !seen => {
                    out.body.insert_dot(x, d.clone());
                    out.ctx.insert(d);
                }
                Some(_) => {} // active here, seen there: it holds it or removed it since
                None if !seen || D::Context::summary_contains(held, &d) => {
                    out.ctx.insert(d); // unseen there, or a removal it has not applied
                }
                None => {} // removed there too
            }
        }
        out
    }
}

impl<T: Element, D: DotKind> Query for ORSet<T, D> {
    type Value = BTreeSet<T>;
    fn query(&self) -> BTreeSet<T> {
        self.body.store.keys().cloned().collect()
    }
}

/// Not monotone: a removal shrinks the set.
impl<T: Element, D: DotKind> Cardinality for ORSet<T, D> {
    const MONOTONE: bool = false;
    fn cardinality(&self) -> usize {
        self.body.store.len()
    }
}

/// An OR-set is the add-wins map's "set of keys with dot sets", so it can be an
/// [`crate::AWMap`] value (a set per key, removed with the key).
impl<T: Element> CausalLattice for ORSet<T, Dot> {
    type Store = ORSetStore<T, Dot>;
    fn to_causal_parts(&self) -> (Self::Store, CausalContext) {
        (self.body.clone(), self.ctx.clone())
    }
    fn into_causal_parts(self) -> (Self::Store, CausalContext) {
        (self.body, self.ctx)
    }
    fn from_causal_parts(store: Self::Store, ctx: CausalContext) -> Self {
        ORSet { body: store, ctx }
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
            store: &self.body.store,
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
