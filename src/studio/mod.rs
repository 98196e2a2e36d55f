//! rasp studio: watch, step, scrub and branch an execution of your own program in the
//! browser (`<app> studio`, `rasp ad-counter studio`), and watch a live cluster
//! (`rasp studio --attach`, [`live`]).
//!
//! In the manner of Runway (Ongaro, *Runway: a new tool for distributed systems design*,
//! 2016: a timeline of one execution that is played, stepped, scrubbed and branched by hand)
//! and ShiViz (Beschastnikh et al., *Debugging Distributed Systems*, CACM 59(8), 2016: one
//! lane per process, arrows for messages), on the user's real program rather than a model:
//! the simulator is deterministic and every choice is an input ([`crate::app::plan::Plan`]).
//!
//! - An **execution** is a plan run once with its full log ([`crate::app::log::ExecLog`]):
//!   every event, every message from send to delivery, and the nodes' variables, neighbours
//!   and up state after each event, from which the state at any cursor is rebuilt.
//! - The root execution is fuzz run `--run` of `--seed` (the same plan `fuzz` would run,
//!   under the same flags), or the execution of a trace file written by `fuzz` or `shrink`
//!   (`--trace`).
//! - A **branch** is a new execution: the parent's plan plus one choice made at the cursor
//!   (drop, duplicate or delay a message, crash, restart or pause a node, partition or heal,
//!   inject a workload operation), simulated again from the start, so it is exact.
//!   Executions form a tree.
//! - The page ([`server`]: `GET /`) asks the server for windows of events, so a long run
//!   streams rather than loading whole. The HTTP API is documented in [`server`].
//! - [`live`]: `rasp studio --attach ADDR,...`, the live view of a running cluster of real
//!   nodes, drawn from each node's HTTP API ([`crate::http`]).
//!
//! The page is plain JavaScript modules and a canvas (no framework, no build step, no npm at
//! run time: the assets are embedded in the binary); README "Studio" says why.

pub mod live;
pub mod server;
pub mod shiviz;

use crate::app::fuzz::{run_seed, FuzzArgs, TraceFile};
use crate::app::log::ExecLog;
use crate::app::plan::{execute, Collect, Delay, Ext, External, Plan, MAX_DELAY};
use crate::app::{App, ReplicationArgs};
use clap::Args;
use rasp_membership::Mode;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `studio` with the app's own flags.
#[derive(Clone, Debug, Args)]
pub struct StudioCmd<U: Args> {
    /// The studio's flags.
    #[command(flatten)]
    pub studio: StudioArgs,
    /// The app's flags.
    #[command(flatten)]
    pub user: U,
}

/// The studio's flags: which execution to open, where to serve, and the fuzzer's flags that
/// shape a seeded run (the same meaning and defaults as `fuzz`'s).
#[derive(Clone, Debug, Args)]
pub struct StudioArgs {
    /// Open fuzz run `--run` of this seed
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub seed: u64,
    /// Which run of the seed (fuzz numbers its runs from 0)
    #[arg(long, value_name = "I", default_value_t = 0)]
    pub run: u64,
    /// Open this trace file (written by `fuzz` or `shrink`) instead of a seeded run
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Address to serve the page on (loopback by default; port 0: any free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Nodes per run
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub nodes: u32,
    /// The first this many nodes are servers [default: 1 under client-server membership,
    /// every node otherwise]
    #[arg(long, value_name = "K")]
    pub servers: Option<u32>,
    /// Membership protocol: full, client-server or hyparview
    #[arg(long, value_name = "MODE", default_value_t = Mode::Full)]
    pub membership: Mode,
    /// Replication settings.
    #[command(flatten)]
    pub replication: ReplicationArgs,
    /// Faults and workload start within this many seconds
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub horizon_s: f64,
    /// Once the run is quiet, the eventual properties must hold within this many seconds
    #[arg(long, value_name = "S", default_value_t = 20.0)]
    pub settle_s: f64,
    /// At most this many faults per run
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_faults: u32,
    /// Crashed nodes always keep their durable store
    #[arg(long)]
    pub no_wipe: bool,
    /// Largest message loss probability a run may draw
    #[arg(long, value_name = "P", default_value_t = 0.2)]
    pub max_loss: f64,
    /// Largest duplication probability a run may draw
    #[arg(long, value_name = "P", default_value_t = 0.1)]
    pub max_duplicate: f64,
}

impl Default for StudioArgs {
    fn default() -> Self {
        let f = FuzzArgs::default();
        StudioArgs {
            seed: f.seed,
            run: 0,
            trace: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            nodes: f.nodes,
            servers: f.servers,
            membership: f.membership,
            replication: f.replication,
            horizon_s: f.horizon_s,
            settle_s: f.settle_s,
            max_faults: f.max_faults,
            no_wipe: f.no_wipe,
            max_loss: f.max_loss,
            max_duplicate: f.max_duplicate,
        }
    }
}

impl StudioArgs {
    /// The fuzzer's flags these stand for.
    pub fn fuzz_args(&self) -> FuzzArgs {
        FuzzArgs {
            seed: self.seed,
            nodes: self.nodes,
            servers: self.servers,
            membership: self.membership,
            replication: self.replication.clone(),
            horizon_s: self.horizon_s,
            settle_s: self.settle_s,
            max_faults: self.max_faults,
            no_wipe: self.no_wipe,
            max_loss: self.max_loss,
            max_duplicate: self.max_duplicate,
            ..FuzzArgs::default()
        }
    }

    /// The plan of the seeded run these flags name.
    pub fn plan<A: App>(&self, app: &A) -> crate::Result<Plan> {
        let space = self.fuzz_args().space()?;
        Ok(Plan::generate(app, &space, run_seed(self.seed, self.run)))
    }
}

/// The words of the command line after `studio` that `fuzz` also takes (the app's flags and
/// the fuzzer's), for a downloaded file that `replay` and `shrink` can parse again.
pub fn fuzz_words(words: &[String]) -> Vec<String> {
    const OWN: [&str; 3] = ["--run", "--trace", "--addr"];
    let mut out = Vec::new();
    let mut skip = false;
    for w in words {
        if skip {
            skip = false;
            continue;
        }
        if OWN.contains(&w.as_str()) {
            skip = true;
            continue;
        }
        if OWN.iter().any(|o| w.starts_with(&format!("{o}="))) {
            continue;
        }
        out.push(w.clone());
    }
    out
}

/// One execution of the studio's tree.
pub struct Execution<A: App> {
    /// Its id (its index in the tree).
    pub id: usize,
    /// The execution it branched from, and the event of the fork.
    pub parent: Option<(usize, u64)>,
    /// In words: where it comes from.
    pub label: String,
    /// The app, configured with `args`.
    pub app: A,
    /// The app's (and fuzzer's) flags as words.
    pub args: Vec<String>,
    /// Its inputs.
    pub plan: Plan,
    /// What happened.
    pub log: ExecLog,
    /// Events processed (the log may stop earlier: [`ExecLog::truncated`]).
    pub events: u64,
    /// The time of its last event.
    pub end: rasp_runtime::Time,
}

impl<A: App> Execution<A> {
    /// Runs `plan` on `app` with the log on.
    pub fn run(
        id: usize,
        parent: Option<(usize, u64)>,
        label: String,
        app: A,
        args: Vec<String>,
        plan: Plan,
    ) -> crate::Result<Self> {
        let out = execute(
            &app,
            &plan,
            Collect {
                log: true,
                ..Collect::default()
            },
            None,
        )?;
        let log = out.log.ok_or("the run kept no log")?;
        let end = log.events.last().map_or(rasp_runtime::Time(0), |e| e.t);
        Ok(Execution {
            id,
            parent,
            label,
            app,
            args,
            plan,
            log,
            events: out.events,
            end,
        })
    }
}

/// A choice made by hand at the cursor (see the module docs and [`server`]).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Action {
    /// Lose a message (in flight at the cursor, or sent later).
    Drop {
        /// Its name (`"0>1:dataflow/sync#3"`).
        msg: String,
    },
    /// Deliver a message twice.
    Duplicate {
        /// Its name.
        msg: String,
    },
    /// Deliver a message later.
    Delay {
        /// Its name.
        msg: String,
        /// How much later, in milliseconds.
        by_ms: u64,
    },
    /// Crash a node; it restarts `down_ms` later.
    Crash {
        /// The node.
        node: u32,
        /// How long it stays down.
        down_ms: u64,
        /// Whether its durable store is lost.
        #[serde(default)]
        wipe: bool,
    },
    /// Pause a node (SIGSTOP) for `lasts_ms`.
    Pause {
        /// The node.
        node: u32,
        /// How long.
        lasts_ms: u64,
    },
    /// Cut `a` from `b` for `lasts_ms`.
    Partition {
        /// One side.
        a: Vec<u32>,
        /// The other side.
        b: Vec<u32>,
        /// How long.
        lasts_ms: u64,
        /// Only `a → b` is blocked.
        #[serde(default)]
        one_way: bool,
    },
    /// Restart now a node that a crash of the run holds down at the cursor (the crash's
    /// downtime ends here).
    Restart {
        /// The node.
        node: u32,
    },
    /// Heal now every partition of the run in effect at the cursor (each ends here).
    Heal {},
    /// Inject one of the app's workload operations on a node.
    Update {
        /// The node.
        node: u32,
        /// The operation, as the app's workload names it.
        op: String,
    },
}

/// The longest fault a branch may add (a crash's downtime, a partition, a pause).
pub const MAX_FAULT: Duration = Duration::from_secs(600);

impl Action {
    /// The parent's plan with this choice made right after event `at` of its log; and the
    /// branch's label.
    pub fn apply(&self, parent: &Plan, log: &ExecLog, at: u64) -> Result<(Plan, String), String> {
        let total = log.events.len() as u64;
        if at > total {
            return Err(format!(
                "event {at} is beyond the execution's {total} events"
            ));
        }
        // Right after the cursor's event: one microsecond later, so the new input comes
        // after everything else of that instant.
        let t0 = at
            .checked_sub(1)
            .and_then(|k| log.events.get(k as usize))
            .map_or(Duration::ZERO, |e| Duration::from_nanos(e.t.0));
        let when = t0 + Duration::from_micros(1);
        let node_ok = |n: u32| {
            if n < parent.nodes {
                Ok(())
            } else {
                Err(format!(
                    "node {n} does not exist (the run has {})",
                    parent.nodes
                ))
            }
        };
        let ms = |v: u64, what: &str| {
            let d = Duration::from_millis(v);
            if v == 0 || d > MAX_FAULT {
                Err(format!(
                    "{what} must be between 1 ms and {} s, got {v} ms",
                    MAX_FAULT.as_secs()
                ))
            } else {
                Ok(d)
            }
        };
        let mut plan = parent.clone();
        let label = match self {
            Action::Drop { msg } | Action::Duplicate { msg } | Action::Delay { msg, .. } => {
                let m = log
                    .find_msg(msg)
                    .ok_or_else(|| format!("no message named {msg:?} in this execution"))?;
                match self {
                    Action::Drop { .. } => {
                        if m.dropped {
                            return Err(format!("{msg} is lost already"));
                        }
                        plan.drops.push(m.id);
                        // Drops act only within the schedule window: make it reach the send.
                        let sent = Duration::from_nanos(m.sent_t.0) + Duration::from_nanos(1);
                        if plan.window() < sent {
                            plan.schedule_until = Some(sent);
                        }
                        format!("drop {msg} at event {at}")
                    }
                    Action::Duplicate { .. } => {
                        plan.duplicates.push(m.id);
                        format!("duplicate {msg} at event {at}")
                    }
                    Action::Delay { by_ms, .. } => {
                        let by = Duration::from_millis(*by_ms);
                        if *by_ms == 0 || by > MAX_DELAY {
                            return Err(format!(
                                "a delay must be between 1 ms and {} s, got {by_ms} ms",
                                MAX_DELAY.as_secs()
                            ));
                        }
                        plan.delays.retain(|d| d.msg != m.id);
                        plan.delays.push(Delay { msg: m.id, by });
                        format!("delay {msg} by {by_ms} ms at event {at}")
                    }
                    _ => unreachable!("matched above"),
                }
            }
            Action::Crash {
                node,
                down_ms,
                wipe,
            } => {
                node_ok(*node)?;
                let down = ms(*down_ms, "a crash's downtime")?;
                plan.events.push(External {
                    at: when,
                    what: Ext::Crash {
                        node: *node,
                        down,
                        wipe: *wipe,
                    },
                });
                format!(
                    "crash n{node} for {down_ms} ms{} at event {at}",
                    if *wipe { " (store wiped)" } else { "" }
                )
            }
            Action::Restart { node } => {
                node_ok(*node)?;
                let crash = plan.events.iter_mut().find(|e| {
                    matches!(e.what, Ext::Crash { node: n, .. } if n == *node)
                        && e.at < when
                        && e.end() > when
                });
                let Some(e) = crash else {
                    return Err(format!(
                        "n{node} is not down by a crash at event {at}: nothing to restart"
                    ));
                };
                if let Ext::Crash { down, .. } = &mut e.what {
                    *down = when - e.at;
                }
                format!("restart n{node} at event {at}")
            }
            Action::Heal {} => {
                let mut healed = 0;
                for e in plan
                    .events
                    .iter_mut()
                    .filter(|e| e.at < when && e.end() > when)
                {
                    if let Ext::Partition { lasts, .. } = &mut e.what {
                        *lasts = when - e.at;
                        healed += 1;
                    }
                }
                if healed == 0 {
                    return Err(format!("no partition is in effect at event {at}"));
                }
                format!(
                    "heal {healed} partition{} at event {at}",
                    if healed == 1 { "" } else { "s" }
                )
            }
            Action::Pause { node, lasts_ms } => {
                node_ok(*node)?;
                let lasts = ms(*lasts_ms, "a pause")?;
                plan.events.push(External {
                    at: when,
                    what: Ext::Pause { node: *node, lasts },
                });
                format!("pause n{node} for {lasts_ms} ms at event {at}")
            }
            Action::Partition {
                a,
                b,
                lasts_ms,
                one_way,
            } => {
                if a.is_empty() || b.is_empty() {
                    return Err("a partition needs two non-empty sides".into());
                }
                for &n in a.iter().chain(b) {
                    node_ok(n)?;
                }
                if a.iter().any(|n| b.contains(n)) {
                    return Err("a node cannot be on both sides of a partition".into());
                }
                let lasts = ms(*lasts_ms, "a partition")?;
                plan.events.push(External {
                    at: when,
                    what: Ext::Partition {
                        a: a.clone(),
                        b: b.clone(),
                        one_way: *one_way,
                        lasts,
                    },
                });
                format!("partition {a:?} from {b:?} for {lasts_ms} ms at event {at}")
            }
            Action::Update { node, op } => {
                node_ok(*node)?;
                if op.trim().is_empty() {
                    return Err("an update needs an operation".into());
                }
                if op.len() > 4096 {
                    return Err("an operation is at most 4096 bytes".into());
                }
                plan.events.push(External {
                    at: when,
                    what: Ext::Work {
                        node: *node,
                        op: op.clone(),
                    },
                });
                format!("n{node} {op} at event {at}")
            }
        };
        // Plans keep their external events in time order (a stable sort: the new one goes
        // after those of the same instant).
        plan.events.sort_by_key(|e| e.at);
        Ok((plan, label))
    }
}

/// A downloaded execution (`GET /api/executions/{id}/download`): what re-simulates it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StudioFile {
    /// `"rasp-studio/1"`.
    pub format: String,
    /// The app's name (the binary's).
    pub app: String,
    /// The app's flags as words.
    pub args: Vec<String>,
    /// The execution's inputs.
    pub plan: Plan,
    /// Its label.
    pub label: String,
}

/// The format tag of a [`StudioFile`].
pub const STUDIO_FORMAT: &str = "rasp-studio/1";

/// What an uploaded file holds: a [`StudioFile`] (JSON) or a trace file of `fuzz` /
/// `shrink` (MessagePack).
pub fn parse_upload(bytes: &[u8]) -> Result<(Vec<String>, Plan, String), String> {
    if bytes.first().is_some_and(|b| *b == b'{') {
        let f: StudioFile =
            serde_json::from_slice(bytes).map_err(|e| format!("not a studio file: {e}"))?;
        if f.format != STUDIO_FORMAT {
            return Err(format!(
                "unknown studio file format {:?} (this studio reads {STUDIO_FORMAT:?})",
                f.format
            ));
        }
        return Ok((f.args, f.plan, format!("uploaded: {}", f.label)));
    }
    let t = TraceFile::from_bytes(bytes).map_err(|e| e.to_string())?;
    let label = match (t.run, &t.violation) {
        (Some(r), _) => format!("uploaded trace (fuzz run {r})"),
        (None, _) => "uploaded trace (shrunk)".to_string(),
    };
    Ok((t.args, t.plan, label))
}

/// Runs the `studio` subcommand on an app already configured (from `user_words` on the
/// command line, or from the trace file's flags): serves the page until SIGINT/SIGTERM;
/// exit 2 on bad flags, 1 if the server cannot start.
pub fn run_cmd<A: App>(
    app: A,
    args: &StudioArgs,
    file: Option<&TraceFile>,
    user_words: Vec<String>,
) -> std::process::ExitCode {
    // The command that was run, up to `studio`: "todo", "rasp ad-counter".
    let (prefix, _) = crate::app::fuzz::split_command_line("studio");
    let name = prefix
        .iter()
        .enumerate()
        .map(|(k, w)| match k {
            0 => std::path::Path::new(w)
                .file_stem()
                .map_or_else(|| w.clone(), |s| s.to_string_lossy().into_owned()),
            _ => w.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    // Served from inside another program (a test, an embedding): no `studio` word on its
    // command line, so the app is named by its type.
    let name = if name.is_empty() || !std::env::args().any(|w| w == "studio") {
        let ty = std::any::type_name::<A>();
        let base = ty.split('<').next().unwrap_or(ty);
        base.rsplit("::").next().unwrap_or(base).to_string()
    } else {
        name
    };
    let root = match file {
        Some(f) => {
            let label = match f.run {
                Some(r) => format!("{} (fuzz run {r})", display(&args.trace)),
                None => format!("{} (shrunk)", display(&args.trace)),
            };
            Execution::run(0, None, label, app, f.args.clone(), f.plan.clone())
        }
        None => args.plan(&app).and_then(|plan| {
            let label = format!("seed {} run {}", args.seed, args.run);
            Execution::run(0, None, label, app, fuzz_words(&user_words), plan)
        }),
    };
    let root = match root {
        Ok(r) => r,
        Err(e) => return crate::cli::config_error(e),
    };
    server::serve(name, root, args.addr)
}

fn display(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or_else(String::new, |p| p.display().to_string())
}
