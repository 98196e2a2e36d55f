//! A collaborative to-do list as a rasp [`App`]: the program, who holds what, what each node
//! does, and an invariant.
//!
//! ```text
//!  todo/items ─┬─ filter(urgent: starts with '!') ── todo/urgent
//!   (ORSet)    ├─ map(shout: upper case) ─────────── todo/shouted
//!              └─ fold(count) ────────────────────── todo/open
//!  todo/done ──── fold(count) ────────────────────── todo/done-count ── trigger(≥ 3): add "!plan the party"
//! ```
//!
//! The scenario (no seed in it: the same final values in the simulator and across real
//! processes): node 0 adds three items, node 1 two, node 2 one; node 1 ticks "milk" off as
//! soon as it sees it, node 2 "bread" and "eggs"; once three items are done, the trigger adds
//! "!plan the party" on exactly one server.

use rasp::app::{App, Invariant, NodeCtx, NodeMeta};
use rasp::dataflow::fold::{Count, Folded};
use rasp::dataflow::update::{add, remove};
use rasp::dataflow::{causal::DSet, Error, Func, Interest, Program, Var};
use rasp::lattice::{ORSet, Threshold};
use rasp::membership::Role;
use std::collections::BTreeSet;

/// The to-do items (open).
pub fn items() -> Var<ORSet<String>> {
    Var::named("todo/items")
}
/// The items ticked off.
pub fn done() -> Var<ORSet<String>> {
    Var::named("todo/done")
}
/// How many items are done.
pub fn done_count() -> Var<Folded<String, Count>> {
    Var::named("todo/done-count")
}
/// The urgent items (those starting with `!`).
pub fn urgent() -> Var<DSet<String>> {
    Var::named("todo/urgent")
}

/// The app's own flags.
#[derive(clap::Args, Clone, Debug)]
pub struct TodoArgs {
    /// Done items after which the party is planned
    #[arg(long, default_value_t = 3)]
    pub party_after: i64,
}

/// The to-do list.
#[derive(Clone, Debug)]
pub struct Todo {
    /// See [`TodoArgs::party_after`].
    pub party_after: i64,
}

impl Default for Todo {
    fn default() -> Self {
        Todo { party_after: 3 }
    }
}

/// What node `index` adds at start, and what it ticks off once it sees it.
fn scenario(index: u32) -> (&'static [&'static str], &'static [&'static str]) {
    match index {
        0 => (&["milk", "!call mum", "bread"], &[]),
        1 => (&["eggs", "!pay rent"], &["milk"]),
        2 => (&["tea"], &["bread", "eggs"]),
        _ => (&[], &[]),
    }
}

impl App for Todo {
    type Args = TodoArgs;

    fn configure(&mut self, args: &TodoArgs) -> Result<(), String> {
        if args.party_after < 1 {
            return Err("--party-after must be at least 1".into());
        }
        self.party_after = args.party_after;
        Ok(())
    }

    fn program(&self, p: &mut Program) -> Result<(), Error> {
        let items = p.declare::<ORSet<String>>(items().id())?;
        let done = p.declare::<ORSet<String>>(done().id())?;
        p.filter(
            urgent().id(),
            &items,
            Func::new("urgent", |s: &String| s.starts_with('!')),
        )?;
        p.map(
            "todo/shouted",
            &items,
            Func::new("shout", |s: &String| s.to_uppercase()),
        )?;
        p.fold::<String, _, Count>("todo/open", &items)?;
        p.fold::<String, _, Count>(done_count().id(), &done)?;
        Ok(())
    }

    fn interest(&self, node: &NodeMeta) -> Interest {
        match node.role {
            Role::Server => Interest::All,
            // Clients hold what they read and write.
            Role::Client => Interest::Only(
                [items().id(), done().id(), urgent().id()]
                    .map(String::from)
                    .into(),
            ),
        }
    }

    fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
        let Some(index) = node.index() else {
            return; // a node without --index only replicates
        };
        let (adds, ticks) = scenario(index);
        // Only on the node's first start: after a restart the items come back from the store,
        // and adding them again would bring back those ticked off since.
        if node.boot() == 1 {
            for item in adds {
                node.update(&items(), add(item.to_string()))
                    .expect("declared in program");
            }
        }
        let ticks: Vec<String> = ticks.iter().map(|s| s.to_string()).collect();
        if !ticks.is_empty() {
            // Tick an item off once it is seen: remove it from the list, add it to done.
            let sub = node.program_mut().subscribe(&items(), move |p, _| {
                let Ok(now) = p.query(&items()) else { return };
                let actor = p.actor();
                for t in ticks.iter().filter(|t| now.contains(*t)) {
                    let _ = p.update(&items(), remove(t.clone()), actor);
                    let _ = p.update(&done(), add(t.clone()), actor);
                }
            });
            sub.expect("items is held on every node");
        }
        if node.role() == Role::Server {
            let party = node.trigger_once(
                "party",
                &done_count(),
                // A count can go down in general; here items are only ever added to done,
                // so the count only grows and the threshold stays true once it holds.
                Threshold::Value(self.party_after),
                |p, _| {
                    let actor = p.actor();
                    let _ = p.update(&items(), add("!plan the party".to_string()), actor);
                },
            );
            party.expect("done-count is held on servers");
        }
    }

    /// `add ITEM` adds an item; `done ITEM` ticks one off (removes it from the list and adds
    /// it to done), as a user of the list does. A branch of the studio can inject them
    /// (`todo studio`, then "inject an update"): `add milk` once milk is done breaks the
    /// invariant, since the scenario adds each item only once.
    fn check_op(&self, op: &str) -> Result<(), String> {
        match op.trim().split_once(' ') {
            Some(("add" | "done", item)) if !item.trim().is_empty() => Ok(()),
            _ => Err(format!(
                "unknown operation {op:?}: the to-do list takes `add ITEM` and `done ITEM`, \
                 e.g. `add milk`"
            )),
        }
    }

    fn on_work(&mut self, node: &mut NodeCtx<'_, Self>, op: &str) {
        let Some((verb, item)) = op.trim().split_once(' ') else {
            return;
        };
        let item = item.trim().to_string();
        let done_too = verb == "done";
        if verb != "add" && !done_too {
            return;
        }
        let p = node.program_mut();
        let actor = p.actor();
        let r = if done_too {
            p.update(&items(), remove(item.clone()), actor)
                .and_then(|_| p.update(&done(), add(item), actor))
        } else {
            p.update(&items(), add(item), actor)
        };
        if let Err(e) = r {
            tracing::warn!(op, error = %e, "operation not performed here");
        }
    }

    fn invariants(&self) -> Vec<Invariant> {
        vec![Invariant::each("done items leave the list", |n| {
            let (Ok(items), Ok(done)) = (n.program.query(&items()), n.program.query(&done()))
            else {
                return Ok(());
            };
            // An item ticked off here is not open here any more (the tick removes it; an
            // item is added only once, so it never comes back).
            let both: BTreeSet<_> = items.intersection(&done).collect();
            if both.is_empty() {
                Ok(())
            } else {
                Err(format!("done but still open: {both:?}"))
            }
        })]
    }
}
