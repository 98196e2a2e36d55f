//! Counters: grow-only ([`GCounter`]), increment/decrement ([`PNCounter`]) and the causal
//! counter ([`CCounter`]) that can live inside an [`crate::AWMap`] and be reset by a removal.
//!
//! `GCounter` and `PNCounter` are hand-written rather than wrapping `crdts::GCounter` /
//! `crdts::PNCounter`: those have no delta mutators, no join decomposition and read as
//! arbitrary-precision integers; here a mutator returns its delta and the value is a machine
//! integer (saturating).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::causal::CausalContext;
use crate::store::{Causal, CausalLattice, DotFun};
use crate::{delegate_lattice, Actor, Lattice, Numeric, Query, Summarize};

/// A grow-only counter: one monotone count per actor; the value is their sum.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GCounter {
    /// actor → its count (never 0: absent means 0).
    counts: BTreeMap<Actor, u64>,
}

impl GCounter {
    /// The delta of incrementing `actor`'s count by `n`, without applying it.
    pub fn inc_delta(&self, actor: Actor, n: u64) -> Self {
        if n == 0 {
            return Self::default();
        }
        let c = self.get(actor).saturating_add(n);
        GCounter {
            counts: BTreeMap::from([(actor, c)]),
        }
    }

    /// Increments `actor`'s count by `n`; returns the delta.
    pub fn inc(&mut self, actor: Actor, n: u64) -> Self {
        let d = self.inc_delta(actor, n);
        self.join(&d);
        d
    }

    /// `actor`'s count.
    pub fn get(&self, actor: Actor) -> u64 {
        self.counts.get(&actor).copied().unwrap_or(0)
    }

    /// The per-actor counts.
    pub fn counts(&self) -> &BTreeMap<Actor, u64> {
        &self.counts
    }

    /// The sum of all counts (saturating).
    pub fn total(&self) -> u64 {
        self.counts.values().fold(0u64, |a, b| a.saturating_add(*b))
    }
}

impl Lattice for GCounter {
    fn bottom() -> Self {
        Self::default()
    }
    fn is_bottom(&self) -> bool {
        self.counts.is_empty()
    }
    fn join(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for (&a, &n) in &other.counts {
            let e = self.counts.entry(a).or_insert(0);
            if n > *e {
                *e = n;
                changed = true;
            }
        }
        changed
    }
    fn leq(&self, other: &Self) -> bool {
        self.counts.iter().all(|(a, &n)| other.get(*a) >= n)
    }
    fn decompose(&self) -> Vec<Self> {
        self.counts
            .iter()
            .map(|(&a, &n)| GCounter {
                counts: BTreeMap::from([(a, n)]),
            })
            .collect()
    }
    fn delta(&self, other: &Self) -> Self {
        GCounter {
            counts: self
                .counts
                .iter()
                .filter(|(a, &n)| n > other.get(**a))
                .map(|(&a, &n)| (a, n))
                .collect(),
        }
    }
    fn threshold_value(&self) -> Option<i64> {
        Some(self.value())
    }
    crate::summary_hooks!();
}

/// The summary of a grow-only counter is its per-actor counts (a version vector); the delta
/// since it is the entries that are larger. As large as the state itself: worth sending only
/// in place of the state (JPDC 2018, §7.1).
impl Summarize for GCounter {
    type Summary = BTreeMap<Actor, u64>;
    fn summary(&self) -> Self::Summary {
        self.counts.clone()
    }
    fn delta_since(&self, summary: &Self::Summary) -> Self {
        GCounter {
            counts: self
                .counts
                .iter()
                .filter(|(a, &n)| summary.get(*a).is_none_or(|&m| n > m))
                .map(|(&a, &n)| (a, n))
                .collect(),
        }
    }
}

impl Query for GCounter {
    type Value = u64;
    fn query(&self) -> u64 {
        self.total()
    }
}

/// The value never decreases: `Threshold::Value` is monotone on a `GCounter`.
impl Numeric for GCounter {
    const MONOTONE: bool = true;
    fn value(&self) -> i64 {
        i64::try_from(self.total()).unwrap_or(i64::MAX)
    }
}

/// A counter supporting increments and decrements: a pair of grow-only counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PNCounter {
    p: GCounter,
    n: GCounter,
}

impl PNCounter {
    /// The delta of adding `n` to `actor`'s increments, without applying it.
    pub fn inc_delta(&self, actor: Actor, n: u64) -> Self {
        PNCounter {
            p: self.p.inc_delta(actor, n),
            n: GCounter::default(),
        }
    }

    /// The delta of adding `n` to `actor`'s decrements, without applying it.
    pub fn dec_delta(&self, actor: Actor, n: u64) -> Self {
        PNCounter {
            p: GCounter::default(),
            n: self.n.inc_delta(actor, n),
        }
    }

    /// Increments by `n` on behalf of `actor`; returns the delta.
    pub fn inc(&mut self, actor: Actor, n: u64) -> Self {
        let d = self.inc_delta(actor, n);
        self.join(&d);
        d
    }

    /// Decrements by `n` on behalf of `actor`; returns the delta.
    pub fn dec(&mut self, actor: Actor, n: u64) -> Self {
        let d = self.dec_delta(actor, n);
        self.join(&d);
        d
    }

    /// The increments.
    pub fn increments(&self) -> &GCounter {
        &self.p
    }

    /// The decrements.
    pub fn decrements(&self) -> &GCounter {
        &self.n
    }
}

impl Lattice for PNCounter {
    fn bottom() -> Self {
        Self::default()
    }
    fn is_bottom(&self) -> bool {
        self.p.is_bottom() && self.n.is_bottom()
    }
    fn join(&mut self, other: &Self) -> bool {
        let a = self.p.join(&other.p);
        let b = self.n.join(&other.n);
        a || b
    }
    fn leq(&self, other: &Self) -> bool {
        self.p.leq(&other.p) && self.n.leq(&other.n)
    }
    fn decompose(&self) -> Vec<Self> {
        let ps = self.p.decompose().into_iter().map(|p| PNCounter {
            p,
            n: GCounter::default(),
        });
        let ns = self.n.decompose().into_iter().map(|n| PNCounter {
            p: GCounter::default(),
            n,
        });
        ps.chain(ns).collect()
    }
    fn delta(&self, other: &Self) -> Self {
        PNCounter {
            p: self.p.delta(&other.p),
            n: self.n.delta(&other.n),
        }
    }
    fn threshold_value(&self) -> Option<i64> {
        Some(self.value())
    }
    crate::summary_hooks!();
}

/// The summaries of the increments and of the decrements.
impl Summarize for PNCounter {
    type Summary = (BTreeMap<Actor, u64>, BTreeMap<Actor, u64>);
    fn summary(&self) -> Self::Summary {
        (self.p.summary(), self.n.summary())
    }
    fn delta_since(&self, summary: &Self::Summary) -> Self {
        PNCounter {
            p: self.p.delta_since(&summary.0),
            n: self.n.delta_since(&summary.1),
        }
    }
}

impl Query for PNCounter {
    type Value = i64;
    fn query(&self) -> i64 {
        self.value()
    }
}

/// Not monotone: a decrement lowers the value, so a `Threshold::Value` that held can stop
/// holding.
impl Numeric for PNCounter {
    const MONOTONE: bool = false;
    fn value(&self) -> i64 {
        let v = self.p.total() as i128 - self.n.total() as i128;
        v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// A causal counter (the "CCounter" of Almeida et al. 2018): each actor's contribution is
/// held under one dot and replaced (new dot, new value) at each update. Because it is a causal
/// CRDT it can be a value of an [`crate::AWMap`], where removing the key resets the observed
/// contributions (a concurrent increment survives with that actor's whole contribution).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CCounter(Causal<DotFun<i64>>);

delegate_lattice!(CCounter);

impl Default for CCounter {
    fn default() -> Self {
        Self::bottom()
    }
}

impl CCounter {
    /// The delta of adding `n` (may be negative) to `actor`'s contribution.
    pub fn add_delta(&self, actor: Actor, n: i64) -> Self {
        if n == 0 {
            return Self::bottom();
        }
        let dot = self.0.next_dot(actor);
        let mut ctx: CausalContext = std::iter::once(dot).collect();
        let mut base = 0i64;
        for (d, v) in self.0.store().0.iter().filter(|(d, _)| d.actor == actor) {
            base = base.saturating_add(*v);
            ctx.insert(*d);
        }
        let store = DotFun(BTreeMap::from([(dot, base.saturating_add(n))]));
        CCounter(Causal::from_parts_unchecked(store, ctx))
    }

    /// Increments by `n` on behalf of `actor`; returns the delta.
    pub fn inc(&mut self, actor: Actor, n: u64) -> Self {
        let d = self.add_delta(actor, i64::try_from(n).unwrap_or(i64::MAX));
        self.join(&d);
        d
    }

    /// Decrements by `n` on behalf of `actor`; returns the delta.
    pub fn dec(&mut self, actor: Actor, n: u64) -> Self {
        let d = self.add_delta(actor, i64::try_from(n).map(|x| -x).unwrap_or(i64::MIN + 1));
        self.join(&d);
        d
    }

    /// The delta of resetting to 0 every contribution observed so far.
    pub fn reset_delta(&self) -> Self {
        let ctx: CausalContext = self.0.store().0.keys().copied().collect();
        CCounter(Causal::from_parts_unchecked(DotFun::default(), ctx))
    }

    /// Resets every observed contribution; returns the delta.
    pub fn reset(&mut self) -> Self {
        let d = self.reset_delta();
        self.join(&d);
        d
    }

    /// The causal representation (dot → contribution, context).
    pub fn as_causal(&self) -> &Causal<DotFun<i64>> {
        &self.0
    }
}

impl Query for CCounter {
    type Value = i64;
    fn query(&self) -> i64 {
        self.value()
    }
}

/// Not monotone (decrements and resets).
impl Numeric for CCounter {
    const MONOTONE: bool = false;
    fn value(&self) -> i64 {
        self.0
            .store()
            .0
            .values()
            .fold(0i64, |a, b| a.saturating_add(*b))
    }
}

impl CausalLattice for CCounter {
    type Store = DotFun<i64>;
    fn to_causal_parts(&self) -> (Self::Store, CausalContext) {
        (self.0.store().clone(), self.0.context().clone())
    }
    fn from_causal_parts(store: Self::Store, ctx: CausalContext) -> Self {
        CCounter(Causal::from_parts_unchecked(store, ctx))
    }
}
