//! Lasp's restart bug (README "Bug zoo"): a node restarted under delta sync gets
//! nothing until the object changes again. The replica catches a greeting neighbour up with
//! its states at once (`on_hello` in [`rasp::dataflow::replica`]); with
//! [`Defects::hello_skips_catch_up`](rasp::dataflow::program::Defects) it takes the
//! neighbour as caught up and only ships the deltas made from then on.

use super::case::Case;
use rasp::app::{App, Invariant, NoArgs, NodeCtx, NodeMeta, WorkItem};
use rasp::dataflow::program::Defects;
use rasp::dataflow::update::add;
use rasp::dataflow::{Error, Program, Var};
use rasp::lattice::GSet;
use std::time::Duration;

/// The invariant.
pub const INVARIANT: &str = "every replica ends up with every item";

fn items() -> Var<GSet<u64>> {
    Var::named("items")
}

/// A grow-only set of items added by clients.
#[derive(Clone, Default)]
pub struct Items {
    /// The switch.
    pub defect: bool,
}

impl App for Items {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        p.reintroduce(Defects {
            hello_skips_catch_up: self.defect,
            ..Defects::default()
        });
        p.declare::<GSet<u64>>(items().id()).map(|_| ())
    }
    fn workload(
        &self,
        nodes: &[NodeMeta],
        horizon: Duration,
        rng: &mut dyn rand::RngCore,
    ) -> Vec<WorkItem> {
        super::ops(nodes, horizon, 2, rng, |r| format!("add {}", r % 1000))
    }
    fn on_work(&mut self, node: &mut NodeCtx<'_, Self>, op: &str) {
        node.update(&items(), add(super::parse(op).1))
            .expect("declared");
    }
    fn invariants(&self) -> Vec<Invariant> {
        vec![Invariant::eventually(
            INVARIANT,
            Duration::from_secs(10),
            |nodes| {
                let all: std::collections::BTreeSet<u64> = nodes
                    .iter()
                    .filter_map(|n| n.program.query(&items()).ok())
                    .flatten()
                    .collect();
                for n in nodes {
                    let have = n.program.query(&items()).map_err(|e| e.to_string())?;
                    if have != all {
                        let missing: Vec<_> = all.difference(&have).collect();
                        return Err(format!("node {} lacks {missing:?}", n.index));
                    }
                }
                Ok(())
            },
        )]
    }
}

/// The case (no `check`: the bug needs a crash, a restart and a greeting after it, deeper
/// than the small searches of the default run).
pub fn case(runs: u64) -> Case<Items> {
    Case {
        name: "restart catch-up (Lasp 290)",
        buggy: Items { defect: true },
        fixed: Items { defect: false },
        invariant: INVARIANT,
        fuzz: super::fuzz_args(runs, 2, 2),
        hand_made: &[
            "n0 starts",
            "n1 starts",
            "n1 crashes (restarts later)",
            "n0 adds x while n1 is down",
            "n1 → n0 membership/wire delivered (n1 joins)",
            "n1 → n0 membership/wire delivered (n1 joins again after its restart)",
            "n0 → n1 dataflow/hello delivered (n1 taken as caught up: x never sent)",
            "n1 → n0 dataflow/hello delivered",
        ],
        check: None,
        expect_clean: true,
    }
}
