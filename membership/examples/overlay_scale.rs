//! The membership scale benchmark (a program, not a test; README, "Measuring"): forms a large
//! HyParView overlay and broadcasts over it with Plumtree, then prints simulated and wall time,
//! the overlay checks, the broadcast figures (reliability, RMR, LDH) and the process's peak
//! memory (`VmHWM` from `/proc/self/status`).
//!
//! ```text
//! cargo run --release -p rasp-membership --example overlay_scale -- --nodes 1000000
//! cargo run --release -p rasp-membership --example overlay_scale -- --nodes 100000 --harness lean
//! cargo run --release -p rasp-membership --example overlay_scale -- --nodes 1000000 --threads 2
//! ```
//!
//! Options: `--nodes N` (default 100,000), `--seed S` (default 1), `--harness sim|lean|par`
//! (default `sim`), `--threads N` (the `par` harness on `N` threads; default: every core),
//! `--join-rate R` joins per simulated second (default 20,000), `--settle S` simulated seconds
//! after the last join (default 20).
//!
//! - `sim` runs the real [`MembershipAtom`] on every node in the runtime's deterministic
//!   simulator (typed wire, latency uniform in 10–50 ms, connections, failure detection): the
//!   same code as on the network.
//! - `lean` drives the bare [`PeerService`] cores with the crate's test harness
//!   ([`rasp_membership::testkit`]): no atoms, hosts or connections, a few times cheaper per
//!   node; for comparison.
//! - `par` (or `--threads N`) drives the same cores with the parallel lean harness
//!   ([`rasp_membership::testkit::par`]): one RNG per node, nodes partitioned across `N`
//!   threads, windows of the minimum latency (10 ms); bit-identical for every `N` (it prints
//!   its trace hash), `u32` peer ids and one shared configuration ([`SharedConfig`]). The
//!   harness of the million-node figures (README, "Overlay at scale"). Its runs differ from
//!   `lean`'s (another RNG discipline), not its model.
//!
//! Node `i` joins through nodes `0..min(i, 3)`, one join every `1 / join-rate` s.
//!
//! `--scenarios` runs iroh-gossip's simulator scenarios instead, in the lean harness, and prints
//! one table:
//!
//! ```text
//! cargo run --release -p rasp-membership --example overlay_scale -- --scenarios
//! cargo run --release -p rasp-membership --example overlay_scale -- --scenarios --latency per-link --seeds 4
//! ```
//!
//! Sizes 20, 100 and 1,000 nodes; `single` (one sender, the same every round), `multi` (a
//! sender drawn at random every round), `all` (every node sends one message every round);
//! `--latency per-message|per-link|both` (default `both`): uniform 10–50 ms drawn per message
//! (the harness's default) or once per pair of nodes (iroh-gossip's dynamic latency).
//! Bootstrap as iroh-gossip's: every node joins node 0 at once, then 1 s (20 trips of the
//! 50 ms maximum latency) before the first round. A round sends its messages at once and runs
//! until every node but the sender delivered each of them, or 5 s. Per round, as iroh-gossip's
//! `report_gossip_round`: RMR = payload messages sent in the round / (deliveries - 1) - 1
//! (every payload sent is received: no loss, no crash), LDH = the largest hop count of a
//! delivery minus one (iroh-gossip counts the origin's neighbours as round 0; rasp's rounds
//! start at 1), missed = expected deliveries not made by the round's end. The table gives the
//! mean over rounds and seeds (seeds 0, 1, 212312388123, 123, iroh-gossip's, `--seeds N`
//! takes the first N, default 2), and `late missing`: deliveries still missing 10 s after the
//! last round, and whether the overlay is connected then; the last column sums Plumtree's
//! counters over the nodes (duplicate payloads, GRAFTs, PRUNEs) per round. Plumtree's knobs:
//! `--graft-timeouts MS1,MS2` (`graft_timeout_1`, `graft_timeout_2`),
//! `--optimization-threshold HOPS`, `--digest IDS` (`digest_capacity`; 0 turns the digest off). `--rounds R` (default 30, iroh-gossip's;
//! `all` runs `R / 6` rounds at 100 nodes and 2 at 1,000).

use rasp_membership::atom::Broadcast;
use rasp_membership::overlay::{report_dense, Overlay, Report};
use rasp_membership::testkit::par::{ParSim, Start};
use rasp_membership::testkit::{self, PAYLOAD};
use rasp_membership::{Config, MembershipAtom, PeerService, ServiceEvent, SharedConfig, SERVICE};
use rasp_runtime::sim::{Latency, LinkConfig, NetConfig, Sim, SimConfig, WireMode};
use rasp_runtime::{boot, AtomAddr, AtomId, Contact, Dest, NodeId};
use std::time::{Duration, Instant};

/// The peak resident set in MiB, as text ("unknown" where /proc does not tell).
fn peak_text() -> String {
    peak_rss_mb().map_or("unknown".to_string(), |mb| mb.to_string())
}

/// The process's peak resident memory in MiB (Linux).
fn peak_rss_mb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}

/// Which harness runs the overlay.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Harness {
    /// The runtime simulator with the membership atom.
    Sim,
    /// The sequential lean harness (`testkit::Sim`).
    Lean,
    /// The parallel lean harness (`testkit::par::ParSim`).
    Par,
}

struct Args {
    nodes: u64,
    seed: u64,
    harness: Harness,
    threads: usize,
    join_rate: u64,
    settle: u64,
    scenarios: bool,
    latency: Vec<bool>,
    seeds: usize,
    rounds: u32,
    sizes: Vec<u64>,
    senders: Vec<Senders>,
    plumtree: rasp_membership::plumtree::Config,
}

fn usage() -> ! {
    eprintln!(
        "usage: overlay_scale [--nodes N] [--seed S] [--harness sim|lean] [--join-rate R] [--settle SECS]\n       overlay_scale --scenarios [--latency per-message|per-link|both] [--seeds N] [--rounds R] [--sizes 20,100,1000] [--senders single,multi,all]\n         [--graft-timeouts MS1,MS2] [--optimization-threshold HOPS] [--digest IDS]"
    );
    std::process::exit(2)
}

fn args() -> Args {
    let mut a = Args {
        nodes: 100_000,
        seed: 1,
        harness: Harness::Sim,
        threads: 0,
        join_rate: 20_000,
        settle: 20,
        scenarios: false,
        latency: vec![false, true],
        seeds: 2,
        rounds: 30,
        sizes: vec![20, 100, 1000],
        senders: vec![Senders::Single, Senders::Multi, Senders::All],
        plumtree: Default::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--nodes" => a.nodes = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => a.seed = value().parse().unwrap_or_else(|_| usage()),
            "--join-rate" => a.join_rate = value().parse().unwrap_or_else(|_| usage()),
            "--settle" => a.settle = value().parse().unwrap_or_else(|_| usage()),
            "--scenarios" => a.scenarios = true,
            "--seeds" => a.seeds = value().parse().unwrap_or_else(|_| usage()),
            "--rounds" => a.rounds = value().parse().unwrap_or_else(|_| usage()),
            "--sizes" => {
                a.sizes = value()
                    .split(',')
                    .map(|x| x.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--graft-timeouts" => {
                let v = value();
                let (t1, t2) = v.split_once(',').unwrap_or_else(|| usage());
                let ms =
                    |x: &str| Duration::from_millis(x.trim().parse().unwrap_or_else(|_| usage()));
                a.plumtree.graft_timeout_1 = ms(t1);
                a.plumtree.graft_timeout_2 = ms(t2);
            }
            "--optimization-threshold" => {
                a.plumtree.optimization_threshold = value().parse().unwrap_or_else(|_| usage())
            }
            "--digest" => a.plumtree.digest_capacity = value().parse().unwrap_or_else(|_| usage()),
            "--senders" => {
                a.senders = value()
                    .split(',')
                    .map(|x| match x.trim() {
                        "single" => Senders::Single,
                        "multi" => Senders::Multi,
                        "all" => Senders::All,
                        _ => usage(),
                    })
                    .collect()
            }
            "--latency" => {
                a.latency = match value().as_str() {
                    "per-message" => vec![false],
                    "per-link" => vec![true],
                    "both" => vec![false, true],
                    _ => usage(),
                }
            }
            "--harness" => {
                a.harness = match value().as_str() {
                    "sim" => Harness::Sim,
                    "lean" => Harness::Lean,
                    "par" => Harness::Par,
                    _ => usage(),
                }
            }
            "--threads" => {
                a.threads = value().parse().unwrap_or_else(|_| usage());
                a.harness = Harness::Par;
            }
            _ => usage(),
        }
    }
    if a.threads == 0 {
        a.threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    }
    if a.nodes < 2
        || a.nodes > u64::from(u32::MAX)
        || a.join_rate == 0
        || a.seeds == 0
        || a.seeds > SEEDS.len()
        || a.rounds == 0
    {
        usage();
    }
    a
}

fn print_overlay(a: &Args, simulated: Duration, wall: Duration, r: &Report<u64>) {
    println!(
        "{} nodes ({}): formed in {:.1} s simulated, {:.1} s wall; connected {}, components {}, isolated {}, asymmetric {}, degrees {:?}",
        a.nodes,
        match a.harness {
            Harness::Sim => "runtime simulator".to_string(),
            Harness::Lean => "lean harness".to_string(),
            Harness::Par => format!("parallel lean harness, {} threads", a.threads),
        },
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

/// The membership atom on every node, in the runtime simulator; returns the events
/// processed.
fn run_sim(a: &Args, wall: Instant) -> u64 {
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
                "  {} nodes in, {:.0} s wall, {} MiB",
                i + 1,
                wall.elapsed().as_secs_f64(),
                peak_text()
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
    sim.events()
}

/// The bare cores in the lean harness; returns the events processed.
fn run_lean(a: &Args, wall: Instant) -> u64 {
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
    println!("harness events processed: {}", sim.processed());
    sim.processed()
}

/// The bare cores in the parallel lean harness on `--threads` threads; returns the events
/// processed. Prints the run's trace hash: equal for every thread count.
fn run_par(a: &Args, wall: Instant) -> u64 {
    // `u32` peer ids: the same run as with `u64`s (the harness numbers nodes with `u32`s
    // either way), in less memory per node.
    let mut sim: ParSim<PeerService<u32, u32>, u32> = ParSim::new(a.seed, a.threads)
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    // Only deliveries are counted; neighbour changes of millions of nodes are not kept.
    sim.keep_events(|e| matches!(e, ServiceEvent::Delivered { .. }));
    let gap = Duration::from_nanos(1_000_000_000 / a.join_rate);
    // Node `j` starts at `j * gap`, inside the run: joins are queued one simulated second
    // ahead, so that the parallel windows stay full.
    let start: Start<PeerService<u32, u32>, u32> = |id, s, rng, out| {
        if id == 0 {
            s.start(rng, out)
        } else {
            s.join((0..id.min(3) as u32).collect(), Duration::ZERO, rng, out)
        }
    };
    let shared = SharedConfig::new(Config::default()).expect("valid config");
    let per_second = a.join_rate.max(1);
    sim.reserve(a.nodes);
    let mut j = 0;
    while j < a.nodes {
        let end = (j + per_second).min(a.nodes);
        for i in j..end {
            let node = PeerService::with_shared(i as u32, &shared);
            sim.add_at(node, gap * i as u32, start)
                .expect("below 2^32 nodes");
        }
        sim.run_until(gap * end as u32);
        if end / 1_000_000 > j / 1_000_000 {
            eprintln!(
                "  {end} nodes in, {:.0} s wall, {} MiB",
                wall.elapsed().as_secs_f64(),
                peak_text()
            );
        }
        j = end;
    }
    sim.run_for(Duration::from_secs(a.settle));
    let formed = wall.elapsed();
    // The overlay checks in a few bytes per node (the map-based `Overlay` would hold more
    // than the run's peak at a million nodes).
    let report = report_dense(a.nodes as u32, |i| {
        sim.node(u64::from(i))
            .map(|s| s.neighbours().iter().copied().collect())
    });
    print_overlay(a, sim.now(), formed, &report);
    for k in 0..5u32 {
        let before = sim.sent(PAYLOAD);
        sim.events.clear();
        // One delivery per node: no doubling of the buffer.
        sim.events.reserve_exact(a.nodes as usize);
        sim.with(7, |s, rng, out| {
            s.broadcast(k, rng, out);
        });
        sim.run_for(Duration::from_secs(2));
        let mut reached = 0u64;
        let mut ldh = 0;
        for (_, _, e) in &sim.events {
            if let ServiceEvent::Delivered { round, .. } = e {
                reached += 1;
                ldh = ldh.max(*round);
            }
        }
        let payloads = sim.sent(PAYLOAD) - before;
        print_broadcast(k, reached, a.nodes, payloads, ldh);
    }
    sim.events = Vec::new();
    println!(
        "harness events processed: {}, trace hash {:016x}",
        sim.processed(),
        sim.trace_hash()
    );
    sim.processed()
}

/// iroh-gossip's simulation seeds (its `simulations/all.toml`).
const SEEDS: [u64; 4] = [0, 1, 212312388123, 123];

/// Who sends in a round.
#[derive(Clone, Copy, Debug)]
enum Senders {
    /// The same node every round.
    Single,
    /// A node drawn at random every round.
    Multi,
    /// Every node.
    All,
}

/// Figures of one scenario run (one seed), summed over its rounds.
#[derive(Default)]
struct Figures {
    rounds: u32,
    rmr: f64,
    ldh: f64,
    missed: u64,
    late_missing: u64,
    connected: bool,
    /// Component sizes of the runs that ended split, with their seed.
    split: Vec<(u64, Vec<usize>)>,
    /// Plumtree's counters summed over nodes (duplicates, grafts, prunes), over all rounds.
    duplicates: u64,
    grafts: u64,
    prunes: u64,
}

/// Plumtree's counters summed over the live nodes: (duplicates, grafts, prunes).
fn plumtree_counters(sim: &testkit::Sim<PeerService<u64, u32>>) -> (u64, u64, u64) {
    let mut c = (0, 0, 0);
    for id in sim.live_ids() {
        if let Some(p) = sim.node(id).and_then(|s| s.plumtree()) {
            let st = p.stats();
            c.0 += st.duplicates;
            c.1 += st.grafts;
            c.2 += st.prunes;
        }
    }
    c
}

/// One scenario on one seed in the lean harness (see the module documentation).
fn scenario(
    n: u64,
    senders: Senders,
    per_link: bool,
    seed: u64,
    rounds: u32,
    plumtree: &rasp_membership::plumtree::Config,
) -> Figures {
    use rand::Rng;
    use std::collections::BTreeSet;
    let mut sim: testkit::Sim<PeerService<u64, u32>> = testkit::Sim::new(seed);
    sim.per_link_latency = per_link;
    let config = Config {
        plumtree: plumtree.clone(),
        ..Config::default()
    };
    for i in 0..n {
        let node = PeerService::new(i, config.clone()).expect("valid config");
        sim.add(node, |s, rng, out| {
            if i == 0 {
                s.start(rng, out)
            } else {
                s.join(vec![0], Duration::ZERO, rng, out)
            }
        });
    }
    sim.run_for(Duration::from_secs(1));
    sim.events.clear();
    let single = sim.rng.random_range(0..n);
    let mut f = Figures::default();
    // Every (node, payload) pair still to deliver, over all rounds.
    let mut owed: BTreeSet<(u64, u32)> = BTreeSet::new();
    let mut next_payload = 0u32;
    let counters_before = plumtree_counters(&sim);
    for _ in 0..rounds {
        let from: Vec<u64> = match senders {
            Senders::Single => vec![single],
            Senders::Multi => vec![sim.rng.random_range(0..n)],
            Senders::All => (0..n).collect(),
        };
        let payload_before = sim.sent.get(PAYLOAD).copied().unwrap_or(0);
        let mut round_owed: BTreeSet<(u64, u32)> = BTreeSet::new();
        for s in &from {
            let p = next_payload;
            next_payload += 1;
            for node in (0..n).filter(|x| x != s) {
                round_owed.insert((node, p));
                owed.insert((node, p));
            }
            sim.with(*s, |svc, rng, out| {
                svc.broadcast(p, rng, out);
            });
        }
        let expected = round_owed.len() as u64;
        let deadline = sim.now + Duration::from_secs(5);
        let mut delivered = 0u64;
        let mut ldh = 0u32;
        loop {
            for (_, node, e) in sim.events.drain(..) {
                if let ServiceEvent::Delivered { payload, round, .. } = e {
                    owed.remove(&(node, payload));
                    if round_owed.remove(&(node, payload)) {
                        delivered += 1;
                        ldh = ldh.max(round.saturating_sub(1));
                    }
                }
            }
            if round_owed.is_empty() {
                break;
            }
            match sim.next_at() {
                Some(t) if t <= deadline => sim.run_until(t),
                _ => {
                    sim.run_until(deadline);
                    break;
                }
            }
        }
        let payloads = sim.sent.get(PAYLOAD).copied().unwrap_or(0) - payload_before;
        f.rounds += 1;
        f.rmr += payloads as f64 / (delivered.max(2) - 1) as f64 - 1.0;
        f.ldh += f64::from(ldh);
        f.missed += expected - delivered;
    }
    let counters = plumtree_counters(&sim);
    f.duplicates = counters.0 - counters_before.0;
    f.grafts = counters.1 - counters_before.1;
    f.prunes = counters.2 - counters_before.2;
    sim.run_for(Duration::from_secs(10));
    for (_, node, e) in sim.events.drain(..) {
        if let ServiceEvent::Delivered { payload, .. } = e {
            owed.remove(&(node, payload));
        }
    }
    f.late_missing = owed.len() as u64;
    let mut overlay = Overlay::new();
    for id in sim.live_ids() {
        let s = sim.node(id).expect("live");
        overlay.insert(id, s.neighbours().iter().copied().collect());
    }
    let r = overlay.report();
    f.connected = r.connected;
    if !r.connected {
        f.split.push((seed, r.components));
    }
    f
}

/// Runs every scenario and prints the table.
fn run_scenarios(a: &Args) {
    println!(
        "| latency | nodes | senders | rounds x seeds | RMR | LDH | missed per round | late missing | connected at end | duplicates / grafts / prunes per round |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &per_link in &a.latency {
        for &n in &a.sizes {
            for &senders in &a.senders {
                let rounds = match senders {
                    Senders::All if n >= 1000 => 2.min(a.rounds),
                    Senders::All if n >= 100 => (a.rounds / 6).max(1),
                    _ => a.rounds,
                };
                let mut total = Figures {
                    connected: true,
                    ..Figures::default()
                };
                for &seed in &SEEDS[..a.seeds] {
                    let f = scenario(n, senders, per_link, seed, rounds, &a.plumtree);
                    total.rounds += f.rounds;
                    total.rmr += f.rmr;
                    total.ldh += f.ldh;
                    total.missed += f.missed;
                    total.late_missing += f.late_missing;
                    total.connected &= f.connected;
                    total.split.extend(f.split);
                    total.duplicates += f.duplicates;
                    total.grafts += f.grafts;
                    total.prunes += f.prunes;
                }
                let r = f64::from(total.rounds);
                println!(
                    "| {} | {n} | {senders:?} | {rounds} x {} | {:.3} | {:.1} | {:.2} | {} | {} | {:.1} / {:.1} / {:.1} |{}",
                    if per_link { "per-link" } else { "per-message" },
                    a.seeds,
                    total.rmr / r,
                    total.ldh / r,
                    total.missed as f64 / r,
                    total.late_missing,
                    total.connected,
                    total.duplicates as f64 / r,
                    total.grafts as f64 / r,
                    total.prunes as f64 / r,
                    if total.split.is_empty() {
                        String::new()
                    } else {
                        format!(" split at the end (seed, component sizes): {:?}", total.split)
                    }
                );
            }
        }
    }
}

fn main() {
    let a = args();
    let wall = Instant::now();
    let events = if a.scenarios {
        run_scenarios(&a);
        None
    } else {
        Some(match a.harness {
            Harness::Sim => run_sim(&a, wall),
            Harness::Lean => run_lean(&a, wall),
            Harness::Par => run_par(&a, wall),
        })
    };
    let secs = wall.elapsed().as_secs_f64();
    let peak = peak_text();
    println!("wall {secs:.1} s, peak memory (VmHWM) {peak} MiB");
    if let Some(events) = events {
        // One line to compare runs by: throughput and memory per node.
        let per_node = peak_rss_mb().map_or("unknown".to_string(), |mb| {
            (mb * 1024 * 1024 / a.nodes.max(1)).to_string()
        });
        println!(
            "summary: {} nodes, {events} events, {:.3} M events/s, {:.0} ns/event, wall {secs:.2} s, peak {peak} MiB, {per_node} bytes/node",
            a.nodes,
            events as f64 / secs / 1e6,
            secs * 1e9 / events.max(1) as f64,
        );
    }
}
