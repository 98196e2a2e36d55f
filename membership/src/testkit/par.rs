//! The lean harness on every core: a conservative parallel discrete-event simulation of the
//! bare cores, bit-identical whatever the number of threads.
//!
//! Nodes are partitioned across threads (node `i` in partition `i % threads`, so that nodes
//! joining one after the other spread over all of them); each partition owns its nodes and
//! its own event queue (the runtime simulator's radix heap, [`TimeQueue`]). Time advances in
//! windows no longer than the minimum link latency, the *lookahead* of conservative
//! simulation (Chandy and Misra, "Distributed simulation: a case study in design and
//! verification of distributed programs", IEEE TSE 5(5), 1979; Fujimoto, "Parallel discrete
//! event simulation", CACM 33(10), 1990, section 3): a message sent in a window arrives at
//! least one minimum latency later, so never inside the window it was sent in. Within a
//! window every partition runs its events alone; messages to another partition's nodes wait
//! in per-destination buffers and are exchanged at the window's barrier. The next window
//! starts at the earliest pending event of any partition (quiet stretches cost nothing).
//!
//! What makes the result independent of the partitioning:
//!
//! - every choice is made by the node's own RNG ([`NodeRng`], seeded from the run's seed
//!   and the node id), message latencies and losses by the sender's;
//! - events are ordered by `(time, origin, origin's sequence number)`: the node that queued
//!   the event (the sender of a message, the node itself for a timer) and how many events it
//!   had queued before. Both are the node's own, so every node sees its events in the same
//!   order whatever partition it sits in and whatever else shares that partition;
//! - the outputs are merged in a fixed order: events reported by the cores by `(time, node)`
//!   (a node's own in the order it reported them), message counts summed.
//!
//! One thread is the same algorithm with one partition. [`ParSim::trace_hash`] folds every
//! processed event (time, node, kind, sender) per node, then over the nodes in id order: the
//! tests compare it across thread counts.
//!
//! Network model as in the sequential harness ([`crate::testkit::Sim`]): latency uniform in
//! `[min, max]` drawn per message, or fixed per pair of nodes ([`ParSim::per_link_latency`],
//! then a hash of the run's seed and the pair: no table), optional loss, `peer_down` to the
//! sender after a round trip for a send to a crashed node, and to the peers connected to a
//! crashed node after one latency. Runs are bit-identical for one seed and one build; they
//! do not reproduce the sequential harness's runs (its one RNG is shared by all nodes).
//!
//! Memory per node beyond the core: its slot (RNG, sequence number, trace hash, the peers it
//! holds connections to, as `u32`s) and one byte of liveness. Node ids are below `2^32`.

use crate::proto::{Core, Out, Outbox, Peer, Time};
use rand::{Rng, SeedableRng};
use rasp_runtime::sim::TimeQueue;
use rayon::prelude::*;

/// Each node's random number generator: xoshiro256++ (Blackman and Vigna, "Scrambled Linear
/// Pseudorandom Number Generators", ACM TOMS 2021), 32 bytes of state, from `rand_xoshiro`,
/// whose output is fixed for a seed on every platform and release (`rand`'s `SmallRng` is
/// the same algorithm today but documented as free to change, which would change every
/// run's trace hash).
pub type NodeRng = rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the parallel harness refuses.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ParError {
    /// At least one thread.
    #[error("testkit::par: threads must be at least 1")]
    NoThreads,
    /// Conservative simulation needs a positive minimum latency (its lookahead).
    #[error("testkit::par: latency bounds must satisfy 0 < min <= max (got {min:?}, {max:?})")]
    Latency {
        /// The minimum given.
        min: Duration,
        /// The maximum given.
        max: Duration,
    },
    /// A loss probability outside `[0, 1]`.
    #[error("testkit::par: drop rate {0} is not in [0, 1]")]
    DropRate(f64),
    /// Node ids are `u32`s.
    #[error("testkit::par: at most 2^32 nodes")]
    TooManyNodes,
    /// The thread pool could not be built.
    #[error("testkit::par: thread pool: {0}")]
    Pool(String),
}

/// What starts a node added with [`ParSim::add_at`]: its id, the node, its RNG, its outbox.
pub type Start<N, P = u64> = fn(
    u64,
    &mut N,
    &mut NodeRng,
    &mut Outbox<P, <N as Core<P>>::Message, <N as Core<P>>::Timer, <N as Core<P>>::Event>,
);

/// A peer id the harness can run: built from and read as its `u32` node number (`u32` for
/// the leanest nodes, `u64` as in the sequential harness).
pub trait SimPeer: Peer + Copy + From<u32> + Into<u64> {}
impl<T: Peer + Copy + From<u32> + Into<u64>> SimPeer for T {}

enum Item<N: Core<P>, P: SimPeer> {
    Deliver { from: u32, to: u32, msg: N::Message },
    Start { node: u32, start: Start<N, P> },
    Timer { node: u32, timer: N::Timer },
    PeerDown { node: u32, peer: u32 },
}

/// One queued item with its time and order key, on its way to another partition.
type Entry<N, P> = (u64, u64, Item<N, P>);

/// A node and what the harness keeps for it.
struct Slot<N> {
    node: Option<N>,
    rng: NodeRng,
    /// Events this node has queued (the low half of their order keys).
    seq: u32,
    /// The node's trace: every event processed for it, folded in order.
    hash: u64,
    /// Peers this node holds a connection to (its `Out::Connect`s not yet disconnected).
    conns: Vec<u32>,
}

/// The network settings every partition reads.
struct Net {
    /// One byte per node: live or crashed. Written only between runs.
    alive: Vec<bool>,
    parts: usize,
    seed: u64,
    min_ns: u64,
    max_ns: u64,
    drop_rate: f64,
    per_link: bool,
}

impl Net {
    /// A latency in `[min, max]` drawn from `rng`.
    fn latency(&self, rng: &mut NodeRng) -> u64 {
        rng.random_range(self.min_ns..=self.max_ns)
    }

    /// The delay of one message from `a` to `b`.
    fn latency_between(&self, rng: &mut NodeRng, a: u32, b: u32) -> u64 {
        if !self.per_link {
            return self.latency(rng);
        }
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let h = mix(mix(self.seed ^ 0x6c69_6e6b, lo), hi);
        self.min_ns + h % (self.max_ns - self.min_ns + 1)
    }
}

/// One partition: its nodes (ids `p`, `p + parts`, …), its queue and its outputs.
struct Part<N: Core<P>, P: SimPeer> {
    index: usize,
    slots: Vec<Slot<N>>,
    queue: TimeQueue<Item<N, P>>,
    /// Items for each other partition, queued in the current window.
    outbox: Vec<Vec<Entry<N, P>>>,
    /// Items from each other partition, received at the last barrier.
    inbox: Vec<Vec<Entry<N, P>>>,
    processed: u64,
    events: Vec<(Time, u64, N::Event)>,
    sent: Vec<(&'static str, u64)>,
    keep: fn(&N::Event) -> bool,
}

/// The order key of an event queued by `origin` as its `seq`-th.
fn key(origin: u32, seq: u32) -> u64 {
    (u64::from(origin) << 32) | u64::from(seq)
}

/// A 64-bit mixing step (the finaliser of Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014, SplitMix64).
fn mix(h: u64, x: u64) -> u64 {
    let mut z = (h ^ x).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Folds a kind name into a hash (FNV-1a over its bytes).
fn kind_hash(kind: &str) -> u64 {
    kind.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl<N: Core<P>, P: SimPeer> Part<N, P> {
    fn slot(&mut self, id: u32, parts: usize) -> &mut Slot<N> {
        &mut self.slots[id as usize / parts]
    }

    /// Queues `item` at `at`, ordered as `origin`'s next event.
    fn push(&mut self, net: &Net, origin: u32, at: u64, item: Item<N, P>, dest: u32) {
        let slot = self.slot(origin, net.parts);
        let k = key(origin, slot.seq);
        slot.seq = slot.seq.wrapping_add(1);
        let part = dest as usize % net.parts;
        if part == self.index {
            self.queue.push(at, k, item);
        } else {
            self.outbox[part].push((at, k, item));
        }
    }

    fn count(&mut self, kind: &'static str) {
        match self.sent.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.sent.push((kind, 1)),
        }
    }

    /// Carries out what node `id` asked for at `now` (nanoseconds).
    fn execute(
        &mut self,
        net: &Net,
        id: u32,
        now: u64,
        out: &mut Outbox<P, N::Message, N::Timer, N::Event>,
    ) {
        for o in out.drain(..) {
            match o {
                Out::Send { to, msg } => {
                    self.count(N::kind(&msg));
                    let to = match u32::try_from(to.into()) {
                        Ok(t) if net.alive.get(t as usize).copied().unwrap_or(false) => t,
                        // A node never added or crashed (or an id no node can have): the
                        // dial fails after a round trip.
                        _ => {
                            let peer = u32::try_from(to.into()).unwrap_or(u32::MAX);
                            let rtt = 2 * net.latency(&mut self.slot(id, net.parts).rng);
                            self.push(net, id, now + rtt, Item::PeerDown { node: id, peer }, id);
                            continue;
                        }
                    };
                    let rng = &mut self.slot(id, net.parts).rng;
                    if net.drop_rate > 0.0 && rng.random_bool(net.drop_rate) {
                        continue;
                    }
                    let d = net.latency_between(rng, id, to);
                    self.push(net, id, now + d, Item::Deliver { from: id, to, msg }, to);
                }
                Out::Connect(p) => {
                    if let Ok(p) = u32::try_from(p.into()) {
                        let conns = &mut self.slot(id, net.parts).conns;
                        if !conns.contains(&p) {
                            conns.push(p);
                        }
                    }
                }
                Out::Disconnect(p) => {
                    if let Ok(p) = u32::try_from(p.into()) {
                        self.slot(id, net.parts).conns.retain(|c| *c != p);
                    }
                }
                Out::Timer { after, timer } => {
                    let at = now.saturating_add(after.as_nanos() as u64);
                    self.push(net, id, at, Item::Timer { node: id, timer }, id);
                }
                Out::Event(e) => {
                    if (self.keep)(&e) {
                        self.events
                            .push((Duration::from_nanos(now), u64::from(id), e));
                    }
                }
            }
        }
    }

    /// Moves the items received at the barrier into the queue.
    fn receive(&mut self) {
        for q in 0..self.inbox.len() {
            let mut inbox = std::mem::take(&mut self.inbox[q]);
            for (at, k, item) in inbox.drain(..) {
                self.queue.push(at, k, item);
            }
            self.inbox[q] = inbox;
        }
    }

    /// Processes every event due before `end` (nanoseconds, exclusive).
    fn run_window(&mut self, net: &Net, end: u64) {
        self.receive();
        let mut out = Vec::new();
        while let Some((at, _)) = self.queue.peek() {
            if at >= end {
                break;
            }
            let (_, _, item) = self.queue.pop().expect("peeked");
            self.processed += 1;
            let now = Duration::from_nanos(at);
            let (id, code, other) = match &item {
                Item::Deliver { from, to, msg } => (*to, kind_hash(N::kind(msg)), *from),
                Item::Timer { node, .. } => (*node, 1, *node),
                Item::PeerDown { node, peer } => (*node, 2, *peer),
                Item::Start { node, .. } => (*node, 3, *node),
            };
            let slot = self.slot(id, net.parts);
            slot.hash = mix(mix(mix(slot.hash, at), code), u64::from(other));
            let Some(n) = slot.node.as_mut() else {
                continue;
            };
            let rng = &mut slot.rng;
            match item {
                Item::Deliver { from, msg, .. } => {
                    n.on_message(P::from(from), msg, now, rng, &mut out)
                }
                Item::Timer { timer, .. } => n.on_timer(timer, now, rng, &mut out),
                Item::PeerDown { peer, .. } => n.peer_down(&P::from(peer), now, rng, &mut out),
                Item::Start { start, .. } => start(u64::from(id), n, rng, &mut out),
            }
            self.execute(net, id, at, &mut out);
        }
    }

    /// The earliest pending time in this partition, its outgoing buffers included.
    fn next_at(&self) -> Option<u64> {
        let queued = self.queue.peek().map(|(at, _)| at);
        let outgoing = self.outbox.iter().flatten().map(|(at, _, _)| *at).min();
        match (queued, outgoing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The parallel harness: any [`Core`] over `u32` or `u64` peers, nodes partitioned across
/// threads.
pub struct ParSim<N: Core<P>, P: SimPeer = u64> {
    parts: Vec<Part<N, P>>,
    net: Net,
    pool: Option<rayon::ThreadPool>,
    now: Time,
    /// Events reported by the cores (those [`ParSim::keep_events`] keeps), with time and node,
    /// ordered by `(time, node)`.
    pub events: Vec<(Time, u64, N::Event)>,
}

impl<N, P> ParSim<N, P>
where
    P: SimPeer + Send + Sync,
    N: Core<P> + Send,
    N::Message: Send,
    N::Timer: Send,
    N::Event: Send,
{
    /// An empty network seeded with `seed`, its nodes spread over `threads` partitions run
    /// by as many threads. Latency uniform in 10–50 ms, no loss.
    pub fn new(seed: u64, threads: usize) -> Result<Self, ParError> {
        if threads == 0 {
            return Err(ParError::NoThreads);
        }
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("par-sim-{i}"))
                    .build()
                    .map_err(|e| ParError::Pool(e.to_string()))?,
            )
        } else {
            None
        };
        let parts = (0..threads)
            .map(|index| Part {
                index,
                slots: Vec::new(),
                queue: TimeQueue::new(),
                outbox: (0..threads).map(|_| Vec::new()).collect(),
                inbox: (0..threads).map(|_| Vec::new()).collect(),
                processed: 0,
                events: Vec::new(),
                sent: Vec::new(),
                keep: |_| true,
            })
            .collect();
        Ok(ParSim {
            parts,
            net: Net {
                alive: Vec::new(),
                parts: threads,
                seed,
                min_ns: 10_000_000,
                max_ns: 50_000_000,
                drop_rate: 0.0,
                per_link: false,
            },
            pool,
            now: Duration::ZERO,
            events: Vec::new(),
        })
    }

    /// Sets the latency bounds (`0 < min <= max`; `min` is the window length).
    pub fn set_latency(&mut self, min: Duration, max: Duration) -> Result<(), ParError> {
        let (lo, hi) = (min.as_nanos(), max.as_nanos());
        if lo == 0 || lo > hi || hi > u128::from(u64::MAX / 4) {
            return Err(ParError::Latency { min, max });
        }
        self.net.min_ns = lo as u64;
        self.net.max_ns = hi as u64;
        Ok(())
    }

    /// Sets the probability that a message is lost.
    pub fn set_drop_rate(&mut self, p: f64) -> Result<(), ParError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(ParError::DropRate(p));
        }
        self.net.drop_rate = p;
        Ok(())
    }

    /// Fixes the latency per pair of nodes (both directions) instead of drawing it per
    /// message: messages between two nodes then keep their order, as on one connection.
    pub fn per_link_latency(&mut self, on: bool) {
        self.net.per_link = on;
    }

    /// Keeps only the core events `keep` accepts in [`ParSim::events`] (all by default): a
    /// run of millions of nodes need not hold every neighbour change.
    pub fn keep_events(&mut self, keep: fn(&N::Event) -> bool) {
        for p in &mut self.parts {
            p.keep = keep;
        }
    }

    /// The number of partitions (threads).
    pub fn threads(&self) -> usize {
        self.parts.len()
    }

    /// The virtual clock.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The number of nodes added (crashed ones included).
    pub fn len(&self) -> u64 {
        self.net.alive.len() as u64
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.net.alive.is_empty()
    }

    /// Adds a node (its id is the number of nodes before it) and runs `init` on it with its
    /// RNG.
    pub fn add(
        &mut self,
        node: N,
        init: impl FnOnce(&mut N, &mut NodeRng, &mut Outbox<P, N::Message, N::Timer, N::Event>),
    ) -> Result<u64, ParError> {
        let id = u32::try_from(self.net.alive.len()).map_err(|_| ParError::TooManyNodes)?;
        let parts = self.parts.len();
        let seed = mix(mix(self.net.seed, 0x6e6f_6465), u64::from(id));
        self.parts[id as usize % parts].slots.push(Slot {
            node: Some(node),
            rng: NodeRng::seed_from_u64(seed),
            seq: 0,
            hash: 0,
            conns: Vec::new(),
        });
        self.net.alive.push(true);
        self.with(u64::from(id), init);
        Ok(u64::from(id))
    }

    /// Makes room for `nodes` more nodes in all (spread over the partitions as they will be
    /// added), so that a large run does not grow its tables by doubling.
    pub fn reserve(&mut self, nodes: u64) {
        let parts = self.parts.len() as u64;
        let first = self.len();
        for (i, p) in self.parts.iter_mut().enumerate() {
            // Ids below x in partition i: (x + parts - 1 - i) / parts.
            let i = i as u64;
            let count = (first + nodes + parts - 1 - i) / parts - (first + parts - 1 - i) / parts;
            p.slots.reserve_exact(count as usize);
        }
        self.net
            .alive
            .reserve_exact(usize::try_from(nodes).unwrap_or(usize::MAX));
    }

    /// Adds a node (its id is the number of nodes before it) that `start` starts at `at` (not
    /// before the current time), inside the run: many joins then share the parallel windows
    /// instead of each stopping the run. Messages reach the node from now on (a peer can only
    /// learn its id from it).
    pub fn add_at(&mut self, node: N, at: Time, start: Start<N, P>) -> Result<u64, ParError> {
        let id = self.add(node, |_, _, _| {})?;
        let id32 = id as u32;
        let at = at.max(self.now).as_nanos() as u64;
        let parts = self.parts.len();
        let part = &mut self.parts[id as usize % parts];
        part.push(&self.net, id32, at, Item::Start { node: id32, start }, id32);
        Ok(id)
    }

    /// Runs `f` on a live node with its RNG, at the current time, and carries out what it
    /// asks for. Does nothing for a crashed or unknown node.
    pub fn with(
        &mut self,
        id: u64,
        f: impl FnOnce(&mut N, &mut NodeRng, &mut Outbox<P, N::Message, N::Timer, N::Event>),
    ) {
        let Some(id) = u32::try_from(id).ok().filter(|&i| self.alive(u64::from(i))) else {
            return;
        };
        let parts = self.parts.len();
        let part = &mut self.parts[id as usize % parts];
        let slot = part.slot(id, parts);
        let mut out = Vec::new();
        if let Some(n) = slot.node.as_mut() {
            f(n, &mut slot.rng, &mut out);
        }
        part.execute(&self.net, id, self.now.as_nanos() as u64, &mut out);
        self.collect_events();
    }

    /// Whether node `id` exists and has not crashed.
    pub fn alive(&self, id: u64) -> bool {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.net.alive.get(i).copied())
            .unwrap_or(false)
    }

    /// Ids of the live nodes.
    pub fn live_ids(&self) -> Vec<u64> {
        (0..self.len()).filter(|i| self.alive(*i)).collect()
    }

    /// A live node.
    pub fn node(&self, id: u64) -> Option<&N> {
        let i = usize::try_from(id).ok()?;
        let parts = self.parts.len();
        self.parts
            .get(i % parts)?
            .slots
            .get(i / parts)?
            .node
            .as_ref()
    }

    /// Every live node with its id, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = (u64, &N)> {
        (0..self.len()).filter_map(|i| self.node(i).map(|n| (i, n)))
    }

    /// Crashes nodes: they stop at once; peers holding a connection to them learn it after
    /// one latency (drawn by each such peer).
    pub fn crash(&mut self, ids: &[u64]) {
        let parts = self.parts.len();
        for &id in ids {
            if let Some(a) = usize::try_from(id)
                .ok()
                .and_then(|i| self.net.alive.get_mut(i))
            {
                *a = false;
                let i = id as usize;
                let slot = &mut self.parts[i % parts].slots[i / parts];
                slot.node = None;
                slot.conns = Vec::new();
            }
        }
        let now = self.now.as_nanos() as u64;
        for part in &mut self.parts {
            for s in 0..part.slots.len() {
                let id = (s * parts + part.index) as u32;
                let slot = &mut part.slots[s];
                if slot.node.is_none() {
                    continue;
                }
                let (dead, kept): (Vec<u32>, Vec<u32>) = slot
                    .conns
                    .iter()
                    .partition(|c| !self.net.alive[**c as usize]);
                if dead.is_empty() {
                    continue;
                }
                slot.conns = kept;
                for peer in dead {
                    let d = self.net.latency(&mut part.slots[s].rng);
                    part.push(
                        &self.net,
                        id,
                        now + d,
                        Item::PeerDown { node: id, peer },
                        id,
                    );
                }
            }
        }
    }

    /// How many queued events (deliveries, timers, failure notices) have been processed,
    /// those for crashed nodes included.
    pub fn processed(&self) -> u64 {
        self.parts.iter().map(|p| p.processed).sum()
    }

    /// Messages sent so far of kind `kind` ([`Core::kind`]).
    pub fn sent(&self, kind: &str) -> u64 {
        self.parts
            .iter()
            .flat_map(|p| &p.sent)
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    /// Messages sent so far, by kind.
    pub fn sent_by_kind(&self) -> BTreeMap<&'static str, u64> {
        let mut m = BTreeMap::new();
        for (k, n) in self.parts.iter().flat_map(|p| &p.sent) {
            *m.entry(*k).or_default() += n;
        }
        m
    }

    /// The run's trace: every processed event (time, node, kind, sender or peer), folded per
    /// node in processing order, then over the nodes in id order. Equal for every thread
    /// count.
    pub fn trace_hash(&self) -> u64 {
        let parts = self.parts.len();
        (0..self.len() as usize).fold(0, |h, i| {
            mix(h, self.parts[i % parts].slots[i / parts].hash)
        })
    }

    /// When the next queued event is due, if any.
    pub fn next_at(&self) -> Option<Time> {
        self.parts
            .iter()
            .filter_map(Part::next_at)
            .min()
            .map(Duration::from_nanos)
    }

    /// Swaps the outgoing buffers into their destinations' inboxes (the barrier's exchange);
    /// the emptied inboxes become the new outboxes, keeping their capacity.
    fn exchange(&mut self) {
        let n = self.parts.len();
        for q in 0..n {
            for d in 0..n {
                if q == d || self.parts[q].outbox[d].is_empty() {
                    continue;
                }
                let full = std::mem::take(&mut self.parts[q].outbox[d]);
                let empty = std::mem::replace(&mut self.parts[d].inbox[q], full);
                self.parts[q].outbox[d] = empty;
            }
        }
    }

    /// Merges the events the partitions reported since the last merge, by `(time, node)`.
    /// Called after every window: the events of one window are all earlier than the next
    /// window's, so sorting each window's share sorts them all.
    fn collect_events(&mut self) {
        let first = self.events.len();
        for p in &mut self.parts {
            if p.events.is_empty() {
                continue;
            }
            self.events.append(&mut p.events);
            // A window's events are few; a partition keeps no large buffer beside the merged
            // one.
            if p.events.capacity() > 1024 {
                p.events = Vec::new();
            }
        }
        if self.parts.len() > 1 {
            self.events[first..].sort_by_key(|(t, node, _)| (*t, *node));
        }
    }

    /// Processes events up to and including time `until`.
    pub fn run_until(&mut self, until: Time) {
        let limit = until.as_nanos() as u64;
        let lookahead = self.net.min_ns;
        loop {
            self.exchange();
            let next = self
                .parts
                .iter()
                .filter_map(|p| {
                    let inbox = p.inbox.iter().flatten().map(|(at, _, _)| *at).min();
                    match (p.queue.peek().map(|(at, _)| at), inbox) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                })
                .min();
            let Some(start) = next.filter(|&t| t <= limit) else {
                break;
            };
            let end = start.saturating_add(lookahead).min(limit.saturating_add(1));
            let net = &self.net;
            match &self.pool {
                None => {
                    for p in &mut self.parts {
                        p.run_window(net, end);
                    }
                }
                Some(pool) => {
                    let parts = &mut self.parts;
                    pool.install(|| parts.par_iter_mut().for_each(|p| p.run_window(net, end)));
                }
            }
            self.collect_events();
        }
        // Items received but not yet due stay in the inboxes until the next run; move them
        // into the queues so that `next_at` and the next window see them.
        for p in &mut self.parts {
            p.receive();
        }
        self.now = self.now.max(until);
        self.collect_events();
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, PeerService, ServiceEvent};
    use std::collections::BTreeSet;

    /// What a run leaves that must not depend on the thread count.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        trace: u64,
        processed: u64,
        sent: BTreeMap<&'static str, u64>,
        views: Vec<(u64, Vec<u64>)>,
        delivered: Vec<(Time, u64, u32, u32)>,
    }

    /// How to rerun the comparison.
    const REPRO: &str = "reproduce: cargo test --release -p rasp-membership --lib testkit::par";

    /// `n` nodes join through nodes 0–2, one every millisecond; node 5 crashes after the
    /// overlay formed, then node 7 broadcasts three times.
    fn run<P: SimPeer + Send + Sync>(n: u32, threads: usize, seed: u64) -> Outcome {
        let mut sim: ParSim<PeerService<P, u32>, P> = ParSim::new(seed, threads).expect("sim");
        for i in 0..n {
            let node = PeerService::new(P::from(i), Config::default()).expect("config");
            let seeds: Vec<P> = (0..i.min(3)).map(P::from).collect();
            sim.add(node, |s, rng, out| {
                if seeds.is_empty() {
                    s.start(rng, out)
                } else {
                    s.join(seeds, Duration::ZERO, rng, out)
                }
            })
            .expect("add");
            sim.run_for(Duration::from_millis(1));
        }
        sim.run_for(Duration::from_secs(10));
        sim.crash(&[5]);
        sim.run_for(Duration::from_secs(6));
        sim.events.clear();
        for k in 0..3 {
            sim.with(7, |s, rng, out| {
                s.broadcast(k, rng, out);
            });
            sim.run_for(Duration::from_secs(2));
        }
        let delivered = sim
            .events
            .iter()
            .filter_map(|(t, node, e)| match e {
                ServiceEvent::Delivered { payload, round, .. } => {
                    Some((*t, *node, *payload, *round))
                }
                _ => None,
            })
            .collect();
        Outcome {
            trace: sim.trace_hash(),
            processed: sim.processed(),
            sent: sim.sent_by_kind(),
            views: sim
                .nodes()
                .map(|(id, s)| (id, s.neighbours().iter().map(|&p| p.into()).collect()))
                .collect(),
            delivered,
        }
    }

    /// The same run on 1, 2 and 4 threads: the same trace, the same views, the same
    /// deliveries at the same times. And the run is a real one: every live node but the
    /// sender delivers each broadcast, and every live node has neighbours. `u32` peer ids
    /// give the same run as `u64`s.
    #[test]
    fn one_two_and_four_threads_give_the_same_run() {
        let n = 300;
        for seed in [1, 2] {
            let one = run::<u64>(n, 1, seed);
            for threads in [2, 4] {
                let other = run::<u64>(n, threads, seed);
                assert_eq!(
                    one.trace, other.trace,
                    "seed {seed}, {threads} threads: trace differs ({REPRO})"
                );
                assert_eq!(one, other, "seed {seed}, {threads} threads ({REPRO})");
            }
            assert_eq!(
                one,
                run::<u32>(n, 2, seed),
                "seed {seed}, u32 peers ({REPRO})"
            );
            let n = u64::from(n);
            assert_eq!(one.views.len() as u64, n - 1);
            assert!(one.views.iter().all(|(_, v)| !v.is_empty()), "seed {seed}");
            for k in 0..3 {
                let reached: BTreeSet<u64> = one
                    .delivered
                    .iter()
                    .filter(|d| d.2 == k)
                    .map(|d| d.1)
                    .collect();
                assert_eq!(reached.len() as u64, n - 2, "seed {seed}, broadcast {k}");
            }
            assert!(one.sent.contains_key("hv"), "{:?}", one.sent);
        }
    }

    /// Another seed gives another run.
    #[test]
    fn the_seed_changes_the_run() {
        assert_ne!(run::<u64>(50, 2, 1).trace, run::<u64>(50, 2, 2).trace);
    }

    /// Bad settings are errors, not panics.
    #[test]
    fn refuses_bad_settings() {
        type S = ParSim<PeerService<u64, u32>>;
        assert_eq!(S::new(1, 0).err(), Some(ParError::NoThreads));
        let mut sim = S::new(1, 1).expect("sim");
        let zero = Duration::ZERO;
        let ms = Duration::from_millis(1);
        assert!(sim.set_latency(zero, ms).is_err());
        assert!(sim.set_latency(ms * 2, ms).is_err());
        assert!(sim.set_latency(ms, ms).is_ok());
        assert!(sim.set_drop_rate(1.5).is_err());
        assert!(sim.set_drop_rate(f64::NAN).is_err());
        // Unknown nodes are ignored.
        sim.with(99, |_, _, _| unreachable!("no node 99"));
        assert!(!sim.alive(u64::MAX));
        assert!(sim.node(u64::MAX).is_none());
    }
}
