//! Same seed, same run; different seed, different run; recorded traces replay exactly and
//! divergence is reported at the first differing event.

mod common;

use common::*;
use rand::Rng;
use rasp_runtime::sim::{replay, Fault, Latency, LinkConfig, NetConfig, Sim, SimConfig, Trace};
use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Boot, Ctx, Error, NodeId, RequestError, Time};
use std::time::Duration;

const NODES: u64 = 6;

/// Every `period`, sends a Seq to a random node and asks another random node; counts
/// answers and timeouts; serves asks and records peer events (via a nested Sink).
struct Chatter {
    period: Duration,
    answers: u64,
    timeouts: u64,
}
impl Atom for Chatter {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.spawn(Sink::default()); // AtomId(1): receives Seq, answers Ask
        ctx.every(self.period, |_, ctx| {
            let to = ctx.rng().random_range(0..NODES);
            let n = ctx.random_u64() % 1000;
            ctx.send(AtomAddr::new(NodeId(to), AtomId(1)), Seq(n));
            let ask = ctx.rng().random_range(0..NODES);
            ctx.request(
                AtomAddr::new(NodeId(ask), AtomId(1)),
                Ask(n),
                Duration::from_millis(30),
                |me, _, r: Result<Answer, RequestError>| match r {
                    Ok(_) => me.answers += 1,
                    Err(_) => me.timeouts += 1,
                },
            );
        });
    }
}

fn chatter(period_ms: u64) -> Boot {
    boot(move |b| {
        b.spawn(Chatter {
            period: Duration::from_millis(period_ms),
            answers: 0,
            timeouts: 0,
        });
    })
}

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        seed_from_env: false,
        net: NetConfig {
            default: LinkConfig {
                latency: Latency::LogNormal {
                    min: Duration::from_millis(1),
                    median: Duration::from_millis(3),
                    sigma: 0.7,
                },
                loss: 0.05,
                duplicate: 0.02,
                reorder: 0.05,
                reorder_delay: Duration::from_millis(20),
            },
            links: vec![],
        },
        max_clock_offset: Duration::from_millis(50),
        max_clock_drift_ppm: 100,
        failure_detection: Duration::from_millis(300),
        ..SimConfig::default()
    }
}

/// A run with every kind of fault.
fn scenario(sim: &mut Sim, boot: impl Fn(NodeId) -> Boot) {
    for i in 0..NODES {
        sim.add_node(boot(NodeId(i)));
    }
    sim.schedule(
        Time::from_millis(300),
        Fault::Partition {
            id: 1,
            a: vec![NodeId(0), NodeId(1)],
            b: vec![NodeId(2), NodeId(3)],
            one_way: false,
        },
    );
    sim.schedule(Time::from_millis(500), Fault::Crash(NodeId(4)));
    sim.run_until(Time::from_millis(700));
    sim.inject(AtomAddr::new(NodeId(5), AtomId(1)).into(), Seq(7));
    sim.apply(Fault::Heal(1));
    sim.restart(NodeId(4));
    sim.partition(2, &[NodeId(5)], &[NodeId(0)], true);
    sim.run_for(Duration::from_millis(800));
}

fn outcome(sim: &Sim) -> Vec<(u64, u64)> {
    (0..NODES)
        .map(|i| {
            sim.with_atom::<Chatter, _>(AtomAddr::new(NodeId(i), AtomId(0)), |c| {
                (c.answers, c.timeouts)
            })
            .unwrap()
        })
        .collect()
}

fn run(seed: u64) -> (u64, u64, Vec<(u64, u64)>, rasp_runtime::MetricsSnapshot) {
    let mut sim = Sim::new(config(seed)).unwrap();
    scenario(&mut sim, |_| chatter(10));
    (sim.trace_hash(), sim.events(), outcome(&sim), sim.metrics())
}

#[test]
fn same_seed_same_run() {
    let seed = rasp_runtime::sim::seed_from_env(1234);
    let _guard = rasp_runtime::sim::SeedGuard::new(seed);
    let a = run(seed);
    let b = run(seed);
    assert!(a.1 > 3_000, "a substantial run: {} events", a.1);
    assert_eq!(a.0, b.0, "trace hash");
    assert_eq!(a.1, b.1);
    assert_eq!(a.2, b.2);
    assert_eq!(a.3, b.3, "metrics");
    // Every fault left a mark.
    for c in [
        "sim.lost",
        "sim.duplicated",
        "sim.dropped_partitioned",
        "sim.crashes",
        "sim.restarts",
    ] {
        assert!(a.3.counter(c, "") > 0, "{c}");
    }
    assert!(
        a.2.iter()
            .all(|(answers, timeouts)| *answers > 0 && *timeouts > 0),
        "{:?}",
        a.2
    );
}

#[test]
fn different_seed_different_run() {
    let a = run(1);
    let b = run(2);
    assert_ne!(a.0, b.0);
    assert_ne!(a.2, b.2);
}

#[test]
fn recorded_trace_replays_from_file() {
    let seed = rasp_runtime::sim::seed_from_env(99);
    let mut sim = Sim::new(config(seed)).unwrap();
    sim.start_recording();
    scenario(&mut sim, |_| chatter(10));
    let path =
        std::env::temp_dir().join(format!("rasp-trace-{}-{seed}.msgpack", std::process::id()));
    sim.save_trace(&path).unwrap();
    let trace = Trace::load(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(trace.seed, seed);
    assert_eq!(trace.hashes.len() as u64, sim.events());
    assert!(trace.inputs.len() >= NODES as usize + 6);

    let (replayed, report) = replay(&trace, |_| chatter(10)).unwrap();
    assert_eq!(report.events, sim.events());
    assert_eq!(report.final_hash, sim.trace_hash());
    assert_eq!(outcome(&replayed), outcome(&sim));

    // A different program (node 3 chats faster) diverges, and the replay says where: at
    // node 3's first timer (10 ms vs 9 ms), i.e. after the boots and before 10 ms.
    match replay(&trace, |n| chatter(if n == NodeId(3) { 9 } else { 10 })) {
        Err(Error::ReplayDiverged { event, detail }) => {
            assert!(
                event > NODES && event < 100,
                "diverged at event {event}: {detail}"
            );
            // 9 ms of node 3's (drifting) clock, in global time.
            assert!(detail.contains("at time 0.00899"), "{detail}");
        }
        other => panic!("expected divergence, got {:?}", other.map(|(_, r)| r)),
    }
}
