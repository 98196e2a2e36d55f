//! # rasp-icde19: the ICDE'19 delta-synchronisation experiment
//!
//! The experiment of Enes, Almeida, Baquero, Leitão, "Efficient Synchronization of
//! State-based CRDTs" (ICDE 2019, §VI micro-benchmarks) reproduced in the simulator with
//! rasp's real [`Replica`]. An unpublished crate beside its example: the root example
//! `examples/icde19.rs` (`cargo run --release --example icde19`) prints the table, and
//! `tests/icde19.rs` asserts its figures. [`experiment`] holds the tools it runs on
//! (divergence over time, fixed topologies).
//!
//! **Setup** (the paper's): 15 nodes with fixed neighbours, served by
//! [`StaticTopology`]: a partial mesh (a random connected 4-regular graph) and a tree (a
//! complete binary tree, depth 3). Each node makes 100 updates, one per second (node `i` at a
//! fixed offset in the second, drawn from the seed); every node syncs every second (sync timers
//! staggered across nodes); links have 1–5 ms latency, no loss.
//!
//! **Workloads** (one replicated variable `x`):
//! - `GSet`: `GSet<u64>`; update `r` of node `i` adds the unique element `1000 i + r`.
//! - `GCounter`: update = increment by 1 on behalf of the node.
//! - `GMap K%`: `GMap<u64, MaxInt>` over 1,000 keys. The paper: "each update modifies K% of
//!   the keys" *in total over the cluster per interval*, i.e. node updates touch K/N % each:
//!   in round `r`, the `M = 10 K` keys `(r M + j) mod 1000`, `j < M`, are modified, node `i`
//!   taking those with `j mod N = i` (disjoint across nodes; at 100% every key changes every
//!   round); modifying a key increments its `MaxInt` by one (`inc_delta(1)` of the local value).
//!
//! **Transmission** is the payload bytes of `Sync` messages: the MessagePack encoding of each
//! variable's shipped state or delta, summed over all nodes ([`ReplicaStats::bytes_sent`]);
//! message framing, variable names, sequence numbers, acks and greetings are not counted (for
//! any mode). It is counted from the start until the replicas converge (the first sample, every
//! 200 ms, from which on every replica holds the final value), so each mode is charged for
//! exactly the work of getting every update everywhere.
//!
//! **Lower bound**: each update's delta (the encoded delta its mutator returned) delivered
//! once to each of the other `N − 1` nodes. It bounds protocols that ship every update's
//! delta on its own; delta sync joins the deltas of an interval, which can go below it
//! (shared encoding headers; later GCounter entries and MaxInt values subsume earlier ones).
//!
//! **Modes**: state-based, classic delta, BP, RR and BP+RR run the paper's Algorithm 2
//! exactly ([`ReplicaConfig::bp_heard`] off); the row's `rasp` result is rasp's default
//! BP+RR, whose BP also leaves out what a neighbour itself sent since the last sync to it.
//!
//! **Memory**: the mean over samples of Σ(state bytes + delta-buffer bytes) / Σ state bytes
//! (1.0 for state-based sync, which keeps no buffer).
//!
//! [`ReplicaStats::bytes_sent`]: rasp_dataflow::replica::ReplicaStats::bytes_sent

pub mod experiment;

use std::collections::hash_map::DefaultHasher;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use rasp_dataflow::program::{Program, Var};
use rasp_dataflow::replica::{HasReplica, Replica, ReplicaConfig, SyncMode, SERVICE};
use rasp_lattice::{encoded_size, GCounter, GMap, GSet, Lattice, MaxInt};
use rasp_runtime::sim::{Latency, LinkConfig, NetConfig, Sim, SimConfig, WireMode};
use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Ctx, Dest, Message, NodeId, Origin, Time};
use serde::{Deserialize, Serialize};

use crate::experiment::{Observer, SplitMix64, StaticTopology, Topology, VarReport};

/// The replicated variable's id.
pub const VAR: &str = "x";
/// Keys of the GMap workloads.
pub const GMAP_KEYS: u64 = 1_000;
/// How often replicas are sampled for convergence and bytes.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// The update workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Workload {
    /// Each update adds a unique element to a grow-only set.
    GSet,
    /// Each update increments a grow-only counter.
    GCounter,
    /// Per round, `percent`% of a 1,000-key map of max-registers is modified (split across
    /// the nodes).
    GMap {
        /// K.
        percent: u32,
    },
}

impl Workload {
    /// The four workloads of the paper's table (Enes, Almeida, Baquero, Leitão, "Efficient Synchronization of State-based
    /// CRDTs", ICDE 2019, §VI).
    pub const ALL: [Workload; 4] = [
        Workload::GSet,
        Workload::GCounter,
        Workload::GMap { percent: 10 },
        Workload::GMap { percent: 100 },
    ];
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::GSet => f.write_str("GSet"),
            Workload::GCounter => f.write_str("GCounter"),
            Workload::GMap { percent } => write!(f, "GMap {percent}%"),
        }
    }
}

/// The two topologies of the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// A complete binary tree.
    Tree,
    /// A random connected 4-regular graph.
    Mesh,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Tree => "tree",
            Shape::Mesh => "mesh",
        })
    }
}

/// The paper's figures for one row, as % of state-based (ICDE 2019, §VI, from the authors'
/// raw data).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anchor {
    /// BP+RR transmission, % of state-based.
    pub bp_rr: f64,
    /// Classic delta transmission, % of state-based: (low, high) (a range where the paper's
    /// data gives one).
    pub classic: (f64, f64),
}

/// The anchor of a row.
pub fn anchor(shape: Shape, workload: Workload) -> Anchor {
    let (bp_rr, classic) = match (shape, workload) {
        (Shape::Tree, Workload::GSet) => (1.2, (98.5, 98.5)),
        (Shape::Tree, Workload::GCounter) => (62.6, (112.5, 112.5)),
        (Shape::Tree, Workload::GMap { percent: 10 }) => (5.7, (97.0, 101.0)),
        (Shape::Tree, Workload::GMap { .. }) => (49.3, (97.0, 101.0)),
        (Shape::Mesh, Workload::GSet) => (1.7, (97.4, 97.4)),
        (Shape::Mesh, Workload::GCounter) => (89.5, (113.4, 113.4)),
        (Shape::Mesh, Workload::GMap { percent: 10 }) => (9.0, (97.0, 101.0)),
        (Shape::Mesh, Workload::GMap { .. }) => (75.1, (97.0, 101.0)),
    };
    Anchor { bp_rr, classic }
}

/// Experiment parameters (defaults: the paper's).
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// Nodes.
    pub nodes: usize,
    /// Updates per node.
    pub updates: u64,
    /// Interval between a node's updates.
    pub update_every: Duration,
    /// Sync interval.
    pub sync_every: Duration,
    /// Neighbours per node in the mesh.
    pub mesh_degree: usize,
    /// Link latency.
    pub latency: Latency,
    /// Seed of the simulator, the mesh and the update offsets.
    pub seed: u64,
    /// How long to keep running after the last update (convergence must happen by then).
    pub drain: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            // From the paper (§VI-A): 15 nodes, 100 updates per node at 1/s, sync every 1 s,
            // partial mesh with 4 neighbours per node.
            nodes: 15,
            updates: 100,
            update_every: Duration::from_secs(1),
            sync_every: Duration::from_secs(1),
            mesh_degree: 4,
            latency: Latency::Uniform {
                min: Duration::from_millis(1),
                max: Duration::from_millis(5),
            },
            seed: 1,
            drain: Duration::from_secs(30),
        }
    }
}

impl Setup {
    /// The topology of `shape` for this setup.
    pub fn topology(&self, shape: Shape) -> Topology {
        match shape {
            Shape::Tree => Topology::binary_tree(self.nodes),
            Shape::Mesh => Topology::partial_mesh(self.nodes, self.mesh_degree, self.seed),
        }
    }
}

/// The outcome of one run (one topology, workload and sync mode).
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The sync mode.
    pub mode: SyncMode,
    /// Whether rasp's BP refinement was on ([`ReplicaConfig::bp_heard`]).
    pub bp_heard: bool,
    /// Sync payload bytes sent by all nodes until convergence.
    pub bytes: u64,
    /// The lower bound: Σ over updates of the delta's encoded size × (N − 1).
    pub lower_bound: u64,
    /// When the replicas converged (`None`: not within the drain time).
    pub converged_at: Option<Time>,
    /// Time from the last update to convergence.
    pub convergence: Option<Duration>,
    /// Mean of Σ(state + buffer bytes) / Σ state bytes over the samples.
    pub memory_ratio: f64,
    /// Largest delta-buffer length (entries) of any node.
    pub max_buffer: usize,
    /// Divergence of `x` over time.
    pub divergence: VarReport,
}

/// Injected by the driver: make update number `round`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DoUpdate {
    round: u64,
}
impl Message for DoUpdate {
    const KIND: &'static str = "icde19/update";
}

/// The application atom of each node: a [`Replica`] of `x` plus the workload's updates.
struct App {
    workload: Workload,
    sync: SyncMode,
    bp_heard: bool,
    sync_every: Duration,
    nodes: u64,
    replica: Option<Replica>,
    /// Σ encoded sizes of this node's update deltas.
    delta_bytes: u64,
}

impl HasReplica for App {
    fn replica(&mut self) -> &mut Replica {
        self.replica.as_mut().expect("created in init")
    }
}

fn declare(p: &mut Program, w: Workload) {
    match w {
        Workload::GSet => drop(p.declare::<GSet<u64>>(VAR).expect("fresh program")),
        Workload::GCounter => drop(p.declare::<GCounter>(VAR).expect("fresh program")),
        Workload::GMap { .. } => drop(p.declare::<GMap<u64, MaxInt>>(VAR).expect("fresh program")),
    }
}

/// Applies `delta` as an update of `var`; returns its encoded size.
fn apply<L: Lattice>(p: &mut Program, var: &Var<L>, delta: L, actor: u64) -> u64 {
    let size = encoded_size(&delta) as u64;
    p.update(var, move |_: &L, _| delta, actor)
        .expect("x is a source variable of this type");
    size
}

impl App {
    fn update(&mut self, node: u64, round: u64) {
        let (w, n) = (self.workload, self.nodes);
        let p = self.replica().program_mut();
        let size = match w {
            Workload::GSet => {
                let var = Var::<GSet<u64>>::named(VAR);
                let d = p
                    .state(&var)
                    .expect("declared")
                    .add_delta(1000 * node + round);
                apply(p, &var, d, node)
            }
            Workload::GCounter => {
                let var = Var::<GCounter>::named(VAR);
                let d = p.state(&var).expect("declared").inc_delta(node, 1);
                apply(p, &var, d, node)
            }
            Workload::GMap { percent } => {
                let var = Var::<GMap<u64, MaxInt>>::named(VAR);
                let state = p.state(&var).expect("declared");
                let m = GMAP_KEYS * u64::from(percent) / 100;
                let mut d = GMap::bottom();
                for j in (0..m).filter(|j| j % n == node) {
                    let key = (round * m + j) % GMAP_KEYS;
                    d.join(&state.apply_delta(key, |v| v.inc(1)));
                }
                apply(p, &var, d, node)
            }
        };
        self.delta_bytes += size;
    }
}

impl Atom for App {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.register(SERVICE).expect("one app atom per node");
        let node = ctx.node();
        let mut p = Program::new(node.0);
        declare(&mut p, self.workload);
        let config = ReplicaConfig {
            sync: self.sync,
            sync_interval: self.sync_every,
            bp_heard: self.bp_heard,
            ..ReplicaConfig::default()
        };
        self.replica = Some(Replica::new(node, config, p));
        Replica::install(self, ctx);
        ctx.on::<DoUpdate>(|a, ctx, _: &Origin, m| a.update(ctx.node().0, m.round));
    }
}

const APP: AtomId = AtomId(1);

fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Runs one configuration in the simulator; `bp_heard`: rasp's BP refinement
/// ([`ReplicaConfig::bp_heard`]; off: the paper's Algorithm 2 exactly).
pub fn run(
    setup: &Setup,
    topology: &Topology,
    workload: Workload,
    mode: SyncMode,
    bp_heard: bool,
) -> RunResult {
    let n = topology.len();
    let cfg = SimConfig {
        seed: setup.seed,
        seed_from_env: false,
        net: NetConfig {
            default: LinkConfig {
                latency: setup.latency.clone(),
                ..LinkConfig::default()
            },
            links: Vec::new(),
        },
        wire: WireMode::Typed,
        measure_bytes: false,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(cfg).expect("valid simulator configuration");
    // Boot the nodes spread over one sync interval, so their sync timers are staggered as on
    // independent machines (a greeting to a node not up yet is re-sent at the next tick).
    let stagger = setup.sync_every / n.max(1) as u32;
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let neighbours = topology.neighbours[i].clone();
        let (sync_every, nodes_u) = (setup.sync_every, n as u64);
        nodes.push(sim.add_node(boot(move |b| {
            b.spawn(StaticTopology::new(neighbours.clone()));
            b.spawn(App {
                workload,
                sync: mode,
                bp_heard,
                sync_every,
                nodes: nodes_u,
                replica: None,
                delta_bytes: 0,
            });
        })));
        sim.run_for(stagger);
    }
    // Updates: round r of node i at start + r·interval + offset_i.
    let start = Time(sim.now().0 + setup.sync_every.as_nanos() as u64);
    let mut rng = SplitMix64(setup.seed ^ 0x1CDE_2019);
    let every = setup.update_every.as_nanos() as u64;
    let offsets: Vec<u64> = (0..n).map(|_| rng.below(every.max(1))).collect();
    let mut last = start;
    for (i, &node) in nodes.iter().enumerate() {
        for r in 0..setup.updates {
            let at = Time(start.0 + r * every + offsets[i]);
            last = last.max(at);
            sim.inject_at(
                at,
                Dest::Atom(AtomAddr::new(node, APP)),
                DoUpdate { round: r },
            );
        }
    }
    let until = Time(last.0 + setup.drain.as_nanos() as u64);

    let mut obs: Observer<u64> = Observer::new([VAR]);
    let mut bytes_series: Vec<u64> = Vec::new();
    let (mut mem_sum, mut mem_samples) = (0.0, 0u64);
    let mut tick = 0u64;
    let probe = |sim: &Sim, node: NodeId, var: &str| {
        sim.with_atom::<App, _>(AtomAddr::new(node, APP), |a| {
            let state = a.replica.as_ref()?.program().state_dyn(var).ok()?;
            Some(hash_of(&state.encode()))
        })
        .flatten()
    };
    let nodes_c = nodes.clone();
    obs.run(&mut sim, &nodes, SAMPLE_EVERY, until, probe, |sim: &Sim| {
        // Memory once a second (every 5th sample): it costs an encoding per node.
        let measure_memory = sim.now() >= start && tick.is_multiple_of(5);
        tick += 1;
        let (mut bytes, mut state, mut buffer) = (0u64, 0usize, 0usize);
        for &node in &nodes_c {
            sim.with_atom::<App, _>(AtomAddr::new(node, APP), |a| {
                if let Some(r) = a.replica.as_ref() {
                    bytes += r.stats().bytes_sent.get(VAR).copied().unwrap_or(0);
                    if measure_memory {
                        state += r.program().state_dyn(VAR).map_or(0, |s| s.encoded_size());
                        buffer += r.buffer_bytes();
                    }
                }
            });
        }
        bytes_series.push(bytes);
        if state > 0 {
            mem_sum += (state + buffer) as f64 / state as f64;
            mem_samples += 1;
        }
    });
    let divergence = obs.report().remove(VAR).expect("observed");
    let bytes = match divergence.converged_at {
        Some(t) => {
            let i = obs
                .samples()
                .iter()
                .position(|s| s.at == t)
                .expect("a sample instant");
            bytes_series[i]
        }
        None => bytes_series.last().copied().unwrap_or(0),
    };
    let (mut delta_bytes, mut max_buffer) = (0u64, 0usize);
    for &node in &nodes {
        sim.with_atom::<App, _>(AtomAddr::new(node, APP), |a| {
            delta_bytes += a.delta_bytes;
            if let Some(r) = a.replica.as_ref() {
                max_buffer = max_buffer.max(r.stats().max_buffer);
            }
        });
    }
    RunResult {
        mode,
        bp_heard,
        bytes,
        lower_bound: delta_bytes * (n as u64 - 1),
        converged_at: divergence.converged_at,
        convergence: divergence.time_to_convergence(last),
        memory_ratio: if mem_samples > 0 {
            mem_sum / mem_samples as f64
        } else {
            1.0
        },
        max_buffer,
        divergence,
    }
}

/// One row of the table: a topology and a workload under every sync mode.
#[derive(Clone, Debug)]
pub struct Row {
    /// The topology.
    pub shape: Shape,
    /// The workload.
    pub workload: Workload,
    /// One result per mode, in [`SyncMode::ALL`] order (state first), with the paper's
    /// Algorithm 2 exactly (`bp_heard` off).
    pub results: Vec<RunResult>,
    /// rasp's default BP+RR (with the `bp_heard` refinement).
    pub rasp: RunResult,
    /// The paper's figures.
    pub anchor: Anchor,
}

impl Row {
    /// The result of `mode`.
    pub fn result(&self, mode: SyncMode) -> &RunResult {
        self.results
            .iter()
            .find(|r| r.mode == mode)
            .expect("every mode is run")
    }

    /// Transmission of `mode` as % of state-based.
    pub fn percent(&self, mode: SyncMode) -> f64 {
        100.0 * self.result(mode).bytes as f64 / self.result(SyncMode::State).bytes.max(1) as f64
    }

    /// rasp's default BP+RR as % of state-based.
    pub fn rasp_percent(&self) -> f64 {
        100.0 * self.rasp.bytes as f64 / self.result(SyncMode::State).bytes.max(1) as f64
    }

    /// The lower bound as % of state-based.
    pub fn lower_bound_percent(&self) -> f64 {
        100.0 * self.result(SyncMode::State).lower_bound as f64
            / self.result(SyncMode::State).bytes.max(1) as f64
    }
}

/// Runs one row (every sync mode).
pub fn run_row(setup: &Setup, shape: Shape, workload: Workload) -> Row {
    let topology = setup.topology(shape);
    Row {
        shape,
        workload,
        results: SyncMode::ALL
            .into_iter()
            .map(|m| run(setup, &topology, workload, m, false))
            .collect(),
        rasp: run(setup, &topology, workload, SyncMode::DeltaBpRr, true),
        anchor: anchor(shape, workload),
    }
}

/// Runs the whole table: both topologies × the four workloads × every sync mode.
pub fn run_table(setup: &Setup) -> Vec<Row> {
    let mut rows = Vec::new();
    for shape in [Shape::Tree, Shape::Mesh] {
        for w in Workload::ALL {
            rows.push(run_row(setup, shape, w));
        }
    }
    rows
}

/// Renders the transmission table (and a memory / convergence table).
pub fn render(setup: &Setup, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ICDE'19 micro-benchmarks in the simulator: {} nodes, {} updates/node every {:?}, sync every {:?}, seed {}",
        setup.nodes, setup.updates, setup.update_every, setup.sync_every, setup.seed
    );
    let _ = writeln!(
        s,
        "Transmission = Sync payload bytes (encoded states/deltas) until convergence, as % of state-based."
    );
    let _ = writeln!(
        s,
        "classic/BP/RR/BP+RR: the paper's Algorithm 2 exactly; rasp BP+RR: the default (BP also skips what the neighbour itself sent since the last sync to it)."
    );
    let _ = writeln!(
        s,
        "Lower bound: each update's own delta, encoded alone, once to each other node (joining deltas per sync can beat it: shared headers; later counter/max values subsume earlier ones)."
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| topology | workload | state-based | classic delta | BP | RR | BP+RR | rasp BP+RR | paper BP+RR | paper classic | lower bound |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let classic = if r.anchor.classic.0 == r.anchor.classic.1 {
            format!("{:.1}%", r.anchor.classic.0)
        } else {
            format!("~{:.0}–{:.0}%", r.anchor.classic.0, r.anchor.classic.1)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} KiB (100%) | {:.1}% | {:.1}% | {:.1}% | {:.1}% | **{:.1}%** | {:.1}% | {} | {:.1}% |",
            r.shape,
            r.workload,
            r.result(SyncMode::State).bytes as f64 / 1024.0,
            r.percent(SyncMode::Delta),
            r.percent(SyncMode::DeltaBp),
            r.percent(SyncMode::DeltaRr),
            r.percent(SyncMode::DeltaBpRr),
            r.rasp_percent(),
            r.anchor.bp_rr,
            classic,
            r.lower_bound_percent(),
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Memory (mean of Σ(state + delta buffer) / Σ state) and convergence after the last update:"
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| topology | workload | mem classic | mem BP | mem RR | mem BP+RR | mem rasp BP+RR | max buffer (entries) classic / rasp BP+RR | convergence state / classic / rasp BP+RR |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let conv = |r: &RunResult| match r.convergence {
        Some(d) => format!("{:.1} s", d.as_secs_f64()),
        None => "never".to_string(),
    };
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {} / {} | {} / {} / {} |",
            r.shape,
            r.workload,
            r.result(SyncMode::Delta).memory_ratio,
            r.result(SyncMode::DeltaBp).memory_ratio,
            r.result(SyncMode::DeltaRr).memory_ratio,
            r.result(SyncMode::DeltaBpRr).memory_ratio,
            r.rasp.memory_ratio,
            r.result(SyncMode::Delta).max_buffer,
            r.rasp.max_buffer,
            conv(r.result(SyncMode::State)),
            conv(r.result(SyncMode::Delta)),
            conv(&r.rasp),
        );
    }
    s
}
