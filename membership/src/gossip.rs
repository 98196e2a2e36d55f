//! Plain fanout gossip ("infect and die"), sans-IO: a node that receives a message for the
//! first time delivers it and pushes it to [`Config::fanout`] random neighbours (all of them
//! if it has fewer) while it has hops left ([`Config::ttl`]). The baseline Plumtree is measured
//! against: simpler, no tree state, more redundant messages.
//!
//! Duplicate suppression keeps the last [`Config::seen_capacity`] ids (drop-oldest).

use crate::plumtree::MsgId;
use crate::proto::{Core, Out, Outbox, Peer, Time, PAYLOAD};
use rand::seq::IndexedRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};

/// Parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Neighbours each node pushes a new message to.
    pub fanout: usize,
    /// Hops a message may travel.
    pub ttl: u32,
    /// Ids remembered for duplicate suppression.
    pub seen_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            // Our choice: ln(1,000) ≈ 7, the classic fanout for atomic infection at 1,000 nodes
            // (Kermarrec, Massoulié, Ganesh: fanout ln(n) + c).
            fanout: 7,
            // Our choice: well above log_f(n) hops for the sizes we test.
            ttl: 16,
            // As Plumtree's seen set.
            seen_capacity: 65536,
        }
    }
}

/// Wire messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<P, B> {
    /// A pushed message.
    Push {
        /// Its id.
        id: MsgId<P>,
        /// The payload.
        payload: B,
        /// Hops travelled when it arrives.
        round: u32,
    },
}

/// Gossip needs no timers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timer {}

/// Deliveries are reported like Plumtree's.
pub use crate::plumtree::Event;

/// The buffer this core appends to.
pub type GossipOutbox<P, B> = Outbox<P, Message<P, B>, Timer, Event<P, B>>;

/// Fanout gossip state of one node.
#[derive(Clone, Debug)]
pub struct Gossip<P, B> {
    me: P,
    config: Config,
    neighbours: Vec<P>,
    next_seq: u64,
    seen: BTreeSet<MsgId<P>>,
    seen_order: VecDeque<MsgId<P>>,
    _payload: std::marker::PhantomData<fn() -> B>,
}

impl<P: Peer, B: Clone> Gossip<P, B> {
    /// A node with no neighbours yet.
    pub fn new(me: P, config: Config) -> Self {
        Gossip {
            me,
            config,
            neighbours: Vec::new(),
            next_seq: 0,
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            _payload: std::marker::PhantomData,
        }
    }

    /// A neighbour appeared.
    pub fn neighbour_up(&mut self, peer: P) {
        if peer != self.me && !self.neighbours.contains(&peer) {
            self.neighbours.push(peer);
        }
    }

    /// A neighbour is gone.
    pub fn neighbour_down(&mut self, peer: &P) {
        self.neighbours.retain(|p| p != peer);
    }

    /// Broadcasts `payload`; returns its id.
    pub fn broadcast<R: Rng + ?Sized>(
        &mut self,
        payload: B,
        rng: &mut R,
        out: &mut GossipOutbox<P, B>,
    ) -> MsgId<P> {
        let id = MsgId {
            origin: self.me.clone(),
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.remember(id.clone());
        self.push(&id, &payload, 1, None, rng, out);
        id
    }

    fn push<R: Rng + ?Sized>(
        &mut self,
        id: &MsgId<P>,
        payload: &B,
        round: u32,
        except: Option<&P>,
        rng: &mut R,
        out: &mut GossipOutbox<P, B>,
    ) {
        let candidates: Vec<&P> = self
            .neighbours
            .iter()
            .filter(|p| Some(*p) != except)
            .collect();
        for p in candidates.choose_multiple(rng, self.config.fanout) {
            out.push(Out::Send {
                to: (*p).clone(),
                msg: Message::Push {
                    id: id.clone(),
                    payload: payload.clone(),
                    round,
                },
            });
        }
    }

    fn remember(&mut self, id: MsgId<P>) {
        if self.seen.len() >= self.config.seen_capacity {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id.clone());
        self.seen_order.push_back(id);
    }
}

impl<P: Peer, B: Clone> Core<P> for Gossip<P, B> {
    type Message = Message<P, B>;
    type Timer = Timer;
    type Event = Event<P, B>;

    /// Handles a message.
    fn on_message<R: Rng + ?Sized>(
        &mut self,
        from: P,
        msg: Message<P, B>,
        _now: Time,
        rng: &mut R,
        out: &mut GossipOutbox<P, B>,
    ) {
        let Message::Push { id, payload, round } = msg;
        if self.seen.contains(&id) {
            return;
        }
        self.remember(id.clone());
        out.push(Out::Event(Event::Delivered {
            id: id.clone(),
            payload: payload.clone(),
            round,
            from: from.clone(),
        }));
        if round < self.config.ttl {
            self.push(&id, &payload, round + 1, Some(&from), rng, out);
        }
    }

    /// Gossip sets no timers.
    fn on_timer<R: Rng + ?Sized>(
        &mut self,
        timer: Timer,
        _now: Time,
        _rng: &mut R,
        _out: &mut GossipOutbox<P, B>,
    ) {
        match timer {}
    }

    /// A lost connection is a lost neighbour ([`Gossip::neighbour_down`]).
    fn peer_down<R: Rng + ?Sized>(
        &mut self,
        peer: &P,
        _now: Time,
        _rng: &mut R,
        _out: &mut GossipOutbox<P, B>,
    ) {
        self.neighbour_down(peer);
    }

    fn kind(msg: &Message<P, B>) -> &'static str {
        match msg {
            Message::Push { .. } => PAYLOAD,
        }
    }
}
