//! An `enforce_once` trigger that fires again on a later inflation: the naive reading of
//! Lasp's `enforce_once` (Meiklejohn, Van Roy, "Lasp", PPDP 2015, §6, the ad counter's
//! removal trigger) as a subscription that re-evaluates the threshold on every change of
//! the variable, against the replica's one-shot trigger ([`rasp::app::NodeCtx::trigger_once`]).

use super::case::{Case, CheckCase};
use rasp::app::check::CheckArgs;
use rasp::app::{App, Invariant, NoArgs, NodeCtx, NodeMeta, WorkItem};
use rasp::dataflow::update::inc;
use rasp::dataflow::{Error, Program, Var};
use rasp::lattice::{GCounter, Threshold};
use rasp::membership::Mode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The invariant.
pub const INVARIANT: &str = "the award is given at most once per node";

fn hits() -> Var<GCounter> {
    Var::named("hits")
}

/// Gives an award once `hits` reaches 2.
#[derive(Clone, Default)]
pub struct Award {
    /// The bug: a subscription with a threshold test instead of a trigger.
    pub naive: bool,
    /// `check`'s script: node 0 hits once as it starts, node 1 twice.
    pub scripted: bool,
    /// Awards given by this node (its own copy of the app, reset at every start).
    given: Arc<AtomicU64>,
}

impl Award {
    /// The app, naive or not.
    pub fn new(naive: bool, scripted: bool) -> Self {
        Award {
            naive,
            scripted,
            given: Arc::default(),
        }
    }
}

impl App for Award {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        p.declare::<GCounter>(hits().id()).map(|_| ())
    }
    fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
        self.given = Arc::default();
        let given = self.given.clone();
        if self.naive {
            node.program_mut()
                .subscribe(&hits(), move |_, s: &GCounter| {
                    if rasp::lattice::Query::query(s) >= 2 {
                        given.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .expect("declared");
        } else {
            node.trigger_once("award", &hits(), Threshold::value(2), move |_, _| {
                given.fetch_add(1, Ordering::Relaxed);
            })
            .expect("declared");
        }
        if self.scripted {
            let n = if node.index() == Some(1) { 2 } else { 1 };
            for _ in 0..n {
                node.update(&hits(), inc(1)).expect("declared");
            }
        }
    }
    fn workload(
        &self,
        nodes: &[NodeMeta],
        horizon: Duration,
        rng: &mut dyn rand::RngCore,
    ) -> Vec<WorkItem> {
        super::ops(nodes, horizon, 3, rng, |_| "hit".into())
    }
    fn on_work(&mut self, node: &mut NodeCtx<'_, Self>, _op: &str) {
        node.update(&hits(), inc(1)).expect("declared");
    }
    fn invariants(&self) -> Vec<Invariant> {
        vec![Invariant::each(INVARIANT, |n| {
            let given = n
                .app::<Award>()
                .map_or(0, |a| a.given.load(Ordering::Relaxed));
            if given <= 1 {
                Ok(())
            } else {
                Err(format!("given {given} times"))
            }
        })]
    }
}

/// The case.
pub fn case(runs: u64) -> Case<Award> {
    Case {
        name: "enforce-once",
        buggy: Award::new(true, false),
        fixed: Award::new(false, false),
        invariant: INVARIANT,
        fuzz: super::fuzz_args(runs, 2, 0),
        hand_made: &[
            "n0 starts",
            "n0 hits",
            "n0 hits (2: the award)",
            "n0 hits (3: the award again)",
        ],
        check: Some(CheckCase {
            buggy: Award::new(true, true),
            fixed: Award::new(false, true),
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
