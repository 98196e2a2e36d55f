//! Incremental operators over causal sets (PPDP'15, Definitions 3.3–3.8).
//!
//! Each operator turns the **effective delta** of one input (the part of an update that
//! strictly inflated it, see [`effective_delta`]) into a delta of its output, so an update costs
//! O(delta) (times the matching part of the other input for product and intersection), never
//! O(state) as in Lasp's recompute-everything processes. Joining every output delta into the
//! output gives, at all times, a set whose elements are exactly the plain function of the
//! inputs' elements (the property the tests check against from-scratch evaluation).
//!
//! Metadata rules (Meiklejohn, Van Roy, "Lasp: A Language for Distributed, Coordination-Free
//! Programming", PPDP 2015, §3–4, and Lasp's Erlang operators):
//! - **map** `f`: `f(x)` carries the dots of `x`; several `x` with one image union their dots;
//! - **filter** `p`: failing elements are left out of the store but their dots stay in the
//!   context, so they read as removed and the output still inflates;
//! - **union**: the common elements' dots merge; each input's dots are marked with the input
//!   ([`DDot::Via`]) so two inputs derived from one source cannot cancel each other's dots;
//! - **product**: pair `(x, y)` carries the pair dots `(a, b)` of its factors; it is removed
//!   when `a` **or** `b` is removed;
//! - **intersection**: like product restricted to equal elements: `x` is present only while
//!   present on both sides.
//!
//! Fold lives in [`crate::fold`].

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

use rasp_lattice::set::Element;
use rasp_lattice::{DotContext, Lattice, ORSet};

use crate::causal::{CausalSet, DCtx, DDot, DSet, VarTag};
use crate::erased::{downcast, AnyLattice};
use crate::fold::{FoldOp, Folded};

/// The part of `incoming` that strictly inflates `state` (the RR optimisation's `Δ(a, b)`),
/// i.e. what operators downstream of `state` must process.
pub fn effective_delta<L: Lattice>(incoming: &L, state: &L) -> L {
    incoming.delta(state)
}

fn build<U: Element>(store: BTreeMap<U, BTreeSet<DDot>>, ctx: DCtx) -> DSet<U> {
    ORSet::from_parts(store, ctx).expect("operators keep the causal invariants")
}

/// map: the output delta of `delta` under `f`.
pub fn map_delta<T: Element, U: Element>(delta: &DSet<T>, f: impl Fn(&T) -> U) -> DSet<U> {
    let mut store: BTreeMap<U, BTreeSet<DDot>> = BTreeMap::new();
    for (x, ds) in delta.iter() {
        store.entry(f(x)).or_default().extend(ds.iter().cloned());
    }
    build(store, delta.context().clone())
}

/// map by a partial function: the images of the elements `f` takes; the others read as
/// removed (a WebAssembly function that fails on an element, `program::wasm`).
pub fn filter_map_delta<T: Element, U: Element>(
    delta: &DSet<T>,
    f: impl Fn(&T) -> Option<U>,
) -> DSet<U> {
    let mut store: BTreeMap<U, BTreeSet<DDot>> = BTreeMap::new();
    for (x, ds) in delta.iter() {
        if let Some(u) = f(x) {
            store.entry(u).or_default().extend(ds.iter().cloned());
        }
    }
    build(store, delta.context().clone())
}

/// The bug zoo's broken `map` ([`crate::program::Defects::map_keeps_last_source`]): an
/// image keeps the dots of the last of its sources in the delta only, the others' dots
/// reading as removed (Lasp's non-injective `map` before it unioned metadata).
#[doc(hidden)]
pub fn map_delta_last_source<T: Element, U: Element>(
    delta: &DSet<T>,
    f: impl Fn(&T) -> U,
) -> DSet<U> {
    let mut store: BTreeMap<U, BTreeSet<DDot>> = BTreeMap::new();
    for (x, ds) in delta.iter() {
        store.insert(f(x), ds.clone());
    }
    build(store, delta.context().clone())
}

/// filter: the output delta of `delta` under predicate `p`.
pub fn filter_delta<T: Element>(delta: &DSet<T>, p: impl Fn(&T) -> bool) -> DSet<T> {
    let store = delta
        .iter()
        .filter(|(x, _)| p(x))
        .map(|(x, ds)| (x.clone(), ds.clone()))
        .collect();
    build(store, delta.context().clone())
}

/// union: the (lifted) delta of the input tagged `input`, its dots marked as having come
/// through that input ([`DDot::Via`]), so the two inputs' lineages never collide.
pub fn union_delta<T: Element>(delta: &DSet<T>, input: VarTag) -> DSet<T> {
    let store = delta
        .iter()
        .map(|(x, ds)| {
            (
                x.clone(),
                ds.iter().map(|d| DDot::via(input, d.clone())).collect(),
            )
        })
        .collect();
    build(store, DCtx::via(input, delta.context().clone()))
}

/// product, left side changed: the pairs `delta × right`.
pub fn product_left_delta<T: Element, U: Element>(
    delta: &DSet<T>,
    right: &impl CausalSet<U>,
    right_tag: VarTag,
) -> DSet<(T, U)> {
    let mut store: BTreeMap<(T, U), BTreeSet<DDot>> = BTreeMap::new();
    let mut ctx = DCtx::default();
    for (x, xs) in delta.iter() {
        for (y, ys) in right.lifted_iter(right_tag) {
            let dots = store.entry((x.clone(), y.clone())).or_default();
            for a in xs {
                for b in &ys {
                    dots.insert(DDot::pair(a.clone(), b.clone()));
                }
            }
        }
    }
    // Every pair formed with a dot the delta covers: new pairs are added above, pairs of a
    // removed left dot are retired here.
    for a in delta.context().dots() {
        for (_, ys) in right.lifted_iter(right_tag) {
            for b in ys {
                ctx.insert(DDot::pair(a.clone(), b.clone()));
            }
        }
    }
    build(store, ctx)
}

/// product, right side changed: the pairs `left × delta`.
pub fn product_right_delta<T: Element, U: Element>(
    left: &impl CausalSet<T>,
    left_tag: VarTag,
    delta: &DSet<U>,
) -> DSet<(T, U)> {
    let mut store: BTreeMap<(T, U), BTreeSet<DDot>> = BTreeMap::new();
    let mut ctx = DCtx::default();
    for (x, xs) in left.lifted_iter(left_tag) {
        for (y, ys) in delta.iter() {
            let dots = store.entry((x.clone(), y.clone())).or_default();
            for a in &xs {
                for b in ys {
                    dots.insert(DDot::pair(a.clone(), b.clone()));
                }
            }
        }
    }
    for b in delta.context().dots() {
        for (_, xs) in left.lifted_iter(left_tag) {
            for a in xs {
                ctx.insert(DDot::pair(a.clone(), b.clone()));
            }
        }
    }
    build(store, ctx)
}

/// intersection, left side changed. `left_before` is the left input *before* `delta` was
/// joined into it: it names the element of each dot the delta removes.
pub fn intersection_left_delta<T: Element>(
    delta: &DSet<T>,
    left_before: (&impl CausalSet<T>, VarTag),
    right: (&impl CausalSet<T>, VarTag),
) -> DSet<T> {
    let mut store: BTreeMap<T, BTreeSet<DDot>> = BTreeMap::new();
    let mut ctx = DCtx::default();
    for (x, xs) in delta.iter() {
        if let Some(ys) = right.0.lifted_dots(right.1, x) {
            let dots = store.entry(x.clone()).or_default();
            for a in xs {
                for b in &ys {
                    dots.insert(DDot::pair(a.clone(), b.clone()));
                }
            }
        }
    }
    for a in delta.context().dots() {
        let x = delta
            .element_of(&a)
            .or_else(|| left_before.0.lifted_element_of(left_before.1, &a));
        if let Some(ys) = x.and_then(|x| right.0.lifted_dots(right.1, x)) {
            for b in ys {
                ctx.insert(DDot::pair(a.clone(), b.clone()));
            }
        }
    }
    build(store, ctx)
}

/// The bug zoo's broken `intersection`
/// ([`crate::program::Defects::intersection_concatenates`]): an element of `delta` present on
/// the `other` side gets both sides' own dots, concatenated, instead of their pairs; removing
/// it on one side retires only that side's dots.
#[doc(hidden)]
pub fn intersection_concat_delta<T: Element>(
    delta: &DSet<T>,
    other: (&impl CausalSet<T>, VarTag),
) -> DSet<T> {
    let mut store: BTreeMap<T, BTreeSet<DDot>> = BTreeMap::new();
    let mut ctx = delta.context().clone();
    for (x, xs) in delta.iter() {
        if let Some(ys) = other.0.lifted_dots(other.1, x) {
            let dots = store.entry(x.clone()).or_default();
            dots.extend(xs.iter().cloned());
            for y in ys {
                ctx.insert(y.clone());
                dots.insert(y);
            }
        }
    }
    build(store, ctx)
}

/// intersection, right side changed (pairs stay oriented `(left dot, right dot)`).
pub fn intersection_right_delta<T: Element>(
    left: (&impl CausalSet<T>, VarTag),
    delta: &DSet<T>,
    right_before: (&impl CausalSet<T>, VarTag),
) -> DSet<T> {
    let mut store: BTreeMap<T, BTreeSet<DDot>> = BTreeMap::new();
    let mut ctx = DCtx::default();
    for (y, ys) in delta.iter() {
        if let Some(xs) = left.0.lifted_dots(left.1, y) {
            let dots = store.entry(y.clone()).or_default();
            for a in &xs {
                for b in ys {
                    dots.insert(DDot::pair(a.clone(), b.clone()));
                }
            }
        }
    }
    for b in delta.context().dots() {
        let y = delta
            .element_of(&b)
            .or_else(|| right_before.0.lifted_element_of(right_before.1, &b));
        if let Some(xs) = y.and_then(|y| left.0.lifted_dots(left.1, y)) {
            for a in xs {
                ctx.insert(DDot::pair(a.clone(), b.clone()));
            }
        }
    }
    build(store, ctx)
}

// ----- the operators as the engine runs them --------------------------------------------------
//
// Each rule above behind one erased interface ([`Operator`]): the program keeps one per derived
// variable and feeds it the effective deltas of its inputs.

/// The operator behind a derived variable, erased. Operators are stateless and shareable
/// between threads: a compiled program ([`crate::program::CompiledProgram`]) shares them.
pub(crate) trait Operator: Send + Sync {
    /// Whether input `pos` must be seen *before* its delta is joined.
    fn needs_before(&self, pos: usize) -> bool;
    /// The output delta for `delta` arriving on input `pos`; `inputs` are the inputs' states.
    fn apply(
        &self,
        pos: usize,
        delta: &dyn AnyLattice,
        inputs: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice>;
    /// The output computed from scratch (used when the operator is instantiated on a replica
    /// that already holds input state).
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice>;
}

/// bind_to: the output is a copy of the input, delta for delta.
pub(crate) struct CopyOperator;

impl Operator for CopyOperator {
    fn needs_before(&self, _: usize) -> bool {
        false
    }
    fn apply(
        &self,
        _: usize,
        delta: &dyn AnyLattice,
        _: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        delta.clone_box()
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        inputs[0].clone_box()
    }
}

fn input<L: 'static>(v: &dyn AnyLattice) -> &L {
    downcast::<L>(v).expect("operator inputs are typed at declaration")
}

/// map and filter ([`map_delta`], [`filter_delta`]): stateless, one input.
pub(crate) struct UnaryOperator<T, U, In, F> {
    pub(crate) tag: VarTag,
    pub(crate) f: F,
    pub(crate) _t: PhantomData<fn(T, In) -> U>,
}

impl<T, U, In, F> Operator for UnaryOperator<T, U, In, F>
where
    T: Element,
    U: Element,
    In: CausalSet<T>,
    F: Fn(&DSet<T>) -> DSet<U> + Send + Sync,
{
    fn needs_before(&self, _: usize) -> bool {
        false
    }
    fn apply(
        &self,
        _: usize,
        delta: &dyn AnyLattice,
        _: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        Box::new((self.f)(&input::<In>(delta).lift(self.tag)))
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        Box::new((self.f)(&input::<In>(inputs[0]).lift(self.tag)))
    }
}

/// fold ([`crate::fold`]): the input's delta folded on its own.
pub(crate) struct FoldOperator<T, In, F> {
    pub(crate) tag: VarTag,
    pub(crate) _t: PhantomData<fn(T, In, F)>,
}

impl<T: Element, In: CausalSet<T>, F: FoldOp<T>> Operator for FoldOperator<T, In, F> {
    fn needs_before(&self, _: usize) -> bool {
        false
    }
    fn apply(
        &self,
        _: usize,
        delta: &dyn AnyLattice,
        _: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        Box::new(Folded::<T, F>::from_set(input::<In>(delta).lift(self.tag)))
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        Box::new(Folded::<T, F>::from_set(
            input::<In>(inputs[0]).lift(self.tag),
        ))
    }
}

/// union ([`union_delta`]).
pub(crate) struct UnionOperator<T, A, B> {
    pub(crate) tags: [VarTag; 2],
    pub(crate) _t: PhantomData<fn(T, A, B)>,
}

impl<T: Element, A: CausalSet<T>, B: CausalSet<T>> Operator for UnionOperator<T, A, B> {
    fn needs_before(&self, _: usize) -> bool {
        false
    }
    fn apply(
        &self,
        pos: usize,
        delta: &dyn AnyLattice,
        _: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        let d = if pos == 0 {
            input::<A>(delta).lift(self.tags[0])
        } else {
            input::<B>(delta).lift(self.tags[1])
        };
        Box::new(union_delta(&d, self.tags[pos]))
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        let mut out = union_delta(&input::<A>(inputs[0]).lift(self.tags[0]), self.tags[0]);
        out.join(&union_delta(
            &input::<B>(inputs[1]).lift(self.tags[1]),
            self.tags[1],
        ));
        Box::new(out)
    }
}

/// product ([`product_left_delta`], [`product_right_delta`]).
pub(crate) struct ProductOperator<T, U, A, B> {
    pub(crate) tags: [VarTag; 2],
    pub(crate) _t: PhantomData<fn(T, U, A, B)>,
}

impl<T: Element, U: Element, A: CausalSet<T>, B: CausalSet<U>> Operator
    for ProductOperator<T, U, A, B>
{
    fn needs_before(&self, _: usize) -> bool {
        false
    }
    fn apply(
        &self,
        pos: usize,
        delta: &dyn AnyLattice,
        inputs: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        if pos == 0 {
            let d = input::<A>(delta).lift(self.tags[0]);
            Box::new(product_left_delta(&d, input::<B>(inputs[1]), self.tags[1]))
        } else {
            let d = input::<B>(delta).lift(self.tags[1]);
            Box::new(product_right_delta(input::<A>(inputs[0]), self.tags[0], &d))
        }
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        let a = input::<A>(inputs[0]).lift(self.tags[0]);
        Box::new(product_left_delta(&a, input::<B>(inputs[1]), self.tags[1]))
    }
}

/// intersection ([`intersection_left_delta`], [`intersection_right_delta`]); it reads the
/// input's state before the delta is joined.
pub(crate) struct IntersectionOperator<T, A, B> {
    pub(crate) tags: [VarTag; 2],
    /// [`crate::program::Defects::intersection_concatenates`].
    pub(crate) concat: bool,
    pub(crate) _t: PhantomData<fn(T, A, B)>,
}

impl<T: Element, A: CausalSet<T>, B: CausalSet<T>> Operator for IntersectionOperator<T, A, B> {
    fn needs_before(&self, _: usize) -> bool {
        true
    }
    fn apply(
        &self,
        pos: usize,
        delta: &dyn AnyLattice,
        inputs: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        let (a, b) = (input::<A>(inputs[0]), input::<B>(inputs[1]));
        if self.concat {
            return Box::new(if pos == 0 {
                let d = input::<A>(delta).lift(self.tags[0]);
                intersection_concat_delta(&d, (b, self.tags[1]))
            } else {
                let d = input::<B>(delta).lift(self.tags[1]);
                intersection_concat_delta(&d, (a, self.tags[0]))
            });
        }
        if pos == 0 {
            let d = input::<A>(delta).lift(self.tags[0]);
            Box::new(intersection_left_delta(
                &d,
                (a, self.tags[0]),
                (b, self.tags[1]),
            ))
        } else {
            let d = input::<B>(delta).lift(self.tags[1]);
            Box::new(intersection_right_delta(
                (a, self.tags[0]),
                &d,
                (b, self.tags[1]),
            ))
        }
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        let a = input::<A>(inputs[0]).lift(self.tags[0]);
        let b = input::<B>(inputs[1]);
        Box::new(intersection_left_delta(
            &a,
            (&DSet::<T>::bottom(), self.tags[0]),
            (b, self.tags[1]),
        ))
    }
}
