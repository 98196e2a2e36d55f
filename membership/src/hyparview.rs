//! HyParView (Leitão, Pereira, Rodrigues, DSN 2007) as a sans-IO state machine, with the
//! isolation repair Partisan needed.
//!
//! Each node keeps a small symmetric **active view** (its neighbours: open connections, used
//! for all traffic, and whose loss is the failure detector) and a larger **passive view**
//! (contacts refreshed by periodic SHUFFLEs, used to replace failed active peers).
//!
//! Messages: JOIN, FORWARD_JOIN (a random walk: the joiner enters an active view when the walk
//! ends after ARWL hops, and passive views at hop PRWL), NEIGHBOR (a request with high priority,
//! which cannot be refused, when the sender has no neighbour at all, low otherwise), DISCONNECT,
//! SHUFFLE and SHUFFLE_REPLY.
//!
//! What this implementation adds to the paper, and why:
//! - **Partisan's isolation repair** (islands appeared under churn in Partisan): a node
//!   whose active view empties promotes a passive peer at once with a high-priority request;
//!   every [`Config::promotion_interval`] a node under [`Config::active_size`] promotes one more
//!   passive peer; a node under [`Config::min_active`] with nothing left to promote (an isolated
//!   node, or a small island cut off by a mass failure) rejoins, not only through its seeds
//!   (which may be dead) but through any contact it still remembers: the last
//!   [`Config::contacts_size`] peers that left its views alive (Partisan's repair through known
//!   peers). A request from a node with an empty active view is always high priority (the
//!   paper's rule), whatever else it has asked.
//! - **Replies to every NEIGHBOR**, and a DISCONNECT answering an acceptance nobody wants any
//!   more, so the views stay symmetric even when messages are reordered or a request times out.
//! - **Keep-alives** between active peers ([`Config::keepalive_interval`]): a node that hears a
//!   keep-alive from a peer it does not hold answers DISCONNECT (repairing asymmetry after lost
//!   messages), and an active peer silent for [`Config::peer_timeout`] is treated as failed
//!   (Partisan relied on TCP keep-alive the same way, talk slide 120; the driver's connection
//!   loss, [`Core::peer_down`], remains the fast path).
//!
//! - **Reconnect probes after a suspected failure** (healing a split with full views): a
//!   peer lost without a DISCONNECT (its connection failed, it went silent, or a NEIGHBOR
//!   request to it timed out) may have crashed, or may be on the other side of a partition.
//!   Each side of a partition repairs itself from its own passive view, so when the partition
//!   heals both sides typically have **full** active views: the paper's repair (its "active
//!   view management": passive peers replace *failed* active ones) never fires again, low-priority NEIGHBOR requests are
//!   refused, and shuffles only travel inside each side. Partisan's periodic random promotion
//!   (Meiklejohn et al., "Partisan: Scaling the Distributed Actor Runtime", USENIX ATC 2019;
//!   its HyParView manager's `random_promotion`) does nothing once the active view reaches its
//!   minimum size, so it does not bridge such a split either. rasp keeps the lost peers as
//!   **suspects** (at most [`Config::suspects_size`], each for [`Config::suspect_ttl`]) and,
//!   every [`Config::promotion_interval`] (the same tick as Partisan's random promotion, but
//!   also when the view is full), sends one of them a high-priority NEIGHBOR. A suspect that
//!   answers is reachable again: the link is made, each side evicting one random active peer
//!   if full (the paper's rule for a high-priority NEIGHBOR), and the evicted peers refill
//!   from their passive views, as after any eviction. A suspect that does not answer (or
//!   whose dial fails: a crash and a partition look alike) stays until its time is up; one
//!   that leaves (DISCONNECT, not alive) or becomes a neighbour again is dropped. At steady state nothing is
//!   suspected and nothing is sent, so broadcast trees are left alone.
//!
//!   A probe is for a split, and every link it makes costs an eviction on each full side
//!   (and, above, a hello and a full-state catch-up of the replication layer), so a probe
//!   goes out only without evidence that the suspect is in this node's part of the overlay:
//!   a suspect heard of through the overlay after it was lost (the origin of a SHUFFLE or
//!   the joiner of a FORWARD_JOIN that reached us over active links, or the node that
//!   answered our own SHUFFLE) is dropped unprobed. Nothing on the other side of a split is
//!   ever heard of that way, so a split still heals; a node cut off alone for a while (a
//!   client offline in the main job of README "Quickstart") is the common case it spares:
//!   when it returns it rejoins by itself, and its walks and shuffles reach the peers that
//!   suspect it, and those it suspects (every passive peer whose request timed out
//!   meanwhile). Stale
//!   contacts are not evidence: passive entries carried in a shuffle may be on the other
//!   side. A node that loses its whole active view was cut off itself (its own link, or a
//!   partition around it): it rejoins through its seeds and contacts, so it drops its suspects
//!   and suspects nobody while alone (a request timing out then says nothing about the
//!   peer); each link it lost is still suspected from the other end, which probes it once it
//!   is back. After a probe made a link, the node sends no other probe for
//!   [`Config::probe_holdoff`]: one bridge per node joins two sides, and shuffles across it
//!   bring the evidence that drops the suspects on the side just joined. Measured on the
//!   advertisement counter's main job (`cargo run --release --example ad_counter --
//!   --no-output`: 50 clients, 10% of them offline in 20 s epochs, seed 42): probing every
//!   suspect made 2,790 probe links and 4,501 evictions, and the clients shipped 2.1 MiB of
//!   state per client per 90 s (0.82 MiB with probes off); with these rules 0.95 MiB, the
//!   rest of the gap being the returning node's former neighbours, which probe it before
//!   they can hear of it; the replication layer resumes such re-formed links without a
//!   catch-up (`dataflow/src/replica.rs`, "Resuming a link"), which brings it to 0.54 MiB.
//!   Guarded by `offline_nodes_cost_bounded_link_changes` in `membership/tests/sim.rs`.
//!
//! Delivery order is not assumed (Partisan's lesson, talk slide 148: assuming FIFO across
//! connections gave false disconnects).

use crate::proto::{Core, Out, Outbox, Peer, Time};
use crate::vecmap::VecMap;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// HyParView parameters. Defaults cite their source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Maximum size of the active view.
    pub active_size: usize,
    /// Maximum size of the passive view.
    pub passive_size: usize,
    /// Active random walk length: hops of a FORWARD_JOIN before the joiner enters an active view.
    pub arwl: u32,
    /// Passive random walk length: the hop at which the joiner enters a passive view.
    pub prwl: u32,
    /// Active peers put in a SHUFFLE (ka).
    pub shuffle_active: usize,
    /// Passive peers put in a SHUFFLE (kp).
    pub shuffle_passive: usize,
    /// Hops of a SHUFFLE random walk.
    pub shuffle_ttl: u32,
    /// Period of SHUFFLE.
    pub shuffle_interval: Duration,
    /// Below this active size a refused or timed-out NEIGHBOR request is retried with another
    /// passive peer at once instead of at the next promotion.
    pub min_active: usize,
    /// Period of the promotion check: a node under `active_size` asks one passive peer, a node
    /// with empty views rejoins through its seeds.
    pub promotion_interval: Duration,
    /// How long a NEIGHBOR request waits for its reply before the peer counts as failed.
    pub neighbour_timeout: Duration,
    /// Period of keep-alives to active peers.
    pub keepalive_interval: Duration,
    /// An active peer not heard from for this long is treated as failed.
    pub peer_timeout: Duration,
    /// How many recent contacts (peers that left the views while alive) are remembered as
    /// rejoin points besides the seeds.
    pub contacts_size: usize,
    /// How many suspects (peers lost without a DISCONNECT: perhaps crashed, perhaps across a
    /// partition) are kept for reconnect probes; the oldest is dropped when full. Zero turns
    /// the probes off.
    pub suspects_size: usize,
    /// How long a suspect is probed (one probe per [`Config::promotion_interval`] per node,
    /// to a random suspect) before it is given up: the longest partition whose split overlay
    /// heals by itself.
    pub suspect_ttl: Duration,
    /// After a reconnect probe made a link, how long this node sends no other probe: one
    /// bridge per node is enough to join two sides, and shuffles across it meanwhile bring
    /// the evidence that drops the suspects on the side just joined (see the module docs).
    pub probe_holdoff: Duration,
    /// The bug zoo only (`tests/zoo/`, README "Bug zoo"): the paper's HyParView without
    /// Partisan's isolation repair (Meiklejohn et al., "Partisan", USENIX ATC 2019, its
    /// HyParView manager): no periodic promotion or rejoin, no reconnect probes, no retry of
    /// a refused or timed-out NEIGHBOR request, so a node or island cut off under churn stays
    /// cut off. Off by default, and off is the protocol as it is.
    #[doc(hidden)]
    pub without_isolation_repair: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            // From the paper (HyParView, DSN 2007, §5 "Experimental setting"): active view 5.
            active_size: 5,
            // From the paper (§5): passive view 30.
            passive_size: 30,
            // From the paper (§5): ARWL 6.
            arwl: 6,
            // From the paper (§5): PRWL 3.
            prwl: 3,
            // From the paper (§5): ka = 3.
            shuffle_active: 3,
            // From the paper (§5): kp = 4.
            shuffle_passive: 4,
            // The paper walks shuffles like joins; ARWL (6), as iroh-gossip does.
            shuffle_ttl: 6,
            // Partisan's default shuffle interval (the paper leaves the period open).
            shuffle_interval: Duration::from_secs(10),
            // Partisan's min_active_size (3).
            min_active: 3,
            // Partisan's random promotion interval (5 s; Partisan, USENIX ATC 2019, and its
            // `partisan_hyparview_peer_service_manager`).
            promotion_interval: Duration::from_secs(5),
            // Our choice: 40 times the slowest simulated round trip (2 × 50 ms); iroh-gossip
            // uses 3 s on real networks.
            neighbour_timeout: Duration::from_secs(2),
            // Our choice: one small message per neighbour per second.
            keepalive_interval: Duration::from_secs(1),
            // Our choice: five missed keep-alives.
            peer_timeout: Duration::from_secs(5),
            // Our choice: as many as the passive view (the paper has no such list; Partisan
            // rejoins through any known peer).
            contacts_size: 30,
            // Our choice: as many as the passive view.
            suspects_size: 30,
            // Our choice: ten minutes; a node probes at most one suspect per promotion tick
            // (5 s), so a crashed neighbour costs at most 120 small messages per node.
            suspect_ttl: Duration::from_secs(600),
            // Our choice: three shuffle intervals, so a suspect on the side just bridged to is
            // likely heard of (as a SHUFFLE origin) before this node would probe it.
            probe_holdoff: Duration::from_secs(30),
            without_isolation_repair: false,
        }
    }
}

/// Error from [`Config::validate`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The active view must hold at least one peer.
    #[error("hyparview: active_size must be at least 1")]
    ActiveSize,
    /// `min_active` may not exceed `active_size`.
    #[error("hyparview: min_active ({min}) exceeds active_size ({max})")]
    MinActive {
        /// The configured minimum.
        min: usize,
        /// The configured active size.
        max: usize,
    },
    /// PRWL must not exceed ARWL, or joiners never reach passive views.
    #[error("hyparview: prwl ({prwl}) exceeds arwl ({arwl})")]
    Prwl {
        /// Configured PRWL.
        prwl: u32,
        /// Configured ARWL.
        arwl: u32,
    },
    /// A period or timeout of zero would spin.
    #[error("hyparview: {0} must be positive")]
    ZeroDuration(&'static str),
}

impl Config {
    /// Checks the parameters once, at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.active_size == 0 {
            return Err(ConfigError::ActiveSize);
        }
        if self.min_active > self.active_size {
            return Err(ConfigError::MinActive {
                min: self.min_active,
                max: self.active_size,
            });
        }
        if self.prwl > self.arwl {
            return Err(ConfigError::Prwl {
                prwl: self.prwl,
                arwl: self.arwl,
            });
        }
        for (name, d) in [
            ("shuffle_interval", self.shuffle_interval),
            ("promotion_interval", self.promotion_interval),
            ("neighbour_timeout", self.neighbour_timeout),
            ("keepalive_interval", self.keepalive_interval),
            ("peer_timeout", self.peer_timeout),
            ("suspect_ttl", self.suspect_ttl),
            ("probe_holdoff", self.probe_holdoff),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        Ok(())
    }
}

/// Priority of a NEIGHBOR request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Priority {
    /// The sender has no active peer: the receiver must accept (evicting one if full).
    High,
    /// The receiver accepts only if its active view has room.
    Low,
}

/// HyParView's wire messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<P> {
    /// A new node asks a contact node (a seed) to let it in.
    Join,
    /// The random walk introducing `joiner`.
    ForwardJoin {
        /// The node that joined.
        joiner: P,
        /// Hops left.
        ttl: u32,
    },
    /// "Add me to your active view."
    Neighbour {
        /// High if the sender has no active peer.
        priority: Priority,
    },
    /// The answer to [`Message::Neighbour`].
    NeighbourReply {
        /// Whether the sender added the requester to its active view.
        accepted: bool,
    },
    /// "I removed you from my active view."
    Disconnect {
        /// The sender stays up (keep it as a passive contact); false when it leaves.
        alive: bool,
    },
    /// A sample of views walking to a random node.
    Shuffle {
        /// Who started the shuffle (the reply goes there).
        origin: P,
        /// The origin and a sample of its views.
        nodes: Vec<P>,
        /// Hops left.
        ttl: u32,
    },
    /// The walk's end answers with a sample of its passive view.
    ShuffleReply {
        /// The sample.
        nodes: Vec<P>,
    },
    /// Periodic liveness signal between active peers.
    KeepAlive,
}

/// HyParView's timers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timer<P> {
    /// Time to shuffle.
    Shuffle,
    /// Time to check the active view's size (promotion, rejoin).
    Promote,
    /// Time to send keep-alives and check silent peers.
    KeepAlive,
    /// The NEIGHBOR request with this number to this peer timed out.
    NeighbourTimeout(P, u64),
}

/// Neighbour changes reported to the layer above.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event<P> {
    /// The peer entered the active view.
    NeighbourUp(P),
    /// The peer left the active view.
    NeighbourDown(P),
}

/// One output of this core.
pub type HvOut<P> = Out<P, Message<P>, Timer<P>, Event<P>>;

/// The buffer this core appends to.
pub type HvOutbox<P> = Outbox<P, Message<P>, Timer<P>, Event<P>>;

/// Counters for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Active peers removed because their connection failed or went silent.
    pub failures: u64,
    /// Active peers evicted to make room.
    pub evictions: u64,
    /// NEIGHBOR requests sent.
    pub neighbour_requests: u64,
    /// Rejoins (JOIN sent again, through a seed or a remembered contact) after the views ran
    /// dry.
    pub rejoins: u64,
    /// Times the active view became empty.
    pub isolations: u64,
    /// Reconnect probes sent to suspects (see the module docs).
    pub probes: u64,
    /// Probes answered: a suspect reachable again became a neighbour.
    pub probe_links: u64,
    /// Suspects dropped unprobed because they were heard of through this node's overlay
    /// after they were lost (see the module docs): no split to heal.
    pub suspects_cleared: u64,
}

/// The HyParView state of one node.
#[derive(Clone, Debug)]
pub struct HyParView<P> {
    me: P,
    /// Shared by every node of a simulation built from one [`Config`] (see
    /// [`HyParView::new`]): its 184 bytes need not be copied per node.
    config: Arc<Config>,
    active: Vec<P>,
    passive: Vec<P>,
    seeds: Vec<P>,
    /// Peers that left the views alive, most recent last (bounded by `contacts_size`):
    /// rejoin points besides the seeds.
    contacts: Vec<P>,
    /// Outstanding NEIGHBOR requests: peer → request number (at most `active_size`: no
    /// request goes out while active and pending fill the view).
    pending: VecMap<P, u64>,
    /// Peers lost without a DISCONNECT, with the time they were lost (oldest first, bounded
    /// by `suspects_size`): targets of reconnect probes.
    suspects: Vec<(P, Time)>,
    /// The outstanding reconnect probe: peer and request number (at most one at a time).
    probe: Option<(P, u64)>,
    /// No probe before this time (set when a probe made a link).
    probe_after: Time,
    next_request: u64,
    /// When each active peer was last heard from (one entry per active peer).
    last_heard: VecMap<P, Time>,
    /// The nodes we sent in our last shuffle (preferred for eviction when the reply arrives).
    last_shuffle: Vec<P>,
    started: bool,
    left: bool,
    stats: Stats,
}

impl<P: Peer> HyParView<P> {
    /// A node with empty views. Call [`HyParView::start`] once, then [`HyParView::join`].
    /// Takes a [`Config`], or an `Arc<Config>` that many nodes share.
    pub fn new(me: P, config: impl Into<Arc<Config>>) -> Self {
        HyParView {
            me,
            config: config.into(),
            active: Vec::new(),
            passive: Vec::new(),
            seeds: Vec::new(),
            contacts: Vec::new(),
            pending: VecMap::new(),
            suspects: Vec::new(),
            probe: None,
            probe_after: Time::ZERO,
            next_request: 0,
            last_heard: VecMap::new(),
            last_shuffle: Vec::new(),
            started: false,
            left: false,
            stats: Stats::default(),
        }
    }

    /// This node's id.
    pub fn me(&self) -> &P {
        &self.me
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The active view (the neighbours).
    pub fn active(&self) -> &[P] {
        &self.active
    }

    /// The passive view.
    pub fn passive(&self) -> &[P] {
        &self.passive
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether [`HyParView::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Arms the periodic timers (each first fires after a random fraction of its period, so
    /// nodes started together do not tick in lockstep).
    pub fn start<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut HvOutbox<P>) {
        if self.started {
            return;
        }
        self.started = true;
        for (period, timer) in [
            (self.config.shuffle_interval, Timer::Shuffle),
            (self.config.promotion_interval, Timer::Promote),
            (self.config.keepalive_interval, Timer::KeepAlive),
        ] {
            out.push(Out::Timer {
                after: jitter(period, rng),
                timer,
            });
        }
    }

    /// Joins through `seeds` (contact nodes). Remembers them for rejoins; sends JOIN to one.
    pub fn join<R: Rng + ?Sized>(&mut self, seeds: Vec<P>, rng: &mut R, out: &mut HvOutbox<P>) {
        self.left = false;
        self.seeds = seeds.into_iter().filter(|s| *s != self.me).collect();
        self.seeds.sort();
        self.seeds.dedup();
        self.start(rng, out);
        self.send_join(rng, out);
    }

    fn send_join<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut HvOutbox<P>) {
        if let Some(seed) = self.seeds.choose(rng) {
            out.push(Out::Send {
                to: seed.clone(),
                msg: Message::Join,
            });
        }
    }

    /// The remembered contacts (rejoin points besides the seeds), most recent last.
    pub fn contacts(&self) -> &[P] {
        &self.contacts
    }

    /// The suspects: peers lost without a DISCONNECT, still probed (see the module docs).
    pub fn suspects(&self) -> impl Iterator<Item = &P> {
        self.suspects.iter().map(|(p, _)| p)
    }

    /// Suspects a peer lost without a DISCONNECT (connection failure, silence, a NEIGHBOR
    /// request timing out): it will be probed.
    fn suspect(&mut self, peer: &P, now: Time) {
        if self.config.suspects_size == 0 || *peer == self.me {
            return;
        }
        if self.active.is_empty() {
            // Every neighbour lost: this node is the one cut off (see the module docs). The
            // peers it lost suspect it in turn, and probe it when it is back.
            self.suspects.clear();
            self.probe = None;
            return;
        }
        self.suspects.retain(|(p, _)| p != peer);
        if self.suspects.len() >= self.config.suspects_size {
            self.suspects.remove(0);
        }
        self.suspects.push((peer.clone(), now));
    }

    /// `peer` was heard of through this node's overlay: it started a SHUFFLE or a JOIN whose
    /// walk reached us over active links, or it ended the walk of our own SHUFFLE and
    /// answered. It is in our component of the overlay, so if it is a suspect there is no
    /// split between us to heal: drop it without a probe (see the module docs).
    fn heard_of(&mut self, peer: &P) {
        if self.suspects.iter().any(|(p, _)| p == peer) {
            self.stats.suspects_cleared += 1;
            self.unsuspect(peer);
        }
    }

    /// Drops a suspect (it is a neighbour again, or it left).
    fn unsuspect(&mut self, peer: &P) {
        self.suspects.retain(|(p, _)| p != peer);
        if self.probe.as_ref().is_some_and(|(p, _)| p == peer) {
            self.probe = None;
        }
    }

    /// Sends one reconnect probe: a high-priority NEIGHBOR to a random suspect still within
    /// its time, unless a probe is out already.
    fn probe_suspect<R: Rng + ?Sized>(&mut self, now: Time, rng: &mut R, out: &mut HvOutbox<P>) {
        let ttl = self.config.suspect_ttl;
        self.suspects
            .retain(|(_, since)| now.saturating_sub(*since) <= ttl);
        if self.probe.is_some() || now < self.probe_after {
            return;
        }
        let candidates: Vec<&P> = self
            .suspects
            .iter()
            .map(|(p, _)| p)
            .filter(|p| !self.active.contains(*p) && !self.pending.contains_key(*p))
            .collect();
        let Some(peer) = candidates.choose(rng).map(|p| (*p).clone()) else {
            return;
        };
        let id = self.next_request;
        self.next_request += 1;
        self.probe = Some((peer.clone(), id));
        self.stats.probes += 1;
        out.push(Out::Send {
            to: peer.clone(),
            msg: Message::Neighbour {
                priority: Priority::High,
            },
        });
        out.push(Out::Timer {
            after: self.config.neighbour_timeout,
            timer: Timer::NeighbourTimeout(peer, id),
        });
    }

    /// Remembers a peer that left the views alive.
    fn remember(&mut self, peer: &P) {
        if self.config.contacts_size == 0 || *peer == self.me {
            return;
        }
        self.contacts.retain(|p| p != peer);
        if self.contacts.len() >= self.config.contacts_size {
            self.contacts.remove(0);
        }
        self.contacts.push(peer.clone());
    }

    /// Rejoins through a random seed or remembered contact (Partisan: any known peer).
    fn rejoin<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut HvOutbox<P>) {
        let total = self.seeds.len() + self.contacts.len();
        if total == 0 {
            return;
        }
        let i = rng.random_range(0..total);
        let to = if i < self.seeds.len() {
            self.seeds[i].clone()
        } else {
            self.contacts[i - self.seeds.len()].clone()
        };
        self.stats.rejoins += 1;
        out.push(Out::Send {
            to,
            msg: Message::Join,
        });
    }

    /// Leaves: tells every active peer (DISCONNECT, not alive) and forgets both views. Timers
    /// still fire but do nothing until [`HyParView::join`] is called again.
    pub fn leave(&mut self, out: &mut HvOutbox<P>) {
        for p in std::mem::take(&mut self.active) {
            out.push(Out::Send {
                to: p.clone(),
                msg: Message::Disconnect { alive: false },
            });
            out.push(Out::Disconnect(p.clone()));
            out.push(Out::Event(Event::NeighbourDown(p)));
        }
        self.passive.clear();
        self.pending.clear();
        self.suspects.clear();
        self.probe = None;
        self.last_heard.clear();
        self.left = true;
    }

    fn on_join<R: Rng + ?Sized>(
        &mut self,
        joiner: P,
        now: Time,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) {
        if !self.active.contains(&joiner) {
            self.add_active(joiner.clone(), now, rng, out);
        }
        out.push(Out::Send {
            to: joiner.clone(),
            msg: Message::Neighbour {
                priority: Priority::High,
            },
        });
        let ttl = self.config.arwl;
        for p in self.active.iter().filter(|p| **p != joiner) {
            out.push(Out::Send {
                to: p.clone(),
                msg: Message::ForwardJoin {
                    joiner: joiner.clone(),
                    ttl,
                },
            });
        }
    }

    fn on_forward_join<R: Rng + ?Sized>(
        &mut self,
        from: P,
        joiner: P,
        ttl: u32,
        now: Time,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) {
        if joiner == self.me {
            return;
        }
        if ttl == 0 || self.active.len() <= 1 {
            if !self.active.contains(&joiner) {
                self.add_active(joiner.clone(), now, rng, out);
                out.push(Out::Send {
                    to: joiner,
                    msg: Message::Neighbour {
                        priority: Priority::High,
                    },
                });
            }
            return;
        }
        if ttl == self.config.prwl {
            self.add_passive(joiner.clone(), &[], rng);
        }
        let next = {
            let candidates: Vec<&P> = self
                .active
                .iter()
                .filter(|p| **p != from && **p != joiner)
                .collect();
            candidates.choose(rng).map(|p| (*p).clone())
        };
        match next {
            Some(n) => out.push(Out::Send {
                to: n,
                msg: Message::ForwardJoin {
                    joiner,
                    ttl: ttl - 1,
                },
            }),
            None => {
                if !self.active.contains(&joiner) {
                    self.add_active(joiner.clone(), now, rng, out);
                    out.push(Out::Send {
                        to: joiner,
                        msg: Message::Neighbour {
                            priority: Priority::High,
                        },
                    });
                }
            }
        }
    }

    fn on_neighbour<R: Rng + ?Sized>(
        &mut self,
        from: P,
        priority: Priority,
        now: Time,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) {
        let accepted = if self.active.contains(&from) {
            true
        } else if priority == Priority::High || self.active.len() < self.config.active_size {
            self.pending.remove(&from);
            self.add_active(from.clone(), now, rng, out);
            true
        } else {
            false
        };
        out.push(Out::Send {
            to: from,
            msg: Message::NeighbourReply { accepted },
        });
    }

    fn on_neighbour_reply<R: Rng + ?Sized>(
        &mut self,
        from: P,
        accepted: bool,
        now: Time,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) {
        if self.probe.as_ref().is_some_and(|(p, _)| *p == from) {
            // A suspect answered: it is reachable again. Make the link even if our view is
            // full (evicting a random peer, as the paper's high-priority rule does on the
            // other side), so a split overlay with full views on both sides joins up.
            self.unsuspect(&from);
            self.pending.remove(&from);
            if accepted && !self.active.contains(&from) {
                self.stats.probe_links += 1;
                self.probe_after = now + self.config.probe_holdoff;
                self.add_active(from, now, rng, out);
            } else if !accepted {
                self.add_passive(from, &[], rng);
            }
            return;
        }
        let was_pending = self.pending.remove(&from).is_some();
        if accepted {
            if self.active.contains(&from) {
                return;
            }
            if was_pending && self.active.len() < self.config.active_size {
                self.add_active(from, now, rng, out);
            } else {
                // It took us in but we no longer want it: undo, or the link is one-sided.
                out.push(Out::Send {
                    to: from.clone(),
                    msg: Message::Disconnect { alive: true },
                });
                self.add_passive(from, &[], rng);
            }
        } else if was_pending {
            self.request_failed(now, rng, out);
        }
    }

    fn on_disconnect<R: Rng + ?Sized>(
        &mut self,
        from: P,
        alive: bool,
        now: Time,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) {
        if self.active.contains(&from) {
            self.remove_active(&from, alive, out);
            self.refill(now, rng, out);
        } else if !alive {
            self.unsuspect(&from);
            self.passive.retain(|p| *p != from);
            if self.pending.remove(&from).is_some() {
                self.request_failed(now, rng, out);
            }
        }
    }

    fn on_shuffle<R: Rng + ?Sized>(
        &mut self,
        from: P,
        origin: P,
        nodes: Vec<P>,
        ttl: u32,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) {
        if origin == self.me {
            return;
        }
        if ttl > 1 && self.active.len() > 1 {
            let candidates: Vec<&P> = self
                .active
                .iter()
                .filter(|p| **p != from && **p != origin)
                .collect();
            if let Some(next) = candidates.choose(rng) {
                out.push(Out::Send {
                    to: (*next).clone(),
                    msg: Message::Shuffle {
                        origin,
                        nodes,
                        ttl: ttl - 1,
                    },
                });
                return;
            }
        }
        let reply: Vec<P> = self
            .passive
            .choose_multiple(rng, nodes.len())
            .cloned()
            .collect();
        out.push(Out::Send {
            to: origin,
            msg: Message::ShuffleReply {
                nodes: reply.clone(),
            },
        });
        for n in nodes {
            self.add_passive(n, &reply, rng);
        }
    }

    fn shuffle<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut HvOutbox<P>) {
        let Some(target) = self.active.choose(rng).cloned() else {
            return;
        };
        let mut nodes = vec![self.me.clone()];
        nodes.extend(
            self.active
                .iter()
                .filter(|p| **p != target)
                .cloned()
                .collect::<Vec<_>>()
                .choose_multiple(rng, self.config.shuffle_active)
                .cloned(),
        );
        nodes.extend(
            self.passive
                .choose_multiple(rng, self.config.shuffle_passive)
                .cloned(),
        );
        self.last_shuffle = nodes[1..].to_vec();
        out.push(Out::Send {
            to: target,
            msg: Message::Shuffle {
                origin: self.me.clone(),
                nodes,
                ttl: self.config.shuffle_ttl,
            },
        });
    }

    fn promote<R: Rng + ?Sized>(&mut self, now: Time, rng: &mut R, out: &mut HvOutbox<P>) {
        if self.active.len() < self.config.min_active
            && self.pending.is_empty()
            && self.passive.is_empty()
        {
            // Under the minimum with nobody left to promote (isolated, or an island cut off by
            // a mass failure): rejoin through a seed or any remembered contact.
            self.rejoin(rng, out);
            return;
        }
        if self.active.len() < self.config.active_size && self.pending.is_empty() {
            self.request_one(now, rng, out);
        }
    }

    fn keepalive<R: Rng + ?Sized>(&mut self, now: Time, rng: &mut R, out: &mut HvOutbox<P>) {
        let silent: Vec<P> = self
            .active
            .iter()
            .filter(|p| {
                self.last_heard
                    .get(*p)
                    .is_some_and(|t| now.saturating_sub(*t) > self.config.peer_timeout)
            })
            .cloned()
            .collect();
        for p in &silent {
            self.stats.failures += 1;
            self.remove_active(p, false, out);
            self.suspect(p, now);
        }
        if !silent.is_empty() {
            self.refill(now, rng, out);
        }
        for p in &self.active {
            out.push(Out::Send {
                to: p.clone(),
                msg: Message::KeepAlive,
            });
        }
    }

    /// A NEIGHBOR request was refused or timed out: retry at once while under the minimum.
    fn request_failed<R: Rng + ?Sized>(&mut self, now: Time, rng: &mut R, out: &mut HvOutbox<P>) {
        if self.active.len() < self.config.min_active && !self.config.without_isolation_repair {
            self.refill(now, rng, out);
        }
    }

    /// Asks passive peers until active + outstanding requests fill the active view.
    fn refill<R: Rng + ?Sized>(&mut self, now: Time, rng: &mut R, out: &mut HvOutbox<P>) {
        while self.active.len() + self.pending.len() < self.config.active_size {
            if !self.request_one(now, rng, out) {
                break;
            }
        }
    }

    /// Sends one NEIGHBOR request to a random passive peer not already asked. High priority
    /// if nothing is active (the paper's rule; Partisan: an isolated node must get a
    /// neighbour at once), even while other requests are out: a low request to a full live
    /// peer is refused, which left isolated nodes stranded after mass failures.
    fn request_one<R: Rng + ?Sized>(
        &mut self,
        _now: Time,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) -> bool {
        let candidates: Vec<&P> = self
            .passive
            .iter()
            .filter(|p| !self.pending.contains_key(*p))
            .collect();
        let Some(peer) = candidates.choose(rng).map(|p| (*p).clone()) else {
            return false;
        };
        let priority = if self.active.is_empty() {
            Priority::High
        } else {
            Priority::Low
        };
        let id = self.next_request;
        self.next_request += 1;
        self.pending.insert(peer.clone(), id);
        self.stats.neighbour_requests += 1;
        out.push(Out::Send {
            to: peer.clone(),
            msg: Message::Neighbour { priority },
        });
        out.push(Out::Timer {
            after: self.config.neighbour_timeout,
            timer: Timer::NeighbourTimeout(peer, id),
        });
        true
    }

    fn add_active<R: Rng + ?Sized>(
        &mut self,
        peer: P,
        now: Time,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) {
        if peer == self.me || self.active.contains(&peer) {
            return;
        }
        if self.active.len() >= self.config.active_size {
            let victim = self.active[rng.random_range(0..self.active.len())].clone();
            self.stats.evictions += 1;
            out.push(Out::Send {
                to: victim.clone(),
                msg: Message::Disconnect { alive: true },
            });
            self.remove_active(&victim, true, out);
        }
        self.passive.retain(|p| *p != peer);
        self.unsuspect(&peer);
        self.active.push(peer.clone());
        self.last_heard.insert(peer.clone(), now);
        out.push(Out::Connect(peer.clone()));
        out.push(Out::Event(Event::NeighbourUp(peer)));
    }

    /// Removes an active peer; keeps it as a passive contact if it is `alive`.
    fn remove_active(&mut self, peer: &P, alive: bool, out: &mut HvOutbox<P>) {
        let Some(i) = self.active.iter().position(|p| p == peer) else {
            return;
        };
        self.active.remove(i);
        self.last_heard.remove(peer);
        out.push(Out::Disconnect(peer.clone()));
        out.push(Out::Event(Event::NeighbourDown(peer.clone())));
        if self.active.is_empty() {
            self.stats.isolations += 1;
        }
        if alive {
            self.remember(peer);
            // A full passive view makes room by dropping its oldest entry.
            if !self.passive.contains(peer) && self.config.passive_size > 0 {
                if self.passive.len() >= self.config.passive_size {
                    self.passive.remove(0);
                }
                self.passive.push(peer.clone());
            }
        }
    }

    /// Adds a contact to the passive view; when full, evicts one of `prefer` if present (the
    /// peers just sent away in a shuffle), else a random entry.
    fn add_passive<R: Rng + ?Sized>(&mut self, peer: P, prefer: &[P], rng: &mut R) {
        if peer == self.me
            || self.active.contains(&peer)
            || self.passive.contains(&peer)
            || self.config.passive_size == 0
        {
            return;
        }
        if self.passive.len() >= self.config.passive_size {
            let i = self
                .passive
                .iter()
                .position(|p| prefer.contains(p))
                .unwrap_or_else(|| rng.random_range(0..self.passive.len()));
            let evicted = self.passive.swap_remove(i);
            self.remember(&evicted);
        }
        self.passive.push(peer);
    }
}

impl<P: Peer> Core<P> for HyParView<P> {
    type Message = Message<P>;
    type Timer = Timer<P>;
    type Event = Event<P>;

    /// The driver lost the connection to `peer` (or could not open it): HyParView's failure
    /// detector. An active peer is dropped and replaced; a peer we were asking is dropped from
    /// the passive view.
    fn peer_down<R: Rng + ?Sized>(
        &mut self,
        peer: &P,
        now: Time,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) {
        if self.left {
            return;
        }
        self.contacts.retain(|p| p != peer);
        if self.probe.as_ref().is_some_and(|(p, _)| p == peer) {
            // The probe could not reach it (crashed, or the partition still holds: a failed
            // dial cannot tell them apart). It stays a suspect until its time is up.
            self.probe = None;
        }
        if self.active.contains(peer) {
            self.stats.failures += 1;
            self.remove_active(peer, false, out);
            self.suspect(peer, now);
            self.refill(now, rng, out);
        } else if self.pending.remove(peer).is_some() {
            self.passive.retain(|p| p != peer);
            self.suspect(peer, now);
            self.request_failed(now, rng, out);
        } else {
            // Perhaps a dead passive contact or rejoin point we wrote to.
            self.passive.retain(|p| p != peer);
        }
    }

    /// Handles a timer set earlier.
    fn on_timer<R: Rng + ?Sized>(
        &mut self,
        timer: Timer<P>,
        now: Time,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) {
        match timer {
            Timer::Shuffle => {
                out.push(Out::Timer {
                    after: self.config.shuffle_interval,
                    timer: Timer::Shuffle,
                });
                if !self.left {
                    self.shuffle(rng, out);
                }
            }
            Timer::Promote => {
                out.push(Out::Timer {
                    after: self.config.promotion_interval,
                    timer: Timer::Promote,
                });
                if !self.left && !self.config.without_isolation_repair {
                    self.promote(now, rng, out);
                    self.probe_suspect(now, rng, out);
                }
            }
            Timer::KeepAlive => {
                out.push(Out::Timer {
                    after: self.config.keepalive_interval,
                    timer: Timer::KeepAlive,
                });
                if !self.left {
                    self.keepalive(now, rng, out);
                }
            }
            Timer::NeighbourTimeout(peer, id) => {
                if self.probe.as_ref() == Some(&(peer.clone(), id)) {
                    // Still unreachable: it stays a suspect until its time is up.
                    self.probe = None;
                } else if self.pending.get(&peer) == Some(&id) {
                    self.pending.remove(&peer);
                    self.passive.retain(|p| *p != peer);
                    self.suspect(&peer, now);
                    self.request_failed(now, rng, out);
                }
            }
        }
    }

    /// Handles a message from `from`.
    fn on_message<R: Rng + ?Sized>(
        &mut self,
        from: P,
        msg: Message<P>,
        now: Time,
        rng: &mut R,
        out: &mut HvOutbox<P>,
    ) {
        if self.left || from == self.me {
            return;
        }
        if self.active.contains(&from) {
            self.last_heard.insert(from.clone(), now);
        }
        match msg {
            Message::Join => self.on_join(from, now, rng, out),
            Message::ForwardJoin { joiner, ttl } => {
                self.heard_of(&joiner);
                self.on_forward_join(from, joiner, ttl, now, rng, out)
            }
            Message::Neighbour { priority } => self.on_neighbour(from, priority, now, rng, out),
            Message::NeighbourReply { accepted } => {
                self.on_neighbour_reply(from, accepted, now, rng, out)
            }
            Message::Disconnect { alive } => self.on_disconnect(from, alive, now, rng, out),
            Message::Shuffle { origin, nodes, ttl } => {
                self.heard_of(&origin);
                self.on_shuffle(from, origin, nodes, ttl, rng, out)
            }
            Message::ShuffleReply { nodes } => {
                self.heard_of(&from);
                let sent = std::mem::take(&mut self.last_shuffle);
                for n in nodes {
                    self.add_passive(n, &sent, rng);
                }
            }
            Message::KeepAlive => {
                if !self.active.contains(&from) && !self.pending.contains_key(&from) {
                    // It holds us, we do not hold it: repair the asymmetry.
                    out.push(Out::Send {
                        to: from,
                        msg: Message::Disconnect { alive: true },
                    });
                }
            }
        }
    }

    fn kind(msg: &Message<P>) -> &'static str {
        match msg {
            Message::Join => "join",
            Message::ForwardJoin { .. } => "forward_join",
            Message::Neighbour { .. } => "neighbour",
            Message::NeighbourReply { .. } => "neighbour_reply",
            Message::Disconnect { .. } => "disconnect",
            Message::Shuffle { .. } => "shuffle",
            Message::ShuffleReply { .. } => "shuffle_reply",
            Message::KeepAlive => "keepalive",
        }
    }
}

/// A uniformly random delay in `(0, period]`, so first ticks spread over one full period.
fn jitter<R: Rng + ?Sized>(period: Duration, rng: &mut R) -> Duration {
    let nanos = period.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(rng.random_range(1..=nanos.max(1)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::overlay::Overlay;
    use crate::testkit::Sim;
    use rand_chacha::ChaCha8Rng;

    /// `n` nodes joining through node 0, one every `gap`; then runs `settle`.
    pub(crate) fn form(seed: u64, n: u64, gap: Duration, settle: Duration) -> Sim<HyParView<u64>> {
        let mut sim = Sim::new(seed);
        sim.add(HyParView::new(0, Config::default()), |h, rng, out| {
            h.start(rng, out)
        });
        for i in 1..n {
            sim.run_for(gap);
            sim.add(HyParView::new(i, Config::default()), |h, rng, out| {
                h.join(vec![0], rng, out)
            });
        }
        sim.run_for(settle);
        sim
    }

    pub(crate) fn overlay(sim: &Sim<HyParView<u64>>) -> Overlay<u64> {
        let mut o = Overlay::new();
        for id in sim.live_ids() {
            o.insert(id, sim.node(id).expect("live").active().to_vec());
        }
        o
    }

    fn check_invariants(sim: &Sim<HyParView<u64>>) {
        for id in sim.live_ids() {
            let h = sim.node(id).expect("live");
            assert!(h.active().len() <= h.config().active_size);
            assert!(h.passive().len() <= h.config().passive_size);
            assert!(!h.active().contains(&id) && !h.passive().contains(&id));
            for p in h.active() {
                assert!(!h.passive().contains(p), "node {id}: {p} in both views");
            }
        }
    }

    #[test]
    fn config_validation() {
        assert_eq!(Config::default().validate(), Ok(()));
        let bad = Config {
            min_active: 9,
            ..Config::default()
        };
        assert!(matches!(bad.validate(), Err(ConfigError::MinActive { .. })));
        let bad = Config {
            prwl: 7,
            ..Config::default()
        };
        assert!(matches!(bad.validate(), Err(ConfigError::Prwl { .. })));
    }

    #[test]
    fn low_priority_is_refused_when_full_high_evicts() {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let config = Config {
            active_size: 2,
            ..Config::default()
        };
        let mut h = HyParView::new(0u64, config);
        let mut out = Vec::new();
        let t = Duration::ZERO;
        h.on_message(
            1,
            Message::Neighbour {
                priority: Priority::Low,
            },
            t,
            &mut rng,
            &mut out,
        );
        h.on_message(
            2,
            Message::Neighbour {
                priority: Priority::Low,
            },
            t,
            &mut rng,
            &mut out,
        );
        assert_eq!(h.active(), &[1, 2]);
        out.clear();
        h.on_message(
            3,
            Message::Neighbour {
                priority: Priority::Low,
            },
            t,
            &mut rng,
            &mut out,
        );
        assert_eq!(h.active(), &[1, 2]);
        assert_eq!(
            out,
            vec![Out::Send {
                to: 3,
                msg: Message::NeighbourReply { accepted: false }
            }]
        );
        out.clear();
        h.on_message(
            3,
            Message::Neighbour {
                priority: Priority::High,
            },
            t,
            &mut rng,
            &mut out,
        );
        assert_eq!(h.active().len(), 2);
        assert!(h.active().contains(&3));
        // The evicted peer is told (DISCONNECT, alive) and kept as a passive contact.
        let evicted = if h.active().contains(&1) { 2 } else { 1 };
        assert!(out.contains(&Out::Send {
            to: evicted,
            msg: Message::Disconnect { alive: true }
        }));
        assert!(out.contains(&Out::Event(Event::NeighbourDown(evicted))));
        assert!(out.contains(&Out::Event(Event::NeighbourUp(3))));
        assert_eq!(h.passive(), &[evicted]);
    }

    #[test]
    fn unwanted_acceptance_is_undone() {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(2);
        let mut h = HyParView::new(0u64, Config::default());
        let mut out = Vec::new();
        // An acceptance nobody asked for (a request that timed out) is answered by DISCONNECT.
        h.on_message(
            7,
            Message::NeighbourReply { accepted: true },
            Duration::ZERO,
            &mut rng,
            &mut out,
        );
        assert!(h.active().is_empty());
        assert_eq!(
            out,
            vec![Out::Send {
                to: 7,
                msg: Message::Disconnect { alive: true }
            }]
        );
        // A keep-alive from a peer that holds us while we do not hold it: same repair.
        out.clear();
        h.on_message(8, Message::KeepAlive, Duration::ZERO, &mut rng, &mut out);
        assert_eq!(
            out,
            vec![Out::Send {
                to: 8,
                msg: Message::Disconnect { alive: true }
            }]
        );
    }

    #[test]
    fn isolated_node_promotes_passive_at_once_with_high_priority() {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        let mut h = HyParView::new(0u64, Config::default());
        let mut out = Vec::new();
        let t = Duration::ZERO;
        h.on_message(
            1,
            Message::Neighbour {
                priority: Priority::Low,
            },
            t,
            &mut rng,
            &mut out,
        );
        h.on_message(
            2,
            Message::ShuffleReply { nodes: vec![5, 6] },
            t,
            &mut rng,
            &mut out,
        );
        assert_eq!(h.passive(), &[5, 6]);
        out.clear();
        h.peer_down(&1, t, &mut rng, &mut out);
        assert!(h.active().is_empty());
        let requests: Vec<&Message<u64>> = out
            .iter()
            .filter_map(|o| match o {
                Out::Send { msg, .. } => Some(msg),
                _ => None,
            })
            .collect();
        // High priority (they cannot be refused) while nothing is active, even with another
        // request out: a refused low request used to strand isolated nodes.
        assert_eq!(
            requests,
            vec![
                &Message::Neighbour {
                    priority: Priority::High
                },
                &Message::Neighbour {
                    priority: Priority::High
                }
            ]
        );
        assert_eq!(h.stats().isolations, 1);
    }

    #[test]
    fn suspect_heard_of_through_the_overlay_is_not_probed_and_a_probe_link_holds_off_others() {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
        let config = Config {
            active_size: 2,
            min_active: 1,
            ..Config::default()
        };
        let mut h = HyParView::new(0u64, config);
        let mut out = Vec::new();
        let t = Duration::ZERO;
        let low = Message::Neighbour {
            priority: Priority::Low,
        };
        let probe = |to: u64| Out::Send {
            to,
            msg: Message::Neighbour {
                priority: Priority::High,
            },
        };
        for p in [1, 2] {
            h.on_message(p, low.clone(), t, &mut rng, &mut out);
        }
        // 2 is lost without a DISCONNECT; 3 and 4 fill the view again.
        h.peer_down(&2, t, &mut rng, &mut out);
        h.on_message(3, low.clone(), t, &mut rng, &mut out);
        assert_eq!(h.suspects().copied().collect::<Vec<_>>(), vec![2]);
        // A SHUFFLE started by 2 reaches us over an active link: 2 is in our part of the
        // overlay, so there is no split to heal and it is dropped unprobed.
        h.on_message(
            1,
            Message::Shuffle {
                origin: 2,
                nodes: vec![2],
                ttl: 3,
            },
            t,
            &mut rng,
            &mut out,
        );
        assert_eq!(h.suspects().count(), 0);
        assert_eq!(h.stats().suspects_cleared, 1);
        out.clear();
        h.on_timer(Timer::Promote, t, &mut rng, &mut out);
        assert!(!out.contains(&probe(2)), "{out:?}");
        // A stale contact in a shuffle is no evidence: 5, lost, stays a suspect though a
        // shuffle carries its id as a passive entry.
        h.peer_down(&3, t, &mut rng, &mut out);
        h.on_message(6, low.clone(), t, &mut rng, &mut out);
        h.peer_down(&6, t, &mut rng, &mut out);
        h.on_message(5, low.clone(), t, &mut rng, &mut out);
        h.peer_down(&5, t, &mut rng, &mut out);
        h.on_message(7, low.clone(), t, &mut rng, &mut out);
        h.on_message(
            1,
            Message::Shuffle {
                origin: 8,
                nodes: vec![8, 5],
                ttl: 3,
            },
            t,
            &mut rng,
            &mut out,
        );
        let mut suspects: Vec<u64> = h.suspects().copied().collect();
        suspects.sort();
        assert_eq!(suspects, vec![3, 5, 6]);
        // A FORWARD_JOIN of 6 (it rejoined on our side) drops it too.
        h.on_message(
            1,
            Message::ForwardJoin { joiner: 6, ttl: 4 },
            t,
            &mut rng,
            &mut out,
        );
        let mut suspects: Vec<u64> = h.suspects().copied().collect();
        suspects.sort();
        assert_eq!(suspects, vec![3, 5]);
        // A probe that makes a link holds off the next for `probe_holdoff`.
        out.clear();
        h.on_timer(Timer::Promote, t, &mut rng, &mut out);
        let first = [3, 5]
            .into_iter()
            .find(|p| out.contains(&probe(*p)))
            .expect("one suspect probed");
        h.on_message(
            first,
            Message::NeighbourReply { accepted: true },
            t,
            &mut rng,
            &mut out,
        );
        assert!(h.active().contains(&first));
        let other = if first == 3 { 5 } else { 3 };
        let soon = t + h.config().probe_holdoff - Duration::from_secs(1);
        out.clear();
        h.on_timer(Timer::Promote, soon, &mut rng, &mut out);
        assert!(!out.contains(&probe(other)), "{out:?}");
        let after = t + h.config().probe_holdoff;
        out.clear();
        h.on_timer(Timer::Promote, after, &mut rng, &mut out);
        assert!(out.contains(&probe(other)), "{out:?}");
    }

    #[test]
    fn suspect_is_probed_even_with_a_full_view_and_linked_when_it_answers() {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(4);
        let config = Config {
            active_size: 2,
            min_active: 1,
            ..Config::default()
        };
        assert_eq!(config.validate(), Ok(()));
        let mut h = HyParView::new(0u64, config);
        let mut out = Vec::new();
        let t = Duration::ZERO;
        for p in [1, 2] {
            h.on_message(
                p,
                Message::Neighbour {
                    priority: Priority::Low,
                },
                t,
                &mut rng,
                &mut out,
            );
        }
        // Peer 2's connection fails (a crash or a partition): it is replaced by 3, and
        // suspected.
        h.peer_down(&2, t, &mut rng, &mut out);
        h.on_message(
            3,
            Message::Neighbour {
                priority: Priority::Low,
            },
            t,
            &mut rng,
            &mut out,
        );
        assert_eq!(h.active(), &[1, 3]);
        assert_eq!(h.suspects().copied().collect::<Vec<_>>(), vec![2]);
        // The promotion tick probes it although the view is full (plain promotion would not).
        out.clear();
        h.on_timer(Timer::Promote, t, &mut rng, &mut out);
        let probe = Out::Send {
            to: 2,
            msg: Message::Neighbour {
                priority: Priority::High,
            },
        };
        assert!(out.contains(&probe), "{out:?}");
        // An unanswered probe keeps the suspect; the next tick probes again.
        out.clear();
        h.on_timer(Timer::NeighbourTimeout(2, 0), t, &mut rng, &mut out);
        h.on_timer(Timer::NeighbourTimeout(2, 1), t, &mut rng, &mut out);
        assert_eq!(h.suspects().count(), 1);
        out.clear();
        h.on_timer(Timer::Promote, t, &mut rng, &mut out);
        assert!(out.contains(&probe), "{out:?}");
        // It answers (the partition healed): linked at once, one old neighbour evicted.
        out.clear();
        h.on_message(
            2,
            Message::NeighbourReply { accepted: true },
            t,
            &mut rng,
            &mut out,
        );
        assert!(h.active().contains(&2) && h.active().len() == 2);
        assert_eq!(h.suspects().count(), 0);
        assert_eq!(h.stats().probe_links, 1);
        assert_eq!(h.stats().evictions, 1);
        // A suspect past its time is given up.
        h.peer_down(&1, t, &mut rng, &mut out);
        h.peer_down(&3, t, &mut rng, &mut out);
        let later = t + h.config().suspect_ttl + Duration::from_secs(1);
        out.clear();
        h.on_timer(Timer::Promote, later, &mut rng, &mut out);
        assert_eq!(h.suspects().count(), 0);
    }

    #[test]
    fn forms_connected_symmetric_overlay_100() {
        let sim = form(7, 100, Duration::from_millis(20), Duration::from_secs(30));
        check_invariants(&sim);
        let r = overlay(&sim).report();
        assert!(r.connected, "{r:?}");
        assert!(r.isolated.is_empty(), "{r:?}");
        assert!(r.asymmetric.is_empty(), "{r:?}");
        let mean =
            r.degree_histogram.iter().map(|(d, c)| d * c).sum::<usize>() as f64 / r.nodes as f64;
        assert!(mean >= 4.0, "mean active degree {mean}: {r:?}");
    }

    #[test]
    fn same_seed_same_overlay() {
        let a = overlay(&form(
            11,
            60,
            Duration::from_millis(10),
            Duration::from_secs(20),
        ));
        let b = overlay(&form(
            11,
            60,
            Duration::from_millis(10),
            Duration::from_secs(20),
        ));
        assert_eq!(a, b);
    }

    #[test]
    fn repairs_after_half_crash_500() {
        let mut sim = form(5, 500, Duration::from_millis(5), Duration::from_secs(30));
        let mut victims: Vec<u64> = sim.live_ids();
        rand::seq::SliceRandom::shuffle(victims.as_mut_slice(), &mut sim.rng);
        victims.truncate(250);
        sim.crash(&victims);
        sim.run_for(Duration::from_secs(30));
        check_invariants(&sim);
        let r = overlay(&sim).report();
        assert_eq!(r.nodes, 250);
        assert!(r.connected, "{r:?}");
        assert!(r.isolated.is_empty(), "{r:?}");
        assert!(r.asymmetric.is_empty(), "{r:?}");
    }
}
