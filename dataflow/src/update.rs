//! Updates as values ("ops are values"): building a change is pure, the engine applies it.
//!
//! `program.update(&var, add(x), actor)` asks the op for its delta against the current state
//! ([`Update::delta`]), then joins that delta and propagates it downstream. Closures
//! `|state: &L, actor| -> L` returning a delta are updates too, for any mutator the helpers
//! below do not cover.
//!
//! | helper | types |
//! |---|---|
//! | [`add`], [`add_all`] | [`ORSet`], [`GSet`], [`TwoPSet`] |
//! | [`remove`], [`remove_all`] | [`ORSet`], [`TwoPSet`]; [`remove`] of a key: [`MVMap`] |
//! | [`retain`], [`clear`] | [`ORSet`]; [`clear`] also [`MVRegister`] |
//! | [`inc`], [`dec`] | [`GCounter`] (`inc`), [`PNCounter`], [`CCounter`], [`LexCounter`] |
//! | [`raise`] | [`MaxInt`] |
//! | [`write()`], [`write_at`] | [`LWWRegister`] (`write`: one past the stamp held here), [`MVRegister`] |
//! | [`put`] | [`MVMap`] |
//! | [`enable`], [`disable`] | [`EWFlag`], [`DWFlag`]; [`enable`] also [`Boolean`] |
//! | [`assign`] | [`IVar`] |
//! | [`grant`], [`consume`], [`transfer`], [`withdraw`], [`withdraw_all`] | [`BCounter`] (refused with [`Error::InsufficientRights`] when short) |

use rasp_lattice::set::Element;
use rasp_lattice::{
    Actor, BCounter, Boolean, CCounter, DWFlag, EWFlag, Error, GCounter, GSet, IVar, LWWRegister,
    Lattice, LexCounter, MVMap, MVRegister, MaxInt, ORSet, PNCounter, TwoPSet,
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
/// Adds every element to a set.
#[derive(Clone, Debug)]
pub struct AddAll<T>(pub Vec<T>);
/// Removes an element from a set (or a key from a map).
#[derive(Clone, Debug)]
pub struct Remove<T>(pub T);
/// Removes every element from a set.
#[derive(Clone, Debug)]
pub struct RemoveAll<T>(pub Vec<T>);
/// Keeps only the elements of a set satisfying the predicate.
#[derive(Clone, Debug)]
pub struct Retain<F>(pub F);
/// Removes everything observed (a set's elements, a register's values).
#[derive(Clone, Copy, Debug)]
pub struct Clear;
/// Increments a counter.
#[derive(Clone, Copy, Debug)]
pub struct Inc(pub u64);
/// Decrements a counter.
#[derive(Clone, Copy, Debug)]
pub struct Dec(pub u64);
/// Writes a register. LWW registers stamp the write with `(timestamp, actor)`; without a
/// timestamp, one past the stamp held here (Lamport's rule: the write wins here, no clock).
/// MV registers ignore the timestamp.
#[derive(Clone, Debug)]
pub struct Write<T> {
    /// The value written.
    pub value: T,
    /// The timestamp (LWW registers only).
    pub timestamp: Option<u64>,
}
/// Writes a value at a key of a multi-value map.
#[derive(Clone, Debug)]
pub struct Put<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
}
/// Enables a flag (sets a boolean).
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
/// Creates rights of a bounded counter at the acting replica.
#[derive(Clone, Copy, Debug)]
pub struct Grant(pub u64);
/// Uses rights of a bounded counter held by the acting replica.
#[derive(Clone, Copy, Debug)]
pub struct Consume(pub u64);
/// Moves rights of a bounded counter from the acting replica to another.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    /// The receiving actor.
    pub to: Actor,
    /// How many rights.
    pub n: u64,
}
/// Drops rights of a bounded counter held by the acting replica (`None`: all of them).
#[derive(Clone, Copy, Debug)]
pub struct Withdraw(pub Option<u64>);

/// `Add(x)`.
pub fn add<T>(x: T) -> Add<T> {
    Add(x)
}
/// `AddAll(xs)`.
pub fn add_all<T>(xs: impl IntoIterator<Item = T>) -> AddAll<T> {
    AddAll(xs.into_iter().collect())
}
/// `Remove(x)`.
pub fn remove<T>(x: T) -> Remove<T> {
    Remove(x)
}
/// `RemoveAll(xs)`.
pub fn remove_all<T>(xs: impl IntoIterator<Item = T>) -> RemoveAll<T> {
    RemoveAll(xs.into_iter().collect())
}
/// `Retain(keep)`.
pub fn retain<F>(keep: F) -> Retain<F> {
    Retain(keep)
}
/// `Clear`.
pub fn clear() -> Clear {
    Clear
}
/// `Inc(n)`.
pub fn inc(n: u64) -> Inc {
    Inc(n)
}
/// `Dec(n)`.
pub fn dec(n: u64) -> Dec {
    Dec(n)
}
/// A write without a timestamp (LWW: one past the stamp held here).
pub fn write<T>(value: T) -> Write<T> {
    Write {
        value,
        timestamp: None,
    }
}
/// A write at `timestamp`.
pub fn write_at<T>(value: T, timestamp: u64) -> Write<T> {
    Write {
        value,
        timestamp: Some(timestamp),
    }
}
/// `Put { key, value }`.
pub fn put<K, V>(key: K, value: V) -> Put<K, V> {
    Put { key, value }
}
/// `Enable`.
pub fn enable() -> Enable {
    Enable
}
/// `Disable`.
pub fn disable() -> Disable {
    Disable
}
/// `Assign(x)`.
pub fn assign<T>(x: T) -> Assign<T> {
    Assign(x)
}
/// `Raise(n)`.
pub fn raise(n: u64) -> Raise {
    Raise(n)
}
/// `Grant(n)`.
pub fn grant(n: u64) -> Grant {
    Grant(n)
}
/// `Consume(n)`: use `n` rights (refused when short).
pub fn consume(n: u64) -> Consume {
    Consume(n)
}
/// `Transfer { to, n }`.
pub fn transfer(to: Actor, n: u64) -> Transfer {
    Transfer { to, n }
}
/// `Withdraw(Some(n))`.
pub fn withdraw(n: u64) -> Withdraw {
    Withdraw(Some(n))
}
/// `Withdraw(None)`: every right held.
pub fn withdraw_all() -> Withdraw {
    Withdraw(None)
}

impl<T: Element> Update<ORSet<T>> for Add<T> {
    fn delta(self, s: &ORSet<T>, actor: Actor) -> Result<ORSet<T>, Error> {
        Ok(s.add_delta(actor, self.0))
    }
}
impl<T: Element> Update<ORSet<T>> for AddAll<T> {
    fn delta(self, s: &ORSet<T>, actor: Actor) -> Result<ORSet<T>, Error> {
        Ok(s.add_all_delta(actor, self.0))
    }
}
impl<T: Element> Update<ORSet<T>> for Remove<T> {
    fn delta(self, s: &ORSet<T>, _: Actor) -> Result<ORSet<T>, Error> {
        Ok(s.remove_delta(&self.0))
    }
}
impl<T: Element> Update<ORSet<T>> for RemoveAll<T> {
    fn delta(self, s: &ORSet<T>, _: Actor) -> Result<ORSet<T>, Error> {
        Ok(s.remove_all_delta(&self.0))
    }
}
impl<T: Element, F: FnMut(&T) -> bool> Update<ORSet<T>> for Retain<F> {
    fn delta(self, s: &ORSet<T>, _: Actor) -> Result<ORSet<T>, Error> {
        Ok(s.retain_delta(self.0))
    }
}
impl<T: Element> Update<ORSet<T>> for Clear {
    fn delta(self, s: &ORSet<T>, _: Actor) -> Result<ORSet<T>, Error> {
        Ok(s.clear_delta())
    }
}
impl<T: Element> Update<GSet<T>> for Add<T> {
    fn delta(self, s: &GSet<T>, _: Actor) -> Result<GSet<T>, Error> {
        Ok(s.add_delta(self.0))
    }
}
impl<T: Element> Update<GSet<T>> for AddAll<T> {
    fn delta(self, s: &GSet<T>, _: Actor) -> Result<GSet<T>, Error> {
        let mut d = GSet::bottom();
        for x in self.0 {
            d.join(&s.add_delta(x));
        }
        Ok(d)
    }
}
impl<T: Element> Update<TwoPSet<T>> for Add<T> {
    fn delta(self, s: &TwoPSet<T>, _: Actor) -> Result<TwoPSet<T>, Error> {
        Ok(s.add_delta(self.0))
    }
}
impl<T: Element> Update<TwoPSet<T>> for AddAll<T> {
    fn delta(self, s: &TwoPSet<T>, _: Actor) -> Result<TwoPSet<T>, Error> {
        let mut d = TwoPSet::bottom();
        for x in self.0 {
            d.join(&s.add_delta(x));
        }
        Ok(d)
    }
}
impl<T: Element> Update<TwoPSet<T>> for Remove<T> {
    fn delta(self, s: &TwoPSet<T>, _: Actor) -> Result<TwoPSet<T>, Error> {
        Ok(s.remove_delta(&self.0))
    }
}
impl<T: Element> Update<TwoPSet<T>> for RemoveAll<T> {
    fn delta(self, s: &TwoPSet<T>, _: Actor) -> Result<TwoPSet<T>, Error> {
        let mut d = TwoPSet::bottom();
        for x in &self.0 {
            d.join(&s.remove_delta(x));
        }
        Ok(d)
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
impl Update<CCounter> for Inc {
    fn delta(self, s: &CCounter, actor: Actor) -> Result<CCounter, Error> {
        Ok(s.add_delta(actor, i64::try_from(self.0).unwrap_or(i64::MAX)))
    }
}
impl Update<CCounter> for Dec {
    fn delta(self, s: &CCounter, actor: Actor) -> Result<CCounter, Error> {
        Ok(s.add_delta(actor, i64::try_from(self.0).map_or(i64::MIN + 1, |n| -n)))
    }
}
impl Update<LexCounter> for Inc {
    fn delta(self, s: &LexCounter, actor: Actor) -> Result<LexCounter, Error> {
        Ok(s.inc_delta(actor, self.0))
    }
}
impl Update<LexCounter> for Dec {
    fn delta(self, s: &LexCounter, actor: Actor) -> Result<LexCounter, Error> {
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
        let ts = self
            .timestamp
            .unwrap_or_else(|| s.stamp().map_or(1, |(t, _)| t.saturating_add(1)));
        Ok(s.set_delta(actor, ts, self.value))
    }
}
impl<T: Element> Update<MVRegister<T>> for Write<T> {
    fn delta(self, s: &MVRegister<T>, actor: Actor) -> Result<MVRegister<T>, Error> {
        Ok(s.write_delta(actor, self.value))
    }
}
impl<T: Element> Update<MVRegister<T>> for Clear {
    fn delta(self, s: &MVRegister<T>, _: Actor) -> Result<MVRegister<T>, Error> {
        Ok(s.clear_delta())
    }
}
impl<K: Element, V: Element> Update<MVMap<K, V>> for Put<K, V> {
    fn delta(self, s: &MVMap<K, V>, actor: Actor) -> Result<MVMap<K, V>, Error> {
        Ok(s.write_delta(actor, self.key, self.value))
    }
}
impl<K: Element, V: Element> Update<MVMap<K, V>> for Remove<K> {
    fn delta(self, s: &MVMap<K, V>, _: Actor) -> Result<MVMap<K, V>, Error> {
        Ok(s.remove_delta(&self.0))
    }
}
impl Update<EWFlag> for Enable {
    fn delta(self, s: &EWFlag, actor: Actor) -> Result<EWFlag, Error> {
        Ok(s.enable_delta(actor))
    }
}
impl Update<EWFlag> for Disable {
    fn delta(self, s: &EWFlag, actor: Actor) -> Result<EWFlag, Error> {
        Ok(s.disable_delta(actor))
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
impl Update<Boolean> for Enable {
    fn delta(self, s: &Boolean, actor: Actor) -> Result<Boolean, Error> {
        Ok(s.enable_delta(actor))
    }
}
impl<T: Element> Update<IVar<T>> for Assign<T> {
    fn delta(self, s: &IVar<T>, _: Actor) -> Result<IVar<T>, Error> {
        s.assign_delta(self.0)
    }
}
impl Update<BCounter> for Grant {
    fn delta(self, s: &BCounter, actor: Actor) -> Result<BCounter, Error> {
        Ok(s.grant_delta(actor, self.0))
    }
}
impl Update<BCounter> for Consume {
    fn delta(self, s: &BCounter, actor: Actor) -> Result<BCounter, Error> {
        s.consume_delta(actor, self.0)
    }
}
impl Update<BCounter> for Transfer {
    fn delta(self, s: &BCounter, actor: Actor) -> Result<BCounter, Error> {
        s.transfer_delta(actor, self.to, self.n)
    }
}
impl Update<BCounter> for Withdraw {
    fn delta(self, s: &BCounter, actor: Actor) -> Result<BCounter, Error> {
        s.withdraw_delta(actor, self.0.unwrap_or_else(|| s.rights(actor)))
    }
}
