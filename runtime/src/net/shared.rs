//! State shared between the swarm task, the peer tasks and the atom executor: the address
//! book, the per-peer outbound queues and the counters. Every map here is bounded.

use super::identity::node_id_bits;
use super::queue::DropOldest;
use crate::ids::{Contact, NodeId};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

/// Most peers the address book holds; a new peer beyond it is not recorded (it can still
/// connect, and is recorded once an entry frees up). Bounds the book's memory.
pub(crate) const ADDRESS_BOOK_CAPACITY: usize = 4096;
/// Most addresses kept per peer (newest first).
pub(crate) const ADDRS_PER_PEER: usize = 8;

/// Traffic counters of one peer, as seen by this node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerStats {
    /// Frames written to the peer.
    pub frames_sent: u64,
    /// Payload bytes written to the peer (frame headers excluded).
    pub bytes_sent: u64,
    /// Frames read from the peer and handed to the executor.
    pub frames_received: u64,
    /// Payload bytes read from the peer.
    pub bytes_received: u64,
    /// Outbound messages dropped: evicted from the full queue (drop-oldest), lost with a
    /// broken stream, or discarded when the peer stayed unreachable (`net.dropped{peer}`).
    pub dropped: u64,
    /// Malformed, oversized or spoofed frames received (each closed the connection).
    pub bad_frames: u64,
}

/// A snapshot of the node's network counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetStats {
    /// Per-peer counters, by node id.
    pub peers: BTreeMap<NodeId, PeerStats>,
    /// Messages to nodes with no known address (dropped).
    pub unreachable: u64,
}

impl NetStats {
    /// Counters summed over all peers.
    pub fn total(&self) -> PeerStats {
        let mut t = PeerStats::default();
        for p in self.peers.values() {
            t.frames_sent += p.frames_sent;
            t.bytes_sent += p.bytes_sent;
            t.frames_received += p.frames_received;
            t.bytes_received += p.bytes_received;
            t.dropped += p.dropped;
            t.bad_frames += p.bad_frames;
        }
        t
    }
}

/// An address-book entry.
#[derive(Clone, Debug)]
pub(crate) struct BookEntry {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

pub(crate) type OutQueue = Arc<DropOldest<Vec<u8>>>;

/// The shared state. Locks are held only for short map operations, never across `.await`.
pub(crate) struct Shared {
    pub me: NodeId,
    pub peer_id: PeerId,
    book: RwLock<BTreeMap<NodeId, BookEntry>>,
    listen: RwLock<Vec<Multiaddr>>,
    queues: Mutex<HashMap<NodeId, OutQueue>>,
    stats: Mutex<NetStats>,
}

/// The node id of a libp2p peer.
pub(crate) fn node_of(peer: &PeerId) -> NodeId {
    NodeId(node_id_bits(peer))
}

/// Strips a trailing `/p2p/<peer>` and returns it.
pub(crate) fn split_p2p(addr: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut a = addr.clone();
    match a.pop() {
        Some(Protocol::P2p(p)) => (a, Some(p)),
        Some(other) => {
            a.push(other);
            (a, None)
        }
        None => (a, None),
    }
}

impl Shared {
    pub fn new(peer_id: PeerId) -> Self {
        Shared {
            me: node_of(&peer_id),
            peer_id,
            book: RwLock::new(BTreeMap::new()),
            listen: RwLock::new(Vec::new()),
            queues: Mutex::new(HashMap::new()),
            stats: Mutex::new(NetStats::default()),
        }
    }

    /// Records `peer` (and `addrs`, transport part only) in the book. Returns its node id,
    /// or `None` if its id collides with another peer's or the book is full.
    pub fn learn(
        &self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
    ) -> Option<NodeId> {
        let node = node_of(&peer);
        if node == self.me {
            return None;
        }
        let mut book = self.book.write().expect("book lock");
        if !book.contains_key(&node) && book.len() >= ADDRESS_BOOK_CAPACITY {
            tracing::warn!(%peer, "address book full ({ADDRESS_BOOK_CAPACITY} peers): not recording");
            return None;
        }
        let e = book.entry(node).or_insert_with(|| BookEntry {
            peer,
            addrs: Vec::new(),
        });
        if e.peer != peer {
            tracing::error!(%peer, other = %e.peer, ?node, "node id collision: ignoring peer");
            return None;
        }
        for a in addrs {
            let (a, _) = split_p2p(&a);
            if a.is_empty() {
                continue;
            }
            e.addrs.retain(|x| *x != a);
            e.addrs.insert(0, a);
            e.addrs.truncate(ADDRS_PER_PEER);
        }
        Some(node)
    }

    /// The peer and addresses of `node`, if known.
    pub fn lookup(&self, node: NodeId) -> Option<BookEntry> {
        self.book.read().expect("book lock").get(&node).cloned()
    }

    /// The contact of `node`: addresses with `/p2p/<peer>` appended.
    pub fn contact(&self, node: NodeId) -> Option<Contact> {
        let e = self.lookup(node)?;
        Some(Contact {
            node,
            addrs: e
                .addrs
                .iter()
                .map(|a| with_p2p(a, e.peer).to_string())
                .collect(),
        })
    }

    /// Sets / adds a listen address.
    pub fn add_listen(&self, a: Multiaddr) {
        let mut l = self.listen.write().expect("listen lock");
        if !l.contains(&a) {
            l.push(a);
        }
    }

    /// Removes an expired listen address.
    pub fn remove_listen(&self, a: &Multiaddr) {
        self.listen.write().expect("listen lock").retain(|x| x != a);
    }

    /// Current listen addresses (without `/p2p`).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen.read().expect("listen lock").clone()
    }

    /// This node's contact.
    pub fn my_contact(&self) -> Contact {
        Contact {
            node: self.me,
            addrs: self
                .listen_addrs()
                .iter()
                .map(|a| with_p2p(a, self.peer_id).to_string())
                .collect(),
        }
    }

    /// The outbound queue of `node`, if one exists.
    pub fn queue(&self, node: NodeId) -> Option<OutQueue> {
        self.queues.lock().expect("queues lock").get(&node).cloned()
    }

    /// The outbound queue of `node`, created if missing; `true` if it was created. Only for
    /// nodes in the address book, so the map is bounded by the book.
    pub fn queue_or_create(&self, node: NodeId, capacity: usize) -> (OutQueue, bool) {
        let mut q = self.queues.lock().expect("queues lock");
        if let Some(existing) = q.get(&node) {
            return (existing.clone(), false);
        }
        let new = Arc::new(DropOldest::new(capacity));
        q.insert(node, new.clone());
        (new, true)
    }

    /// Removes `node`'s queue if it is `queue` (a writer giving up), closing it.
    pub fn remove_queue(&self, node: NodeId, queue: &OutQueue) {
        let mut q = self.queues.lock().expect("queues lock");
        if q.get(&node).is_some_and(|x| Arc::ptr_eq(x, queue)) {
            q.remove(&node);
        }
        drop(q);
        queue.close();
        let n = queue.clear();
        self.peer_stats(node, |s| s.dropped += n as u64);
    }

    /// Updates the counters of `node` (only for nodes in the book, keeping the map bounded).
    pub fn peer_stats(&self, node: NodeId, f: impl FnOnce(&mut PeerStats)) {
        if !self.book.read().expect("book lock").contains_key(&node) {
            return;
        }
        f(self
            .stats
            .lock()
            .expect("stats lock")
            .peers
            .entry(node)
            .or_default())
    }

    /// Queued outbound messages: (sum over peers, longest queue, number of queues).
    pub fn queue_lengths(&self) -> (usize, usize, usize) {
        let q = self.queues.lock().expect("queues lock");
        let lens: Vec<usize> = q.values().map(|x| x.len()).collect();
        (
            lens.iter().sum(),
            lens.iter().copied().max().unwrap_or(0),
            lens.len(),
        )
    }

    /// Counts a message to a node with no known address.
    pub fn count_unreachable(&self) {
        self.stats.lock().expect("stats lock").unreachable += 1;
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> NetStats {
        self.stats.lock().expect("stats lock").clone()
    }
}

/// `addr/p2p/peer`.
pub(crate) fn with_p2p(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    addr.clone().with(Protocol::P2p(peer))
}
