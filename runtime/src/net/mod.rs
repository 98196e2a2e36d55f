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
//! - [`frame`]: length-delimited frames (4-byte big-endian length) with a size limit, read in
//!   bounded chunks under a deadline and a node-wide byte budget.
//! - [`queue`]: the bounded drop-oldest queue between the executor and each peer's writer.
//! - [`store`]: the durable store, a redb file in the data directory.
//! - [`identity`]: the node key in the data directory, the cluster key file, node ids.
//! - `raw` (feature `test-utils`): a bare libp2p peer speaking rasp's wire protocol, for
//!   tests and tools.
//!
//! # Wire protocol
//!
//! Each node opens one libp2p stream (protocol `/rasp/msg/1`) to each peer it talks to and
//! writes frames on it: a 4-byte big-endian length, then a MessagePack [`Envelope`](crate::Envelope)
//! (`from`, `to`, `kind`, `corr`, payload bytes). The receiver checks the length against
//! [`NetConfig::max_frame_bytes`] before reading the body (which it buffers only as it
//! arrives, within [`NetConfig::frame_timeout`]), decodes, and checks that `from.node` is the
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
//! | buffer of a frame being read | the bytes that arrived, at most [`frame::READ_CHUNK`] read ahead | (grows as bytes arrive; never the announced length up front) |
//! | inbound frame bytes, all peers (being read + waiting for the executor) | [`NetConfig::inbound_buffer_bytes`] | backpressure: the reader waits (yamux stops the sender) while the frame deadline runs |
//! | time to read one frame after its first byte | [`NetConfig::frame_timeout`] | connection closed, counted in [`PeerStats::bad_frames`] |
//! | time of one write (a batch, flushed) or one stream open | [`NetConfig::io_timeout`] | stream dropped, connection closed; the batch is retried once on a new stream, the peer redialled when there is something to send |
//! | inbound streams per peer | [`swarm::MAX_INBOUND_STREAMS_PER_PEER`] | the peer's oldest stream is dropped |
//! | connections | [`NetConfig::max_connections`] | connection closed |
//! | address book | 4096 peers, 8 addresses each | new peer not recorded |
//!
//! A peer unreachable for [`NetConfig::peer_retry_for`] has its queue discarded; the next
//! message to it makes a new queue and writer, which dial it again (so a peer dropped by the
//! failure detector, or paused and resumed, is redialled on the next send).
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
#[cfg(feature = "test-utils")]
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
pub use store::{OpenError, RedbStore};

pub(crate) use swarm::Command;

/// What can go wrong starting or running a network node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The configuration is invalid (the message says which setting and why).
    #[error("configuration: {0}")]
    Config(String),
    /// A file in the data directory could not be read or written.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The libp2p transport could not be built or could not listen.
    #[error("transport: {what}")]
    Transport {
        /// What failed, and why (the causes' text included).
        what: String,
        /// The libp2p or OS error, if there is one.
        source: Option<crate::error::BoxError>,
    },
    /// The durable store failed.
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
    /// The data directory cannot be used as it is: an unreadable node key, a store that is
    /// missing, empty or damaged although the node has run before (see [`Node::start`]).
    /// The message names the file and what to do.
    #[error("{what}")]
    DataDir {
        /// The file, what is wrong with it and what to do.
        what: String,
        /// Why the store could not be opened, if that is the cause.
        source: Option<OpenError>,
    },
}

impl NetError {
    /// Whether the error is the operator's to fix before starting again (a bad setting or
    /// data directory), as opposed to a failure while running. `rasp` exits with code 2 for
    /// these.
    pub fn is_setup(&self) -> bool {
        matches!(self, NetError::Config(_) | NetError::DataDir { .. })
    }

    /// A [`NetError::Transport`]: `what` failed because of `source` (whose text `what`
    /// already holds).
    pub(crate) fn transport(
        what: impl Into<String>,
        source: impl Into<crate::error::BoxError>,
    ) -> Self {
        NetError::Transport {
            what: what.into(),
            source: Some(source.into()),
        }
    }
}

/// An error and its chain of causes as one line (`outer: cause: root cause`).
///
/// libp2p's errors often print nothing themselves and keep the reason in their
/// [`source`](std::error::Error::source) (a listen error's `Display` is empty; the OS error is
/// its source), so every error the network runtime reports goes through this. A cause whose
/// text is already part of the line is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = c.source();
    }
    if line.is_empty() {
        line.push_str("unknown error");
    }
    line
}
