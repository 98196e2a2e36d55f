//! [`NetConfig`]: every knob of the network runtime, with defaults and where they came from.

use super::NetError;
use libp2p::Multiaddr;
use std::path::PathBuf;
use std::time::Duration;

/// Configuration of one network node. Plain data with [`Default`]; checked once by
/// [`NetConfig::validate`] (called by [`super::Node::start`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Addresses to listen on. Default `/ip4/0.0.0.0/tcp/0`: every interface, a port the OS
    /// picks (printed at start), so a node starts with no flags and never collides.
    pub listen: Vec<Multiaddr>,
    /// Directory holding the node key (`node.key`) and the store (`store.redb`); created if
    /// missing. Default `./rasp-data`.
    pub data_dir: PathBuf,
    /// Addresses dialled at start (contacts / seeds). Default none.
    pub join: Vec<Multiaddr>,
    /// Path of a pre-shared cluster key (libp2p pnet, `/key/swarm/psk/1.0.0/` format). When
    /// set, the node only talks to nodes holding the same key. Default none (open cluster).
    pub psk_file: Option<PathBuf>,
    /// Largest accepted frame (one encoded message), in bytes. A peer sending a larger one is
    /// disconnected. Default 4 MiB: far above any gossip message rasp sends, small enough that
    /// a hostile peer cannot make us buffer much.
    pub max_frame_bytes: usize,
    /// Messages queued per remote peer before the oldest is dropped (counted as
    /// `net.dropped`). Default 1024: at 1 KiB messages, at most 1 MiB per peer.
    pub peer_queue_capacity: usize,
    /// Events (remote messages, peer up/down) queued from the network to the atom executor.
    /// When full, stream readers stop reading (backpressure through yamux flow control to the
    /// sender). Default 4096.
    pub inbound_queue_capacity: usize,
    /// Commands queued from the executor to the network task (dial, contact). When full a
    /// command is dropped with a warning. Default 1024.
    pub command_queue_capacity: usize,
    /// Ping interval on every connection. Default 2 s (libp2p's default is 15 s; rasp uses
    /// connections as its failure detector and wants to notice dead peers within seconds).
    pub ping_interval: Duration,
    /// A ping unanswered for this long closes the connection (peer down). Default 6 s.
    pub ping_timeout: Duration,
    /// A connection with no open stream is closed after this long. Default 60 s.
    pub idle_connection_timeout: Duration,
    /// Most simultaneous connections; further ones are closed on arrival. Default 1024.
    pub max_connections: usize,
    /// How long a peer's writer keeps retrying to reach an unreachable peer before giving up
    /// and dropping its queue. Default 30 s.
    pub peer_retry_for: Duration,
    /// Start with a fresh, empty store when the node has run before (its `node.key` exists)
    /// but its store file is missing, empty or damaged; the bad file is first moved aside to
    /// `store.redb.lost-<n>`. Without it such a node refuses to start, since its durable
    /// state is gone. No effect on a healthy store. Default `false`.
    pub reset_store: bool,
    /// Once the first byte of an inbound frame arrived, the whole frame must arrive within
    /// this, else the peer's connection is closed. Default 20 s: a full 4 MiB frame at
    /// 1.7 Mbit/s; a peer announcing a frame and going silent holds its stream no longer.
    pub frame_timeout: Duration,
    /// Most inbound frame bytes buffered at once across all peers: frames being read plus
    /// frames waiting for the executor. A reader that would exceed it waits (backpressure:
    /// it stops reading and yamux flow control stops the sender) while its frame deadline
    /// ([`NetConfig::frame_timeout`]) runs. Default 64 MiB (16 frames of the maximal size);
    /// at least [`NetConfig::max_frame_bytes`].
    pub inbound_buffer_bytes: usize,
    /// Deadline of every network write (one batch of frames, flushed) and of opening a
    /// stream. A writer that misses it drops its stream and connection; the peer is
    /// redialled when there is something to send. Default 10 s (above the ping timeout's
    /// 6 s, so a merely slow peer is detected by pings first).
    pub io_timeout: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr")],
            data_dir: PathBuf::from("./rasp-data"),
            join: Vec::new(),
            psk_file: None,
            max_frame_bytes: 4 * 1024 * 1024,
            peer_queue_capacity: 1024,
            inbound_queue_capacity: 4096,
            command_queue_capacity: 1024,
            ping_interval: Duration::from_secs(2),
            ping_timeout: Duration::from_secs(6),
            idle_connection_timeout: Duration::from_secs(60),
            max_connections: 1024,
            peer_retry_for: Duration::from_secs(30),
            reset_store: false,
            frame_timeout: Duration::from_secs(20),
            inbound_buffer_bytes: 64 * 1024 * 1024,
            io_timeout: Duration::from_secs(10),
        }
    }
}

impl NetConfig {
    /// Checks the configuration without touching the network: non-empty listen list, sane
    /// sizes, a readable and well-formed cluster key file.
    pub fn validate(&self) -> Result<(), NetError> {
        if self.listen.is_empty() {
            return Err(NetError::Config(
                "at least one listen address is needed".into(),
            ));
        }
        if self.max_frame_bytes < 64 || self.max_frame_bytes > u32::MAX as usize {
            return Err(NetError::Config(format!(
                "max_frame_bytes must be between 64 and {}, got {}",
                u32::MAX,
                self.max_frame_bytes
            )));
        }
        for (name, v) in [
            ("peer_queue_capacity", self.peer_queue_capacity),
            ("inbound_queue_capacity", self.inbound_queue_capacity),
            ("command_queue_capacity", self.command_queue_capacity),
            ("max_connections", self.max_connections),
        ] {
            if v == 0 {
                return Err(NetError::Config(format!("{name} must be at least 1")));
            }
        }
        if self.inbound_buffer_bytes < self.max_frame_bytes {
            return Err(NetError::Config(format!(
                "inbound_buffer_bytes ({}) must be at least max_frame_bytes ({})",
                self.inbound_buffer_bytes, self.max_frame_bytes
            )));
        }
        if self.frame_timeout.is_zero() || self.io_timeout.is_zero() {
            return Err(NetError::Config(
                "frame_timeout and io_timeout must be positive".into(),
            ));
        }
        if self.ping_interval.is_zero() || self.ping_timeout.is_zero() {
            return Err(NetError::Config(
                "ping interval and timeout must be positive".into(),
            ));
        }
        if let Some(p) = &self.psk_file {
            super::identity::load_psk(p)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        NetConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_rejected_with_a_reason() {
        let c = NetConfig {
            listen: vec![],
            ..NetConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("listen"));
        let c = NetConfig {
            psk_file: Some("/nonexistent/rasp.psk".into()),
            ..NetConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cluster key"));
        let c = NetConfig {
            inbound_buffer_bytes: 1024,
            ..NetConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("inbound_buffer_bytes"));
        let c = NetConfig {
            io_timeout: Duration::ZERO,
            ..NetConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("io_timeout"));
    }
}
