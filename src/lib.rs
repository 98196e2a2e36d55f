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
//! **Your own program** is an [`App`]: its dataflow graph, the interest of each role, what a
//! node does at start, its invariants; `fn main() -> ExitCode { rasp::main(MyApp) }` gives
//! the binary the subcommands `sim` (the deterministic simulator) and `node` (a real process),
//! with the same wiring in both (see [`app`]).
//!
//! The `rasp` binary (see `rasp --help`) runs nodes and demos; its commands live in [`cli`].
//! Every node serves an HTTP API ([`http`]): its variables (get, declare, update, threshold
//! reads, watch), its overlay, its health and Prometheus metrics; `rasp var` is its
//! command-line client, and `rasp studio --attach` draws a running cluster from these APIs in
//! the browser ([`studio`]).
//!
//! # Features
//!
//! - `cli` (default): the `rasp` binary and the subcommands beyond the App road
//!   (`cli::main`, the ad counter's command and plots, `bench-net`, `overlay`), with
//!   plotters and mimalloc. Without it the library keeps the App road ([`main`], [`app`],
//!   [`http`], the node command in [`cli::node`]).

pub mod ad_counter;
pub mod app;
pub mod cli;
pub mod error;
pub mod http;
pub mod studio;

pub use app::{init_tracing, main, App, Invariant, Main, NoArgs, NodeCtx};
pub use error::{Error, Result};

pub use rasp_dataflow as dataflow;
pub use rasp_lattice as lattice;
pub use rasp_membership as membership;
pub use rasp_runtime as runtime;
