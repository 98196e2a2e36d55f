//! The membership scale benchmark (a program, not a test; README, "Measuring"): forms a large
//! HyParView overlay and broadcasts over it with Plumtree, then prints simulated and wall time,
//! the overlay checks, the broadcast figures (reliability, RMR, LDH) and the process's peak
//! memory (`VmHWM` from `/proc/self/status`).
//!
//! ```text
//! cargo run --release -p rasp-membership --example overlay_scale -- --nodes 1000000
//! cargo run --release -p rasp-membership --example overlay_scale -- --nodes 100000 --harness lean
//! ```
//!
//! Options: `--nodes N` (default 100,000), `--seed S` (default 1), `--harness sim|lean`
//! (default `sim`), `--join-rate R` joins per simulated second (default 20,000), `--settle S`
//! simulated seconds after the last join (default 20).
//!
//! - `sim` runs the real [`MembershipAtom`] on every node in the runtime's deterministic
//!   simulator (typed wire, latency uniform in 10–50 ms, connections, failure detection): the
//!   same code as on the network.
//! - `lean` drives the bare [`PeerService`] cores with the crate's test harness
//!   ([`rasp_membership::testkit`]): no atoms, hosts or connections, a few times cheaper per
//!   node; for comparison.
//!
//! Node `i` joins through nodes `0..min(i, 3)`, one join every `1 / join-rate` s.

use rasp_membership::atom::Broadcast;
use rasp_membership::overlay::{Overlay, Report};
use rasp_membership::testkit::{self, PAYLOAD};
use rasp_membership::{Config, MembershipAtom, PeerService, ServiceEvent, SERVICE};
use rasp_runtime::sim::{Latency, LinkConfig, NetConfig, Sim, SimConfig, WireMode};
use rasp_runtime::{boot, AtomAddr, AtomId, Contact, Dest, NodeId};
use std::time::{Duration, Instant};

/// The process's peak resident memory in MiB (Linux).
fn peak_rss_mb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}

struct Args {
    nodes: u64,
    seed: u64,
    lean: bool,
    join_rate: u64,
    settle: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: overlay_scale [--nodes N] [--seed S] [--harness sim|lean] [--join-rate R] [--settle SECS]"
    );
    std::process::exit(2)
}

fn args() -> Args {
    let mut a = Args {
        nodes: 100_000,
        seed: 1,
        lean: false,
        join_rate: 20_000,
        settle: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--nodes" => a.nodes = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => a.seed = value().parse().unwrap_or_else(|_| usage()),
            "--join-rate" => a.join_rate = value().parse().unwrap_or_else(|_| usage()),
            "--settle" => a.settle = value().parse().unwrap_or_else(|_| usage()),
            "--harness" => match value().as_str() {
                "sim" => a.lean = false,
                "lean" => a.lean = true,
                _ => usage(),
            },
            _ => usage(),
        }
    }
    if a.nodes < 2 || a.join_rate == 0 {
        usage();
    }
    a
}

fn print_overlay(a: &Args, simulated: Duration, wall: Duration, r: &Report<u64>) {
    println!(
        "{} nodes ({}): formed in {:.1} s simulated, {:.1} s wall; connected {}, components {}, isolated {}, asymmetric {}, degrees {:?}",
        a.nodes,
        if a.lean { "lean harness" } else { "runtime simulator" },
        simulated.as_secs_f64(),
        wall.as_secs_f64(),
        r.connected,
        r.components.len(),
        r.isolated.len(),
        r.asymmetric.len(),
        r.degree_histogram
    );
}

fn print_broadcast(k: u32, reached: u64, live: u64, payloads: u64, ldh: u32) {
    println!(
        "broadcast {k}: reliability {:.6}, RMR {:.3}, LDH {ldh}",
        reached as f64 / (live - 1) as f64,
        payloads as f64 / reached.max(1) as f64 - 1.0
    );
}

/// The membership atom on every node, in the runtime simulator.
fn run_sim(a: &Args, wall: Instant) {
    let cfg = SimConfig {
        seed: a.seed,
        wire: WireMode::Typed,
        measure_bytes: false,
        net: NetConfig {
            default: LinkConfig {
                latency: Latency::Uniform {
                    min: Duration::from_millis(10),
                    max: Duration::from_millis(50),
                },
                ..LinkConfig::default()
            },
            links: Vec::new(),
        },
        ..SimConfig::default()
    };
    let mut sim = Sim::new(cfg).expect("valid simulator config");
    let node_boot = boot(|b| {
        let seeds: Vec<Contact> = (0..b.node().0.min(3))
            .map(|i| Contact::bare(NodeId(i)))
            .collect();
        b.spawn(MembershipAtom::new(Config::default(), seeds).expect("valid config"));
    });
    let gap = Duration::from_nanos(1_000_000_000 / a.join_rate);
    for i in 0..a.nodes {
        sim.add_node(node_boot.clone());
        sim.run_for(gap);
        if (i + 1) % 100_000 == 0 {
            eprintln!(
                "  {} nodes in, {:.0} s wall, {:?} MiB",
                i + 1,
                wall.elapsed().as_secs_f64(),
                peak_rss_mb()
            );
        }
    }
    sim.run_for(Duration::from_secs(a.settle));
    let formed = wall.elapsed();
    let atom = |n: u64| AtomAddr::new(NodeId(n), AtomId(0));
    let mut overlay = Overlay::new();
    for n in 0..a.nodes {
        let view = sim
            .with_atom::<MembershipAtom, _>(atom(n), |m| m.neighbours())
            .unwrap_or_default();
        overlay.insert(n, view.into_iter().map(|x| x.0).collect());
    }
    print_overlay(
        a,
        Duration::from_nanos(sim.now().as_nanos()),
        formed,
        &overlay.report(),
    );
    drop(overlay);
    // Per node: payload messages sent and broadcasts delivered so far.
    let counts = |sim: &Sim| -> Vec<(u64, usize)> {
        (0..a.nodes)
            .map(|n| {
                sim.with_atom::<MembershipAtom, _>(atom(n), |m| {
                    (m.stats().payload_sent, m.stats().delivered.len())
                })
                .unwrap_or((0, 0))
            })
            .collect()
    };
    let sender = NodeId(7);
    for k in 0..5u32 {
        let before = counts(&sim);
        sim.inject(
            Dest::service(sender, SERVICE),
            Broadcast {
                payload: k.to_le_bytes().to_vec(),
            },
        );
        sim.run_for(Duration::from_secs(2));
        let (mut reached, mut payloads, mut ldh) = (0, 0, 0);
        for (n, (p0, d0)) in before.into_iter().enumerate() {
            sim.with_atom::<MembershipAtom, _>(atom(n as u64), |m| {
                payloads += m.stats().payload_sent - p0;
                for (origin, _, round) in &m.stats().delivered[d0..] {
                    if *origin == sender {
                        reached += 1;
                        ldh = ldh.max(*round);
                    }
                }
            });
        }
        print_broadcast(k, reached, a.nodes, payloads, ldh);
    }
    println!("simulator events processed: {}", sim.events());
}

/// The bare cores in the lean harness.
fn run_lean(a: &Args, wall: Instant) {
    let mut sim: testkit::Sim<PeerService<u64, u32>> = testkit::Sim::new(a.seed);
    let gap = Duration::from_nanos(1_000_000_000 / a.join_rate);
    for i in 0..a.nodes {
        let node = PeerService::new(i, Config::default()).expect("valid config");
        let seeds: Vec<u64> = (0..i.min(3)).collect();
        sim.add(node, |s, rng, out| {
            if seeds.is_empty() {
                s.start(rng, out)
            } else {
                s.join(seeds, Duration::ZERO, rng, out)
            }
        });
        sim.run_for(gap);
    }
    sim.run_for(Duration::from_secs(a.settle));
    let formed = wall.elapsed();
    let mut overlay = Overlay::new();
    for id in sim.live_ids() {
        let s = sim.node(id).expect("live");
        overlay.insert(id, s.neighbours().iter().copied().collect());
    }
    print_overlay(a, sim.now, formed, &overlay.report());
    drop(overlay);
    for k in 0..5u32 {
        let before = sim.sent.get(PAYLOAD).copied().unwrap_or(0);
        let first = sim.events.len();
        sim.with(7, |s, rng, out| {
            s.broadcast(k, rng, out);
        });
        sim.run_for(Duration::from_secs(2));
        let mut reached = 0u64;
        let mut ldh = 0;
        for (_, _, e) in &sim.events[first..] {
            if let ServiceEvent::Delivered { round, .. } = e {
                reached += 1;
                ldh = ldh.max(*round);
            }
        }
        sim.events.clear();
        let payloads = sim.sent.get(PAYLOAD).copied().unwrap_or(0) - before;
        print_broadcast(k, reached, a.nodes, payloads, ldh);
    }
}

fn main() {
    let a = args();
    let wall = Instant::now();
    if a.lean {
        run_lean(&a, wall);
    } else {
        run_sim(&a, wall);
    }
    println!(
        "wall {:.1} s, peak memory (VmHWM) {:?} MiB",
        wall.elapsed().as_secs_f64(),
        peak_rss_mb()
    );
}
