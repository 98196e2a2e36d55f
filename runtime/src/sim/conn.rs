//! The simulator's TCP-like connection model.
//!
//! - **Connect**: sending to a node, or [`Platform::connect`](crate::Platform::connect),
//!   connects implicitly. A connection takes a round trip (two latencies drawn from the
//!   [`NetModel`](super::NetModel); zero in controlled mode, where the explorer orders the
//!   connection itself), then opens if both ends are up and neither direction is partitioned,
//!   and fails otherwise (`sim.connect_failed`). Loss never fails it: TCP retransmits. Both
//!   ends get [`PeerEvent::Up`]; a peer that still held a connection from the connecting
//!   node's previous incarnation gets [`PeerEvent::Down`] for it first.
//! - **Failure detection**: a crash, or a partition across an open connection, is noticed
//!   after [`SimConfig::failure_detection`](super::SimConfig::failure_detection) by a link
//!   check at each surviving end; a connection still broken then is removed at both ends,
//!   each getting [`PeerEvent::Down`].
//! - **Disconnect** ([`Platform::disconnect`](crate::Platform::disconnect)): the closing end
//!   drops the connection and gets [`PeerEvent::Down`] now; the other end learns of it one
//!   latency later.
//!
//! Every connection has an id, so a note about an old connection (one closed and reopened
//! meanwhile) changes nothing. The events of the model (`ConnOpen`, `LinkCheck`,
//! `CloseNote`) are queued and hashed like every other event.

use super::{Core, EvKind, Sim};
use crate::ids::{NodeId, PeerEvent};
use std::time::Duration;

/// One node's connections.
#[derive(Default)]
pub(super) struct Conns {
    /// Open connections (peer, connection id), sorted by peer.
    pub(super) open: Vec<(NodeId, u64)>,
    /// Peers being connected to.
    pub(super) connecting: Vec<NodeId>,
}

impl Conns {
    /// The id of the open connection to `peer`.
    fn get(&self, peer: NodeId) -> Option<u64> {
        self.open
            .binary_search_by_key(&peer, |x| x.0)
            .ok()
            .map(|i| self.open[i].1)
    }

    /// Records connection `conn` to `peer`; returns the id of the one it replaces.
    fn insert(&mut self, peer: NodeId, conn: u64) -> Option<u64> {
        match self.open.binary_search_by_key(&peer, |x| x.0) {
            Ok(i) => Some(std::mem::replace(&mut self.open[i].1, conn)),
            Err(i) => {
                self.open.insert(i, (peer, conn));
                None
            }
        }
    }

    /// Removes connection `conn` to `peer`; whether it was open.
    fn remove(&mut self, peer: NodeId, conn: u64) -> bool {
        match self.open.binary_search_by_key(&peer, |x| x.0) {
            Ok(i) if self.open[i].1 == conn => {
                self.open.remove(i);
                true
            }
            _ => false,
        }
    }

    /// The peers with an open connection, in id order.
    pub(super) fn peers(&self) -> Vec<NodeId> {
        self.open.iter().map(|c| c.0).collect()
    }
}

impl Core {
    /// The id of `a`'s open connection to `b`.
    pub(super) fn connected_to(&self, a: u32, b: NodeId) -> Option<u64> {
        self.meta[a as usize].conns.get(b)
    }

    /// Starts connecting `a` to `b` unless they are connected or connecting already.
    pub(super) fn ensure_connection(&mut self, a: u32, b: u32) {
        let c = &self.meta[a as usize].conns;
        let bid = NodeId(b as u64);
        if a == b || c.get(bid).is_some() || c.connecting.contains(&bid) {
            return;
        }
        self.meta[a as usize].conns.connecting.push(bid);
        let (na, nb) = (NodeId(a as u64), bid);
        let rtt = if self.control.is_some() {
            Duration::ZERO // the explorer orders the connection itself
        } else {
            self.net.latency(na, nb, &mut self.rng) + self.net.latency(nb, na, &mut self.rng)
        };
        let a_inc = self.meta[a as usize].inc;
        self.push(self.now + rtt, EvKind::ConnOpen { a, b, a_inc });
    }

    /// `node` closes its connection to `peer` (if it has one): it learns now, the peer one
    /// latency later.
    pub(super) fn disconnect(&mut self, node: u32, peer: NodeId) {
        let Some(b) = self.index(peer) else {
            return;
        };
        let Some(conn) = self.connected_to(node, peer) else {
            return;
        };
        let me = NodeId(node as u64);
        self.meta[node as usize].conns.remove(peer, conn);
        let (now, inc) = (self.now, self.meta[node as usize].inc);
        self.push(
            now,
            EvKind::PeerNote {
                node,
                inc,
                ev: PeerEvent::Down(peer),
            },
        );
        let d = if self.control.is_some() {
            Duration::ZERO
        } else {
            self.net.latency(me, peer, &mut self.rng)
        };
        self.push(
            now + d,
            EvKind::CloseNote {
                node: b,
                peer: node,
                conn,
            },
        );
    }

    /// Node `i` crashed: it forgets its connections; each peer checks its link after the
    /// detection delay.
    pub(super) fn crash_connections(&mut self, i: u32) {
        let c = &mut self.meta[i as usize].conns;
        c.connecting.clear();
        let open = std::mem::take(&mut c.open);
        let at = self.now + self.cfg.failure_detection;
        for (peer, conn) in open {
            self.push(
                at,
                EvKind::LinkCheck {
                    node: peer.0 as u32,
                    peer: i,
                    conn,
                },
            );
        }
    }

    /// A partition started: both ends of every connection across it check their link after
    /// the detection delay (it may be healed by then).
    pub(super) fn check_links_across_partitions(&mut self) {
        let at = self.now + self.cfg.failure_detection;
        let mut checks = Vec::new();
        for (i, m) in self.meta.iter().enumerate() {
            let me = NodeId(i as u64);
            for &(peer, conn) in &m.conns.open {
                if self.blocked(me, peer) || self.blocked(peer, me) {
                    checks.push(EvKind::LinkCheck {
                        node: i as u32,
                        peer: peer.0 as u32,
                        conn,
                    });
                }
            }
        }
        for c in checks {
            self.push(at, c);
        }
    }
}

impl Sim {
    /// `a`'s connection attempt to `b` (made in incarnation `a_inc`) completes its round trip.
    pub(super) fn conn_open(&mut self, a: u32, b: u32, a_inc: u32) {
        let bid = NodeId(b as u64);
        let aid = NodeId(a as u64);
        self.core.meta[a as usize]
            .conns
            .connecting
            .retain(|n| *n != bid);
        let ok = self.core.alive(a, a_inc)
            && self.core.meta[b as usize].up
            && !self.core.blocked(aid, bid)
            && !self.core.blocked(bid, aid);
        if !ok {
            self.core.count("sim.connect_failed");
            return;
        }
        if self.core.connected_to(a, bid).is_some() {
            return; // the other side connected first
        }
        self.core.next_conn += 1;
        let conn = self.core.next_conn;
        self.core.meta[a as usize].conns.insert(bid, conn);
        let stale = self.core.meta[b as usize].conns.insert(aid, conn);
        self.peer_event(a, PeerEvent::Up(bid));
        if stale.is_some() {
            // `b` still had a connection from `a`'s previous incarnation.
            self.peer_event(b, PeerEvent::Down(aid));
        }
        self.peer_event(b, PeerEvent::Up(aid));
    }

    /// `node` checks its connection `conn` to `peer`: if the peer is down, no longer holds
    /// it, or a partition cuts it, both ends drop it.
    pub(super) fn link_check(&mut self, node: u32, peer: u32, conn: u64) {
        let (nid, pid) = (NodeId(node as u64), NodeId(peer as u64));
        if self.core.connected_to(node, pid) != Some(conn) {
            return;
        }
        let broken = !self.core.meta[peer as usize].up
            || self.core.connected_to(peer, nid) != Some(conn)
            || self.core.blocked(nid, pid)
            || self.core.blocked(pid, nid);
        if broken {
            self.core.meta[node as usize].conns.remove(pid, conn);
            self.peer_event(node, PeerEvent::Down(pid));
            if self.core.meta[peer as usize].conns.remove(nid, conn) {
                self.peer_event(peer, PeerEvent::Down(nid));
            }
        }
    }

    /// `node` learns that `peer` closed connection `conn`.
    pub(super) fn close_note(&mut self, node: u32, peer: u32, conn: u64) {
        let pid = NodeId(peer as u64);
        if self.core.meta[node as usize].conns.remove(pid, conn) {
            self.peer_event(node, PeerEvent::Down(pid));
        }
    }
}
