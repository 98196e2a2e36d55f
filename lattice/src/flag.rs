//! Causal, dot-based flags: enable-wins ([`EWFlag`]) and disable-wins ([`DWFlag`])
//! (Almeida et al. 2018, §7.1). Both can be values of an [`crate::AWMap`].
//!
//! **One signature for every flag.** Every mutator takes the actor on whose behalf it runs:
//! `enable(actor)`, `disable(actor)` (and their `_delta` forms), on both flags and on
//! [`crate::Boolean`], so flags are interchangeable in generic code and in the update helpers of
//! the dataflow layer. The enable-wins flag's disable mints no dot (it only retires the observed
//! enables), so it does not use its actor; the disable-wins flag's disable mints one.
//!
//! Hand-written: `crdts` has no flags.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::causal::CausalContext;
use crate::store::{Causal, CausalLattice, DotFun, DotSet};
use crate::{delegate_lattice, Actor, Lattice, Query};

/// An enable-wins flag: enabling adds a dot; disabling removes the observed dots. The flag is
/// on iff some dot is held, so an enable concurrent with a disable wins. Bottom reads `false`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EWFlag(Causal<DotSet>);

delegate_lattice!(EWFlag);

impl Default for EWFlag {
    fn default() -> Self {
        Self::bottom()
    }
}

impl EWFlag {
    /// The delta of enabling on behalf of `actor`.
    pub fn enable_delta(&self, actor: Actor) -> Self {
        let dot = self.0.next_dot(actor);
        let mut ctx: CausalContext = self.0.store().0.iter().copied().collect();
        ctx.insert(dot);
        EWFlag(Causal::from_parts_unchecked(
            DotSet(BTreeSet::from([dot])),
            ctx,
        ))
    }

    /// Enables on behalf of `actor`; returns the delta.
    pub fn enable(&mut self, actor: Actor) -> Self {
        let d = self.enable_delta(actor);
        self.join(&d);
        d
    }

    /// The delta of disabling on behalf of `actor` (removes the observed enables; an
    /// enable-wins disable mints no dot, so `actor` is not recorded: it is taken so that every
    /// flag has the same signature, see the [module docs](self)).
    pub fn disable_delta(&self, _actor: Actor) -> Self {
        let ctx: CausalContext = self.0.store().0.iter().copied().collect();
        EWFlag(Causal::from_parts_unchecked(DotSet::default(), ctx))
    }

    /// Disables on behalf of `actor`; returns the delta.
    pub fn disable(&mut self, actor: Actor) -> Self {
        let d = self.disable_delta(actor);
        self.join(&d);
        d
    }

    /// Whether the flag is on.
    pub fn is_enabled(&self) -> bool {
        !self.0.store().0.is_empty()
    }

    /// The causal representation.
    pub fn as_causal(&self) -> &Causal<DotSet> {
        &self.0
    }
}

impl Query for EWFlag {
    type Value = bool;
    fn query(&self) -> bool {
        self.is_enabled()
    }
}

impl CausalLattice for EWFlag {
    type Store = DotSet;
    fn to_causal_parts(&self) -> (Self::Store, CausalContext) {
        (self.0.store().clone(), self.0.context().clone())
    }
    fn from_causal_parts(store: Self::Store, ctx: CausalContext) -> Self {
        EWFlag(Causal::from_parts_unchecked(store, ctx))
    }
}

/// A disable-wins flag: both enabling and disabling replace the observed writes with a new dot
/// carrying `true` (enable) or `false` (disable). The flag is on iff some dot is held and all
/// held dots say `true`, so a disable concurrent with an enable wins. Bottom reads `false`.
///
/// (A formulation that only mints dots on disable would start enabled; this one starts
/// disabled, so that bottom means "off" as for [`EWFlag`], and keeps disable-wins.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DWFlag(Causal<DotFun<bool>>);

delegate_lattice!(DWFlag);

impl Default for DWFlag {
    fn default() -> Self {
        Self::bottom()
    }
}

impl DWFlag {
    fn write_delta(&self, actor: Actor, on: bool) -> Self {
        let dot = self.0.next_dot(actor);
        let mut ctx: CausalContext = self.0.store().0.keys().copied().collect();
        ctx.insert(dot);
        DWFlag(Causal::from_parts_unchecked(
            DotFun(BTreeMap::from([(dot, on)])),
            ctx,
        ))
    }

    /// The delta of enabling on behalf of `actor`.
    pub fn enable_delta(&self, actor: Actor) -> Self {
        self.write_delta(actor, true)
    }

    /// The delta of disabling on behalf of `actor`.
    pub fn disable_delta(&self, actor: Actor) -> Self {
        self.write_delta(actor, false)
    }

    /// Enables on behalf of `actor`; returns the delta.
    pub fn enable(&mut self, actor: Actor) -> Self {
        let d = self.enable_delta(actor);
        self.join(&d);
        d
    }

    /// Disables on behalf of `actor`; returns the delta.
    pub fn disable(&mut self, actor: Actor) -> Self {
        let d = self.disable_delta(actor);
        self.join(&d);
        d
    }

    /// The delta of forgetting every observed write (back to "off" unless a concurrent write
    /// survives); used when an enclosing map removes the flag.
    pub fn reset_delta(&self) -> Self {
        let ctx: CausalContext = self.0.store().0.keys().copied().collect();
        DWFlag(Causal::from_parts_unchecked(DotFun::default(), ctx))
    }

    /// Whether the flag is on.
    pub fn is_enabled(&self) -> bool {
        let s = &self.0.store().0;
        !s.is_empty() && s.values().all(|v| *v)
    }

    /// The causal representation.
    pub fn as_causal(&self) -> &Causal<DotFun<bool>> {
        &self.0
    }
}

impl Query for DWFlag {
    type Value = bool;
    fn query(&self) -> bool {
        self.is_enabled()
    }
}

impl CausalLattice for DWFlag {
    type Store = DotFun<bool>;
    fn to_causal_parts(&self) -> (Self::Store, CausalContext) {
        (self.0.store().clone(), self.0.context().clone())
    }
    fn from_causal_parts(store: Self::Store, ctx: CausalContext) -> Self {
        DWFlag(Causal::from_parts_unchecked(store, ctx))
    }
}
