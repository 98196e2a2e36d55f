//! Dot stores and the generic causal CRDT (Almeida, Shoker, Baquero, "Delta State Replicated
//! Data Types", JPDC 2018, §5–§7).
//!
//! A causal CRDT is a pair (dot store, [`CausalContext`]). A dot in the context that the store
//! does not hold has been removed. The join of `(s, c)` and `(s', c')` keeps a dot if both
//! stores hold it, or one store holds it and the other context has not seen it:
//! `(s ∩ s') ∪ (s \ c') ∪ (s' \ c)`, with context `c ∪ c'`.
//!
//! Three dot stores compose: [`DotSet`] (a set of dots: enable-wins flag), [`DotFun`] (dot →
//! immutable value: multi-value register, causal counter, disable-wins flag) and [`DotMap`]
//! (key → dot store: OR-set, add-wins map). [`Causal<S>`] is the lattice over any of them.
//!
//! **Invariant.** A dot identifies its payload: it is minted once, for one element / key /
//! value, and never reused. Every dot in the store is covered by the context.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::causal::{CausalContext, Dot};
use crate::{Error, Lattice};

/// A dot store: a container of dots (with payloads) joined under causal contexts.
pub trait DotStore:
    Clone + PartialEq + Debug + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Whether the store holds no dot.
    fn is_empty(&self) -> bool;

    /// Calls `f` on every dot held.
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot));

    /// The causal join of the stores: `self := (self ∩ other) ∪ (self \ other_ctx) ∪
    /// (other \ ctx)`, where `ctx` is `self`'s context. The contexts themselves are joined by
    /// the caller. Returns whether `self` changed.
    fn join_with(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) -> bool;

    /// Splits into single-dot stores, one per dot held.
    fn split(&self) -> Vec<(Dot, Self)>;

    /// The sub-store of the dots satisfying `keep`.
    fn restrict(&self, keep: &dyn Fn(&Dot) -> bool) -> Self;

    /// Every dot held.
    fn dots(&self) -> Vec<Dot> {
        let mut v = Vec::new();
        self.for_each_dot(&mut |d| v.push(d));
        v
    }
}

/// A set of dots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DotSet(pub BTreeSet<Dot>);

impl DotStore for DotSet {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.0.iter().for_each(|d| f(*d));
    }
    fn join_with(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) -> bool {
        let before = self.0.len();
        self.0
            .retain(|d| other.0.contains(d) || !other_ctx.contains(d));
        let mut changed = self.0.len() != before;
        for d in &other.0 {
            if !ctx.contains(d) && self.0.insert(*d) {
                changed = true;
            }
        }
        changed
    }
    fn split(&self) -> Vec<(Dot, Self)> {
        self.0
            .iter()
            .map(|d| (*d, DotSet(BTreeSet::from([*d]))))
            .collect()
    }
    fn restrict(&self, keep: &dyn Fn(&Dot) -> bool) -> Self {
        DotSet(self.0.iter().filter(|d| keep(d)).copied().collect())
    }
}

/// A map from dots to immutable values (a value is written once, with its dot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: DeserializeOwned"))]
pub struct DotFun<V>(pub BTreeMap<Dot, V>);

impl<V> Default for DotFun<V> {
    fn default() -> Self {
        DotFun(BTreeMap::new())
    }
}

impl<V> DotStore for DotFun<V>
where
    V: Clone + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.0.keys().for_each(|d| f(*d));
    }
    fn join_with(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) -> bool {
        let before = self.0.len();
        self.0
            .retain(|d, _| other.0.contains_key(d) || !other_ctx.contains(d));
        let mut changed = self.0.len() != before;
        for (d, v) in &other.0 {
            if !ctx.contains(d) && !self.0.contains_key(d) {
                self.0.insert(*d, v.clone());
                changed = true;
            }
        }
        changed
    }
    fn split(&self) -> Vec<(Dot, Self)> {
        self.0
            .iter()
            .map(|(d, v)| (*d, DotFun(BTreeMap::from([(*d, v.clone())]))))
            .collect()
    }
    fn restrict(&self, keep: &dyn Fn(&Dot) -> bool) -> Self {
        DotFun(
            self.0
                .iter()
                .filter(|(d, _)| keep(d))
                .map(|(d, v)| (*d, v.clone()))
                .collect(),
        )
    }
}

/// A map from keys to non-empty dot stores.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Ord, S: Serialize",
    deserialize = "K: DeserializeOwned + Ord, S: DeserializeOwned"
))]
pub struct DotMap<K: Ord, S>(pub BTreeMap<K, S>);

impl<K: Ord, S> Default for DotMap<K, S> {
    fn default() -> Self {
        DotMap(BTreeMap::new())
    }
}

impl<K, S> DotStore for DotMap<K, S>
where
    K: Ord + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    S: DotStore,
{
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.0.values().for_each(|s| s.for_each_dot(f));
    }
    fn join_with(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) -> bool {
        let mut changed = false;
        let empty = S::default();
        // Keys only in self: their dots covered by other_ctx were removed there.
        let mut emptied = Vec::new();
        for (k, s) in self.0.iter_mut() {
            if !other.0.contains_key(k) && s.join_with(ctx, &empty, other_ctx) {
                changed = true;
                if s.is_empty() {
                    emptied.push(k.clone());
                }
            }
        }
        for (k, o) in &other.0 {
            match self.0.get_mut(k) {
                Some(s) => {
                    if s.join_with(ctx, o, other_ctx) {
                        changed = true;
                        if s.is_empty() {
                            emptied.push(k.clone());
                        }
                    }
                }
                None => {
                    let mut s = S::default();
                    if s.join_with(ctx, o, other_ctx) && !s.is_empty() {
                        self.0.insert(k.clone(), s);
                        changed = true;
                    }
                }
            }
        }
        for k in emptied {
            self.0.remove(&k);
        }
        changed
    }
    fn split(&self) -> Vec<(Dot, Self)> {
        self.0
            .iter()
            .flat_map(|(k, s)| {
                s.split()
                    .into_iter()
                    .map(move |(d, part)| (d, DotMap(BTreeMap::from([(k.clone(), part)]))))
            })
            .collect()
    }
    fn restrict(&self, keep: &dyn Fn(&Dot) -> bool) -> Self {
        DotMap(
            self.0
                .iter()
                .map(|(k, s)| (k.clone(), s.restrict(keep)))
                .filter(|(_, s)| !s.is_empty())
                .collect(),
        )
    }
}

/// A lattice that is a causal CRDT (a dot store plus a [`CausalContext`]) and can therefore be
/// a value of an [`crate::AWMap`], sharing the map's context.
pub trait CausalLattice: Lattice {
    /// The dot store this type is made of.
    type Store: DotStore;
    /// A copy of the store and the context.
    fn to_causal_parts(&self) -> (Self::Store, CausalContext);
    /// The store and the context, by move (the default copies them with
    /// [`CausalLattice::to_causal_parts`]).
    fn into_causal_parts(self) -> (Self::Store, CausalContext)
    where
        Self: Sized,
    {
        self.to_causal_parts()
    }
    /// Rebuilds a value from a store and a context (the store's dots must be covered by the
    /// context; the embedding map guarantees it).
    fn from_causal_parts(store: Self::Store, ctx: CausalContext) -> Self;
}

/// The generic causal CRDT over a dot store `S`: the lattice of pairs (store, context).
/// Decoding checks the invariants of [`Causal::from_parts`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    bound(serialize = "S: Serialize", deserialize = "S: DotStore"),
    try_from = "CausalRepr<S>"
)]
pub struct Causal<S> {
    store: S,
    ctx: CausalContext,
}

/// The wire form of [`Causal`], validated on decoding.
#[derive(Deserialize)]
#[serde(bound(deserialize = "S: DeserializeOwned"))]
struct CausalRepr<S> {
    store: S,
    ctx: CausalContext,
}

impl<S: DotStore> TryFrom<CausalRepr<S>> for Causal<S> {
    type Error = Error;
    fn try_from(r: CausalRepr<S>) -> Result<Self, Error> {
        Causal::from_parts(r.store, r.ctx)
    }
}

impl<S: DotStore> Causal<S> {
    /// Builds a causal CRDT from parts, checking that every dot of the store is covered by the
    /// context and held only once.
    pub fn from_parts(store: S, ctx: CausalContext) -> Result<Self, Error> {
        let mut seen = HashSet::new();
        let mut err = None;
        store.for_each_dot(&mut |d| {
            if !ctx.contains(&d) {
                err = Some(format!("dot {d:?} not covered by the context"));
            } else if !seen.insert(d) {
                err = Some(format!("dot {d:?} held twice"));
            }
        });
        match err {
            Some(e) => Err(Error::InvalidCausalState(e)),
            None => Ok(Causal { store, ctx }),
        }
    }

    /// Builds from parts without checking (crate-internal: callers uphold the invariants).
    pub(crate) fn from_parts_unchecked(store: S, ctx: CausalContext) -> Self {
        Causal { store, ctx }
    }

    /// The dot store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The causal context.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// The store and the context.
    pub fn into_parts(self) -> (S, CausalContext) {
        (self.store, self.ctx)
    }

    /// A fresh dot for `actor` (not yet recorded).
    pub fn next_dot(&self, actor: crate::Actor) -> Dot {
        self.ctx.next_dot(actor)
    }

    /// Whether `dot` was seen and is no longer held (it was removed or overwritten).
    pub fn is_covered(&self, dot: &Dot) -> bool {
        self.ctx.contains(dot) && !self.store.dots().contains(dot)
    }
}

impl<S: DotStore> Lattice for Causal<S> {
    fn bottom() -> Self {
        Causal {
            store: S::default(),
            ctx: CausalContext::new(),
        }
    }
    fn is_bottom(&self) -> bool {
        self.ctx.is_empty()
    }
    fn join(&mut self, other: &Self) -> bool {
        let a = self.store.join_with(&self.ctx, &other.store, &other.ctx);
        let b = self.ctx.join(&other.ctx);
        a || b
    }
    fn leq(&self, other: &Self) -> bool {
        if !self.ctx.is_subset(&other.ctx) {
            return false;
        }
        let mine: HashSet<Dot> = self.store.dots().into_iter().collect();
        other
            .store
            .dots()
            .iter()
            .all(|d| !self.ctx.contains(d) || mine.contains(d))
    }
    fn decompose(&self) -> Vec<Self> {
        let mut singles: HashMap<Dot, S> = self.store.split().into_iter().collect();
        self.ctx
            .iter()
            .map(|d| Causal {
                store: singles.remove(&d).unwrap_or_default(),
                ctx: std::iter::once(d).collect(),
            })
            .collect()
    }
    fn delta(&self, other: &Self) -> Self {
        let mine: HashSet<Dot> = self.store.dots().into_iter().collect();
        let theirs: HashSet<Dot> = other.store.dots().into_iter().collect();
        let store = self.store.restrict(&|d| !other.ctx.contains(d));
        let mut ctx: CausalContext = store.dots().into_iter().collect();
        removal_dots(
            &self.ctx,
            &|d| mine.contains(d),
            &other.ctx,
            &|d| theirs.contains(d),
            theirs.iter().copied(),
            theirs.len(),
            &mut ctx,
        );
        Causal { store, ctx }
    }
}

/// Adds to `out` the removal parts of `delta(a, b)`: dots `a` has seen but does not hold, that
/// `b` has not seen or still holds. Iterates whichever is smaller: `a`'s context, or `b`'s held
/// dots plus the dots `a` has seen that `b` has not.
pub(crate) fn removal_dots(
    a_ctx: &CausalContext,
    a_holds: &dyn Fn(&Dot) -> bool,
    b_ctx: &CausalContext,
    b_holds: &dyn Fn(&Dot) -> bool,
    b_held: impl Iterator<Item = Dot>,
    b_held_len: usize,
    out: &mut CausalContext,
) {
    if a_ctx.dot_count() <= b_held_len as u64 {
        for d in a_ctx.iter() {
            if !a_holds(&d) && (!b_ctx.contains(&d) || b_holds(&d)) {
                out.insert(d);
            }
        }
    } else {
        for d in a_ctx.iter_not_in(b_ctx) {
            if !a_holds(&d) {
                out.insert(d);
            }
        }
        for d in b_held {
            if a_ctx.contains(&d) && !a_holds(&d) {
                out.insert(d);
            }
        }
    }
}
