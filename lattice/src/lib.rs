//! # rasp-lattice: join-semilattices for coordination-free dataflow
//!
//! Every rasp variable is a value of a type implementing [`Lattice`]: a join-semilattice whose
//! `join` says whether it changed (the dataflow layer propagates only on change), with a join
//! decomposition ([`Lattice::decompose`]) and an efficient [`Lattice::delta`] for the
//! remove-redundant (RR) optimisation of delta synchronisation (Enes et al., ICDE 2019).
//! Mutators return the delta they applied (`old ⊔ delta == new`), so a replica can ship deltas.
//!
//! Cargo feature `crdts` (off by default): `From` conversions between [`Dot`] and the `crdts`
//! crate's `Dot`, for programs that also use that crate.
//!
//! ## Crate map
//!
//! | module | holds |
//! |---|---|
//! | [`lattice`](crate::Lattice) (this file) | [`Lattice`], [`Query`], [`Actor`] |
//! | [`causal`] | [`Dot`], [`DotKind`], [`DotContext`], [`CausalContext`] (version vector + dot cloud), [`DotCloud`] |
//! | [`store`] | dot stores ([`DotStore`], [`DotSet`], [`DotFun`], [`DotMap`]), the generic [`Causal`] CRDT and the [`CausalLattice`] trait for values embeddable in an [`AWMap`] |
//! | [`counter`] | [`GCounter`], [`PNCounter`], [`CCounter`] (causal counter, resettable inside an [`AWMap`]) |
//! | [`lexcounter`] | [`LexCounter`] (lexicographic counter, Lasp's `state_lexcounter`) |
//! | [`bcounter`] | [`BCounter`] (bounded counter: escrow of rights, transfers between replicas; Lasp's `state_bcounter`) |
//! | [`max`] | [`MaxInt`] |
//! | [`set`] | [`GSet`], [`TwoPSet`] |
//! | [`orset`] | [`ORSet`] (add-wins observed-remove set, O(delta) join, dataflow-ready causal metadata) |
//! | [`register`] | [`LWWRegister`], [`MVRegister`] |
//! | [`flag`] | [`EWFlag`], [`DWFlag`] (one signature: every mutator takes the actor) |
//! | [`boolean`] | [`Boolean`] (`false < true`, explicit join; Lasp's `state_boolean`) |
//! | [`ivar`] | [`IVar`] (single assignment) |
//! | [`pair`] | [`Pair`] (product lattice) |
//! | [`gmap`] | [`GMap`] (grow-only map of lattices) |
//! | [`awmap`] | [`AWMap`] (add-wins map of causal lattices, Almeida/Shoker/Baquero 2018) |
//! | [`mvmap`] | [`MVMap`] (multi-value map: key → concurrently written values; Lasp's `state_mvmap`) |
//! | [`threshold`] | [`Threshold`] (Lasp's monotone reads), [`Numeric`], [`Cardinality`] |
//! | [`encoding`] | [`encode`], [`decode`], [`encoded_size`] (MessagePack) |
//! | [`Summarize`] (this file) | compact summaries of a state and the delta a peer lacks given its summary (catch-up) |
//! | [`laws`] | lattice-law checks, used by the property tests of every type |
//! | [`error`] | [`Error`] |
//!
//! ## Example: a delta mutation and a threshold
//!
//! ```
//! use rasp_lattice::{GCounter, Lattice, Query, Threshold};
//!
//! let mut a = GCounter::bottom();
//! let mut b = GCounter::bottom();
//! let delta = a.inc(1, 3); // mutate replica 1, get the delta back
//! assert_eq!(delta.query(), 3);
//! assert!(b.join(&delta)); // ship the delta to replica 2: it changed
//! assert!(!b.join(&delta)); // a duplicate changes nothing
//! b.inc(2, 2);
//!
//! let at_least_5 = Threshold::value(5);
//! assert!(!at_least_5.holds(&a).unwrap());
//! a.join(&b);
//! assert!(at_least_5.holds(&a).unwrap());
//! assert_eq!(a.query(), 5);
//! ```

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub mod awmap;
pub mod bcounter;
pub mod boolean;
pub mod causal;
pub mod counter;
pub mod encoding;
pub mod error;
pub mod flag;
pub mod gmap;
pub mod ivar;
pub mod laws;
pub mod lexcounter;
pub mod max;
pub mod mvmap;
pub mod orset;
pub mod pair;
pub mod register;
pub mod set;
pub mod store;
pub mod threshold;

pub use awmap::AWMap;
pub use bcounter::BCounter;
pub use boolean::Boolean;
pub use causal::{CausalContext, Dot, DotCloud, DotContext, DotKind};
pub use counter::{CCounter, GCounter, PNCounter};
pub use encoding::{decode, encode, encoded_size};
pub use error::Error;
pub use flag::{DWFlag, EWFlag};
pub use gmap::GMap;
pub use ivar::IVar;
pub use lexcounter::LexCounter;
pub use max::MaxInt;
pub use mvmap::MVMap;
pub use orset::{ORSet, ORSetStore};
pub use pair::Pair;
pub use register::{LWWRegister, MVRegister};
pub use set::{Element, GSet, TwoPSet};
pub use store::{Causal, CausalLattice, DotFun, DotMap, DotSet, DotStore};
pub use threshold::{Cardinality, Numeric, Threshold};

/// Identity of a replica (an actor that mints dots). Runtime node ids are `u64`.
pub type Actor = u64;

/// A join-semilattice with a bottom element, a join that reports change, a join
/// decomposition and a delta (difference) operation.
///
/// Laws (checked for every type by [`laws`]): `join` is commutative, associative and
/// idempotent; `bottom()` is its identity; `a.leq(b)` iff `a ⊔ b == b`; the parts returned by
/// `decompose` are join-irreducible, irredundant and join back to the whole;
/// `a.delta(b) ⊔ b == a ⊔ b` and `a.delta(b) ≤ a`.
pub trait Lattice:
    Clone + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The least element.
    fn bottom() -> Self;

    /// Whether `self` is the least element.
    fn is_bottom(&self) -> bool;

    /// `self := self ⊔ other`; returns whether `self` changed.
    fn join(&mut self, other: &Self) -> bool;

    /// The lattice order: `self ≤ other`.
    fn leq(&self, other: &Self) -> bool;

    /// Join decomposition: join-irreducible parts that join back to `self`, none of which is
    /// below the join of the others. Bottom decomposes into no parts.
    fn decompose(&self) -> Vec<Self>;

    /// The part of `self` that strictly inflates `other`: the join of the irreducible parts of
    /// `self` not below `other` (bottom if none). `self.delta(other) ⊔ other == self ⊔ other`.
    fn delta(&self, other: &Self) -> Self;

    /// `self ≤ next`: `next` is an inflation of `self`.
    fn is_inflation(&self, next: &Self) -> bool {
        self.leq(next)
    }

    /// `self < next`: `next` is a strict inflation of `self`.
    fn is_strict_inflation(&self, next: &Self) -> bool {
        self.leq(next) && self != next
    }

    /// Owned join: `self ⊔ other`.
    fn joined(mut self, other: &Self) -> Self {
        self.join(other);
        self
    }

    /// The counter value used by [`Threshold::Value`]; `None` (the default) when the type has
    /// no numeric value. Types implementing [`Numeric`] return `Some(Numeric::value(self))`.
    fn threshold_value(&self) -> Option<i64> {
        None
    }

    /// The size used by [`Threshold::Cardinality`]; `None` (the default) when the type has no
    /// cardinality. Types implementing [`Cardinality`] return `Some(cardinality())`.
    fn threshold_cardinality(&self) -> Option<usize> {
        None
    }

    /// The MessagePack encoding of [`Summarize::summary`], for types that implement
    /// [`Summarize`] (they override this with [`summary_hooks!`]); `None` (the default) for
    /// types without a summary. Type-erased engines call it without knowing the type.
    fn encoded_summary(&self) -> Option<Vec<u8>> {
        None
    }

    /// [`Summarize::delta_since`] from an encoded summary: `None` (the default) for types
    /// without a summary, an error when `summary` does not decode.
    fn delta_since_encoded(&self, summary: &[u8]) -> Option<Result<Self, Error>> {
        let _ = summary;
        None
    }
}

/// A lattice with a compact *summary* of a state, from which the holder of another state can
/// compute exactly what the summarised state lacks: the anti-entropy of digest-driven
/// synchronisation (Enes, Almeida, Baquero, Leitão, "Efficient Synchronization of State-based
/// CRDTs", ICDE 2019, §V "state-driven and digest-driven"; for causal CRDTs the summary is the
/// causal context, Almeida, Shoker, Baquero, "Delta State Replicated Data Types", JPDC 2018,
/// §5–§7). A replica that meets a neighbour sends its summary instead of asking for (or
/// shipping) whole states; the neighbour answers with the delta.
///
/// Law (checked by [`laws::check_summary`]): for all `a`, `b`,
/// `b ⊔ a.delta_since(&b.summary()) == b ⊔ a`, and `a.delta_since(s) ≤ a`. A summary taken
/// earlier, of a state `b' ≤ b`, still yields a delta that inflates `b` to `b ⊔ a` (states only
/// grow, so an old summary is a lower bound).
pub trait Summarize: Lattice {
    /// The summary of a state.
    type Summary: Clone + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The summary of `self`.
    fn summary(&self) -> Self::Summary;

    /// The part of `self` that the state summarised by `summary` lacks.
    fn delta_since(&self, summary: &Self::Summary) -> Self;
}

/// Overrides [`Lattice::encoded_summary`] and [`Lattice::delta_since_encoded`] with the
/// type's [`Summarize`] implementation; used inside `impl Lattice for T` blocks.
#[macro_export]
macro_rules! summary_hooks {
    () => {
        fn encoded_summary(&self) -> Option<Vec<u8>> {
            $crate::encode(&$crate::Summarize::summary(self)).ok()
        }
        fn delta_since_encoded(&self, summary: &[u8]) -> Option<Result<Self, $crate::Error>> {
            Some(
                $crate::decode::<<Self as $crate::Summarize>::Summary>(summary)
                    .map(|s| $crate::Summarize::delta_since(self, &s)),
            )
        }
    };
}

/// The external (user-visible) value of a lattice state.
pub trait Query {
    /// The type of the external value.
    type Value;
    /// The current external value; never blocks.
    fn query(&self) -> Self::Value;
}

/// Implements [`Lattice`] for a newtype `$t(inner)` by delegating to the inner lattice.
macro_rules! delegate_lattice {
    ($t:ident < $($g:ident),* > where $($bounds:tt)*) => {
        impl<$($g),*> $crate::Lattice for $t<$($g),*> where $($bounds)* {
            fn bottom() -> Self {
                Self($crate::Lattice::bottom())
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
                self.0.decompose().into_iter().map(Self).collect()
            }
            fn delta(&self, other: &Self) -> Self {
                Self(self.0.delta(&other.0))
            }
            delegate_lattice!(@extra $t);
        }
    };
    ($t:ident) => {
        impl $crate::Lattice for $t {
            fn bottom() -> Self {
                Self($crate::Lattice::bottom())
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
                self.0.decompose().into_iter().map(Self).collect()
            }
            fn delta(&self, other: &Self) -> Self {
                Self(self.0.delta(&other.0))
            }
            delegate_lattice!(@extra $t);
        }
    };
    (@extra CCounter) => {
        fn threshold_value(&self) -> Option<i64> {
            Some($crate::Numeric::value(self))
        }
    };
    (@extra MVMap) => {
        fn threshold_cardinality(&self) -> Option<usize> {
            Some(self.0.len())
        }
    };
    (@extra $t:ident) => {};
}
pub(crate) use delegate_lattice;
