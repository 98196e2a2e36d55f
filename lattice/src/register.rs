//! Registers: last-writer-wins ([`LWWRegister`]) and multi-value ([`MVRegister`]).
//!
//! Hand-written rather than `crdts::LWWReg` / `crdts::MVReg`: those have no delta mutators or
//! decomposition, and `LWWReg` panics-by-validation on equal markers with different values,
//! where a lattice needs a total, deterministic join.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::causal::CausalContext;
use crate::set::Element;
use crate::store::{Causal, CausalLattice, DotFun};
use crate::{delegate_lattice, Actor, Lattice, Query};

/// A last-writer-wins register: the write with the largest `(timestamp, actor)` wins; the
/// value breaks the (impossible in correct use) tie of two writes with the same stamp, so the
/// join is a total, deterministic `max`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: DeserializeOwned"))]
pub struct LWWRegister<T>(Option<(u64, Actor, T)>);

impl<T> Default for LWWRegister<T> {
    fn default() -> Self {
        LWWRegister(None)
    }
}

impl<T: Element> LWWRegister<T> {
    /// The delta of writing `value` at `timestamp` on behalf of `actor` (bottom if an equal or
    /// later write is already held).
    pub fn set_delta(&self, actor: Actor, timestamp: u64, value: T) -> Self {
        let w = LWWRegister(Some((timestamp, actor, value)));
        w.delta(self)
    }

    /// Writes `value` at `timestamp` on behalf of `actor`; returns the delta (bottom if the
    /// write lost to a later one already held).
    pub fn set(&mut self, actor: Actor, timestamp: u64, value: T) -> Self {
        let d = self.set_delta(actor, timestamp, value);
        self.join(&d);
        d
    }

    /// The winning write's `(timestamp, actor)`, if any.
    pub fn stamp(&self) -> Option<(u64, Actor)> {
        self.0.as_ref().map(|(t, a, _)| (*t, *a))
    }

    /// The current value, if any.
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref().map(|(_, _, v)| v)
    }
}

impl<T: Element> Lattice for LWWRegister<T> {
    fn bottom() -> Self {
        LWWRegister(None)
    }
    fn is_bottom(&self) -> bool {
        self.0.is_none()
    }
    fn join(&mut self, other: &Self) -> bool {
        if other.0 > self.0 {
            self.0.clone_from(&other.0);
            true
        } else {
            false
        }
    }
    fn leq(&self, other: &Self) -> bool {
        self.0 <= other.0
    }
    fn decompose(&self) -> Vec<Self> {
        // A chain: every non-bottom element is join-irreducible.
        if self.is_bottom() {
            vec![]
        } else {
            vec![self.clone()]
        }
    }
    fn delta(&self, other: &Self) -> Self {
        if self.0 > other.0 {
            self.clone()
        } else {
            Self::bottom()
        }
    }
    crate::summary_hooks!();
}

/// The summary is the winning write's stamp, without its value; the delta since it is the
/// whole register when its stamp is not older (on an equal stamp too: the value then breaks
/// the tie in the join, and the summary does not say which value it holds).
impl<T: Element> crate::Summarize for LWWRegister<T> {
    type Summary = Option<(u64, Actor)>;
    fn summary(&self) -> Self::Summary {
        self.stamp()
    }
    fn delta_since(&self, summary: &Self::Summary) -> Self {
        match (self.stamp(), summary) {
            (Some(mine), Some(theirs)) if mine < *theirs => Self::bottom(),
            (Some(_), _) => self.clone(),
            (None, _) => Self::bottom(),
        }
    }
}

impl<T: Element> Query for LWWRegister<T> {
    type Value = Option<T>;
    fn query(&self) -> Option<T> {
        self.get().cloned()
    }
}

/// A multi-value register: a write replaces every value it has observed; concurrent writes
/// are all kept (the query returns the set of concurrent values).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Element"))]
pub struct MVRegister<T>(Causal<DotFun<T>>);

delegate_lattice!(MVRegister<T> where T: Element);

impl<T: Element> Default for MVRegister<T> {
    fn default() -> Self {
        Self::bottom()
    }
}

impl<T: Element> MVRegister<T> {
    /// The delta of writing `value` on behalf of `actor`: a new dot with the value, and the
    /// observed dots in the context (they are overwritten).
    pub fn write_delta(&self, actor: Actor, value: T) -> Self {
        let dot = self.0.next_dot(actor);
        let mut ctx: CausalContext = self.0.store().0.keys().copied().collect();
        ctx.insert(dot);
        MVRegister(Causal::from_parts_unchecked(
            DotFun(BTreeMap::from([(dot, value)])),
            ctx,
        ))
    }

    /// Writes `value` on behalf of `actor`; returns the delta.
    pub fn write(&mut self, actor: Actor, value: T) -> Self {
        let d = self.write_delta(actor, value);
        self.join(&d);
        d
    }

    /// The delta of clearing every observed value.
    pub fn clear_delta(&self) -> Self {
        let ctx: CausalContext = self.0.store().0.keys().copied().collect();
        MVRegister(Causal::from_parts_unchecked(DotFun::default(), ctx))
    }

    /// Clears every observed value; returns the delta.
    pub fn clear(&mut self) -> Self {
        let d = self.clear_delta();
        self.join(&d);
        d
    }

    /// The causal representation (dot → value, context).
    pub fn as_causal(&self) -> &Causal<DotFun<T>> {
        &self.0
    }
}

impl<T: Element> Query for MVRegister<T> {
    type Value = BTreeSet<T>;
    fn query(&self) -> BTreeSet<T> {
        self.0.store().0.values().cloned().collect()
    }
}

impl<T: Element> CausalLattice for MVRegister<T> {
    type Store = DotFun<T>;
    fn to_causal_parts(&self) -> (Self::Store, CausalContext) {
        (self.0.store().clone(), self.0.context().clone())
    }
    fn from_causal_parts(store: Self::Store, ctx: CausalContext) -> Self {
        MVRegister(Causal::from_parts_unchecked(store, ctx))
    }
}
