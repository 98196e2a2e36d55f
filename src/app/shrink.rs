//! `<app> shrink TRACE [--out FILE]`: minimise a failing execution, DEMi-style (Scott et al.,
//! "Minimizing Faulty Executions of Distributed Systems", NSDI 2016), by re-running the real
//! program in the simulator on every candidate.
//!
//! A candidate is accepted if its run fails the **same invariant** (by name) as the original;
//! each candidate is a [`Plan`], executed by [`execute`] like any fuzzed run. The phases, in
//! this order:
//!
//! 1. **External events** ([`Plan::events`]: faults with their heal or restart, workload
//!    operations): delta debugging (Zeller, Hildebrandt, "Simplifying and Isolating
//!    Failure-Inducing Input", TSE 2002, the `ddmin` algorithm) over the list, starting with
//!    the empty list.
//! 2. **Fewer nodes, shorter delays** (DEMi's last phase, done before the internal one so the
//!    message identities it decides on belong to the final cluster): remove the last node
//!    while that still fails (with the events that name it), then no loss, no duplication,
//!    the latency range collapsed to its minimum, and every event's time and duration halved
//!    while that still fails.
//! 3. **The internal schedule**: ddmin over the remote messages the run delivered, a dropped
//!    message being removed at its sender by the simulator's schedule hook
//!    ([`rasp_runtime::sim::Schedule`], keyed by [`rasp_runtime::sim::MsgId`]); a message that
//!    no longer exists in a candidate run is simply never sent (skipped, not forced). Drops
//!    are losses, faults like the others: only messages sent before the run goes quiet are
//!    candidates, and a plan's drops act only then ([`Plan::drops`]); an adversary dropping
//!    messages after the last fault healed would be a fault that never heals.
//! 4. Phase 1 once more (the dropped messages may have made more events unnecessary).
//!
//! The minimiser stops a phase when `--budget-s` of wall time is spent and keeps the best
//! execution so far. Output: the minimal trace file (replayable with `replay`), the **story**
//! (one line per remaining external event and message delivery, and the failure; timer
//! firings, connection notices and local messages are counted, not listed) and the reduction:
//! events, external inputs and delivered messages before → after, the runs and the wall time.

use super::fuzz::{TraceFile, TRACE_VERSION};
use super::plan::{execute, Collect, Ext, External, Outcome, Plan};
use super::App;
use clap::Args;
use rasp_runtime::sim::{MsgId, Violation};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The `shrink` subcommand's flags.
#[derive(Clone, Debug, Args)]
pub struct ShrinkArgs {
    /// The trace file to shrink (written by `fuzz`)
    pub trace: PathBuf,
    /// Where to write the shrunk trace [default: TRACE with `.min` before its extension]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Wall-clock budget in seconds (each phase stops when it is spent)
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub budget_s: f64,
}

/// The `replay` subcommand's flags.
#[derive(Clone, Debug, Args)]
pub struct ReplayArgs {
    /// The trace file to replay
    pub trace: PathBuf,
}

/// What shrinking did.
#[derive(Debug)]
pub struct ShrinkReport {
    /// The minimal plan.
    pub plan: Plan,
    /// Its violation (the same invariant as the original's).
    pub violation: Violation,
    /// Events before → after.
    pub events: (u64, u64),
    /// External inputs (events and node starts) before → after.
    pub inputs: (usize, usize),
    /// Remote messages delivered before → after.
    pub delivered: (usize, usize),
    /// Candidate runs.
    pub runs: u64,
    /// Wall time.
    pub wall: Duration,
    /// The story of the minimal run.
    pub story: Vec<String>,
}

struct Shrinker<'a, A: App> {
    app: &'a A,
    invariant: String,
    runs: u64,
    deadline: Instant,
}

impl<A: App> Shrinker<'_, A> {
    fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Whether `plan` still fails the same invariant.
    fn fails(&mut self, plan: &Plan) -> bool {
        self.runs += 1;
        match execute(self.app, plan, Collect::default(), None) {
            Ok(o) => o.violation.is_some_and(|v| v.invariant == self.invariant),
            Err(_) => false,
        }
    }
}

/// Zeller's ddmin: a 1-minimal sublist of `items` (in order) for which `test` holds, given
/// that it holds for `items`; stops early (returning the best so far) when `stop` says so.
pub fn ddmin<T: Clone>(
    items: Vec<T>,
    test: &mut dyn FnMut(&[T]) -> bool,
    stop: &dyn Fn() -> bool,
) -> Vec<T> {
    let mut c = items;
    if c.is_empty() || test(&[]) {
        return Vec::new();
    }
    let mut n = 2usize;
    while c.len() >= 2 && !stop() {
        let chunk = c.len().div_ceil(n);
        let parts: Vec<Vec<T>> = c.chunks(chunk).map(|p| p.to_vec()).collect();
        let mut reduced = false;
        for p in &parts {
            if stop() {
                return c;
            }
            if test(p) {
                c = p.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && parts.len() > 2 {
            for i in 0..parts.len() {
                if stop() {
                    return c;
                }
                let rest: Vec<T> = parts
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, p)| p.iter().cloned())
                    .collect();
                if test(&rest) {
                    c = rest;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= c.len() {
                break;
            }
            n = (n * 2).min(c.len());
        }
    }
    c
}

/// The plan without node `k` (the last one): events naming it dropped or trimmed.
fn without_last_node(plan: &Plan) -> Plan {
    let k = plan.nodes - 1;
    let mut p = plan.clone();
    p.nodes = k;
    p.servers = p.servers.min(k);
    p.events = plan
        .events
        .iter()
        .filter_map(|e| {
            let mut e = e.clone();
            if let Ext::Partition { a, b, .. } = &mut e.what {
                a.retain(|&n| n != k);
                b.retain(|&n| n != k);
                return (!a.is_empty() && !b.is_empty()).then_some(e);
            }
            (!e.nodes().contains(&(k))).then_some(e)
        })
        .collect();
    p.drops.retain(|d| d.from.0 < k as u64 && d.to.0 < k as u64);
    p
}

/// Every time and duration of the plan's events halved.
fn halved(plan: &Plan) -> Plan {
    let mut p = plan.clone();
    for e in &mut p.events {
        e.at /= 2;
        match &mut e.what {
            Ext::Partition { lasts, .. } | Ext::Pause { lasts, .. } => *lasts /= 2,
            Ext::Crash { down, .. } => *down /= 2,
            Ext::Skew { .. } | Ext::Work { .. } => {}
        }
    }
    p
}

fn run_story<A: App>(app: &A, plan: &Plan) -> Result<Outcome, String> {
    execute(
        app,
        plan,
        Collect {
            trace: true,
            story: true,
            ..Collect::default()
        },
        None,
    )
}

/// Shrinks the execution of `file` on `app` within `budget` (see the module docs).
pub fn shrink<A: App>(app: &A, file: &TraceFile, budget: Duration) -> Result<ShrinkReport, String> {
    let start = Instant::now();
    let original = file
        .violation
        .clone()
        .ok_or("the trace file records no violation: nothing to shrink")?;
    let before = run_story(app, &file.plan)?;
    match &before.violation {
        Some(v) if v.invariant == original.invariant => {}
        other => {
            return Err(format!(
                "the trace does not fail `{}` when re-run (got {other:?})",
                original.invariant
            ))
        }
    }
    let mut s = Shrinker {
        app,
        invariant: original.invariant.clone(),
        runs: 1,
        deadline: start + budget,
    };
    let mut plan = file.plan.clone();

    // 1. External events.
    phase_external(&mut s, &mut plan);

    // 2. Fewer nodes, shorter delays.
    while plan.nodes > 1 && !s.out_of_time() {
        let p = without_last_node(&plan);
        if s.fails(&p) {
            plan = p;
        } else {
            break;
        }
    }
    for change in [
        |p: &mut Plan| p.loss = 0.0,
        |p: &mut Plan| p.duplicate = 0.0,
        |p: &mut Plan| p.max_latency = p.min_latency,
    ] {
        if s.out_of_time() {
            break;
        }
        let mut p = plan.clone();
        change(&mut p);
        if p != plan && s.fails(&p) {
            plan = p;
        }
    }
    for _ in 0..6 {
        if s.out_of_time() || plan.events.is_empty() {
            break;
        }
        let p = halved(&plan);
        if p != plan && s.fails(&p) {
            plan = p;
        } else {
            break;
        }
    }

    // 3. The internal schedule: drop delivered messages the failure does not need.
    let now = run_story(app, &plan)?;
    let quiet = plan.quiet();
    let candidates: Vec<MsgId> = now
        .delivered
        .iter()
        .filter(|(_, t)| Duration::from_nanos(t.0) < quiet)
        .map(|(id, _)| *id)
        .collect();
    let base: BTreeSet<MsgId> = plan.drops.iter().copied().collect();
    let keep = {
        let deadline = s.deadline;
        let plan_ref = &plan;
        let cands = candidates.clone();
        let mut test = |kept: &[MsgId]| {
            let kept: BTreeSet<MsgId> = kept.iter().copied().collect();
            let mut p = plan_ref.clone();
            p.drops = base
                .iter()
                .copied()
                .chain(cands.iter().copied().filter(|c| !kept.contains(c)))
                .collect();
            s.fails(&p)
        };
        ddmin(candidates.clone(), &mut test, &|| {
            Instant::now() >= deadline
        })
    };
    let kept: BTreeSet<MsgId> = keep.into_iter().collect();
    let mut p = plan.clone();
    p.drops = base
        .iter()
        .copied()
        .chain(candidates.iter().copied().filter(|c| !kept.contains(c)))
        .collect();
    if p != plan && s.fails(&p) {
        plan = p;
    }

    // 4. External events again.
    phase_external(&mut s, &mut plan);

    let after = run_story(app, &plan)?;
    let violation = after
        .violation
        .clone()
        .filter(|v| v.invariant == original.invariant)
        .ok_or("internal: the shrunk plan no longer fails")?;
    let mut story: Vec<String> = after.story.iter().map(|l| l.text.clone()).collect();
    story.push(format!(
        "({} more events not listed: timers, connection notices, local messages)",
        after.unstoried
    ));
    Ok(ShrinkReport {
        events: (before.events, after.events),
        inputs: (file.plan.external_inputs(), plan.external_inputs()),
        delivered: (before.delivered.len(), after.delivered.len()),
        runs: s.runs + 2,
        wall: start.elapsed(),
        story,
        violation,
        plan,
    })
}

fn phase_external<A: App>(s: &mut Shrinker<'_, A>, plan: &mut Plan) {
    if s.out_of_time() {
        return;
    }
    let base = plan.clone();
    let deadline = s.deadline;
    let mut test = |evs: &[External]| {
        let mut p = base.clone();
        p.events = evs.to_vec();
        s.fails(&p)
    };
    let kept = ddmin(base.events.clone(), &mut test, &|| {
        Instant::now() >= deadline
    });
    let mut p = base.clone();
    p.events = kept;
    if p.events.len() < base.events.len() && s.fails(&p) {
        *plan = p;
    }
}

/// Shrinks `file` and writes the minimal trace to `out` (same flags, the shrunk plan).
pub fn shrink_to_file<A: App>(
    app: &A,
    file: &TraceFile,
    budget: Duration,
    out: &std::path::Path,
) -> Result<(ShrinkReport, TraceFile), String> {
    let report = shrink(app, file, budget)?;
    let recorded = execute(
        app,
        &report.plan,
        Collect {
            trace: true,
            ..Collect::default()
        },
        None,
    )?;
    let min = TraceFile {
        version: TRACE_VERSION,
        args: file.args.clone(),
        plan: report.plan.clone(),
        violation: recorded.violation,
        trace: recorded.trace.ok_or("the run was not recorded")?,
        run: None,
    };
    min.save(out)?;
    Ok((report, min))
}

/// The default output path: `x.trace` → `x.min.trace`.
pub fn default_out(trace: &std::path::Path) -> PathBuf {
    let stem = trace
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    let ext = trace
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    trace.with_file_name(format!("{stem}.min.{ext}"))
}

fn pct(before: f64, after: f64) -> f64 {
    if before > 0.0 {
        100.0 * (1.0 - after / before)
    } else {
        0.0
    }
}

/// Runs the `shrink` subcommand on an app configured from the file's flags: prints the
/// story, the reduction and the replay command; 0 on success.
pub fn run_cmd<A: App>(app: A, file: &TraceFile, args: &ShrinkArgs) -> ExitCode {
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.trace));
    let budget = Duration::from_secs_f64(args.budget_s.max(0.0));
    let (r, _) = match shrink_to_file(&app, file, budget, &out) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("rasp: cannot shrink: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("story of the minimal execution:");
    for l in &r.story {
        println!("  {l}");
    }
    println!(
        "events {} → {} ({:.1}% fewer), external inputs {} → {}, messages delivered {} → {}; {} runs in {:.2} s",
        r.events.0,
        r.events.1,
        pct(r.events.0 as f64, r.events.1 as f64),
        r.inputs.0,
        r.inputs.1,
        r.delivered.0,
        r.delivered.1,
        r.runs,
        r.wall.as_secs_f64()
    );
    println!("{}", r.violation);
    let (mut prefix, _) = super::fuzz::split_command_line("shrink");
    prefix.push("replay".into());
    prefix.push(out.display().to_string());
    println!("minimal trace: {}", out.display());
    println!("replay: {}", super::fuzz::shell_line(&prefix));
    ExitCode::SUCCESS
}
