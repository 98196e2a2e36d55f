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
use rasp::app::plan::Ext;
use rasp::app::shrink::shrink_to_file;
use rasp::app::{App, NoArgs, NodeCtx};
use rasp::dataflow::update::{add, write};
use rasp::dataflow::{Error, Func, Program, Var};
use rasp::lattice::{GSet, LWWRegister, ORSet, Threshold};
use rasp::membership::Mode;
use std::time::Duration;

#[path = "../examples/todo/app.rs"]
#[allow(dead_code)]
mod todo;

#[path = "zoo/lww.rs"]
mod lww;
use lww::{count, LwwCounter, COUNTS};

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

/// A trigger armed with the program's plain `trigger` on every node (not the replica's,
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
            .trigger("three", &xs(), Threshold::cardinality(3), |_, _| {})
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
    let out = tmp(&format!("{name}.min.trace"));
    let (s, min) = shrink_to_file(app, &file, Duration::from_secs(60), &out).unwrap();
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
