//! A tiny deterministic harness for the sans-IO cores (tests only): nodes are `u64`s, one
//! seeded ChaCha RNG makes every choice, latency is uniform in 10–50 ms (iroh-gossip's
//! simulator setting) drawn for every message, or once per link ([`Sim::per_link_latency`],
//! iroh-gossip's `LatencyConfig::Dynamic`: a fixed delay per pair of nodes), a crashed node's open connections report `peer_down`
//! to the other side after one latency, and a send to a crashed node reports `peer_down` to the
//! sender after a round trip (a failed dial).
//!
//! The membership atom runs in the runtime's simulator (see `tests/sim.rs`); this harness
//! drives the bare cores with far less overhead per node, for unit tests and for the
//! large-scale example (`examples/overlay_scale.rs`). It runs any [`Core`] over `u64` peers
//! (HyParView alone, Plumtree, the whole [`PeerService`](crate::PeerService)): nothing here
//! knows a protocol.
//!
//! [`par`] is the same model on every core: a conservative parallel simulation with one RNG
//! per node, bit-identical whatever the number of threads (the scale example's default at
//! large sizes).

use crate::proto::{Core, Out, Outbox, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rasp_runtime::sim::TimeQueue;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub mod par;

enum Item<N: Core<u64>> {
    Deliver { from: u64, to: u64, msg: N::Message },
    Timer { node: u64, timer: N::Timer },
    PeerDown { node: u64, peer: u64 },
}

/// The harness.
pub struct Sim<N: Core<u64>> {
    /// The nodes by id; `None` once crashed.
    pub nodes: Vec<Option<N>>,
    /// The virtual clock.
    pub now: Time,
    /// The one RNG.
    pub rng: ChaCha8Rng,
    /// Pending items by (nanoseconds, sequence number): the runtime simulator's queue.
    queue: TimeQueue<Item<N>>,
    seq: u64,
    processed: u64,
    conns: BTreeSet<(u64, u64)>,
    /// Events reported by the cores, with time and node.
    pub events: Vec<(Time, u64, N::Event)>,
    /// Messages sent, by kind.
    pub sent: std::collections::BTreeMap<&'static str, u64>,
    /// Probability that a message is lost.
    pub drop_rate: f64,
    /// Lower bound of the uniform latency.
    pub min_latency: Duration,
    /// Upper bound of the uniform latency.
    pub max_latency: Duration,
    /// Draw the latency once per pair of nodes (both directions, the first time they talk)
    /// instead of once per message: messages between two nodes then keep their order, as on
    /// one connection. Off by default.
    pub per_link_latency: bool,
    link_latency: BTreeMap<(u64, u64), Duration>,
}

impl<N: Core<u64>> Sim<N> {
    /// An empty network seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Sim {
            nodes: Vec::new(),
            now: Duration::ZERO,
            rng: ChaCha8Rng::seed_from_u64(seed),
            queue: TimeQueue::new(),
            seq: 0,
            processed: 0,
            conns: BTreeSet::new(),
            events: Vec::new(),
            sent: Default::default(),
            drop_rate: 0.0,
            min_latency: Duration::from_millis(10),
            max_latency: Duration::from_millis(50),
            per_link_latency: false,
            link_latency: BTreeMap::new(),
        }
    }

    /// Adds a node (its id is its index) and runs `init` on it.
    pub fn add(
        &mut self,
        node: N,
        init: impl FnOnce(&mut N, &mut ChaCha8Rng, &mut Outbox<u64, N::Message, N::Timer, N::Event>),
    ) -> u64 {
        let id = self.nodes.len() as u64;
        self.nodes.push(Some(node));
        self.with(id, init);
        id
    }

    /// Runs `f` on a live node and executes what it asks for.
    pub fn with(
        &mut self,
        id: u64,
        f: impl FnOnce(&mut N, &mut ChaCha8Rng, &mut Outbox<u64, N::Message, N::Timer, N::Event>),
    ) {
        let mut out = Vec::new();
        if let Some(Some(n)) = self.nodes.get_mut(id as usize) {
            f(n, &mut self.rng, &mut out);
        }
        self.execute(id, out);
    }

    /// Whether node `id` exists and has not crashed.
    pub fn alive(&self, id: u64) -> bool {
        matches!(self.nodes.get(id as usize), Some(Some(_)))
    }

    /// Ids of the live nodes.
    pub fn live_ids(&self) -> Vec<u64> {
        (0..self.nodes.len() as u64)
            .filter(|i| self.alive(*i))
            .collect()
    }

    /// A live node.
    pub fn node(&self, id: u64) -> Option<&N> {
        self.nodes.get(id as usize).and_then(|n| n.as_ref())
    }

    fn latency(&mut self) -> Duration {
        let lo = self.min_latency.as_micros() as u64;
        let hi = self.max_latency.as_micros() as u64;
        Duration::from_micros(self.rng.random_range(lo..=hi))
    }

    /// The delay of one message from `a` to `b`: drawn now, or the pair's own delay with
    /// [`Sim::per_link_latency`].
    fn latency_between(&mut self, a: u64, b: u64) -> Duration {
        if !self.per_link_latency {
            return self.latency();
        }
        let key = (a.min(b), a.max(b));
        if let Some(d) = self.link_latency.get(&key) {
            return *d;
        }
        let d = self.latency();
        self.link_latency.insert(key, d);
        d
    }

    /// How many queued events (deliveries, timers, failure notices) have been processed,
    /// those for crashed nodes included.
    pub fn processed(&self) -> u64 {
        self.processed
    }

    /// When the next queued event is due, if any.
    pub fn next_at(&self) -> Option<Time> {
        self.queue.peek().map(|(at, _)| Duration::from_nanos(at))
    }

    fn push(&mut self, after: Duration, item: Item<N>) {
        self.seq += 1;
        let at = (self.now + after).as_nanos() as u64;
        self.queue.push(at, self.seq, item);
    }

    fn execute(&mut self, id: u64, out: Outbox<u64, N::Message, N::Timer, N::Event>) {
        for o in out {
            match o {
                Out::Send { to, msg } => {
                    *self.sent.entry(N::kind(&msg)).or_default() += 1;
                    if !self.alive(to) {
                        let rtt = self.latency() * 2;
                        self.push(rtt, Item::PeerDown { node: id, peer: to });
                        continue;
                    }
                    if self.drop_rate > 0.0 && self.rng.random_bool(self.drop_rate) {
                        continue;
                    }
                    let d = self.latency_between(id, to);
                    self.push(d, Item::Deliver { from: id, to, msg });
                }
                Out::Connect(p) => {
                    self.conns.insert((id, p));
                }
                Out::Disconnect(p) => {
                    self.conns.remove(&(id, p));
                }
                Out::Timer { after, timer } => self.push(after, Item::Timer { node: id, timer }),
                Out::Event(e) => self.events.push((self.now, id, e)),
            }
        }
    }

    /// Crashes nodes: they stop at once; peers holding a connection to them learn it after
    /// one latency.
    pub fn crash(&mut self, ids: &[u64]) {
        let dead: BTreeSet<u64> = ids.iter().copied().collect();
        for id in &dead {
            if let Some(slot) = self.nodes.get_mut(*id as usize) {
                *slot = None;
            }
        }
        let watchers: Vec<(u64, u64)> = self
            .conns
            .iter()
            .filter(|(a, b)| dead.contains(b) && !dead.contains(a))
            .copied()
            .collect();
        self.conns
            .retain(|(a, b)| !dead.contains(a) && !dead.contains(b));
        for (a, b) in watchers {
            let d = self.latency();
            self.push(d, Item::PeerDown { node: a, peer: b });
        }
    }

    /// Processes events up to and including time `until`.
    pub fn run_until(&mut self, until: Time) {
        let limit = until.as_nanos() as u64;
        while let Some((at, _)) = self.queue.peek() {
            if at > limit {
                break;
            }
            let (_, _, item) = self.queue.pop().expect("peeked");
            let at = Duration::from_nanos(at);
            self.now = at;
            self.processed += 1;
            let mut out = Vec::new();
            let id = match item {
                Item::Deliver { from, to, msg } => {
                    let Some(Some(n)) = self.nodes.get_mut(to as usize) else {
                        continue;
                    };
                    n.on_message(from, msg, at, &mut self.rng, &mut out);
                    to
                }
                Item::Timer { node, timer } => {
                    let Some(Some(n)) = self.nodes.get_mut(node as usize) else {
                        continue;
                    };
                    n.on_timer(timer, at, &mut self.rng, &mut out);
                    node
                }
                Item::PeerDown { node, peer } => {
                    let Some(Some(n)) = self.nodes.get_mut(node as usize) else {
                        continue;
                    };
                    n.peer_down(&peer, at, &mut self.rng, &mut out);
                    node
                }
            };
            self.execute(id, out);
        }
        self.now = until;
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }
}

/// The kind under which [`Sim::sent`] counts payload-carrying broadcast messages (for RMR).
pub use crate::proto::PAYLOAD;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plumtree::{self, Plumtree};
    use crate::{gossip, gossip::Gossip};

    /// Node `i` of `n` on a ring with chords to `i ± 3`: every node has four neighbours.
    fn mesh(i: u64, n: u64) -> [u64; 4] {
        [(i + 1) % n, (i + n - 1) % n, (i + 3) % n, (i + n - 3) % n]
    }

    /// The harness runs a bare broadcast core as it runs the whole service: Plumtree over a
    /// fixed mesh reaches everyone, and a second broadcast goes over the tree its first one
    /// pruned (one payload per node but the origin).
    #[test]
    fn runs_bare_plumtree_and_gossip() {
        let n = 30;
        let mut sim: Sim<Plumtree<u64, u32>> = Sim::new(1);
        for i in 0..n {
            sim.add(
                Plumtree::new(i, plumtree::Config::default()),
                |p, _, out| {
                    for j in mesh(i, n) {
                        p.neighbour_up(j, out);
                    }
                },
            );
        }
        let mut payloads = Vec::new();
        for payload in [7, 8] {
            sim.with(0, |p, _, out| {
                p.broadcast(payload, out);
            });
            sim.run_for(Duration::from_secs(2));
            payloads.push(sim.sent[PAYLOAD]);
        }
        let delivered = |sim: &Sim<Plumtree<u64, u32>>, payload: u32| {
            let nodes: BTreeSet<u64> = sim
                .events
                .iter()
                .filter(|(_, _, plumtree::Event::Delivered { payload: p, .. })| *p == payload)
                .map(|(_, node, _)| *node)
                .collect();
            nodes.len() as u64
        };
        assert_eq!(delivered(&sim, 7), n - 1);
        assert_eq!(delivered(&sim, 8), n - 1);
        assert!(payloads[0] > n - 1, "{payloads:?}");
        assert_eq!(payloads[1] - payloads[0], n - 1, "{:?}", sim.sent);
        assert!(sim.sent.contains_key("prune"), "{:?}", sim.sent);

        let mut sim: Sim<Gossip<u64, u32>> = Sim::new(2);
        for i in 0..n {
            sim.add(Gossip::new(i, gossip::Config::default()), |g, _, _| {
                for j in mesh(i, n) {
                    g.neighbour_up(j);
                }
            });
        }
        sim.with(0, |g, rng, out| {
            g.broadcast(7, rng, out);
        });
        sim.run_for(Duration::from_secs(2));
        assert_eq!(sim.events.len() as u64, n - 1);
        assert!(sim.sent[PAYLOAD] >= n - 1, "{:?}", sim.sent);
    }

    /// Two meshes of 10 that do not know each other; node 0 broadcasts 5 messages on one,
    /// node 10 5 on the other; then one link joins them (both ends get `neighbour_up`). With
    /// the digest every node ends with all 10 (each side's own delivered at once, the other
    /// side's GRAFTed over the new link); with `digest_capacity` 0 (Plumtree as the paper
    /// has it) each side misses the other's 5 for good. With a digest of 3, only the 3 most
    /// recent of each side cross.
    #[test]
    fn a_new_link_carries_the_recent_ids_across_a_healed_split() {
        let run = |digest: usize| -> Vec<usize> {
            let n = 10;
            let config = plumtree::Config {
                digest_capacity: digest,
                ..plumtree::Config::default()
            };
            let mut sim: Sim<Plumtree<u64, u32>> = Sim::new(3);
            for i in 0..2 * n {
                let (base, j) = (i / n * n, i % n);
                sim.add(Plumtree::new(i, config.clone()), |p, _, out| {
                    for k in mesh(j, n) {
                        p.neighbour_up(base + k, out);
                    }
                });
            }
            for k in 0..5 {
                for origin in [0, n] {
                    sim.with(origin, |p, _, out| {
                        p.broadcast(k, out);
                    });
                }
                sim.run_for(Duration::from_millis(200));
            }
            sim.run_for(Duration::from_secs(1));
            let (a, b) = (3, n + 7);
            sim.with(a, |p, _, out| p.neighbour_up(b, out));
            sim.with(b, |p, _, out| p.neighbour_up(a, out));
            sim.run_for(Duration::from_secs(2));
            (0..2 * n)
                .map(|node| {
                    sim.events
                        .iter()
                        .filter(|(_, at, _)| *at == node)
                        .map(|(_, _, plumtree::Event::Delivered { id, .. })| id.clone())
                        .collect::<BTreeSet<_>>()
                        .len()
                })
                .collect()
        };
        // An origin does not deliver its own messages: it has the other side's 5 at most.
        let full: Vec<usize> = (0..20).map(|i| if i % 10 == 0 { 5 } else { 10 }).collect();
        assert_eq!(run(plumtree::Config::default().digest_capacity), full);
        let without: Vec<usize> = (0..20).map(|i| if i % 10 == 0 { 0 } else { 5 }).collect();
        assert_eq!(run(0), without);
        let three: Vec<usize> = (0..20).map(|i| if i % 10 == 0 { 3 } else { 8 }).collect();
        assert_eq!(run(3), three);
    }
}
