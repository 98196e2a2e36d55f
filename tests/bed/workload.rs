//! The bed's generic workload app: a set and two counters that the bed's clients update over
//! the HTTP API, two derived variables, and threshold triggers whose runs are counted in
//! replicated counters, so the checker can tell "fired exactly once" from the outside.
//!
//! ```text
//!  w/set (ORSet<String>) ─┬─ filter(marked: starts with 'k') ── w/marked
//!                         └─ map(upper: upper case) ─────────── w/upper
//!  w/hits (GCounter) ── trigger hits-<T> (≥ T, servers) ── inc w/runs/hits-<T>
//!  w/bal (PNCounter)
//! ```
//!
//! The bed runs it by executing its own test binary with `node …` (see `tests/bed.rs`), so
//! the app needs no binary of its own. Every node holds every variable; triggers are armed
//! on servers (`--role server`), and their owner is chosen by the replica (see
//! `rasp_dataflow::replica`'s module docs, "Triggers").

use rasp::app::{App, NodeCtx};
use rasp::dataflow::update::inc;
use rasp::dataflow::{Error, Func, Program, Var};
use rasp::lattice::{GCounter, ORSet, PNCounter, Threshold};
use rasp::membership::Role;

/// The set the clients add to and remove from.
pub const SET: &str = "w/set";
/// The grow-only counter the clients increment; the triggers watch it.
pub const HITS: &str = "w/hits";
/// The counter the clients increment and decrement.
pub const BAL: &str = "w/bal";
/// `filter(SET, starts with 'k')`.
pub const MARKED: &str = "w/marked";
/// `map(SET, upper case)`.
pub const UPPER: &str = "w/upper";

/// The trigger of threshold `t`.
pub fn trigger_name(t: u64) -> String {
    format!("hits-{t}")
}

/// The counter of the runs of trigger `name`'s action.
pub fn runs_id(name: &str) -> String {
    format!("w/runs/{name}")
}

/// The marked elements (the filter's function).
pub fn marked(s: &str) -> bool {
    s.starts_with('k')
}

/// The map's function.
pub fn upper(s: &str) -> String {
    s.to_uppercase()
}

/// The app's own flags.
#[derive(clap::Args, Clone, Debug)]
pub struct WorkloadArgs {
    /// Thresholds of `w/hits` at which a trigger fires (comma-separated)
    #[arg(long, value_delimiter = ',', default_value = "50,200,800")]
    pub triggers: Vec<u64>,
}

/// The workload app.
#[derive(Clone, Debug)]
pub struct Workload {
    /// See [`WorkloadArgs::triggers`].
    pub triggers: Vec<u64>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            triggers: vec![50, 200, 800],
        }
    }
}

impl App for Workload {
    type Args = WorkloadArgs;

    fn configure(&mut self, args: &WorkloadArgs) -> Result<(), String> {
        if args.triggers.contains(&0) {
            return Err("--triggers: every threshold must be at least 1".into());
        }
        self.triggers = args.triggers.clone();
        self.triggers.sort_unstable();
        self.triggers.dedup();
        Ok(())
    }

    fn program(&self, p: &mut Program) -> Result<(), Error> {
        let set = p.declare::<ORSet<String>>(SET)?;
        p.declare::<GCounter>(HITS)?;
        p.declare::<PNCounter>(BAL)?;
        p.filter(MARKED, &set, Func::new("marked", |s: &String| marked(s)))?;
        p.map(UPPER, &set, Func::new("upper", |s: &String| upper(s)))?;
        for &t in &self.triggers {
            p.declare::<GCounter>(&runs_id(&trigger_name(t)))?;
        }
        Ok(())
    }

    fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
        if node.role() != Role::Server {
            return;
        }
        let hits = Var::<GCounter>::named(HITS);
        for &t in &self.triggers {
            let name = trigger_name(t);
            let runs = Var::<GCounter>::named(&runs_id(&name));
            let armed = node.trigger_once(&name, &hits, Threshold::Value(t as i64), move |p, _| {
                let actor = p.actor();
                let _ = p.update(&runs, inc(1), actor);
            });
            armed.expect("w/hits is held on every node");
        }
    }
}
