//! Fuzz → shrink → replay on apps with planted bugs, and the built-in invariants.
//!
//! The main case is an application bug: a counter kept in a last-writer-wins register and
//! incremented by read-modify-write. Two increments on two nodes within one sync interval
//! both write "old + 1"; one is lost. The fuzzer must find it within a bounded number of runs,
//! the minimiser must reduce it to about the hand-made minimal execution (two increments on
//! two nodes, nothing else), and both the fuzzer's and the shrunk trace must replay to the
//! same violation, event for event.
//!
//! Bigger runs: `cargo test --release --test fuzz_shrink -- --ignored --nocapture`.

use rasp::app::builtin::{self, CONVERGENCE, OPERATORS, TRIGGER_OVERALL};
use rasp::app::fuzz::{fuzz, replay, write_failure, FuzzArgs, TraceFile};
use rasp::app::plan::{smaller_numbers, Ext, External, Plan};
use rasp::app::shrink::{shrink_to_file, shrink_with, Phases, ShrinkReport};
use rasp::app::{App, Invariant, NoArgs, NodeCtx};
use rasp::dataflow::update::{add, inc, write};
use rasp::dataflow::{Error, Func, Program, Var};
use rasp::lattice::{GSet, LWWRegister, ORSet, Threshold};
use rasp::membership::Mode;
use rasp::runtime::{Message, NodeId, TimerId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[path = "../examples/todo/app.rs"]
#[allow(dead_code)]
mod todo;

#[path = "zoo/lww.rs"]
mod lww;
use lww::{count, performed, LwwCounter, COUNTS};

fn args(runs: u64, threads: usize) -> FuzzArgs {
    FuzzArgs {
        runs,
        threads: Some(threads),
        nodes: 3,
        membership: Mode::Full,
        horizon_s: 5.0,
        settle_s: 10.0,
        max_faults: 2,
        ..FuzzArgs::default()
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rasp-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn fuzz_finds_the_lost_update_shrink_reduces_it_and_both_traces_replay() {
    let app = LwwCounter::default();
    let report = fuzz(&app, &args(40, 2)).unwrap();
    let (run, plan, v) = report
        .failure
        .expect("the fuzzer finds the lost update in 40 runs");
    assert_eq!(v.invariant, COUNTS, "{v}");
    eprintln!(
        "found in run {run} after {} runs, {:.2} s: {v}",
        report.runs,
        report.wall.as_secs_f64()
    );

    let path = tmp("lww.trace");
    let file = write_failure(&app, Vec::new(), Some(run), &plan, &path).unwrap();
    let loaded = TraceFile::load(&path).unwrap();
    assert_eq!(loaded, file);
    let r = replay(&app, &loaded).unwrap();
    assert!(r.exact && r.same_violation, "{r:?}");

    let out = tmp("lww.min.trace");
    let (s, min) = shrink_to_file(&app, &loaded, Duration::from_secs(60), &out).unwrap();
    for l in &s.story {
        eprintln!("  {l}");
    }
    eprintln!(
        "events {} → {}, inputs {} → {}, delivered {} → {}, {} runs, {:.2} s",
        s.events.0,
        s.events.1,
        s.inputs.0,
        s.inputs.1,
        s.delivered.0,
        s.delivered.1,
        s.runs,
        s.wall.as_secs_f64()
    );
    assert_eq!(s.violation.invariant, COUNTS);
    // The hand-made minimum: two increments on two nodes (4 external inputs with the two
    // node starts). Within 1.5× of it, and no faults left.
    let hand_made = 4;
    assert!(
        s.inputs.1 * 2 <= hand_made * 3,
        "{} inputs left: {:?}",
        s.inputs.1,
        s.plan
    );
    assert!(s
        .plan
        .events
        .iter()
        .all(|e| matches!(e.what, Ext::Work { .. })));
    assert!(s.events.1 < s.events.0, "{:?}", s.events);
    // The shrunk trace replays to the same violation, bit for bit.
    let back = TraceFile::load(&out).unwrap();
    assert_eq!(back, min);
    let r = replay(&app, &back).unwrap();
    assert!(r.exact && r.same_violation, "{r:?}");
    assert_eq!(r.violation.as_ref().map(|v| &v.invariant[..]), Some(COUNTS));
}

#[test]
fn the_reported_failure_does_not_depend_on_the_thread_count() {
    let app = LwwCounter::default();
    let one = fuzz(&app, &args(40, 1)).unwrap();
    let two = fuzz(&app, &args(40, 2)).unwrap();
    let (i1, p1, v1) = one.failure.expect("found with one thread");
    let (i2, p2, v2) = two.failure.expect("found with two threads");
    assert_eq!((i1, &p1, &v1), (i2, &p2, &v2));
}

/// Every node writes its own index into a register every 50 ms, forever: replicas never
/// settle, so the built-in convergence property fails.
#[derive(Clone, Default)]
struct NeverQuiet;

impl App for NeverQuiet {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        p.declare::<LWWRegister<u64>>(count().id()).map(|_| ())
    }
    fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
        node.every(Duration::from_millis(50), |_, n| {
            let me = u64::from(n.index().unwrap_or(0));
            n.update(&count(), write(me)).expect("declared");
        });
    }
}

/// A map whose function depends on a value that differs between copies of the app (a
/// function that is not the same on every node).
#[derive(Clone, Default)]
struct NodeDependentMap {
    index: u32,
}

fn xs() -> Var<GSet<u64>> {
    Var::named("xs")
}

fn input() -> Var<ORSet<u64>> {
    Var::named("in")
}

impl App for NodeDependentMap {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        let xs = p.declare::<ORSet<u64>>(input().id())?;
        let k = u64::from(self.index);
        p.map("ys", &xs, Func::new("shift", move |x: &u64| x + k))?;
        Ok(())
    }
}

/// A trigger armed with the program's local `trigger_local` on every node (not the replica's,
/// which elects one owner): it fires once on every node.
#[derive(Clone, Default)]
struct TriggerEverywhere;

impl App for TriggerEverywhere {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        p.declare::<GSet<u64>>(xs().id()).map(|_| ())
    }
    fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
        let i = u64::from(node.index().unwrap_or(0));
        node.update(&xs(), add(i)).expect("declared");
        node.program_mut()
            .trigger_local("three", &xs(), Threshold::cardinality(3), |_, _| {})
            .expect("declared");
    }
}

fn quiet_args() -> FuzzArgs {
    FuzzArgs {
        runs: 8,
        threads: Some(2),
        max_faults: 0,
        horizon_s: 1.0,
        settle_s: 5.0,
        membership: Mode::Full,
        max_loss: 0.0,
        max_duplicate: 0.0,
        ..FuzzArgs::default()
    }
}

#[test]
fn builtin_convergence_catches_a_program_that_never_settles() {
    let r = fuzz(&NeverQuiet, &quiet_args()).unwrap();
    let (_, _, v) = r.failure.expect("never converges");
    assert_eq!(v.invariant, CONVERGENCE, "{v}");
    assert!(v.message.contains("count differs"), "{v}");
}

#[test]
fn builtin_trigger_property_catches_a_trigger_armed_on_every_node() {
    let r = fuzz(&TriggerEverywhere, &quiet_args()).unwrap();
    let (_, _, v) = r.failure.expect("fires on every node");
    assert_eq!(v.invariant, TRIGGER_OVERALL, "{v}");
    assert!(v.message.contains("\"three\" fired 2 times"), "{v}");
}

#[test]
fn builtin_operator_property_catches_a_function_that_differs_between_nodes() {
    // Node 1's fresh program (the check rebuilds it from node 1's copy of the app, index
    // 1) computes xs + 1, while every replica's ys was computed with index 0 (xs + 0): the
    // derived variable is not the function of its inputs.
    let v = {
        let app = NodeDependentMap { index: 1 };
        let mut node_program = Program::new(1);
        NodeDependentMap { index: 0 }
            .program(&mut node_program)
            .unwrap();
        node_program.update(&input(), add(5u64), 1).unwrap();
        let view = rasp::app::NodeView {
            index: 1,
            id: rasp::runtime::NodeId(1),
            role: rasp::membership::Role::Server,
            program: &node_program,
            app: &app,
            boot: 1,
            started: rasp::runtime::Time::ZERO,
            membership: None,
        };
        builtin::operators(app.clone(), Duration::from_secs(1))
            .check(&[view])
            .unwrap_err()
    };
    assert!(
        v.starts_with("node 1: ys is") && v.contains("5") && v.contains("gives") && v.contains("6"),
        "{v}"
    );
    // The same check passes on a consistent node.
    let app = NodeDependentMap { index: 0 };
    let mut p = Program::new(0);
    app.program(&mut p).unwrap();
    p.update(&input(), add(5u64), 0).unwrap();
    let view = rasp::app::NodeView {
        index: 0,
        id: rasp::runtime::NodeId(0),
        role: rasp::membership::Role::Server,
        program: &p,
        app: &app,
        boot: 1,
        started: rasp::runtime::Time::ZERO,
        membership: None,
    };
    assert!(builtin::operators(app.clone(), Duration::from_secs(1))
        .check(&[view])
        .is_ok());
    let _ = OPERATORS;
}

#[test]
fn the_builtins_hold_on_the_todo_example_without_faults() {
    let r = fuzz(&todo::Todo::default(), &quiet_args()).unwrap();
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(r.runs, 8);
}

/// Fuzzes an app for `runs` runs; if a run fails, shrinks it and checks that the shrunk
/// trace replays to the same violation. Prints the figures (runs/s, time to find, reduction).
fn measure<A: App>(name: &str, app: &A, a: &FuzzArgs) {
    let r = fuzz(app, a).unwrap();
    let secs = r.wall.as_secs_f64().max(1e-9);
    eprintln!(
        "{name}: {} runs in {:.2} s ({:.1} runs/s, {:.0} events/s, coverage {})",
        r.runs,
        secs,
        r.runs as f64 / secs,
        r.events as f64 / secs,
        r.coverage
    );
    let Some((run, plan, v)) = r.failure else {
        assert_eq!(r.runs, a.runs);
        eprintln!("{name}: no violation");
        return;
    };
    eprintln!("{name}: run {run} fails: {v}");
    let path = tmp(&format!("{name}.trace"));
    let file = write_failure(app, Vec::new(), Some(run), &plan, &path).unwrap();
    let before = shrink_with(app, &file, Duration::from_secs(60), Phases::drops_only()).unwrap();
    summary(
        &format!("{name} (drops only, the phases before reordering)"),
        &before,
    );
    let out = tmp(&format!("{name}.min.trace"));
    let (s, min) = shrink_to_file(app, &file, Duration::from_secs(60), &out).unwrap();
    summary(&format!("{name} (all phases)"), &s);
    for l in s.story.iter().filter(|l| !l.contains("membership/wire")) {
        eprintln!("  {l}");
    }
    eprintln!(
        "{name}: events {} → {} ({:.1}% fewer), inputs {} → {}, delivered {} → {}, {} runs, {:.2} s",
        s.events.0,
        s.events.1,
        100.0 * (1.0 - s.events.1 as f64 / s.events.0.max(1) as f64),
        s.inputs.0,
        s.inputs.1,
        s.delivered.0,
        s.delivered.1,
        s.runs,
        s.wall.as_secs_f64()
    );
    let back = replay(app, &min).unwrap();
    assert!(back.exact && back.same_violation, "{back:?}");
}

/// The figures of the README's "Finding bugs" section:
/// `cargo test --release --test fuzz_shrink figures -- --ignored --nocapture`.
#[test]
#[ignore]
fn figures() {
    let a = FuzzArgs {
        runs: 1000,
        threads: Some(2),
        nodes: 4,
        servers: Some(1),
        membership: Mode::Full,
        ..FuzzArgs::default()
    };
    measure(
        "ad-counter",
        &rasp::ad_counter::app::AdCounter::new(2, 20, Duration::from_millis(100)),
        &a,
    );
    measure(
        "todo",
        &todo::Todo::default(),
        &FuzzArgs {
            nodes: 3,
            servers: None,
            ..a.clone()
        },
    );
    measure("lww-counter", &LwwCounter::default(), &args(1000, 2));
}

#[test]
fn the_builtins_and_its_invariants_hold_on_the_ad_counter_under_faults() {
    // 16 runs with every fault kind (crashes with wiped stores too); the ignored `figures`
    // test runs 1,000.
    let a = FuzzArgs {
        runs: 16,
        threads: Some(2),
        nodes: 4,
        servers: Some(1),
        membership: Mode::Full,
        ..FuzzArgs::default()
    };
    let app = rasp::ad_counter::app::AdCounter::new(2, 20, Duration::from_millis(100));
    let r = fuzz(&app, &a).unwrap();
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(r.runs, 16);
    assert!(r.coverage > 20, "coverage {}", r.coverage);
}

/// The todo failures the fuzzer found (README "Finding bugs"), replayed by fuzzing the same
/// runs of the default session.
/// - Run 75: `__armed/party` differed 20 s after the last fault. Node 1 crashed and
///   restarted before node 0 saw its link go down; node 0 took the new incarnation's
///   greeting for a repeat one and caught it up only on "new" variables (none), so the armed
///   set node 1 lost (declared after its store was restored) never came back.
/// - Run 159: node 0 was down from 7.79 s to 11.25 s and its neighbour's full-state
///   catch-up was lost by the network; the neighbour took it as caught up from the moment
///   it sent the states, and its buffer no longer held what node 0 lost, so `__armed/party`
///   stayed `{0, 2}` on node 0 (`{0, 1, 2}` elsewhere). Catch-ups are now acknowledged and
///   sent again until they are (`replica` module docs, "Catch-up at once").
///
/// 200 runs take about 3 s in release on 2 threads; the 1,000-run sweep is
/// [`the_todo_example_converges_over_1000_fuzzed_runs`].
#[test]
fn the_todo_example_converges_over_the_first_200_fuzzed_runs() {
    todo_converges(200);
}

/// The README's 1,000-run sweep of the todo example (about 15 s on 2 threads):
/// `cargo test --release --test fuzz_shrink the_todo_example_converges_over_1000 -- --ignored`.
#[test]
#[ignore]
fn the_todo_example_converges_over_1000_fuzzed_runs() {
    todo_converges(1000);
}

fn todo_converges(runs: u64) {
    let r = fuzz(
        &todo::Todo::default(),
        &FuzzArgs {
            runs,
            threads: Some(2),
            ..FuzzArgs::default()
        },
    )
    .unwrap();
    assert!(
        r.failure.is_none(),
        "{:?}",
        r.failure.map(|(i, _, v)| (i, v))
    );
    assert_eq!(r.runs, runs);
}

/// A ping numbered by the firings of the sender's ping timer that ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ping(u64);
impl Message for Ping {
    const KIND: &'static str = "test/ping";
}

/// An application bug: node 0 assumes the links are FIFO (pings from a node arrive in the
/// order they were sent), which rasp's network, like any datagram network, does not
/// promise. `starts pinging` makes a node ping node 0 every 20 ms until `stops pinging`.
#[derive(Clone, Default)]
struct Beacon {
    sent: u64,
    last: Option<u64>,
    inversion: Option<(u64, u64)>,
    timer: Option<TimerId>,
}

const FIFO: &str = "pings arrive in the order they were sent";

impl App for Beacon {
    type Args = NoArgs;
    fn program(&self, _p: &mut Program) -> Result<(), Error> {
        Ok(())
    }
    fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
        node.on::<Ping>(|app, _, _, Ping(k)| {
            if let Some(l) = app.last {
                if k < l && app.inversion.is_none() {
                    app.inversion = Some((l, k));
                }
            }
            app.last = Some(app.last.map_or(k, |l| l.max(k)));
        });
    }
    fn on_work(&mut self, node: &mut NodeCtx<'_, Self>, op: &str) {
        match op {
            "starts pinging" => {
                let t = node.every(Duration::from_millis(20), |app, n| {
                    n.send(NodeId(0), Ping(app.sent));
                    app.sent += 1;
                });
                self.timer = Some(t);
            }
            "stops pinging" => {
                if let Some(t) = self.timer.take() {
                    node.cancel(t);
                }
            }
            _ => {}
        }
    }
    fn invariants(&self) -> Vec<Invariant> {
        vec![Invariant::each(FIFO, |n| {
            match n.app::<Beacon>().and_then(|b| b.inversion) {
                Some((l, k)) => Err(format!("ping {k} arrived after ping {l}")),
                None => Ok(()),
            }
        })]
    }
}

/// A hand-written failing plan of `nodes` nodes: `work` (node, at in ms, op), latencies
/// 1–`max_ms` ms; the first simulator seed from 1 whose run fails `invariant`.
fn failing_plan<A: App>(
    app: &A,
    nodes: u32,
    max_ms: u64,
    work: &[(u32, u64, &str)],
    invariant: &str,
) -> Plan {
    let mut plan = Plan {
        seed: 0,
        nodes,
        servers: 0,
        membership: "full".into(),
        sync: None,
        sync_interval: Duration::from_secs(1),
        min_latency: Duration::from_millis(1),
        max_latency: Duration::from_millis(max_ms),
        loss: 0.0,
        duplicate: 0.0,
        events: work
            .iter()
            .map(|(n, ms, op)| External {
                at: Duration::from_millis(*ms),
                what: Ext::Work {
                    node: *n,
                    op: op.to_string(),
                },
            })
            .collect(),
        drops: Vec::new(),
        delays: Vec::new(),
        skips: Vec::new(),
        duplicates: Vec::new(),
        active_until: Duration::ZERO,
        schedule_until: None,
        settle: Duration::from_secs(10),
        loss_heals: true,
    };
    for seed in 1..=50 {
        plan.seed = seed;
        let o = rasp::app::plan::execute(app, &plan, Default::default(), None).unwrap();
        if o.violation.is_some_and(|v| v.invariant == invariant) {
            return plan;
        }
    }
    panic!("no seed in 1..=50 fails `{invariant}`: {plan:?}");
}

fn summary(name: &str, r: &ShrinkReport) {
    eprintln!(
        "{name}: events {} → {}, inputs {} → {}, delivered {} → {}, app timer firings {} → {}, decisions {}, {} runs, {:.2} s",
        r.events.0,
        r.events.1,
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
}

#[test]
fn reordering_and_timer_removal_shrink_a_fifo_assumption_further_than_drops_alone() {
    let app = Beacon::default();
    let plan = failing_plan(
        &app,
        3,
        80,
        &[
            (1, 0, "starts pinging"),
            (2, 0, "starts pinging"),
            (1, 1_000, "stops pinging"),
            (2, 1_000, "stops pinging"),
        ],
        FIFO,
    );
    let path = tmp("fifo.trace");
    let file = write_failure(&app, Vec::new(), None, &plan, &path).unwrap();
    let budget = Duration::from_secs(60);
    let old = shrink_with(&app, &file, budget, Phases::drops_only()).unwrap();
    let new = shrink_with(&app, &file, budget, Phases::default()).unwrap();
    summary("drops only", &old);
    summary("all phases", &new);
    for l in &new.story {
        eprintln!("  {l}");
    }
    assert_eq!(new.violation.invariant, FIFO);
    // The hand-made minimum: 2 nodes, one `starts pinging` (3 external inputs with the node
    // starts), 2 firings of the ping timer, 2 ping deliveries, the first delayed past the
    // second (1 schedule decision).
    let (hand_inputs, hand_firings) = (3, 2);
    assert!(new.inputs.1 <= hand_inputs, "{:?}", new.plan);
    assert!(
        new.timers.1 * 2 <= hand_firings * 3,
        "{} app timer firings left (hand-made minimum {hand_firings})",
        new.timers.1
    );
    assert!(
        new.timers.1 < old.timers.1 && new.events.1 < old.events.1,
        "not smaller than drops alone: {:?} vs {:?}",
        (new.timers, new.events),
        (old.timers, old.events)
    );
    // The minimal trace replays to the same violation, bit for bit.
    let out = tmp("fifo.min.trace");
    let (_, min) = shrink_to_file(&app, &file, budget, &out).unwrap();
    let r = replay(&app, &TraceFile::load(&out).unwrap()).unwrap();
    assert!(r.exact && r.same_violation, "{r:?}");
    assert_eq!(min.plan, new.plan);
}

/// The planted bug of [`LwwCounter`] with large arguments: `increments the counter by N`.
#[derive(Clone, Default)]
struct LwwBy;

impl App for LwwBy {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        LwwCounter::default().program(p)
    }
    fn on_work(&mut self, node: &mut NodeCtx<'_, Self>, op: &str) {
        let Some(n) = op
            .strip_prefix("increments the counter by ")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return;
        };
        let now = node.query(&count()).expect("declared").unwrap_or(0);
        node.update(&count(), write(now + n)).expect("declared");
        node.update(&performed(), inc(n)).expect("declared");
    }
    fn shrink_op(&self, op: &str) -> Vec<String> {
        smaller_numbers(op)
    }
    fn invariants(&self) -> Vec<Invariant> {
        LwwCounter::default().invariants()
    }
}

#[test]
fn the_content_phase_shrinks_large_workload_arguments() {
    let app = LwwBy;
    let plan = failing_plan(
        &app,
        2,
        20,
        &[
            (0, 10, "increments the counter by 9137"),
            (1, 10, "increments the counter by 4242"),
        ],
        COUNTS,
    );
    let file = write_failure(&app, Vec::new(), None, &plan, &tmp("lww-by.trace")).unwrap();
    let r = shrink_with(&app, &file, Duration::from_secs(60), Phases::default()).unwrap();
    summary("lww-by", &r);
    for l in &r.story {
        eprintln!("  {l}");
    }
    assert_eq!(r.violation.invariant, COUNTS);
    // The hand-made minimum: two increments by 1 (or one of them by 0: a write of the old
    // value that wins still loses the other increment).
    let amounts: Vec<u64> = r
        .plan
        .events
        .iter()
        .filter_map(|e| match &e.what {
            Ext::Work { op, .. } => op.rsplit(' ').next().and_then(|n| n.parse().ok()),
            _ => None,
        })
        .collect();
    assert_eq!(amounts.len(), 2, "{:?}", r.plan.events);
    assert!(amounts.iter().all(|&a| a <= 1), "{amounts:?}");
    // Without the content phase the arguments stay as they were.
    let old = shrink_with(&app, &file, Duration::from_secs(60), Phases::drops_only()).unwrap();
    assert!(old.plan.events.iter().any(
        |e| matches!(&e.what, Ext::Work { op, .. } if op.ends_with("9137") || op.ends_with("4242"))
    ));
}
