//! `<app> sim`: N nodes of an [`App`] in the deterministic simulator.
//!
//! Node `i` has index `i`; every node but node 0 joins through node 0; the first `--servers`
//! nodes are servers and the others clients (by default one server under client-server
//! membership, and every node a server otherwise). Each node is
//! booted by the same code as a real node ([`crate::cli::node::node_boot`] with
//! [`super::app_boot`]), so the app's atom is at [`APP_ATOM`] here too.
//!
//! **Network.** Latency uniform in `[--min-latency-ms, --max-latency-ms]` (default 1–20 ms,
//! so messages reorder), loss `--loss`, duplication `--duplicate`, partitions
//! `--partition A,B/C@FROM-TO` (nodes `A,B` cut from `C` between `FROM` and `TO` seconds;
//! repeatable), crashes `--crash NODE@T` and restarts `--restart NODE@T` (repeatable; a
//! restarted node keeps its durable store, so its variables come back).
//!
//! **Convergence.** Every `--sample-ms` of virtual time the driver checks whether every
//! node is up and, for every variable, every node that holds it holds the same state
//! (lattice equality). The run is *converged* if that holds at the end; `converged_at_s` is
//! the first sample of the final stretch where it held. The run lasts `--duration-s`.
//!
//! **Invariants** ([`App::invariants`]): the safety ones ([`Invariant::each`],
//! [`Invariant::all`]) are checked after every `--check-every` events
//! ([`rasp_runtime::sim::Sim::add_invariant`]). The eventual ones ([`Invariant::eventually`])
//! are checked at every sample (`--sample-ms`) over the live nodes once the run is quiet,
//! i.e. from its last scheduled fault (a partition's heal, a crash, a restart; time zero
//! without faults): each may fail until its bound (the quiet time plus its `within`), and
//! must hold at every sample from the bound to the end of the run. A property whose bound
//! lies after the end of the run is reported as not due (`not_due`), not as held. Either kind
//! of violation stops the run with the invariant, its message, the seed and the command that
//! reproduces it, and exit code 1.
//!
//! Output: a summary (or one JSON object with `--json`, a [`SimReport`]) on stdout; exit 0
//! if converged, 1 if not.

use super::{app_boot, App, AppAtom, Invariant, NodeView, ReplicationArgs, APP_ATOM};
use crate::cli::node::{node_boot, NodeEnv};
use clap::Args;
use rasp_dataflow::replica::ReplicaConfig;
use rasp_membership::{Config as MConfig, Mode, Role};
use rasp_runtime::sim::{Fault, Latency, LinkConfig, NetConfig, Sim, SimConfig};
use rasp_runtime::{Boot, Contact, NodeId, Time};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

/// `sim` with the app's own flags.
#[derive(Clone, Debug, Args)]
pub struct SimCmd<U: Args> {
    /// The simulator's flags.
    #[command(flatten)]
    pub sim: SimArgs,
    /// The app's flags.
    #[command(flatten)]
    pub user: U,
}

/// The simulator's flags (see the module docs).
#[derive(Clone, Debug, Args)]
pub struct SimArgs {
    /// Number of nodes
    #[arg(long, env = "RASP_NODES", value_name = "N", default_value_t = 3)]
    pub nodes: u32,
    /// Seed of every random choice
    #[arg(long, env = "RASP_SEED", value_name = "SEED", default_value_t = 42)]
    pub seed: u64,
    /// Membership protocol: full, client-server or hyparview
    #[arg(long, env = "RASP_MEMBERSHIP", value_name = "MODE", default_value_t = Mode::HyParView)]
    pub membership: Mode,
    /// The first this many nodes are servers, the others clients (the app's roles; under
    /// client-server membership also the topology) [default: 1 under client-server
    /// membership, every node otherwise]
    #[arg(long, value_name = "K")]
    pub servers: Option<u32>,
    /// Replication settings.
    #[command(flatten)]
    pub replication: ReplicationArgs,
    /// Probability a message is lost, in [0, 1)
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub loss: f64,
    /// Probability a message is delivered twice, in [0, 1)
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub duplicate: f64,
    /// Smallest one-way latency in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 1)]
    pub min_latency_ms: u64,
    /// Largest one-way latency in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub max_latency_ms: u64,
    /// A partition `A,B/C@FROM-TO`: nodes A and B cut from C between FROM and TO seconds
    /// (repeatable)
    #[arg(long, value_name = "SPEC")]
    pub partition: Vec<PartitionSpec>,
    /// A crash `NODE@T`: node NODE crashes at T seconds (repeatable)
    #[arg(long, value_name = "NODE@T")]
    pub crash: Vec<NodeAt>,
    /// A restart `NODE@T`: crashed node NODE restarts at T seconds (repeatable)
    #[arg(long, value_name = "NODE@T")]
    pub restart: Vec<NodeAt>,
    /// Virtual seconds to run
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub duration_s: f64,
    /// A self-driven app (its nodes update on their own timers, as the ad counter's clients
    /// count impressions) is told at this virtual second that the run went quiet and stops
    /// its own updates, so that convergence is checked after the last one; other apps
    /// ignore it [default: 10 s before the end, or the last fault if that is later]
    #[arg(long, value_name = "S")]
    pub active_s: Option<f64>,
    /// Check the app's invariants after every this many events
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub check_every: u64,
    /// Milliseconds of virtual time between two convergence checks
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub sample_ms: u64,
    /// Also run this WebAssembly atom on every node, after the app's atoms (as `node
    /// --atom`); repeatable
    #[arg(long = "atom", value_name = "FILE.wasm")]
    pub atoms: Vec<std::path::PathBuf>,
    /// The argument every `--atom` gets, as JSON (handed to the guest as MessagePack)
    #[arg(long, value_name = "JSON")]
    pub atom_arg_json: Option<String>,
    /// Print the report as one JSON object
    #[arg(long)]
    pub json: bool,
    /// The command that reproduces the run, printed when an invariant fails (not a flag:
    /// the `sim` subcommand sets it to its own command line; tests leave it to the
    /// simulator's test hint).
    #[arg(skip)]
    pub repro: Option<String>,
}

impl SimArgs {
    /// How many of the nodes are servers (see `--servers`).
    pub fn servers(&self) -> u32 {
        match (self.servers, self.membership) {
            (Some(k), _) => k,
            (None, Mode::ClientServer) => 1,
            (None, _) => self.nodes,
        }
    }

    /// The role of node `i`.
    pub fn role(&self, i: u32) -> Role {
        if i < self.servers() {
            Role::Server
        } else {
            Role::Client
        }
    }
}

impl Default for SimArgs {
    fn default() -> Self {
        SimArgs {
            nodes: 3,
            seed: 42,
            membership: Mode::HyParView,
            servers: None,
            replication: ReplicationArgs::default(),
            loss: 0.0,
            duplicate: 0.0,
            min_latency_ms: 1,
            max_latency_ms: 20,
            partition: Vec::new(),
            crash: Vec::new(),
            restart: Vec::new(),
            duration_s: 30.0,
            active_s: None,
            check_every: 1,
            sample_ms: 100,
            atoms: Vec::new(),
            atom_arg_json: None,
            json: false,
            repro: None,
        }
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('s')
        .parse()
        .map_err(|e| format!("bad time {s:?}: {e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "bad time {s:?}: must be a non-negative number of seconds"
        ))
    }
}

fn parse_nodes(s: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .map(|n| {
            n.trim()
                .parse::<u32>()
                .map_err(|e| format!("bad node {n:?}: {e}"))
        })
        .collect()
}

/// A node and a time, `NODE@T` (T in seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeAt {
    /// The node's index.
    pub node: u32,
    /// When.
    pub at: Duration,
}

impl FromStr for NodeAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, t) = s
            .split_once('@')
            .ok_or_else(|| format!("expected NODE@SECONDS, got {s:?}"))?;
        Ok(NodeAt {
            node: n
                .trim()
                .parse()
                .map_err(|e| format!("bad node {n:?}: {e}"))?,
            at: parse_secs(t)?,
        })
    }
}

/// A partition between two sets of nodes over a time window, `A,B/C@FROM-TO`.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionSpec {
    /// One side.
    pub a: Vec<u32>,
    /// The other side.
    pub b: Vec<u32>,
    /// When it starts.
    pub from: Duration,
    /// When it heals.
    pub to: Duration,
}

impl FromStr for PartitionSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected A,B/C@FROM-TO (node indexes, seconds), got {s:?}");
        let (sides, window) = s.split_once('@').ok_or_else(bad)?;
        let (a, b) = sides.split_once('/').ok_or_else(bad)?;
        let (from, to) = window.split_once('-').ok_or_else(bad)?;
        let spec = PartitionSpec {
            a: parse_nodes(a)?,
            b: parse_nodes(b)?,
            from: parse_secs(from)?,
            to: parse_secs(to)?,
        };
        if spec.to < spec.from {
            return Err(format!("partition {s:?} heals before it starts"));
        }
        Ok(spec)
    }
}

/// What a simulated run found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimReport {
    /// Nodes.
    pub nodes: u32,
    /// The seed.
    pub seed: u64,
    /// Membership mode.
    pub membership: String,
    /// Sync mode.
    pub sync: String,
    /// Virtual seconds run.
    pub duration_s: f64,
    /// Events processed.
    pub events: u64,
    /// The trace hash (equal for equal inputs: the run replays exactly).
    pub trace_hash: u64,
    /// Whether, at the end, every node was up and every replica of every variable equal.
    pub converged: bool,
    /// Start of the final converged stretch, in virtual seconds.
    pub converged_at_s: Option<f64>,
    /// Nodes down at the end.
    pub down: Vec<u32>,
    /// The invariants checked.
    pub invariants: Vec<String>,
    /// Eventual properties not checked: their bound (the last fault plus their `within`)
    /// lies after the end of the run.
    pub not_due: Vec<String>,
    /// Each live node's user variables at the end ([`AppAtom::values`]), by node index.
    pub values: BTreeMap<u32, BTreeMap<String, String>>,
}

impl SimReport {
    /// The human-readable summary.
    pub fn text(&self) -> String {
        let mut out = format!(
            "nodes={} seed={} membership={} sync={} duration={:.1}s events={}\n",
            self.nodes, self.seed, self.membership, self.sync, self.duration_s, self.events
        );
        match (self.converged, self.converged_at_s) {
            (true, Some(t)) => out.push_str(&format!(
                "converged: yes, at {t:.2} s (every replica holds equal values)\n"
            )),
            _ => out.push_str("converged: NO (replicas differ at the end, or nodes are down)\n"),
        }
        if !self.down.is_empty() {
            out.push_str(&format!("down at the end: {:?}\n", self.down));
        }
        let held: Vec<&str> = self
            .invariants
            .iter()
            .filter(|i| !self.not_due.contains(i))
            .map(String::as_str)
            .collect();
        if !held.is_empty() {
            out.push_str(&format!("invariants held: {}\n", held.join(", ")));
        }
        if !self.not_due.is_empty() {
            out.push_str(&format!(
                "not due (the run ended before their bound, the last fault plus their `within`): {}\n",
                self.not_due.join(", ")
            ));
        }
        out.push_str(&format!("trace_hash={:#018x}\n", self.trace_hash));
        for (i, vars) in &self.values {
            for (id, v) in vars {
                out.push_str(&format!("node {i}: {id} = {}\n", shorten(v)));
            }
        }
        out
    }
}

/// Longest value the text summary prints in full (`--json` has every value whole).
const SHOWN_CHARS: usize = 160;

/// `v`, cut after [`SHOWN_CHARS`] characters with a note of how much was left out.
fn shorten(v: &str) -> String {
    let n = v.chars().count();
    if n <= SHOWN_CHARS {
        return v.to_string();
    }
    let head: String = v.chars().take(SHOWN_CHARS).collect();
    format!(
        "{head}… ({} more characters; --json prints it whole)",
        n - SHOWN_CHARS
    )
}

fn at(d: Duration) -> Time {
    Time(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The live nodes' views, for invariants.
pub fn views<A: App>(sim: &Sim) -> Vec<NodeView<'_>> {
    (0..sim.node_count())
        .filter_map(|i| {
            let id = NodeId(i as u64);
            let atom = sim.host(id)?.atom::<AppAtom<A>>(APP_ATOM)?;
            Some(NodeView {
                index: i as u32,
                id,
                role: atom.meta().role,
                program: atom.program()?,
                app: atom.app(),
                boot: atom.boot(),
                started: atom.started(),
                membership: sim
                    .host(id)?
                    .atom::<rasp_membership::MembershipAtom>(rasp_runtime::AtomId(1)),
            })
        })
        .collect()
}

/// Whether every node is up and every variable's replicas are equal.
pub fn converged<A: App>(sim: &Sim) -> bool {
    let views = views::<A>(sim);
    if views.len() != sim.node_count() {
        return false;
    }
    let mut reference: BTreeMap<String, &dyn rasp_dataflow::erased::AnyLattice> = BTreeMap::new();
    for v in &views {
        for id in v.program.held() {
            let Ok(state) = v.program.state_dyn(&id) else {
                return false;
            };
            match reference.get(&id) {
                Some(r) => {
                    if !(state.leq_dyn(*r) && r.leq_dyn(state)) {
                        return false;
                    }
                }
                None => {
                    reference.insert(id, state);
                }
            }
        }
    }
    true
}

/// Checks a cluster's size: at least one node, at most `nodes` servers, and at least one
/// server in client-server mode.
pub fn validate_cluster(nodes: u32, servers: u32, membership: Mode) -> Result<(), String> {
    if nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    if servers > nodes || (membership == Mode::ClientServer && servers == 0) {
        return Err(format!(
            "--servers must be between {} and --nodes ({nodes}), got {servers}",
            u32::from(membership == Mode::ClientServer),
        ));
    }
    Ok(())
}

/// Checks the flags.
pub fn validate(args: &SimArgs) -> Result<(), String> {
    validate_cluster(args.nodes, args.servers(), args.membership)?;
    if !(args.duration_s.is_finite() && args.duration_s > 0.0) {
        return Err(format!(
            "--duration-s must be positive, got {}",
            args.duration_s
        ));
    }
    if let Some(a) = args.active_s {
        if !(a.is_finite() && (0.0..=args.duration_s).contains(&a)) {
            return Err(format!(
                "--active-s must be between 0 and --duration-s ({}), got {a}",
                args.duration_s
            ));
        }
    }
    if args.sample_ms == 0 {
        return Err("--sample-ms must be at least 1".into());
    }
    if args.min_latency_ms > args.max_latency_ms {
        return Err("--min-latency-ms is above --max-latency-ms".into());
    }
    let node_ok = |n: u32| {
        if n < args.nodes {
            Ok(())
        } else {
            Err(format!("node {n} does not exist (--nodes {})", args.nodes))
        }
    };
    for p in &args.partition {
        p.a.iter().chain(&p.b).try_for_each(|&n| node_ok(n))?;
    }
    for c in args.crash.iter().chain(&args.restart) {
        node_ok(c.node)?;
    }
    Ok(())
}

/// Partition ids of `--partition` (by position).
const PARTITION_BASE: u32 = 3_000_000;

/// The boot of simulated node `index` of `app`, the same for every tool that runs an app in
/// the simulator (`sim`, `fuzz`, `check`, the ad counter's driver): node 0 is the seed every
/// other node joins, and the wiring is the real node's ([`node_boot`] + [`app_boot`]).
pub fn app_node_boot<A: App>(
    app: &A,
    index: u32,
    mode: Mode,
    role: Role,
    config: &ReplicaConfig,
) -> Result<Boot, String> {
    let mut membership = MConfig {
        mode,
        role,
        ..MConfig::default()
    };
    app.membership_config(&mut membership);
    membership.validate().map_err(|e| e.to_string())?;
    let seeds = if index == 0 {
        Vec::new()
    } else {
        vec![Contact::bare(NodeId(0))]
    };
    let extra = app_boot(app.clone(), Some(index), config.clone());
    Ok(node_boot(NodeEnv { membership, seeds }, Some(extra), None))
}

/// Runs `app` in the simulator. Panics (with the seed and the reproducing command) if an
/// invariant is violated.
pub fn run<A: App>(app: A, args: &SimArgs) -> crate::Result<SimReport> {
    validate(args)?;
    let config = args.replication.config()?;
    let sim_cfg = SimConfig {
        seed: args.seed,
        seed_from_env: false,
        net: NetConfig {
            default: LinkConfig {
                latency: Latency::Uniform {
                    min: Duration::from_millis(args.min_latency_ms),
                    max: Duration::from_millis(args.max_latency_ms),
                },
                loss: args.loss,
                duplicate: args.duplicate,
                ..LinkConfig::default()
            },
            links: Vec::new(),
        },
        ..SimConfig::default()
    };
    let mut sim = Sim::new(sim_cfg).map_err(|e| e.to_string())?;
    if let Some(cmd) = &args.repro {
        sim.set_repro(cmd.clone());
    }
    let guests = crate::cli::node::load_guests(&args.atoms, args.atom_arg_json.as_deref())?;
    for i in 0..args.nodes {
        let boot = app_node_boot(&app, i, args.membership, args.role(i), &config)?;
        let boot = crate::cli::node::boot_with_guests(boot, guests.clone());
        let id = sim.add_node(boot);
        debug_assert_eq!(id, NodeId(i as u64));
    }
    let (invariants, eventual): (Vec<_>, Vec<_>) = app
        .invariants()
        .into_iter()
        .chain(super::builtin::safety::<A>())
        .partition(|i| i.within().is_none());
    for inv in invariants.clone() {
        sim.add_invariant(inv.name(), args.check_every, move |s| {
            inv.check(&views::<A>(s))
        });
    }
    for (k, p) in args.partition.iter().enumerate() {
        let id = PARTITION_BASE + k as u32;
        let nodes = |v: &[u32]| v.iter().map(|&n| NodeId(n as u64)).collect::<Vec<_>>();
        sim.schedule(
            at(p.from),
            Fault::Partition {
                id,
                a: nodes(&p.a),
                b: nodes(&p.b),
                one_way: false,
            },
        );
        sim.schedule(at(p.to), Fault::Heal(id));
    }
    for c in &args.crash {
        sim.schedule(at(c.at), Fault::Crash(NodeId(c.node as u64)));
    }
    for r in &args.restart {
        sim.schedule(at(r.at), Fault::Restart(NodeId(r.node as u64)));
    }

    let end = at(Duration::from_secs_f64(args.duration_s));
    let step = Duration::from_millis(args.sample_ms);
    let mut stretch: Option<Time> = None;
    let quiet = quiet(args, app.self_driven());
    if app.self_driven() {
        super::tell_quiet(&mut sim, args.nodes, quiet);
    }
    let mut due = Eventual::new(eventual, quiet);
    while sim.now() < end {
        let next = Time((sim.now() + step).0.min(end.0));
        sim.run_until(next);
        if let Err((name, msg)) = due.check::<A>(&sim) {
            panic!(
                "invariant `{name}` violated at event {} (time {:?}, seed {}): {msg}\nreproduce: {}",
                sim.events(),
                sim.now(),
                args.seed,
                sim.repro()
            );
        }
        if converged::<A>(&sim) {
            if stretch.is_none() {
                tracing::info!(t_s = sim.now().0 as f64 / 1e9, "converged");
                stretch = Some(sim.now());
            }
        } else if stretch.take().is_some() {
            tracing::info!(t_s = sim.now().0 as f64 / 1e9, "diverged again");
        }
    }
    let down: Vec<u32> = (0..args.nodes)
        .filter(|&i| !sim.is_up(NodeId(i as u64)))
        .collect();
    let values = (0..args.nodes)
        .filter_map(|i| {
            let v = sim.with_atom::<AppAtom<A>, _>(
                rasp_runtime::AtomAddr::new(NodeId(i as u64), APP_ATOM),
                |a| a.values(),
            )?;
            Some((i, v))
        })
        .collect();
    Ok(SimReport {
        nodes: args.nodes,
        seed: args.seed,
        membership: args.membership.to_string(),
        sync: config.sync.to_string(),
        duration_s: sim.now().0 as f64 / 1e9,
        events: sim.events(),
        trace_hash: sim.trace_hash(),
        converged: stretch.is_some(),
        converged_at_s: stretch.map(|t| t.0 as f64 / 1e9),
        down,
        invariants: invariants
            .iter()
            .chain(&due.props)
            .map(|i| i.name().to_string())
            .collect(),
        not_due: due.not_due(sim.now()),
        values,
    })
}

/// When the run goes quiet: the time of its last scheduled fault (a partition's heal, a
/// crash, a restart), zero without faults; for a self-driven app, no earlier than
/// `--active-s` (default: 10 s before the end).
fn quiet(args: &SimArgs, self_driven: bool) -> Time {
    let last = args
        .partition
        .iter()
        .map(|p| p.to)
        .chain(args.crash.iter().map(|c| c.at))
        .chain(args.restart.iter().map(|r| r.at))
        .max()
        .unwrap_or(Duration::ZERO);
    if !self_driven {
        return at(last);
    }
    let active = args.active_s.unwrap_or((args.duration_s - 10.0).max(0.0));
    at(last.max(Duration::from_secs_f64(active)))
}

/// The eventual properties of a `sim` run (see the module docs): each must hold over the
/// live nodes at every sample from its bound (the run's quiet time plus its `within`) to
/// the end of the run.
struct Eventual {
    props: Vec<Invariant>,
    quiet: Time,
    /// Per property: whether it held at the last sample, and its last failure message.
    held: Vec<(bool, String)>,
}

impl Eventual {
    fn new(props: Vec<Invariant>, quiet: Time) -> Self {
        let held = vec![(false, String::new()); props.len()];
        Eventual { props, quiet, held }
    }

    fn bound(&self, k: usize) -> Time {
        let within = self.props[k].within().unwrap_or(Duration::ZERO);
        Time(self.quiet.0.saturating_add(at(within).0))
    }

    /// Checks the properties at one sample: `Err((name, message))` for the first one that
    /// fails at or after its bound.
    fn check<A: App>(&mut self, sim: &Sim) -> Result<(), (&'static str, String)> {
        let now = sim.now();
        if self.props.is_empty() || now < self.quiet {
            return Ok(());
        }
        let views = views::<A>(sim);
        for k in 0..self.props.len() {
            let r = self.props[k].check(&views);
            let was = self.held[k].0;
            self.held[k] = match &r {
                Ok(()) => (true, String::new()),
                Err(m) => (false, m.clone()),
            };
            let Err(m) = r else { continue };
            if now < self.bound(k) {
                continue;
            }
            let within = secs(self.props[k].within().unwrap_or(Duration::ZERO));
            let msg = if was {
                format!(
                    "held, then stopped holding {within} s or more after the last fault at t={} s: {m}",
                    secs_t(self.quiet)
                )
            } else {
                format!(
                    "did not hold within {within} s after the last fault at t={} s: {m}",
                    secs_t(self.quiet)
                )
            };
            return Err((self.props[k].name(), msg));
        }
        Ok(())
    }

    /// The properties whose bound lies after `end`.
    fn not_due(&self, end: Time) -> Vec<String> {
        (0..self.props.len())
            .filter(|&k| self.bound(k) > end)
            .map(|k| self.props[k].name().to_string())
            .collect()
    }
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

fn secs_t(t: Time) -> String {
    format!("{}", t.0 as f64 / 1e9)
}

/// Runs the `sim` subcommand: prints the report; exit 0 if converged, 1 if not or if an
/// invariant failed, 2 on bad flags.
pub fn run_cmd<A: App>(app: A, args: &SimArgs) -> ExitCode {
    if let Err(e) = validate(args) {
        return crate::cli::config_error(e);
    }
    let args = SimArgs {
        repro: Some(command_line(std::env::args(), args.seed)),
        ..args.clone()
    };
    let args = &args;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(app, args)));
    match result {
        Ok(Ok(report)) => {
            if args.json {
                println!("{}", serde_json::to_string(&report).expect("json"));
            } else {
                print!("{}", report.text());
            }
            if report.converged {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(Err(e)) => crate::cli::config_error(e),
        Err(_) => {
            // The panic hook already printed the invariant, the seed and the repro command.
            eprintln!("rasp: the simulation stopped: an invariant was violated (see above)");
            ExitCode::FAILURE
        }
    }
}

/// `words` as one shell command line, with `--seed` set to `seed` (replaced if present,
/// appended if not). Quoting is written here rather than taken from a crate: single quotes
/// around any word with a character outside a safe set is all a POSIX shell needs.
pub fn command_line(words: impl IntoIterator<Item = String>, seed: u64) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut found = false;
    let mut words = words.into_iter();
    while let Some(w) = words.next() {
        if w == "--seed" {
            let _ = words.next();
            out.extend(["--seed".to_string(), seed.to_string()]);
            found = true;
        } else if w.starts_with("--seed=") {
            out.push(format!("--seed={seed}"));
            found = true;
        } else {
            out.push(w);
        }
    }
    if !found {
        out.extend(["--seed".to_string(), seed.to_string()]);
    }
    super::fuzz::shell_line(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Invariant, NoArgs, NodeCtx};
    use rasp_dataflow::update::add;
    use rasp_dataflow::{Error, Program, Var};
    use rasp_lattice::GSet;

    /// Every node adds its index to one grow-only set.
    #[derive(Clone)]
    struct Roll {
        /// An invariant that fails once the set has more than this many elements.
        at_most: usize,
    }

    fn roll() -> Var<GSet<u32>> {
        Var::named("roll")
    }

    impl App for Roll {
        type Args = NoArgs;
        fn program(&self, p: &mut Program) -> Result<(), Error> {
            p.declare::<GSet<u32>>(roll().id()).map(|_| ())
        }
        fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
            let i = node.index().expect("simulated nodes have an index");
            node.update(&roll(), add(i)).expect("declared");
        }
        fn invariants(&self) -> Vec<Invariant> {
            let at_most = self.at_most;
            vec![Invariant::each("small roll", move |n| {
                let len = n.program.query(&roll()).map_err(|e| e.to_string())?.len();
                if len <= at_most {
                    Ok(())
                } else {
                    Err(format!("{len} elements"))
                }
            })]
        }
    }

    #[test]
    fn long_values_are_cut_in_the_text_summary() {
        assert_eq!(shorten("{1, 2}"), "{1, 2}");
        let long = "x".repeat(SHOWN_CHARS + 5);
        let s = shorten(&long);
        assert!(s.starts_with(&"x".repeat(SHOWN_CHARS)));
        assert!(
            s.ends_with("(5 more characters; --json prints it whole)"),
            "{s}"
        );
    }

    #[test]
    fn the_repro_command_is_the_command_line_with_its_seed() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_line(w(&["todo", "sim", "--loss", "0.2"]), 42),
            "todo sim --loss 0.2 --seed 42"
        );
        assert_eq!(
            command_line(
                w(&["a b", "sim", "--seed", "7", "--partition", "0/1@1-2"]),
                7
            ),
            "'a b' sim --seed 7 --partition 0/1@1-2"
        );
        assert_eq!(
            command_line(w(&["x", "--seed=3", "it's"]), 3),
            "x --seed=3 'it'\\''s'"
        );
    }

    #[test]
    fn specs_parse_and_bad_ones_are_errors() {
        let p: PartitionSpec = "0,1/2@0.5-5s".parse().unwrap();
        assert_eq!((p.a, p.b), (vec![0, 1], vec![2]));
        assert_eq!(
            (p.from, p.to),
            (Duration::from_millis(500), Duration::from_secs(5))
        );
        let c: NodeAt = "2@7".parse().unwrap();
        assert_eq!((c.node, c.at), (2, Duration::from_secs(7)));
        assert!("0,1@1-2".parse::<PartitionSpec>().is_err());
        assert!("0/1@3-2".parse::<PartitionSpec>().is_err());
        assert!("x@1".parse::<NodeAt>().is_err());
        let args = SimArgs {
            crash: vec!["5@1".parse().unwrap()],
            ..SimArgs::default()
        };
        assert!(validate(&args).unwrap_err().contains("node 5"));
    }

    #[test]
    fn converges_replays_and_reports_crashed_nodes() {
        let args = SimArgs {
            nodes: 4,
            duration_s: 5.0,
            ..SimArgs::default()
        };
        let r = run(Roll { at_most: 4 }, &args).unwrap();
        assert!(r.converged, "{}", r.text());
        for v in r.values.values() {
            assert_eq!(v["roll"], "{0, 1, 2, 3}");
        }
        assert_eq!(
            run(Roll { at_most: 4 }, &args).unwrap().trace_hash,
            r.trace_hash
        );
        // A node that crashes and never restarts: not converged, reported down.
        let crashed = SimArgs {
            crash: vec!["3@2".parse().unwrap()],
            ..args.clone()
        };
        let r = run(Roll { at_most: 4 }, &crashed).unwrap();
        assert!(!r.converged);
        assert_eq!(r.down, vec![3]);
        // It restarts: it boots again (the same wiring), rejoins, and the cluster converges.
        let restarted = SimArgs {
            restart: vec!["3@3".parse().unwrap()],
            ..crashed
        };
        let r = run(Roll { at_most: 4 }, &restarted).unwrap();
        assert!(r.converged, "{}", r.text());
        assert_eq!(r.values[&3]["roll"], "{0, 1, 2, 3}");
    }

    /// WebAssembly atoms beside the app's (`--atom`): the Rust ping-pong guest on every
    /// node pings node 0's ponger, written in WebAssembly text; the app still converges, the
    /// guests' traffic is in the run, and the run replays from its seed.
    #[test]
    fn wasm_atoms_run_beside_the_app_and_replay() {
        use rasp_wasm::build::{build_guest, target_installed};
        let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let wat = ws.join("runtime/wasm/tests/guests/pp_echo.wat");
        let bad = SimArgs {
            atoms: vec![ws.join("no/such.wasm")],
            ..SimArgs::default()
        };
        let err = run(Roll { at_most: 4 }, &bad).unwrap_err().to_string();
        assert!(
            err.contains("--atom") && err.contains("no/such.wasm"),
            "{err}"
        );
        if !target_installed() {
            eprintln!("the wasm32 target is not installed: the Rust guest is skipped");
            return;
        }
        let pinger = build_guest(ws, "rasp-guest-pingpong", &ws.join("target/guest")).unwrap();
        let plain = SimArgs {
            nodes: 3,
            duration_s: 5.0,
            ..SimArgs::default()
        };
        let with = SimArgs {
            atoms: vec![wat, pinger],
            atom_arg_json: Some(r#"{"pinger": true, "peer": 0, "count": 50, "window": 2}"#.into()),
            ..plain.clone()
        };
        let a = run(Roll { at_most: 4 }, &plain).unwrap();
        let b = run(Roll { at_most: 4 }, &with).unwrap();
        assert!(b.converged, "{}", b.text());
        // 3 pingers × 50 round trips: at least 300 more deliveries.
        assert!(
            b.events >= a.events + 300,
            "{} events against {}",
            b.events,
            a.events
        );
        assert_eq!(
            run(Roll { at_most: 4 }, &with).unwrap().trace_hash,
            b.trace_hash
        );
    }

    #[test]
    fn a_violated_invariant_stops_the_run_with_the_seed() {
        let args = SimArgs {
            nodes: 3,
            duration_s: 5.0,
            ..SimArgs::default()
        };
        let err = std::panic::catch_unwind(|| run(Roll { at_most: 2 }, &args)).unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("small roll") && msg.contains("seed 42") && msg.contains("3 elements"),
            "{msg}"
        );
    }

    /// Every node adds its index to the roll; an eventual property wants `want` elements on
    /// every node within `within`.
    #[derive(Clone)]
    struct Settles {
        want: usize,
        within: Duration,
    }

    impl App for Settles {
        type Args = NoArgs;
        fn program(&self, p: &mut Program) -> Result<(), Error> {
            Roll { at_most: 0 }.program(p)
        }
        fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
            let i = node.index().expect("simulated nodes have an index");
            node.update(&roll(), add(i)).expect("declared");
        }
        fn invariants(&self) -> Vec<Invariant> {
            let want = self.want;
            vec![Invariant::eventually(
                "full roll",
                self.within,
                move |nodes| {
                    for n in nodes {
                        let len = n.program.query(&roll()).map_err(|e| e.to_string())?.len();
                        if len != want {
                            return Err(format!("node {} holds {len} elements", n.index));
                        }
                    }
                    Ok(())
                },
            )]
        }
    }

    #[test]
    fn sim_checks_eventual_invariants_after_the_last_fault() {
        // The partition heals at 2 s; the roll must then be full within 1 s, and it is.
        let args = SimArgs {
            nodes: 3,
            duration_s: 6.0,
            partition: vec!["0/1,2@0.5-2".parse().unwrap()],
            ..SimArgs::default()
        };
        let ok = Settles {
            want: 3,
            within: Duration::from_secs(1),
        };
        let r = run(ok, &args).unwrap();
        assert!(r.invariants.contains(&"full roll".to_string()), "{r:?}");
        assert!(r.not_due.is_empty(), "{r:?}");
        // A property that never holds: the run stops at its bound, with the seed.
        let never = Settles {
            want: 4,
            within: Duration::from_secs(1),
        };
        let err = std::panic::catch_unwind(|| run(never.clone(), &args)).unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("full roll")
                && msg.contains("seed 42")
                && msg.contains("did not hold within 1 s after the last fault at t=2 s")
                && msg.contains("holds 3 elements"),
            "{msg}"
        );
        // Its bound after the end of the run: not due, said so, not a violation.
        let late = Settles {
            want: 4,
            within: Duration::from_secs(10),
        };
        let r = run(late, &args).unwrap();
        assert_eq!(r.not_due, vec!["full roll".to_string()]);
        assert!(r.text().contains("not due"), "{}", r.text());
    }
}
