//! Type-erased lattice values, so one engine holds variables of many types.
//!
//! The graph's types are checked when it is built (a typed [`crate::Var`] handle names each
//! variable's type); past that point the engine moves values as `Box<dyn AnyLattice>`. A value
//! of the wrong type reaching a variable would be a broken engine invariant, so the dynamic
//! operations panic on it rather than return an error.

use std::any::{type_name, Any};
use std::fmt::Debug;

use rasp_lattice::Lattice;

/// A lattice value of some type, behind a pointer.
pub trait AnyLattice: Any + Send + Sync + Debug {
    /// `self` as `Any`, for downcasting.
    fn as_any(&self) -> &dyn Any;
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn AnyLattice>;
    /// The Rust type name of the value.
    fn type_name(&self) -> &'static str;
    /// Whether this is bottom.
    fn is_bottom(&self) -> bool;
    /// `self := self ⊔ other`; whether `self` changed.
    fn join_dyn(&mut self, other: &dyn AnyLattice) -> bool;
    /// The part of `self` that strictly inflates `other` ([`Lattice::delta`]).
    fn delta_dyn(&self, other: &dyn AnyLattice) -> Box<dyn AnyLattice>;
    /// `self ≤ other`.
    fn leq_dyn(&self, other: &dyn AnyLattice) -> bool;
    /// Equality with a value of the same type.
    fn eq_dyn(&self, other: &dyn AnyLattice) -> bool;
    /// The join decomposition ([`Lattice::decompose`]).
    fn decompose_dyn(&self) -> Vec<Box<dyn AnyLattice>>;
    /// MessagePack encoding (the wire and disk format).
    fn encode(&self) -> Vec<u8>;
    /// Encoded size in bytes, without allocating the encoding.
    fn encoded_size(&self) -> usize;
    /// The encoded summary of the value ([`rasp_lattice::Summarize`]); `None` for a type
    /// without one.
    fn summary_dyn(&self) -> Option<Vec<u8>>;
    /// The part of the value that the state summarised by the encoded `summary` lacks
    /// ([`rasp_lattice::Summarize::delta_since`]); `None` for a type without a summary, an
    /// error when `summary` does not decode.
    fn delta_since_dyn(
        &self,
        summary: &[u8],
    ) -> Option<Result<Box<dyn AnyLattice>, rasp_lattice::Error>>;
}

fn cast<L: 'static>(v: &dyn AnyLattice) -> &L {
    v.as_any().downcast_ref::<L>().unwrap_or_else(|| {
        panic!(
            "engine invariant broken: expected {}, got {}",
            type_name::<L>(),
            v.type_name()
        )
    })
}

impl<L: Lattice> AnyLattice for L {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn clone_box(&self) -> Box<dyn AnyLattice> {
        Box::new(self.clone())
    }
    fn type_name(&self) -> &'static str {
        type_name::<L>()
    }
    fn is_bottom(&self) -> bool {
        Lattice::is_bottom(self)
    }
    fn join_dyn(&mut self, other: &dyn AnyLattice) -> bool {
        self.join(cast::<L>(other))
    }
    fn delta_dyn(&self, other: &dyn AnyLattice) -> Box<dyn AnyLattice> {
        Box::new(self.delta(cast::<L>(other)))
    }
    fn leq_dyn(&self, other: &dyn AnyLattice) -> bool {
        self.leq(cast::<L>(other))
    }
    fn eq_dyn(&self, other: &dyn AnyLattice) -> bool {
        other.as_any().downcast_ref::<L>() == Some(self)
    }
    fn decompose_dyn(&self) -> Vec<Box<dyn AnyLattice>> {
        self.decompose()
            .into_iter()
            .map(|p| Box::new(p) as Box<dyn AnyLattice>)
            .collect()
    }
    fn encode(&self) -> Vec<u8> {
        rasp_lattice::encode(self).expect("lattice values always encode")
    }
    fn encoded_size(&self) -> usize {
        rasp_lattice::encoded_size(self)
    }
    fn summary_dyn(&self) -> Option<Vec<u8>> {
        self.encoded_summary()
    }
    fn delta_since_dyn(
        &self,
        summary: &[u8],
    ) -> Option<Result<Box<dyn AnyLattice>, rasp_lattice::Error>> {
        self.delta_since_encoded(summary)
            .map(|r| r.map(|d| Box::new(d) as Box<dyn AnyLattice>))
    }
}

impl Clone for Box<dyn AnyLattice> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Downcasts an erased value to `L` (`None` on a type mismatch).
pub fn downcast<L: 'static>(v: &dyn AnyLattice) -> Option<&L> {
    v.as_any().downcast_ref::<L>()
}

/// Decodes a MessagePack value of some lattice type.
pub type DecodeFn = fn(&[u8]) -> Result<Box<dyn AnyLattice>, rasp_lattice::Error>;

/// The typed operations a variable's type provides to the engine, captured when the variable
/// is declared (function pointers, so a variable costs no allocation for them).
#[derive(Clone, Copy)]
pub struct TypeOps {
    /// The Rust type name (`std::any::type_name`).
    pub name: &'static str,
    /// Bottom of the type.
    pub bottom: fn() -> Box<dyn AnyLattice>,
    /// Decodes a MessagePack value of the type.
    pub decode: DecodeFn,
    /// A readable rendering of the query value, for summaries and logs.
    pub show: fn(&dyn AnyLattice) -> String,
}

impl TypeOps {
    /// The operations of `L`.
    pub fn of<L: Lattice + rasp_lattice::Query>() -> TypeOps
    where
        L::Value: Debug,
    {
        TypeOps {
            name: type_name::<L>(),
            bottom: || Box::new(L::bottom()),
            decode: |b| rasp_lattice::decode::<L>(b).map(|v| Box::new(v) as Box<dyn AnyLattice>),
            show: |v| format!("{:?}", cast::<L>(v).query()),
        }
    }
}

impl Debug for TypeOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}
