//! Functions that travel with the graph: only node 0 holds the WebAssembly module of a
//! `filter` and a `map`; it declares `long = filter(words, long_word)` and
//! `loud = map(long, shout)` at run time, and every node computes `loud` from the module
//! shipped to it. A module whose bytes do not hash to its name is refused.
//!
//! A failing run prints its seed and the command to reproduce it (`RASP_SEED=<n>`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rasp_dataflow::causal::DSet;
use rasp_dataflow::replica::{HasReplica, Replica, ReplicaConfig};
use rasp_dataflow::update::add;
use rasp_dataflow::{Program, Var};
use rasp_lattice::{ORSet, Query};
use rasp_membership::{Config as MConfig, MembershipAtom};
use rasp_runtime::sim::{seed_from_env, SeedGuard, Sim, SimConfig};
use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Contact, Ctx, Dest, Message, NodeId, Origin};
use rasp_wasm::build::{build_guest, target_installed, TARGET};
use rasp_wasm::func::PureModule;
use rasp_wasm::Limits;
use serde::{Deserialize, Serialize};

const APP: AtomId = AtomId(1);

fn funcs() -> Option<Arc<PureModule>> {
    if !target_installed() {
        eprintln!("the {TARGET} target is not installed: the shipped-function test is skipped");
        return None;
    }
    let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = build_guest(&ws, "rasp-guest-funcs", &ws.join("target/guest"))
        .unwrap_or_else(|e| panic!("{e}"));
    Some(PureModule::new(&std::fs::read(file).unwrap(), Limits::default()).unwrap())
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Do {
    Add(String),
    /// Declares the two operators here (node 0 only: the one holding the module).
    Declare,
}
impl Message for Do {
    const KIND: &'static str = "test/wasm-do";
}

struct App {
    module: Option<Arc<PureModule>>,
    replica: Option<Replica>,
}

impl HasReplica for App {
    fn replica(&mut self) -> &mut Replica {
        self.replica.as_mut().unwrap()
    }
}

impl Atom for App {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.register(rasp_dataflow::replica::SERVICE).unwrap();
        let node = ctx.node();
        let mut p = Program::new(node.0);
        p.declare::<ORSet<String>>("words").unwrap();
        // What every node's code knows: the element types, not the functions.
        p.accept_wasm_filter::<String, ORSet<String>>();
        p.accept_wasm_map::<String, String, DSet<String>>();
        self.replica = Some(Replica::new(node, ReplicaConfig::default(), p));
        Replica::install(self, ctx);
        ctx.on::<Do>(|a, ctx, _: &Origin, op| {
            let actor = ctx.node().0;
            let module = a.module.clone();
            let p = a.replica().program_mut();
            match op {
                Do::Add(w) => {
                    p.update(&Var::<ORSet<String>>::named("words"), add(w), actor)
                        .unwrap();
                }
                Do::Declare => {
                    let m = module.expect("node 0 holds the module");
                    let words = Var::<ORSet<String>>::named("words");
                    let long = p
                        .filter_wasm::<String, ORSet<String>>("long", &words, &m, "long_word")
                        .unwrap();
                    p.map_wasm::<String, String, DSet<String>>("loud", &long, &m, "shout")
                        .unwrap();
                }
            }
        });
    }
}

fn at(node: u64) -> Dest {
    Dest::Atom(AtomAddr::new(NodeId(node), APP))
}

#[test]
fn a_function_only_one_node_holds_runs_on_every_node() {
    let Some(module) = funcs() else { return };
    let seed = seed_from_env(33);
    let _guard = SeedGuard::new(seed);
    let mut sim = Sim::new(SimConfig::seeded(seed)).unwrap();
    for i in 0..4u64 {
        let module = (i == 0).then(|| module.clone());
        sim.add_node(boot(move |b| {
            let seeds = if b.node().0 == 0 {
                vec![]
            } else {
                vec![Contact::bare(NodeId(0))]
            };
            b.spawn(MembershipAtom::new(MConfig::default(), seeds).unwrap());
            b.spawn(App {
                module: module.clone(),
                replica: None,
            });
        }));
    }
    sim.run_for(Duration::from_secs(2));
    let words = ["ant", "zebra", "giraffe", "cat", "elephant", "owl"];
    for (i, w) in words.iter().enumerate() {
        sim.inject(at(i as u64 % 4), Do::Add(w.to_string()));
    }
    sim.run_for(Duration::from_secs(1));
    sim.inject(at(0), Do::Declare);
    sim.run_for(Duration::from_secs(5));
    let want: BTreeSet<String> = ["ZEBRA", "GIRAFFE", "ELEPHANT"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for n in 0..4u64 {
        let (computes, loud, modules) = sim
            .with_atom::<App, _>(AtomAddr::new(NodeId(n), APP), |a| {
                let p = a.replica.as_ref().unwrap().program();
                let loud = p
                    .state(&Var::<DSet<String>>::named("loud"))
                    .map(|s| s.query())
                    .unwrap_or_default();
                (p.computes("loud"), loud, p.modules())
            })
            .unwrap();
        assert_eq!(
            modules,
            vec![module.hash_hex()],
            "node {n} holds the module; {}",
            sim.repro()
        );
        assert!(computes, "node {n} computes loud; {}", sim.repro());
        assert_eq!(loud, want, "node {n}; {}", sim.repro());
    }
    assert!(sim.metrics().counter("dataflow_modules_received", "") >= 3);
    assert_eq!(sim.metrics().counter("dataflow_modules_refused", ""), 0);
}

#[test]
fn a_module_that_does_not_match_its_name_is_refused() {
    let Some(module) = funcs() else { return };
    let mut p = Program::new(1);
    let wrong = "0".repeat(64);
    let err = p.add_module(&wrong, &module.bytes()).unwrap_err();
    assert!(err.to_string().contains("hash to"), "{err}");
    let err = p
        .add_module(&rasp_wasm::func::sha256_hex(b"junk"), b"junk")
        .unwrap_err();
    assert!(err.to_string().contains("WebAssembly"), "{err}");
    assert!(p.add_module(&module.hash_hex(), &module.bytes()).unwrap());
    assert_eq!(p.modules(), vec![module.hash_hex()]);
    let mut q = Program::new(2);
    let words = q.declare::<ORSet<String>>("words").unwrap();
    let err = q
        .map_wasm::<String, String, ORSet<String>>("m", &words, &module, "no_such_export")
        .unwrap_err();
    assert!(err.to_string().contains("no_such_export"), "{err}");
}
