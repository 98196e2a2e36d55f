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
    case::run(&map::case(20), BUDGET);
}
