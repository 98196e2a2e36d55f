//! Causal metadata: dots, causal contexts and the dot-type abstraction.
//!
//! A **dot** uniquely names one event (an add, a write, an enable): `(actor, counter)`.
//! A **causal context** is the set of dots a replica has seen; [`CausalContext`] stores it as a
//! compact version vector plus a *dot cloud* of dots seen out of order (Almeida, Shoker,
//! Baquero, "Delta State Replicated Data Types", JPDC 2018, §5).
//!
//! Causal CRDTs ([`crate::ORSet`], the types built on [`crate::Causal`], [`crate::AWMap`])
//! pair a dot store with a context: a dot in the context but not in the store was **removed**.
//!
//! The dot type is abstract ([`DotKind`]) so that the dataflow layer can build derived sets
//! whose dots are composite (e.g. pairs of dots for a product): each dot kind names the
//! context type that records it. [`Dot`] uses the compact [`CausalContext`]; any other ordered
//! dot type can use the plain set [`DotCloud`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Actor;

/// An event identifier: the `counter`-th event of `actor` (counters start at 1).
///
/// Hand-written rather than `crdts::Dot`: that type is only `PartialOrd` (dots of different
/// actors are incomparable), but ordered containers and deterministic iteration need a total
/// order (actor, then counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The actor that minted the dot.
    pub actor: Actor,
    /// The actor's event number, from 1.
    pub counter: u64,
}

impl Dot {
    /// The dot `(actor, counter)`.
    pub fn new(actor: Actor, counter: u64) -> Self {
        Dot { actor, counter }
    }
}

/// With the `crdts` feature: a `crdts` dot as ours.
#[cfg(feature = "crdts")]
impl From<crdts::Dot<Actor>> for Dot {
    fn from(d: crdts::Dot<Actor>) -> Self {
        Dot::new(d.actor, d.counter)
    }
}

/// With the `crdts` feature: our dot as a `crdts` one.
#[cfg(feature = "crdts")]
impl From<Dot> for crdts::Dot<Actor> {
    fn from(d: Dot) -> Self {
        crdts::Dot::new(d.actor, d.counter)
    }
}

/// A type usable as a dot: totally ordered, hashable, serialisable, with a context type that
/// records sets of such dots.
pub trait DotKind:
    Clone + Ord + Hash + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The causal-context type recording sets of this dot.
    type Context: DotContext<Self>;
}

impl DotKind for Dot {
    type Context = CausalContext;
}

/// Pairs of dots (e.g. the dots of a product of two OR-sets) are recorded in a plain
/// [`DotCloud`]: a pair context cannot be compacted into a version vector.
impl<A: DotKind, B: DotKind> DotKind for (A, B) {
    type Context = DotCloud<(A, B)>;
}

/// A set of dots with the operations causal CRDTs need. Implementations keep a canonical
/// representation, so `==` is set equality.
pub trait DotContext<D>:
    Clone + PartialEq + Debug + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Whether `dot` is covered (has been seen).
    fn contains(&self, dot: &D) -> bool;
    /// Records `dot` as seen; returns whether it was new.
    fn insert(&mut self, dot: D) -> bool;
    /// Set union; returns whether `self` changed.
    fn join(&mut self, other: &Self) -> bool;
    /// Set inclusion `self ⊆ other`.
    fn is_subset(&self, other: &Self) -> bool;
    /// Whether no dot is covered.
    fn is_empty(&self) -> bool;
    /// Number of dots covered.
    fn dot_count(&self) -> u64;
    /// Every covered dot, in increasing order.
    fn dots(&self) -> Box<dyn Iterator<Item = D> + '_>;
    /// The covered dots that `other` does not cover, in increasing order. Costs O(result +
    /// size of `self`'s representation), not O(`other`).
    fn dots_not_in<'a>(&'a self, other: &'a Self) -> Box<dyn Iterator<Item = D> + 'a>;
    /// Restores the canonical representation (a no-op for implementations that keep it).
    fn compact(&mut self);

    /// A summary of the context that answers membership exactly
    /// ([`DotContext::summary_contains`]), as small as the representation allows: the
    /// context itself for the ones that are compact already. An OR-set's
    /// [`crate::Summarize::Summary`].
    type Summary: Clone + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The summary of `self`.
    fn summary(&self) -> Self::Summary;
    /// Whether the context summarised by `summary` covers `dot` (exactly as
    /// [`DotContext::contains`] on it would answer).
    fn summary_contains(summary: &Self::Summary, dot: &D) -> bool;
}

/// A causal context: a version vector (every dot `(a, 1..=vv[a])` is covered) plus a dot cloud
/// of dots beyond the vector, kept canonical (the cloud never holds a dot the vector covers or
/// `(a, vv[a] + 1)`), so structural equality is set equality.
///
/// Hand-written rather than `crdts::VClock`: a `VClock` has no dot cloud, and deltas received
/// out of order leave gaps that only a cloud can record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "CausalContextRepr")]
pub struct CausalContext {
    vv: BTreeMap<Actor, u64>,
    cloud: BTreeSet<Dot>,
}

/// The wire form of a [`CausalContext`]; decoding restores the canonical form (so equality
/// stays set equality whatever a peer sends).
#[derive(Deserialize)]
struct CausalContextRepr {
    vv: BTreeMap<Actor, u64>,
    cloud: BTreeSet<Dot>,
}

impl From<CausalContextRepr> for CausalContext {
    fn from(r: CausalContextRepr) -> Self {
        let mut c = CausalContext {
            vv: r.vv,
            cloud: r.cloud,
        };
        c.vv.retain(|_, n| *n > 0);
        c.cloud.retain(|d| d.counter > 0);
        let actors: BTreeSet<Actor> = c.vv.keys().copied().collect();
        for a in actors {
            c.compact_actor(a);
        }
        c.compact();
        c
    }
}

impl CausalContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `dot` is covered.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.vv.get(&dot.actor).is_some_and(|&n| dot.counter <= n) || self.cloud.contains(dot)
    }

    /// Records `dot`; returns whether it was new.
    pub fn insert(&mut self, dot: Dot) -> bool {
        if dot.counter == 0 || self.contains(&dot) {
            return false;
        }
        let n = self.vv.get(&dot.actor).copied().unwrap_or(0);
        if dot.counter == n + 1 {
            self.vv.insert(dot.actor, dot.counter);
            // With an empty cloud the form is already canonical.
            if !self.cloud.is_empty() {
                self.compact_actor(dot.actor);
            }
        } else {
            self.cloud.insert(dot);
        }
        true
    }

    /// A fresh dot for `actor`: one past the largest counter of `actor` covered.
    pub fn next_dot(&self, actor: Actor) -> Dot {
        Dot::new(actor, self.max_counter(actor) + 1)
    }

    /// The largest counter of `actor` covered (0 if none).
    pub fn max_counter(&self, actor: Actor) -> u64 {
        let vv = self.vv.get(&actor).copied().unwrap_or(0);
        let cloud = self
            .cloud
            .range(Dot::new(actor, 0)..=Dot::new(actor, u64::MAX))
            .next_back()
            .map_or(0, |d| d.counter);
        vv.max(cloud)
    }

    /// Set union; returns whether `self` changed. Costs O(other's representation).
    pub fn join(&mut self, other: &Self) -> bool {
        let mut changed = false;
        let mut touched = Vec::new();
        for (&a, &n) in &other.vv {
            let e = self.vv.entry(a).or_insert(0);
            if n > *e {
                // Dots (a, e+1..=n) not already in the cloud are new.
                let in_cloud = self
                    .cloud
                    .range(Dot::new(a, *e + 1)..=Dot::new(a, n))
                    .count() as u64;
                if in_cloud < n - *e {
                    changed = true;
                }
                *e = n;
                touched.push(a);
            }
        }
        for d in &other.cloud {
            if !self.contains(d) {
                changed = true;
                self.cloud.insert(*d);
                touched.push(d.actor);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for a in touched {
            self.compact_actor(a);
        }
        changed
    }

    /// `self ⊆ other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        for (&a, &n) in &self.vv {
            let m = other.vv.get(&a).copied().unwrap_or(0);
            if n > m {
                let needed = n - m;
                let have = other
                    .cloud
                    .range(Dot::new(a, m + 1)..=Dot::new(a, n))
                    .count() as u64;
                if have < needed {
                    return false;
                }
            }
        }
        self.cloud.iter().all(|d| other.contains(d))
    }

    /// Whether no dot is covered.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// Number of dots covered.
    pub fn dot_count(&self) -> u64 {
        self.vv.values().sum::<u64>() + self.cloud.len() as u64
    }

    /// Every covered dot, in increasing (actor, counter) order.
    pub fn iter(&self) -> impl Iterator<Item = Dot> + '_ {
        let mut actors: BTreeSet<Actor> = self.vv.keys().copied().collect();
        actors.extend(self.cloud.iter().map(|d| d.actor));
        actors.into_iter().flat_map(move |a| {
            let n = self.vv.get(&a).copied().unwrap_or(0);
            (1..=n).map(move |c| Dot::new(a, c)).chain(
                self.cloud
                    .range(Dot::new(a, n + 1)..=Dot::new(a, u64::MAX))
                    .copied(),
            )
        })
    }

    /// The covered dots `other` does not cover, in increasing order; O(result + |self's
    /// representation|) plus a lookup in `other` per candidate.
    pub fn iter_not_in<'a>(&'a self, other: &'a Self) -> impl Iterator<Item = Dot> + 'a {
        let vv_part = self.vv.iter().flat_map(move |(&a, &n)| {
            let m = other.vv.get(&a).copied().unwrap_or(0);
            (m.min(n) + 1..=n)
                .map(move |c| Dot::new(a, c))
                .filter(move |d| !other.cloud.contains(d))
        });
        let cloud_part = self
            .cloud
            .iter()
            .copied()
            .filter(move |d| !other.contains(d));
        let mut v: Vec<Dot> = vv_part.chain(cloud_part).collect();
        v.sort_unstable();
        v.into_iter()
    }

    /// The version-vector part: actor → largest counter such that all of `1..=counter` are
    /// covered.
    pub fn version_vector(&self) -> &BTreeMap<Actor, u64> {
        &self.vv
    }

    /// The dot cloud: covered dots beyond the version vector.
    pub fn cloud(&self) -> &BTreeSet<Dot> {
        &self.cloud
    }

    /// Restores the canonical form (absorbs cloud dots contiguous with the version vector and
    /// drops cloud dots it covers). Every mutating method already does this.
    pub fn compact(&mut self) {
        let actors: BTreeSet<Actor> = self.cloud.iter().map(|d| d.actor).collect();
        for a in actors {
            self.compact_actor(a);
        }
    }

    fn compact_actor(&mut self, a: Actor) {
        let mut n = self.vv.get(&a).copied().unwrap_or(0);
        // Drop cloud dots the vector covers.
        let covered: Vec<Dot> = self
            .cloud
            .range(Dot::new(a, 0)..=Dot::new(a, n))
            .copied()
            .collect();
        for d in covered {
            self.cloud.remove(&d);
        }
        while self.cloud.remove(&Dot::new(a, n + 1)) {
            n += 1;
        }
        if n > 0 {
            self.vv.insert(a, n);
        } else {
            self.vv.remove(&a);
        }
    }
}

impl FromIterator<Dot> for CausalContext {
    fn from_iter<I: IntoIterator<Item = Dot>>(iter: I) -> Self {
        let mut c = CausalContext::new();
        for d in iter {
            c.insert(d);
        }
        c
    }
}

impl DotContext<Dot> for CausalContext {
    fn contains(&self, dot: &Dot) -> bool {
        CausalContext::contains(self, dot)
    }
    fn insert(&mut self, dot: Dot) -> bool {
        CausalContext::insert(self, dot)
    }
    fn join(&mut self, other: &Self) -> bool {
        CausalContext::join(self, other)
    }
    fn is_subset(&self, other: &Self) -> bool {
        CausalContext::is_subset(self, other)
    }
    fn is_empty(&self) -> bool {
        CausalContext::is_empty(self)
    }
    fn dot_count(&self) -> u64 {
        CausalContext::dot_count(self)
    }
    fn dots(&self) -> Box<dyn Iterator<Item = Dot> + '_> {
        Box::new(self.iter())
    }
    fn dots_not_in<'a>(&'a self, other: &'a Self) -> Box<dyn Iterator<Item = Dot> + 'a> {
        Box::new(self.iter_not_in(other))
    }
    fn compact(&mut self) {
        CausalContext::compact(self)
    }
    type Summary = CausalContext;
    fn summary(&self) -> CausalContext {
        self.clone()
    }
    fn summary_contains(summary: &CausalContext, dot: &Dot) -> bool {
        summary.contains(dot)
    }
}

/// A causal context stored as a plain ordered set of dots: for dot kinds with no version-vector
/// structure (such as pairs of dots).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "D: Serialize", deserialize = "D: DeserializeOwned + Ord"))]
pub struct DotCloud<D: Ord>(pub BTreeSet<D>);

impl<D: Ord> Default for DotCloud<D> {
    fn default() -> Self {
        DotCloud(BTreeSet::new())
    }
}

impl<D> DotContext<D> for DotCloud<D>
where
    D: Clone + Ord + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn contains(&self, dot: &D) -> bool {
        self.0.contains(dot)
    }
    fn insert(&mut self, dot: D) -> bool {
        self.0.insert(dot)
    }
    fn join(&mut self, other: &Self) -> bool {
        let before = self.0.len();
        for d in &other.0 {
            if !self.0.contains(d) {
                self.0.insert(d.clone());
            }
        }
        self.0.len() != before
    }
    fn is_subset(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn dot_count(&self) -> u64 {
        self.0.len() as u64
    }
    fn dots(&self) -> Box<dyn Iterator<Item = D> + '_> {
        Box::new(self.0.iter().cloned())
    }
    fn dots_not_in<'a>(&'a self, other: &'a Self) -> Box<dyn Iterator<Item = D> + 'a> {
        Box::new(self.0.iter().filter(move |d| !other.0.contains(d)).cloned())
    }
    fn compact(&mut self) {}
    type Summary = Self;
    fn summary(&self) -> Self {
        self.clone()
    }
    fn summary_contains(summary: &Self, dot: &D) -> bool {
        summary.0.contains(dot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_dots_compact() {
        let mut c = CausalContext::new();
        assert!(c.insert(Dot::new(1, 3)));
        assert!(c.insert(Dot::new(1, 1)));
        assert_eq!(c.cloud().len(), 1);
        assert!(c.insert(Dot::new(1, 2)));
        assert!(c.cloud().is_empty());
        assert_eq!(c.version_vector()[&1], 3);
        assert!(!c.insert(Dot::new(1, 2)));
        assert_eq!(c.next_dot(1), Dot::new(1, 4));
        assert_eq!(c.dot_count(), 3);
    }

    #[test]
    fn join_and_difference() {
        let a: CausalContext = [Dot::new(1, 1), Dot::new(1, 2), Dot::new(2, 5)]
            .into_iter()
            .collect();
        let b: CausalContext = [Dot::new(1, 1), Dot::new(2, 1)].into_iter().collect();
        let diff: Vec<Dot> = a.iter_not_in(&b).collect();
        assert_eq!(diff, vec![Dot::new(1, 2), Dot::new(2, 5)]);
        let mut j = a.clone();
        assert!(j.join(&b));
        assert!(!j.join(&b));
        assert!(a.is_subset(&j) && b.is_subset(&j) && !j.is_subset(&a));
        let all: Vec<Dot> = j.iter().collect();
        // A non-canonical context from the wire is canonicalised.
        let raw = crate::encode(&(
            BTreeMap::from([(1u64, 1u64), (2, 0)]),
            BTreeSet::from([Dot::new(1, 1), Dot::new(1, 2)]),
        ))
        .unwrap();
        let c: CausalContext = crate::decode(&raw).unwrap();
        assert_eq!(c, [Dot::new(1, 1), Dot::new(1, 2)].into_iter().collect());
        assert_eq!(
            all,
            vec![
                Dot::new(1, 1),
                Dot::new(1, 2),
                Dot::new(2, 1),
                Dot::new(2, 5)
            ]
        );
        // Join that fills a gap through the version vector.
        let mut x: CausalContext = [Dot::new(3, 2)].into_iter().collect();
        let y: CausalContext = [Dot::new(3, 1), Dot::new(3, 2)].into_iter().collect();
        assert!(x.join(&y));
        assert_eq!(x, y);
        let mut z = y.clone();
        assert!(!z.join(&x));
    }
}
