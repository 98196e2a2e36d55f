//! The zoo's application bug (a case of `tests/zoo.rs`, and the main case of
//! `tests/fuzz_shrink.rs`, which includes this file): a counter kept in a last-writer-wins
//! register and incremented by read-modify-write. Two increments on two nodes within one
//! sync interval both write "old + 1"; one is lost.

use rasp::app::plan::spread_workload;
use rasp::app::{App, Invariant, NoArgs, NodeCtx, NodeMeta, WorkItem};
use rasp::dataflow::update::{inc, write};
use rasp::dataflow::{Error, Program, Var};
use rasp::lattice::{GCounter, LWWRegister};
use std::time::Duration;

/// The register holding the count.
pub fn count() -> Var<LWWRegister<u64>> {
    Var::named("count")
}
/// The increments performed.
pub fn performed() -> Var<GCounter> {
    Var::named("performed")
}

/// The planted bug: read-modify-write on a last-writer-wins register.
#[derive(Clone, Default)]
pub struct LwwCounter {
    /// The correct program instead: the count in a grow-only counter.
    pub counter: bool,
}

fn tally() -> Var<GCounter> {
    Var::named("tally")
}

/// The invariant that catches the lost update.
pub const COUNTS: &str = "the counter counts every increment";

impl App for LwwCounter {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        p.declare::<LWWRegister<u64>>(count().id())?;
        p.declare::<GCounter>(performed().id())?;
        p.declare::<GCounter>(tally().id())?;
        Ok(())
    }
    fn workload(
        &self,
        nodes: &[NodeMeta],
        horizon: Duration,
        rng: &mut dyn rand::RngCore,
    ) -> Vec<WorkItem> {
        spread_workload(nodes, horizon, 2, rng, |_, _| {
            "increments the counter".into()
        })
    }
    fn on_work(&mut self, node: &mut NodeCtx<'_, Self>, _op: &str) {
        if self.counter {
            node.update(&tally(), inc(1)).expect("declared");
        } else {
            let now = node.query(&count()).expect("declared").unwrap_or(0);
            node.update(&count(), write(now + 1)).expect("declared");
        }
        node.update(&performed(), inc(1)).expect("declared");
    }
    fn invariants(&self) -> Vec<Invariant> {
        vec![Invariant::eventually(
            COUNTS,
            Duration::from_secs(10),
            |nodes| {
                for n in nodes {
                    let c = if n.app::<LwwCounter>().is_some_and(|a| a.counter) {
                        Some(n.program.query(&tally()).map_err(|e| e.to_string())?)
                    } else {
                        n.program.query(&count()).map_err(|e| e.to_string())?
                    };
                    let p = n.program.query(&performed()).map_err(|e| e.to_string())?;
                    if c.unwrap_or(0) != p {
                        return Err(format!(
                            "node {}: the counter says {} after {p} increments",
                            n.index,
                            c.unwrap_or(0)
                        ));
                    }
                }
                Ok(())
            },
        )]
    }
}
