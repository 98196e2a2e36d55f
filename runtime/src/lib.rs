//! # rasp-runtime: atoms and their two runtimes
//!
//! Crate map:
//!
//! - [`ids`]: [`NodeId`], [`AtomId`], [`AtomAddr`], [`ServiceId`], [`Dest`], [`Time`],
//!   [`TimerId`], [`RequestId`], [`Contact`], [`PeerEvent`].
//! - [`message`]: the [`Message`] trait, [`KindId`], type-erased [`Payload`]s (typed
//!   values locally, MessagePack bytes remotely) and [`Envelope`]s with their wire form.
//! - [`atom`]: the [`Atom`] trait and [`Ctx`], the syscalls (interrupt table: `on`,
//!   `on_peer`, `every`; futures table: `request`, `after`; `send`, `reply`, `now`, `rng`,
//!   `spawn`, `stop`, durable store, discovery, connections, metrics), layered over the
//!   object-safe [`Syscalls`].
//! - [`host`]: the node-local [`Host`] (atom table, dispatch, timers, services, metrics)
//!   shared by both runtimes, the [`Platform`] trait a runtime implements for it, and
//!   [`Boot`] closures that spawn a node's atoms at start and restart.
//! - [`metrics`]: per-kind traffic and named counters, deterministic snapshots.
//! - [`store`]: [`MemStore`], an in-memory ordered key-value store.
//! - [`sim`]: the deterministic simulator (virtual clock, event queue, network model with
//!   latency, loss, duplication, reordering, partitions, crashes/restarts, clock skew;
//!   trace hash, recorded traces and replay, invariants, seeds from `RASP_SEED`; a controlled
//!   mode and a bounded model checker over it, [`sim::explore`](mod@sim::explore)).
//! - `demo` (feature `test-utils`): the demo protocol (ping-pong + gossiped grow-only
//!   counter) as an atom, run by the simulator tests (the network runtime can run the same
//!   atom in real processes).
//! - [`error`]: [`Error`], [`StoreError`], [`RequestError`].
//! - [`names`]: [`string_enum!`], enums named by strings (configuration values) declared once.
//! - `net` (feature `net`): the network runtime, tokio + libp2p, with a redb store.
//!
//! The same atoms run under the deterministic simulator (`sim`) and the tokio + libp2p
//! network runtime (`net`); only the [`Platform`] differs.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `net` | yes | the network runtime `net` and its dependencies (tokio, libp2p, redb, futures). Without it the crate is the sans-IO layer: atoms, the [`Host`], the simulator and the model checker. |
//! | `test-utils` | no | helpers for tests and tools: `demo`, and with `net` the bare libp2p peer `net::raw` |
//!
//! The layers above (`rasp-membership`, `rasp-dataflow`) depend on this crate without its
//! default features, so they build without libp2p; the `rasp` facade turns `net` on.

pub mod atom;
#[cfg(feature = "test-utils")]
pub mod demo;
pub mod error;
pub mod host;
pub mod ids;
pub mod message;
pub mod metrics;
pub mod names;
#[cfg(feature = "net")]
pub mod net;
pub mod sim;
pub mod store;
pub mod wire;

pub use atom::{Atom, Ctx, ErasedAtom, Origin, Syscalls, TimerFn};
pub use error::{Error, RequestError, StoreError};
pub use host::{boot, AlarmId, Boot, BootCtx, Host, Platform};
pub use ids::{
    fnv1a, AtomAddr, AtomId, Contact, Dest, NodeId, PeerEvent, RequestId, ServiceId, Time, TimerId,
};
pub use message::{AnyMessage, Corr, Envelope, KindId, Message, Payload, RawMessage};
pub use metrics::{KindStats, Metrics, MetricsSnapshot};
pub use store::{KvPairs, MemStore};
