//! Updates as values ("ops are values"): building a change is pure, the engine applies it.
//!
//! `program.update(&var, add(x), actor)` asks the op for its delta against the current state
//! ([`Update::delta`]), then joins that delta and propagates it downstream. Closures
//! `|state: &L, actor| -> L` returning a delta are updates too, for any mutator the helpers
//! below do not cover.

use rasp_lattice::set::Element;
use rasp_lattice::{
    Actor, DWFlag, EWFlag, Error, GCounter, GSet, IVar, LWWRegister, Lattice, MVRegister, MaxInt,
    ORSet, PNCounter, TwoPSet,
};

/// A change to a lattice of type `L`, made on behalf of an actor.
pub trait Update<L: Lattice> {
    /// The delta of this change against `state` (`state ⊔ delta` is the updated state).
    fn delta(self, state: &L, actor: Actor) -> Result<L, Error>;
}

impl<L: Lattice, F: FnOnce(&L, Actor) -> L> Update<L> for F {
    fn delta(self, state: &L, actor: Actor) -> Result<L, Error> {
        Ok(self(state, actor))
    }
}

/// Adds an element to a set.
#[derive(Clone, Debug)]
pub struct Add<T>(pub T);
/// Removes an element from a set.
#[derive(Clone, Debug)]
pub struct Remove<T>(pub T);
/// Increments a counter.
#[derive(Clone, Copy, Debug)]
pub struct Inc(pub u64);
/// Decrements a counter.
#[derive(Clone, Copy, Debug)]
pub struct Dec(pub u64);
/// Writes a register (LWW registers stamp the write with `(timestamp, actor)`).
#[derive(Clone, Debug)]
pub struct Write<T> {
    /// The value written.
    pub value: T,
    /// The timestamp (LWW registers only; ignored by MV registers).
    pub timestamp: u64,
}
/// Enables a flag.
#[derive(Clone, Copy, Debug)]
pub struct Enable;
/// Disables a flag.
#[derive(Clone, Copy, Debug)]
pub struct Disable;
/// Assigns a single-assignment variable.
#[derive(Clone, Debug)]
pub struct Assign<T>(pub T);
/// Raises a max-register to at least the value.
#[derive(Clone, Copy, Debug)]
pub struct Raise(pub u64);

/// `Add(x)`.
pub fn add<T>(x: T) -> Add<T> {
    Add(x)
}
/// `Remove(x)`.
pub fn remove<T>(x: T) -> Remove<T> {
    Remove(x)
}
/// `Inc(n)`.
pub fn inc(n: u64) -> Inc {
    Inc(n)
}
/// `Dec(n)`.
pub fn dec(n: u64) -> Dec {
    Dec(n)
}

impl<T: Element> Update<ORSet<T>> for Add<T> {
    fn delta(self, s: &ORSet<T>, actor: Actor) -> Result<ORSet<T>, Error> {
        Ok(s.add_delta(actor, self.0))
    }
}
impl<T: Element> Update<ORSet<T>> for Remove<T> {
    fn delta(self, s: &ORSet<T>, _: Actor) -> Result<ORSet<T>, Error> {
        Ok(s.remove_delta(&self.0))
    }
}
impl<T: Element> Update<GSet<T>> for Add<T> {
    fn delta(self, s: &GSet<T>, _: Actor) -> Result<GSet<T>, Error> {
        Ok(s.add_delta(self.0))
    }
}
impl<T: Element> Update<TwoPSet<T>> for Add<T> {
    fn delta(self, s: &TwoPSet<T>, _: Actor) -> Result<TwoPSet<T>, Error> {
        Ok(s.add_delta(self.0))
    }
}
impl<T: Element> Update<TwoPSet<T>> for Remove<T> {
    fn delta(self, s: &TwoPSet<T>, _: Actor) -> Result<TwoPSet<T>, Error> {
        Ok(s.remove_delta(&self.0))
    }
}
impl Update<GCounter> for Inc {
    fn delta(self, s: &GCounter, actor: Actor) -> Result<GCounter, Error> {
        Ok(s.inc_delta(actor, self.0))
    }
}
impl Update<PNCounter> for Inc {
    fn delta(self, s: &PNCounter, actor: Actor) -> Result<PNCounter, Error> {
        Ok(s.inc_delta(actor, self.0))
    }
}
impl Update<PNCounter> for Dec {
    fn delta(self, s: &PNCounter, actor: Actor) -> Result<PNCounter, Error> {
        Ok(s.dec_delta(actor, self.0))
    }
}
impl Update<MaxInt> for Raise {
    fn delta(self, s: &MaxInt, _: Actor) -> Result<MaxInt, Error> {
        Ok(s.set_delta(self.0))
    }
}
impl<T: Element> Update<LWWRegister<T>> for Write<T> {
    fn delta(self, s: &LWWRegister<T>, actor: Actor) -> Result<LWWRegister<T>, Error> {
        Ok(s.set_delta(actor, self.timestamp, self.value))
    }
}
impl<T: Element> Update<MVRegister<T>> for Write<T> {
    fn delta(self, s: &MVRegister<T>, actor: Actor) -> Result<MVRegister<T>, Error> {
        Ok(s.write_delta(actor, self.value))
    }
}
impl Update<EWFlag> for Enable {
    fn delta(self, s: &EWFlag, actor: Actor) -> Result<EWFlag, Error> {
        Ok(s.enable_delta(actor))
    }
}
impl Update<EWFlag> for Disable {
    fn delta(self, s: &EWFlag, _: Actor) -> Result<EWFlag, Error> {
        Ok(s.disable_delta())
    }
}
impl Update<DWFlag> for Enable {
    fn delta(self, s: &DWFlag, actor: Actor) -> Result<DWFlag, Error> {
        Ok(s.enable_delta(actor))
    }
}
impl Update<DWFlag> for Disable {
    fn delta(self, s: &DWFlag, actor: Actor) -> Result<DWFlag, Error> {
        Ok(s.disable_delta(actor))
    }
}
impl<T: Element> Update<IVar<T>> for Assign<T> {
    fn delta(self, s: &IVar<T>, _: Actor) -> Result<IVar<T>, Error> {
        s.assign_delta(self.0)
    }
}
