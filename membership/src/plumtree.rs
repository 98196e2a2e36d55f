//! Plumtree: epidemic broadcast trees (Leitão, Pereira, Rodrigues, SRDS 2007), sans-IO.
//!
//! Each node splits its neighbours (given by the membership core through
//! [`Plumtree::neighbour_up`] / [`Plumtree::neighbour_down`]) into **eager** peers, to which a
//! new message is pushed whole, and **lazy** peers, which only get its id in a batched IHAVE.
//! All neighbours start eager; a duplicate arrival PRUNEs the link to lazy, so the eager links
//! converge to a spanning tree. A node that hears IHAVE for a message it lacks waits
//! [`Config::graft_timeout_1`], then GRAFTs the announcer (asking for the message and making
//! the link eager again), trying further announcers every [`Config::graft_timeout_2`].
//! The paper's optional optimisation is in: when a message arrives over `threshold` more hops
//! than a lazy announcer had it, the announcer's link is grafted and the slow one pruned.
//!
//! **Broadcasts sent while the overlay was split.** The paper's model assumes a connected
//! overlay underneath: IHAVE goes to the lazy neighbours of the moment, so a message broadcast
//! while the overlay is split (a partition, or a flash-crowd bootstrap whose components have not
//! met yet) reaches the sender's side only. rasp adds one step to heal that: when a neighbour
//! comes up ([`Plumtree::neighbour_up`]), the node queues for it, with its next IHAVE batch, the
//! ids of the [`Config::digest_capacity`] most recent messages of its payload cache (a
//! *digest*). The new neighbour treats it as any IHAVE: the ids it has seen are ignored, the
//! missing ones are GRAFTed after [`Config::graft_timeout_1`], and the grafted message then
//! spreads over that side's tree as a new one. Every link that appears after a heal carries the
//! recent history across; links inside one side cost one IHAVE of ids that are all seen.
//!
//! The digest's bound is its size, [`Config::digest_capacity`] ids (at most the cache: only
//! messages that can still be served are announced). A message is delivered twice only if it
//! reaches a node that saw it and has since forgotten it, after [`Config::seen_capacity`] newer
//! ids; a digest entry is among the announcer's `digest_capacity` newest, so that takes a
//! receiver that saw `seen_capacity - digest_capacity` (64,512 by default) more messages than
//! its new neighbour since then. What needs every update after any split, however long,
//! exchanges state itself: the dataflow replicas' direct carrier runs delta anti-entropy with
//! each neighbour and sends a new neighbour its full state.
//!
//! Bounds and policies (every queue and table is bounded: see the README, "Bounded everything"):
//! - payload cache (answers GRAFTs): [`Config::cache_capacity`] messages, drop-oldest by
//!   arrival;
//! - seen ids (duplicate suppression): [`Config::seen_capacity`] ids, drop-oldest; a message
//!   older than that window arriving again is delivered again, so keep it well above the
//!   number of messages in flight;
//! - IHAVE queue per lazy peer: [`Config::ihave_queue_capacity`], drop-oldest (a lost IHAVE
//!   only matters if the tree also failed);
//! - missing ids (announced, not received): [`Config::cache_capacity`], new ones ignored when
//!   full;
//! - digest to a new neighbour: [`Config::digest_capacity`] ids (and at most the cache), sent
//!   once per neighbour up.

use crate::proto::{Core, Out, Outbox, Peer, Time, PAYLOAD};
use crate::vecmap::{SmallMap, VecMap};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// A broadcast message's id: its origin and the origin's sequence number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MsgId<P> {
    /// The broadcasting node.
    pub origin: P,
    /// Its sequence number at the origin.
    pub seq: u64,
}

/// Plumtree parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Wait after the first IHAVE of a missing message before the first GRAFT.
    pub graft_timeout_1: Duration,
    /// Wait between GRAFTs to further announcers.
    pub graft_timeout_2: Duration,
    /// Batching delay of IHAVEs.
    pub ihave_interval: Duration,
    /// Hop difference above which a lazy link replaces an eager one (paper's optimisation).
    pub optimization_threshold: u32,
    /// Payloads kept to answer GRAFTs.
    pub cache_capacity: usize,
    /// Message ids remembered to suppress duplicates.
    pub seen_capacity: usize,
    /// IHAVE entries queued per lazy peer.
    pub ihave_queue_capacity: usize,
    /// Ids of the most recent cached messages announced to a new neighbour (the digest that
    /// recovers broadcasts sent while the overlay was split); 0 turns it off. Keep it well
    /// below [`Config::seen_capacity`] (see the module documentation).
    pub digest_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            // iroh-gossip's default (80 ms): about two hops of a 10–50 ms network. The paper
            // (tree repair, p. 8) sets it from the overlay's diameter and the recovery latency
            // wanted; longer waits cut the GRAFTs of links that only lost a race under a
            // delay drawn per message (README, "Broadcast scenarios") but slow the repair of
            // a broken tree by as much.
            graft_timeout_1: Duration::from_millis(80),
            // iroh-gossip's default (40 ms).
            graft_timeout_2: Duration::from_millis(40),
            // iroh-gossip's dispatch timeout (5 ms).
            ihave_interval: Duration::from_millis(5),
            // iroh-gossip's default (7), after the paper's optimisation.
            optimization_threshold: 7,
            // Our choice: a few seconds of heavy traffic.
            cache_capacity: 4096,
            // Our choice: 16 times the cache.
            seen_capacity: 65536,
            // Our choice: as the cache.
            ihave_queue_capacity: 4096,
            // Our choice: a quarter of the cache (a 1,000-node all-sending round), one IHAVE
            // of about 20 KiB per new link at most; 1/64 of the duplicate window.
            digest_capacity: 1024,
        }
    }
}

/// Plumtree's wire messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<P, B> {
    /// A message pushed whole.
    Gossip {
        /// Its id.
        id: MsgId<P>,
        /// The payload.
        payload: B,
        /// Hops travelled when it arrives (1 from the origin).
        round: u32,
    },
    /// Ids (and hop counts) the sender has.
    IHave(Vec<(MsgId<P>, u32)>),
    /// Make this link eager; send this message if given.
    Graft {
        /// The message wanted, if any.
        id: Option<MsgId<P>>,
    },
    /// Make this link lazy.
    Prune,
}

/// Plumtree's timers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timer<P> {
    /// Send the queued IHAVEs.
    FlushIHave,
    /// A missing message is still missing: GRAFT the next announcer.
    Graft(MsgId<P>),
}

/// What Plumtree reports upward.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event<P, B> {
    /// A broadcast message arrived for the first time.
    Delivered {
        /// Its id.
        id: MsgId<P>,
        /// The payload.
        payload: B,
        /// Hops it travelled.
        round: u32,
        /// The neighbour it came from.
        from: P,
    },
}

/// One output of this core.
pub type PtOut<P, B> = Out<P, Message<P, B>, Timer<P>, Event<P, B>>;
/// The buffer this core appends to.
pub type PtOutbox<P, B> = Outbox<P, Message<P, B>, Timer<P>, Event<P, B>>;

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Messages delivered (first arrivals).
    pub delivered: u64,
    /// Payload arrivals that were duplicates.
    pub duplicates: u64,
    /// GRAFTs sent.
    pub grafts: u64,
    /// PRUNEs sent.
    pub prunes: u64,
}

/// The Plumtree state of one node.
#[derive(Clone, Debug)]
pub struct Plumtree<P, B> {
    me: P,
    /// Shared by every node of a simulation built from one [`Config`] (see
    /// [`Plumtree::new`]).
    config: Arc<Config>,
    eager: BTreeSet<P>,
    lazy: BTreeSet<P>,
    next_seq: u64,
    /// Seen id → hops it travelled to us (at most `seen_capacity`; a sorted vector while
    /// small).
    seen: SmallMap<MsgId<P>, u32>,
    seen_order: VecDeque<MsgId<P>>,
    cache: SmallMap<MsgId<P>, B>,
    cache_order: VecDeque<MsgId<P>>,
    /// Missing message → announcers (peer, hops) in arrival order.
    missing: VecMap<MsgId<P>, VecDeque<(P, u32)>>,
    ihave_queue: BTreeMap<P, VecDeque<(MsgId<P>, u32)>>,
    flush_scheduled: bool,
    stats: Stats,
}

impl<P: Peer, B: Clone> Plumtree<P, B> {
    /// A node with no neighbours yet.
    ///
    /// Takes a [`Config`], or an `Arc<Config>` that many nodes share.
    pub fn new(me: P, config: impl Into<Arc<Config>>) -> Self {
        Plumtree {
            me,
            config: config.into(),
            eager: BTreeSet::new(),
            lazy: BTreeSet::new(),
            next_seq: 0,
            seen: SmallMap::new(),
            seen_order: VecDeque::new(),
            cache: SmallMap::new(),
            cache_order: VecDeque::new(),
            missing: VecMap::new(),
            ihave_queue: BTreeMap::new(),
            flush_scheduled: false,
            stats: Stats::default(),
        }
    }

    /// Eager peers (tree links).
    pub fn eager(&self) -> &BTreeSet<P> {
        &self.eager
    }

    /// Lazy peers.
    pub fn lazy(&self) -> &BTreeSet<P> {
        &self.lazy
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether the message with this id was seen (delivered or sent) and is still remembered.
    pub fn has_seen(&self, id: &MsgId<P>) -> bool {
        self.seen.contains_key(id)
    }

    /// A neighbour appeared: it starts eager, and gets the digest of the most recent cached
    /// messages ([`Config::digest_capacity`] ids, the ones it originated left out) with the
    /// next IHAVE batch, so that it GRAFTs what it missed (see the module documentation).
    pub fn neighbour_up(&mut self, peer: P, out: &mut PtOutbox<P, B>) {
        if peer == self.me {
            return;
        }
        self.lazy.remove(&peer);
        self.eager.insert(peer.clone());
        let n = self.config.digest_capacity.min(self.cache_order.len());
        if n == 0 {
            return;
        }
        let digest: Vec<(MsgId<P>, u32)> = self
            .cache_order
            .iter()
            .skip(self.cache_order.len() - n)
            .filter(|id| id.origin != peer)
            .map(|id| (id.clone(), self.seen.get(id).copied().unwrap_or(0) + 1))
            .collect();
        if digest.is_empty() {
            return;
        }
        let q = self.ihave_queue.entry(peer).or_default();
        for entry in digest {
            if q.len() >= self.config.ihave_queue_capacity {
                q.pop_front();
            }
            q.push_back(entry);
        }
        self.schedule_flush(out);
    }

    fn schedule_flush(&mut self, out: &mut PtOutbox<P, B>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            out.push(Out::Timer {
                after: self.config.ihave_interval,
                timer: Timer::FlushIHave,
            });
        }
    }

    /// A neighbour is gone.
    pub fn neighbour_down(&mut self, peer: &P) {
        self.eager.remove(peer);
        self.lazy.remove(peer);
        self.ihave_queue.remove(peer);
        for announcers in self.missing.values_mut() {
            announcers.retain(|(p, _)| p != peer);
        }
    }

    /// Broadcasts `payload` to every node; returns its id. The origin does not deliver to
    /// itself.
    pub fn broadcast(&mut self, payload: B, out: &mut PtOutbox<P, B>) -> MsgId<P> {
        let id = MsgId {
            origin: self.me.clone(),
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.remember(id.clone(), 0, payload.clone());
        self.push(&id, &payload, 1, None, out);
        id
    }

    fn on_gossip(
        &mut self,
        from: P,
        id: MsgId<P>,
        payload: B,
        round: u32,
        out: &mut PtOutbox<P, B>,
    ) {
        if self.seen.contains_key(&id) {
            self.stats.duplicates += 1;
            if self.eager.remove(&from) {
                self.lazy.insert(from.clone());
            }
            self.stats.prunes += 1;
            out.push(Out::Send {
                to: from,
                msg: Message::Prune,
            });
            return;
        }
        self.stats.delivered += 1;
        self.remember(id.clone(), round, payload.clone());
        if self.lazy.remove(&from) {
            self.eager.insert(from.clone());
        }
        if let Some(announcers) = self.missing.remove(&id) {
            // The paper's optimisation: a lazy announcer had it much closer to the origin.
            if let Some((best, best_round)) = announcers.iter().min_by_key(|(_, r)| *r) {
                if round > best_round + self.config.optimization_threshold
                    && self.lazy.contains(best)
                {
                    self.lazy.remove(best);
                    self.eager.insert(best.clone());
                    self.stats.grafts += 1;
                    out.push(Out::Send {
                        to: best.clone(),
                        msg: Message::Graft { id: None },
                    });
                    if self.eager.remove(&from) {
                        self.lazy.insert(from.clone());
                    }
                    self.stats.prunes += 1;
                    out.push(Out::Send {
                        to: from.clone(),
                        msg: Message::Prune,
                    });
                }
            }
        }
        out.push(Out::Event(Event::Delivered {
            id: id.clone(),
            payload: payload.clone(),
            round,
            from: from.clone(),
        }));
        self.push(&id, &payload, round + 1, Some(&from), out);
    }

    /// Eager push to eager peers, IHAVE queued for lazy ones, except `except`.
    fn push(
        &mut self,
        id: &MsgId<P>,
        payload: &B,
        round: u32,
        except: Option<&P>,
        out: &mut PtOutbox<P, B>,
    ) {
        for p in &self.eager {
            if Some(p) != except {
                out.push(Out::Send {
                    to: p.clone(),
                    msg: Message::Gossip {
                        id: id.clone(),
                        payload: payload.clone(),
                        round,
                    },
                });
            }
        }
        let mut queued = false;
        for p in &self.lazy {
            if Some(p) != except {
                let q = self.ihave_queue.entry(p.clone()).or_default();
                if q.len() >= self.config.ihave_queue_capacity {
                    q.pop_front();
                }
                q.push_back((id.clone(), round));
                queued = true;
            }
        }
        if queued {
            self.schedule_flush(out);
        }
    }

    fn remember(&mut self, id: MsgId<P>, round: u32, payload: B) {
        if self.seen.len() >= self.config.seen_capacity {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id.clone(), round);
        self.seen_order.push_back(id.clone());
        if self.config.cache_capacity == 0 {
            return;
        }
        if self.cache.len() >= self.config.cache_capacity {
            if let Some(old) = self.cache_order.pop_front() {
                self.cache.remove(&old);
            }
        }
        self.cache.insert(id.clone(), payload);
        self.cache_order.push_back(id);
    }
}

impl<P: Peer, B: Clone> Core<P> for Plumtree<P, B> {
    type Message = Message<P, B>;
    type Timer = Timer<P>;
    type Event = Event<P, B>;

    /// Handles a timer.
    fn on_timer<R: Rng + ?Sized>(
        &mut self,
        timer: Timer<P>,
        _now: Time,
        _rng: &mut R,
        out: &mut PtOutbox<P, B>,
    ) {
        match timer {
            Timer::FlushIHave => {
                self.flush_scheduled = false;
                for (peer, queue) in std::mem::take(&mut self.ihave_queue) {
                    if !queue.is_empty()
                        && (self.lazy.contains(&peer) || self.eager.contains(&peer))
                    {
                        out.push(Out::Send {
                            to: peer,
                            msg: Message::IHave(queue.into_iter().collect()),
                        });
                    }
                }
            }
            Timer::Graft(id) => {
                let Some(announcers) = self.missing.get_mut(&id) else {
                    return;
                };
                match announcers.pop_front() {
                    Some((peer, _round)) => {
                        self.lazy.remove(&peer);
                        self.eager.insert(peer.clone());
                        self.stats.grafts += 1;
                        out.push(Out::Send {
                            to: peer,
                            msg: Message::Graft {
                                id: Some(id.clone()),
                            },
                        });
                        out.push(Out::Timer {
                            after: self.config.graft_timeout_2,
                            timer: Timer::Graft(id),
                        });
                    }
                    None => {
                        self.missing.remove(&id);
                    }
                }
            }
        }
    }

    /// Handles a message from neighbour `from`.
    fn on_message<R: Rng + ?Sized>(
        &mut self,
        from: P,
        msg: Message<P, B>,
        _now: Time,
        _rng: &mut R,
        out: &mut PtOutbox<P, B>,
    ) {
        match msg {
            Message::Gossip { id, payload, round } => self.on_gossip(from, id, payload, round, out),
            Message::IHave(list) => {
                for (id, round) in list {
                    if self.seen.contains_key(&id) {
                        continue;
                    }
                    match self.missing.get_mut(&id) {
                        Some(announcers) => announcers.push_back((from.clone(), round)),
                        None => {
                            if self.missing.len() >= self.config.cache_capacity {
                                continue;
                            }
                            self.missing
                                .insert(id.clone(), VecDeque::from([(from.clone(), round)]));
                            out.push(Out::Timer {
                                after: self.config.graft_timeout_1,
                                timer: Timer::Graft(id),
                            });
                        }
                    }
                }
            }
            Message::Graft { id } => {
                // Only a neighbour's link turns eager; a stale GRAFT from a former neighbour
                // still gets its message.
                if self.lazy.remove(&from) {
                    self.eager.insert(from.clone());
                }
                if let Some(id) = id {
                    if let Some(payload) = self.cache.get(&id) {
                        let round = self.seen.get(&id).copied().unwrap_or(0) + 1;
                        out.push(Out::Send {
                            to: from,
                            msg: Message::Gossip {
                                id,
                                payload: payload.clone(),
                                round,
                            },
                        });
                    }
                }
            }
            Message::Prune => {
                if self.eager.remove(&from) {
                    self.lazy.insert(from);
                }
            }
        }
    }

    /// A lost connection is a lost neighbour ([`Plumtree::neighbour_down`]).
    fn peer_down<R: Rng + ?Sized>(
        &mut self,
        peer: &P,
        _now: Time,
        _rng: &mut R,
        _out: &mut PtOutbox<P, B>,
    ) {
        self.neighbour_down(peer);
    }

    fn kind(msg: &Message<P, B>) -> &'static str {
        match msg {
            Message::Gossip { .. } => PAYLOAD,
            Message::IHave(_) => "ihave",
            Message::Graft { .. } => "graft",
            Message::Prune => "prune",
        }
    }
}
