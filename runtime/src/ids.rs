//! Identifiers, instants and contacts: the small value types every other module uses.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// 64-bit FNV-1a hash of a string, usable in `const` context.
///
/// Used for [`ServiceId`] and [`KindId`](crate::KindId), so that both sides of a
/// connection derive the same compact id from the same name without a registry.
pub const fn fnv1a(s: &str) -> u64 {
    let bytes = s.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// A node (an OS process on the network, a simulated host in the simulator).
///
/// On the network it is derived from the libp2p `PeerId` by hashing; in the simulator
/// it is the node's index. Compact on purpose: it travels in every envelope.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct NodeId(pub u64);

/// An atom on its node. Allocated by the node's [`Host`](crate::Host) in spawn order,
/// starting at 0 at every (re)boot, so a boot closure that spawns the same atoms in the
/// same order gives them the same, well-known ids.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct AtomId(pub u32);

/// The full address of an atom: its node and its id there.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct AtomAddr {
    /// The node that hosts the atom.
    pub node: NodeId,
    /// The atom on that node.
    pub atom: AtomId,
}

impl AtomAddr {
    /// Builds an address.
    pub const fn new(node: NodeId, atom: AtomId) -> Self {
        AtomAddr { node, atom }
    }
}

/// A service name hashed with [`fnv1a`]: an atom registers a name on its node and others
/// send to `Dest::Service(node, id)`, resolved by the receiving node.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceId(pub u64);

impl ServiceId {
    /// The id of a service name (`const`, so ids can be constants).
    pub const fn of(name: &str) -> Self {
        ServiceId(fnv1a(name))
    }
}

/// Where a message goes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub enum Dest {
    /// A specific atom.
    Atom(AtomAddr),
    /// Whatever atom registered this service on that node (resolved at the receiver;
    /// dropped and counted there if nobody serves it).
    Service(NodeId, ServiceId),
}

impl Dest {
    /// The service called `name` on `node`.
    pub const fn service(node: NodeId, name: &str) -> Self {
        Dest::Service(node, ServiceId::of(name))
    }

    /// The node the destination lives on.
    pub const fn node(&self) -> NodeId {
        match self {
            Dest::Atom(a) => a.node,
            Dest::Service(n, _) => *n,
        }
    }
}

impl From<AtomAddr> for Dest {
    fn from(a: AtomAddr) -> Self {
        Dest::Atom(a)
    }
}

/// An instant on a node's clock, in nanoseconds since an origin.
///
/// In the simulator the origin is the start of the run and each node's clock may be
/// skewed (offset and drift); on the network it is the Unix epoch. Only differences
/// between instants of the same node are meaningful. Intervals are
/// [`std::time::Duration`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Time(pub u64);

impl Time {
    /// The origin.
    pub const ZERO: Time = Time(0);
    /// The latest representable instant.
    pub const MAX: Time = Time(u64::MAX);

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// An instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Time(ms.saturating_mul(1_000_000))
    }
    /// An instant `s` seconds after the origin.
    pub const fn from_secs(s: u64) -> Self {
        Time(s.saturating_mul(1_000_000_000))
    }
    /// The interval since `earlier` (zero if `earlier` is later).
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// Saturating conversion of a duration to nanoseconds.
pub(crate) fn dur_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(dur_nanos(d)))
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub for Time {
    type Output = Duration;
    fn sub(self, rhs: Time) -> Duration {
        self.since(rhs)
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, ns) = (self.0 / 1_000_000_000, self.0 % 1_000_000_000);
        write!(f, "{s}.{ns:09}s")
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A timer set with [`Ctx::after`](crate::Ctx::after) or [`Ctx::every`](crate::Ctx::every).
/// Unique within one incarnation of a node.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct TimerId(pub u64);

/// A pending request in the futures table; carried by the request and its reply.
/// Unique within one incarnation of a node (the counter starts at a random value at each
/// boot so a late reply to a previous incarnation does not match a new request).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct RequestId(pub u64);

/// How to reach a node: its id and transport addresses (multiaddr strings on the
/// network; empty in the simulator, where the id alone suffices).
/// Serializable so membership protocols can gossip contacts.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct Contact {
    /// The node.
    pub node: NodeId,
    /// Its transport addresses, best first.
    pub addrs: Vec<String>,
}

impl Contact {
    /// A contact with no address (enough in the simulator).
    pub fn bare(node: NodeId) -> Self {
        Contact {
            node,
            addrs: Vec::new(),
        }
    }
}

/// A change in transport connectivity with another node, delivered to the atoms that
/// registered [`Ctx::on_peer`](crate::Ctx::on_peer).
///
/// `Up` when a connection is established (either side dialled); `Down` when it closes,
/// including after a detection delay when the peer crashed or got partitioned away.
/// Membership protocols use these as their failure detector.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub enum PeerEvent {
    /// A connection to the node is up.
    Up(NodeId),
    /// The connection to the node is down.
    Down(NodeId),
}

macro_rules! debug_as {
    ($t:ty, $fmt:literal, $($f:tt)+) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, $fmt, self.$($f)+)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}
debug_as!(NodeId, "n{}", 0);
debug_as!(AtomId, "a{}", 0);
debug_as!(ServiceId, "svc#{:016x}", 0);

impl fmt::Debug for AtomAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{:?}", self.node, self.atom)
    }
}

impl fmt::Display for AtomAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
        const S: ServiceId = ServiceId::of("foobar");
        assert_eq!(S.0, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn time_arithmetic_saturates() {
        let t = Time::from_millis(5);
        assert_eq!(t + Duration::from_millis(1), Time::from_millis(6));
        assert_eq!(Time::from_millis(6) - t, Duration::from_millis(1));
        assert_eq!(t - Time::from_millis(6), Duration::ZERO);
        assert_eq!(Time::MAX + Duration::from_secs(1), Time::MAX);
        assert_eq!(format!("{:?}", Time(1_500_000_000)), "1.500000000s");
    }
}
