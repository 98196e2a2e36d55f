//! Shared test machinery: random histories of mutations and synchronisations on a few
//! replicas, for any lattice type with a `Model` (its operations and how to apply them).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rasp_lattice::causal::DotCloud;
use rasp_lattice::laws;
use rasp_lattice::*;

/// A lattice type under test: its operations and how one replica applies one.
pub trait Model: Lattice {
    /// One mutation.
    type Op: Clone + Debug;
    /// Random operations.
    fn op() -> BoxedStrategy<Self::Op>;
    /// Applies `op` as `actor`; returns the delta.
    fn apply(&mut self, actor: Actor, op: &Self::Op) -> Self;
    /// The external value, rendered for comparison.
    fn read(&self) -> String;
    /// Type-specific monotonicity checks for `a ≤ b`.
    fn check_reads(_a: &Self, _b: &Self) {}
}

/// One step of a history.
#[derive(Clone, Debug)]
pub enum Step<O> {
    /// Replica `r` applies an operation.
    Op(usize, O),
    /// Replica `to` joins replica `from`'s full state.
    Sync(usize, usize),
    /// Replica `to` joins `delta(from, to)` (the RR optimisation).
    SyncDelta(usize, usize),
}

pub const REPLICAS: usize = 3;

pub fn step<L: Model>() -> BoxedStrategy<Step<L::Op>> {
    let r = 0..REPLICAS;
    prop_oneof![
        5 => (r.clone(), L::op()).prop_map(|(r, o)| Step::Op(r, o)),
        1 => (r.clone(), r.clone()).prop_map(|(a, b)| Step::Sync(a, b)),
        1 => (r.clone(), r).prop_map(|(a, b)| Step::SyncDelta(a, b)),
    ]
    .boxed()
}

/// Runs a history on `REPLICAS` replicas (actor of replica `r` is `r + 1`), checking the
/// mutator law at every operation and the delta law at every delta sync.
pub fn run<L: Model>(steps: &[Step<L::Op>]) -> Vec<L> {
    let mut reps = vec![L::bottom(); REPLICAS];
    for s in steps {
        match s {
            Step::Op(r, op) => {
                let before = reps[*r].clone();
                let d = reps[*r].apply(*r as Actor + 1, op);
                laws::check_mutator(&before, &d, &reps[*r]);
            }
            Step::Sync(f, t) => {
                let src = reps[*f].clone();
                reps[*t].join(&src);
            }
            Step::SyncDelta(f, t) => {
                let d = reps[*f].delta(&reps[*t]);
                let expected = reps[*t].clone().joined(&reps[*f]);
                reps[*t].join(&d);
                assert_eq!(
                    reps[*t], expected,
                    "joining delta(from, to) differs from joining from"
                );
            }
        }
    }
    reps
}

/// The law test of type `L`: random histories, then every law on the replicas' states.
pub fn law_test<L: Model>(cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strat = proptest::collection::vec(step::<L>(), 0..40);
    runner
        .run(&strat, |steps| {
            let reps = run::<L>(&steps);
            let (a, b, c) = (&reps[0], &reps[1], &reps[2]);
            laws::check_all(a, b, c);
            let ab = a.clone().joined(b);
            let abc = ab.clone().joined(c);
            for (x, y) in [(a, &ab), (b, &ab), (&ab, &abc), (c, &abc), (a, a)] {
                L::check_reads(x, y);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", std::any::type_name::<L>()));
}

/// The summary law of type `L` ([`laws::check_summary`]) on random histories: every pair of
/// replicas, with the summarised replica's state at half the history as the older summary.
pub fn summary_test<L: Model + Summarize>(cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strat = proptest::collection::vec(step::<L>(), 0..40);
    runner
        .run(&strat, |steps| {
            let early = run::<L>(&steps[..steps.len() / 2]);
            let reps = run::<L>(&steps);
            for a in 0..REPLICAS {
                for b in 0..REPLICAS {
                    laws::check_summary(&reps[a], &reps[b], &early[b]);
                }
            }
            laws::check_summary(&L::bottom(), &reps[0], &L::bottom());
            laws::check_summary(&reps[0], &L::bottom(), &L::bottom());
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", std::any::type_name::<L>()));
}

fn subset<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> bool {
    a.is_subset(b)
}

pub fn elem() -> impl Strategy<Value = u8> {
    0u8..6
}

// ---- models ----

#[derive(Clone, Debug)]
pub enum CounterOp {
    Inc(u64),
    Dec(u64),
    Reset,
}

impl Model for GCounter {
    type Op = u64;
    fn op() -> BoxedStrategy<u64> {
        (0u64..5).boxed()
    }
    fn apply(&mut self, actor: Actor, n: &u64) -> Self {
        self.inc(actor, *n)
    }
    fn read(&self) -> String {
        self.query().to_string()
    }
    fn check_reads(a: &Self, b: &Self) {
        laws::check_monotone(a, b, |x| x.query(), |x, y| x <= y);
        laws::check_thresholds(
            &[
                Threshold::value(3),
                Threshold::value(0),
                Threshold::value(10),
            ],
            a,
            b,
        );
    }
}

impl Model for PNCounter {
    type Op = CounterOp;
    fn op() -> BoxedStrategy<CounterOp> {
        prop_oneof![
            (0u64..5).prop_map(CounterOp::Inc),
            (0u64..5).prop_map(CounterOp::Dec)
        ]
        .boxed()
    }
    fn apply(&mut self, actor: Actor, op: &CounterOp) -> Self {
        match op {
            CounterOp::Inc(n) => self.inc(actor, *n),
            CounterOp::Dec(n) => self.dec(actor, *n),
            CounterOp::Reset => unreachable!("PNCounter has no reset"),
        }
    }
    fn read(&self) -> String {
        self.query().to_string()
    }
    fn check_reads(a: &Self, b: &Self) {
        // Not monotone, but supported.
        assert!(Threshold::<PNCounter>::value(1).holds(a).is_ok());
        laws::check_monotone(a, b, |x| x.increments().total(), |x, y| x <= y);
        laws::check_monotone(a, b, |x| x.decrements().total(), |x, y| x <= y);
    }
}

impl Model for CCounter {
    type Op = CounterOp;
    fn op() -> BoxedStrategy<CounterOp> {
        prop_oneof![
            3 => (0u64..5).prop_map(CounterOp::Inc),
            2 => (0u64..5).prop_map(CounterOp::Dec),
            1 => Just(CounterOp::Reset)
        ]
        .boxed()
    }
    fn apply(&mut self, actor: Actor, op: &CounterOp) -> Self {
        match op {
            CounterOp::Inc(n) => self.inc(actor, *n),
            CounterOp::Dec(n) => self.dec(actor, *n),
            CounterOp::Reset => self.reset(),
        }
    }
    fn read(&self) -> String {
        self.query().to_string()
    }
    fn check_reads(a: &Self, _b: &Self) {
        assert!(Threshold::<CCounter>::value(1).holds(a).is_ok());
    }
}

impl Model for MaxInt {
    type Op = (bool, u64);
    fn op() -> BoxedStrategy<(bool, u64)> {
        (any::<bool>(), 0u64..20).boxed()
    }
    fn apply(&mut self, _actor: Actor, (inc, n): &(bool, u64)) -> Self {
        if *inc {
            self.inc(*n)
        } else {
            self.set(*n)
        }
    }
    fn read(&self) -> String {
        self.query().to_string()
    }
    fn check_reads(a: &Self, b: &Self) {
        laws::check_monotone(a, b, |x| x.query(), |x, y| x <= y);
        laws::check_thresholds(&[Threshold::value(5), Threshold::value(15)], a, b);
    }
}

impl Model for GSet<u8> {
    type Op = u8;
    fn op() -> BoxedStrategy<u8> {
        elem().boxed()
    }
    fn apply(&mut self, _actor: Actor, x: &u8) -> Self {
        self.add(*x)
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
    fn check_reads(a: &Self, b: &Self) {
        laws::check_monotone(a, b, |x| x.query(), subset);
        laws::check_thresholds(
            &[Threshold::cardinality(2), Threshold::cardinality(4)],
            a,
            b,
        );
    }
}

#[derive(Clone, Debug)]
pub enum SetOp {
    Add(u8),
    Remove(u8),
    Clear,
}

fn set_op() -> BoxedStrategy<SetOp> {
    prop_oneof![5 => elem().prop_map(SetOp::Add), 3 => elem().prop_map(SetOp::Remove), 1 => Just(SetOp::Clear)]
        .boxed()
}

impl Model for TwoPSet<u8> {
    type Op = SetOp;
    fn op() -> BoxedStrategy<SetOp> {
        set_op()
    }
    fn apply(&mut self, _actor: Actor, op: &SetOp) -> Self {
        match op {
            SetOp::Add(x) => self.add(*x),
            SetOp::Remove(x) => self.remove(x),
            SetOp::Clear => TwoPSet::bottom(),
        }
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
    fn check_reads(a: &Self, b: &Self) {
        laws::check_monotone(a, b, |x| x.removed().as_set().clone(), subset);
        assert!(Threshold::<TwoPSet<u8>>::cardinality(1).holds(a).is_ok());
    }
}

impl Model for ORSet<u8> {
    type Op = SetOp;
    fn op() -> BoxedStrategy<SetOp> {
        set_op()
    }
    fn apply(&mut self, actor: Actor, op: &SetOp) -> Self {
        match op {
            SetOp::Add(x) => self.add(actor, *x),
            SetOp::Remove(x) => self.remove(x),
            SetOp::Clear => self.clear(),
        }
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
    fn check_reads(a: &Self, b: &Self) {
        // Every dot removed in `a` stays removed in `b`; the context only grows.
        for d in a.context().iter() {
            if a.is_covered(&d) {
                assert!(b.is_covered(&d), "removed dot {d:?} came back");
            }
        }
        assert!(Threshold::<ORSet<u8>>::cardinality(1).holds(a).is_ok());
        assert!(matches!(
            Threshold::<ORSet<u8>>::Value(1).holds(a),
            Err(Error::UnsupportedThreshold {
                threshold: "value",
                ..
            })
        ));
    }
}

/// OR-set over pair dots (as a product would produce), context a `DotCloud`: exercises the
/// generic-dot code paths. Adds mint `((actor, n), (actor, n))`.
impl Model for ORSet<u8, (Dot, Dot)> {
    type Op = SetOp;
    fn op() -> BoxedStrategy<SetOp> {
        set_op()
    }
    fn apply(&mut self, actor: Actor, op: &SetOp) -> Self {
        let d = match op {
            SetOp::Add(x) => {
                let n = self
                    .context()
                    .0
                    .iter()
                    .filter(|(a, _)| a.actor == actor)
                    .map(|(a, _)| a.counter)
                    .max()
                    .unwrap_or(0)
                    + 1;
                let dot = (Dot::new(actor, n), Dot::new(actor, n));
                let mut ctx = DotCloud::default();
                for old in self.dots(x).into_iter().flatten() {
                    ctx.0.insert(*old);
                }
                ctx.0.insert(dot);
                let store = [(*x, BTreeSet::from([dot]))].into_iter().collect();
                ORSet::from_parts(store, ctx).unwrap()
            }
            SetOp::Remove(x) => self.remove_delta(x),
            SetOp::Clear => self.clear_delta(),
        };
        self.join(&d);
        d
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
}

impl Model for LWWRegister<u8> {
    type Op = (u64, u8);
    fn op() -> BoxedStrategy<(u64, u8)> {
        (0u64..6, elem()).boxed()
    }
    fn apply(&mut self, actor: Actor, (ts, v): &(u64, u8)) -> Self {
        self.set(actor, *ts, *v)
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
    fn check_reads(a: &Self, b: &Self) {
        laws::check_monotone(a, b, |x| x.stamp(), |x, y| x <= y);
    }
}

impl Model for MVRegister<u8> {
    type Op = Option<u8>;
    fn op() -> BoxedStrategy<Option<u8>> {
        prop_oneof![4 => elem().prop_map(Some), 1 => Just(None)].boxed()
    }
    fn apply(&mut self, actor: Actor, op: &Option<u8>) -> Self {
        match op {
            Some(v) => self.write(actor, *v),
            None => self.clear(),
        }
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
}

impl Model for EWFlag {
    type Op = bool;
    fn op() -> BoxedStrategy<bool> {
        any::<bool>().boxed()
    }
    fn apply(&mut self, actor: Actor, on: &bool) -> Self {
        if *on {
            self.enable(actor)
        } else {
            self.disable(actor)
        }
    }
    fn read(&self) -> String {
        self.query().to_string()
    }
}

impl Model for DWFlag {
    type Op = bool;
    fn op() -> BoxedStrategy<bool> {
        any::<bool>().boxed()
    }
    fn apply(&mut self, actor: Actor, on: &bool) -> Self {
        if *on {
            self.enable(actor)
        } else {
            self.disable(actor)
        }
    }
    fn read(&self) -> String {
        self.query().to_string()
    }
}

impl Model for IVar<u8> {
    type Op = u8;
    fn op() -> BoxedStrategy<u8> {
        (0u8..3).boxed()
    }
    fn apply(&mut self, _actor: Actor, v: &u8) -> Self {
        let before = self.clone();
        match self.assign(*v) {
            Ok(d) => d,
            Err(Error::AlreadyAssigned) => {
                assert_eq!(*self, before, "a refused assignment changed the state");
                assert!(before.is_conflict() || before.get() != Some(v));
                IVar::bottom()
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
    fn check_reads(a: &Self, b: &Self) {
        if let Some(v) = a.get() {
            assert!(
                b.get() == Some(v) || b.is_conflict(),
                "assigned value changed"
            );
        }
    }
}

#[derive(Clone, Debug)]
pub enum PairOp {
    First(u64),
    Second(SetOp),
}

impl Model for Pair<GCounter, ORSet<u8>> {
    type Op = PairOp;
    fn op() -> BoxedStrategy<PairOp> {
        prop_oneof![
            (0u64..4).prop_map(PairOp::First),
            set_op().prop_map(PairOp::Second)
        ]
        .boxed()
    }
    fn apply(&mut self, actor: Actor, op: &PairOp) -> Self {
        match op {
            PairOp::First(n) => self.update_first(|c| c.inc(actor, *n)),
            PairOp::Second(o) => self.update_second(|s| s.apply(actor, o)),
        }
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
}

impl Model for GMap<u8, GCounter> {
    type Op = (u8, u64);
    fn op() -> BoxedStrategy<(u8, u64)> {
        (elem(), 0u64..4).boxed()
    }
    fn apply(&mut self, actor: Actor, (k, n): &(u8, u64)) -> Self {
        self.apply(*k, |c| c.inc(actor, *n))
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
    fn check_reads(a: &Self, b: &Self) {
        laws::check_monotone(
            a,
            b,
            |x| x.iter().map(|(k, _)| *k).collect::<BTreeSet<u8>>(),
            subset,
        );
        laws::check_thresholds(&[Threshold::cardinality(2)], a, b);
    }
}

impl Model for GMap<u8, ORSet<u8>> {
    type Op = (u8, SetOp);
    fn op() -> BoxedStrategy<(u8, SetOp)> {
        (0u8..3, set_op()).boxed()
    }
    fn apply(&mut self, actor: Actor, (k, op): &(u8, SetOp)) -> Self {
        self.apply(*k, |s| s.apply(actor, op))
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
}

#[derive(Clone, Debug)]
pub enum MapOp<O> {
    Update(u8, O),
    Remove(u8),
}

fn map_op<O: Clone + Debug + 'static>(inner: BoxedStrategy<O>) -> BoxedStrategy<MapOp<O>> {
    prop_oneof![4 => (0u8..4, inner).prop_map(|(k, o)| MapOp::Update(k, o)), 1 => (0u8..4).prop_map(MapOp::Remove)]
        .boxed()
}

macro_rules! awmap_model {
    ($v:ty) => {
        impl Model for AWMap<u8, $v> {
            type Op = MapOp<<$v as Model>::Op>;
            fn op() -> BoxedStrategy<Self::Op> {
                map_op(<$v as Model>::op())
            }
            fn apply(&mut self, actor: Actor, op: &Self::Op) -> Self {
                match op {
                    MapOp::Update(k, o) => self.update(*k, |v: &mut $v| v.apply(actor, o)),
                    MapOp::Remove(k) => self.remove(k),
                }
            }
            fn read(&self) -> String {
                format!("{:?}", self.query())
            }
        }
    };
}

awmap_model!(ORSet<u8>);
awmap_model!(CCounter);
awmap_model!(EWFlag);
awmap_model!(DWFlag);
awmap_model!(MVRegister<u8>);
awmap_model!(AWMap<u8, EWFlag>);

#[derive(Clone, Debug)]
pub enum BOp {
    /// Create rights at the acting replica.
    Grant(u64),
    /// Use rights (refused when short: the delta is bottom).
    Use(u64),
    /// Move rights to actor `to` (1-based).
    Transfer(Actor, u64),
    /// Drop rights unused.
    Withdraw(u64),
}

impl Model for BCounter {
    type Op = BOp;
    fn op() -> BoxedStrategy<BOp> {
        prop_oneof![
            1 => (0u64..6).prop_map(BOp::Grant),
            3 => (0u64..4).prop_map(BOp::Use),
            2 => (1u64..=10, 0u64..4).prop_map(|(t, n)| BOp::Transfer(t, n)),
            1 => (0u64..3).prop_map(BOp::Withdraw),
        ]
        .boxed()
    }
    fn apply(&mut self, actor: Actor, op: &BOp) -> Self {
        let before = self.clone();
        let r = match op {
            BOp::Grant(n) => Ok(self.grant(actor, *n)),
            BOp::Use(n) => self.consume(actor, *n),
            BOp::Transfer(to, n) => self.transfer(actor, *to, *n),
            BOp::Withdraw(n) => self.withdraw(actor, *n),
        };
        match r {
            Ok(d) => {
                // A use, transfer or withdrawal spends exactly `n` of the actor's own rights.
                let held = before.rights(actor);
                match op {
                    BOp::Grant(n) => assert_eq!(self.rights(actor), held + n),
                    BOp::Transfer(to, _) if *to == actor => assert_eq!(self.rights(actor), held),
                    BOp::Use(n) | BOp::Transfer(_, n) | BOp::Withdraw(n) => {
                        assert_eq!(self.rights(actor), held - n)
                    }
                }
                d
            }
            Err(Error::InsufficientRights {
                actor: a,
                wanted,
                available,
            }) => {
                assert_eq!(*self, before, "a refused operation changed the state");
                assert_eq!(a, actor);
                assert!(wanted > available);
                assert_eq!(available, before.rights(actor));
                BCounter::bottom()
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    fn read(&self) -> String {
        format!(
            "used {} granted {} withdrawn {} rights {:?}",
            self.used(),
            self.granted(),
            self.withdrawn(),
            (1..=10).map(|a| self.rights(a)).collect::<Vec<_>>()
        )
    }
    fn check_reads(a: &Self, b: &Self) {
        laws::check_monotone(a, b, |x| x.used(), |x, y| x <= y);
        laws::check_monotone(a, b, |x| x.granted(), |x, y| x <= y);
        laws::check_thresholds(&[Threshold::value(2), Threshold::strict_value(2)], a, b);
    }
}

impl Model for Boolean {
    type Op = bool;
    fn op() -> BoxedStrategy<bool> {
        prop_oneof![3 => Just(false), 1 => Just(true)].boxed()
    }
    fn apply(&mut self, actor: Actor, on: &bool) -> Self {
        if *on {
            self.enable(actor)
        } else {
            Boolean::bottom()
        }
    }
    fn read(&self) -> String {
        self.query().to_string()
    }
    fn check_reads(a: &Self, b: &Self) {
        laws::check_monotone(a, b, |x| x.query(), |x, y| x <= y);
        laws::check_thresholds(&[Threshold::value(1), Threshold::strict_value(0)], a, b);
    }
}

impl Model for LexCounter {
    type Op = CounterOp;
    fn op() -> BoxedStrategy<CounterOp> {
        prop_oneof![
            (0u64..5).prop_map(CounterOp::Inc),
            (0u64..5).prop_map(CounterOp::Dec)
        ]
        .boxed()
    }
    fn apply(&mut self, actor: Actor, op: &CounterOp) -> Self {
        match op {
            CounterOp::Inc(n) => self.inc(actor, *n),
            CounterOp::Dec(n) => self.dec(actor, *n),
            CounterOp::Reset => unreachable!("LexCounter has no reset"),
        }
    }
    fn read(&self) -> String {
        self.query().to_string()
    }
    fn check_reads(a: &Self, _b: &Self) {
        assert!(Threshold::<LexCounter>::strict_value(1).holds(a).is_ok());
    }
}

impl Model for MVMap<u8, u8> {
    type Op = MapOp<u8>;
    fn op() -> BoxedStrategy<MapOp<u8>> {
        map_op(elem().boxed())
    }
    fn apply(&mut self, actor: Actor, op: &MapOp<u8>) -> Self {
        match op {
            MapOp::Update(k, v) => self.write(actor, *k, *v),
            MapOp::Remove(k) => self.remove(k),
        }
    }
    fn read(&self) -> String {
        format!("{:?}", self.query())
    }
    fn check_reads(a: &Self, _b: &Self) {
        assert!(Threshold::<MVMap<u8, u8>>::strict_cardinality(1)
            .holds(a)
            .is_ok());
    }
}

#[derive(Clone, Debug)]
pub enum SetBulkOp {
    Add(u8),
    AddAll(Vec<u8>),
    RemoveAll(Vec<u8>),
    /// Keep the elements `x` with `x % m == 0`.
    RetainMultiples(u8),
}

/// An OR-set driven by the bulk operations (`add_all`, `remove_all`, `retain`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BulkSet(pub ORSet<u8>);

impl Lattice for BulkSet {
    fn bottom() -> Self {
        BulkSet(ORSet::bottom())
    }
    fn is_bottom(&self) -> bool {
        self.0.is_bottom()
    }
    fn join(&mut self, other: &Self) -> bool {
        self.0.join(&other.0)
    }
    fn leq(&self, other: &Self) -> bool {
        self.0.leq(&other.0)
    }
    fn decompose(&self) -> Vec<Self> {
        self.0.decompose().into_iter().map(BulkSet).collect()
    }
    fn delta(&self, other: &Self) -> Self {
        BulkSet(self.0.delta(&other.0))
    }
}

impl Model for BulkSet {
    type Op = SetBulkOp;
    fn op() -> BoxedStrategy<SetBulkOp> {
        let xs = || proptest::collection::vec(elem(), 0..4);
        prop_oneof![
            2 => elem().prop_map(SetBulkOp::Add),
            2 => xs().prop_map(SetBulkOp::AddAll),
            2 => xs().prop_map(SetBulkOp::RemoveAll),
            1 => (1u8..4).prop_map(SetBulkOp::RetainMultiples),
        ]
        .boxed()
    }
    fn apply(&mut self, actor: Actor, op: &SetBulkOp) -> Self {
        let before = self.0.query();
        let d = match op {
            SetBulkOp::Add(x) => self.0.add(actor, *x),
            SetBulkOp::AddAll(xs) => self.0.add_all(actor, xs.iter().copied()),
            SetBulkOp::RemoveAll(xs) => {
                let d = self.0.remove_all(xs);
                let expected: BTreeSet<u8> =
                    before.iter().filter(|x| !xs.contains(x)).copied().collect();
                assert_eq!(self.0.query(), expected, "remove_all");
                d
            }
            SetBulkOp::RetainMultiples(m) => {
                let d = self.0.retain(|x| x % m == 0);
                let expected: BTreeSet<u8> =
                    before.iter().filter(|x| *x % m == 0).copied().collect();
                assert_eq!(self.0.query(), expected, "retain");
                d
            }
        };
        BulkSet(d)
    }
    fn read(&self) -> String {
        format!("{:?}", self.0.query())
    }
}
