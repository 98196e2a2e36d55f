//! The functional property in the simulator (Meiklejohn, Van Roy, "Lasp: A Language for
//! Distributed, Coordination-Free Programming", PPDP 2015): random programs chaining map, filter,
//! union, intersection, product and fold over sets and counters; random concurrent adds,
//! removes and increments at random replicas; random loss, duplication, reordering and a
//! partition that heals. Afterwards every replica holds equal values, and every derived
//! variable's value equals the plain function applied to its inputs' values.
//!
//! Each case prints nothing unless it fails; a failing case prints the simulator seed and the
//! command that reproduces it (proptest also shrinks and records the case).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use rasp_dataflow::causal::DSet;
use rasp_dataflow::fold::Sum;
use rasp_dataflow::replica::{HasReplica, Replica, ReplicaConfig, SyncMode};
use rasp_dataflow::update::{add, inc, remove};
use rasp_dataflow::{Func, Program, Var};
use rasp_lattice::{GCounter, ORSet, Query};
use rasp_membership::{Config as MConfig, MembershipAtom, Mode};
use rasp_runtime::sim::{LinkConfig, NetConfig, Sim, SimConfig};
use rasp_runtime::{
    boot, Atom, AtomAddr, AtomId, Contact, Ctx, Dest, Message, NodeId, Origin, Time,
};
use serde::{Deserialize, Serialize};

/// One step of a random program: a new derived set from earlier sets.
#[derive(Clone, Debug)]
enum Step {
    Map(usize, u8),
    Filter(usize, u8),
    Union(usize, usize),
    Intersection(usize, usize),
    /// product, then map (x, y) ↦ 3x + y to stay a set of integers.
    Product(usize, usize),
}

type MapFn = fn(&i64) -> i64;
type FilterFn = fn(&i64) -> bool;

const MAPS: [(&str, MapFn); 3] = [
    ("half", |x| x.div_euclid(2)),
    ("inc", |x| x + 1),
    ("sq-mod-7", |x| (x * x).rem_euclid(7)),
];
const FILTERS: [(&str, FilterFn); 3] = [
    ("even", |x| x % 2 == 0),
    ("positive", |x| *x > 0),
    ("not-3k", |x| x % 3 != 0),
];

fn pair3(p: &(i64, i64)) -> i64 {
    3 * p.0 + p.1
}

/// Builds the program: sources s0, s1 (observed-remove sets), a counter, the steps, and a
/// sum fold of the last set.
fn build(p: &mut Program, steps: &[Step]) {
    let mut sets: Vec<String> = vec!["s0".into(), "s1".into()];
    p.declare::<ORSet<i64>>("s0").unwrap();
    p.declare::<ORSet<i64>>("s1").unwrap();
    p.declare::<GCounter>("c").unwrap();
    for (k, step) in steps.iter().enumerate() {
        let id = format!("d{k}");
        // Sources are ORSet<i64>; derived sets are DSet<i64>: dispatch on the input's kind.
        macro_rules! with_set {
            ($i:expr, |$v:ident| $body:expr) => {{
                let name = &sets[$i];
                if name.starts_with('s') {
                    let $v = p.declare::<ORSet<i64>>(name).unwrap();
                    $body
                } else {
                    let $v = p.declare::<DSet<i64>>(name).unwrap();
                    $body
                }
            }};
        }
        match *step {
            Step::Map(i, f) => with_set!(i % sets.len(), |v| {
                let (n, f) = MAPS[f as usize % MAPS.len()];
                p.map(&id, &v, Func::new(n, f)).unwrap();
            }),
            Step::Filter(i, f) => with_set!(i % sets.len(), |v| {
                let (n, f) = FILTERS[f as usize % FILTERS.len()];
                p.filter(&id, &v, Func::new(n, f)).unwrap();
            }),
            Step::Union(i, j) | Step::Intersection(i, j) | Step::Product(i, j) => {
                let (i, mut j) = (i % sets.len(), j % sets.len());
                if i == j {
                    j = (j + 1) % sets.len();
                }
                let is_union = matches!(step, Step::Union(..));
                let is_inter = matches!(step, Step::Intersection(..));
                with_set!(i, |a| with_set!(j, |b| {
                    if is_union {
                        p.union(&id, &a, &b).unwrap();
                    } else if is_inter {
                        p.intersection(&id, &a, &b).unwrap();
                    } else {
                        let prod = p.product(&format!("{id}/pairs"), &a, &b).unwrap();
                        p.map(&id, &prod, Func::new("pair3", pair3)).unwrap();
                    }
                }))
            }
        }
        sets.push(id);
    }
    let last = sets.last().unwrap().clone();
    if last.starts_with('s') {
        let v = p.declare::<ORSet<i64>>(&last).unwrap();
        p.fold::<i64, _, Sum>("total", &v).unwrap();
    } else {
        let v = p.declare::<DSet<i64>>(&last).unwrap();
        p.fold::<i64, _, Sum>("total", &v).unwrap();
    }
}

/// The plain functions, over the sources' final values.
fn reference(steps: &[Step], s0: &BTreeSet<i64>, s1: &BTreeSet<i64>) -> BTreeMap<String, String> {
    let mut sets: Vec<BTreeSet<i64>> = vec![s0.clone(), s1.clone()];
    let mut out = BTreeMap::new();
    for (k, step) in steps.iter().enumerate() {
        let n = sets.len();
        let v: BTreeSet<i64> = match *step {
            Step::Map(i, f) => sets[i % n]
                .iter()
                .map(MAPS[f as usize % MAPS.len()].1)
                .collect(),
            Step::Filter(i, f) => {
                let p = FILTERS[f as usize % FILTERS.len()].1;
                sets[i % n].iter().copied().filter(p).collect()
            }
            Step::Union(i, j) | Step::Intersection(i, j) | Step::Product(i, j) => {
                let (i, mut j) = (i % n, j % n);
                if i == j {
                    j = (j + 1) % n;
                }
                let (a, b) = (&sets[i], &sets[j]);
                match step {
                    Step::Union(..) => a.union(b).copied().collect(),
                    Step::Intersection(..) => a.intersection(b).copied().collect(),
                    _ => a
                        .iter()
                        .flat_map(|x| b.iter().map(move |y| pair3(&(*x, *y))))
                        .collect(),
                }
            }
        };
        out.insert(format!("d{k}"), format!("{v:?}"));
        sets.push(v);
    }
    let total: i64 = sets.last().unwrap().iter().sum();
    out.insert("total".into(), format!("{total:?}"));
    out
}

/// A client request injected by the driver.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Do {
    Add(u8, i64),
    Remove(u8, i64),
    Inc(u64),
}
impl Message for Do {
    const KIND: &'static str = "test/do";
}

/// The application atom: the replica plus the client-request handler.
struct App {
    steps: Vec<Step>,
    sync: SyncMode,
    replica: Option<Replica>,
}
impl HasReplica for App {
    fn replica(&mut self) -> &mut Replica {
        self.replica.as_mut().unwrap()
    }
}
impl Atom for App {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.register(rasp_dataflow::replica::SERVICE).unwrap();
        let node = ctx.node();
        let mut p = Program::new(node.0);
        build(&mut p, &self.steps);
        let config = ReplicaConfig {
            sync: self.sync,
            sync_interval: Duration::from_millis(200),
            ..ReplicaConfig::default()
        };
        self.replica = Some(Replica::new(node, config, p));
        Replica::install(self, ctx);
        ctx.on::<Do>(|a, ctx, _: &Origin, op| {
            let actor = ctx.node().0;
            let p = a.replica().program_mut();
            let set =
                |k: u8| Ok::<_, ()>(Var::<ORSet<i64>>::named(if k == 0 { "s0" } else { "s1" }));
            match op {
                Do::Add(k, x) => {
                    let v = set(k).unwrap();
                    p.update(&v, add(x), actor).unwrap();
                }
                Do::Remove(k, x) => {
                    let v = set(k).unwrap();
                    p.update(&v, remove(x), actor).unwrap();
                }
                Do::Inc(n) => {
                    let c = Var::<GCounter>::named("c");
                    p.update(&c, inc(n), actor).unwrap();
                }
            }
        });
    }
}

const APP: AtomId = AtomId(1);

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..8, 0u8..3).prop_map(|(i, f)| Step::Map(i, f)),
        (0usize..8, 0u8..3).prop_map(|(i, f)| Step::Filter(i, f)),
        (0usize..8, 0usize..8).prop_map(|(i, j)| Step::Union(i, j)),
        (0usize..8, 0usize..8).prop_map(|(i, j)| Step::Intersection(i, j)),
        (0usize..8, 0usize..8).prop_map(|(i, j)| Step::Product(i, j)),
    ]
}

fn op_strategy() -> impl Strategy<Value = (u64, u8, Do)> {
    (
        0u64..20_000,
        any::<u8>(),
        prop_oneof![
            4 => (0u8..2, -3i64..6).prop_map(|(k, x)| Do::Add(k, x)),
            2 => (0u8..2, -3i64..6).prop_map(|(k, x)| Do::Remove(k, x)),
            1 => (1u64..4).prop_map(Do::Inc),
        ],
    )
}

fn run_case(
    seed: u64,
    nodes: u64,
    mode: Mode,
    sync: SyncMode,
    steps: Vec<Step>,
    ops: Vec<(u64, u8, Do)>,
) -> Result<(), TestCaseError> {
    run_case_timed(seed, nodes, mode, sync, steps, ops).map(|_| ())
}

/// The membership overlay (every node's neighbours) is one connected component.
fn overlay_connected(sim: &Sim, nodes: u64) -> bool {
    let mut o = rasp_membership::overlay::Overlay::new();
    for n in 0..nodes {
        let view = sim
            .with_atom::<MembershipAtom, _>(AtomAddr::new(NodeId(n), AtomId(0)), |m| m.neighbours())
            .unwrap_or_default();
        o.insert(n, view.into_iter().map(|x| x.0).collect());
    }
    o.report().connected
}

/// [`run_case`], also returning how long after the partition healed the membership overlay
/// was connected again (checked every 100 ms; `None` if it never was by the end).
fn run_case_timed(
    seed: u64,
    nodes: u64,
    mode: Mode,
    sync: SyncMode,
    steps: Vec<Step>,
    ops: Vec<(u64, u8, Do)>,
) -> Result<Option<Duration>, TestCaseError> {
    let cfg = SimConfig {
        seed,
        seed_from_env: false,
        net: NetConfig {
            default: LinkConfig {
                latency: rasp_runtime::sim::Latency::Uniform {
                    min: Duration::from_millis(5),
                    max: Duration::from_millis(40),
                },
                loss: 0.05,
                duplicate: 0.05,
                reorder: 0.1,
                reorder_delay: Duration::from_millis(100),
            },
            links: Vec::new(),
        },
        ..SimConfig::default()
    };
    let mut sim = Sim::new(cfg).unwrap();
    for _ in 0..nodes {
        let steps = steps.clone();
        sim.add_node(boot(move |b| {
            let seeds = if b.node().0 == 0 {
                vec![]
            } else {
                vec![Contact::bare(NodeId(0))]
            };
            let mc = MConfig {
                mode,
                ..MConfig::default()
            };
            b.spawn(MembershipAtom::new(mc, seeds).unwrap());
            b.spawn(App {
                steps: steps.clone(),
                sync,
                replica: None,
            });
        }));
    }
    sim.run_for(Duration::from_secs(2));
    // A partition of the first half from the rest, during part of the workload.
    let half: Vec<NodeId> = (0..nodes / 2).map(NodeId).collect();
    let rest: Vec<NodeId> = (nodes / 2..nodes).map(NodeId).collect();
    let start = sim.now();
    sim.schedule(
        Time(start.0 + 5_000_000_000),
        rasp_runtime::sim::Fault::Partition {
            id: 1,
            a: half,
            b: rest,
            one_way: false,
        },
    );
    sim.schedule(
        Time(start.0 + 12_000_000_000),
        rasp_runtime::sim::Fault::Heal(1),
    );
    for (at_ms, who, op) in ops {
        let node = NodeId(who as u64 % nodes);
        sim.inject_at(
            Time(start.0 + at_ms * 1_000_000),
            Dest::Atom(AtomAddr::new(node, APP)),
            op,
        );
    }
    // Run to the heal, then watch the overlay join up again, then run to the end (40 s).
    let healed_at = Time(start.0 + 12_000_000_000);
    let end = Time(start.0 + 40_000_000_000);
    sim.run_for(Duration::from_nanos(healed_at.0 - sim.now().0));
    let mut heal = None;
    while sim.now() < end {
        sim.run_for(Duration::from_millis(100));
        if overlay_connected(&sim, nodes) {
            heal = Some(Duration::from_nanos(sim.now().0 - healed_at.0));
            break;
        }
    }
    sim.run_for(Duration::from_nanos(end.0 - sim.now().0));

    // Every replica: equal values; derived values = plain functions of the sources.
    let view = |sim: &Sim, n: NodeId| -> BTreeMap<String, String> {
        sim.with_atom::<App, _>(AtomAddr::new(n, APP), |a| {
            let p = a.replica.as_ref().unwrap().program();
            p.held()
                .into_iter()
                .map(|id| (id.clone(), p.show(&id).unwrap()))
                .collect()
        })
        .unwrap()
    };
    if std::env::var("DF_DEBUG").is_ok() {
        for n in 0..nodes {
            let (nb, st, buf) = sim
                .with_atom::<App, _>(AtomAddr::new(NodeId(n), APP), |a| {
                    let r = a.replica.as_ref().unwrap();
                    (r.neighbours(), format!("{:?}", r.stats()), r.buffer_len())
                })
                .unwrap();
            let m = sim
                .with_atom::<MembershipAtom, _>(AtomAddr::new(NodeId(n), AtomId(0)), |m| {
                    m.neighbours()
                })
                .unwrap();
            eprintln!(
                "node {n}: replica nbrs {nb:?} membership nbrs {m:?} buffer {buf} {st} {:?}",
                view(&sim, NodeId(n))
            );
        }
    }
    let first = view(&sim, NodeId(0));
    for n in 1..nodes {
        let other = view(&sim, NodeId(n));
        prop_assert_eq!(
            &other,
            &first,
            "node {} differs from node 0 (seed {})",
            n,
            seed
        );
    }
    let (s0, s1) = sim
        .with_atom::<App, _>(AtomAddr::new(NodeId(0), APP), |a| {
            let p = a.replica.as_ref().unwrap().program();
            let s0: &ORSet<i64> = p.state(&Var::named("s0")).unwrap();
            let s1: &ORSet<i64> = p.state(&Var::named("s1")).unwrap();
            (s0.query(), s1.query())
        })
        .unwrap();
    for (id, want) in reference(&steps, &s0, &s1) {
        prop_assert_eq!(&first[&id], &want, "{} (seed {})", id, seed);
    }
    Ok(heal)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_to_the_plain_functions(
        seed in any::<u64>(),
        nodes in 2u64..6,
        steps in proptest::collection::vec(step_strategy(), 1..6),
        ops in proptest::collection::vec(op_strategy(), 1..40),
        sync_k in 0usize..5,
    ) {
        run_case(seed, nodes, Mode::Full, SyncMode::ALL[sync_k], steps, ops)?;
    }
}

#[test]
fn hyparview_overlay_converges_too() {
    let seed = rasp_runtime::sim::seed_from_env(7);
    hyparview_case(seed).unwrap();
}

/// The HyParView case on one seed: 12 nodes, halves partitioned from 5 s to 12 s of the
/// workload; returns the time from the heal until the overlay was connected again.
fn hyparview_case(seed: u64) -> Result<Option<Duration>, TestCaseError> {
    let steps = vec![Step::Union(0, 1), Step::Product(2, 0), Step::Filter(3, 0)];
    let ops: Vec<(u64, u8, Do)> = (0..60)
        .map(|i| {
            let op = match i % 5 {
                0..=2 => Do::Add((i % 2) as u8, (i % 7) as i64),
                3 => Do::Remove((i % 2) as u8, ((i + 3) % 7) as i64),
                _ => Do::Inc(1),
            };
            (i * 250, (i * 7 % 251) as u8, op)
        })
        .collect();
    run_case_timed(seed, 12, Mode::HyParView, SyncMode::DeltaBpRr, steps, ops)
}

/// One seed of the sweep: the heal-to-connected time, or the failure.
type SeedOutcome = Result<Option<Duration>, String>;

/// Seed sweep of [`hyparview_overlay_converges_too`] (not in the default run; about 5 s of
/// CPU per seed):
/// `RASP_SEEDS=1..1000 RASP_THREADS=2 cargo test --release -p rasp-dataflow --test
/// sim_property hyparview_overlay_sweep -- --ignored --nocapture`
/// prints the seeds passed and failed and the worst time from the heal to a connected overlay.
/// Measured with reconnect probes (2 threads on a shared 2-core machine, stopped at the
/// deadline): seeds 1–552 all passed, worst heal-to-connected 8.8 s (seed 440); seeds
/// 553–1,000 not run yet. Without the probes seeds 1, 122, 125, 146, 173, 182 and 190 failed.
#[test]
#[ignore = "seed sweep; run with --ignored (RASP_SEEDS=1..1000, RASP_THREADS)"]
fn hyparview_overlay_sweep() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    let spec = std::env::var("RASP_SEEDS").unwrap_or_else(|_| "1..20".into());
    let (lo, hi) = match spec.split_once("..") {
        Some((a, b)) => (
            a.trim().parse().unwrap_or(1),
            b.trim().parse().unwrap_or(20),
        ),
        None => {
            let s: u64 = spec.trim().parse().unwrap_or(1);
            (s, s)
        }
    };
    let threads: usize = std::env::var("RASP_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let next = AtomicU64::new(lo);
    let results: Mutex<Vec<(u64, SeedOutcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed > hi {
                    break;
                }
                let r = std::panic::catch_unwind(|| hyparview_case(seed))
                    .map_err(|_| "panicked".to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                eprintln!("seed {seed}: {r:?}");
                results.lock().unwrap().push((seed, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(s, _)| *s);
    let mut failed = Vec::new();
    let mut worst = (Duration::ZERO, 0);
    for (seed, r) in &results {
        match r {
            Ok(Some(t)) => worst = worst.max((*t, *seed)),
            Ok(None) => failed.push(*seed),
            Err(_) => failed.push(*seed),
        }
    }
    println!(
        "sim: hyparview_overlay_converges_too sweep {lo}..={hi}: {} passed, {} failed {failed:?}; worst heal-to-connected {:?} (seed {})",
        results.len() - failed.len(),
        failed.len(),
        worst.0,
        worst.1
    );
    assert!(failed.is_empty(), "failed seeds: {failed:?}");
}

/// A case proptest found: delta-bp sync, two nodes, a map of s0.
#[test]
fn regression_map_under_delta_bp() {
    let ops = vec![
        (0, 103, Do::Add(0, 0)),
        (12662, 0, Do::Add(0, 0)),
        (401, 74, Do::Add(0, -1)),
        (3001, 62, Do::Add(0, -2)),
    ];
    run_case(
        0,
        2,
        Mode::Full,
        SyncMode::DeltaBp,
        vec![Step::Map(0, 0)],
        ops,
    )
    .unwrap();
}
