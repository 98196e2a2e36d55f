//! Parity: the demo protocol (ping-pong plus a gossiped grow-only counter, `src/cli/demo.rs`)
//! run in the deterministic simulator and as N real `rasp node` processes on loopback gives
//! the same outcome on every node.
//!
//! Topology in both worlds: node 0 is the seed, every other node joins it (star); the
//! counter spreads by anti-entropy through the seed.

#[path = "net_common/mod.rs"]
mod common;
#[path = "../src/cli/demo.rs"]
mod demo;

use common::{start_node, tempdir, NodeProc};
use demo::{Demo, DemoConfig, DemoOutcome};
use rasp_runtime::sim::{seed_from_env, Sim, SimConfig};
use rasp_runtime::{boot, AtomAddr, AtomId, Contact, NodeId, Time};
use std::time::Duration;

const NODES: u32 = 4;

fn demo_cfg() -> DemoConfig {
    DemoConfig {
        nodes: NODES,
        increments: 20,
        pings: 3,
    }
}

/// Runs the demo in the simulator; returns each node's outcome (node 0 first).
fn simulate(cfg: &DemoConfig) -> Vec<DemoOutcome> {
    let seed = seed_from_env(0x5eed);
    let mut sim = Sim::new(SimConfig::seeded(seed)).unwrap();
    let mut ids: Vec<NodeId> = Vec::new();
    for i in 0..cfg.nodes {
        let contacts = if i == 0 {
            Vec::new()
        } else {
            vec![Contact::bare(ids[0])]
        };
        let c = cfg.clone();
        ids.push(sim.add_node(boot(move |b| {
            b.spawn(Demo::new(c.clone(), contacts.clone()));
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

fn demo_args(cfg: &DemoConfig) -> Vec<String> {
    vec![
        "--demo-nodes".into(),
        cfg.nodes.to_string(),
        "--demo-increments".into(),
        cfg.increments.to_string(),
        "--demo-pings".into(),
        cfg.pings.to_string(),
    ]
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
    let k = cfg.increments;
    for (i, o) in simulated.iter().enumerate() {
        assert_eq!(o.entries, NODES as usize);
        assert_eq!(o.total, NODES as u64 * k);
        assert_eq!(o.per_node, vec![k; NODES as usize]);
        let peers = if i == 0 { NODES as usize - 1 } else { 1 };
        assert_eq!(o.ping_rounds, vec![cfg.pings; peers]);
    }

    // The same atoms as real processes (killed on drop if anything fails).
    let base = tempdir("parity");
    let args = demo_args(&cfg);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let seed = start_node(&base.join("n0"), &args);
    let mut procs = vec![seed];
    for i in 1..NODES {
        let mut a = args.clone();
        let join = procs[0].addr.clone();
        a.extend(["--join", join.as_str()]);
        procs.push(start_node(&base.join(format!("n{i}")), &a));
    }
    let real: Vec<DemoOutcome> = procs.iter_mut().map(outcome_of).collect();
    assert_eq!(
        real, simulated,
        "network outcomes (left) differ from the simulator's (right)"
    );

    for p in &mut procs {
        p.proc.signal("TERM");
    }
    for p in &mut procs {
        let st = p
            .proc
            .wait_exit(Duration::from_secs(10))
            .expect("exit after SIGTERM");
        assert_eq!(st.code(), Some(0));
    }
}
