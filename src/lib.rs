//! # rasp: coordination-free distributed dataflow over CRDTs
//!
//! rasp is a Rust runtime in the style of [Lasp](https://lasp-lang.readme.io/): programs declare
//! replicated variables (join-semilattices: counters, sets, maps, registers), update them on any
//! replica and connect them with monotone operators; replicas converge without coordination.
//!
//! This facade re-exports the layers, bottom to top:
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`lattice`] | `rasp-lattice` | join-semilattices (CRDTs) with delta mutators, join decomposition and Lasp's threshold queries |
//! | [`runtime`] | `rasp-runtime` | atoms and syscalls; the deterministic simulator and the tokio + libp2p network runtime |
//! | [`membership`] | `rasp-membership` | the pluggable peer service: full, client-server, HyParView; Plumtree broadcast; overlay checks |
//! | [`dataflow`] | `rasp-dataflow` | the DSL of monotone operators over CRDTs, compiled to atoms, replicated with delta sync |
//!
//! The `rasp` binary (see `rasp --help`) runs nodes and demos; its commands live in [`cli`]
//! (so a command can reuse `rasp node`'s boot: see [`cli::node::run_with`]). Every node serves
//! an HTTP API ([`http`]): its variables (get, declare, update, threshold reads, watch), its
//! overlay, its health and Prometheus metrics; `rasp var` is its command-line client.

pub mod ad_counter;
pub mod cli;
pub mod http;

pub use rasp_dataflow as dataflow;
pub use rasp_lattice as lattice;
pub use rasp_membership as membership;
pub use rasp_runtime as runtime;
