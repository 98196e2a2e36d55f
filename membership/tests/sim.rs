//! The membership atom in the runtime's deterministic simulator: the same atom, the three
//! modes, overlay checks from every node's view, broadcast figures.
//!
//! Latency is uniform in 10–50 ms (iroh-gossip's simulator setting). A failing
//! run prints its seed and the command to reproduce it (`RASP_SEED=<seed> cargo test ...`).
//! Figures: `cargo test -p rasp-membership --release --test sim -- --nocapture`.

use rasp_membership::atom::{Broadcast, Subscribe};
use rasp_membership::overlay::Overlay;
use rasp_membership::{Config, MembershipAtom, Mode, PeerServiceEvent, Role, SERVICE};
use rasp_runtime::sim::{seed_from_env, LinkConfig, NetConfig, Sim, SimConfig, WireMode};
use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Contact, Ctx, Dest, NodeId, Origin};
use std::collections::BTreeSet;
use std::time::Duration;

const MEMBERSHIP: AtomId = AtomId(0);
const LISTENER: AtomId = AtomId(1);

/// Subscribes to the membership atom and records what it hears.
struct Listener {
    events: Vec<PeerServiceEvent>,
}
impl Atom for Listener {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        let node = ctx.node();
        ctx.send(Dest::service(node, SERVICE), Subscribe);
        ctx.on::<PeerServiceEvent>(|me, _, _: &Origin, ev| me.events.push(ev));
    }
}

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

/// `n` nodes, one every `gap`, each running the membership atom (and a listener); node `i`
/// joins through nodes 0..min(i, 3).
fn form(
    sim: &mut Sim,
    n: u64,
    config: impl Fn(NodeId) -> Config + Send + Sync + 'static,
    gap: Duration,
) {
    let config = std::sync::Arc::new(config);
    for _ in 0..n {
        let config = config.clone();
        sim.add_node(boot(move |b| {
            let node = b.node();
            let seeds: Vec<Contact> = (0..node.0.min(3))
                .map(|i| Contact::bare(NodeId(i)))
                .collect();
            b.spawn(MembershipAtom::new(config(node), seeds).expect("valid config"));
            b.spawn(Listener { events: Vec::new() });
        }));
        sim.run_for(gap);
    }
}

fn addr(node: NodeId, atom: AtomId) -> AtomAddr {
    AtomAddr::new(node, atom)
}

fn live(sim: &Sim) -> Vec<NodeId> {
    (0..sim.node_count() as u64)
        .map(NodeId)
        .filter(|n| sim.is_up(*n))
        .collect()
}

fn overlay(sim: &Sim) -> Overlay<u64> {
    let mut o = Overlay::new();
    for n in live(sim) {
        let view = sim
            .with_atom::<MembershipAtom, _>(addr(n, MEMBERSHIP), |a| a.neighbours())
            .expect("membership atom");
        o.insert(n.0, view.into_iter().map(|x| x.0).collect());
    }
    o
}

/// Asymmetric links still there a second later: a NEIGHBOR handshake in flight is a legitimate
/// momentary asymmetry (and under-full nodes keep promoting), a link one side forgot is not.
fn persistent_asymmetry(sim: &mut Sim) -> Vec<(u64, u64)> {
    let first: BTreeSet<(u64, u64)> = overlay(sim).report().asymmetric.into_iter().collect();
    sim.run_for(Duration::from_secs(1));
    overlay(sim)
        .report()
        .asymmetric
        .into_iter()
        .filter(|l| first.contains(l))
        .collect()
}

/// Reliability, RMR and LDH of one broadcast from `sender`.
fn broadcast(sim: &mut Sim, sender: NodeId, wait: Duration) -> (f64, f64, u32) {
    let nodes = live(sim);
    let payload_before: u64 = nodes
        .iter()
        .map(|n| {
            sim.with_atom::<MembershipAtom, _>(addr(*n, MEMBERSHIP), |a| a.stats().payload_sent)
                .unwrap_or(0)
        })
        .sum();
    let delivered_before: Vec<usize> = nodes
        .iter()
        .map(|n| {
            sim.with_atom::<MembershipAtom, _>(addr(*n, MEMBERSHIP), |a| a.stats().delivered.len())
                .unwrap_or(0)
        })
        .collect();
    sim.inject(
        Dest::service(sender, SERVICE),
        Broadcast {
            payload: vec![7; 16],
        },
    );
    sim.run_for(wait);
    let mut reached = 0usize;
    let mut ldh = 0;
    let mut payloads = 0;
    for (i, n) in nodes.iter().enumerate() {
        let (d, rounds, sent) = sim
            .with_atom::<MembershipAtom, _>(addr(*n, MEMBERSHIP), |a| {
                let new = &a.stats().delivered[delivered_before[i]..];
                (
                    new.iter().filter(|(o, _, _)| *o == sender).count(),
                    new.iter()
                        .filter(|(o, _, _)| *o == sender)
                        .map(|(_, _, r)| *r)
                        .max()
                        .unwrap_or(0),
                    a.stats().payload_sent,
                )
            })
            .unwrap_or((0, 0, 0));
        reached += d.min(1);
        ldh = ldh.max(rounds);
        payloads += sent;
    }
    let payloads = payloads - payload_before;
    let reliability = reached as f64 / (nodes.len() - 1) as f64;
    let rmr = payloads as f64 / reached.max(1) as f64 - 1.0;
    (reliability, rmr, ldh)
}

fn hyparview(_: NodeId) -> Config {
    Config::default()
}

#[test]
fn hyparview_100_forms_and_broadcasts() {
    let mut sim = sim(21);
    form(&mut sim, 100, hyparview, Duration::from_millis(20));
    sim.run_for(Duration::from_secs(20));
    let r = overlay(&sim).report();
    assert!(r.connected, "{r:?}");
    assert!(r.isolated.is_empty(), "{r:?}");
    assert!(persistent_asymmetry(&mut sim).is_empty());
    for _ in 0..3 {
        let (rel, _, _) = broadcast(&mut sim, NodeId(42), Duration::from_secs(1));
        assert_eq!(rel, 1.0);
    }
    // The listener on node 42's neighbours heard the neighbour events; a far node heard the
    // broadcasts.
    let events = sim
        .with_atom::<Listener, _>(addr(NodeId(77), LISTENER), |l| l.events.clone())
        .expect("listener");
    assert!(events
        .iter()
        .any(|e| matches!(e, PeerServiceEvent::NeighbourUp(_))));
    let delivered = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                PeerServiceEvent::Delivered {
                    origin: NodeId(42),
                    ..
                }
            )
        })
        .count();
    assert_eq!(delivered, 3);
}

/// Nothing above the interface changes with the mode: the same boot, only the config value.
#[test]
fn same_program_in_every_mode() {
    for (mode, servers) in [
        (Mode::Full, 0),
        (Mode::ClientServer, 3),
        (Mode::HyParView, 0),
    ] {
        let mut sim = sim(22);
        form(
            &mut sim,
            40,
            move |n| Config {
                mode,
                role: if n.0 < servers {
                    Role::Server
                } else {
                    Role::Client
                },
                ..Config::default()
            },
            Duration::from_millis(20),
        );
        sim.run_for(Duration::from_secs(15));
        let r = overlay(&sim).report();
        assert!(r.connected, "{mode}: {r:?}");
        assert!(persistent_asymmetry(&mut sim).is_empty(), "{mode}");
        let (rel, rmr, ldh) = broadcast(&mut sim, NodeId(30), Duration::from_secs(1));
        println!(
            "{mode}: 40 nodes, broadcast reliability {rel}, RMR {rmr:.2}, LDH {ldh}, degrees {:?}",
            r.degree_histogram
        );
        assert_eq!(rel, 1.0, "{mode}");
        if mode == Mode::ClientServer {
            let clients: BTreeSet<u64> = (0..servers).collect();
            assert_eq!(
                overlay(&sim).views[&35]
                    .iter()
                    .copied()
                    .collect::<BTreeSet<_>>(),
                clients
            );
        }
    }
}

/// iroh-gossip's case: 1,000 nodes, single sender (RMR 0.07, LDH 13, nothing missed).
#[test]
fn hyparview_plumtree_1000_single_sender() {
    let mut sim = sim(23);
    form(&mut sim, 1000, hyparview, Duration::from_millis(5));
    sim.run_for(Duration::from_secs(20));
    let r = overlay(&sim).report();
    assert!(r.connected && r.isolated.is_empty(), "{r:?}");
    let mut figures = Vec::new();
    for _ in 0..20 {
        figures.push(broadcast(&mut sim, NodeId(17), Duration::from_millis(500)));
    }
    let later = &figures[5..];
    let n = later.len() as f64;
    let rmr = later.iter().map(|f| f.1).sum::<f64>() / n;
    let ldh = later.iter().map(|f| f.2 as f64).sum::<f64>() / n;
    println!("sim: hyparview+plumtree 1000 nodes single sender: RMR {rmr:.3}, LDH {ldh:.1} (iroh-gossip: RMR 0.07, LDH 13); first broadcast {:?}", figures[0]);
    assert!(figures.iter().all(|f| f.0 == 1.0), "{figures:?}");
    assert!(rmr < 0.5 && ldh <= 20.0);
}

#[test]
fn hyparview_1000_half_crash_heals() {
    let mut sim = sim(24);
    form(&mut sim, 1000, hyparview, Duration::from_millis(5));
    sim.run_for(Duration::from_secs(20));
    // Crash every other node above the seeds.
    for i in (3..1000u64).filter(|i| i % 2 == 1) {
        sim.crash(NodeId(i));
    }
    let mut healed = None;
    for step in 1..=10 {
        sim.run_for(Duration::from_secs(5));
        let r = overlay(&sim).report();
        if r.connected && r.isolated.is_empty() {
            healed = Some(step * 5);
            break;
        }
    }
    let (rel, rmr, ldh) = broadcast(&mut sim, NodeId(0), Duration::from_secs(1));
    println!("sim: crash 50% of 1000: connected again after {healed:?} s; broadcast reliability {rel}, RMR {rmr:.2}, LDH {ldh}");
    assert!(healed.is_some_and(|s| s <= 20), "{healed:?}");
    assert_eq!(rel, 1.0);
}

/// How long a broadcast on 10,000 nodes is given: the tree's depth (LDH, asserted at most 30
/// below) times the slowest link (50 ms). 800 ms was below that: with `RASP_SEED=5` the
/// pruned tree is 25–28 hops deep, its paths take ~30 ms a hop on average under fresh latency
/// draws, and 0.04–0.4% of the nodes got the message after 800 ms (every one of them by
/// 1,000 ms). The protocol delivered; the bound was wrong.
const BROADCAST_WAIT_10000: Duration = Duration::from_millis(1500);

/// 10,000 nodes in HyParView; after formation the overlay is connected and
/// symmetric and a Plumtree broadcast reaches every node; RMR and LDH reported and bounded.
/// About 7 s in `--release` on 2 cores:
/// `cargo test -p rasp-membership --release --test sim hyparview_10000 -- --nocapture`
#[test]
fn hyparview_10000_forms_and_broadcasts() {
    let mut sim = sim(25);
    let start = std::time::Instant::now();
    form(&mut sim, 10_000, hyparview, Duration::from_millis(1));
    sim.run_for(Duration::from_secs(20));
    let r = overlay(&sim).report();
    println!(
        "sim: 10,000 nodes formed in {:?} wall: connected {}, isolated {}, asymmetric {}, degrees {:?}",
        start.elapsed(),
        r.connected,
        r.isolated.len(),
        r.asymmetric.len(),
        r.degree_histogram
    );
    assert!(r.connected && r.isolated.is_empty(), "{r:?}");
    let asym = persistent_asymmetry(&mut sim);
    assert!(asym.is_empty(), "{asym:?}");
    let mut figures = Vec::new();
    for _ in 0..6 {
        figures.push(broadcast(&mut sim, NodeId(17), BROADCAST_WAIT_10000));
    }
    println!("sim: 10,000 nodes, single sender broadcasts (reliability, RMR, LDH): {figures:?}; wall {:?} (iroh-gossip at 1,000 nodes: RMR 0.07, LDH 13)", start.elapsed());
    assert!(figures.iter().all(|f| f.0 == 1.0), "{figures:?}");
    // The first broadcast builds the tree (eager push everywhere); afterwards it is pruned.
    let later = &figures[2..];
    assert!(later.iter().all(|f| f.1 < 0.5 && f.2 <= 30), "{figures:?}");
}

/// Churn: every half second one random node (not a seed) crashes and one crashed earlier
/// restarts (rejoining through the seeds), for a minute, on 300 nodes. No node may stay
/// without neighbours longer than the bound (sampled every 10 ms), and the overlay is whole
/// afterwards.
#[test]
fn churn_isolation_is_bounded() {
    use rand::{Rng, SeedableRng};
    let mut sim = sim(26);
    form(&mut sim, 300, hyparview, Duration::from_millis(10));
    sim.run_for(Duration::from_secs(15));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(26);
    let mut down: Vec<NodeId> = Vec::new();
    let mut isolated_since: std::collections::BTreeMap<NodeId, rasp_runtime::Time> =
        Default::default();
    let mut worst = Duration::ZERO;
    let mut worst_node = None;
    for tick in 0..6000u32 {
        if tick % 50 == 0 {
            let up: Vec<NodeId> = live(&sim).into_iter().filter(|n| n.0 >= 3).collect();
            let victim = up[rng.random_range(0..up.len())];
            sim.crash(victim);
            isolated_since.remove(&victim);
            down.push(victim);
            if down.len() > 10 {
                let back = down.remove(0);
                sim.restart(back);
            }
        }
        sim.run_for(Duration::from_millis(10));
        let now = sim.now();
        for n in live(&sim) {
            let alone = sim
                .with_atom::<MembershipAtom, _>(addr(n, MEMBERSHIP), |a| a.neighbours().is_empty())
                .unwrap_or(false);
            if alone {
                let since = *isolated_since.entry(n).or_insert(now);
                if now - since > worst {
                    worst = now - since;
                    worst_node = Some(n);
                }
            } else {
                isolated_since.remove(&n);
            }
        }
    }
    sim.run_for(Duration::from_secs(10));
    let r = overlay(&sim).report();
    let asym = persistent_asymmetry(&mut sim);
    println!("sim: churn (2 crashes + 2 restarts per second, 60 s, 300 nodes, 10 down at a time): longest isolation {worst:?} ({worst_node:?}); after: components {:?}, persistent asymmetric {}", r.components, asym.len());
    assert!(
        worst <= Duration::from_secs(2),
        "{worst_node:?} isolated for {worst:?}"
    );
    assert!(r.connected && r.isolated.is_empty(), "{r:?}");
    assert!(asym.is_empty(), "{asym:?}");
}

/// A split overlay must join up again. Twelve nodes, partitioned {0..5} | {6..11} for 30 s:
/// each side repairs itself from its passive view until the six nodes of a side hold the five
/// others (full active views, asserted for at least ten of the twelve), which is exactly the state in which
/// HyParView's repair never fires again. After the heal the overlay must be one connected,
/// symmetric component within [`HEAL_BOUND`] and a broadcast must reach every node.
///
/// Sweep: `RASP_SEEDS=1..1000 cargo test -p rasp-membership --release --test sim
/// split_overlay_sweep -- --ignored --nocapture` (prints passed/failed and the worst heal time;
/// measured: 1,000 of 1,000 seeds healed, 772 of them with all twelve views full during the
/// split, worst 2.9 s after the heal, seed 989).
#[test]
fn split_overlay_heals_after_partition() {
    let (heal, full) = split_and_heal(seed_from_env(27)).unwrap_or_else(|e| panic!("{e}"));
    println!("sim: 12 nodes split 6 | 6 for 30 s, {full} of 12 views full: one overlay again {heal:?} after the heal (bound {HEAL_BOUND:?})");
}

/// Three promotion ticks (5 s each, when reconnect probes go out) and a NEIGHBOR timeout.
const HEAL_BOUND: Duration = Duration::from_secs(17);

/// Forms 12 nodes, splits them for 30 s, heals; returns how long after the heal the overlay
/// was one symmetric component again (checked every 100 ms) and how many nodes had a full
/// active view during the split, or what went wrong.
fn split_and_heal(seed: u64) -> Result<(Duration, usize), String> {
    let mut sim = sim(seed);
    form(&mut sim, 12, hyparview, Duration::from_millis(20));
    sim.run_for(Duration::from_secs(15));
    let r = overlay(&sim).report();
    if !r.connected {
        return Err(format!(
            "seed {seed}: not connected before the partition: {r:?}"
        ));
    }
    let a: Vec<NodeId> = (0..6).map(NodeId).collect();
    let b: Vec<NodeId> = (6..12).map(NodeId).collect();
    sim.partition(1, &a, &b, false);
    sim.run_for(Duration::from_secs(30));
    let r = overlay(&sim).report();
    // Two sides; on most seeds every view is full (the state HyParView's own repair never
    // leaves), on some a few nodes at four are still finding each other in their passive
    // views. Either way the overlay must heal.
    if r.components != [6, 6] {
        return Err(format!(
            "seed {seed}: expected two sides during the partition: {r:?}\n{}",
            hv_dump(&sim)
        ));
    }
    let full = r.degree_histogram.get(&5).copied().unwrap_or(0);
    sim.heal(1);
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    loop {
        sim.run_for(step);
        waited += step;
        let r = overlay(&sim).report();
        if r.connected && r.isolated.is_empty() && r.asymmetric.is_empty() {
            break;
        }
        if waited > HEAL_BOUND {
            return Err(format!(
                "seed {seed}: still split {waited:?} after the heal: {r:?}\n{}; reproduce with RASP_SEED={seed} cargo test -p rasp-membership --release --test sim split_overlay_heals_after_partition",
                hv_dump(&sim)
            ));
        }
    }
    // It stays whole, and a broadcast reaches everyone.
    sim.run_for(Duration::from_secs(10));
    let r = overlay(&sim).report();
    if !r.connected || !persistent_asymmetry(&mut sim).is_empty() {
        return Err(format!("seed {seed}: split again after healing: {r:?}"));
    }
    let (rel, _, _) = broadcast(&mut sim, NodeId(3), Duration::from_secs(1));
    if rel != 1.0 {
        return Err(format!(
            "seed {seed}: broadcast reliability {rel} after the heal"
        ));
    }
    Ok((waited, full))
}

/// How long after the overlay is whole again every broadcast sent during a split must have
/// reached every node: the first IHAVE digest goes out with the next IHAVE batch
/// (`plumtree::Config::ihave_interval`) over the new links, a GRAFT after
/// `graft_timeout_1`, further announcers every `graft_timeout_2`, each a round trip of at
/// most 100 ms in this network; then the tree of the side that lacked them carries them
/// (a dozen hops of at most 50 ms). Two seconds is several times that.
const SPLIT_RECOVERY_BOUND: Duration = Duration::from_secs(2);

/// Plumtree recovers the broadcasts sent while the overlay was split (Leitão, Pereira,
/// Rodrigues, "Epidemic Broadcast Trees", SRDS 2007, assume a connected overlay; the recent-id
/// digest on a new link extends it to a healed one): 12 nodes split 6 | 6 for 30 s, three
/// broadcasts from each side during the split, then the partition heals; once the overlay is
/// one component again, every node delivers all six within [`SPLIT_RECOVERY_BOUND`].
#[test]
fn broadcasts_sent_during_a_split_reach_everyone_after_the_heal() {
    let seed = seed_from_env(27);
    let mut sim = sim(seed);
    form(&mut sim, 12, hyparview, Duration::from_millis(20));
    sim.run_for(Duration::from_secs(15));
    assert!(
        overlay(&sim).report().connected,
        "seed {seed}: not connected before the split"
    );
    let a: Vec<NodeId> = (0..6).map(NodeId).collect();
    let b: Vec<NodeId> = (6..12).map(NodeId).collect();
    sim.partition(1, &a, &b, false);
    sim.run_for(Duration::from_secs(30));
    let r = overlay(&sim).report();
    assert_eq!(r.components, [6, 6], "seed {seed}: not split: {r:?}");
    let senders = [NodeId(2), NodeId(9)];
    for k in 0..3u8 {
        for s in senders {
            sim.inject(
                Dest::service(s, SERVICE),
                Broadcast {
                    payload: vec![k; 8],
                },
            );
        }
        sim.run_for(Duration::from_millis(500));
    }
    sim.run_for(Duration::from_secs(2));
    let missing = |sim: &Sim| -> Vec<(u64, NodeId, u64)> {
        let mut m = Vec::new();
        for n in live(sim) {
            let got: BTreeSet<(NodeId, u64)> = sim
                .with_atom::<MembershipAtom, _>(addr(n, MEMBERSHIP), |at| {
                    at.stats()
                        .delivered
                        .iter()
                        .map(|(o, q, _)| (*o, *q))
                        .collect()
                })
                .unwrap_or_default();
            for s in senders {
                for q in 0..3 {
                    if s != n && !got.contains(&(s, q)) {
                        m.push((n.0, s, q));
                    }
                }
            }
        }
        m
    };
    // Each side has its own three: 6 nodes lack each sender's 3 broadcasts.
    assert_eq!(
        missing(&sim).len(),
        2 * 6 * 3,
        "seed {seed}: before the heal"
    );
    sim.heal(1);
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while !overlay(&sim).report().connected {
        sim.run_for(step);
        waited += step;
        assert!(
            waited <= HEAL_BOUND,
            "seed {seed}: overlay still split {waited:?} after the heal"
        );
    }
    sim.run_for(SPLIT_RECOVERY_BOUND);
    let m = missing(&sim);
    assert!(
        m.is_empty(),
        "seed {seed}: overlay whole {waited:?} after the heal, {SPLIT_RECOVERY_BOUND:?} later still missing (node, origin, seq) {m:?}"
    );
    println!("sim: 6 broadcasts sent during a 6 | 6 split: overlay whole {waited:?} after the heal, all delivered everywhere {SPLIT_RECOVERY_BOUND:?} later");
}

/// Every node's HyParView views, suspects and counters, for failure messages.
fn hv_dump(sim: &Sim) -> String {
    live(sim)
        .into_iter()
        .map(|n| {
            sim.with_atom::<MembershipAtom, _>(addr(n, MEMBERSHIP), |a| {
                let h = a.core().and_then(|c| c.hyparview());
                match h {
                    Some(h) => format!(
                        "node {}: active {:?} passive {:?} suspects {:?} {:?}\n",
                        n.0,
                        h.active(),
                        h.passive(),
                        h.suspects().collect::<Vec<_>>(),
                        h.stats()
                    ),
                    None => format!("node {}: no hyparview core\n", n.0),
                }
            })
            .unwrap_or_default()
        })
        .collect()
}

/// Seeds from `RASP_SEEDS` (`a..b` inclusive, or one number), default 1..100.
fn seeds_from_env() -> std::ops::RangeInclusive<u64> {
    let spec = std::env::var("RASP_SEEDS").unwrap_or_else(|_| "1..100".into());
    match spec.split_once("..") {
        Some((a, b)) => a.trim().parse().unwrap_or(1)..=b.trim().parse().unwrap_or(100),
        None => {
            let s = spec.trim().parse().unwrap_or(1);
            s..=s
        }
    }
}

/// The sweep behind [`split_overlay_heals_after_partition`] (not in the default run).
#[test]
#[ignore = "seed sweep; run with --ignored (RASP_SEEDS=1..1000)"]
fn split_overlay_sweep() {
    let mut failed = Vec::new();
    let mut worst = (Duration::ZERO, 0);
    let mut all_full = 0;
    let seeds = seeds_from_env();
    let total = seeds.clone().count();
    for seed in seeds {
        match split_and_heal(seed) {
            Ok((t, full)) => {
                worst = worst.max((t, seed));
                all_full += usize::from(full == 12);
            }
            Err(e) => {
                eprintln!("{e}");
                failed.push(seed);
            }
        }
    }
    println!(
        "sim: split 6 | 6 sweep: {} of {total} seeds healed ({all_full} with all twelve views full during the split), worst heal {:?} (seed {}), failed {failed:?}",
        total - failed.len(),
        worst.0,
        worst.1
    );
    assert!(failed.is_empty(), "failed seeds: {failed:?}");
}

/// A bound on rejoining after a pause: the first heartbeat and gossip rounds after the resume
/// (one second each, `full::Config` defaults) reach everyone, and a falsely removed member
/// refutes within a few gossip rounds; 20 s leaves room for the slow cases.
const PAUSE_REJOIN_BOUND: Duration = Duration::from_secs(20);

/// Full membership, 8 nodes: pauses `victim` (SIGSTOP, [`rasp_runtime::sim::Fault::Pause`]) for
/// `pause`, resumes it, and returns how long after the resume every node's view held all seven
/// others again (checked every 100 ms, then held for 10 s), or what went wrong.
fn pause_and_rejoin(seed: u64, victim: NodeId, pause: Duration) -> Result<Duration, String> {
    let mut sim = sim(seed);
    let n = 8;
    form(
        &mut sim,
        n,
        |_| Config {
            mode: Mode::Full,
            ..Config::default()
        },
        Duration::from_millis(20),
    );
    sim.run_for(Duration::from_secs(10));
    let whole = |sim: &Sim| {
        overlay(sim)
            .views
            .values()
            .all(|v| v.len() == n as usize - 1)
    };
    if !whole(&sim) {
        return Err(format!(
            "seed {seed}: views not full before the pause: {:?}",
            overlay(&sim).views
        ));
    }
    sim.pause(victim);
    sim.run_for(pause);
    sim.resume(victim);
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    let repro = format!(
        "reproduce with RASP_SEED={seed} cargo test -p rasp-membership --release --test sim full_membership_paused_node_rejoins -- --nocapture"
    );
    while !whole(&sim) {
        if waited > PAUSE_REJOIN_BOUND {
            return Err(format!(
                "seed {seed}: node {} paused {pause:?}: views still not full {waited:?} after the resume: {:?}; {repro}",
                victim.0,
                overlay(&sim).views
            ));
        }
        sim.run_for(step);
        waited += step;
    }
    sim.run_for(Duration::from_secs(10));
    if !whole(&sim) {
        return Err(format!(
            "seed {seed}: views lost members again after rejoining: {:?}; {repro}",
            overlay(&sim).views
        ));
    }
    Ok(waited)
}

/// A node paused (SIGSTOP) longer than the 60 s removal limit rejoins, and the other nodes'
/// views stay whole: the woken node must not remove everyone on its first (late) heartbeat
/// tick, and members that each think the other removed must heal. Seeds 1–40 (or `RASP_SEED`
/// alone), the victim is node `seed mod 8`, pauses of 15 s, 65 s and 120 s.
#[test]
fn full_membership_paused_node_rejoins() {
    let seeds = match std::env::var("RASP_SEED") {
        Ok(_) => {
            let s = seed_from_env(1);
            s..=s
        }
        Err(_) => 1..=40,
    };
    let mut worst = (Duration::ZERO, 0, 0);
    let mut runs = 0;
    for seed in seeds {
        for pause in [15, 65, 120] {
            let t = pause_and_rejoin(seed, NodeId(seed % 8), Duration::from_secs(pause))
                .unwrap_or_else(|e| panic!("{e}"));
            worst = worst.max((t, seed, pause));
            runs += 1;
        }
    }
    println!(
        "sim: full membership, 8 nodes, one paused 15 / 65 / 120 s: all views whole after the resume in {runs} runs, worst {:?} (seed {}, pause {} s), bound {PAUSE_REJOIN_BOUND:?}",
        worst.0, worst.1, worst.2
    );
}

/// Full membership, 8 nodes split 2 | 6 for 70 s, longer than the 60 s removal limit: each
/// side marks the other removed. After the heal the two sides must find each other again
/// (nobody heartbeats or gossips to a removed member, so only the bounded probes of removed
/// members, `full::Config::removed_probe_interval`, can bring them together). Seeds 1–20, or
/// `RASP_SEED` alone.
#[test]
fn full_membership_mutual_removal_heals() {
    let seeds = match std::env::var("RASP_SEED") {
        Ok(_) => {
            let s = seed_from_env(1);
            s..=s
        }
        Err(_) => 1..=20,
    };
    let mut worst = (Duration::ZERO, 0);
    for seed in seeds {
        let mut sim = sim(seed);
        form(
            &mut sim,
            8,
            |_| Config {
                mode: Mode::Full,
                ..Config::default()
            },
            Duration::from_millis(20),
        );
        sim.run_for(Duration::from_secs(10));
        let a = [NodeId(2), NodeId(5)];
        let b: Vec<NodeId> = (0..8).map(NodeId).filter(|n| !a.contains(n)).collect();
        sim.partition(1, &a, &b, false);
        sim.run_for(Duration::from_secs(70));
        let r = overlay(&sim).report();
        assert_eq!(
            r.components,
            [6, 2],
            "seed {seed}: two sides during the split"
        );
        sim.heal(1);
        let step = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        while !overlay(&sim).views.values().all(|v| v.len() == 7) {
            assert!(
                waited <= PAUSE_REJOIN_BOUND,
                "seed {seed}: views still not full {waited:?} after the heal: {:?}; reproduce with RASP_SEED={seed} cargo test -p rasp-membership --release --test sim full_membership_mutual_removal_heals -- --nocapture",
                overlay(&sim).views
            );
            sim.run_for(step);
            waited += step;
        }
        worst = worst.max((waited, seed));
    }
    println!(
        "sim: full membership, 8 nodes split 2 | 6 for 70 s: all views whole after the heal, worst {:?} (seed {}), bound {PAUSE_REJOIN_BOUND:?}",
        worst.0, worst.1
    );
}

/// The sweep behind [`full_membership_paused_node_rejoins`] (not in the default run): every
/// seed pauses one node (seed mod 8) for 65 s.
/// `RASP_SEEDS=1..1000 cargo test -p rasp-membership --release --test sim full_membership_pause_sweep -- --ignored --nocapture`.
#[test]
#[ignore = "seed sweep; run with --ignored (RASP_SEEDS=1..1000)"]
fn full_membership_pause_sweep() {
    let mut failed = Vec::new();
    let mut worst = (Duration::ZERO, 0);
    let seeds = seeds_from_env();
    let total = seeds.clone().count();
    for seed in seeds {
        match pause_and_rejoin(seed, NodeId(seed % 8), Duration::from_secs(65)) {
            Ok(t) => worst = worst.max((t, seed)),
            Err(e) => {
                eprintln!("{e}");
                failed.push(seed);
            }
        }
    }
    println!(
        "sim: full membership pause sweep: {} of {total} seeds rejoined, worst {:?} (seed {}), failed {failed:?}",
        total - failed.len(),
        worst.0,
        worst.1
    );
    assert!(failed.is_empty(), "failed seeds: {failed:?}");
}

/// Links made so far (neighbour-up events of every node, counted once per link: both ends
/// report one), read from the listeners.
fn link_ups(sim: &Sim) -> u64 {
    let ups: usize = live(sim)
        .into_iter()
        .map(|n| {
            sim.with_atom::<Listener, _>(addr(n, LISTENER), |l| {
                l.events
                    .iter()
                    .filter(|e| matches!(e, PeerServiceEvent::NeighbourUp(_)))
                    .count()
            })
            .unwrap_or(0)
        })
        .sum();
    ups as u64 / 2
}

/// The overlay of a steady cluster does not churn, and a node cut off for a while (an
/// offline client of the advertisement counter, the main job of README "Quickstart") costs
/// a bounded number of new links when it returns: every new link is a hello and, unless the
/// link re-forms with a peer caught up recently, a full-state catch-up for the replication
/// layer above (`dataflow/src/replica.rs`), so overlay churn is state traffic.
///
/// 30 nodes, settled; then 3 minutes with no fault, asserted to make no link but those that
/// fill free slots of under-full views (nothing is suspected, so no reconnect probe goes
/// out, and full views refuse low-priority requests); then 8 epochs of 20 s, in each of
/// which 3 random nodes (not the seeds) are cut off from all others for the epoch; then 2
/// minutes of calm.
///
/// The bound, per offline episode, from the protocol (active view 5): the victim's ≤ 5
/// neighbours each refill one slot (≤ 5 links); on return the victim refills its own view
/// (≤ 5 links: its rejoin, the FORWARD_JOIN walks' ends, the high-priority answers), and
/// each of those links may evict one peer of a full acceptor, which refills one slot (≤ 5
/// links): ≤ 15 links. A reconnect probe (module docs of `hyparview`) that answers adds a
/// link and up to two evictions, so probing every suspect of a returning node (its
/// neighbours, and every passive peer whose request timed out while it was cut off: up to
/// 35) broke this bound: measured on seeds 31, 32 and 33, 514, 468 and 567 links for the 24
/// episodes (bound 360) when every suspect was probed; 188, 172 and 185 with the probes
/// off; 216 on seed 31 with probes only without evidence that the suspect is in this
/// overlay (module docs of `hyparview`).
#[test]
fn offline_nodes_cost_bounded_link_changes() {
    use rand::{Rng, SeedableRng};
    let seed = seed_from_env(31);
    let repro = format!(
        "reproduce with RASP_SEED={seed} cargo test -p rasp-membership --release --test sim offline_nodes_cost_bounded_link_changes"
    );
    let mut sim = sim(seed);
    let n = 30u64;
    form(&mut sim, n, hyparview, Duration::from_millis(20));
    sim.run_for(Duration::from_secs(60));
    assert!(overlay(&sim).report().connected, "not formed; {repro}");
    let formed = link_ups(&sim);

    // Steady: no link changes but the free slots of under-full views filling (a promotion
    // accepted by a peer with room; a full view refuses low-priority requests).
    let active_size = Config::default().hyparview.active_size as u64;
    let free: u64 = live(&sim)
        .into_iter()
        .map(|x| {
            let k = sim
                .with_atom::<MembershipAtom, _>(addr(x, MEMBERSHIP), |a| a.neighbours().len())
                .unwrap_or(0) as u64;
            active_size.saturating_sub(k)
        })
        .sum();
    sim.run_for(Duration::from_secs(180));
    let calm = link_ups(&sim);
    let steady = calm - formed;
    println!("sim: steady 30-node HyParView, 180 s: {steady} link changes ({free} free slots)");
    assert!(
        steady <= free,
        "a steady overlay churned: {steady} links for {free} free slots; {repro}"
    );

    // Offline epochs.
    let epochs = 8u32;
    let per_epoch = 3usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let all: Vec<NodeId> = (0..n).map(NodeId).collect();
    let mut cut: Vec<u32> = Vec::new();
    for e in 0..epochs {
        for id in cut.drain(..) {
            sim.heal(id);
        }
        let mut victims: Vec<u64> = Vec::new();
        while victims.len() < per_epoch {
            let v = rng.random_range(3..n);
            if !victims.contains(&v) {
                victims.push(v);
            }
        }
        for (k, v) in victims.iter().enumerate() {
            let id = 100 + e * per_epoch as u32 + k as u32;
            let others: Vec<NodeId> = all.iter().copied().filter(|x| x.0 != *v).collect();
            sim.partition(id, &[NodeId(*v)], &others, false);
            cut.push(id);
        }
        sim.run_for(Duration::from_secs(20));
    }
    for id in cut.drain(..) {
        sim.heal(id);
    }
    sim.run_for(Duration::from_secs(120));
    let links = link_ups(&sim) - calm;
    let episodes = u64::from(epochs) * per_epoch as u64;
    let bound = 15 * episodes;
    let r = overlay(&sim).report();
    println!(
        "sim: 30-node HyParView, {episodes} offline episodes of 20 s: {links} new links (bound {bound}); after: connected {}",
        r.connected
    );
    assert!(r.connected && r.isolated.is_empty(), "{r:?}; {repro}");
    assert!(
        links <= bound,
        "{links} new links for {episodes} offline episodes (bound {bound}); {repro}\n{}",
        hv_dump(&sim)
    );
}
