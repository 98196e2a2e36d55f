//! `<app> check`: bounded model checking of an [`App`]: every interleaving of a small
//! cluster's messages, timers and chosen faults up to a depth, with the app's invariants
//! checked in every state reached.
//!
//! The nodes are booted exactly as by `sim` (the same [`crate::cli::node::node_boot`] and
//! [`super::app_boot`]: node-info atom, membership atom, the app at [`super::APP_ATOM`]),
//! then the simulator enters its controlled mode and the explorer
//! ([`rasp_runtime::sim::explore`](mod@rasp_runtime::sim::explore), whose module docs give the model, the state digest and
//! the partial-order reduction) picks every possible next event in turn. Flags: `--nodes`,
//! `--depth`, `--crashes`, `--drops`, `--partitions` (how many of each fault a path may
//! hold), `--dfs` (depth-first instead of breadth-first), `--threads`, `--max-states`,
//! `--no-por`, `--no-hashing`, membership and replication as in `sim` (full membership by
//! default: the smallest protocol).
//!
//! Safety invariants (`Invariant::each` / `all`) are checked in every state reached; the
//! eventual ones (`Invariant::eventually`) in every state at the depth bound, after running it
//! on with no fault for their bound (`--settle-s` to choose it, 0 to skip them; see
//! [`rasp_runtime::sim::explore`](mod@rasp_runtime::sim::explore), "Eventual properties").
//!
//! Output: states explored, states per second, depth reached, then either "no violation up
//! to depth D" (exit 0) or the shortest counterexample (breadth-first), one line per event in
//! plain words, written as a trace file (`--trace`, [`rasp_runtime::sim::Trace`]) that
//! [`rasp_runtime::sim::replay`] loads with the same boots ([`boots`]) (exit 1).
//!
//! ```text
//! cargo run --release --example todo -- check --nodes 3 --depth 12
//! ```

use super::sim::views;
use super::{App, ReplicationArgs};
use clap::Args;
use rasp_membership::{Mode, Role};
use rasp_runtime::sim::{explore, Budget, ExploreConfig, ExploreReport, Model, Strategy};
use rasp_runtime::Boot;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `check` with the app's own flags.
#[derive(Clone, Debug, Args)]
pub struct CheckCmd<U: Args> {
    /// The model checker's flags.
    #[command(flatten)]
    pub check: CheckArgs,
    /// The app's flags.
    #[command(flatten)]
    pub user: U,
}

/// The model checker's flags (see the module docs).
#[derive(Clone, Debug, Args)]
pub struct CheckArgs {
    /// Number of nodes (2-4 is what an exhaustive search can cover)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub nodes: u32,
    /// The longest path explored, in events
    #[arg(long, value_name = "D", default_value_t = 12)]
    pub depth: u32,
    /// Node crashes a path may contain (a crashed node may then restart)
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub crashes: u32,
    /// Lost messages a path may contain
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub drops: u32,
    /// Partitions a path may contain (each may then heal)
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub partitions: u32,
    /// Depth-first search (less memory; the counterexample found may not be the shortest)
    #[arg(long)]
    pub dfs: bool,
    /// Threads: breadth-first spreads each frontier over them, depth-first keeps its
    /// simulators on that many workers and rebuilds siblings ahead (the result does not
    /// depend on it)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// Stop after this many distinct states (bounds memory: breadth-first keeps each frontier
    /// state's path, well under 1 KiB at depth 12)
    #[arg(long, value_name = "N", default_value_t = 500_000)]
    pub max_states: u64,
    /// Turn partial-order reduction (sleep sets) off
    #[arg(long)]
    pub no_por: bool,
    /// Turn state hashing (the visited set) off
    #[arg(long)]
    pub no_hashing: bool,
    /// Seconds of fault-free running after which the app's eventual properties
    /// (`Invariant::eventually`) are checked, from every state at the depth bound
    /// [default: the longest of their own bounds; 0: not checked]
    #[arg(long, value_name = "S")]
    pub settle_s: Option<f64>,
    /// Seed of what the nodes draw at boot and of their generators
    #[arg(long, value_name = "SEED", default_value_t = 42)]
    pub seed: u64,
    /// Membership protocol: full, client-server or hyparview
    #[arg(long, value_name = "MODE", default_value_t = Mode::Full)]
    pub membership: Mode,
    /// The first this many nodes are servers [default: 1 under client-server, all otherwise]
    #[arg(long, value_name = "K")]
    pub servers: Option<u32>,
    /// Replication settings.
    #[command(flatten)]
    pub replication: ReplicationArgs,
    /// Where to write the counterexample's trace
    #[arg(
        long,
        value_name = "PATH",
        default_value = "check-counterexample.trace"
    )]
    pub trace: PathBuf,
}

impl Default for CheckArgs {
    fn default() -> Self {
        CheckArgs {
            nodes: 3,
            depth: 12,
            crashes: 0,
            drops: 0,
            partitions: 0,
            dfs: false,
            threads: 1,
            max_states: 500_000,
            no_por: false,
            no_hashing: false,
            settle_s: None,
            seed: 42,
            membership: Mode::Full,
            servers: None,
            replication: ReplicationArgs::default(),
            trace: PathBuf::from("check-counterexample.trace"),
        }
    }
}

impl CheckArgs {
    fn servers(&self) -> u32 {
        match (self.servers, self.membership) {
            (Some(k), _) => k,
            (None, Mode::ClientServer) => 1,
            (None, _) => self.nodes,
        }
    }

    /// The explorer's bounds.
    pub fn explore_config(&self) -> ExploreConfig {
        ExploreConfig {
            depth: self.depth,
            strategy: if self.dfs {
                Strategy::Dfs
            } else {
                Strategy::Bfs
            },
            faults: Budget {
                crashes: self.crashes,
                drops: self.drops,
                partitions: self.partitions,
            },
            por: !self.no_por,
            hashing: !self.no_hashing,
            max_states: self.max_states,
            threads: self.threads.max(1),
        }
    }
}

/// The boot closure of each node, as `sim` boots them: node `i` has index `i`, joins
/// through node 0, and is a server if `i < servers`.
pub fn boots<A: App>(app: &A, args: &CheckArgs) -> crate::Result<Vec<Boot>> {
    let servers = args.servers();
    super::sim::validate_cluster(args.nodes, servers, args.membership)?;
    let config = args.replication.config()?;
    (0..args.nodes)
        .map(|i| {
            let role = if i < servers {
                Role::Server
            } else {
                Role::Client
            };
            super::sim::app_node_boot(app, i, args.membership, role, &config).map_err(Into::into)
        })
        .collect()
}

/// The model of `app` under `args`: its boots and its invariants over the live nodes'
/// [`super::NodeView`]s.
pub fn model<A: App>(app: &A, args: &CheckArgs) -> crate::Result<Model> {
    let settle = match args.settle_s {
        Some(s) if !(s.is_finite() && (0.0..=3600.0).contains(&s)) => {
            return Err(format!("--settle-s must be between 0 and 3600 seconds, got {s}").into())
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let mut model = Model::new(args.seed, boots(app, args)?);
    for inv in app.invariants() {
        model = match inv.within() {
            None => model.invariant(inv.name(), move |sim| inv.check(&views::<A>(sim))),
            Some(_) if settle.is_some_and(|d| d.is_zero()) => model,
            Some(within) => {
                let name = inv.name().to_string();
                model.eventually(name, settle.unwrap_or(within), move |sim| {
                    inv.check(&views::<A>(sim))
                })
            }
        };
    }
    Ok(model)
}

/// Explores `app` (see the module docs).
pub fn run<A: App>(app: &A, args: &CheckArgs) -> crate::Result<ExploreReport> {
    let model = model(app, args)?;
    Ok(explore(&model, &args.explore_config()))
}

/// The report in words.
pub fn text(args: &CheckArgs, r: &ExploreReport) -> String {
    let mut out = format!(
        "check: nodes={} membership={} depth={} search={} faults: crashes={} drops={} partitions={} por={} hashing={} threads={}\n",
        args.nodes,
        args.membership,
        args.depth,
        if args.dfs { "dfs" } else { "bfs" },
        args.crashes,
        args.drops,
        args.partitions,
        !args.no_por,
        !args.no_hashing,
        args.threads.max(1),
    );
    out.push_str(&format!(
        "states explored: {} ({} transitions, {} steps replayed) in {:.2} s: {:.0} states/s; depth reached {}\n",
        r.states,
        r.transitions,
        r.replayed_steps,
        r.elapsed.as_secs_f64(),
        r.states_per_sec(),
        r.depth_reached,
    ));
    if r.settled > 0 {
        out.push_str(&format!(
            "eventual properties checked in {} states at the depth bound, each run on with no fault first\n",
            r.settled
        ));
    } else if args.settle_s == Some(0.0) {
        out.push_str("eventual properties not checked (--settle-s 0)\n");
    }
    match &r.violation {
        None => {
            out.push_str(&format!("no violation up to depth {}", args.depth));
            if r.exhausted {
                out.push_str(" (the state space is exhausted: no violation at any depth)");
            }
            if r.truncated {
                out.push_str(&format!(
                    " (stopped at --max-states {}: not every state within the depth was explored)",
                    args.max_states
                ));
            }
            out.push('\n');
        }
        Some(v) => {
            let which = if v.settle_from.is_some() {
                "settled from a state at the depth bound: a shorter path may fail too"
            } else if args.dfs {
                "a counterexample"
            } else {
                "a shortest counterexample"
            };
            let (depth, settled) = match v.settle_from {
                Some(k) => (k, ", then settled"),
                None => (v.steps.len(), ""),
            };
            out.push_str(&format!(
                "VIOLATION of `{}` at depth {depth}{settled} ({which}):\n",
                v.invariant,
            ));
            for line in &v.story {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    out
}

/// Runs the `check` subcommand: prints the report, writes the counterexample's trace; exit 0
/// if no violation, 1 if one, 2 on bad flags.
pub fn run_cmd<A: App>(app: A, args: &CheckArgs) -> ExitCode {
    let report = match run(&app, args) {
        Ok(r) => r,
        Err(e) => return crate::cli::config_error(e),
    };
    print!("{}", text(args, &report));
    match &report.violation {
        None => ExitCode::SUCCESS,
        Some(v) => {
            match v.trace.save(&args.trace) {
                Ok(()) => println!(
                    "trace: {} ({} events; rasp_runtime::sim::replay loads it with the same nodes)",
                    args.trace.display(),
                    v.trace.hashes.len()
                ),
                Err(e) => eprintln!("rasp: cannot write {}: {e}", args.trace.display()),
            }
            ExitCode::FAILURE
        }
    }
}
