//! The invariants every app gets, beside its own ([`App::invariants`]).
//!
//! | name | kind | what |
//! |---|---|---|
//! | [`CONVERGENCE`] | eventual | every replica of each variable holds the same state (the lattice order both ways, and the same value) on every live node; the triggers' heartbeat counter (`rasp_dataflow::replica::ALIVE_ID`) aside, which changes while a trigger is pending |
//! | [`OPERATORS`] | eventual | on every node that computes a derived variable (it holds the operator's inputs), its value equals the operator's plain function of the node's input states: the one property of the dataflow operators (Meiklejohn, Van Roy, "Lasp", PPDP 2015, §3) |
//! | [`TRIGGER_PER_NODE`] | safety | a trigger's action runs at most once per node, across restarts with the node's store (a node whose store was wiped is a new node) |
//! | [`TRIGGER_OVERALL`] | safety | a trigger's action runs at most once in the whole cluster; only for runs inside the contract's "connected cluster" (no crash, no partition or pause as long as the failure detector's timeout; see `rasp_dataflow::replica`, "What once means") |
//!
//! Eventual properties are checked by the fuzzer and the minimiser once the run is quiet
//! (see [`Invariant::eventually`]); safety properties after every event, by `sim` too
//! (`sim` checks the app's own eventual properties, not these built-in ones: its report says
//! whether the run converged). The
//! firings are read from [`rasp_dataflow::Program::trigger_firings`] (the actions that ran on
//! that node's program); the checker keeps a ledger across incarnations, keyed by the node's
//! boot counter ([`NodeView::boot`]).

use super::{App, Invariant, NodeView};
use rasp_dataflow::replica::ALIVE_ID;
use rasp_dataflow::{Interest, Program};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The convergence property's name.
pub const CONVERGENCE: &str = "builtin: replicas converge after quiescence";
/// The operator property's name.
pub const OPERATORS: &str = "builtin: derived = f(inputs) after quiescence";
/// The per-node trigger property's name.
pub const TRIGGER_PER_NODE: &str = "builtin: a trigger fires at most once per node";
/// The cluster-wide trigger property's name.
pub const TRIGGER_OVERALL: &str = "builtin: a trigger fires at most once overall";

/// The built-in safety properties that hold in every run: [`TRIGGER_PER_NODE`].
pub fn safety<A: App>() -> Vec<Invariant> {
    vec![triggers(false)]
}

/// Every built-in for one run: the eventual ones with bound `within`, the per-node trigger
/// property, and the cluster-wide one if `connected` (the run stays inside the triggers'
/// "connected cluster" contract). Make a fresh set per run: the trigger ledger lives in it.
pub fn all<A: App>(app: &A, within: Duration, connected: bool) -> Vec<Invariant> {
    let mut v = vec![convergence(within), operators(app.clone(), within)];
    v.push(triggers(false));
    if connected {
        v.push(triggers(true));
    }
    v
}

/// [`CONVERGENCE`] with bound `within`.
pub fn convergence(within: Duration) -> Invariant {
    Invariant::eventually(CONVERGENCE, within, |nodes| {
        let mut reference: BTreeMap<String, (u32, &dyn rasp_dataflow::erased::AnyLattice)> =
            BTreeMap::new();
        for v in nodes {
            // The triggers' heartbeat counter changes every sync interval while a trigger is
            // pending, by design (`rasp_dataflow::replica`, "Failure detector"): it never
            // settles, so it is left out. Every other variable, internal ones included.
            for id in v.program.held().into_iter().filter(|id| id != ALIVE_ID) {
                let state = v.program.state_dyn(&id).map_err(|e| e.to_string())?;
                match reference.get(&id) {
                    Some((other, r)) => {
                        // The order both ways, and the same value: a causal set's order
                        // compares only its dots, so two sets with the same dots and other
                        // elements would pass the order alone.
                        if !(state.leq_dyn(*r)
                            && r.leq_dyn(state)
                            && v_show(nodes, *other, &id)
                                == v.program.show(&id).unwrap_or_default())
                        {
                            return Err(format!(
                                "{id} differs: node {other} has {}, node {} has {}",
                                v_show(nodes, *other, &id),
                                v.index,
                                v.program.show(&id).unwrap_or_default()
                            ));
                        }
                    }
                    None => {
                        reference.insert(id, (v.index, state));
                    }
                }
            }
        }
        Ok(())
    })
}

fn v_show(nodes: &[NodeView<'_>], index: u32, id: &str) -> String {
    nodes
        .iter()
        .find(|n| n.index == index)
        .and_then(|n| n.program.show(id).ok())
        .unwrap_or_default()
}

/// [`OPERATORS`] with bound `within`: rebuilds the app's program on a fresh replica, joins
/// the node's source variables into it and compares every derived variable the node
/// computes, if the node holds all the sources it depends on.
pub fn operators<A: App>(app: A, within: Duration) -> Invariant {
    Invariant::eventually(OPERATORS, within, move |nodes| {
        for v in nodes {
            operator_check(&app, v).map_err(|e| format!("node {}: {e}", v.index))?;
        }
        Ok(())
    })
}

/// The operator property on one node (see [`operators`]).
pub fn operator_check<A: App>(app: &A, v: &NodeView<'_>) -> Result<(), String> {
    let mut fresh = Program::with_interest(v.id.0, Interest::All);
    app.program(&mut fresh).map_err(|e| e.to_string())?;
    let graph = fresh.graph();
    let by_id: BTreeMap<&str, &rasp_dataflow::program::Decl> =
        graph.iter().map(|d| (d.id.as_str(), d)).collect();
    // The sources a variable depends on, transitively.
    fn sources<'a>(
        id: &'a str,
        by_id: &BTreeMap<&'a str, &'a rasp_dataflow::program::Decl>,
        out: &mut Vec<&'a str>,
    ) {
        match by_id.get(id).and_then(|d| d.op.as_ref()) {
            None => out.push(id),
            Some(op) => {
                for i in &op.inputs {
                    sources(i, by_id, out);
                }
            }
        }
    }
    for d in graph.iter().filter(|d| d.op.is_none()) {
        if v.program.holds(&d.id) {
            let state = v.program.state_dyn(&d.id).map_err(|e| e.to_string())?;
            fresh
                .apply_dyn(&d.id, state)
                .map_err(|e| format!("{}: {e}", d.id))?;
        }
    }
    for d in graph.iter().filter(|d| d.op.is_some()) {
        if !v.program.computes(&d.id) {
            continue;
        }
        let mut src = Vec::new();
        sources(&d.id, &by_id, &mut src);
        if !src.iter().all(|s| v.program.holds(s)) {
            continue;
        }
        // The values, not the lattice states: an operator run incrementally keeps in its
        // output's causal context the dots of inputs added and removed since, which a
        // computation from the final inputs never saw; the property is about values
        // (README, "A program").
        let here = v.program.show(&d.id).map_err(|e| e.to_string())?;
        let want = fresh.show(&d.id).map_err(|e| e.to_string())?;
        if here != want {
            return Err(format!(
                "{} is {} but its operator over the inputs here gives {}",
                d.id,
                v.program.show(&d.id).unwrap_or_default(),
                fresh.show(&d.id).unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The trigger properties: per node ([`TRIGGER_PER_NODE`]) or, with `overall`, in the
/// whole cluster ([`TRIGGER_OVERALL`]).
pub fn triggers(overall: bool) -> Invariant {
    let ledger = Mutex::new(Ledger::default());
    let name = if overall {
        TRIGGER_OVERALL
    } else {
        TRIGGER_PER_NODE
    };
    Invariant::all(name, move |nodes| {
        let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
        for v in nodes {
            l.observe(v.index, v.boot, v.started.0, v.program.trigger_firings());
        }
        l.check(overall)
    })
}

/// The firings seen so far, per node, store lineage and incarnation.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Per node: the last incarnation seen (boot, start time) and its lineage number.
    last: BTreeMap<u32, (u64, u64, u32)>,
    /// (node, lineage, boot, start) → trigger → firings in that incarnation.
    counts: BTreeMap<(u32, u32, u64, u64), BTreeMap<String, u32>>,
}

impl Ledger {
    /// Records what node `index` (incarnation `boot` started at `started` ns) shows: the
    /// triggers that fired in this incarnation, in order. A boot counter that did not grow
    /// in a new incarnation means the store was wiped: a new lineage.
    pub fn observe(&mut self, index: u32, boot: u64, started: u64, firings: &[String]) {
        let lineage = match self.last.get(&index) {
            None => 0,
            Some(&(b, s, l)) if (b, s) == (boot, started) => l,
            Some(&(b, _, l)) if boot > b => l,
            Some(&(_, _, l)) => l + 1,
        };
        self.last.insert(index, (boot, started, lineage));
        let mut per = BTreeMap::new();
        for f in firings {
            *per.entry(f.clone()).or_insert(0u32) += 1;
        }
        self.counts.insert((index, lineage, boot, started), per);
    }

    /// Whether every trigger fired at most once per node and lineage (or, with `overall`,
    /// at most once in total).
    pub fn check(&self, overall: bool) -> Result<(), String> {
        // (node and lineage, or none for the cluster; trigger) → firings.
        type Key<'a> = (Option<(u32, u32)>, &'a str);
        let mut sum: BTreeMap<Key<'_>, u32> = BTreeMap::new();
        for ((node, lineage, _, _), per) in &self.counts {
            let key = (!overall).then_some((*node, *lineage));
            for (t, n) in per {
                *sum.entry((key, t.as_str())).or_insert(0) += n;
            }
        }
        match sum.into_iter().find(|(_, n)| *n > 1) {
            None => Ok(()),
            Some(((Some((node, _)), t), n)) => {
                Err(format!("trigger {t:?} fired {n} times on node {node}"))
            }
            Some(((None, t), n)) => Err(format!("trigger {t:?} fired {n} times in the cluster")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_counts_across_restarts_and_separates_wiped_stores() {
        let t = |s: &str| vec![s.to_string()];
        let mut l = Ledger::default();
        l.observe(0, 1, 0, &[]);
        l.observe(0, 1, 0, &t("party"));
        l.observe(1, 1, 0, &[]);
        assert!(l.check(false).is_ok() && l.check(true).is_ok());
        // Node 0 restarts with its store (boot 2) and fires again: twice on one node.
        let mut again = Ledger {
            last: l.last.clone(),
            counts: l.counts.clone(),
        };
        again.observe(0, 2, 5, &t("party"));
        assert_eq!(
            again.check(false).unwrap_err(),
            "trigger \"party\" fired 2 times on node 0"
        );
        // Node 0's store was wiped (boot 1 again, a later start): a new node, once each, but
        // twice in the cluster.
        l.observe(0, 1, 7, &t("party"));
        assert!(l.check(false).is_ok());
        assert_eq!(
            l.check(true).unwrap_err(),
            "trigger \"party\" fired 2 times in the cluster"
        );
    }
}
