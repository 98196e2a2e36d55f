//! Each fault of the simulator's model, observed through atoms.

mod common;

use common::*;
use rasp_runtime::sim::{
    Fault, Latency, LinkConfig, LinkOverride, NetConfig, Sim, SimConfig, Skew,
};
use rasp_runtime::{boot, Atom, Ctx, Dest, NodeId, PeerEvent, RequestError, Time, TimerId};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sim_with(link: LinkConfig, seed: u64) -> Sim {
    let cfg = SimConfig {
        net: NetConfig {
            default: link,
            links: vec![],
        },
        ..SimConfig::seeded(rasp_runtime::sim::seed_from_env(seed))
    };
    Sim::new(cfg).unwrap()
}

/// Node 0 runs a Sender of `count` messages to node 1's Sink.
fn sender_sink(sim: &mut Sim, count: u64, interval: Duration) {
    sim.add_node(boot(move |b| {
        b.spawn(Sender::new(atom0(1), count, interval));
    }));
    sim.add_node(boot(|b| {
        b.spawn(Sink::default());
    }));
}

fn sink(sim: &Sim, node: u64) -> (Vec<(Time, u64)>, usize) {
    sim.with_atom::<Sink, _>(atom0(node), |s| (s.got.clone(), s.inversions()))
        .expect("sink alive")
}

#[test]
fn loss_rate_observed_matches_configured() {
    let mut sim = sim_with(
        LinkConfig {
            loss: 0.2,
            ..LinkConfig::default()
        },
        11,
    );
    sender_sink(&mut sim, 10_000, ms(1));
    sim.run_until(Time::from_secs(11));
    let (got, _) = sink(&sim, 1);
    let rate = 1.0 - got.len() as f64 / 10_000.0;
    // Binomial sd = sqrt(0.2 * 0.8 / 10000) = 0.004: allow 5 sd.
    assert!((rate - 0.2).abs() < 0.02, "observed loss {rate}");
    assert_eq!(sim.sim_counter("sim.lost") as usize, 10_000 - got.len());
}

#[test]
fn duplication_delivers_extra_copies() {
    let mut sim = sim_with(
        LinkConfig {
            duplicate: 0.1,
            ..LinkConfig::default()
        },
        12,
    );
    sender_sink(&mut sim, 5_000, ms(1));
    sim.run_until(Time::from_secs(6));
    let (got, _) = sink(&sim, 1);
    let extra = got.len() - 5_000;
    assert!((400..=600).contains(&extra), "duplicates {extra}");
    assert_eq!(sim.sim_counter("sim.duplicated") as usize, extra);
    let mut ids: Vec<u64> = got.iter().map(|g| g.1).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5_000, "every message arrives at least once");
}

#[test]
fn constant_latency_is_fifo_and_reordering_breaks_it() {
    let mut fifo = sim_with(LinkConfig::default(), 13);
    sender_sink(&mut fifo, 1_000, Duration::from_micros(100));
    fifo.run_until(Time::from_secs(1));
    let (got, inv) = sink(&fifo, 1);
    assert_eq!((got.len(), inv), (1_000, 0));

    let mut re = sim_with(
        LinkConfig {
            reorder: 0.2,
            reorder_delay: ms(5),
            ..LinkConfig::default()
        },
        13,
    );
    sender_sink(&mut re, 1_000, Duration::from_micros(100));
    re.run_until(Time::from_secs(1));
    let (got, inv) = sink(&re, 1);
    assert_eq!(got.len(), 1_000);
    assert!(inv > 50, "only {inv} inversions");

    // Latency variance alone reorders too.
    let mut var = sim_with(
        LinkConfig {
            latency: Latency::Uniform {
                min: ms(1),
                max: ms(10),
            },
            ..LinkConfig::default()
        },
        13,
    );
    sender_sink(&mut var, 1_000, Duration::from_micros(100));
    var.run_until(Time::from_secs(1));
    assert!(sink(&var, 1).1 > 100);
}

#[test]
fn partition_blocks_then_heals() {
    let mut sim = sim_with(LinkConfig::default(), 14);
    sender_sink(&mut sim, 300, ms(10)); // one message every 10 ms for 3 s
    sim.schedule(
        Time::from_secs(1),
        Fault::Partition {
            id: 1,
            a: vec![NodeId(0)],
            b: vec![NodeId(1)],
            one_way: false,
        },
    );
    sim.schedule(Time::from_secs(2), Fault::Heal(1));
    sim.run_until(Time::from_secs(4));
    let (got, _) = sink(&sim, 1);
    let during = got
        .iter()
        .filter(|(t, _)| *t > Time::from_millis(1_002) && *t < Time::from_secs(2))
        .count();
    let after = got.iter().filter(|(t, _)| *t > Time::from_secs(2)).count();
    assert_eq!(during, 0);
    assert!((99..=101).contains(&after), "after heal {after}");
    // Messages sent while partitioned are lost (not queued): ~100 of 300.
    assert!((198..=202).contains(&got.len()), "{}", got.len());
    assert!(sim.sim_counter("sim.dropped_partitioned") >= 99);
}

#[test]
fn one_way_partition_blocks_one_direction() {
    let mut sim = sim_with(LinkConfig::default(), 15);
    // Nodes 0 and 1 each send 100 messages to the other's sink (atom 1).
    for peer in [1u64, 0] {
        sim.add_node(boot(move |b| {
            b.spawn(Sender::new(
                rasp_runtime::AtomAddr::new(NodeId(peer), rasp_runtime::AtomId(1)),
                100,
                ms(10),
            ));
            b.spawn(Sink::default());
        }));
    }
    sim.partition(7, &[NodeId(0)], &[NodeId(1)], true);
    sim.run_until(Time::from_secs(2));
    let got = |n: u64| {
        sim.with_atom::<Sink, _>(
            rasp_runtime::AtomAddr::new(NodeId(n), rasp_runtime::AtomId(1)),
            |s| s.got.len(),
        )
        .unwrap()
    };
    assert_eq!(got(1), 0, "0 -> 1 is blocked");
    assert_eq!(got(0), 100, "1 -> 0 flows");
}

/// Counts Seq messages in volatile state and in the store; recovers the stored count in init.
#[derive(Default)]
struct Durable {
    volatile: u64,
    recovered: u64,
}
impl Atom for Durable {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        self.recovered = ctx.store_get_as::<u64>(b"test/count").unwrap().unwrap_or(0);
        ctx.on::<Seq>(|me, ctx, _, _| {
            me.volatile += 1;
            let stored = me.recovered + me.volatile;
            ctx.store_put_as(b"test/count", &stored).unwrap();
        });
    }
}

#[test]
fn crash_loses_volatile_state_keeps_store_and_restart_recovers() {
    let mut sim = sim_with(LinkConfig::default(), 16);
    sim.add_node(boot(|b| {
        b.spawn(Sender::new(common::atom0(1), 100, ms(10)));
    }));
    sim.add_node(boot(|b| {
        b.spawn(Durable::default());
    }));
    sim.run_until(Time::from_millis(505)); // 50 delivered
    assert_eq!(
        sim.with_atom::<Durable, _>(atom0(1), |d| d.volatile),
        Some(50)
    );
    sim.crash(NodeId(1));
    assert!(!sim.is_up(NodeId(1)));
    assert_eq!(
        sim.with_atom::<Durable, _>(atom0(1), |d| d.volatile),
        None,
        "state is gone"
    );
    let stored: u64 =
        rmp_serde::from_slice(&sim.store(NodeId(1)).get(b"test/count").unwrap()).unwrap();
    assert_eq!(stored, 50, "the store survives");
    sim.run_until(Time::from_millis(805)); // 30 messages sent to a dead node
    sim.restart(NodeId(1));
    assert_eq!(
        sim.with_atom::<Durable, _>(atom0(1), |d| (d.volatile, d.recovered)),
        Some((0, 50))
    );
    sim.run_until(Time::from_secs(2));
    assert_eq!(
        sim.with_atom::<Durable, _>(atom0(1), |d| (d.volatile, d.recovered)),
        Some((20, 50))
    );
    assert_eq!(
        sim.sim_counter("sim.dropped_node_down"),
        30,
        "the 30 messages sent while it was down"
    );
    let total = sim.sim_counter("sim.crashes") + sim.sim_counter("sim.restarts");
    assert_eq!(total, 2);
}

/// Records its clock every local second.
#[derive(Default)]
struct Clock {
    readings: Vec<Time>,
}
impl Atom for Clock {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        let t = ctx.now();
        self.readings.push(t);
        ctx.every(Duration::from_secs(1), |me, ctx| {
            me.readings.push(ctx.now())
        });
    }
}

#[test]
fn clock_skew_is_visible_through_now_and_timers() {
    let mut sim = sim_with(LinkConfig::default(), 17);
    sim.add_node(boot(|b| {
        b.spawn(Clock::default());
    }));
    sim.add_node(boot(|b| {
        b.spawn(Clock::default());
    }));
    sim.apply(Fault::Skew(
        NodeId(1),
        Skew {
            offset_ns: 5_000_000_000,
            drift_ppm: 10_000,
        },
    ));
    sim.run_until(Time::from_secs(10));
    assert_eq!(sim.local_time(NodeId(0)), Time::from_secs(10));
    // 10 s global = 10.1 s at 1% fast, plus 5 s offset.
    assert_eq!(sim.local_time(NodeId(1)), Time::from_millis(15_100));
    let r1 = sim
        .with_atom::<Clock, _>(atom0(1), |c| c.readings.clone())
        .unwrap();
    // A fast clock fires its 1 s local timer every ~0.990 s global: 10 ticks within 10 s.
    assert_eq!(r1.len(), 11, "{r1:?}");
    for w in r1.windows(2).skip(1) {
        let d = w[1] - w[0];
        assert!(
            d >= Duration::from_secs(1) && d < Duration::from_millis(1_001),
            "local period {d:?}"
        );
    }
    let r0 = sim
        .with_atom::<Clock, _>(atom0(0), |c| c.readings.clone())
        .unwrap();
    assert_eq!(r0.len(), 11);
    assert_eq!(r0[10], Time::from_secs(10));
}

#[test]
fn random_skew_is_drawn_per_node_within_bounds() {
    let cfg = SimConfig {
        max_clock_offset: ms(100),
        max_clock_drift_ppm: 50,
        ..SimConfig::seeded(18)
    };
    let mut sim = Sim::new(cfg).unwrap();
    sim.add_nodes(20, &boot(|_| {}));
    sim.run_until(Time::from_secs(100));
    let offs: Vec<i128> = (0..20)
        .map(|i| sim.local_time(NodeId(i)).0 as i128 - 100_000_000_000)
        .collect();
    // |offset| <= 100 ms plus 50 ppm of 100 s = 5 ms.
    assert!(offs.iter().all(|o| o.abs() <= 105_000_000), "{offs:?}");
    assert!(offs.windows(2).any(|w| w[0] != w[1]), "skews differ");
}

/// Asks node 1 once; records the outcome and when it came.
#[derive(Default)]
struct Asker {
    outcome: Option<Result<u64, RequestError>>,
    at: Time,
}
impl Atom for Asker {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.request(
            atom0(1),
            Ask(21),
            ms(500),
            |me, ctx, r: Result<Answer, RequestError>| {
                assert!(me.outcome.is_none(), "a continuation runs once");
                me.outcome = Some(r.map(|a| a.0));
                me.at = ctx.now();
            },
        );
    }
}

#[test]
fn request_gets_reply_or_times_out_when_reply_is_lost() {
    for (lose_replies, seed) in [(false, 19), (true, 20)] {
        let mut links = vec![];
        if lose_replies {
            links.push(LinkOverride {
                from: NodeId(1),
                to: NodeId(0),
                link: LinkConfig {
                    loss: 1.0,
                    ..LinkConfig::default()
                },
            });
        }
        let cfg = SimConfig {
            net: NetConfig {
                default: LinkConfig::default(),
                links,
            },
            ..SimConfig::seeded(seed)
        };
        let mut sim = Sim::new(cfg).unwrap();
        sim.add_node(boot(|b| {
            b.spawn(Asker::default());
        }));
        sim.add_node(boot(|b| {
            b.spawn(Sink::default());
        }));
        sim.run_until(Time::from_secs(1));
        assert_eq!(
            sim.with_atom::<Sink, _>(atom0(1), |s| s.asks),
            Some(1),
            "the request arrived"
        );
        let (outcome, at) = sim
            .with_atom::<Asker, _>(atom0(0), |a| (a.outcome.clone(), a.at))
            .unwrap();
        if lose_replies {
            assert_eq!(outcome, Some(Err(RequestError::Timeout)));
            assert_eq!(at, Time::from_millis(500));
            assert_eq!(
                sim.node_metrics(NodeId(0)).counter("request_timeouts", ""),
                1
            );
        } else {
            assert_eq!(outcome, Some(Ok(42)));
            assert_eq!(at, Time::from_millis(2), "one round trip of 1 ms links");
        }
    }
}

/// A one-shot and a periodic timer, both cancelled at 350 ms.
#[derive(Default)]
struct Timers {
    ticks: u32,
    once_fired: bool,
    cancelled: (bool, bool, bool),
}
impl Atom for Timers {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        let once = ctx.after(Duration::from_secs(1), |me, _| me.once_fired = true);
        let every: TimerId = ctx.every(ms(100), |me, _| me.ticks += 1);
        ctx.after(ms(350), move |me, ctx| {
            me.cancelled = (ctx.cancel(once), ctx.cancel(every), ctx.cancel(every));
        });
    }
}

#[test]
fn timers_fire_and_cancel() {
    let mut sim = sim_with(LinkConfig::default(), 21);
    sim.add_node(boot(|b| {
        b.spawn(Timers::default());
    }));
    sim.run_until(Time::from_secs(3));
    let t = sim
        .with_atom::<Timers, _>(atom0(0), |t| (t.ticks, t.once_fired, t.cancelled))
        .unwrap();
    assert_eq!(t, (3, false, (true, true, false)));
    assert_eq!(sim.host(NodeId(0)).unwrap().pending_alarms(), 0);
    assert_eq!(
        sim.pending_events(),
        0,
        "cancelled timers leave no live events behind"
    );
}

#[test]
fn peers_come_up_on_send_and_go_down_after_crash() {
    let mut sim = sim_with(LinkConfig::default(), 22);
    sim.add_node(boot(|b| {
        b.spawn(Sink::default());
        b.spawn(Sender::new(atom0(1), 1, ms(10)));
    }));
    sim.add_node(boot(|b| {
        b.spawn(Sink::default());
    }));
    sim.run_until(Time::from_millis(100));
    assert_eq!(sim.connections(NodeId(0)), vec![NodeId(1)]);
    let peers = |sim: &Sim, n| {
        sim.with_atom::<Sink, _>(atom0(n), |s| s.peers.clone())
            .unwrap()
    };
    // The send at 10 ms opens the connection after one round trip (2 ms).
    assert_eq!(
        peers(&sim, 0),
        vec![(Time::from_millis(12), PeerEvent::Up(NodeId(1)))]
    );
    assert_eq!(
        peers(&sim, 1),
        vec![(Time::from_millis(12), PeerEvent::Up(NodeId(0)))]
    );
    sim.crash(NodeId(1));
    sim.run_until(Time::from_secs(2));
    // Reported after the failure-detection delay (1 s by default).
    assert_eq!(
        peers(&sim, 0)[1],
        (Time::from_millis(1_100), PeerEvent::Down(NodeId(1)))
    );
    assert!(sim.connections(NodeId(0)).is_empty());
}

#[test]
fn partition_brings_connections_down_and_send_reconnects_after_heal() {
    let mut sim = sim_with(LinkConfig::default(), 23);
    sim.add_node(boot(|b| {
        b.spawn(Sink::default());
        b.spawn(Sender::new(atom0(1), 1000, ms(100)));
    }));
    sim.add_node(boot(|b| {
        b.spawn(Sink::default());
    }));
    sim.schedule(
        Time::from_secs(1),
        Fault::Partition {
            id: 1,
            a: vec![NodeId(0)],
            b: vec![NodeId(1)],
            one_way: true,
        },
    );
    sim.schedule(Time::from_secs(5), Fault::HealAll);
    sim.run_until(Time::from_secs(7));
    let evs: Vec<PeerEvent> = sim
        .with_atom::<Sink, _>(atom0(0), |s| s.peers.iter().map(|p| p.1).collect())
        .unwrap();
    assert_eq!(
        evs,
        vec![
            PeerEvent::Up(NodeId(1)),
            PeerEvent::Down(NodeId(1)),
            PeerEvent::Up(NodeId(1))
        ]
    );
    let down_at = sim
        .with_atom::<Sink, _>(atom0(0), |s| s.peers[1].0)
        .unwrap();
    assert_eq!(down_at, Time::from_secs(2));
}

#[test]
fn disconnect_reports_down_on_both_sides() {
    struct Closer;
    impl Atom for Closer {
        fn init(&mut self, ctx: &mut Ctx<Self>) {
            ctx.connect(&rasp_runtime::Contact::bare(NodeId(1)));
            ctx.after(ms(50), |_, ctx| {
                assert_eq!(ctx.connected(), vec![NodeId(1)]);
                ctx.disconnect(NodeId(1));
            });
        }
    }
    let mut sim = sim_with(LinkConfig::default(), 24);
    sim.add_node(boot(|b| {
        b.spawn(Sink::default());
        b.spawn(Closer);
    }));
    sim.add_node(boot(|b| {
        b.spawn(Sink::default());
    }));
    sim.run_until(Time::from_secs(1));
    let p = |n| {
        sim.with_atom::<Sink, _>(atom0(n), |s| s.peers.clone())
            .unwrap()
    };
    assert_eq!(
        p(0),
        vec![
            (Time::from_millis(2), PeerEvent::Up(NodeId(1))),
            (Time::from_millis(50), PeerEvent::Down(NodeId(1)))
        ]
    );
    assert_eq!(
        p(1),
        vec![
            (Time::from_millis(2), PeerEvent::Up(NodeId(0))),
            (Time::from_millis(51), PeerEvent::Down(NodeId(0)))
        ]
    );
}

#[test]
fn services_resolve_at_the_receiver_and_clients_get_replies() {
    struct Named;
    impl Atom for Named {
        fn init(&mut self, ctx: &mut Ctx<Self>) {
            ctx.register("doubler").unwrap();
            assert!(
                ctx.register("doubler").is_ok(),
                "re-registering by the owner is fine"
            );
            ctx.on::<Ask>(|_, ctx, from, Ask(n)| ctx.reply(from, Answer(2 * n)));
        }
    }
    let mut sim = sim_with(LinkConfig::default(), 25);
    sim.add_node(boot(|b| {
        b.spawn(Sink::default());
        b.spawn(Named);
    }));
    let id = sim.inject_request(Dest::service(NodeId(0), "doubler"), Ask(4));
    sim.inject(Dest::service(NodeId(0), "nobody"), Ask(1));
    sim.run_until(Time::from_secs(1));
    let out = sim.take_outbox();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].corr, rasp_runtime::Corr::Reply(id));
    assert_eq!(
        out[0].payload.clone().decode::<Answer>().unwrap(),
        Answer(8)
    );
    assert_eq!(
        sim.node_metrics(NodeId(0))
            .counter("dropped_no_service", ""),
        1
    );
}

#[test]
#[should_panic(expected = "invariant `at most 5 messages` violated at event")]
fn invariant_violation_names_seed_time_and_event() {
    let mut sim = sim_with(LinkConfig::default(), 26);
    sender_sink(&mut sim, 100, ms(1));
    sim.add_invariant("at most 5 messages", 1, |s| {
        let n = s
            .with_atom::<Sink, _>(atom0(1), |k| k.got.len())
            .unwrap_or(0);
        if n <= 5 {
            Ok(())
        } else {
            Err(format!("{n} messages"))
        }
    });
    sim.run_until(Time::from_secs(1));
}

/// SIGSTOP / SIGCONT: a paused node handles nothing; the messages sent to it meanwhile are
/// held and all arrive at the resume, none lost; its timer fires once, late, at the resume.
#[test]
fn pause_holds_messages_and_timers_until_resume() {
    let mut sim = sim_with(LinkConfig::default(), 23);
    sender_sink(&mut sim, 1_000, ms(10));
    sim.add_node(boot(|b| {
        b.spawn(Clock::default());
    }));
    sim.run_until(Time::from_millis(2_500));
    let before = sink(&sim, 1).0.len();
    sim.pause(NodeId(1));
    sim.pause(NodeId(2));
    assert!(sim.is_paused(NodeId(1)));
    sim.run_until(Time::from_millis(7_500));
    assert_eq!(
        sink(&sim, 1).0.len(),
        before,
        "a paused node handles nothing"
    );
    let ticks = sim
        .with_atom::<Clock, _>(atom0(2), |c| c.readings.len())
        .unwrap();
    assert_eq!(ticks, 3, "0 s, 1 s, 2 s: none while paused");
    sim.resume(NodeId(1));
    sim.resume(NodeId(2));
    sim.run_until(Time::from_millis(7_500));
    let (got, _) = sink(&sim, 1);
    let held: Vec<_> = got[before..]
        .iter()
        .filter(|(t, _)| *t == Time::from_millis(7_500))
        .collect();
    assert!(
        held.len() >= 490,
        "about 500 held messages arrive at the resume: {}",
        held.len()
    );
    let r = sim
        .with_atom::<Clock, _>(atom0(2), |c| c.readings.clone())
        .unwrap();
    assert_eq!(
        r[3],
        Time::from_millis(7_500),
        "the overdue timer fires at the resume: {r:?}"
    );
    sim.run_until(Time::from_secs(12));
    assert_eq!(sink(&sim, 1).0.len(), 1_000, "nothing lost");
    assert_eq!(sim.sim_counter("sim.pauses"), 2);
}
