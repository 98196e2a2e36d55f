//! The crate's error type.

/// Errors a caller of rasp-lattice can handle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// MessagePack encoding failed.
    #[error("encoding failed: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// MessagePack decoding failed (malformed or hostile input, or a state that violates the
    /// type's invariants).
    #[error("decoding failed: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// A [`crate::Threshold`] variant was evaluated on a type that does not support it, e.g.
    /// `Threshold::Value` on a set.
    #[error("threshold `{threshold}` is not supported by {type_name}")]
    UnsupportedThreshold {
        /// The threshold variant (`"value"` or `"cardinality"`).
        threshold: &'static str,
        /// The Rust type it was evaluated on.
        type_name: &'static str,
    },
    /// A single-assignment variable ([`crate::IVar`]) was assigned a value different from the
    /// one it already holds.
    #[error("single-assignment variable already holds a different value")]
    AlreadyAssigned,
    /// Parts given to a `from_parts` constructor violate the causal invariants (a dot in the
    /// store that the context does not cover, a dot held by two elements, an empty dot set).
    #[error("invalid causal state: {0}")]
    InvalidCausalState(String),
    /// A [`crate::BCounter`] replica was asked to use, transfer or withdraw more rights than it
    /// holds; nothing changed.
    #[error("actor {actor} holds {available} rights, {wanted} needed")]
    InsufficientRights {
        /// The replica's actor.
        actor: crate::Actor,
        /// The rights asked for.
        wanted: u64,
        /// The rights it holds.
        available: u64,
    },
}
