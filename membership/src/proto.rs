//! What every sans-IO protocol core shares: its outputs, the notion of time, the peer bound.
//!
//! A core never touches a socket, a clock or an ambient RNG. The driver (the membership atom
//! on the runtime, or a test harness) calls it with an input, the current time `now` and an
//! RNG, and the core appends [`Out`] values to a buffer the driver then executes: send these
//! messages, set these timers, open or close these connections, tell the layer above.
//!
//! [`Core`] is the shape every core shares (HyParView, full and client-server membership,
//! Plumtree, fanout gossip, and the [`PeerService`](crate::PeerService) composing them):
//! drivers that only deliver messages, fire timers and report lost connections are written
//! once over it.

use rand::Rng;
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

/// The kind [`Core::kind`] gives to messages that carry a broadcast payload (Plumtree's
/// GOSSIP, fanout gossip's push): the messages counted for the relative message redundancy
/// (RMR), one of the evaluation metrics of Leitão, Pereira, Rodrigues, "Epidemic Broadcast
/// Trees", SRDS 2007.
pub const PAYLOAD: &str = "payload";

/// A sans-IO protocol core over peers `P`: what its driver feeds it and what it writes back.
///
/// Each call gets the current time and the RNG (the core keeps neither) and appends to `out`
/// what the driver must do ([`Out`]). Joining, leaving, broadcasting and reading views differ
/// between protocols and stay inherent methods of each core.
///
/// Who drives it through this trait:
///
/// - the membership atom ([`MembershipAtom`](crate::MembershipAtom)) hands its
///   [`PeerService`](crate::PeerService) every protocol message from another node
///   ([`Core::on_message`]), every timer it set ([`Core::on_timer`], as a runtime
///   continuation) and every lost connection the runtime reports ([`Core::peer_down`]); it
///   counts the payload messages it sends with [`Core::kind`] (== [`PAYLOAD`]);
/// - the [`PeerService`](crate::PeerService) dispatches messages and timers to its membership
///   and broadcast cores the same way, and a lost connection to its membership core;
/// - the crate's lean test harness (`testkit::Sim`) runs any core: it delivers messages after
///   a latency, fires timers, reports `peer_down` for a crashed peer or a failed send, and
///   counts sent messages by [`Core::kind`].
pub trait Core<P: Peer> {
    /// The wire message between two nodes running this core.
    type Message;
    /// The timer token handed back by [`Core::on_timer`].
    type Timer;
    /// What the core reports to the layer above.
    type Event;

    /// A message from `from` arrived.
    fn on_message<R: Rng + ?Sized>(
        &mut self,
        from: P,
        msg: Self::Message,
        now: Time,
        rng: &mut R,
        out: &mut Outbox<P, Self::Message, Self::Timer, Self::Event>,
    );

    /// A timer set earlier (an [`Out::Timer`]) fired.
    fn on_timer<R: Rng + ?Sized>(
        &mut self,
        timer: Self::Timer,
        now: Time,
        rng: &mut R,
        out: &mut Outbox<P, Self::Message, Self::Timer, Self::Event>,
    );

    /// The driver lost the connection to `peer`, or could not open it: the failure detector.
    fn peer_down<R: Rng + ?Sized>(
        &mut self,
        peer: &P,
        now: Time,
        rng: &mut R,
        out: &mut Outbox<P, Self::Message, Self::Timer, Self::Event>,
    );

    /// A short name of the message's kind, for message counts ([`PAYLOAD`] for the ones
    /// carrying a broadcast payload).
    fn kind(msg: &Self::Message) -> &'static str;
}
