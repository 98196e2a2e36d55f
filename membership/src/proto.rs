//! What every sans-IO protocol core shares: its outputs, the notion of time, the peer bound.
//!
//! A core never touches a socket, a clock or an ambient RNG. The driver (the membership atom
//! on the runtime, or a test harness) calls it with an input, the current time `now` and an
//! RNG, and the core appends [`Out`] values to a buffer the driver then executes: send these
//! messages, set these timers, open or close these connections, tell the layer above.

use std::fmt::Debug;
use std::time::Duration;

/// Time as the driver sees it: a monotone duration since an arbitrary epoch (the simulator's
/// virtual clock, or the network runtime's start). Cores only compare and add instants.
pub type Time = Duration;

/// What a peer identity must offer to a core: total order (for `BTreeMap`s and reproducible
/// iteration), cloning, and `Debug` for traces.
pub trait Peer: Ord + Clone + Debug {}
impl<T: Ord + Clone + Debug> Peer for T {}

/// One thing a core asks its driver to do.
///
/// `M` is the core's wire message, `T` its timer token and `E` the events it reports upward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out<P, M, T, E> {
    /// Send `msg` to `to` (the driver opens a connection if none is open).
    Send {
        /// The destination peer.
        to: P,
        /// The message.
        msg: M,
    },
    /// Keep a connection to this peer open: it is now a neighbour whose loss the driver must
    /// report (as `peer_down`). Drivers without connections may ignore it.
    Connect(P),
    /// The core no longer needs a connection to this peer. A hint: the driver may close it
    /// once pending messages are out.
    Disconnect(P),
    /// Call the core back with `timer` after `after`.
    Timer {
        /// Delay from now.
        after: Duration,
        /// The token handed back.
        timer: T,
    },
    /// An event for the layer above.
    Event(E),
}

/// The buffer a core appends to.
pub type Outbox<P, M, T, E> = Vec<Out<P, M, T, E>>;
