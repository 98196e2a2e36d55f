//! Parity: the demo protocol, `rasp_runtime::demo` (ping-pong plus a gossiped grow-only
//! counter), run in the deterministic simulator and as N real `rasp node --demo-nodes N`
//! processes on loopback, with the same [`DemoConfig`], gives the same [`DemoOutcome`] on
//! every node of both worlds.
//!
//! Topology in both worlds: node 0 is the seed, every other node joins it; the demo learns
//! the other nodes from gossiped contacts. On the network every node also runs its
//! membership atom (HyParView, the default): the demo must not care.

#[path = "net_common/mod.rs"]
mod common;

use common::{spawn_node, start_node, tempdir, NodeProc};
use rasp_runtime::demo::{demo_boot, Demo, DemoConfig, DemoOutcome};
use rasp_runtime::sim::{seed_from_env, Sim, SimConfig};
use rasp_runtime::{AtomAddr, AtomId, Contact, NodeId, Time};
use std::time::{Duration, Instant};

const NODES: u32 = 4;

/// The config shared by both worlds (`rasp node` builds it from the same defaults plus
/// `--demo-nodes` and `--demo-increments`).
fn demo_cfg() -> DemoConfig {
    DemoConfig {
        nodes: NODES,
        increments: 20,
        ..DemoConfig::default()
    }
}

/// Runs the demo in the simulator; returns each node's outcome (node 0 first).
fn simulate(cfg: &DemoConfig) -> Vec<DemoOutcome> {
    let seed = seed_from_env(0x5eed);
    let mut sim = Sim::new(SimConfig::seeded(seed)).unwrap();
    let mut ids: Vec<NodeId> = Vec::new();
    for i in 0..cfg.nodes {
        let join = if i == 0 {
            Vec::new()
        } else {
            vec![Contact::bare(ids[0])]
        };
        ids.push(sim.add_node(demo_boot(DemoConfig {
            join,
            ..cfg.clone()
        })));
    }
    sim.run_until(Time::from_secs(30));
    ids.iter()
        .map(|&n| {
            sim.with_atom::<Demo, _>(AtomAddr::new(n, AtomId(0)), |d| d.done.clone())
                .flatten()
                .unwrap_or_else(|| panic!("node {n:?} not done in the simulator; {}", sim.repro()))
                .1
        })
        .collect()
}

fn outcome_of(n: &mut NodeProc) -> DemoOutcome {
    match n.proc.wait_line("demo=", Duration::from_secs(30)) {
        Some(json) => serde_json::from_str(&json).unwrap(),
        None => panic!(
            "node {} printed no outcome; stderr:\n{}",
            n.node_id,
            n.proc.stderr_text()
        ),
    }
}

#[test]
fn demo_outcome_is_the_same_in_simulation_and_on_the_network() {
    let cfg = demo_cfg();
    let simulated = simulate(&cfg);

    // What the protocol promises, checked on the simulated run itself.
    let expected = DemoOutcome {
        entries: NODES,
        total: u64::from(NODES) * cfg.increments,
        pongs: NODES - 1,
    };
    assert_eq!(simulated, vec![expected; NODES as usize]);

    // The same atom as real processes (killed on drop if anything fails).
    let t0 = Instant::now();
    let mut procs = start_cluster(&cfg, "parity", |_| Vec::new());
    let real: Vec<DemoOutcome> = procs.iter_mut().map(outcome_of).collect();
    assert_eq!(
        real, simulated,
        "network outcomes (left) differ from the simulator's (right)"
    );
    eprintln!("{NODES} processes done in {:?}", t0.elapsed());

    stop_all(&mut procs);
}

/// Starts `NODES` demo nodes, node 0 the seed; `extra(i)` adds node `i`'s own flags.
fn start_cluster(
    cfg: &DemoConfig,
    name: &str,
    extra: impl Fn(u32) -> Vec<String>,
) -> Vec<NodeProc> {
    let base = tempdir(name);
    let args = |i: u32| {
        let mut a = vec![
            "--demo-nodes".to_string(),
            cfg.nodes.to_string(),
            "--demo-increments".to_string(),
            cfg.increments.to_string(),
        ];
        a.extend(extra(i));
        a
    };
    let a0 = args(0);
    let a0: Vec<&str> = a0.iter().map(String::as_str).collect();
    let seed = start_node(&base.join("n0"), &a0);
    let join = seed.addr.clone();
    let spawned: Vec<_> = (1..NODES)
        .map(|i| {
            let mut a = args(i);
            a.extend(["--join".to_string(), join.clone()]);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            spawn_node(&base.join(format!("n{i}")), &a)
        })
        .collect();
    let mut procs = vec![seed];
    procs.extend(spawned.into_iter().map(common::read_start));
    procs
}

/// SIGTERM to every node; each exits 0.
fn stop_all(procs: &mut [NodeProc]) {
    for p in procs.iter_mut() {
        p.proc.signal("TERM");
    }
    for p in procs.iter_mut() {
        let st = p
            .proc
            .wait_exit(Duration::from_secs(10))
            .expect("exit after SIGTERM");
        assert_eq!(st.code(), Some(0));
    }
}

/// The demo guest (`rasp-guest-demo`) built for wasm32, or `None` when the toolchain lacks
/// the target (said on stderr).
fn demo_wasm() -> Option<std::path::PathBuf> {
    use rasp_wasm::build::{build_guest, target_installed, TARGET};
    if !target_installed() {
        eprintln!("the {TARGET} target is not installed: the WebAssembly parity is skipped");
        return None;
    }
    let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    Some(
        build_guest(ws, "rasp-guest-demo", &ws.join("target/guest"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// The demo as a WebAssembly module: the same outcome in the simulator and as real
/// processes, and on a cluster that mixes native and WebAssembly demo atoms.
#[test]
fn wasm_demo_outcome_is_the_same_in_simulation_and_on_the_network() {
    let Some(path) = demo_wasm() else { return };
    let cfg = demo_cfg();
    let module = rasp_wasm::WasmModule::from_file(&path, rasp_wasm::Limits::default()).unwrap();
    let seed = seed_from_env(0x5eed);
    let mut sim = Sim::new(SimConfig::seeded(seed)).unwrap();
    let mut ids: Vec<NodeId> = Vec::new();
    for i in 0..cfg.nodes {
        let join = if i == 0 {
            Vec::new()
        } else {
            vec![Contact::bare(ids[0])]
        };
        let arg = rmp_serde::to_vec(&DemoConfig {
            join,
            ..cfg.clone()
        })
        .unwrap();
        ids.push(sim.add_node(rasp_wasm::wasm_boot(module.clone(), arg)));
    }
    sim.run_until(Time::from_secs(30));
    let simulated: Vec<DemoOutcome> = ids
        .iter()
        .map(|&n| {
            let b = sim
                .store(n)
                .get(rasp_runtime::demo::OUTCOME_KEY)
                .unwrap_or_else(|| panic!("node {n:?} not done in the simulator; {}", sim.repro()));
            rasp_runtime::demo::decode_outcome(&b).unwrap()
        })
        .collect();
    let expected = DemoOutcome {
        entries: NODES,
        total: u64::from(NODES) * cfg.increments,
        pongs: NODES - 1,
    };
    assert_eq!(simulated, vec![expected.clone(); NODES as usize]);

    let wasm = path.display().to_string();
    let mut procs = start_cluster(&cfg, "wasm-parity", |_| {
        vec!["--demo-wasm".into(), wasm.clone()]
    });
    let real: Vec<DemoOutcome> = procs.iter_mut().map(outcome_of).collect();
    assert_eq!(
        real, simulated,
        "WebAssembly nodes (left) against the simulator (right)"
    );
    stop_all(&mut procs);

    // Odd nodes run the module, even ones the native atom: they speak the same messages.
    let mut procs = start_cluster(&cfg, "wasm-mixed", |i| {
        if i % 2 == 1 {
            vec!["--demo-wasm".into(), wasm.clone()]
        } else {
            Vec::new()
        }
    });
    let real: Vec<DemoOutcome> = procs.iter_mut().map(outcome_of).collect();
    assert_eq!(
        real,
        vec![expected; NODES as usize],
        "mixed native and WebAssembly nodes"
    );
    stop_all(&mut procs);
}
