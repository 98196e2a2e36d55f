//! Peer-service tests in the crate's small harness: formation, broadcast figures (reliability,
//! RMR, LDH), mass failure, churn, and the full and client-server modes.
//!
//! Figures are printed (`cargo test -p rasp-membership --release -- --nocapture`) and asserted.
//! Each test fixes its seeds; a failing one prints the command that runs it again.

use crate::full::Role;
use crate::hyparview;
use crate::overlay::Overlay;
use crate::plumtree::MsgId;
use crate::proto::Time;
use crate::service::{BroadcastMode, Config, Mode, PeerService, ServiceEvent};
use crate::testkit::{Sim, PAYLOAD};
use rand::seq::SliceRandom;
use rasp_runtime::sim::SeedGuard;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

type Svc = PeerService<u64, u64>;

fn config(mode: Mode, broadcast: BroadcastMode) -> Config {
    Config {
        mode,
        broadcast,
        ..Config::default()
    }
}

/// `n` nodes; node 0 starts alone, the others join through seeds {0, 1, 2} (those alive), one
/// every `gap`. `role(i)` gives each node's role (client-server mode).
fn form(
    seed: u64,
    n: u64,
    cfg: &Config,
    role: impl Fn(u64) -> Role,
    gap: Duration,
    settle: Duration,
) -> Sim<Svc> {
    let mut sim = Sim::new(seed);
    for i in 0..n {
        let c = Config {
            role: role(i),
            ..cfg.clone()
        };
        let seeds: Vec<u64> = (0..3.min(i)).collect();
        sim.add(
            PeerService::new(i, c).expect("valid config"),
            |s, rng, out| {
                if seeds.is_empty() {
                    s.start(rng, out)
                } else {
                    s.join(seeds, Duration::ZERO, rng, out)
                }
            },
        );
        sim.run_for(gap);
    }
    sim.run_for(settle);
    sim
}

fn overlay(sim: &Sim<Svc>) -> Overlay<u64> {
    let mut o = Overlay::new();
    for id in sim.live_ids() {
        o.insert(
            id,
            sim.node(id)
                .expect("live")
                .neighbours()
                .iter()
                .copied()
                .collect(),
        );
    }
    o
}

/// Asymmetric links that persist for a second: a NEIGHBOR handshake in flight is a legitimate
/// momentary asymmetry, a link one side forgot is not.
fn persistent_asymmetry(sim: &mut Sim<Svc>) -> Vec<(u64, u64)> {
    let first: BTreeSet<(u64, u64)> = overlay(sim).report().asymmetric.into_iter().collect();
    sim.run_for(Duration::from_secs(1));
    overlay(sim)
        .report()
        .asymmetric
        .into_iter()
        .filter(|l| first.contains(l))
        .collect()
}

/// Figures of one broadcast.
#[derive(Debug, Clone, Copy)]
struct Figures {
    /// Fraction of live nodes (other than the sender) that delivered.
    reliability: f64,
    /// Relative message redundancy: payload messages / (delivered) − 1 (Plumtree, SRDS 2007, §5: m/(n−1) − 1).
    rmr: f64,
    /// Last delivery hop.
    ldh: u32,
}

/// Broadcasts from `sender`, runs `wait`, measures.
fn broadcast(sim: &mut Sim<Svc>, sender: u64, wait: Duration) -> Figures {
    let before = sim.sent.get(PAYLOAD).copied().unwrap_or(0);
    let first_event = sim.events.len();
    let mut id: Option<MsgId<u64>> = None;
    sim.with(sender, |s, rng, out| {
        id = Some(s.broadcast(sender, rng, out))
    });
    let id = id.expect("sender alive");
    sim.run_for(wait);
    let mut reached = BTreeSet::new();
    let mut ldh = 0;
    for (_, node, e) in &sim.events[first_event..] {
        if let ServiceEvent::Delivered { id: got, round, .. } = e {
            if *got == id {
                reached.insert(*node);
                ldh = ldh.max(*round);
            }
        }
    }
    let payloads = sim.sent.get(PAYLOAD).copied().unwrap_or(0) - before;
    let live = sim.live_ids().len() as f64 - 1.0;
    let delivered = reached.len() as f64;
    Figures {
        reliability: delivered / live,
        rmr: if delivered > 0.0 {
            payloads as f64 / delivered - 1.0
        } else {
            f64::NAN
        },
        ldh,
    }
}

/// Mean figures over `count` broadcasts, one every `gap`, from `sender`, skipping `warmup`.
fn broadcasts(
    sim: &mut Sim<Svc>,
    sender: u64,
    count: usize,
    warmup: usize,
    gap: Duration,
) -> (Figures, f64) {
    let mut all = Vec::new();
    let mut min_rel: f64 = 1.0;
    for i in 0..count {
        let f = broadcast(sim, sender, gap);
        min_rel = min_rel.min(f.reliability);
        if i >= warmup {
            all.push(f);
        }
    }
    let n = all.len() as f64;
    (
        Figures {
            reliability: all.iter().map(|f| f.reliability).sum::<f64>() / n,
            rmr: all.iter().map(|f| f.rmr).sum::<f64>() / n,
            ldh: (all.iter().map(|f| f.ldh as f64).sum::<f64>() / n).round() as u32,
        },
        min_rel,
    )
}

fn messages_per_node_per_second(
    sim: &Sim<Svc>,
    since: &BTreeMap<&'static str, u64>,
    secs: f64,
) -> BTreeMap<&'static str, f64> {
    let n = sim.live_ids().len() as f64;
    sim.sent
        .iter()
        .map(|(k, v)| {
            (
                *k,
                (*v - since.get(k).copied().unwrap_or(0)) as f64 / n / secs,
            )
        })
        .collect()
}

#[test]
fn modes_parse_and_print() {
    for (s, m) in [
        ("full", Mode::Full),
        ("client-server", Mode::ClientServer),
        ("hyparview", Mode::HyParView),
    ] {
        assert_eq!(s.parse::<Mode>(), Ok(m));
        assert_eq!(m.to_string(), s);
        assert_eq!(
            serde_json::to_string(&m).expect("serialises"),
            format!("\"{s}\"")
        );
    }
    assert!(matches!(
        "mesh".parse::<Mode>(),
        Err(crate::Error::UnknownMode(_))
    ));
    assert_eq!("gossip".parse::<BroadcastMode>(), Ok(BroadcastMode::Gossip));
    assert_eq!("client".parse::<Role>(), Ok(Role::Client));
    let c: Config =
        serde_json::from_str(r#"{"mode":"client-server","role":"client"}"#).expect("parses");
    assert_eq!((c.mode, c.role), (Mode::ClientServer, Role::Client));
    let bad = Config {
        hyparview: hyparview::Config {
            active_size: 0,
            ..Default::default()
        },
        ..Config::default()
    };
    assert!(PeerService::<u64, u64>::new(0, bad).is_err());
}

#[test]
fn direct_send_arrives_as_received() {
    let mut sim = form(
        3,
        2,
        &Config::default(),
        |_| Role::Server,
        Duration::from_millis(10),
        Duration::from_secs(2),
    );
    sim.with(1, |s, _, out| s.send(0, 42, out));
    sim.run_for(Duration::from_secs(1));
    assert!(sim.events.iter().any(|(_, node, e)| *node == 0
        && *e
            == ServiceEvent::Received {
                from: 1,
                payload: 42
            }));
    assert_eq!(
        sim.node(0).expect("live").neighbours(),
        &BTreeSet::from([1])
    );
}

/// HyParView + Plumtree at 1,000 nodes, single sender: the case iroh-gossip reports
/// (RMR 0.07, LDH 13, 0 missed; iroh-gossip 0.101's simulator, default config).
#[test]
fn hyparview_plumtree_1000_single_sender() {
    let seed = 1;
    let _g = SeedGuard::new(seed);
    let cfg = config(Mode::HyParView, BroadcastMode::Plumtree);
    let mut sim = form(
        seed,
        1000,
        &cfg,
        |_| Role::Server,
        Duration::from_millis(5),
        Duration::from_secs(20),
    );
    let r = overlay(&sim).report();
    assert!(r.connected && r.isolated.is_empty(), "{r:?}");
    assert!(persistent_asymmetry(&mut sim).is_empty());
    let (f, min_rel) = broadcasts(&mut sim, 17, 30, 10, Duration::from_millis(500));
    println!("hyparview+plumtree 1000 nodes, single sender, 20 broadcasts after 10 warm-up: {f:?} (iroh-gossip: RMR 0.07, LDH 13)");
    assert_eq!(min_rel, 1.0);
    assert!(f.rmr < 0.5, "{f:?}");
    assert!(f.ldh <= 20, "{f:?}");
}

/// Fanout gossip over the same overlay: the redundant baseline.
#[test]
fn hyparview_gossip_1000_single_sender() {
    let seed = 2;
    let _g = SeedGuard::new(seed);
    let cfg = config(Mode::HyParView, BroadcastMode::Gossip);
    let mut sim = form(
        seed,
        1000,
        &cfg,
        |_| Role::Server,
        Duration::from_millis(5),
        Duration::from_secs(20),
    );
    let (f, min_rel) = broadcasts(&mut sim, 17, 10, 0, Duration::from_millis(500));
    println!("hyparview+gossip 1000 nodes, single sender: {f:?}, min reliability {min_rel}");
    // Fanout 7 on an active view of 5 is flooding: everyone, at RMR about degree − 1.
    assert_eq!(min_rel, 1.0);
    assert!(f.rmr > 2.0, "{f:?}");
}

/// What a mass failure left.
#[derive(Debug)]
struct MassFailure {
    /// Survivors.
    live: usize,
    /// Half shuffle periods until the survivors were connected again (if within 20).
    healed_after: Option<u32>,
    /// Minimum broadcast reliability over 5 broadcasts afterwards.
    min_rel: f64,
    /// Survivors outside the sender's component.
    unreached: usize,
    /// Survivors that know no live node (both views, seeds and remembered contacts dead)
    /// and that no live node knows: no protocol can bring them back without a new contact
    /// from outside (a live seed, discovery).
    stranded: usize,
}

/// Crash a fraction of a 1,000-node HyParView overlay at once; measure how many shuffle
/// periods until the survivors are connected again, and broadcast reliability after that.
fn mass_failure(seed: u64, fraction: f64) -> MassFailure {
    let cfg = config(Mode::HyParView, BroadcastMode::Plumtree);
    let period = cfg.hyparview.shuffle_interval;
    let mut sim = form(
        seed,
        1000,
        &cfg,
        |_| Role::Server,
        Duration::from_millis(5),
        Duration::from_secs(20),
    );
    broadcasts(&mut sim, 0, 5, 0, Duration::from_millis(300));
    let mut victims = sim.live_ids();
    victims.shuffle(&mut sim.rng);
    victims.truncate((1000.0 * fraction) as usize);
    sim.crash(&victims);
    let mut healed_after = None;
    for step in 1..=20u32 {
        // Check every half shuffle period.
        sim.run_for(period / 2);
        let r = overlay(&sim).report();
        if r.connected && r.isolated.is_empty() {
            healed_after = Some(step);
            break;
        }
    }
    sim.run_for(period);
    let live = sim.live_ids();
    let sender = live[0];
    let (f, min_rel) = broadcasts(&mut sim, sender, 5, 0, Duration::from_millis(500));
    let reach = overlay(&sim).distances(&sender);
    let knows = |a: u64, b: u64| {
        let h = sim
            .node(a)
            .and_then(|s| s.hyparview())
            .expect("live hyparview");
        h.active().contains(&b) || h.passive().contains(&b) || h.contacts().contains(&b)
    };
    let unreached: Vec<u64> = live
        .iter()
        .copied()
        .filter(|n| !reach.contains_key(n))
        .collect();
    let stranded = unreached
        .iter()
        .filter(|n| {
            live.iter()
                .all(|o| *o == **n || (!knows(**n, *o) && !knows(*o, **n)))
                && (0..3).all(|s| !sim.alive(s))
        })
        .count();
    let m = MassFailure {
        live: live.len(),
        healed_after,
        min_rel,
        unreached: unreached.len(),
        stranded,
    };
    println!(
        "crash {:.0}% of 1000: {m:?} (healed_after in half shuffle periods of {period:?}); broadcast after: {f:?}",
        fraction * 100.0,
    );
    m
}

#[test]
fn half_of_1000_crash_heals_within_two_shuffle_periods() {
    let seed = 4;
    let _g = SeedGuard::new(seed);
    let m = mass_failure(seed, 0.5);
    assert_eq!(m.live, 500);
    let healed = m.healed_after.expect("overlay reconnected");
    assert!(healed <= 4, "took {healed} half shuffle periods");
    assert_eq!(m.min_rel, 1.0);
}

/// The HyParView paper's headline cases. 80%: whole again, every survivor reached. 95%:
/// reported, with how many unreached survivors are stranded (seeds dead, every peer they
/// ever knew dead, known by no survivor: no protocol can bring those back without a new
/// contact from outside).
#[test]
fn crash_80_and_95_percent_reported() {
    let _g = SeedGuard::new(5);
    let m80 = mass_failure(5, 0.8);
    assert!(m80.healed_after.is_some_and(|h| h <= 4), "{m80:?}");
    assert_eq!(m80.min_rel, 1.0);
    let m95 = mass_failure(6, 0.95);
    // What holds today (seed 6): 5 of 50 survivors unreached, 2 of them provably stranded
    // (they know no live node and none knows them); the other 3 are not reconnected within
    // the 110 s watched. Asserted as measured, so a regression shows.
    assert!(m95.unreached <= 5, "{m95:?}");
    assert!(m95.stranded <= m95.unreached, "{m95:?}");
    assert!(m95.min_rel >= 0.89, "{m95:?}");
}

/// Churn: every second one random node (not a seed) departs (crashing and leaving in turn)
/// and a new node joins, for a minute; no node may stay without neighbours longer than the
/// bound. Isolation is measured exactly, from the time-stamped neighbour events (a node
/// counts as isolated from the moment it is added until its first neighbour, and whenever
/// its neighbour count drops to zero), not by sampling.
#[test]
fn churn_isolation_is_bounded() {
    let seed = 8;
    let _g = SeedGuard::new(seed);
    let cfg = config(Mode::HyParView, BroadcastMode::Plumtree);
    let mut sim = form(
        seed,
        300,
        &cfg,
        |_| Role::Server,
        Duration::from_millis(5),
        Duration::from_secs(20),
    );
    // Per live node: neighbour count, and since when it has had none.
    let mut state: BTreeMap<u64, (usize, Option<Time>)> = sim
        .live_ids()
        .into_iter()
        .map(|id| {
            let n = sim.node(id).expect("live").neighbours().len();
            (id, (n, (n == 0).then_some(sim.now)))
        })
        .collect();
    let mut seen = sim.events.len();
    let mut worst = (Duration::ZERO, None);
    let mut isolations = 0u64;
    let mut fold =
        |sim: &Sim<Svc>, seen: &mut usize, state: &mut BTreeMap<u64, (usize, Option<Time>)>| {
            for (at, node, e) in &sim.events[*seen..] {
                let Some((count, since)) = state.get_mut(node) else {
                    continue;
                };
                match e {
                    ServiceEvent::NeighbourUp(_) => {
                        if let Some(t) = since.take() {
                            if *at - t > worst.0 {
                                worst = (*at - t, Some(*node));
                            }
                        }
                        *count += 1;
                    }
                    ServiceEvent::NeighbourDown(_) => {
                        *count = count.saturating_sub(1);
                        if *count == 0 {
                            isolations += 1;
                            *since = Some(*at);
                        }
                    }
                    _ => {}
                }
            }
            *seen = sim.events.len();
        };
    for tick in 0..60u64 {
        let mut candidates: Vec<u64> = sim.live_ids().into_iter().filter(|i| *i > 2).collect();
        candidates.shuffle(&mut sim.rng);
        let gone = candidates[0];
        if tick % 2 == 0 {
            sim.crash(&[gone]);
        } else {
            // Leaves gracefully, then stops.
            sim.with(gone, |s, rng, out| s.leave(rng, out));
            sim.crash(&[gone]);
        }
        fold(&sim, &mut seen, &mut state);
        state.remove(&gone);
        let id = sim.nodes.len() as u64;
        state.insert(id, (0, Some(sim.now)));
        sim.add(
            PeerService::new(id, cfg.clone()).expect("valid"),
            |s, rng, out| s.join(vec![0, 1, 2], Duration::ZERO, rng, out),
        );
        sim.run_for(Duration::from_secs(1));
        fold(&sim, &mut seen, &mut state);
    }
    // Nodes still isolated at the end count up to now.
    let now = sim.now;
    for (id, (_, since)) in &state {
        if let Some(t) = since {
            if now - *t > worst.0 {
                worst = (now - *t, Some(*id));
            }
        }
    }
    sim.run_for(Duration::from_secs(10));
    let r = overlay(&sim).report();
    let asym = persistent_asymmetry(&mut sim);
    println!("churn (1 departure + 1 join per second, 60 s, 300 nodes): {isolations} isolations, longest {:?} (node {:?}; exact, from neighbour events); after: {:?} components, {} persistent asymmetric links", worst.0, worst.1, r.components, asym.len());
    assert!(
        worst.0 <= Duration::from_secs(1),
        "node {:?} stayed isolated {:?}",
        worst.1,
        worst.0
    );
    assert!(r.connected && r.isolated.is_empty(), "{r:?}");
    assert!(asym.is_empty(), "{asym:?}");
}

/// Full membership at `n` nodes: everyone knows everyone; heartbeats dominate the traffic;
/// crashed members are detected. Full membership costs `n` heartbeats per node per second
/// (10^6 messages per simulated second at 1,000 nodes), so the run is kept short: run until
/// the member list has converged (checked every second, bounded), measure the message rate
/// over `window`, three broadcasts, then crash a tenth and wait `detect` (connection loss is
/// the fast path; heartbeat silence, 5 s, the slow one).
fn full_mode(seed: u64, n: u64, window: Duration, detect: Duration) {
    let cfg = config(Mode::Full, BroadcastMode::Plumtree);
    let mut sim = form(
        seed,
        n,
        &cfg,
        |_| Role::Server,
        Duration::from_millis(2),
        Duration::ZERO,
    );
    let min_neighbours = |sim: &Sim<Svc>| {
        sim.live_ids()
            .iter()
            .map(|i| sim.node(*i).expect("live").neighbours().len())
            .min()
    };
    let mut converged = None;
    for s in 1..=10u32 {
        sim.run_for(Duration::from_secs(1));
        if min_neighbours(&sim) == Some(n as usize - 1) {
            converged = Some(s);
            break;
        }
    }
    let before = sim.sent.clone();
    sim.run_for(window);
    let rates = messages_per_node_per_second(&sim, &before, window.as_secs_f64());
    let (f, min_rel) = broadcasts(&mut sim, 3, 3, 1, Duration::from_millis(300));
    println!("full {n}: every node knows every other {converged:?} s after the last join; messages/node/s over {window:?} {rates:?}; plumtree broadcast after warm-up {f:?}");
    assert!(converged.is_some(), "member list not converged in 10 s");
    assert_eq!(min_rel, 1.0);
    // Heartbeats dominate: one per member per second.
    assert!(
        (rates["full_heartbeat"] - (n - 1) as f64).abs() < n as f64 / 50.0,
        "{rates:?}"
    );
    let victims: Vec<u64> = (n / 2..n / 2 + n / 10).collect();
    sim.crash(&victims);
    sim.run_for(detect);
    let after = sim.node(0).expect("live").neighbours().len();
    assert_eq!(
        after,
        (n - 1 - n / 10) as usize,
        "crashed members must be detected"
    );
    let (_, min_rel) = broadcasts(&mut sim, 3, 1, 0, Duration::from_millis(300));
    assert_eq!(min_rel, 1.0);
}

#[test]
fn full_200() {
    let _g = SeedGuard::new(9);
    full_mode(9, 200, Duration::from_secs(5), Duration::from_secs(8));
}

/// 1,000 nodes: 10^6 heartbeats per simulated second; a 1 s measuring window.
#[test]
fn full_1000() {
    let _g = SeedGuard::new(9);
    full_mode(9, 1000, Duration::from_secs(1), Duration::from_secs(1));
}

#[test]
fn client_server_1000() {
    let seed = 10;
    let _g = SeedGuard::new(seed);
    let servers = 3;
    let cfg = config(Mode::ClientServer, BroadcastMode::Plumtree);
    let mut sim = form(
        seed,
        1000,
        &cfg,
        |i| {
            if i < servers {
                Role::Server
            } else {
                Role::Client
            }
        },
        Duration::from_millis(2),
        Duration::from_secs(15),
    );
    let before = sim.sent.clone();
    sim.run_for(Duration::from_secs(5));
    let rates = messages_per_node_per_second(&sim, &before, 5.0);
    for id in sim.live_ids() {
        let n = sim.node(id).expect("live").neighbours();
        if id < servers {
            assert_eq!(n.len(), 999, "server {id}");
        } else {
            assert_eq!(n, &(0..servers).collect::<BTreeSet<u64>>(), "client {id}");
        }
    }
    let (f, min_rel) = broadcasts(&mut sim, 500, 10, 2, Duration::from_millis(500));
    println!("client-server 1000 ({servers} servers): messages/node/s {rates:?}; plumtree broadcast from a client {f:?}");
    assert_eq!(min_rel, 1.0);
    // Client → server → client is 2 hops; Plumtree's tree may route through another client and
    // server (4).
    assert!(f.ldh <= 4, "{f:?}");
    // A server dies: clients keep the other servers and broadcast still reaches everyone.
    sim.crash(&[0]);
    sim.run_for(Duration::from_secs(8));
    let (_, min_rel) = broadcasts(&mut sim, 500, 3, 0, Duration::from_millis(500));
    assert_eq!(min_rel, 1.0);
}

#[test]
fn same_seed_same_run() {
    let run = || {
        let mut sim = form(
            12,
            200,
            &Config::default(),
            |_| Role::Server,
            Duration::from_millis(5),
            Duration::from_secs(10),
        );
        let f = broadcast(&mut sim, 5, Duration::from_secs(1));
        (overlay(&sim), sim.sent.clone(), f.ldh, sim.events.len())
    };
    assert_eq!(run(), run());
}
