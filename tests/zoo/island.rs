//! HyParView without Partisan's isolation repair (Meiklejohn et al., "Partisan: Scaling the
//! Distributed Actor Runtime", USENIX ATC 2019; rasp's `rasp_membership::hyparview` module
//! docs): the paper's protocol replaces a failed active peer from the passive view, but a
//! node whose requests all fail (its passive peers are cut off or down) stays isolated, and
//! the overlay keeps an island after the faults heal. The switch is
//! `hyparview::Config::without_isolation_repair`; the invariant is over the overlay itself:
//! the live nodes' active views form one connected graph after the faults heal.

use super::case::Case;
use rasp::app::fuzz::FuzzArgs;
use rasp::app::{App, Invariant, NoArgs, NodeView};
use rasp::dataflow::{Error, Program};
use rasp::membership::Mode;
use std::collections::BTreeSet;
use std::time::Duration;

/// The invariant.
pub const INVARIANT: &str = "the active views connect every live node";

/// No program: the overlay is what is checked.
#[derive(Clone, Default)]
pub struct Overlay {
    /// The switch.
    pub defect: bool,
}

fn connected(nodes: &[NodeView<'_>]) -> Result<(), String> {
    let ids: BTreeSet<u64> = nodes.iter().map(|n| n.id.0).collect();
    let edges = |id: u64| -> Vec<u64> {
        nodes
            .iter()
            .find(|n| n.id.0 == id)
            .and_then(|n| n.membership)
            .map(|m| m.neighbours().iter().map(|p| p.0).collect())
            .unwrap_or_default()
    };
    let Some(&first) = ids.first() else {
        return Ok(());
    };
    let mut seen = BTreeSet::from([first]);
    let mut todo = vec![first];
    while let Some(n) = todo.pop() {
        for m in edges(n) {
            if ids.contains(&m) && seen.insert(m) {
                todo.push(m);
            }
        }
    }
    if seen.len() == ids.len() {
        Ok(())
    } else {
        let cut: Vec<_> = ids.difference(&seen).collect();
        Err(format!("nodes {cut:?} are cut off from node {first}"))
    }
}

impl App for Overlay {
    type Args = NoArgs;
    fn program(&self, _p: &mut Program) -> Result<(), Error> {
        Ok(())
    }
    fn membership_config(&self, config: &mut rasp::membership::Config) {
        config.hyparview.without_isolation_repair = self.defect;
    }
    fn invariants(&self) -> Vec<Invariant> {
        vec![Invariant::eventually(
            INVARIANT,
            Duration::from_secs(30),
            connected,
        )]
    }
}

/// The case (no `check`: an island needs a partition or crashes long enough for the
/// failure detector, beyond the default run's searches).
pub fn case(runs: u64) -> Case<Overlay> {
    Case {
        name: "HyParView island",
        buggy: Overlay { defect: true },
        fixed: Overlay { defect: false },
        invariant: INVARIANT,
        fuzz: FuzzArgs {
            membership: Mode::HyParView,
            horizon_s: 10.0,
            settle_s: 30.0,
            ..super::fuzz_args(runs, 4, 3)
        },
        hand_made: &[
            "n0 starts",
            "n1 starts",
            "n1 is cut from n0 (a partition, healed later)",
            "n1 → n0 membership/wire delivered (JOIN)",
            "n0 → n1 membership/wire delivered (n1 enters n0's active view)",
        ],
        check: None,
        expect_clean: true,
    }
}
