//! The network runtime: one OS process is one node hosting many atoms, connected to other
//! nodes with libp2p (TCP, noise, yamux; optionally a pre-shared cluster key).
//!
//! Map:
//!
//! - [`Node`] starts a node from a [`NetConfig`] and a [`Boot`](crate::Boot) closure, and
//!   stops it; [`Node::call`] runs driver code on the atoms' thread.
//! - `exec`: the atom executor, one dedicated thread (a current-thread tokio runtime) owning
//!   the node's [`Host`](crate::Host); timers on the monotonic clock; local sends move boxed
//!   values through an in-memory FIFO, never serialized.
//! - `swarm`: the network task: the libp2p swarm, address book (fed by identify), peer
//!   up/down events, one reader task per inbound stream and one writer task per peer.
//! - [`frame`]: length-delimited frames (4-byte big-endian length) with a size limit.
//! - [`queue`]: the bounded drop-oldest queue between the executor and each peer's writer.
//! - [`store`]: the durable store, a redb file in the data directory.
//! - [`identity`]: the node key in the data directory, the cluster key file, node ids.
//! - [`raw`]: a bare libp2p peer speaking rasp's wire protocol, for tests and tools.
//!
//! # Wire protocol
//!
//! Each node opens one libp2p stream (protocol `/rasp/msg/1`) to each peer it talks to and
//! writes frames on it: a 4-byte big-endian length, then a MessagePack [`Envelope`](crate::Envelope)
//! (`from`, `to`, `kind`, `corr`, payload bytes). The receiver checks the length against
//! [`NetConfig::max_frame_bytes`] before reading, decodes, and checks that `from.node` is the
//! node id of the authenticated peer. A peer sending an oversized, malformed or spoofed frame
//! has its connection closed (logged as a warning, counted in [`PeerStats::bad_frames`]);
//! the node keeps running.
//!
//! # Bounds
//!
//! | queue | bound | when full |
//! | --- | --- | --- |
//! | per-peer outbound | [`NetConfig::peer_queue_capacity`] messages | drop oldest, count `net.dropped{peer}` ([`PeerStats::dropped`]) |
//! | network → executor | [`NetConfig::inbound_queue_capacity`] events | backpressure: readers stop reading, yamux stops the sender |
//! | executor → network commands | [`NetConfig::command_queue_capacity`] | command dropped, logged |
//! | executor local FIFO | [`exec::LOCAL_QUEUE_CAPACITY`] | message dropped, count `net.local_dropped` |
//! | one frame | [`NetConfig::max_frame_bytes`] | connection closed |
//! | inbound streams per peer | [`swarm::MAX_INBOUND_STREAMS_PER_PEER`] | stream refused |
//! | connections | [`NetConfig::max_connections`] | connection closed |
//! | address book | 4096 peers, 8 addresses each | new peer not recorded |
//!
//! A peer unreachable for [`NetConfig::peer_retry_for`] has its queue discarded.
//!
//! # Cluster key
//!
//! With [`NetConfig::psk_file`] set, every connection first runs the libp2p private-network
//! handshake (pnet: XSalsa20 keyed with a 256-bit pre-shared key) under noise. A node without
//! the same key cannot complete a connection. The file has the standard format:
//!
//! ```text
//! /key/swarm/psk/1.0.0/
//! /base16/
//! 6f9d...  (64 hex digits)
//! ```
//!
//! [`identity::generate_psk_file_text`] makes one (`rasp gen-psk` prints it).
//!
//! # Peer events
//!
//! The first connection to a peer delivers [`PeerEvent::Up`](crate::PeerEvent::Up) to the
//! atoms, the close of the last one [`PeerEvent::Down`](crate::PeerEvent::Down). Pings every
//! [`NetConfig::ping_interval`] close a connection that stops answering, so a crashed or
//! partitioned peer goes down within [`NetConfig::ping_timeout`] plus an interval.

mod config;
pub mod exec;
pub mod frame;
pub mod identity;
mod node;
pub mod queue;
pub mod raw;
mod shared;
pub mod store;
pub mod swarm;
pub mod transport;

pub use config::NetConfig;
pub use libp2p::pnet::PreSharedKey;
pub use libp2p::{Multiaddr, PeerId};
pub use node::{Node, NodeHandle, QueueDepths};
pub use shared::{NetStats, PeerStats};
pub use store::RedbStore;

pub(crate) use swarm::Command;

/// What can go wrong starting or running a network node.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The configuration is invalid (the message says which setting and why).
    #[error("configuration: {0}")]
    Config(String),
    /// A file in the data directory could not be read or written.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The libp2p transport could not be built or could not listen.
    #[error("transport: {0}")]
    Transport(String),
    /// The durable store failed.
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}
