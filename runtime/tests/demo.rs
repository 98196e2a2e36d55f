//! The demo protocol in the simulator: every node ends with total == N × K and N − 1 pongs,
//! on a clean network and on a faulty one with a crash and restart.

use rasp_runtime::demo::{decode_outcome, demo_boot, Demo, DemoConfig, DemoOutcome, OUTCOME_KEY};
use rasp_runtime::sim::{seed_from_env, Latency, LinkConfig, NetConfig, Sim, SimConfig};
use rasp_runtime::{AtomAddr, AtomId, Contact, NodeId, Time};
use std::time::Duration;

fn cfg(nodes: u32, increments: u64, me: u32) -> DemoConfig {
    DemoConfig {
        nodes,
        increments,
        // Star join: everyone joins node 0; the rest is learned through gossip.
        join: if me == 0 {
            vec![]
        } else {
            vec![Contact::bare(NodeId(0))]
        },
        ..DemoConfig::default()
    }
}

fn expected(n: u32, k: u64) -> DemoOutcome {
    DemoOutcome {
        entries: n,
        total: n as u64 * k,
        pongs: n - 1,
    }
}

fn check_all(sim: &Sim, n: u32, k: u64) -> Vec<Time> {
    (0..n)
        .map(|i| {
            let node = NodeId(i as u64);
            let stored =
                decode_outcome(&sim.store(node).get(OUTCOME_KEY).expect("outcome stored")).unwrap();
            assert_eq!(stored, expected(n, k), "node {i} (stored)");
            let (at, o) = sim
                .with_atom::<Demo, _>(AtomAddr::new(node, AtomId(0)), |d| d.done.clone())
                .unwrap()
                .expect("done");
            assert_eq!(o, expected(n, k), "node {i}");
            at
        })
        .collect()
}

#[test]
fn demo_converges_on_a_clean_network() {
    let (n, k) = (10u32, 20u64);
    let mut sim = Sim::new(SimConfig::seeded(seed_from_env(5))).unwrap();
    for i in 0..n {
        sim.add_node(demo_boot(cfg(n, k, i)));
    }
    sim.run_until(Time::from_secs(3));
    let done = check_all(&sim, n, k);
    // K increments every 10 ms take 200 ms; gossip rounds of 50 ms add a few more.
    assert!(done.iter().all(|t| *t < Time::from_millis(600)), "{done:?}");
    let m = sim.metrics();
    assert_eq!(m.counter("demo_pongs", ""), (n * (n - 1)) as u64);
    assert!(m.kind("demo/gossip").bytes_sent > 0);
}

#[test]
fn demo_converges_despite_loss_duplication_and_a_crash() {
    let (n, k) = (8u32, 30u64);
    let link = LinkConfig {
        latency: Latency::Exponential {
            min: Duration::from_millis(1),
            mean: Duration::from_millis(4),
        },
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.1,
        reorder_delay: Duration::from_millis(30),
    };
    let mut sim = Sim::new(SimConfig {
        net: NetConfig {
            default: link,
            links: vec![],
        },
        failure_detection: Duration::from_millis(500),
        ..SimConfig::seeded(seed_from_env(6))
    })
    .unwrap();
    for i in 0..n {
        sim.add_node(demo_boot(cfg(n, k, i)));
    }
    sim.run_until(Time::from_millis(150)); // node 3 has counted ~15
    sim.crash(NodeId(3));
    sim.run_until(Time::from_millis(900));
    sim.restart(NodeId(3)); // resumes from its stored count, re-learns peers
    sim.run_until(Time::from_secs(10));
    check_all(&sim, n, k);
    let m = sim.metrics();
    assert!(m.counter("sim.lost", "") > 0 && m.counter("sim.duplicated", "") > 0);
    // The restarted node pinged everyone again: pongs exceed n(n-1) by up to n-1.
    let pongs = m.counter("demo_pongs", "");
    assert!(
        pongs >= (n * (n - 1)) as u64 && pongs <= (n * (n - 1) + n - 1) as u64,
        "{pongs}"
    );
}
