//! # rasp-membership: the peer service
//!
//! Membership decides which nodes talk to which; broadcast spreads a message to all of them.
//! Following Partisan (talk slides 104–121), the membership protocol is pluggable and chosen by
//! configuration, so a program can be rerun under full membership or client-server to tell a
//! protocol bug from an application bug.
//!
//! The protocols are **sans-IO cores**: state machines over a peer type `P`, fed with events,
//! the time and an RNG, returning [`proto::Out`] actions; each implements [`Core`]. The runtime
//! atom drives them.
//!
//! | module | what |
//! |---|---|
//! | [`proto`] | the [`Core`] trait every core implements, its output type, time, the peer bound |
//! | [`hyparview`] | HyParView (DSN 2007) partial views with Partisan's isolation repair |
//! | [`plumtree`] | Plumtree (SRDS 2007) epidemic broadcast trees, bounded caches |
//! | [`gossip`] | plain fanout gossip, the broadcast baseline |
//! | [`full`] | full and client-server membership: a member-list CRDT, heartbeats |
//! | [`service`] | [`PeerService`]: one interface over all modes; [`Mode`] picks the protocol |
//! | [`atom`] | [`atom::MembershipAtom`]: the service on the runtime, its message interface |
//! | `testkit` (feature `test-utils`) | a lean deterministic harness for the bare cores (tests, scale example); `testkit::par` runs it on every core, bit-identical for any thread count |
//! | [`overlay`] | Sprinter's checks: connected, isolated, asymmetric, degrees; JSON and DOT |
//!
//! Protocol facts and parameters: Leitão, Pereira, Rodrigues, "HyParView", DSN 2007 and
//! "Epidemic Broadcast Trees", SRDS 2007; Partisan (USENIX ATC 2019) for the full and
//! client-server modes; iroh-gossip's simulator for the comparison figures.
//!
//! ## Switching modes
//!
//! The mode is one value of [`Config`]: `full`, `client-server` or `hyparview` (the default),
//! parsed with [`std::str::FromStr`] (the CLI's `--membership` flag and `RASP_MEMBERSHIP`) or
//! read with serde (`mode = "client-server"` and `role = "client"` in a config file). Nothing
//! that uses the peer service changes:
//!
//! ```
//! use rasp_membership::{Config, Mode, PeerService, Role};
//! use rand::SeedableRng;
//!
//! for mode in ["full", "client-server", "hyparview"] {
//!     let config = Config { mode: mode.parse::<Mode>()?, role: Role::Server, ..Config::default() };
//!     let mut node = PeerService::<u64, Vec<u8>>::new(1, config)?;
//!     let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
//!     let mut out = Vec::new();
//!     node.join(vec![0], std::time::Duration::ZERO, &mut rng, &mut out);
//!     assert!(!out.is_empty()); // a JOIN (or member list) for node 0, and timers
//! }
//! # Ok::<(), rasp_membership::Error>(())
//! ```
//!
//! On the runtime, spawn one [`MembershipAtom`] per node with the config and seed contacts;
//! other atoms use its message interface (see [`atom`]).
//!
//! ## Figures
//!
//! Tests assert the measured figures and print them:
//! `cargo test -p rasp-membership --release -- --nocapture` (the membership atom in the runtime
//! simulator in `tests/sim.rs`, including 10,000 nodes; the bare cores in the crate's lean
//! harness for mass failure at 50/80/95%, churn, full and client-server at 1,000 nodes).
//!
//! The scale benchmark (a program, not a test) forms a HyParView overlay in the runtime
//! simulator and broadcasts over it, printing wall time and peak memory (`VmHWM`):
//!
//! ```text
//! cargo run --release -p rasp-membership --example overlay_scale -- --nodes 1000000
//! ```
//!
//! (`--harness lean` runs the bare cores instead; see the example's docs.)

pub mod atom;
mod error;
pub mod full;
pub mod gossip;
pub mod hyparview;
pub mod overlay;
pub mod plumtree;
pub mod proto;
pub mod service;
mod vecmap;

pub use atom::{MembershipAtom, PeerServiceEvent, SERVICE};
pub use error::Error;
pub use full::Role;
pub use proto::Core;
pub use service::{
    BroadcastMode, Config, Mode, PeerService, ServiceEvent, ServiceMessage, ServiceTimer,
    SharedConfig,
};

#[cfg(test)]
mod service_tests;
#[cfg(any(test, feature = "test-utils"))]
pub mod testkit;
