//! A "lattice" whose join is not commutative: it keeps the last value it was joined with,
//! so two replicas that received the same writes in different orders hold different states
//! (strong convergence needs a commutative, associative, idempotent join: Shapiro et al.,
//! "Conflict-free Replicated Data Types", SSS 2011, §2.2). The correct version picks the
//! largest write instead.

use super::case::{Case, CheckCase};
use rasp::app::check::CheckArgs;
use rasp::app::{App, Invariant, NoArgs, NodeCtx, NodeMeta, WorkItem};
use rasp::dataflow::{Error, Program, Var};
use rasp::lattice::{Lattice, Query};
use rasp::membership::Mode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// The invariant.
pub const INVARIANT: &str = "replicas that saw the same writes agree";

/// The writes seen, and the value they resolve to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// Every write seen.
    pub seen: BTreeSet<u64>,
    /// The value: the last write joined in (the bug), or the largest (`fair`).
    pub last: Option<u64>,
    /// Resolve to the largest write (a true join).
    pub fair: bool,
}

impl Lattice for Arrival {
    fn bottom() -> Self {
        Arrival::default()
    }
    fn is_bottom(&self) -> bool {
        self.seen.is_empty()
    }
    fn join(&mut self, other: &Self) -> bool {
        let before = self.seen.len();
        self.seen.extend(other.seen.iter().copied());
        self.fair |= other.fair;
        if self.seen.len() == before {
            return false;
        }
        self.last = if self.fair {
            self.seen.last().copied()
        } else {
            other.last
        };
        true
    }
    fn leq(&self, other: &Self) -> bool {
        self.seen.is_subset(&other.seen)
    }
    fn decompose(&self) -> Vec<Self> {
        if self.is_bottom() {
            Vec::new()
        } else {
            vec![self.clone()]
        }
    }
    fn delta(&self, other: &Self) -> Self {
        if self.leq(other) {
            Self::bottom()
        } else {
            self.clone()
        }
    }
}

impl Query for Arrival {
    type Value = Option<u64>;
    fn query(&self) -> Option<u64> {
        self.last
    }
}

fn var() -> Var<Arrival> {
    Var::named("value")
}

/// Every write is a distinct number; replicas join them as they arrive.
#[derive(Clone, Default)]
pub struct LastArrival {
    /// The correct join (largest write) instead of the last one.
    pub fair: bool,
    /// `check`'s script: nodes 0 and 1 each write their own value as they start.
    pub scripted: bool,
}

impl LastArrival {
    fn write(&self, node: &mut NodeCtx<'_, Self>, v: u64) {
        let fair = self.fair;
        node.update(&var(), move |_: &Arrival, _| Arrival {
            seen: BTreeSet::from([v]),
            last: Some(v),
            fair,
        })
        .expect("declared");
    }
}

impl App for LastArrival {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        p.declare::<Arrival>(var().id()).map(|_| ())
    }
    fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
        if self.scripted {
            let v = u64::from(node.index().unwrap_or(0)) + 1;
            self.write(node, v);
        }
    }
    fn workload(
        &self,
        nodes: &[NodeMeta],
        horizon: Duration,
        rng: &mut dyn rand::RngCore,
    ) -> Vec<WorkItem> {
        super::ops(nodes, horizon, 2, rng, |r| {
            format!("write {}", r % 1_000_000)
        })
    }
    fn on_work(&mut self, node: &mut NodeCtx<'_, Self>, op: &str) {
        let v = super::parse(op).1;
        self.write(node, v);
    }
    fn invariants(&self) -> Vec<Invariant> {
        vec![Invariant::all(INVARIANT, |nodes| {
            let states: Vec<(u32, Arrival)> = nodes
                .iter()
                .filter_map(|n| n.program.state(&var()).ok().map(|s| (n.index, s.clone())))
                .collect();
            for (i, a) in &states {
                for (j, b) in &states {
                    if i < j && a.seen == b.seen && a.last != b.last {
                        return Err(format!(
                            "nodes {i} and {j} saw {:?}; {i} holds {:?}, {j} holds {:?}",
                            a.seen, a.last, b.last
                        ));
                    }
                }
            }
            Ok(())
        })]
    }
}

/// The case.
pub fn case(runs: u64) -> Case<LastArrival> {
    Case {
        name: "non-commutative join",
        buggy: LastArrival::default(),
        fixed: LastArrival {
            fair: true,
            scripted: false,
        },
        invariant: INVARIANT,
        fuzz: super::fuzz_args(runs, 2, 0),
        hand_made: &[
            "n0 starts",
            "n1 starts",
            "n0 writes x",
            "n1 writes y",
            "n1 → n0 membership/wire delivered (n1 joins)",
            "n0 → n1 dataflow/hello delivered",
            "n1 → n0 dataflow/hello delivered",
            "n0 → n1 dataflow/sync delivered (n1 holds x)",
            "n1 → n0 dataflow/sync delivered (n0 holds y: same writes, other value)",
        ],
        check: Some(CheckCase {
            buggy: LastArrival {
                fair: false,
                scripted: true,
            },
            fixed: LastArrival {
                fair: true,
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
