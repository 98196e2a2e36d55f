//! fold: an observed-remove set folded into a value by an associative, commutative operation
//! with an inverse (PPDP'15 Definition 3.8: apply `op` once per element added, `op⁻¹` once per
//! element removed).
//!
//! The output [`Folded`] is itself a lattice, so it replicates like any variable: it carries
//! the folded set's causal state, and keeps the folded value up to date incrementally on every
//! join (O(delta)). Its [`Query`] is the folded value, which always equals the plain fold of
//! the set's elements, whatever order the deltas arrived in.
//!
//! Hand-written: Lasp's fold targets an old set layout and is untested.

use std::fmt;
use std::marker::PhantomData;

use rasp_lattice::set::Element;
use rasp_lattice::{DotContext, Lattice, Query};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::causal::DSet;

/// An associative, commutative operation with an inverse, folding elements `T` into `Acc`.
pub trait FoldOp<T>: Send + Sync + 'static {
    /// The folded value.
    type Acc: Clone + PartialEq + fmt::Debug + Send + Sync + 'static;
    /// The name the operation is registered under (programs refer to functions by name).
    const NAME: &'static str;
    /// The value of the empty set.
    fn identity() -> Self::Acc;
    /// Folds `x` in (`op`).
    fn add(acc: &mut Self::Acc, x: &T);
    /// Folds `x` out (`op⁻¹`): `remove(add(a, x), x) == a`.
    fn remove(acc: &mut Self::Acc, x: &T);
    /// The folded value as a number, for `Threshold::Value` reads (`None`: not numeric).
    fn number(_acc: &Self::Acc) -> Option<i64> {
        None
    }
}

/// The fold of a causal set by `F`: a lattice whose query is the folded value.
pub struct Folded<T: Element, F: FoldOp<T>> {
    set: DSet<T>,
    acc: F::Acc,
    _op: PhantomData<F>,
}

impl<T: Element, F: FoldOp<T>> Folded<T, F> {
    /// The fold of `set`, computed from scratch (O(set)).
    pub fn from_set(set: DSet<T>) -> Self {
        let mut acc = F::identity();
        for x in set.elements() {
            F::add(&mut acc, x);
        }
        Folded {
            set,
            acc,
            _op: PhantomData,
        }
    }

    /// The folded set.
    pub fn set(&self) -> &DSet<T> {
        &self.set
    }

    /// Joins a delta of the folded set, updating the folded value by the elements that
    /// appeared or disappeared. Returns whether anything changed. O(delta).
    pub fn join_set(&mut self, other: &DSet<T>) -> bool {
        let d = other.delta(&self.set);
        if d.is_bottom() {
            return false;
        }
        // Elements that may appear (carried by the delta's store) or disappear (owning a dot
        // the delta retires).
        let mut touched: Vec<T> = d.elements().cloned().collect();
        for dot in d.context().dots() {
            if d.element_of(&dot).is_none() {
                if let Some(x) = self.set.element_of(&dot) {
                    touched.push(x.clone());
                }
            }
        }
        touched.sort();
        touched.dedup();
        let before: Vec<bool> = touched.iter().map(|x| self.set.contains(x)).collect();
        let changed = self.set.join(&d);
        for (x, was) in touched.iter().zip(before) {
            match (was, self.set.contains(x)) {
                (false, true) => F::add(&mut self.acc, x),
                (true, false) => F::remove(&mut self.acc, x),
                _ => {}
            }
        }
        changed
    }
}

impl<T: Element, F: FoldOp<T>> Clone for Folded<T, F> {
    fn clone(&self) -> Self {
        Folded {
            set: self.set.clone(),
            acc: self.acc.clone(),
            _op: PhantomData,
        }
    }
}

impl<T: Element, F: FoldOp<T>> PartialEq for Folded<T, F> {
    fn eq(&self, other: &Self) -> bool {
        self.set == other.set
    }
}

impl<T: Element, F: FoldOp<T>> fmt::Debug for Folded<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Folded")
            .field("op", &F::NAME)
            .field("value", &self.acc)
            .field("set", &self.set)
            .finish()
    }
}

/// Only the set travels; the folded value is recomputed on arrival.
impl<T: Element, F: FoldOp<T>> Serialize for Folded<T, F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.set.serialize(s)
    }
}

impl<'de, T: Element, F: FoldOp<T>> Deserialize<'de> for Folded<T, F>
where
    DSet<T>: DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DSet::<T>::deserialize(d).map(Folded::from_set)
    }
}

impl<T: Element, F: FoldOp<T>> Lattice for Folded<T, F> {
    fn bottom() -> Self {
        Folded::from_set(DSet::bottom())
    }
    fn is_bottom(&self) -> bool {
        self.set.is_bottom()
    }
    fn join(&mut self, other: &Self) -> bool {
        self.join_set(&other.set)
    }
    fn leq(&self, other: &Self) -> bool {
        self.set.leq(&other.set)
    }
    fn decompose(&self) -> Vec<Self> {
        self.set
            .decompose()
            .into_iter()
            .map(Folded::from_set)
            .collect()
    }
    fn delta(&self, other: &Self) -> Self {
        Folded::from_set(self.set.delta(&other.set))
    }
    fn threshold_value(&self) -> Option<i64> {
        F::number(&self.acc)
    }
}

impl<T: Element, F: FoldOp<T>> Query for Folded<T, F> {
    type Value = F::Acc;
    fn query(&self) -> F::Acc {
        self.acc.clone()
    }
}

/// Sum of integer elements (`i64` wrapping arithmetic).
pub struct Sum;

impl FoldOp<i64> for Sum {
    type Acc = i64;
    const NAME: &'static str = "sum";
    fn identity() -> i64 {
        0
    }
    fn add(acc: &mut i64, x: &i64) {
        *acc = acc.wrapping_add(*x);
    }
    fn remove(acc: &mut i64, x: &i64) {
        *acc = acc.wrapping_sub(*x);
    }
    fn number(acc: &i64) -> Option<i64> {
        Some(*acc)
    }
}

/// Number of elements.
pub struct Count;

impl<T: Element> FoldOp<T> for Count {
    type Acc = i64;
    const NAME: &'static str = "count";
    fn identity() -> i64 {
        0
    }
    fn add(acc: &mut i64, _: &T) {
        *acc += 1;
    }
    fn remove(acc: &mut i64, _: &T) {
        *acc -= 1;
    }
    fn number(acc: &i64) -> Option<i64> {
        Some(*acc)
    }
}
