//! [`BCounter`]: the bounded counter, an escrow of rights shared among replicas (Balegas et al.,
//! "Extending Eventually Consistent Cloud Databases for Enforcing Numeric Invariants", SRDS 2015,
//! §3; Lasp's `state_bcounter`).
//!
//! A bound `B` on a count (at most `B` ad impressions, at most `B` seats sold) is enforced
//! without coordination on the fast path: the `B` **rights** are first created at some replica
//! ([`BCounter::grant`]), then moved between replicas ([`BCounter::transfer`]); a replica
//! **uses** a right per counted event ([`BCounter::consume`]) and only while it holds one, so it
//! can count offline within its rights, and the total used can never pass the rights granted.
//!
//! **State** (§3 of the paper): a PN-counter of values — per actor, the rights it granted
//! (`P`) and the rights it used (`N`) — plus a matrix of transfers `T[from][to]` (the total ever
//! moved from `from` to `to`), plus, beyond the paper, the rights each actor withdrew without
//! using them ([`BCounter::withdraw`]: how the rights of a retired bound are taken out of
//! circulation). Every entry is a grow-only count written only by its actor (`P[a]`, `N[a]`,
//! `W[a]` and the row `T[a][·]` by `a`), and the join is the entry-wise max.
//!
//! **Rights** of actor `a`: `P[a] + Σ_f T[f][a] − Σ_t T[a][t] − N[a] − W[a]`. Only `a`'s own
//! operations lower it, and each checks it first against `a`'s own state, where `a`'s own
//! entries are exact and the received transfers can only be under-counted; so a replica never
//! spends a right it does not hold, whatever was lost, duplicated or reordered. Summed over all
//! actors, the rights are `Σ P − Σ N − Σ W`: a join moves no right into or out of existence.
//!
//! **Value.** [`Query::query`] and [`Numeric::value`] are the total **used** (`Σ N`): the count
//! the bound protects, monotone, so [`crate::Threshold::Value`] on it is monotone. Lasp's value
//! (`Σ P − Σ N`, what is left) is [`BCounter::remaining`].
//!
//! Hand-written: `crdts` has no bounded counter.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Actor, Error, GCounter, Lattice, Numeric, Query};

/// A bounded counter: rights granted, transferred, used and withdrawn per actor. See the
/// [module docs](self).
///
/// ```
/// use rasp_lattice::{BCounter, Lattice, Query};
///
/// let (server, client) = (1, 2);
/// let mut s = BCounter::bottom();
/// s.grant(server, 3); // the bound: 3 uses in all
/// let moved = s.transfer(server, client, 2).unwrap();
/// let mut c = BCounter::bottom();
/// c.join(&moved); // the client received 2 rights
/// assert_eq!(c.rights(client), 2);
/// c.consume(client, 1).unwrap(); // offline, within its rights
/// c.consume(client, 1).unwrap();
/// assert!(c.consume(client, 1).is_err()); // none left: ask for a transfer
/// s.join(&c);
/// assert_eq!((s.query(), s.rights(server), s.remaining()), (2, 1, 1));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BCounter {
    /// `P`: rights granted (created) by each actor.
    granted: GCounter,
    /// `N`: rights used by each actor.
    used: GCounter,
    /// `W`: rights withdrawn (dropped unused) by each actor.
    withdrawn: GCounter,
    /// `T`: `(from, to)` → total rights ever moved from `from` to `to` (never 0: absent is 0).
    transfers: BTreeMap<(Actor, Actor), u64>,
}

impl BCounter {
    /// Rights received by `actor` from every other actor.
    pub fn received(&self, actor: Actor) -> u64 {
        self.transfers
            .iter()
            .filter(|((_, to), _)| *to == actor)
            .fold(0u64, |a, (_, n)| a.saturating_add(*n))
    }

    /// Rights given by `actor` to every other actor.
    pub fn given(&self, actor: Actor) -> u64 {
        self.transfers
            .range((actor, 0)..=(actor, Actor::MAX))
            .fold(0u64, |a, (_, n)| a.saturating_add(*n))
    }

    /// The total moved from `from` to `to` so far.
    pub fn transferred(&self, from: Actor, to: Actor) -> u64 {
        self.transfers.get(&(from, to)).copied().unwrap_or(0)
    }

    /// The rights `actor` holds, as this state knows them: what it granted and received, less
    /// what it gave, used and withdrew (0 if that is negative, which only a partial view of
    /// another actor's transfers can show). At `actor`'s own replica this never overstates.
    pub fn rights(&self, actor: Actor) -> u64 {
        let plus = self.granted.get(actor) as i128 + self.received(actor) as i128;
        let minus = self.given(actor) as i128
            + self.used.get(actor) as i128
            + self.withdrawn.get(actor) as i128;
        (plus - minus).clamp(0, u64::MAX as i128) as u64
    }

    /// The total used: the counted events (the counter's value).
    pub fn used(&self) -> u64 {
        self.used.total()
    }

    /// The rights `actor` used.
    pub fn used_by(&self, actor: Actor) -> u64 {
        self.used.get(actor)
    }

    /// The total granted: the bound.
    pub fn granted(&self) -> u64 {
        self.granted.total()
    }

    /// The total withdrawn (dropped unused).
    pub fn withdrawn(&self) -> u64 {
        self.withdrawn.total()
    }

    /// The rights still in circulation: granted − used − withdrawn (Lasp's value, `P − N`, when
    /// nothing was withdrawn). 0 if a partial view shows more used than granted.
    pub fn remaining(&self) -> u64 {
        self.granted()
            .saturating_sub(self.used())
            .saturating_sub(self.withdrawn())
    }

    /// The per-actor grants (`P`), uses (`N`) and withdrawals (`W`), and the transfer matrix.
    pub fn parts(
        &self,
    ) -> (
        &GCounter,
        &GCounter,
        &GCounter,
        &BTreeMap<(Actor, Actor), u64>,
    ) {
        (&self.granted, &self.used, &self.withdrawn, &self.transfers)
    }

    fn check(&self, actor: Actor, wanted: u64) -> Result<(), Error> {
        let available = self.rights(actor);
        if wanted > available {
            Err(Error::InsufficientRights {
                actor,
                wanted,
                available,
            })
        } else {
            Ok(())
        }
    }

    /// The delta of creating `n` new rights at `actor` (raising the bound by `n`; Lasp's
    /// increment).
    pub fn grant_delta(&self, actor: Actor, n: u64) -> Self {
        BCounter {
            granted: self.granted.inc_delta(actor, n),
            ..Self::default()
        }
    }

    /// Creates `n` rights at `actor`; returns the delta.
    pub fn grant(&mut self, actor: Actor, n: u64) -> Self {
        let d = self.grant_delta(actor, n);
        self.join(&d);
        d
    }

    /// The delta of `actor` using `n` of its rights (counting `n` events; Lasp's decrement).
    /// `Err(InsufficientRights)` if it holds fewer than `n`.
    pub fn consume_delta(&self, actor: Actor, n: u64) -> Result<Self, Error> {
        self.check(actor, n)?;
        Ok(BCounter {
            used: self.used.inc_delta(actor, n),
            ..Self::default()
        })
    }

    /// `actor` uses `n` of its rights; returns the delta, or `Err(InsufficientRights)` (and
    /// changes nothing) if it holds fewer than `n`.
    pub fn consume(&mut self, actor: Actor, n: u64) -> Result<Self, Error> {
        let d = self.consume_delta(actor, n)?;
        self.join(&d);
        Ok(d)
    }

    /// Uses one right if `actor` holds one: `Some(delta)`, or `None` when it holds none.
    pub fn try_use(&mut self, actor: Actor) -> Option<Self> {
        self.consume(actor, 1).ok()
    }

    /// The delta of `from` moving `n` of its rights to `to` (run at `from`'s replica).
    /// `Err(InsufficientRights)` if `from` holds fewer than `n`; bottom if `n` is 0 or `from`
    /// is `to`.
    pub fn transfer_delta(&self, from: Actor, to: Actor, n: u64) -> Result<Self, Error> {
        self.check(from, n)?;
        if n == 0 || from == to {
            return Ok(Self::default());
        }
        let total = self.transferred(from, to).saturating_add(n);
        Ok(BCounter {
            transfers: BTreeMap::from([((from, to), total)]),
            ..Self::default()
        })
    }

    /// `from` moves `n` of its rights to `to`; returns the delta (see
    /// [`BCounter::transfer_delta`]).
    pub fn transfer(&mut self, from: Actor, to: Actor, n: u64) -> Result<Self, Error> {
        let d = self.transfer_delta(from, to, n)?;
        self.join(&d);
        Ok(d)
    }

    /// The delta of `actor` dropping `n` of its rights unused (a bound retired, e.g. an ad
    /// removed). `Err(InsufficientRights)` if it holds fewer than `n`.
    pub fn withdraw_delta(&self, actor: Actor, n: u64) -> Result<Self, Error> {
        self.check(actor, n)?;
        Ok(BCounter {
            withdrawn: self.withdrawn.inc_delta(actor, n),
            ..Self::default()
        })
    }

    /// `actor` drops `n` of its rights unused; returns the delta.
    pub fn withdraw(&mut self, actor: Actor, n: u64) -> Result<Self, Error> {
        let d = self.withdraw_delta(actor, n)?;
        self.join(&d);
        Ok(d)
    }

    /// `actor` drops every right it holds; returns the delta (bottom if it holds none).
    pub fn withdraw_all(&mut self, actor: Actor) -> Self {
        let n = self.rights(actor);
        self.withdraw(actor, n)
            .expect("an actor holds its own rights")
    }
}

impl Lattice for BCounter {
    fn bottom() -> Self {
        Self::default()
    }
    fn is_bottom(&self) -> bool {
        self.granted.is_bottom()
            && self.used.is_bottom()
            && self.withdrawn.is_bottom()
            && self.transfers.is_empty()
    }
    fn join(&mut self, other: &Self) -> bool {
        let mut changed = self.granted.join(&other.granted);
        changed |= self.used.join(&other.used);
        changed |= self.withdrawn.join(&other.withdrawn);
        for (&k, &n) in &other.transfers {
            let e = self.transfers.entry(k).or_insert(0);
            if n > *e {
                *e = n;
                changed = true;
            }
        }
        changed
    }
    fn leq(&self, other: &Self) -> bool {
        self.granted.leq(&other.granted)
            && self.used.leq(&other.used)
            && self.withdrawn.leq(&other.withdrawn)
            && self
                .transfers
                .iter()
                .all(|(k, n)| other.transfers.get(k).is_some_and(|m| m >= n))
    }
    fn decompose(&self) -> Vec<Self> {
        let mut parts = Vec::new();
        parts.extend(
            self.granted
                .decompose()
                .into_iter()
                .map(|granted| BCounter {
                    granted,
                    ..Self::default()
                }),
        );
        parts.extend(self.used.decompose().into_iter().map(|used| BCounter {
            used,
            ..Self::default()
        }));
        parts.extend(
            self.withdrawn
                .decompose()
                .into_iter()
                .map(|withdrawn| BCounter {
                    withdrawn,
                    ..Self::default()
                }),
        );
        parts.extend(self.transfers.iter().map(|(&k, &n)| BCounter {
            transfers: BTreeMap::from([(k, n)]),
            ..Self::default()
        }));
        parts
    }
    fn delta(&self, other: &Self) -> Self {
        BCounter {
            granted: self.granted.delta(&other.granted),
            used: self.used.delta(&other.used),
            withdrawn: self.withdrawn.delta(&other.withdrawn),
            transfers: self
                .transfers
                .iter()
                .filter(|(k, n)| other.transfers.get(k).is_none_or(|m| *n > m))
                .map(|(&k, &n)| (k, n))
                .collect(),
        }
    }
    fn threshold_value(&self) -> Option<i64> {
        Some(self.value())
    }
}

impl Query for BCounter {
    type Value = u64;
    fn query(&self) -> u64 {
        self.used()
    }
}

/// The total used never decreases: `Threshold::Value` is monotone on a `BCounter`.
impl Numeric for BCounter {
    const MONOTONE: bool = true;
    fn value(&self) -> i64 {
        i64::try_from(self.used()).unwrap_or(i64::MAX)
    }
}
