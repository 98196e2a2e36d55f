//! A bare libp2p peer speaking rasp's wire protocol, without an executor: it can connect to
//! nodes, write arbitrary bytes on a message stream (valid frames or garbage) and collect the
//! frames nodes send it. For tests (bad frames, cluster keys) and tools.

use super::frame::read_frame;
use super::shared::node_of;
use super::transport::{build_swarm, MSG_PROTOCOL};
use super::{NetConfig, NetError};
use crate::ids::NodeId;
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::pnet::PreSharedKey;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Stream};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Something that happened to a [`RawPeer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    /// A connection to the peer is established.
    Connected(PeerId),
    /// The last connection to the peer closed.
    Closed(PeerId),
    /// A dial failed.
    DialFailed(String),
    /// A frame (its payload) arrived from the peer on a message stream.
    Frame(PeerId, Vec<u8>),
}

/// A bare peer: a swarm driven by a background task (closed on drop).
pub struct RawPeer {
    peer_id: PeerId,
    control: libp2p_stream::Control,
    cmds: mpsc::Sender<Multiaddr>,
    events: mpsc::Receiver<RawEvent>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RawPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPeer")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawPeer {
    /// A fresh peer with a random key (and the cluster key, if given). Needs a tokio runtime.
    pub fn new(psk: Option<PreSharedKey>) -> Result<Self, NetError> {
        Self::build(psk, true)
    }

    /// Like [`RawPeer::new`], but a peer that accepts message streams and never reads them:
    /// a stuck or hostile receiver, for testing the sender's bounds.
    pub fn new_stuck(psk: Option<PreSharedKey>) -> Result<Self, NetError> {
        Self::build(psk, false)
    }

    fn build(psk: Option<PreSharedKey>, read: bool) -> Result<Self, NetError> {
        let key = Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id();
        let mut swarm = build_swarm(key, psk, &NetConfig::default())?;
        let mut control = swarm.behaviour().stream.new_control();
        let mut incoming = control
            .accept(MSG_PROTOCOL)
            .expect("protocol registered once");
        let (cmds, mut cmd_rx) = mpsc::channel::<Multiaddr>(16);
        let (ev_tx, events) = mpsc::channel(1024);
        let task = tokio::spawn(async move {
            let mut stuck = Vec::new();
            loop {
                tokio::select! {
                    ev = swarm.select_next_some() => {
                        let out = match ev {
                            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. }
                                if num_established.get() == 1 => Some(RawEvent::Connected(peer_id)),
                            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } =>
                                Some(RawEvent::Closed(peer_id)),
                            SwarmEvent::OutgoingConnectionError { error, .. } =>
                                Some(RawEvent::DialFailed(error.to_string())),
                            _ => None,
                        };
                        if let Some(out) = out {
                            // Events beyond the channel's bound are dropped (tests read them).
                            let _ = ev_tx.try_send(out);
                        }
                    }
                    Some(addr) = cmd_rx.recv() => {
                        if let Err(e) = swarm.dial(addr) {
                            let _ = ev_tx.try_send(RawEvent::DialFailed(e.to_string()));
                        }
                    }
                    Some((peer, mut stream)) = incoming.next() => {
                        if !read {
                            stuck.push(stream);
                            continue;
                        }
                        let tx = ev_tx.clone();
                        tokio::spawn(async move {
                            let mut buf = Vec::new();
                            while let Ok(true) = read_frame(&mut stream, &mut buf, 64 << 20).await {
                                if tx.send(RawEvent::Frame(peer, buf.clone())).await.is_err() {
                                    break;
                                }
                            }
                        });
                    }
                }
            }
        });
        Ok(RawPeer {
            peer_id,
            control,
            cmds,
            events,
            task,
        })
    }

    /// This peer's libp2p id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This peer's rasp node id.
    pub fn node_id(&self) -> NodeId {
        node_of(&self.peer_id)
    }

    /// The next event, or `None` after `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<RawEvent> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Dials `addr` and waits up to `timeout` for the connection. Returns the remote peer
    /// id, or why it failed. Frames that arrive meanwhile are discarded.
    pub async fn connect(&mut self, addr: Multiaddr, timeout: Duration) -> Result<PeerId, String> {
        self.cmds
            .send(addr)
            .await
            .map_err(|_| "raw peer stopped".to_string())?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Some(RawEvent::Connected(p)) => return Ok(p),
                Some(RawEvent::DialFailed(e)) => return Err(e),
                Some(_) => {}
                None => return Err("timed out".into()),
            }
        }
    }

    /// Opens a message stream to `peer` (connected or known). Write anything on it.
    pub async fn open(&mut self, peer: PeerId) -> Result<Stream, String> {
        self.control
            .open_stream(peer, MSG_PROTOCOL)
            .await
            .map_err(|e| e.to_string())
    }
}
