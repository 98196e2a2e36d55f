//! `<app> shrink TRACE [--out FILE]`: minimise a failing execution, DEMi-style (Scott et al.,
//! "Minimizing Faulty Executions of Distributed Systems", NSDI 2016), by re-running the real
//! program in the simulator on every candidate.
//!
//! A candidate is accepted if its run fails the **same invariant** (by name) as the original;
//! each candidate is a [`Plan`], executed by [`execute`] like any fuzzed run. The phases, in
//! this order:
//!
//! 0. **The smallest executions first**: every choice of at most three of the original's
//!    external events on one node, then two, and so on, in increasing order of external
//!    inputs, is run, and the first that fails is kept (ddmin below finds a 1-minimal
//!    set, which can miss a smaller failure on fewer nodes with other inputs).
//! 1. **External events** ([`Plan::events`]: faults with their heal or restart, workload
//!    operations): delta debugging (Zeller, Hildebrandt, "Simplifying and Isolating
//!    Failure-Inducing Input", TSE 2002, the `ddmin` algorithm) over the list, starting with
//!    the empty list.
//! 2. **Fewer nodes, shorter delays** (part of DEMi's last phase, done before the internal
//!    one so the message identities it decides on belong to the final cluster): remove the
//!    last node while that still fails, with the events that name it or else with its
//!    workload operations moved to node 0 (ddmin's first pass keeps a 1-minimal set, which
//!    can need an operation on the last node because it removed its twin on node 0; the
//!    external events then get another ddmin pass), then no loss, no
//!    duplication, the latency range collapsed to its minimum, and every event's time and
//!    duration halved while that still fails.
//! 3. **The internal schedule** (DEMi §4.2–4.3), on the simulator's schedule hook
//!    ([`rasp_runtime::sim::Schedule`]):
//!    - *Reorder.* If the latency range could not be collapsed, the run's latencies are
//!      pinned: every delivered message gets its delivery time as an explicit delay
//!      ([`Plan::delays`]) on top of the smallest latency, and the range collapses to it.
//!      The run is the same, but its order is now a list of named decisions, and ddmin
//!      keeps only the delays the failure needs: what is left is the reordering ("this sync
//!      arrives after that removal"), every other message taking the smallest latency.
//!      This is what reordering buys a minimiser: messages and firings that were only there
//!      to *delay* the failing interleaving (a sync that must be overtaken, periodic
//!      firings whose only effect was to push a later send past an event) can go, because
//!      the order they produced is kept by one delay. It also stops candidates from
//!      shifting the other messages' latencies (the network model draws them from one
//!      random stream). The delays are searched again after the next step.
//!    - *Drop and suppress.* ddmin over the remote messages sent before the run goes quiet
//!      (dropped at the sender, keyed by [`rasp_runtime::sim::MsgId`]: sender, receiver,
//!      kind, per-link number) together with the app atom's timer firings before then
//!      (suppressed, keyed by [`rasp_runtime::sim::TimerFiring`]: node, incarnation, alarm,
//!      firing number; a suppressed periodic timer fires again a period later). Causal
//!      prerequisites are kept: every send names its cause (the delivery or firing its
//!      sender was running), and a candidate that keeps a step whose cause it removes is
//!      closed first (that step will simply not exist: skipped, not forced); candidates
//!      with the same closure run once. Drops and suppressions are faults like the others:
//!      for a bounded liveness failure they act only before the run goes quiet
//!      ([`Plan::quiet`]; an adversary acting after the last fault healed would be a fault
//!      that never heals); for a safety failure, until the failing event ([`Plan::window`]:
//!      a finite run that ends at the failure may lose anything before it).
//!    - *Fewer deliveries.* ddmin keeps a 1-minimal set of needed steps, yet a delivery the
//!      failure does not need can survive it (dropping it alone made a candidate fail
//!      another way, or ddmin's chunks never isolated it). Each remaining delivery and app
//!      firing in the window is then dropped on its own, latest first, kept when the run
//!      still fails the same invariant with strictly fewer inputs + deliveries + firings
//!      (DEMi's objective, fewer deliveries), until a pass keeps nothing. For a safety
//!      failure that earlier phases moved later, the window first follows the failure,
//!      without the decisions the old window made inert.
//! 4. **Smaller contents, where the type allows.** A workload operation is the app's own
//!    words, so only the app knows what a smaller one is: each operation is replaced by the
//!    first variant of [`App::shrink_op`] that still fails (smaller values, fewer elements
//!    in a batch; [`super::plan::smaller_numbers`] and [`super::plan::fewer_items`] are the
//!    usual shapes), again until none does; an app that offers none keeps its operations.
//!    The messages the program sends (dataflow syncs, membership traffic) are not touched:
//!    they are the real code's output, and changing them would not be an execution of it.
//!    Each fault's duration and each remaining delay is halved while that still fails.
//! 5. Phase 1 once more (the removed steps may have made more events unnecessary).
//!
//! [`shrink_with`] runs a choice of these ([`Phases`]; [`Phases::drops_only`] is the
//! minimiser without reordering, timers and contents, to measure what they add). The
//! minimiser stops a phase when `--budget-s` of wall time is spent and keeps the best
//! execution so far. Output: the minimal trace file (replayable with `replay`), the **story**
//! (one line per remaining external event, message delivery, with the contents of dataflow
//! messages: a sync's variable ids and each delta rendered as the variable's value, a
//! hello's held variables, an ack's number; app timer firing before the run goes quiet; and
//! the failure; other timers, connection notices and local messages are counted, not
//! listed) and the reduction: events, external inputs, delivered messages and app timer
//! firings before → after, the schedule decisions left, the runs and the wall time.

use super::fuzz::{TraceFile, TRACE_VERSION};
use super::plan::{execute, Collect, Delay, Ext, External, Outcome, Plan, MAX_DELAY};
use super::App;
use clap::Args;
use rasp_runtime::sim::{Cause, MsgId, TimerFiring, Violation};
use rasp_runtime::Time;
use std::collections::{BTreeMap, BTreeSet};
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
    /// App timer firings that ran, before → after.
    pub timers: (usize, usize),
    /// The **decided part** of the run, before → after: events, and external inputs +
    /// delivered messages. For a safety failure it is the whole run (it ends at the failing
    /// event); for a bounded eventual one, the run until it went quiet ([`Plan::quiet`]).
    /// What follows the quiet time is the property's wait: no fault, input or schedule
    /// decision acts there, so the prefix fixes it, and no minimiser can shorten it without
    /// weakening the property (its bound `T`). Its events are not counted here; of its
    /// deliveries, those the prefix set in motion are (a restarted node's join and
    /// greetings), the background of periodic timers is not (heartbeats, periodic syncs
    /// and their replies). The zoo compares these steps with its hand-made minima.
    pub decided: Decided,
    /// The minimal plan's schedule decisions: drops, delays and suppressed firings.
    pub decisions: usize,
    /// Candidate runs.
    pub runs: u64,
    /// Wall time.
    pub wall: Duration,
    /// The story of the minimal run.
    pub story: Vec<String>,
}

/// The decided part of a run before → after shrinking ([`ShrinkReport::decided`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decided {
    /// Events.
    pub events: (u64, u64),
    /// External inputs + remote messages delivered.
    pub steps: (usize, usize),
    /// Whether it is the whole run (a safety failure).
    pub whole_run: bool,
}

impl Decided {
    /// (events, inputs + deliveries) of the decided part of `o`, the run of `plan`.
    fn part(safety: bool, plan: &Plan, o: &Outcome) -> (u64, usize) {
        if safety {
            return (o.events, plan.external_inputs() + o.delivered.len());
        }
        let quiet = plan.quiet().as_nanos() as u64;
        let delivered = o
            .delivered
            .iter()
            .filter(|(id, _)| set_in_motion(o, *id, quiet))
            .count();
        (o.events_before_quiet, plan.external_inputs() + delivered)
    }
}

/// Whether message `id` of run `o` belongs to what the run's choices set in motion: sent
/// before the run went quiet (at `quiet` nanoseconds), or after it by a chain of handlers
/// that starts at something other than a timer firing after it (a restart's boot, a
/// connection notice, a delivery of such a message). What a periodic timer sends after the
/// quiet time (heartbeats, periodic syncs) and the replies to it are the background of the
/// property's wait: present in every run, whatever the prefix did.
fn set_in_motion(o: &Outcome, mut id: MsgId, quiet: u64) -> bool {
    // Each step goes to an earlier send, so the walk ends; the bound guards a malformed map.
    for _ in 0..=o.sent.len() {
        let Some((at, cause)) = o.sent.get(&id) else {
            return true;
        };
        if at.0 < quiet {
            return true;
        }
        match cause {
            Cause::Deliver(parent) => id = *parent,
            Cause::Timer(_) => return false,
            Cause::Other => return true,
        }
    }
    true
}

struct Shrinker<'a, A: App> {
    app: &'a A,
    invariant: String,
    runs: u64,
    deadline: Instant,
    /// Whether the invariant is a safety property (checked after every event) rather than a
    /// bounded eventual one.
    safety: bool,
    /// A candidate with more events than the original run is refused: a shrunk execution is
    /// never longer than the one it came from (a liveness failure's run always lasts to its
    /// bound, and fewer messages before it can mean more repair traffic after).
    limit: u64,
}

impl<A: App> Shrinker<'_, A> {
    fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Whether `plan` still fails the same invariant, in no more events than the original.
    fn fails(&mut self, plan: &Plan) -> bool {
        self.runs += 1;
        match execute(self.app, plan, Collect::default(), None) {
            Ok(o) => {
                o.events <= self.limit && o.violation.is_some_and(|v| v.invariant == self.invariant)
            }
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
    p.delays
        .retain(|d| d.msg.from.0 < k as u64 && d.msg.to.0 < k as u64);
    p.skips.retain(|t| t.node.0 < k as u64);
    p
}

/// The plan with the last node's workload operations on node 0 instead (`None` if it has
/// none).
fn work_moved_to_node_0(plan: &Plan) -> Option<Plan> {
    let k = plan.nodes.checked_sub(1)?;
    let mut p = plan.clone();
    let mut moved = false;
    for e in &mut p.events {
        if let Ext::Work { node, .. } = &mut e.what {
            if *node == k {
                *node = 0;
                moved = true;
            }
        }
    }
    moved.then_some(p)
}

/// Every time and duration of the plan's events halved, and the app's own activity
/// ([`Plan::active_until`]).
fn halved(plan: &Plan) -> Plan {
    let mut p = plan.clone();
    p.active_until /= 2;
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

fn run_story<A: App>(app: &A, plan: &Plan) -> crate::Result<Outcome> {
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

/// A run with its deliveries, sends and app timer firings recorded (the story's
/// bookkeeping), without the simulator trace.
fn run_steps<A: App>(app: &A, plan: &Plan) -> crate::Result<Outcome> {
    let collect = Collect {
        story: true,
        ..Collect::default()
    };
    execute(app, plan, collect, None)
}

/// Which of the minimiser's steps run ([`shrink_with`]); all of them by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phases {
    /// Reorder deliveries: pin the run's latencies as explicit delays, then keep only the
    /// delays the failure needs.
    pub reorder: bool,
    /// Suppress the app timer firings the failure does not need (with the drops, in one
    /// causally closed ddmin).
    pub timers: bool,
    /// Smaller contents: the app's smaller workload operations ([`App::shrink_op`]), each
    /// fault's duration and each delay halved.
    pub contents: bool,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            reorder: true,
            timers: true,
            contents: true,
        }
    }
}

impl Phases {
    /// External events, fewer nodes and shorter delays, message drops, external events
    /// again: the minimiser without reordering, timer removal or content shrinking (to
    /// measure what those add).
    pub fn drops_only() -> Self {
        Phases {
            reorder: false,
            timers: false,
            contents: false,
        }
    }
}

/// Shrinks the execution of `file` on `app` within `budget` (see the module docs).
pub fn shrink<A: App>(app: &A, file: &TraceFile, budget: Duration) -> crate::Result<ShrinkReport> {
    shrink_with(app, file, budget, Phases::default())
}

/// [`shrink`] with a choice of [`Phases`].
pub fn shrink_with<A: App>(
    app: &A,
    file: &TraceFile,
    budget: Duration,
    phases: Phases,
) -> crate::Result<ShrinkReport> {
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
            )
            .into())
        }
    }
    let mut s = Shrinker {
        app,
        invariant: original.invariant.clone(),
        runs: 1,
        deadline: start + budget,
        safety: false,
        limit: before.events,
    };
    let mut plan = file.plan.clone();
    s.safety = app
        .invariants()
        .into_iter()
        .chain(super::builtin::all(app, plan.settle, plan.connected()))
        .find(|i| i.name() == original.invariant)
        .is_some_and(|i| i.within().is_none());
    if s.safety && plan.schedule_until.is_none() {
        let failed = before.violation.as_ref().map_or(0, |v| v.time.0);
        plan.schedule_until = Some(Duration::from_nanos(failed));
    }

    // 0. The smallest executions first; 1. external events.
    phase_smallest(&mut s, &mut plan);
    phase_external(&mut s, &mut plan);

    // 2. Fewer nodes, shorter delays. A node goes with its workload, or else hands its
    // workload to node 0 (ddmin's first pass may have kept an operation on the last node
    // whose twin on node 0 it removed: the same failure on fewer nodes).
    while plan.nodes > 1 && !s.out_of_time() {
        let p = without_last_node(&plan);
        if s.fails(&p) {
            plan = p;
            continue;
        }
        match work_moved_to_node_0(&plan).map(|p| without_last_node(&p)) {
            Some(p) if s.fails(&p) => plan = p,
            _ => break,
        }
    }
    if plan.nodes < file.plan.nodes {
        // On fewer nodes, external events the first pass needed may not be needed any more
        // (moved operations, faults whose effect the removed node carried: the HyParView
        // island case shrinks to 1.00x of its hand-made minimum with this pass, 1.40x
        // without).
        phase_external(&mut s, &mut plan);
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

    // 3. The internal schedule: reorder (pin the latencies, keep the delays that matter),
    // then drop deliveries and suppress timer firings the failure does not need.
    if phases.reorder {
        pin_latencies(&mut s, &mut plan)?;
        phase_delays(&mut s, &mut plan);
    }
    phase_internal(&mut s, &mut plan, phases.timers)?;
    if phases.reorder {
        phase_delays(&mut s, &mut plan);
    }
    phase_shorter(&mut s, &mut plan, phases.timers)?;

    // 4. Smaller contents.
    if phases.contents {
        phase_contents(&mut s, &mut plan);
    }

    // 5. External events again.
    phase_external(&mut s, &mut plan);

    let after = run_story(app, &plan)?;
    let violation = after
        .violation
        .clone()
        .filter(|v| v.invariant == original.invariant)
        .ok_or("internal: the shrunk plan no longer fails")?;
    let mut story: Vec<String> = after.story.iter().map(|l| l.text.clone()).collect();
    story.push(format!(
        "({} more events not listed: timers after the run went quiet and of other atoms, connection notices, local messages)",
        after.unstoried
    ));
    let (e0, s0) = Decided::part(s.safety, &file.plan, &before);
    let (e1, s1) = Decided::part(s.safety, &plan, &after);
    Ok(ShrinkReport {
        decided: Decided {
            events: (e0, e1),
            steps: (s0, s1),
            whole_run: s.safety,
        },
        events: (before.events, after.events),
        inputs: (file.plan.external_inputs(), plan.external_inputs()),
        delivered: (before.delivered.len(), after.delivered.len()),
        timers: (before.timers.len(), after.timers.len()),
        decisions: plan.drops.len() + plan.delays.len() + plan.skips.len(),
        runs: s.runs + 2,
        wall: start.elapsed(),
        story,
        violation,
        plan,
    })
}

/// Reordering, step one: the run's latencies made explicit. Every delivered message keeps
/// its delivery time as a [`Delay`] on top of the smallest latency, and the latency range
/// collapses to that minimum: the same run, but with its order written down, so that later
/// candidates (fewer firings, fewer messages) no longer shift the other messages' latencies
/// (the network model draws them from one random stream) and each ordering the failure
/// needs is one named decision. Accepted if it still fails.
fn pin_latencies<A: App>(s: &mut Shrinker<'_, A>, plan: &mut Plan) -> crate::Result<()> {
    if s.out_of_time() || plan.max_latency == plan.min_latency {
        return Ok(());
    }
    let now = run_story(s.app, plan)?;
    let mut p = plan.clone();
    p.max_latency = p.min_latency;
    let mut seen = BTreeSet::new();
    let mut delays: Vec<Delay> = p
        .delays
        .iter()
        .copied()
        .inspect(|d| {
            seen.insert(d.msg);
        })
        .collect();
    for (id, at) in &now.delivered {
        let Some((sent, _)) = now.sent.get(id) else {
            continue;
        };
        let took = Duration::from_nanos(at.0.saturating_sub(sent.0));
        let by = took.saturating_sub(p.min_latency).min(MAX_DELAY);
        if !by.is_zero() && seen.insert(*id) && delays.len() < MAX_PINNED {
            delays.push(Delay { msg: *id, by });
        }
    }
    delays.sort();
    p.delays = delays;
    if s.fails(&p) {
        *plan = p;
    }
    Ok(())
}

/// At most this many latencies are pinned as delays ([`pin_latencies`]).
const MAX_PINNED: usize = 20_000;

/// Reordering, step two: ddmin over the plan's delays; what is left is the reordering the
/// failure needs (every other message takes the smallest latency).
fn phase_delays<A: App>(s: &mut Shrinker<'_, A>, plan: &mut Plan) {
    if s.out_of_time() || plan.delays.is_empty() {
        return;
    }
    let base = plan.clone();
    let deadline = s.deadline;
    let mut test = |kept: &[Delay]| {
        let mut p = base.clone();
        p.delays = kept.to_vec();
        s.fails(&p)
    };
    let kept = ddmin(base.delays.clone(), &mut test, &|| {
        Instant::now() >= deadline
    });
    let mut p = base.clone();
    p.delays = kept;
    if p.delays.len() < base.delays.len() && s.fails(&p) {
        *plan = p;
    }
}

/// One item of the internal schedule: a remote delivery or an app timer firing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Msg(MsgId),
    Timer(TimerFiring),
}

/// The steps of a run the schedule may remove, in time order: the remote deliveries of
/// messages sent before `window` and (with `timers`) the app timer firings before it.
fn window_steps(now: &Outcome, window: Duration, timers: bool) -> Vec<Step> {
    let inside = |t: rasp_runtime::Time| Duration::from_nanos(t.0) < window;
    let mut steps: Vec<(rasp_runtime::Time, Step)> = now
        .delivered
        .iter()
        .filter(|(id, _)| now.sent.get(id).is_some_and(|(t, _)| inside(*t)))
        .map(|(id, t)| (*t, Step::Msg(*id)))
        .collect();
    if timers {
        steps.extend(
            now.timers
                .iter()
                .filter(|(_, t)| inside(*t))
                .map(|(id, t)| (*t, Step::Timer(*id))),
        );
    }
    steps.sort();
    steps.into_iter().map(|(_, c)| c).collect()
}

/// The internal schedule: ddmin over the remote messages delivered before the run goes
/// quiet and (with `timers`) the app timer firings before then, a removed message being
/// dropped at its sender and a removed firing suppressed. Causal prerequisites (DEMi's
/// partial-order-guided search, NSDI 2016 §4.2): a step whose cause (the delivery or firing
/// its sender was running, [`rasp_runtime::sim::Cause`]) is removed cannot be kept, it will
/// simply not exist; each candidate is therefore closed under causes before it runs, and
/// candidates with the same closure run once.
fn phase_internal<A: App>(
    s: &mut Shrinker<'_, A>,
    plan: &mut Plan,
    timers: bool,
) -> crate::Result<()> {
    if s.out_of_time() {
        return Ok(());
    }
    let now = run_story(s.app, plan)?;
    let candidates = window_steps(&now, plan.window(), timers);
    if candidates.is_empty() {
        return Ok(());
    }
    let all: BTreeSet<Step> = candidates.iter().copied().collect();
    let cause_of = |st: &Step| -> Option<Step> {
        match st {
            Step::Msg(id) => match now.sent.get(id).map(|(_, c)| *c) {
                Some(Cause::Deliver(m)) => Some(Step::Msg(m)),
                Some(Cause::Timer(t)) => Some(Step::Timer(t)),
                _ => None,
            },
            Step::Timer(_) => None,
        }
    };
    // Closed under causes: a kept step whose (candidate) cause is not kept goes too. The
    // candidates are in time order, so causes come first.
    let close = |kept: &[Step]| -> BTreeSet<Step> {
        let want: BTreeSet<Step> = kept.iter().copied().collect();
        let mut out = BTreeSet::new();
        for c in &candidates {
            if !want.contains(c) {
                continue;
            }
            match cause_of(c) {
                Some(p) if all.contains(&p) && !out.contains(&p) => {}
                _ => {
                    out.insert(*c);
                }
            }
        }
        out
    };
    let base = plan.clone();
    let with = |kept: &BTreeSet<Step>| {
        let mut p = base.clone();
        for c in &candidates {
            if kept.contains(c) {
                continue;
            }
            match c {
                Step::Msg(id) => p.drops.push(*id),
                Step::Timer(t) => p.skips.push(*t),
            }
        }
        p.drops.sort();
        p.drops.dedup();
        p.skips.sort();
        p.skips.dedup();
        p
    };
    let mut memo: BTreeMap<Vec<Step>, bool> = BTreeMap::new();
    let deadline = s.deadline;
    let keep = {
        let mut test = |kept: &[Step]| {
            let closed = close(kept);
            let key: Vec<Step> = closed.iter().copied().collect();
            if let Some(r) = memo.get(&key) {
                return *r;
            }
            let r = s.fails(&with(&closed));
            memo.insert(key, r);
            r
        };
        ddmin(candidates.clone(), &mut test, &|| {
            Instant::now() >= deadline
        })
    };
    let p = with(&close(&keep));
    if p != *plan && s.fails(&p) {
        *plan = p;
    }
    Ok(())
}

/// DEMi's own objective, fewer deliveries (NSDI 2016 §4.2: a minimised schedule is one
/// with fewer delivered messages, not fewer decisions). ddmin in [`phase_internal`] keeps a
/// 1-minimal set of *needed* deliveries, but a delivery the failure does not need can
/// still be kept because dropping it alone makes the run longer elsewhere (a retransmission)
/// or because ddmin's chunks never isolated it. Here each remaining delivery inside the
/// schedule window (and, with `timers`, each app timer firing there) is dropped on its own,
/// latest first, and the drop is kept when the run still fails the same invariant with
/// strictly fewer external inputs + deliveries + app timer firings: the measure the story
/// and the zoo's table report. Passes repeat until one keeps nothing.
fn phase_shorter<A: App>(
    s: &mut Shrinker<'_, A>,
    plan: &mut Plan,
    timers: bool,
) -> crate::Result<()> {
    // Keeps `p` (and its outcome in `now`) if its run still fails the same invariant, in no
    // more events than the original, with strictly fewer inputs + deliveries + firings.
    fn shorter<A: App>(
        s: &mut Shrinker<'_, A>,
        plan: &mut Plan,
        now: &mut Outcome,
        p: Plan,
    ) -> bool {
        let length =
            |p: &Plan, o: &Outcome| p.external_inputs() + o.delivered.len() + o.timers.len();
        s.runs += 1;
        let Ok(o) = run_steps(s.app, &p) else {
            return false;
        };
        let same = o
            .violation
            .as_ref()
            .is_some_and(|v| v.invariant == s.invariant);
        if same && o.events <= s.limit && length(&p, &o) < length(plan, now) {
            *plan = p;
            *now = o;
            return true;
        }
        false
    }
    let mut now = run_steps(s.app, plan)?;
    loop {
        // A safety failure may lose anything before it happens: once earlier phases have
        // moved the failure later than the original's, the window follows it (a drop after
        // the failure changes nothing, so this only widens what may be tried; the wider
        // window is kept only if the run still fails).
        if s.safety {
            let failed = now
                .violation
                .as_ref()
                .map(|v| Duration::from_nanos(v.time.0));
            if let Some(f) = failed.filter(|f| plan.schedule_until.is_some_and(|u| u < *f)) {
                let mut p = plan.clone();
                p.schedule_until = Some(f);
                // Decisions the old window made inert (their message was delivered, their
                // firing ran) would now apply to whatever carries their name: they go.
                let delivered: BTreeSet<MsgId> = now.delivered.iter().map(|(id, _)| *id).collect();
                let ran: BTreeSet<TimerFiring> = now.timers.iter().map(|(t, _)| *t).collect();
                p.drops.retain(|d| !delivered.contains(d));
                p.skips.retain(|t| !ran.contains(t));
                s.runs += 1;
                if let Ok(o) = run_steps(s.app, &p) {
                    if o.events <= s.limit
                        && o.violation
                            .as_ref()
                            .is_some_and(|v| v.invariant == s.invariant)
                    {
                        *plan = p;
                        now = o;
                    }
                }
            }
        }
        let mut kept_any = false;
        for step in window_steps(&now, plan.window(), timers).into_iter().rev() {
            if s.out_of_time() {
                return Ok(());
            }
            let mut p = plan.clone();
            match step {
                Step::Msg(id) if !p.drops.contains(&id) => p.drops.push(id),
                Step::Timer(t) if !p.skips.contains(&t) => p.skips.push(t),
                _ => continue,
            }
            p.drops.sort();
            p.skips.sort();
            kept_any |= shorter(s, plan, &mut now, p);
        }
        // Undo decisions: a drop ddmin kept may only have moved the failure later (a sync
        // lost so that a later one carries the same updates), which the run pays for
        // elsewhere (heartbeats that keep the link up meanwhile, more timer firings). Each
        // drop, in the order the messages were sent, and each suppressed firing is undone on
        // its own, kept when the run still fails the same invariant and is strictly shorter.
        let mut undo: Vec<(Time, Step)> = plan
            .drops
            .iter()
            .map(|d| {
                (
                    now.sent.get(d).map_or(Time(u64::MAX), |x| x.0),
                    Step::Msg(*d),
                )
            })
            .collect();
        undo.sort_by_key(|u| u.0);
        undo.extend(plan.skips.iter().map(|t| (Time(u64::MAX), Step::Timer(*t))));
        for (_, step) in undo {
            if s.out_of_time() {
                return Ok(());
            }
            let mut p = plan.clone();
            match step {
                Step::Msg(id) => p.drops.retain(|d| *d != id),
                Step::Timer(t) => p.skips.retain(|x| *x != t),
            }
            kept_any |= shorter(s, plan, &mut now, p);
        }
        if !kept_any {
            return Ok(());
        }
    }
}

/// Smaller contents where the type allows: each workload operation replaced by the first
/// smaller variant the app offers ([`App::shrink_op`]) that still fails, until none does;
/// each fault's duration and each delay halved while that still fails.
fn phase_contents<A: App>(s: &mut Shrinker<'_, A>, plan: &mut Plan) {
    for k in 0..plan.events.len() {
        // Operations: at most this many accepted steps per event (each is smaller).
        for _ in 0..64 {
            if s.out_of_time() {
                return;
            }
            let Ext::Work { op, .. } = &plan.events[k].what else {
                break;
            };
            let mut accepted = false;
            for smaller in s.app.shrink_op(op).into_iter().take(32) {
                if s.out_of_time() {
                    return;
                }
                let mut p = plan.clone();
                if let Ext::Work { op, .. } = &mut p.events[k].what {
                    if *op == smaller {
                        continue;
                    }
                    *op = smaller;
                }
                if s.fails(&p) {
                    *plan = p;
                    accepted = true;
                    break;
                }
            }
            if !accepted {
                break;
            }
        }
        // Durations.
        for _ in 0..8 {
            if s.out_of_time() {
                return;
            }
            let mut p = plan.clone();
            match &mut p.events[k].what {
                Ext::Partition { lasts, .. } | Ext::Pause { lasts, .. } => *lasts /= 2,
                Ext::Crash { down, .. } => *down /= 2,
                Ext::Skew { .. } | Ext::Work { .. } => break,
            }
            p.events.sort_by_key(|e| e.at);
            if p != *plan && s.fails(&p) {
                *plan = p;
            } else {
                break;
            }
        }
    }
    for k in 0..plan.delays.len() {
        for _ in 0..8 {
            if s.out_of_time() {
                return;
            }
            let mut p = plan.clone();
            p.delays[k].by /= 2;
            if p.delays[k].by.is_zero() || !s.fails(&p) {
                break;
            }
            *plan = p;
        }
    }
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

/// At most this many external events in a candidate of [`phase_smallest`].
const SMALLEST_EVENTS: usize = 3;
/// At most this many candidate runs in [`phase_smallest`].
const SMALLEST_RUNS: usize = 2_000;

/// Phase 0, the smallest executions first: ddmin's result is only 1-minimal, and a failure
/// that shows on fewer nodes with a different handful of inputs (an operation on another
/// node that does on node 0 what two did on two nodes) is out of its reach. So before it,
/// every candidate of at most [`SMALLEST_EVENTS`] of the original's external events on `m`
/// nodes (the removed nodes' workload on node 0, their faults gone) is run, in increasing
/// order of external inputs (node starts + events), fewer nodes first; the first that
/// fails the same invariant is kept: a smallest execution among these. At most
/// [`SMALLEST_RUNS`] runs, within the budget.
fn phase_smallest<A: App>(s: &mut Shrinker<'_, A>, plan: &mut Plan) {
    // bases[m - 1]: the cluster on m nodes.
    let mut bases = vec![plan.clone()];
    while let Some(last) = bases.last().filter(|p| p.nodes > 1) {
        let moved = work_moved_to_node_0(last).unwrap_or_else(|| last.clone());
        bases.push(without_last_node(&moved));
    }
    bases.reverse();
    let original = plan.external_inputs();
    let mut runs = 0;
    for size in 1..original.min(plan.nodes as usize + SMALLEST_EVENTS + 1) {
        for base in &bases {
            let m = base.nodes as usize;
            let Some(k) = size.checked_sub(m) else { break };
            if k > SMALLEST_EVENTS || k > base.events.len() {
                continue;
            }
            let mut pick: Vec<usize> = (0..k).collect();
            loop {
                if runs >= SMALLEST_RUNS || s.out_of_time() {
                    return;
                }
                runs += 1;
                let mut p = base.clone();
                p.events = pick.iter().map(|&i| base.events[i].clone()).collect();
                if s.fails(&p) {
                    *plan = p;
                    return;
                }
                if !next_combination(&mut pick, base.events.len()) {
                    break;
                }
            }
        }
    }
}

/// The next `pick.len()`-subset of `0..n` in lexicographic order (ascending indices);
/// false after the last.
fn next_combination(pick: &mut [usize], n: usize) -> bool {
    let k = pick.len();
    for i in (0..k).rev() {
        if pick[i] < n - k + i {
            pick[i] += 1;
            for j in i + 1..k {
                pick[j] = pick[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

/// Shrinks `file` and writes the minimal trace to `out` (same flags, the shrunk plan).
pub fn shrink_to_file<A: App>(
    app: &A,
    file: &TraceFile,
    budget: Duration,
    out: &std::path::Path,
) -> crate::Result<(ShrinkReport, TraceFile)> {
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
        "events {} → {} ({:.1}% fewer), external inputs {} → {}, messages delivered {} → {}, app timer firings {} → {}, schedule decisions {}; {} runs in {:.2} s",
        r.events.0,
        r.events.1,
        pct(r.events.0 as f64, r.events.1 as f64),
        r.inputs.0,
        r.inputs.1,
        r.delivered.0,
        r.delivered.1,
        r.timers.0,
        r.timers.1,
        r.decisions,
        r.runs,
        r.wall.as_secs_f64()
    );
    if !r.decided.whole_run {
        println!(
            "until the run went quiet (t={}; after it, only the property's wait): events {} → {} ({:.1}% fewer), external inputs + messages delivered {} → {}",
            super::plan::secs(r.plan.quiet()),
            r.decided.events.0,
            r.decided.events.1,
            pct(r.decided.events.0 as f64, r.decided.events.1 as f64),
            r.decided.steps.0,
            r.decided.steps.1,
        );
    }
    println!("{}", r.violation);
    let (mut prefix, _) = super::fuzz::split_command_line("shrink");
    prefix.push("replay".into());
    prefix.push(out.display().to_string());
    println!("minimal trace: {}", out.display());
    println!("replay: {}", super::fuzz::shell_line(&prefix));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::next_combination;

    #[test]
    fn combinations_come_in_lexicographic_order_each_once() {
        let mut pick: Vec<usize> = (0..3).collect();
        let mut seen = vec![pick.clone()];
        while next_combination(&mut pick, 5) {
            seen.push(pick.clone());
        }
        let mut want = Vec::new();
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    want.push(vec![a, b, c]);
                }
            }
        }
        assert_eq!(seen, want);
        let mut none: Vec<usize> = Vec::new();
        assert!(!next_combination(&mut none, 4));
        let mut all: Vec<usize> = (0..4).collect();
        assert!(!next_combination(&mut all, 4));
    }
}
