//! Causal metadata of derived sets: dots tagged by the variable that minted them.
//!
//! Lasp's operators over observed-remove sets carry each element's causal metadata through
//! (PPDP'15, Definitions 3.3–3.8). A derived set is an [`ORSet`] whose dots are [`DDot`]s:
//!
//! - [`DDot::Base`]: a dot `d` minted in the source variable tagged `v` (map, filter, union and
//!   fold pass these through unchanged);
//! - [`DDot::Pair`]: the dot of a pair formed by a product or an intersection: `(a, b)` is
//!   active while both `a` and `b` are active, and **removed when either is removed**.
//!
//! The context ([`DCtx`]) keeps base dots compactly, one version-vector
//! [`CausalContext`] per source variable, so chains of map / filter / union over huge sets keep
//! a context as small as their sources'. Pair dots have no version-vector structure and live in
//! a plain ordered set (the products of the advertisement counter have hundreds of pairs, not
//! millions).
//!
//! Hand-written: neither `crdts` nor any other crate models derived causal metadata.

use std::collections::{BTreeMap, BTreeSet};

use rasp_lattice::set::Element;
use rasp_lattice::{CausalContext, Dot, DotContext, DotKind, Lattice, ORSet};
use serde::{Deserialize, Serialize};

/// Names a source variable inside derived dots: a 64-bit FNV-1a hash of the variable's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VarTag(pub u64);

impl VarTag {
    /// The tag of the variable named `id`.
    pub const fn of(id: &str) -> VarTag {
        let bytes = id.as_bytes();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut i = 0;
        while i < bytes.len() {
            h ^= bytes[i] as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        VarTag(h)
    }
}

/// A dot of a derived set: a source dot tagged by its variable, or a pair of dots.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DDot {
    /// Dot `1` minted by an update of the source variable tagged `0`.
    Base(VarTag, Dot),
    /// The pair of two dots, formed by a product or an intersection.
    Pair(Box<DDot>, Box<DDot>),
    /// A dot that reached a union through its input tagged `0`. Unions keep each input's
    /// lineage apart: two inputs derived from one source share dots, and without the tag a
    /// dot one input filtered out (removed) would remove the same dot the other input holds.
    Via(VarTag, Box<DDot>),
}

impl DDot {
    /// The pair `(a, b)`.
    pub fn pair(a: DDot, b: DDot) -> DDot {
        DDot::Pair(Box::new(a), Box::new(b))
    }

    /// `d` reached through the union input tagged `tag`.
    pub fn via(tag: VarTag, d: DDot) -> DDot {
        DDot::Via(tag, Box::new(d))
    }
}

impl DotKind for DDot {
    type Context = DCtx;
}

/// The causal context of a derived set: per source variable a compact [`CausalContext`] of
/// base dots, per union input the context of the dots that came through it, plus the pair
/// dots seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DCtx {
    bases: BTreeMap<VarTag, CausalContext>,
    via: BTreeMap<VarTag, DCtx>,
    pairs: BTreeSet<DDot>,
}

impl DCtx {
    /// A context covering exactly the dots of `ctx`, tagged `tag`.
    pub fn from_base(tag: VarTag, ctx: CausalContext) -> DCtx {
        let mut bases = BTreeMap::new();
        if !ctx.is_empty() {
            bases.insert(tag, ctx);
        }
        DCtx {
            bases,
            via: BTreeMap::new(),
            pairs: BTreeSet::new(),
        }
    }

    /// The context `ctx` seen through the union input tagged `tag` (covers `Via(tag, d)`
    /// for every `d` that `ctx` covers). O(1).
    pub fn via(tag: VarTag, ctx: DCtx) -> DCtx {
        let mut via = BTreeMap::new();
        if !ctx.is_empty() {
            via.insert(tag, ctx);
        }
        DCtx {
            bases: BTreeMap::new(),
            via,
            pairs: BTreeSet::new(),
        }
    }

    /// The per-variable base contexts.
    pub fn bases(&self) -> &BTreeMap<VarTag, CausalContext> {
        &self.bases
    }

    /// The per-union-input contexts.
    pub fn via_contexts(&self) -> &BTreeMap<VarTag, DCtx> {
        &self.via
    }

    /// The pair dots seen.
    pub fn pairs(&self) -> &BTreeSet<DDot> {
        &self.pairs
    }
}

/// The summary of a [`DCtx`] ([`DotContext::summary`]): membership as exact as the
/// context's (for dots with counters from 1, which every minted dot has), with the pair dots as rectangles `firsts × seconds` (disjoint in their first
/// dots), each side summarised in turn.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DCtxSummary {
    bases: BTreeMap<VarTag, CausalContext>,
    via: BTreeMap<VarTag, DCtxSummary>,
    pairs: Vec<(DCtxSummary, DCtxSummary)>,
}

impl DotContext<DDot> for DCtx {
    fn contains(&self, dot: &DDot) -> bool {
        match dot {
            DDot::Base(tag, d) => self.bases.get(tag).is_some_and(|c| c.contains(d)),
            DDot::Via(tag, d) => self.via.get(tag).is_some_and(|c| c.contains(d)),
            DDot::Pair(..) => self.pairs.contains(dot),
        }
    }

    fn insert(&mut self, dot: DDot) -> bool {
        match dot {
            DDot::Base(tag, d) => self.bases.entry(tag).or_default().insert(d),
            DDot::Via(tag, d) => self.via.entry(tag).or_default().insert(*d),
            pair => self.pairs.insert(pair),
        }
    }

    fn join(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for (tag, c) in &other.bases {
            match self.bases.get_mut(tag) {
                Some(mine) => changed |= mine.join(c),
                None => {
                    if !c.is_empty() {
                        self.bases.insert(*tag, c.clone());
                        changed = true;
                    }
                }
            }
        }
        for (tag, c) in &other.via {
            match self.via.get_mut(tag) {
                Some(mine) => changed |= mine.join(c),
                None => {
                    if !c.is_empty() {
                        self.via.insert(*tag, c.clone());
                        changed = true;
                    }
                }
            }
        }
        for p in &other.pairs {
            if !self.pairs.contains(p) {
                self.pairs.insert(p.clone());
                changed = true;
            }
        }
        changed
    }

    fn is_subset(&self, other: &Self) -> bool {
        self.bases
            .iter()
            .all(|(tag, c)| match other.bases.get(tag) {
                Some(o) => c.is_subset(o),
                None => c.is_empty(),
            })
            && self.pairs.is_subset(&other.pairs)
    }

    fn is_empty(&self) -> bool {
        self.bases.values().all(CausalContext::is_empty)
            && self.via.values().all(DCtx::is_empty)
            && self.pairs.is_empty()
    }

    fn dot_count(&self) -> u64 {
        self.bases.values().map(|c| c.dot_count()).sum::<u64>()
            + self.via.values().map(|c| c.dot_count()).sum::<u64>()
            + self.pairs.len() as u64
    }

    fn dots(&self) -> Box<dyn Iterator<Item = DDot> + '_> {
        // Variant order is Base < Pair < Via; within a variant, tags then dots increase.
        Box::new(
            self.bases
                .iter()
                .flat_map(|(tag, c)| c.iter().map(move |d| DDot::Base(*tag, d)))
                .chain(self.pairs.iter().cloned())
                .chain(
                    self.via
                        .iter()
                        .flat_map(|(tag, c)| c.dots().map(move |d| DDot::via(*tag, d))),
                ),
        )
    }

    fn dots_not_in<'a>(&'a self, other: &'a Self) -> Box<dyn Iterator<Item = DDot> + 'a> {
        Box::new(
            self.bases
                .iter()
                .flat_map(move |(tag, c)| {
                    let dots: Box<dyn Iterator<Item = Dot> + 'a> = match other.bases.get(tag) {
                        Some(o) => Box::new(c.iter_not_in(o)),
                        None => Box::new(c.iter()),
                    };
                    dots.map(move |d| DDot::Base(*tag, d))
                })
                .chain(
                    self.pairs
                        .iter()
                        .filter(|p| !other.pairs.contains(*p))
                        .cloned(),
                )
                .chain(self.via.iter().flat_map(move |(tag, c)| {
                    let dots: Box<dyn Iterator<Item = DDot> + 'a> = match other.via.get(tag) {
                        Some(o) => c.dots_not_in(o),
                        None => c.dots(),
                    };
                    dots.map(move |d| DDot::via(*tag, d))
                })),
        )
    }

    type Summary = DCtxSummary;

    /// The base and union-input contexts as they are (version vectors), and the pair dots
    /// as *rectangles*: the pairs grouped by their first dot, then the first dots grouped by
    /// the set of second dots they pair with, each set summarised in turn. The pairs of a
    /// product of `m` elements by `n` seen whole are one rectangle of two version vectors
    /// instead of `m × n` pair dots (the advertisement counter's filtered product keeps every
    /// pair it ever saw in its context).
    fn summary(&self) -> DCtxSummary {
        let mut by_first: BTreeMap<&DDot, DCtx> = BTreeMap::new();
        for p in &self.pairs {
            if let DDot::Pair(a, b) = p {
                by_first.entry(a).or_default().insert((**b).clone());
            }
        }
        // Group the first dots by their (canonically encoded) set of second dots.
        let mut rects: BTreeMap<Vec<u8>, (DCtx, DCtx)> = BTreeMap::new();
        for (a, seconds) in by_first {
            let key = rasp_lattice::encode(&seconds).unwrap_or_default();
            rects
                .entry(key)
                .or_insert_with(|| (DCtx::default(), seconds))
                .0
                .insert(a.clone());
        }
        DCtxSummary {
            bases: self.bases.clone(),
            via: self
                .via
                .iter()
                .map(|(tag, c)| (*tag, c.summary()))
                .collect(),
            pairs: rects
                .into_values()
                .map(|(firsts, seconds)| (firsts.summary(), seconds.summary()))
                .collect(),
        }
    }

    fn summary_contains(summary: &DCtxSummary, dot: &DDot) -> bool {
        match dot {
            DDot::Base(tag, d) => summary.bases.get(tag).is_some_and(|c| c.contains(d)),
            DDot::Via(tag, d) => summary
                .via
                .get(tag)
                .is_some_and(|c| DCtx::summary_contains(c, d)),
            DDot::Pair(a, b) => summary.pairs.iter().any(|(firsts, seconds)| {
                DCtx::summary_contains(firsts, a) && DCtx::summary_contains(seconds, b)
            }),
        }
    }

    fn compact(&mut self) {
        for c in self.bases.values_mut() {
            c.compact();
        }
        self.bases.retain(|_, c| !c.is_empty());
        for c in self.via.values_mut() {
            c.compact();
        }
        self.via.retain(|_, c| !c.is_empty());
    }
}

/// A derived observed-remove set: elements `T` with [`DDot`] causal metadata.
pub type DSet<T> = ORSet<T, DDot>;

/// Sets an operator can read: a source [`ORSet`] (whose dots get tagged with its variable) or a
/// derived [`DSet`] (whose dots already carry their origin). The accessors see the set as the
/// [`DSet`] [`CausalSet::lift`] would give, without building it: operators read the *other*
/// input of a product or intersection through them at O(what they touch).
pub trait CausalSet<T: Element>: Lattice {
    /// This value as a derived set; `tag` names the variable holding it. O(size of `self`), so
    /// operators call it on deltas only.
    fn lift(&self, tag: VarTag) -> DSet<T>;
    /// The active dots of `x`, lifted.
    fn lifted_dots(&self, tag: VarTag, x: &T) -> Option<BTreeSet<DDot>>;
    /// The element holding the lifted active dot `d`.
    fn lifted_element_of(&self, tag: VarTag, d: &DDot) -> Option<&T>;
    /// Every `(element, lifted active dots)`, in element order.
    fn lifted_iter(&self, tag: VarTag) -> Box<dyn Iterator<Item = (&T, BTreeSet<DDot>)> + '_>;
    /// The present elements.
    fn present(&self) -> BTreeSet<T>;
}

fn tag_all(tag: VarTag, ds: &BTreeSet<Dot>) -> BTreeSet<DDot> {
    ds.iter().map(|d| DDot::Base(tag, *d)).collect()
}

impl<T: Element> CausalSet<T> for ORSet<T, Dot> {
    fn lift(&self, tag: VarTag) -> DSet<T> {
        let store = self
            .iter()
            .map(|(x, ds)| (x.clone(), tag_all(tag, ds)))
            .collect();
        let ctx = DCtx::from_base(tag, self.context().clone());
        ORSet::from_parts(store, ctx).expect("lifting a valid set gives a valid set")
    }
    fn lifted_dots(&self, tag: VarTag, x: &T) -> Option<BTreeSet<DDot>> {
        self.dots(x).map(|ds| tag_all(tag, ds))
    }
    fn lifted_element_of(&self, tag: VarTag, d: &DDot) -> Option<&T> {
        match d {
            DDot::Base(t, d) if *t == tag => self.element_of(d),
            _ => None,
        }
    }
    fn lifted_iter(&self, tag: VarTag) -> Box<dyn Iterator<Item = (&T, BTreeSet<DDot>)> + '_> {
        Box::new(self.iter().map(move |(x, ds)| (x, tag_all(tag, ds))))
    }
    fn present(&self) -> BTreeSet<T> {
        self.elements().cloned().collect()
    }
}

impl<T: Element> CausalSet<T> for DSet<T> {
    fn lift(&self, _tag: VarTag) -> DSet<T> {
        self.clone()
    }
    fn lifted_dots(&self, _tag: VarTag, x: &T) -> Option<BTreeSet<DDot>> {
        self.dots(x).cloned()
    }
    fn lifted_element_of(&self, _tag: VarTag, d: &DDot) -> Option<&T> {
        self.element_of(d)
    }
    fn lifted_iter(&self, _tag: VarTag) -> Box<dyn Iterator<Item = (&T, BTreeSet<DDot>)> + '_> {
        Box::new(self.iter().map(|(x, ds)| (x, ds.clone())))
    }
    fn present(&self) -> BTreeSet<T> {
        self.elements().cloned().collect()
    }
}

#[cfg(test)]
mod summary_tests {
    use proptest::prelude::*;
    use rasp_lattice::{Dot, DotContext};

    use super::*;

    fn base(tag: u64, actor: u64, c: u64) -> DDot {
        DDot::Base(VarTag(tag), Dot::new(actor, c))
    }

    /// A pair as a union-then-product forms it: `(Via(u, Base(v, a)), Base(w, b))`.
    fn pair(a: u64, b: u64) -> DDot {
        DDot::pair(DDot::via(VarTag(9), base(1, 0, a)), base(2, 0, b))
    }

    proptest! {
        /// The summary answers membership exactly as the context does, for base, union-input
        /// and (nested) pair dots, seen or not.
        #[test]
        fn summary_membership_is_exact(
            pairs in proptest::collection::btree_set((1u64..8, 1u64..8), 0..40),
            bases in proptest::collection::btree_set((0u64..3, 1u64..6), 0..10),
            nested in proptest::collection::btree_set((1u64..4, 1u64..4, 1u64..4), 0..10),
        ) {
            let mut ctx = DCtx::default();
            for &(a, b) in &pairs {
                ctx.insert(pair(a, b));
            }
            for &(actor, c) in &bases {
                ctx.insert(base(1, actor, c));
                ctx.insert(DDot::via(VarTag(7), base(3, actor, c)));
            }
            for &(a, b, c) in &nested {
                ctx.insert(DDot::pair(pair(a, b), base(4, 1, c)));
            }
            let s = ctx.summary();
            let back: DCtxSummary = rasp_lattice::decode(&rasp_lattice::encode(&s).unwrap()).unwrap();
            prop_assert_eq!(&back, &s);
            // Counters from 1, as every minted dot's (a version vector covers counter 0 of
            // every actor it knows, which no dot has).
            for a in 1..9 {
                for b in 1..9 {
                    let p = pair(a, b);
                    prop_assert_eq!(DCtx::summary_contains(&s, &p), ctx.contains(&p), "{:?}", p);
                    for c in 1..5 {
                        let n = DDot::pair(pair(1 + a % 4, 1 + b % 4), base(4, 1, c));
                        prop_assert_eq!(DCtx::summary_contains(&s, &n), ctx.contains(&n));
                    }
                }
                for actor in 0..3 {
                    let d = base(1, actor, a);
                    prop_assert_eq!(DCtx::summary_contains(&s, &d), ctx.contains(&d));
                    let v = DDot::via(VarTag(7), base(3, actor, a));
                    prop_assert_eq!(DCtx::summary_contains(&s, &v), ctx.contains(&v));
                }
            }
        }
    }

    /// The pairs of a 20 × 20 product seen whole summarise to one rectangle: a small fraction
    /// of the context's encoding.
    #[test]
    fn a_whole_product_is_one_rectangle() {
        let mut ctx = DCtx::default();
        for a in 1..=20 {
            for b in 1..=20 {
                ctx.insert(pair(a, b));
            }
        }
        let s = ctx.summary();
        assert_eq!(s.pairs.len(), 1);
        let (full, small) = (
            rasp_lattice::encoded_size(&ctx),
            rasp_lattice::encoded_size(&s),
        );
        assert!(small * 50 < full, "summary {small} B, context {full} B");
    }
}
