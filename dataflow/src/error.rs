//! The dataflow layer's errors.

/// What can go wrong building or running a dataflow program.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No variable of that id is declared.
    #[error("unknown variable `{0}`")]
    UnknownVar(String),
    /// The variable is declared in the graph but this replica does not hold it (it is not in
    /// the replica's interest).
    #[error("variable `{0}` is not held by this replica (add it to the replica's interest)")]
    NotHeld(String),
    /// The id was declared with another type.
    #[error("variable `{id}` is declared as {declared}, not {requested}")]
    TypeMismatch {
        /// The variable.
        id: String,
        /// Its declared type.
        declared: String,
        /// The type asked for.
        requested: String,
    },
    /// An operator would make the graph cyclic.
    #[error("cycle: `{id}` cannot be computed from `{through}`, which depends on it")]
    Cycle {
        /// The variable the operator would compute.
        id: String,
        /// The input that depends on it.
        through: String,
    },
    /// The variable is already computed by another operator.
    #[error("variable `{0}` is already computed by a different operator")]
    AlreadyDerived(String),
    /// Derived variables change only through their operator.
    #[error("variable `{0}` is derived by an operator and cannot be updated directly")]
    Derived(String),
    /// An operator was given the same variable twice.
    #[error(
        "operator for `{0}` takes the same variable as both inputs; declare a copy with bind_to"
    )]
    SameInputs(String),
    /// A trigger of that name is already armed.
    #[error("a trigger named `{0}` is already armed")]
    DuplicateTrigger(String),
    /// `bind_to` was given a target that already holds writes of its own: a copy must not mix
    /// with them (dots are minted per variable, so two variables' causal states cannot be
    /// joined).
    #[error("`{0}` already holds writes of its own; bind_to needs a new or unwritten variable")]
    BindTargetWritten(String),
    /// Ids must be non-empty.
    #[error("invalid variable id {0:?}")]
    InvalidId(String),
    /// A declaration learnt from another replica ([`crate::Program::add_decl`]) is beyond
    /// the bounds on an untrusted graph ([`crate::program::MAX_GRAPH`] and the others).
    #[error("declaration refused: {0}")]
    GraphLimit(String),
    /// A WebAssembly function or module refused (no such export, a hash mismatch, a module
    /// that does not validate, too many modules).
    #[error("WebAssembly function: {0}")]
    Wasm(String),
    /// A sync mode name that is none of [`crate::replica::SyncMode::ALL`]'s.
    #[error(
        "unknown sync mode `{0}` (expected {expected})",
        expected = crate::replica::SyncMode::expected()
    )]
    UnknownSyncMode(String),
    /// A lattice error: decoding, an unsupported threshold, a conflicting single assignment.
    #[error(transparent)]
    Lattice(#[from] rasp_lattice::Error),
}
