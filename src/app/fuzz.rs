//! `<app> fuzz`, `<app> replay TRACE`: find a failing execution of an app and re-run it.
//!
//! **Fuzzing.** Run `i` (from 0) draws its whole schedule from its run seed (a mix of
//! `--seed` and `i`, [`run_seed`]): the latency range, loss, duplication, partitions
//! (symmetric and one-way), crashes with restarts (keeping the durable store, or with it
//! wiped unless `--no-wipe`), pauses, clock skews, the simulator's own seed (delivery order,
//! every random number the nodes draw) and the app's workload ([`App::workload`]); see
//! [`Plan::generate`]. Each run is one [`execute`] of its plan, with the app's invariants and
//! the built-in ones ([`super::builtin`]). Runs go in parallel on `--threads` threads (rayon,
//! one simulator per run), in batches of `4 × threads`; the fuzzer stops after the first batch
//! with a failure and reports the failing run with the **lowest index**, so the result (which
//! run, which trace) does not depend on the thread count.
//!
//! **Progress** (a bar on a terminal, `--no-progress` to turn it off): runs/s, events/s and
//! coverage: the number of distinct (event class, node role, fault state) tuples seen so far
//! over all runs, where the class of a message delivery is its message kind, and the fault
//! state says whether a partition was active or a node down or paused when the event ran.
//!
//! **The trace file** (`--out`, `fuzz-failure.trace` by default; MessagePack): a
//! [`TraceFile`], holding the app's flags, the [`Plan`] (which rebuilds the nodes and the
//! faults), the violation, and the simulator's [`Trace`] (inputs and the hash after every
//! event). `replay TRACE` rebuilds the run from the plan, checks each event's hash against the
//! recorded one and prints the violation again; it exits 0 if the run reproduced exactly
//! (every hash and the same violation) and 1 otherwise.

use super::plan::{execute, Collect, Plan, Space};
use super::App;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rasp_membership::Mode;
use rasp_runtime::sim::{Trace, Violation};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `fuzz` with the app's own flags.
#[derive(Clone, Debug, Args)]
pub struct FuzzCmd<U: Args> {
    /// The fuzzer's flags.
    #[command(flatten)]
    pub fuzz: FuzzArgs,
    /// The app's flags.
    #[command(flatten)]
    pub user: U,
}

/// The fuzzer's flags (see the module docs).
#[derive(Clone, Debug, Args)]
pub struct FuzzArgs {
    /// Runs to try (stops at the first failure)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub runs: u64,
    /// Base seed: run i's schedule comes from (seed, i)
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub seed: u64,
    /// Worker threads [default: every core]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
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
    pub replication: super::ReplicationArgs,
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
    /// Largest message loss probability a run may draw (half the runs draw none); the loss
    /// ends when the run goes quiet, like every other fault
    #[arg(long, value_name = "P", default_value_t = 0.2)]
    pub max_loss: f64,
    /// Largest duplication probability a run may draw (most runs draw none)
    #[arg(long, value_name = "P", default_value_t = 0.1)]
    pub max_duplicate: f64,
    /// Where to write the failing execution
    #[arg(long, value_name = "FILE", default_value = "fuzz-failure.trace")]
    pub out: PathBuf,
    /// No progress bar
    #[arg(long)]
    pub no_progress: bool,
}

impl Default for FuzzArgs {
    fn default() -> Self {
        FuzzArgs {
            runs: 1000,
            seed: 1,
            threads: None,
            nodes: 3,
            servers: None,
            membership: Mode::Full,
            replication: super::ReplicationArgs::default(),
            horizon_s: 10.0,
            settle_s: 20.0,
            max_faults: 3,
            no_wipe: false,
            max_loss: 0.2,
            max_duplicate: 0.1,
            out: PathBuf::from("fuzz-failure.trace"),
            no_progress: true,
        }
    }
}

impl FuzzArgs {
    /// The space the runs' plans are drawn from.
    pub fn space(&self) -> crate::Result<Space> {
        if self.nodes == 0 {
            return Err("--nodes must be at least 1".into());
        }
        let servers = match (self.servers, self.membership) {
            (Some(k), _) => k,
            (None, Mode::ClientServer) => 1,
            (None, _) => self.nodes,
        };
        if servers > self.nodes || (self.membership == Mode::ClientServer && servers == 0) {
            return Err(format!("--servers must be at most --nodes ({})", self.nodes).into());
        }
        let pos = |v: f64, name: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!("{name} must be positive"))
            }
        };
        let cfg = self.replication.config()?;
        for (p, name) in [
            (self.max_loss, "--max-loss"),
            (self.max_duplicate, "--max-duplicate"),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} must be in [0, 1)").into());
            }
        }
        Ok(Space {
            max_loss: self.max_loss,
            max_duplicate: self.max_duplicate,
            nodes: self.nodes,
            servers,
            membership: self.membership,
            sync: self.replication.sync,
            sync_interval: cfg.sync_interval,
            horizon: pos(self.horizon_s, "--horizon-s")?,
            max_faults: self.max_faults,
            wipe: !self.no_wipe,
            settle: pos(self.settle_s, "--settle-s")?,
        })
    }
}

/// Trace file format version.
pub const TRACE_VERSION: u32 = 1;

/// A failing execution on disk (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceFile {
    /// Format version.
    pub version: u32,
    /// The app's flags, as command-line words (parsed again by `replay`).
    pub args: Vec<String>,
    /// The run's inputs.
    pub plan: Plan,
    /// What failed.
    pub violation: Option<Violation>,
    /// The simulator's trace of the run.
    pub trace: Trace,
    /// The run index that found it (`None` after shrinking).
    pub run: Option<u64>,
}

impl TraceFile {
    /// Writes it (MessagePack).
    pub fn save(&self, path: &Path) -> crate::Result<()> {
        let bytes =
            rmp_serde::to_vec_named(self).map_err(|e| crate::Error::encode("the trace", e))?;
        crate::error::write(path, bytes)
    }

    /// Reads one written by [`TraceFile::save`].
    pub fn load(path: &Path) -> crate::Result<TraceFile> {
        let bytes = crate::error::read(path)?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Reads the bytes of one written by [`TraceFile::save`] (an upload, say).
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<TraceFile> {
        Self::parse(bytes, "the file")
    }

    fn parse(bytes: &[u8], what: &str) -> crate::Result<TraceFile> {
        let t: TraceFile = rmp_serde::from_slice(bytes)
            .map_err(|e| crate::Error::decode(format!("{what}: not a rasp trace file"), e))?;
        if t.version != TRACE_VERSION {
            return Err(crate::Error::Message(format!(
                "{what}: trace file version {} (this build reads {TRACE_VERSION})",
                t.version
            )));
        }
        Ok(t)
    }
}

/// The seed of run `i` of a fuzzing session with base seed `base` (SplitMix64 of both).
pub fn run_seed(base: u64, i: u64) -> u64 {
    let mut z = base
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a fuzzing session found.
#[derive(Debug)]
pub struct FuzzReport {
    /// Runs completed (all runs of the batches run).
    pub runs: u64,
    /// Events over all runs.
    pub events: u64,
    /// Distinct coverage tuples (see the module docs).
    pub coverage: usize,
    /// Wall time.
    pub wall: Duration,
    /// The failing run with the lowest index, if any: its index, plan and violation.
    pub failure: Option<(u64, Plan, Violation)>,
}

/// Runs the fuzzer on `app` (see the module docs); stops at the first batch with a failure.
pub fn fuzz<A: App>(app: &A, args: &FuzzArgs) -> crate::Result<FuzzReport> {
    let space = args.space()?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    let bar = if args.no_progress {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(args.runs);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} runs {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        b
    };
    let start = Instant::now();
    let coverage = Mutex::new(BTreeSet::new());
    let (mut runs, mut events) = (0u64, 0u64);
    let batch = 4 * threads as u64;
    let mut failure = None;
    let mut next = 0u64;
    while next < args.runs && failure.is_none() {
        let end = (next + batch).min(args.runs);
        let results: Vec<crate::Result<(u64, Plan, super::plan::Outcome)>> = pool.install(|| {
            (next..end)
                .into_par_iter()
                .map(|i| {
                    let plan = Plan::generate(app, &space, run_seed(args.seed, i));
                    let collect = Collect {
                        coverage: true,
                        ..Collect::default()
                    };
                    let out = execute(app, &plan, collect, None)?;
                    let mut c = coverage.lock().unwrap_or_else(|e| e.into_inner());
                    c.extend(out.coverage.iter().copied());
                    Ok((i, plan, out))
                })
                .collect()
        });
        for r in results {
            let (i, plan, out) = r?;
            runs += 1;
            events += out.events;
            if failure.is_none() {
                if let Some(v) = out.violation {
                    failure = Some((i, plan, v));
                }
            }
        }
        next = end;
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let cov = coverage.lock().map(|c| c.len()).unwrap_or(0);
        bar.set_position(runs);
        bar.set_message(format!(
            "{:.1} runs/s, {:.0} events/s, coverage {cov}",
            runs as f64 / secs,
            events as f64 / secs
        ));
    }
    bar.finish_and_clear();
    let cov = coverage.lock().map(|c| c.len()).unwrap_or(0);
    Ok(FuzzReport {
        runs,
        events,
        coverage: cov,
        wall: start.elapsed(),
        failure,
    })
}

/// Re-runs a failing plan with recording on and writes its trace file.
pub fn write_failure<A: App>(
    app: &A,
    args_words: Vec<String>,
    run: Option<u64>,
    plan: &Plan,
    path: &Path,
) -> crate::Result<TraceFile> {
    let out = execute(
        app,
        plan,
        Collect {
            trace: true,
            ..Collect::default()
        },
        None,
    )?;
    let file = TraceFile {
        version: TRACE_VERSION,
        args: args_words,
        plan: plan.clone(),
        violation: out.violation,
        trace: out.trace.ok_or("the run was not recorded")?,
        run,
    };
    file.save(path)?;
    Ok(file)
}

/// What a replay found.
#[derive(Debug)]
pub struct ReplayOutcome {
    /// Events replayed.
    pub events: u64,
    /// Every event's hash matched the recording (and the run had as many events).
    pub exact: bool,
    /// The per-event check's message when it did not.
    pub divergence: Option<String>,
    /// The violation of the replayed run.
    pub violation: Option<Violation>,
    /// Whether it equals the recorded one.
    pub same_violation: bool,
}

/// Replays a trace file's run on `app` (already configured with the file's flags).
pub fn replay<A: App>(app: &A, file: &TraceFile) -> crate::Result<ReplayOutcome> {
    let out = execute(app, &file.plan, Collect::default(), Some(&file.trace))?;
    let verified = out.verified.unwrap_or(Err("not verified".into()));
    Ok(ReplayOutcome {
        events: out.events,
        exact: verified.is_ok() && out.hash == file.trace.final_hash,
        divergence: verified.err(),
        same_violation: out.violation == file.violation,
        violation: out.violation,
    })
}

/// The words of the command line after the subcommand word `sub` (the flags to store in a
/// trace file), and the words before it (the binary, and `ad-counter` for `rasp
/// ad-counter`), from the process's arguments.
pub fn split_command_line(sub: &str) -> (Vec<String>, Vec<String>) {
    let words: Vec<String> = std::env::args().collect();
    match words.iter().position(|w| w == sub) {
        Some(k) => (words[..k].to_vec(), words[k + 1..].to_vec()),
        None => (words, Vec::new()),
    }
}

/// A shell word list as one line (see [`super::sim::command_line`] for the quoting).
pub fn shell_line(words: &[String]) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,@%+".contains(c);
    words
        .iter()
        .map(|w| {
            if !w.is_empty() && w.chars().all(safe) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the `fuzz` subcommand: 0 if no run failed, 1 if one did (its trace file written and
/// the replay command printed), 2 on bad flags.
pub fn run_cmd<A: App>(app: A, args: &FuzzArgs) -> ExitCode {
    let (prefix, words) = split_command_line("fuzz");
    let report = match fuzz(&app, args) {
        Ok(r) => r,
        Err(e) => return crate::cli::config_error(e),
    };
    let secs = report.wall.as_secs_f64().max(1e-9);
    println!(
        "runs={} events={} wall={:.2}s runs_per_s={:.1} events_per_s={:.0} coverage={}",
        report.runs,
        report.events,
        secs,
        report.runs as f64 / secs,
        report.events as f64 / secs,
        report.coverage
    );
    let Some((i, plan, v)) = report.failure else {
        println!("no violation in {} runs", report.runs);
        return ExitCode::SUCCESS;
    };
    println!("run {i} failed: {v}");
    match write_failure(&app, words, Some(i), &plan, &args.out) {
        Ok(f) => {
            println!(
                "trace: {} ({} events, {} external inputs)",
                args.out.display(),
                f.trace.hashes.len(),
                plan.external_inputs()
            );
            let mut cmd = prefix;
            cmd.push("replay".into());
            cmd.push(args.out.display().to_string());
            println!("replay: {}", shell_line(&cmd));
        }
        Err(e) => eprintln!("rasp: cannot write the trace: {e}"),
    }
    ExitCode::FAILURE
}

/// Runs the `replay` subcommand on an app already configured from the file's flags.
pub fn replay_cmd<A: App>(app: A, file: &TraceFile) -> ExitCode {
    let out = match replay(&app, file) {
        Ok(o) => o,
        Err(e) => return crate::cli::config_error(e),
    };
    match &out.violation {
        Some(v) => println!("{v}"),
        None => println!("no violation"),
    }
    if out.exact && out.same_violation {
        println!(
            "replayed {} events: every event's hash matches the recording",
            out.events
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "the replay differs from the recording: {}",
            out.divergence
                .unwrap_or_else(|| "another violation".to_string())
        );
        ExitCode::FAILURE
    }
}
