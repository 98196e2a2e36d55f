//! # rasp-dataflow: monotone operators over CRDTs
//!
//! Lasp's programming model in Rust: replicated variables are lattices; operators connect
//! them; a derived variable's value always equals the plain function of its inputs' values,
//! whatever order the replicas saw the updates in.
//!
//! | module | holds |
//! |---|---|
//! | [`program`] | [`Program`]: declare, update, bind, query, threshold read (continuation or future: [`program::ReadFuture`], tasks polled by the program), subscribe, trigger (local to the replica: [`Program::trigger_local`]); map, filter, fold, union, intersection, product, bind_to; the graph as data |
//! | [`causal`] | derived dots ([`causal::DDot`]) tagged by source variable, their context, [`causal::DSet`] |
//! | [`ops`] | the incremental operator rules over causal sets, and the operators the engine runs them through |
//! | [`fold`] | fold by an associative, commutative, invertible operation ([`fold::Folded`]) |
//! | [`update`] | updates as values, a helper per operation: [`update::add`], [`update::add_all`], [`update::remove`], [`update::inc`], [`update::write`], [`update::enable`], [`update::assign`], [`update::raise`], [`update::consume`], [`update::transfer`], … |
//! | [`json`] | the JSON bridge: values as JSON, updates, declarations and thresholds from JSON ([`json::JsonTypes`]) |
//! | [`erased`] | type-erased lattice values, so one engine holds many types |
//! | [`replica`] | replication of a program between nodes: state or delta sync with BP and RR, catch-up, durability, cluster-wide triggers ([`replica::Replica`], [`replica::DataflowAtom`]) |
//! | [`buffer`] | the delta buffer of delta sync, sans IO: sequence numbers, acknowledgements, delta-groups, garbage collection ([`buffer::DeltaBuffer`]) |
//! | [`error`] | [`Error`] |

pub mod buffer;
pub mod causal;
pub mod erased;
pub mod error;
pub mod fold;
pub mod json;
pub mod ops;
pub mod program;
pub mod replica;
pub mod update;

pub use error::Error;
pub use program::{CompiledProgram, Decl, Func, Functions, Interest, OpDecl, OpKind, Program, Var};
