//! Lasp's threshold reads (PPDP 2015, §3): a read blocks until a threshold holds.
//!
//! | variant | holds when |
//! |---|---|
//! | [`Threshold::AtLeast`] | state ≥ V0 |
//! | [`Threshold::Strict`] | state > V0 |
//! | [`Threshold::Value`] | counter value ≥ N (types implementing [`Numeric`]) |
//! | [`Threshold::StrictValue`] | counter value > N (Lasp's `{strict, {value, N}}`) |
//! | [`Threshold::Cardinality`] | size ≥ N (types implementing [`Cardinality`]) |
//! | [`Threshold::StrictCardinality`] | size > N (Lasp's `{strict, {cardinality, N}}`) |
//! | [`Threshold::NotBottom`] (default) | state ≠ bottom |
//!
//! **Unsupported combinations.** Build `Value`/`Cardinality` thresholds with
//! [`Threshold::value`] / [`Threshold::cardinality`] (strict: [`Threshold::strict_value`] /
//! [`Threshold::strict_cardinality`]): these exist only for types implementing
//! [`Numeric`] / [`Cardinality`], so a mismatch is a compile error. A variant constructed
//! directly on a type lacking the measure makes [`Threshold::holds`] return
//! [`Error::UnsupportedThreshold`] (never a silent `false`); [`Threshold::validate`] reports it
//! up front, e.g. when a read is registered.
//!
//! **Monotonicity.** `AtLeast`, `Strict` and `NotBottom` are monotone for every lattice: once
//! they hold they hold for every inflation. `Value` and `Cardinality` (strict or not) are
//! monotone only where the measure is ([`Numeric::MONOTONE`], [`Cardinality::MONOTONE`]): a
//! grow-only counter's value or a grow-only set's size never decreases, but a PN-counter's value
//! or an OR-set's size can. On such types the threshold still answers "does it hold now" (as Lasp does), but a read
//! that fired may not hold on a later state.

use serde::{Deserialize, Serialize};

use crate::{Error, Lattice};

/// A monotone read condition on a lattice state.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(bound(
    serialize = "L: Serialize",
    deserialize = "L: serde::de::DeserializeOwned"
))]
pub enum Threshold<L> {
    /// Holds when the state is ≥ the given state.
    AtLeast(L),
    /// Holds when the state is > the given state.
    Strict(L),
    /// Holds when the counter value is ≥ N (counters only).
    Value(i64),
    /// Holds when the size is ≥ N (sets and maps only).
    Cardinality(usize),
    /// Holds when the counter value is > N (counters only): Lasp's `{strict, {value, N}}`.
    StrictValue(i64),
    /// Holds when the size is > N (sets and maps only): Lasp's `{strict, {cardinality, N}}`.
    StrictCardinality(usize),
    /// Holds when the state is not bottom (Lasp's default "strict bottom").
    #[default]
    NotBottom,
}

/// A lattice with a numeric value (counters), usable with [`Threshold::Value`].
pub trait Numeric {
    /// Whether the value never decreases along inflations.
    const MONOTONE: bool;
    /// The current numeric value.
    fn value(&self) -> i64;
}

/// A lattice with a size (sets, maps), usable with [`Threshold::Cardinality`].
pub trait Cardinality {
    /// Whether the size never decreases along inflations.
    const MONOTONE: bool;
    /// The current number of elements (or keys).
    fn cardinality(&self) -> usize;
}

impl<L: Lattice> Threshold<L> {
    /// `value ≥ n`, only for types implementing [`Numeric`].
    pub fn value(n: i64) -> Self
    where
        L: Numeric,
    {
        Threshold::Value(n)
    }

    /// `size ≥ n`, only for types implementing [`Cardinality`].
    pub fn cardinality(n: usize) -> Self
    where
        L: Cardinality,
    {
        Threshold::Cardinality(n)
    }

    /// `value > n` (Lasp's `{strict, {value, N}}`), only for types implementing [`Numeric`].
    pub fn strict_value(n: i64) -> Self
    where
        L: Numeric,
    {
        Threshold::StrictValue(n)
    }

    /// `size > n` (Lasp's `{strict, {cardinality, N}}`), only for types implementing
    /// [`Cardinality`].
    pub fn strict_cardinality(n: usize) -> Self
    where
        L: Cardinality,
    {
        Threshold::StrictCardinality(n)
    }

    /// Whether the threshold holds on `state`. `Err(UnsupportedThreshold)` if this is a
    /// `Value`/`Cardinality` threshold on a type without that measure.
    pub fn holds(&self, state: &L) -> Result<bool, Error> {
        Ok(match self {
            Threshold::AtLeast(v) => v.leq(state),
            Threshold::Strict(v) => v.is_strict_inflation(state),
            Threshold::Value(n) => {
                state
                    .threshold_value()
                    .ok_or_else(|| unsupported::<L>("value"))?
                    >= *n
            }
            Threshold::Cardinality(n) => {
                state
                    .threshold_cardinality()
                    .ok_or_else(|| unsupported::<L>("cardinality"))?
                    >= *n
            }
            Threshold::StrictValue(n) => {
                state
                    .threshold_value()
                    .ok_or_else(|| unsupported::<L>("value"))?
                    > *n
            }
            Threshold::StrictCardinality(n) => {
                state
                    .threshold_cardinality()
                    .ok_or_else(|| unsupported::<L>("cardinality"))?
                    > *n
            }
            Threshold::NotBottom => !state.is_bottom(),
        })
    }

    /// Checks once that this threshold is supported by `L` (evaluates it on bottom).
    pub fn validate(&self) -> Result<(), Error> {
        self.holds(&L::bottom()).map(|_| ())
    }
}

fn unsupported<L>(threshold: &'static str) -> Error {
    Error::UnsupportedThreshold {
        threshold,
        type_name: std::any::type_name::<L>(),
    }
}
