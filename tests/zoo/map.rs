//! Lasp's non-injective `map`: two elements with one image must union their metadata
//! (Meiklejohn, Van Roy, "Lasp", PPDP 2015, §3). With
//! [`Defects::map_keeps_last_source`](rasp::dataflow::program::Defects) the image keeps the
//! dots of only one source of a delta holding both (a sync from another node): removing that
//! source removes the image although the other source is still there.

use super::case::{Case, CheckCase};
use rasp::app::check::CheckArgs;
use rasp::app::{App, Invariant, NoArgs, NodeCtx, NodeMeta, WorkItem};
use rasp::dataflow::program::Defects;
use rasp::dataflow::update::{add, remove};
use rasp::dataflow::{Error, Func, Program, Var};
use rasp::lattice::ORSet;
use rasp::membership::Mode;
use std::collections::BTreeSet;
use std::time::Duration;

/// The invariant.
pub const INVARIANT: &str = "map's output is the image of its input";

fn input() -> Var<ORSet<u64>> {
    Var::named("in")
}

/// `in` mapped by `x / 2` (0, 1 → 0; 2, 3 → 1).
#[derive(Clone, Default)]
pub struct Halves {
    /// The switch.
    pub defect: bool,
    /// `check`'s script instead of a workload: node 0 adds 2 and 3 as it starts and removes
    /// 3 a millisecond later.
    pub scripted: bool,
}

impl App for Halves {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        p.reintroduce(Defects {
            map_keeps_last_source: self.defect,
            ..Defects::default()
        });
        let xs = p.declare::<ORSet<u64>>(input().id())?;
        p.map("halves", &xs, Func::new("half", |x: &u64| x / 2))?;
        Ok(())
    }
    fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
        if self.scripted && node.index() == Some(0) {
            node.update(&input(), add(2u64)).expect("declared");
            node.update(&input(), add(3u64)).expect("declared");
            node.after(Duration::from_millis(1), |_, n| {
                n.update(&input(), remove(3u64)).expect("declared");
            });
        }
    }
    fn workload(
        &self,
        nodes: &[NodeMeta],
        horizon: Duration,
        rng: &mut dyn rand::RngCore,
    ) -> Vec<WorkItem> {
        super::ops(nodes, horizon, 4, rng, |r| {
            let x = r % 4;
            if r % 3 == 0 {
                format!("remove {x}")
            } else {
                format!("add {x}")
            }
        })
    }
    fn on_work(&mut self, node: &mut NodeCtx<'_, Self>, op: &str) {
        match super::parse(op) {
            ("add", x) => node.update(&input(), add(x)),
            (_, x) => node.update(&input(), remove(x)),
        }
        .expect("declared");
    }
    fn invariants(&self) -> Vec<Invariant> {
        vec![Invariant::each(INVARIANT, |n| {
            let xs = n.program.query(&input()).map_err(|e| e.to_string())?;
            let ys = n
                .program
                .query(&Var::<rasp::dataflow::causal::DSet<u64>>::named("halves"))
                .map_err(|e| e.to_string())?;
            let want: BTreeSet<u64> = xs.iter().map(|x| x / 2).collect();
            if ys == want {
                Ok(())
            } else {
                Err(format!("in = {xs:?}, halves = {ys:?}, want {want:?}"))
            }
        })]
    }
}

/// The case.
pub fn case(runs: u64) -> Case<Halves> {
    Case {
        name: "map",
        buggy: Halves {
            defect: true,
            scripted: false,
        },
        fixed: Halves::default(),
        invariant: INVARIANT,
        fuzz: super::fuzz_args(runs, 2, 0),
        hand_made: &[
            "n0 starts",
            "n1 starts",
            "n0 adds 2",
            "n0 adds 3",
            "n0 removes 3",
            "n1 → n0 membership/wire delivered (n1 joins)",
            "n0 → n1 dataflow/hello delivered",
            "n0 → n1 dataflow/sync delivered ({2, 3} in one delta: halves keeps 3's dot only)",
            "n0 → n1 dataflow/sync delivered (3 removed: halves loses 1 although 2 is in)",
        ],
        check: Some(CheckCase {
            buggy: Halves {
                defect: true,
                scripted: true,
            },
            fixed: Halves {
                defect: false,
                scripted: true,
            },
            args: CheckArgs {
                nodes: 2,
                depth: 8,
                membership: Mode::Full,
                ..CheckArgs::default()
            },
        }),
        expect_clean: true,
    }
}
