//! The bug zoo: known distributed bugs, each a small app or a runtime switch that puts a
//! historical bug back into library code ([`rasp::dataflow::program::Defects`], the ad
//! counter's `keeps_counting_removed`), found by `fuzz`, cut down by `shrink`, replayed bit
//! for bit, and (where the configuration is small) found by `check`. Every case also runs the
//! fixed code over the same fuzz runs, which must stay clean. See README "Bug zoo".
//!
//! The default run uses small budgets with fixed seeds known to find each bug. The full
//! table: `cargo test --release --test zoo table -- --ignored --nocapture`.

#[path = "zoo/ad.rs"]
mod ad;
#[path = "zoo/case.rs"]
mod case;
#[path = "zoo/intersection.rs"]
mod intersection;
#[path = "zoo/island.rs"]
mod island;
#[path = "zoo/lattice.rs"]
mod lattice;
#[path = "zoo/lww.rs"]
mod lww;
#[path = "zoo/map.rs"]
mod map;
#[path = "zoo/restart.rs"]
mod restart;
#[path = "zoo/trigger.rs"]
mod trigger;

use rasp::app::fuzz::FuzzArgs;
use rasp::app::NodeMeta;
use rasp::app::WorkItem;
use rasp::membership::Mode;
use std::time::Duration;

/// The fuzzer's settings the cases share: `nodes` nodes under full membership, 2 s of
/// activity, at most `faults` faults, 10 s for eventual properties, 2 threads.
fn fuzz_args(runs: u64, nodes: u32, faults: u32) -> FuzzArgs {
    FuzzArgs {
        runs,
        seed: 1,
        threads: Some(2),
        nodes,
        membership: Mode::Full,
        horizon_s: 2.0,
        settle_s: 10.0,
        max_faults: faults,
        ..FuzzArgs::default()
    }
}

/// `per_node` operations on each node at uniform random times within `horizon`, each named
/// by `op` from a random number.
fn ops(
    nodes: &[NodeMeta],
    horizon: Duration,
    per_node: u32,
    rng: &mut dyn rand::RngCore,
    op: impl Fn(u64) -> String,
) -> Vec<WorkItem> {
    let mut out = Vec::new();
    let h = horizon.as_millis().max(1) as u64;
    for n in nodes {
        let Some(i) = n.index else { continue };
        for _ in 0..per_node {
            let at = Duration::from_millis(rng.next_u64() % h);
            out.push(WorkItem {
                at,
                node: i,
                op: op(rng.next_u64()),
            });
        }
    }
    out.sort_by_key(|w| w.at);
    out
}

/// `"verb n"` → `(verb, n)` (0 if the number is missing).
fn parse(op: &str) -> (&str, u64) {
    let (verb, n) = op.rsplit_once(' ').unwrap_or((op, "0"));
    (verb, n.parse().unwrap_or(0))
}

/// Shrinking's budget per case in the default run.
const BUDGET: Duration = Duration::from_secs(60);

#[test]
fn map_non_injective() {
    case::run(&map::case(200), BUDGET, true);
}

/// The application bug, reused from `tests/fuzz_shrink.rs` (the fixed program keeps the
/// count in a grow-only counter; `check` finds it in `tests/check.rs`, at depth 4).
fn lww_case(runs: u64) -> case::Case<lww::LwwCounter> {
    case::Case {
        name: "LWW read-modify-write",
        buggy: lww::LwwCounter::default(),
        fixed: lww::LwwCounter { counter: true },
        invariant: lww::COUNTS,
        fuzz: rasp::app::fuzz::FuzzArgs {
            horizon_s: 5.0,
            ..fuzz_args(runs, 3, 2)
        },
        hand_made: &[
            "n0 starts",
            "n1 starts",
            "n0 increments (reads 0, writes 1)",
            "n1 increments (reads 0, writes 1)",
            "n1 → n0 membership/wire delivered (n1 joins)",
            "n0 → n1 dataflow/hello delivered",
            "n1 → n0 dataflow/hello delivered",
            "n0 → n1 dataflow/sync delivered",
            "n1 → n0 dataflow/sync delivered (both hold 1 after 2 increments)",
        ],
        check: None,
        expect_clean: true,
    }
}

/// The fuzzed run fails on three nodes; the shrinker's smallest-first phase finds the
/// one-node form of the hand-made minimum (ddmin alone kept a two-node form, 14× as long).
#[test]
fn intersection_concatenated_tokens() {
    let row = case::run(&intersection::case(200), BUDGET, true);
    assert!(row.ratio() <= 1.0, "{}", row.markdown());
}

#[test]
fn enforce_once_fires_again() {
    case::run(&trigger::case(1000), BUDGET, true);
}

#[test]
fn restart_catch_up_skipped() {
    case::run(&restart::case(200), BUDGET, true);
}

#[test]
fn hyparview_island_without_isolation_repair() {
    case::run(&island::case(100), BUDGET, true);
}

#[test]
fn lww_read_modify_write() {
    case::run(&lww_case(200), BUDGET, true);
}

#[test]
fn non_commutative_join() {
    case::run(&lattice::case(200), BUDGET, true);
}

#[test]
fn ad_counter_client_counts_removed_ads() {
    case::run(&ad::case(100), BUDGET, true);
}

/// A case at the size of a user's default `fuzz` run (`FuzzArgs::default()`: 3 nodes, 10 s
/// of activity), or the case's own where it is larger: the table shrinks what a user's run
/// would have found, not the short runs the default test uses to stay fast.
fn user_sized<A: rasp::app::App>(mut c: case::Case<A>) -> case::Case<A> {
    let d = FuzzArgs::default();
    c.fuzz.horizon_s = c.fuzz.horizon_s.max(d.horizon_s);
    c.fuzz.nodes = c.fuzz.nodes.max(d.nodes);
    c
}

/// The median of `xs` (the mean of the two middle ones for an even count).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    (xs[(xs.len() - 1) / 2] + xs[xs.len() / 2]) / 2.0
}

/// The README's "Bug zoo" table, on runs of a user's default size ([`user_sized`]):
/// `cargo test --release --test zoo table -- --ignored --nocapture --test-threads 1`.
#[test]
#[ignore]
fn table() {
    let budget = Duration::from_secs(60);
    let rows = vec![
        case::run(&user_sized(map::case(1000)), budget, false),
        case::run(&user_sized(intersection::case(1000)), budget, false),
        case::run(&user_sized(trigger::case(1000)), budget, false),
        case::run(&user_sized(restart::case(1000)), budget, false),
        case::run(&user_sized(lww_case(1000)), budget, false),
        case::run(&user_sized(lattice::case(1000)), budget, false),
        case::run(&user_sized(ad::case(1000)), budget, false),
        case::run(&user_sized(island::case(1000)), budget, false),
    ];
    println!("{}", case::HEADER);
    for r in &rows {
        println!("{}", r.markdown());
    }
    println!(
        "median reduction {:.1} % over the whole run, {:.1} % over the decided part; within 1.5× of the hand-made minimum: {} of {}; slowest fuzz + shrink {:.1} s",
        median(rows.iter().map(case::Row::reduction).collect()),
        median(rows.iter().map(case::Row::decided_reduction).collect()),
        rows.iter().filter(|r| r.ratio() <= 1.5).count(),
        rows.len(),
        rows.iter()
            .map(|r| (r.fuzz_wall + r.shrink_wall).as_secs_f64())
            .fold(0.0, f64::max),
    );
}

/// The fixed trigger's run 740 (seed 1) lost a fifth of all messages for the whole run: its
/// neighbour's catch-up, resent every two sync intervals until acknowledged, was lost four
/// times in a row, so `__fired` was still on one replica 10 s after the run went quiet (it
/// converges within 60 s). That is the network never healing, not a replication defect: the
/// eventual properties are "after the last fault heals", so a plan's loss now ends at
/// quiescence ([`rasp::app::plan::Plan::loss_heals`]).
#[test]
fn loss_ends_when_the_run_goes_quiet() {
    use rasp::app::fuzz::run_seed;
    use rasp::app::plan::{execute, Collect, Plan};
    let case = trigger::case(1000);
    let space = case.fuzz.space().unwrap();
    let mut plan = Plan::generate(&case.fixed, &space, run_seed(case.fuzz.seed, 740));
    assert!(plan.loss_heals && plan.loss > 0.15, "{plan:?}");
    let run = |plan: &Plan| {
        execute(&case.fixed, plan, Collect::default(), None)
            .unwrap()
            .violation
            .map(|v| v.message)
    };
    assert_eq!(run(&plan), None);
    // As recorded before (loss for the whole run): the 10 s bound is missed, 60 s is not.
    plan.loss_heals = false;
    let missed = run(&plan).expect("the run of the old semantics fails");
    assert!(missed.contains("__fired differs"), "{missed}");
    plan.settle = Duration::from_secs(60);
    assert_eq!(run(&plan), None);
}
