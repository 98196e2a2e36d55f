//! Tools for experiments in the simulator (the figures of the README's "Measuring" table): divergence over time and time
//! to convergence of replicated variables, and a static-topology membership atom.
//!
//! **Divergence.** An [`Observer`] samples every replica's value of some variables over time
//! (the values come from a closure, e.g. each node's encoded state or `show()` string, or a
//! hash of it) and reports, per variable, how many replicas differ from the *final* value at
//! each sample and when the replicas converged for good ([`VarReport`]). It knows nothing of
//! the program's types, so any workload can use it.
//!
//! **Static topology.** [`StaticTopology`] serves the membership service name with a fixed
//! list of neighbours: it emits [`PeerServiceEvent::NeighbourUp`] for each of them to every
//! subscriber, so a [`rasp_dataflow::replica::Replica`] runs unchanged over a topology chosen by the
//! experiment (a tree, a partial mesh) rather than by an overlay protocol.
//! [`Topology`] builds such neighbour lists.
//!
//! ```
//! use rasp_icde19::experiment::Observer;
//! use rasp_runtime::Time;
//!
//! // Three replicas of one variable, sampled three times.
//! let mut obs: Observer<&str> = Observer::new(["x"]);
//! obs.sample(Time::from_secs(1), 3, |node, _| Some(["a", "b", "b"][node]));
//! obs.sample(Time::from_secs(2), 3, |node, _| Some(["b", "a", "b"][node]));
//! obs.sample(Time::from_secs(3), 3, |_, _| Some("b"));
//! let r = &obs.report()["x"];
//! assert_eq!(r.divergence, vec![(Time::from_secs(1), 1), (Time::from_secs(2), 1), (Time::from_secs(3), 0)]);
//! assert_eq!(r.converged_at, Some(Time::from_secs(3)));
//! assert_eq!(r.time_to_convergence(Time::from_secs(1)), Some(std::time::Duration::from_secs(2)));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rasp_membership::atom::{PeerServiceEvent, Subscribe, SERVICE as MEMBERSHIP};
use rasp_runtime::sim::Sim;
use rasp_runtime::{Atom, AtomAddr, Ctx, Dest, NodeId, Time};

// ----- divergence and convergence --------------------------------------------------------------

/// Samples of every replica's value of some variables, taken over time.
#[derive(Clone, Debug)]
pub struct Observer<V> {
    vars: Vec<String>,
    samples: Vec<Snapshot<V>>,
}

/// One sample: the instant and, per variable, each replica's value (`None`: the replica could
/// not be read, e.g. its node is down; it counts as differing).
#[derive(Clone, Debug)]
pub struct Snapshot<V> {
    /// When it was taken.
    pub at: Time,
    /// Variable id → value per replica (indexed like the nodes given to the sampler).
    pub values: BTreeMap<String, Vec<Option<V>>>,
}

/// Divergence of one variable over an observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarReport {
    /// Replicas observed.
    pub replicas: usize,
    /// Per sample: its instant and how many replicas differ from the final value.
    pub divergence: Vec<(Time, usize)>,
    /// Whether every replica held the same value at the last sample.
    pub converged: bool,
    /// The first sample from which on every replica held the final value (`None` if they
    /// did not all hold it at the last sample).
    pub converged_at: Option<Time>,
}

impl VarReport {
    /// Time from `from` (e.g. the last update) to convergence; zero if convergence came
    /// earlier, `None` if the replicas did not converge.
    pub fn time_to_convergence(&self, from: Time) -> Option<Duration> {
        self.converged_at.map(|t| t.since(from))
    }

    /// The largest number of differing replicas in any sample.
    pub fn max_divergence(&self) -> usize {
        self.divergence.iter().map(|&(_, d)| d).max().unwrap_or(0)
    }

    /// Mean fraction of replicas differing from the final value over the samples (0 to 1).
    pub fn mean_divergence(&self) -> f64 {
        if self.divergence.is_empty() || self.replicas == 0 {
            return 0.0;
        }
        let sum: usize = self.divergence.iter().map(|&(_, d)| d).sum();
        sum as f64 / (self.divergence.len() * self.replicas) as f64
    }
}

impl<V: PartialEq + Clone> Observer<V> {
    /// An observer of the variables `vars`.
    pub fn new<S: Into<String>>(vars: impl IntoIterator<Item = S>) -> Self {
        Observer {
            vars: vars.into_iter().map(Into::into).collect(),
            samples: Vec::new(),
        }
    }

    /// The observed variables.
    pub fn vars(&self) -> &[String] {
        &self.vars
    }

    /// The samples taken so far.
    pub fn samples(&self) -> &[Snapshot<V>] {
        &self.samples
    }

    /// Takes a sample at `at` of `replicas` replicas: `probe(replica index, variable id)`
    /// gives that replica's value of the variable.
    pub fn sample(
        &mut self,
        at: Time,
        replicas: usize,
        mut probe: impl FnMut(usize, &str) -> Option<V>,
    ) {
        let values = self
            .vars
            .iter()
            .map(|v| (v.clone(), (0..replicas).map(|r| probe(r, v)).collect()))
            .collect();
        self.samples.push(Snapshot { at, values });
    }

    /// Runs `sim` until `until`, sampling `nodes` every `every` (the first sample after one
    /// period): `probe(sim, node, variable id)` reads a node's value. `between(sim)` runs
    /// after each sample (e.g. to record other counters at the same instants).
    pub fn run(
        &mut self,
        sim: &mut Sim,
        nodes: &[NodeId],
        every: Duration,
        until: Time,
        mut probe: impl FnMut(&Sim, NodeId, &str) -> Option<V>,
        mut between: impl FnMut(&Sim),
    ) {
        let every = every.max(Duration::from_nanos(1));
        loop {
            let next = Time(sim.now().0.saturating_add(every.as_nanos() as u64));
            if next > until {
                break;
            }
            sim.run_until(next);
            let at = sim.now();
            self.sample(at, nodes.len(), |i, v| probe(sim, nodes[i], v));
            between(sim);
        }
        sim.run_until(until);
    }

    /// Divergence of each variable: the final value is the one most replicas hold at the last
    /// sample (ties: the smallest replica index's); each sample counts the replicas that do
    /// not hold it.
    pub fn report(&self) -> BTreeMap<String, VarReport> {
        let mut out = BTreeMap::new();
        for var in &self.vars {
            let series: Vec<(Time, &Vec<Option<V>>)> = self
                .samples
                .iter()
                .filter_map(|s| s.values.get(var).map(|v| (s.at, v)))
                .collect();
            let Some(&(_, last)) = series.last() else {
                out.insert(
                    var.clone(),
                    VarReport {
                        replicas: 0,
                        divergence: Vec::new(),
                        converged: false,
                        converged_at: None,
                    },
                );
                continue;
            };
            let final_value = majority(last);
            let divergence: Vec<(Time, usize)> = series
                .iter()
                .map(|&(at, vals)| {
                    let differ = vals
                        .iter()
                        .filter(|v| v.is_none() || v.as_ref() != final_value)
                        .count();
                    (at, differ)
                })
                .collect();
            let converged = divergence.last().is_some_and(|&(_, d)| d == 0);
            let converged_at = if converged {
                let first_bad = divergence.iter().rposition(|&(_, d)| d > 0);
                Some(divergence[first_bad.map_or(0, |i| i + 1)].0)
            } else {
                None
            };
            out.insert(
                var.clone(),
                VarReport {
                    replicas: last.len(),
                    divergence,
                    converged,
                    converged_at,
                },
            );
        }
        out
    }
}

/// The value most replicas hold (ties: the first seen); `None` if no replica was read.
fn majority<V: PartialEq>(vals: &[Option<V>]) -> Option<&V> {
    let mut best: Option<(&V, usize)> = None;
    for v in vals.iter().flatten() {
        let n = vals.iter().flatten().filter(|w| *w == v).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((v, n));
        }
    }
    best.map(|(v, _)| v)
}

// ----- static topology -------------------------------------------------------------------------

/// A membership stand-in with fixed neighbours: serves [`MEMBERSHIP`] and tells every
/// subscriber [`PeerServiceEvent::NeighbourUp`] for each configured neighbour (at once on
/// subscription). Broadcasts and direct sends are not supported (use the direct carrier).
#[derive(Clone, Debug)]
pub struct StaticTopology {
    neighbours: Vec<NodeId>,
    subscribers: Vec<AtomAddr>,
}

impl StaticTopology {
    /// A static membership with these neighbours.
    pub fn new(neighbours: Vec<NodeId>) -> Self {
        StaticTopology {
            neighbours,
            subscribers: Vec::new(),
        }
    }

    /// The configured neighbours.
    pub fn neighbours(&self) -> &[NodeId] {
        &self.neighbours
    }
}

impl Atom for StaticTopology {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        if let Err(e) = ctx.register(MEMBERSHIP) {
            tracing::error!(error = %e, "a membership service already runs on this node");
            ctx.stop_self();
            return;
        }
        ctx.on::<Subscribe>(|me, ctx, origin, _| {
            if me.subscribers.contains(&origin.from) {
                return;
            }
            me.subscribers.push(origin.from);
            for &n in &me.neighbours {
                ctx.send(Dest::Atom(origin.from), PeerServiceEvent::NeighbourUp(n));
            }
        });
    }
}

/// A fixed topology: each node's neighbours (symmetric).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// A short description (`tree`, `mesh-4`, …).
    pub name: String,
    /// `neighbours[i]`: the neighbours of node `i`, sorted.
    pub neighbours: Vec<Vec<NodeId>>,
}

impl Topology {
    /// A complete binary tree over `n` nodes: node `i`'s children are `2i+1` and `2i+2`
    /// (15 nodes: depth 3, diameter 6).
    pub fn binary_tree(n: usize) -> Self {
        let mut edges = Vec::new();
        for i in 1..n {
            edges.push(((i - 1) / 2, i));
        }
        Self::from_edges("tree", n, &edges)
    }

    /// A random connected `degree`-regular graph over `n` nodes (`n * degree` even), drawn
    /// from `seed` by the configuration model (pairing half-edges, redrawn until simple and
    /// connected). Deterministic in `seed`.
    pub fn partial_mesh(n: usize, degree: usize, seed: u64) -> Self {
        assert!(
            degree < n && (n * degree).is_multiple_of(2),
            "no {degree}-regular graph on {n} nodes"
        );
        let mut rng = SplitMix64(seed);
        loop {
            let mut stubs: Vec<usize> = (0..n)
                .flat_map(|i| std::iter::repeat_n(i, degree))
                .collect();
            for i in (1..stubs.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                stubs.swap(i, j);
            }
            let mut seen = BTreeSet::new();
            let mut ok = true;
            for pair in stubs.chunks(2) {
                let (a, b) = (pair[0].min(pair[1]), pair[0].max(pair[1]));
                if a == b || !seen.insert((a, b)) {
                    ok = false;
                    break;
                }
            }
            if !ok {
                continue;
            }
            let edges: Vec<(usize, usize)> = seen.into_iter().collect();
            let t = Self::from_edges(&format!("mesh-{degree}"), n, &edges);
            if t.is_connected() {
                return t;
            }
        }
    }

    /// The topology with these undirected edges.
    pub fn from_edges(name: &str, n: usize, edges: &[(usize, usize)]) -> Self {
        let mut nb: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); n];
        for &(a, b) in edges {
            assert!(a < n && b < n && a != b, "bad edge ({a}, {b})");
            nb[a].insert(b as u64);
            nb[b].insert(a as u64);
        }
        Topology {
            name: name.to_string(),
            neighbours: nb
                .into_iter()
                .map(|s| s.into_iter().map(NodeId).collect())
                .collect(),
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.neighbours.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.neighbours.is_empty()
    }

    /// Number of undirected edges.
    pub fn edges(&self) -> usize {
        self.neighbours.iter().map(Vec::len).sum::<usize>() / 2
    }

    /// Hop distances from `from` (`usize::MAX`: unreachable).
    pub fn distances(&self, from: usize) -> Vec<usize> {
        let mut d = vec![usize::MAX; self.len()];
        let mut queue = std::collections::VecDeque::from([from]);
        d[from] = 0;
        while let Some(i) = queue.pop_front() {
            for n in &self.neighbours[i] {
                let j = n.0 as usize;
                if d[j] == usize::MAX {
                    d[j] = d[i] + 1;
                    queue.push_back(j);
                }
            }
        }
        d
    }

    /// Whether every node reaches every other.
    pub fn is_connected(&self) -> bool {
        self.is_empty() || self.distances(0).iter().all(|&d| d != usize::MAX)
    }

    /// The largest hop distance between two nodes (`usize::MAX` if disconnected).
    pub fn diameter(&self) -> usize {
        (0..self.len())
            .map(|i| self.distances(i).into_iter().max().unwrap_or(0))
            .max()
            .unwrap_or(0)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny deterministic generator for drawing
/// topologies and schedules from a seed.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_and_mesh_have_the_promised_shape() {
        let t = Topology::binary_tree(15);
        assert_eq!(t.edges(), 14);
        assert!(t.is_connected());
        assert_eq!(t.diameter(), 6);
        assert_eq!(t.neighbours[0], vec![NodeId(1), NodeId(2)]);
        assert_eq!(t.neighbours[14], vec![NodeId(6)]);
        let m = Topology::partial_mesh(15, 4, 1);
        assert!(m.neighbours.iter().all(|n| n.len() == 4));
        assert_eq!(m.edges(), 30);
        assert!(m.is_connected());
        for (i, ns) in m.neighbours.iter().enumerate() {
            for n in ns {
                assert!(m.neighbours[n.0 as usize].contains(&NodeId(i as u64)));
            }
        }
        assert_eq!(m, Topology::partial_mesh(15, 4, 1));
    }

    #[test]
    fn divergence_counts_replicas_off_the_final_value() {
        let mut obs: Observer<u32> = Observer::new(["a", "b"]);
        obs.sample(Time::from_secs(1), 3, |r, v| {
            Some(if v == "a" { r as u32 } else { 7 })
        });
        obs.sample(Time::from_secs(2), 3, |r, v| {
            if v == "a" {
                (r != 2).then_some(1)
            } else {
                Some(7)
            }
        });
        obs.sample(Time::from_secs(3), 3, |_, v| {
            Some(if v == "a" { 1 } else { 7 })
        });
        let rep = obs.report();
        let a = &rep["a"];
        assert_eq!(
            a.divergence,
            vec![
                (Time::from_secs(1), 2),
                (Time::from_secs(2), 1),
                (Time::from_secs(3), 0)
            ]
        );
        assert!(a.converged);
        assert_eq!(a.converged_at, Some(Time::from_secs(3)));
        assert_eq!(a.max_divergence(), 2);
        assert!((a.mean_divergence() - 3.0 / 9.0).abs() < 1e-9);
        let b = &rep["b"];
        assert_eq!(b.converged_at, Some(Time::from_secs(1)));
        assert_eq!(
            b.time_to_convergence(Time::from_secs(2)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn no_convergence_when_the_last_sample_disagrees() {
        let mut obs: Observer<u8> = Observer::new(["x"]);
        obs.sample(Time::from_secs(1), 2, |_, _| Some(0));
        obs.sample(Time::from_secs(2), 2, |r, _| Some(r as u8));
        let r = &obs.report()["x"];
        assert!(!r.converged);
        assert_eq!(r.converged_at, None);
        // Tie at the last sample: the final value is replica 0's.
        assert_eq!(
            r.divergence,
            vec![(Time::from_secs(1), 0), (Time::from_secs(2), 1)]
        );
    }
}
