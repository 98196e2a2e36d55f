//! The bounded model checker ([`rasp_runtime::sim::explore`]) on a planted bug: a counter on
//! node 0 that two clients increment by read-modify-write (get, then put the value plus
//! one) loses an update when the two reads interleave; the same counter incremented by an
//! atomic `Inc` is clean, and stays clean through a crash only if it is durable.

use rasp_runtime::sim::{
    explore, replay, Budget, ExploreConfig, ExploreReport, Model, Sim, Step, Strategy,
};
use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Boot, Ctx, Message, NodeId, RequestError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Serialize, Deserialize)]
struct Get;
impl Message for Get {
    const KIND: &'static str = "test/get";
}
#[derive(Clone, Serialize, Deserialize)]
struct Value(u64);
impl Message for Value {
    const KIND: &'static str = "test/value";
}
#[derive(Clone, Serialize, Deserialize)]
struct Put(u64);
impl Message for Put {
    const KIND: &'static str = "test/put";
}
#[derive(Clone, Serialize, Deserialize)]
struct Inc;
impl Message for Inc {
    const KIND: &'static str = "test/inc";
}
#[derive(Clone, Serialize, Deserialize)]
struct Ack;
impl Message for Ack {
    const KIND: &'static str = "test/ack";
}

/// The counter on node 0: `applied` counts the writes and increments it applied.
struct Counter {
    value: u64,
    applied: u64,
    durable: bool,
}

impl Counter {
    fn save(&self, ctx: &mut Ctx<Self>) {
        if self.durable {
            ctx.store_put_as(b"counter", &(self.value, self.applied))
                .expect("memory store");
        }
    }
}

impl Atom for Counter {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        if self.durable {
            if let Ok(Some((v, a))) = ctx.store_get_as::<(u64, u64)>(b"counter") {
                (self.value, self.applied) = (v, a);
            }
        }
        ctx.on::<Get>(|me, ctx, from, Get| ctx.reply(from, Value(me.value)));
        ctx.on::<Put>(|me, ctx, from, Put(v)| {
            me.value = v;
            me.applied += 1;
            me.save(ctx);
            ctx.reply(from, Ack);
        });
        ctx.on::<Inc>(|me, ctx, from, Inc| {
            me.value += 1;
            me.applied += 1;
            me.save(ctx);
            ctx.reply(from, Ack);
        });
    }
}

/// A client: increments the counter once, by read-modify-write or atomically.
struct Client {
    rmw: bool,
    acked: u64,
}

const COUNTER: AtomAddr = AtomAddr {
    node: NodeId(0),
    atom: AtomId(0),
};
const TIMEOUT: Duration = Duration::from_secs(5);

fn acked(me: &mut Client, r: Result<Ack, RequestError>) {
    if r.is_ok() {
        me.acked += 1;
    }
}

impl Atom for Client {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        if self.rmw {
            ctx.request(COUNTER, Get, TIMEOUT, |_, ctx, r: Result<Value, _>| {
                if let Ok(Value(v)) = r {
                    ctx.request(COUNTER, Put(v + 1), TIMEOUT, |me, _, r| acked(me, r));
                }
            });
        } else {
            ctx.request(COUNTER, Inc, TIMEOUT, |me, _, r| acked(me, r));
        }
    }
}

fn model(rmw: bool, durable: bool) -> Model {
    let mut boots: Vec<Boot> = vec![boot(move |b| {
        b.spawn(Counter {
            value: 0,
            applied: 0,
            durable,
        });
    })];
    for _ in 0..2 {
        boots.push(boot(move |b| {
            b.spawn(Client { rmw, acked: 0 });
        }));
    }
    Model::new(1, boots)
        .invariant("no increment lost", |sim| {
            match sim.with_atom::<Counter, _>(COUNTER, |c| (c.value, c.applied)) {
                Some((v, a)) if v != a => Err(format!("value {v} after {a} increments")),
                _ => Ok(()),
            }
        })
        .invariant("no acknowledged increment lost", |sim| {
            let acks: u64 = (1..3)
                .filter_map(|n| {
                    sim.with_atom::<Client, _>(AtomAddr::new(NodeId(n), AtomId(0)), |c| c.acked)
                })
                .sum();
            match sim.with_atom::<Counter, _>(COUNTER, |c| c.value) {
                Some(v) if v < acks => Err(format!("value {v}, {acks} increments acknowledged")),
                _ => Ok(()),
            }
        })
}

fn cfg(depth: u32) -> ExploreConfig {
    ExploreConfig {
        depth,
        ..ExploreConfig::default()
    }
}

fn show(r: &ExploreReport) -> String {
    let s = format!(
        "states {} transitions {} depth {} exhausted {} violation {:?}",
        r.states,
        r.transitions,
        r.depth_reached,
        r.exhausted,
        r.violation.as_ref().map(|v| &v.story)
    );
    eprintln!("{s}");
    s
}

/// The hand-made minimal execution of the lost update: both reads are answered before
/// either write lands.
const MINIMAL_LOST_UPDATE: [&str; 6] = [
    "n1 → n0 test/get delivered",
    "n2 → n0 test/get delivered",
    "n0 → n1 test/value (reply) delivered",
    "n0 → n2 test/value (reply) delivered",
    "n1 → n0 test/put delivered",
    "n2 → n0 test/put delivered",
];

#[test]
fn breadth_first_finds_the_lost_update_at_its_minimal_depth() {
    let r = explore(&model(true, false), &cfg(12));
    let v = r
        .violation
        .as_ref()
        .unwrap_or_else(|| panic!("{}", show(&r)));
    assert_eq!(v.invariant, "no increment lost");
    assert_eq!(v.message, "value 1 after 2 increments");
    assert_eq!(v.steps.len(), MINIMAL_LOST_UPDATE.len(), "{}", show(&r));
    // The story is the hand-made execution, up to the order of commuting events.
    let mut got: Vec<String> = v.story[..6]
        .iter()
        .map(|l| l.split_once(" s ").expect("t=... s line").1.to_string())
        .collect();
    let mut want: Vec<String> = MINIMAL_LOST_UPDATE.iter().map(|s| s.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{:#?}", v.story);
    assert!(v.story[6].contains("no increment lost"), "{:#?}", v.story);
}

#[test]
fn the_counterexample_trace_replays_to_the_same_violation() {
    let m = model(true, false);
    let r = explore(&m, &cfg(8));
    let v = r.violation.expect("found");
    let path = std::env::temp_dir().join(format!("rasp-explore-{}.trace", std::process::id()));
    v.trace.save(&path).unwrap();
    let loaded = rasp_runtime::sim::Trace::load(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let (sim, report) = replay(&loaded, |n: NodeId| m.boots[n.0 as usize].clone()).unwrap();
    assert_eq!(report.final_hash, v.trace.final_hash);
    let check = &m.invariants[0].1;
    assert_eq!(check(&sim), Err("value 1 after 2 increments".into()));
}

#[test]
fn the_atomic_counter_is_clean_and_the_space_is_exhausted() {
    let r = explore(&model(false, false), &cfg(16));
    assert!(r.violation.is_none() && r.exhausted, "{}", show(&r));
    // Depth-first visits the same states.
    let d = explore(
        &model(false, false),
        &ExploreConfig {
            strategy: Strategy::Dfs,
            ..cfg(16)
        },
    );
    assert!(d.violation.is_none() && d.exhausted, "{}", show(&d));
    assert_eq!(d.states, r.states, "dfs {} / bfs {}", show(&d), show(&r));
}

#[test]
fn partial_order_reduction_keeps_every_state_with_fewer_transitions() {
    let m = model(false, false);
    let with = explore(&m, &cfg(16));
    let without = explore(
        &m,
        &ExploreConfig {
            por: false,
            ..cfg(16)
        },
    );
    show(&with);
    show(&without);
    assert!(with.exhausted && without.exhausted);
    assert_eq!(with.states, without.states, "sleep sets visit every state");
    assert!(
        with.transitions < without.transitions,
        "with {} / without {}",
        show(&with),
        show(&without)
    );
    // Without the visited set either, the same verdict at a higher cost (a shallower bound:
    // the tree of every path grows fast).
    let plain = |hashing| ExploreConfig {
        hashing,
        por: false,
        ..cfg(8)
    };
    let (graph, tree) = (explore(&m, &plain(true)), explore(&m, &plain(false)));
    assert!(tree.violation.is_none());
    assert!(tree.transitions > graph.transitions, "{}", show(&tree));
}

#[test]
fn a_crash_loses_a_volatile_counter_and_not_a_durable_one() {
    let faults = ExploreConfig {
        faults: Budget {
            crashes: 1,
            ..Budget::default()
        },
        ..cfg(8)
    };
    let r = explore(&model(false, false), &faults);
    let v = r
        .violation
        .as_ref()
        .unwrap_or_else(|| panic!("{}", show(&r)));
    assert_eq!(v.invariant, "no acknowledged increment lost");
    // Hand-made: n1's increment lands and is acknowledged, n0 crashes and restarts empty.
    assert_eq!(v.steps.len(), 4, "{:#?}", v.story);
    assert!(matches!(v.steps[2], Step::Fault(_)) && matches!(v.steps[3], Step::Fault(_)));
    assert!(v.story[2].ends_with("n0 crashes") && v.story[3].ends_with("n0 restarts"));
    show(&r);
    let durable = explore(&model(false, true), &ExploreConfig { depth: 6, ..faults });
    assert!(durable.violation.is_none(), "{}", show(&durable));
    assert!(durable.states > r.states);
}

#[test]
fn losing_a_message_is_a_choice_within_the_budget() {
    let m = model(false, false);
    let clean = explore(&m, &cfg(10));
    let lossy = explore(
        &m,
        &ExploreConfig {
            faults: Budget {
                drops: 1,
                ..Budget::default()
            },
            ..cfg(10)
        },
    );
    assert!(lossy.violation.is_none(), "{}", show(&lossy));
    assert!(
        lossy.states > clean.states,
        "{} / {}",
        show(&lossy),
        show(&clean)
    );
}

#[test]
fn the_result_does_not_depend_on_the_thread_count() {
    let m = model(true, false);
    let one = explore(&m, &cfg(8));
    let two = explore(
        &m,
        &ExploreConfig {
            threads: 2,
            ..cfg(8)
        },
    );
    assert_eq!((one.states, one.transitions), (two.states, two.transitions));
    assert_eq!(
        one.violation.map(|v| v.steps),
        two.violation.map(|v| v.steps)
    );
}

#[test]
fn controlled_mode_runs_only_what_is_picked() {
    let m = model(false, false);
    let mut sim: Sim = m.boot(false);
    let p = sim.pending();
    assert!(!p.is_empty());
    let events = sim.events();
    let digest = sim.state_digest();
    // Nothing happens by itself, and the digest is a function of the state.
    assert_eq!(sim.pending(), p);
    assert_eq!(sim.state_digest(), digest);
    assert!(sim.pick(p[0].seq));
    assert!(sim.events() > events);
    assert_ne!(sim.state_digest(), digest);
    assert!(!sim.pick(p[0].seq), "an event runs once");
}

#[test]
fn depth_first_on_workers_gives_the_sequential_result() {
    let dfs = |threads: usize, depth: u32, faults: Budget, hashing: bool| ExploreConfig {
        strategy: Strategy::Dfs,
        threads,
        faults,
        hashing,
        ..cfg(depth)
    };
    let crash = Budget {
        crashes: 1,
        drops: 1,
        ..Budget::default()
    };
    for (m, depth, faults, hashing) in [
        (model(true, false), 8, Budget::default(), true),
        (model(false, false), 8, Budget::default(), true),
        (model(false, false), 6, crash, true),
        (model(false, false), 5, Budget::default(), false),
    ] {
        let one = explore(&m, &dfs(1, depth, faults, hashing));
        for threads in [2, 3] {
            let many = explore(&m, &dfs(threads, depth, faults, hashing));
            let figures = |r: &ExploreReport| {
                (
                    r.states,
                    r.transitions,
                    r.replayed_steps,
                    r.depth_reached,
                    r.exhausted,
                    r.truncated,
                )
            };
            assert_eq!(figures(&one), figures(&many), "{threads} threads");
            assert_eq!(
                one.violation.as_ref().map(|v| (&v.steps, &v.story)),
                many.violation.as_ref().map(|v| (&v.steps, &v.story)),
                "{threads} threads"
            );
        }
    }
    // A bound on states stops both at the same point.
    let m = model(false, false);
    let capped = |threads| ExploreConfig {
        max_states: 40,
        ..dfs(threads, 8, Budget::default(), true)
    };
    let (a, b) = (explore(&m, &capped(1)), explore(&m, &capped(2)));
    assert!(a.truncated);
    assert_eq!((a.states, a.transitions), (b.states, b.transitions));
}
