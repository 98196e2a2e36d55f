//! [`IVar`]: a single-assignment variable (Lasp's `ivar`).
//!
//! Hand-written: `crdts` has no single-assignment type.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::set::Element;
use crate::{Error, Lattice, Query};

/// A single-assignment variable: bottom (unset) or one value.
///
/// **Conflicts.** A replica refuses to assign a value different from the one it holds
/// ([`Error::AlreadyAssigned`]), but two replicas may concurrently assign different values, and
/// the join must still be defined. The resolution is deterministic and keeps information: the
/// join holds *all* assigned values, and a variable holding two or more is in the **conflict**
/// state ([`IVar::is_conflict`]); it queries to `None` and stays in conflict (conflicts only
/// grow). Formally the lattice is the powerset of values, with singletons as the assigned
/// states; its join-irreducibles are the single assignments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: DeserializeOwned + Ord"))]
pub struct IVar<T: Ord>(BTreeSet<T>);

impl<T: Ord> Default for IVar<T> {
    fn default() -> Self {
        IVar(BTreeSet::new())
    }
}

impl<T: Element> IVar<T> {
    /// The delta of assigning `value`: bottom if it is already the value;
    /// `Err(AlreadyAssigned)` if a different value (or a conflict) is held.
    pub fn assign_delta(&self, value: T) -> Result<Self, Error> {
        match self.0.len() {
            0 => Ok(IVar(BTreeSet::from([value]))),
            1 if self.0.contains(&value) => Ok(Self::default()),
            _ => Err(Error::AlreadyAssigned),
        }
    }

    /// Assigns `value`; returns the delta, or `Err(AlreadyAssigned)` (state unchanged) if a
    /// different value is already held.
    pub fn assign(&mut self, value: T) -> Result<Self, Error> {
        let d = self.assign_delta(value)?;
        self.join(&d);
        Ok(d)
    }

    /// The assigned value, if exactly one.
    pub fn get(&self) -> Option<&T> {
        if self.0.len() == 1 {
            self.0.first()
        } else {
            None
        }
    }

    /// Whether concurrent replicas assigned different values.
    pub fn is_conflict(&self) -> bool {
        self.0.len() > 1
    }

    /// Every value assigned (one, or several in a conflict).
    pub fn values(&self) -> &BTreeSet<T> {
        &self.0
    }
}

impl<T: Element> Lattice for IVar<T> {
    fn bottom() -> Self {
        Self::default()
    }
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }
    fn join(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for x in &other.0 {
            if !self.0.contains(x) {
                self.0.insert(x.clone());
                changed = true;
            }
        }
        changed
    }
    fn leq(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }
    fn decompose(&self) -> Vec<Self> {
        self.0
            .iter()
            .map(|x| IVar(BTreeSet::from([x.clone()])))
            .collect()
    }
    fn delta(&self, other: &Self) -> Self {
        IVar(self.0.difference(&other.0).cloned().collect())
    }
}

impl<T: Element> Query for IVar<T> {
    /// `Some(value)` when assigned; `None` when unset or in conflict.
    type Value = Option<T>;
    fn query(&self) -> Option<T> {
        self.get().cloned()
    }
}
