//! A restarted node finds its cluster again through the contacts it remembered in its
//! durable store (`rasp_membership::atom` module docs, "Remembered contacts"), in every mode,
//! even when its boot gives it no seeds: the first node of a cluster, restarted exactly as it
//! was first started.
//!
//! The simulator keeps a crashed node's store and loses its volatile state, as a real crash
//! does. A failing run prints its seed and the command to reproduce it.
//!
//! What the simulator cannot show: addresses. A simulated node is reached by its id, so the
//! survivors can still reach a restarted node through stale entries in their views (HyParView
//! passive views, the full membership's dead members), and it does come back eventually even
//! without a memory of its own: 5.6 s to more than 60 s after its restart over seeds 1–5 with
//! 16 nodes. A real node restarted with `--listen .../tcp/0` has a new port and nobody can
//! reach it: only its own memory brings it back (`tests/net_restart.rs` shows it with real
//! processes). So the HyParView test here bounds the time to rejoin at [`REJOIN_BOUND`], far
//! below what the survivors' stale views give and met only when the node joins through its
//! remembered contacts at boot; the full and client-server tests check the same path works in
//! those modes.

use rasp_membership::atom::CONTACTS_KEY;
use rasp_membership::overlay::Overlay;
use rasp_membership::{Config, MembershipAtom, Mode, Role};
use rasp_runtime::sim::{seed_from_env, LinkConfig, NetConfig, Sim, SimConfig, WireMode};
use rasp_runtime::{boot, AtomAddr, AtomId, Contact, NodeId};
use std::time::Duration;

const MEMBERSHIP: AtomId = AtomId(0);
/// How long the restarted first node may take to be back in a connected overlay: a
/// connection and a join round trip (at most 4 × 50 ms here) plus the neighbour handshake,
/// with margin; well under one HyParView promotion period (5 s).
const REJOIN_BOUND: Duration = Duration::from_secs(2);

fn sim(seed: u64) -> Sim {
    let cfg = SimConfig {
        seed: seed_from_env(seed),
        wire: WireMode::Typed,
        measure_bytes: false,
        net: NetConfig {
            default: LinkConfig {
                latency: rasp_runtime::sim::Latency::Uniform {
                    min: Duration::from_millis(10),
                    max: Duration::from_millis(50),
                },
                ..LinkConfig::default()
            },
            links: Vec::new(),
        },
        ..SimConfig::default()
    };
    Sim::new(cfg).expect("valid sim config")
}

fn config(mode: Mode, node: NodeId) -> Config {
    Config {
        mode,
        // Client-server: nodes 0 and 1 are servers, the others clients.
        role: if node.0 < 2 {
            Role::Server
        } else {
            Role::Client
        },
        ..Config::default()
    }
}

/// Node 0 boots with no seeds (the first node); every other node joins through node 0. The
/// boot closure runs again, unchanged, when a node restarts.
fn cluster(sim: &mut Sim, mode: Mode, nodes: u64) {
    for _ in 0..nodes {
        sim.add_node(boot(move |b| {
            let node = b.node();
            let seeds = if node.0 == 0 {
                Vec::new()
            } else {
                vec![Contact::bare(NodeId(0))]
            };
            b.spawn(MembershipAtom::new(config(mode, node), seeds).expect("valid config"));
        }));
        sim.run_for(Duration::from_millis(100));
    }
}

fn neighbours(sim: &Sim, n: NodeId) -> Vec<NodeId> {
    sim.with_atom::<MembershipAtom, _>(AtomAddr::new(n, MEMBERSHIP), |a| a.neighbours())
        .unwrap_or_default()
}

fn overlay(sim: &Sim) -> Overlay<u64> {
    let mut o = Overlay::new();
    for n in (0..sim.node_count() as u64)
        .map(NodeId)
        .filter(|n| sim.is_up(*n))
    {
        o.insert(n.0, neighbours(sim, n).into_iter().map(|x| x.0).collect());
    }
    o
}

/// Whether node 0 is back: it has a neighbour, a node other than it lists it, and the
/// overlay of all nodes is connected with nobody isolated.
fn rejoined(sim: &Sim) -> bool {
    let r = overlay(sim).report();
    let listed =
        (1..sim.node_count() as u64).any(|i| neighbours(sim, NodeId(i)).contains(&NodeId(0)));
    !neighbours(sim, NodeId(0)).is_empty() && listed && r.connected && r.isolated.is_empty()
}

fn first_node_restarts_and_rejoins(mode: Mode, nodes: u64, seed: u64) -> Duration {
    let mut sim = sim(seed);
    cluster(&mut sim, mode, nodes);
    sim.run_for(Duration::from_secs(10));
    let r = overlay(&sim).report();
    assert!(
        r.connected && r.isolated.is_empty(),
        "{mode}: formed: {r:?}"
    );
    assert!(
        sim.store(NodeId(0)).get(CONTACTS_KEY).is_some(),
        "{mode}: node 0 remembered its contacts"
    );

    sim.crash(NodeId(0));
    // Long enough for every survivor to detect the crash and drop node 0 from its views.
    sim.run_for(Duration::from_secs(20));
    for i in 1..nodes {
        assert!(
            !neighbours(&sim, NodeId(i)).contains(&NodeId(0)),
            "{mode}: node {i} still lists the crashed node 0"
        );
    }

    sim.restart(NodeId(0));
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while !rejoined(&sim) {
        assert!(
            waited < REJOIN_BOUND,
            "{mode}: the restarted first node is not back after {waited:?}: node 0 sees {:?}, \
             overlay {:?}",
            neighbours(&sim, NodeId(0)),
            overlay(&sim).report()
        );
        sim.run_for(step);
        waited += step;
    }
    waited
}

#[test]
fn restarted_first_node_rejoins_hyparview() {
    let t = first_node_restarts_and_rejoins(Mode::HyParView, 16, 31);
    println!("hyparview: restarted first node back in {t:?}");
}

#[test]
fn restarted_first_node_rejoins_full() {
    let t = first_node_restarts_and_rejoins(Mode::Full, 4, 32);
    println!("full: restarted first node back in {t:?}");
}

#[test]
fn restarted_first_node_rejoins_client_server() {
    let t = first_node_restarts_and_rejoins(Mode::ClientServer, 4, 33);
    println!("client-server: restarted first node back in {t:?}");
}
