//! Replication in the simulator: threshold reads across replicas, catch-up after a restart
//! (`replica` module docs, "Catch-up at once") with durable variables, triggers that fire on exactly one node and never
//! twice, the Plumtree carrier, and Selective Hearing (clients hold only what they read).
//!
//! A failing run prints its seed and the command to reproduce it.

use std::time::Duration;

use rasp_dataflow::causal::DSet;
use rasp_dataflow::replica::{Carrier, HasReplica, Replica, ReplicaConfig, SyncMode};
use rasp_dataflow::update::{add, inc};
use rasp_dataflow::{Func, Interest, Program, Var};
use rasp_lattice::{GCounter, ORSet, Query, Threshold};
use rasp_membership::{Config as MConfig, MembershipAtom, Mode};
use rasp_runtime::sim::{seed_from_env, Fault, LinkConfig, NetConfig, SeedGuard, Sim, SimConfig};
use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Contact, Ctx, Dest, Message, NodeId, Origin};
use serde::{Deserialize, Serialize};

const APP: AtomId = AtomId(1);

/// The program every node runs: a counter, a set, and a derived set.
fn build(p: &mut Program) {
    p.declare::<GCounter>("clicks").unwrap();
    p.declare::<GCounter>("fired").unwrap();
    let s = p.declare::<ORSet<i64>>("s").unwrap();
    p.map("sq", &s, Func::new("sq", |x: &i64| x * x)).unwrap();
    // As a plain `rasp node` does: know the JSON-bridged types, so variables of these types
    // declared at run time on another node are held here too.
    rasp_dataflow::json::JsonTypes::standard().teach(p);
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Do {
    Click(u64),
    Add(i64),
    /// Declares an `ORSet<String>` at run time (what a node's HTTP `PUT /vars/{id}` does).
    Declare(String),
    /// Adds an element to a run-time declared set.
    AddTo(String, String),
}
impl Message for Do {
    const KIND: &'static str = "test/do";
}

/// What an app atom observed, for the assertions.
#[derive(Default)]
struct Seen {
    /// The counter value after every change seen here.
    changes: Vec<u64>,
    /// Index into `changes` at which the threshold read fired, and the value it saw.
    read_at: Option<(usize, u64)>,
}

struct App {
    config: ReplicaConfig,
    read_threshold: Option<u64>,
    trigger_at: Option<u64>,
    replica: Option<Replica>,
    seen: std::rc::Rc<std::cell::RefCell<Seen>>,
}

impl HasReplica for App {
    fn replica(&mut self) -> &mut Replica {
        self.replica.as_mut().unwrap()
    }
}

impl Atom for App {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.register(rasp_dataflow::replica::SERVICE).unwrap();
        let node = ctx.node();
        let mut p = Program::with_interest(node.0, self.config.interest.clone());
        build(&mut p);
        let clicks = Var::<GCounter>::named("clicks");
        if p.holds("clicks") {
            if let Some(n) = self.read_threshold {
                // Registered before the subscription, so on the change that makes it hold it
                // runs first: `changes.len()` is the index of that change.
                let seen = self.seen.clone();
                p.read(
                    &clicks,
                    Threshold::value(n as i64),
                    move |_, c: &GCounter| {
                        let mut s = seen.borrow_mut();
                        let at = s.changes.len();
                        s.read_at = Some((at, c.query()));
                    },
                )
                .unwrap();
            }
            let seen = self.seen.clone();
            p.subscribe(&clicks, move |_, c: &GCounter| {
                seen.borrow_mut().changes.push(c.query())
            })
            .unwrap();
        }
        self.replica = Some(Replica::new(node, self.config.clone(), p));
        Replica::install(self, ctx);
        if let Some(n) = self.trigger_at {
            let me = node.0;
            self.replica()
                .trigger_once(
                    "enough-clicks",
                    &clicks,
                    Threshold::value(n as i64),
                    move |p, _| {
                        p.update(&Var::<GCounter>::named("fired"), inc(1), me)
                            .unwrap();
                    },
                )
                .unwrap();
        }
        ctx.on::<Do>(|a, ctx, _: &Origin, op| {
            let actor = ctx.node().0;
            let p = a.replica().program_mut();
            match op {
                Do::Click(n) => {
                    p.update(&Var::<GCounter>::named("clicks"), inc(n), actor)
                        .unwrap();
                }
                Do::Add(x) => {
                    p.update(&Var::<ORSet<i64>>::named("s"), add(x), actor)
                        .unwrap();
                }
                Do::Declare(id) => {
                    p.declare::<ORSet<String>>(&id).unwrap();
                }
                Do::AddTo(id, x) => {
                    p.update(&Var::<ORSet<String>>::named(&id), add(x), actor)
                        .unwrap();
                }
            }
        });
    }
}

struct Cluster {
    sim: Sim,
    _guard: SeedGuard,
}

fn cluster(
    seed: u64,
    nodes: u64,
    mode: Mode,
    app: impl Fn(NodeId) -> (ReplicaConfig, Option<u64>, Option<u64>) + Send + Sync + 'static,
) -> Cluster {
    let seed = seed_from_env(seed);
    let cfg = SimConfig {
        seed,
        seed_from_env: false,
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
    let mut sim = Sim::new(cfg).unwrap();
    let app = std::sync::Arc::new(app);
    for _ in 0..nodes {
        let app = app.clone();
        sim.add_node(boot(move |b| {
            let node = b.node();
            let seeds = if node.0 == 0 {
                vec![]
            } else {
                vec![Contact::bare(NodeId(0))]
            };
            b.spawn(
                MembershipAtom::new(
                    MConfig {
                        mode,
                        ..MConfig::default()
                    },
                    seeds,
                )
                .unwrap(),
            );
            let (config, read_threshold, trigger_at) = app(node);
            b.spawn(App {
                config,
                read_threshold,
                trigger_at,
                replica: None,
                seen: Default::default(),
            });
        }));
    }
    sim.run_for(Duration::from_secs(3));
    Cluster {
        sim,
        _guard: SeedGuard::new(seed),
    }
}

fn at(node: u64) -> Dest {
    Dest::Atom(AtomAddr::new(NodeId(node), APP))
}

fn with_app<R>(sim: &Sim, node: u64, f: impl FnOnce(&App) -> R) -> R {
    sim.with_atom::<App, _>(AtomAddr::new(NodeId(node), APP), f)
        .expect("app atom")
}

/// The run-time declared set `late` on `node`, if it holds it.
fn late(sim: &Sim, node: u64) -> Option<std::collections::BTreeSet<String>> {
    with_app(sim, node, |a| {
        a.replica
            .as_ref()
            .unwrap()
            .program()
            .query(&Var::<ORSet<String>>::named("late"))
            .ok()
    })
}

fn clicks(sim: &Sim, node: u64) -> u64 {
    with_app(sim, node, |a| {
        a.replica
            .as_ref()
            .unwrap()
            .program()
            .query(&Var::<GCounter>::named("clicks"))
            .unwrap()
    })
}

/// A read blocked on another replica's counter unblocks exactly at the first state where the
/// threshold holds there: not before, and not later.
#[test]
fn threshold_read_unblocks_exactly_when_it_holds_across_replicas() {
    let mut c = cluster(11, 4, Mode::Full, |n| {
        let read = (n.0 == 3).then_some(7);
        (ReplicaConfig::default(), read, None)
    });
    for k in 0..10u64 {
        c.sim.inject(at(k % 3), Do::Click(1));
        c.sim.run_for(Duration::from_millis(700));
        let (fired, value_here) = with_app(&c.sim, 3, |a| {
            let s = a.seen.borrow();
            (s.read_at, s.changes.last().copied().unwrap_or(0))
        });
        // Not before: while node 3's counter is below 7, the read has not fired.
        if value_here < 7 {
            assert!(fired.is_none(), "fired early at {value_here}");
        }
    }
    c.sim.run_for(Duration::from_secs(3));
    let seen = with_app(&c.sim, 3, |a| {
        let s = a.seen.borrow();
        (s.read_at, s.changes.clone())
    });
    let (at_change, value) = seen.0.expect("the read fired");
    let first_hold = seen.1.iter().position(|v| *v >= 7).unwrap();
    assert_eq!(
        at_change, first_hold,
        "fired at the first state that holds: {:?}",
        seen.1
    );
    assert_eq!(value, seen.1[first_hold]);
    assert!(seen.1[..first_hold].iter().all(|v| *v < 7));
    assert_eq!(clicks(&c.sim, 3), 10);
}

/// Durable variables survive a crash; the restarted node has them at once and catches up
/// with what it missed without waiting for a new update (`replica` module docs, "Catch-up at once").
#[test]
fn restarted_node_recovers_and_catches_up_at_once() {
    let durable = ReplicaConfig {
        durable: true,
        sync: SyncMode::DeltaBpRr,
        ..ReplicaConfig::default()
    };
    let mut c = cluster(12, 4, Mode::Full, move |_| (durable.clone(), None, None));
    for k in 0..8u64 {
        c.sim.inject(at(k % 4), Do::Click(1));
        c.sim.inject(at(k % 4), Do::Add(k as i64));
    }
    c.sim.run_for(Duration::from_secs(3));
    assert_eq!(clicks(&c.sim, 2), 8);
    c.sim.apply(Fault::Crash(NodeId(2)));
    // Updates it misses while down; then nothing changes any more.
    for k in 0..5u64 {
        c.sim.inject(at(k % 2), Do::Click(1));
    }
    c.sim.run_for(Duration::from_secs(3));
    c.sim.apply(Fault::Restart(NodeId(2)));
    c.sim.run_for(Duration::from_millis(1));
    // Restored from its store before hearing from anyone.
    assert_eq!(clicks(&c.sim, 2), 8, "durable state restored at boot");
    // Caught up within a couple of round trips plus the membership rejoin, with no new update.
    c.sim.run_for(Duration::from_secs(3));
    assert_eq!(clicks(&c.sim, 2), 13);
    let sq = with_app(&c.sim, 2, |a| {
        a.replica
            .as_ref()
            .unwrap()
            .program()
            .query(&Var::<DSet<i64>>::named("sq"))
            .unwrap()
    });
    assert_eq!(sq, (0..8i64).map(|x| x * x).collect());
}

/// Three servers arm the same trigger: it fires on exactly one node, once, and a restart
/// does not make it fire again.
#[test]
fn trigger_fires_on_exactly_one_node_and_never_twice() {
    let durable = ReplicaConfig {
        durable: true,
        ..ReplicaConfig::default()
    };
    let mut c = cluster(13, 5, Mode::Full, move |n| {
        let trigger = (n.0 < 3).then_some(20);
        (durable.clone(), None, trigger)
    });
    for k in 0..30u64 {
        c.sim.inject(at(k % 5), Do::Click(1));
        c.sim.run_for(Duration::from_millis(200));
    }
    c.sim.run_for(Duration::from_secs(3));
    let fired = |sim: &Sim, n: u64| -> u64 {
        with_app(sim, n, |a| {
            a.replica
                .as_ref()
                .unwrap()
                .program()
                .query(&Var::<GCounter>::named("fired"))
                .unwrap()
        })
    };
    for n in 0..5 {
        assert_eq!(fired(&c.sim, n), 1, "node {n} sees exactly one firing");
    }
    // The owner (smallest armed node) restarts: its fired record keeps it from firing again.
    c.sim.apply(Fault::Crash(NodeId(0)));
    c.sim.run_for(Duration::from_secs(2));
    c.sim.apply(Fault::Restart(NodeId(0)));
    c.sim.inject(at(1), Do::Click(5));
    c.sim.run_for(Duration::from_secs(5));
    for n in 0..5 {
        assert_eq!(fired(&c.sim, n), 1, "node {n}: still exactly one firing");
    }
}

/// Deltas carried by Plumtree over a HyParView overlay converge too.
#[test]
fn plumtree_carrier_converges() {
    let cfg = ReplicaConfig {
        carrier: Carrier::Plumtree,
        ..ReplicaConfig::default()
    };
    let mut c = cluster(14, 12, Mode::HyParView, move |_| (cfg.clone(), None, None));
    c.sim.run_for(Duration::from_secs(5));
    for k in 0..24u64 {
        c.sim.inject(at(k % 12), Do::Click(2));
        c.sim.inject(at((k * 5) % 12), Do::Add(k as i64 % 9));
    }
    c.sim.run_for(Duration::from_secs(10));
    for n in 0..12 {
        assert_eq!(clicks(&c.sim, n), 48, "node {n}");
    }
}

/// A client holding only the derived variable receives it from the servers, and nothing else.
#[test]
fn clients_hold_and_receive_only_their_interest() {
    let mut c = cluster(15, 4, Mode::Full, |n| {
        let interest = if n.0 == 3 {
            Interest::Only(["sq".to_string()].into_iter().collect())
        } else {
            Interest::All
        };
        (
            ReplicaConfig {
                interest,
                ..ReplicaConfig::default()
            },
            None,
            None,
        )
    });
    for k in 0..6i64 {
        c.sim.inject(at(k as u64 % 3), Do::Add(k));
        c.sim.inject(at(k as u64 % 3), Do::Click(1));
    }
    c.sim.run_for(Duration::from_secs(4));
    let (held, sq, received) = with_app(&c.sim, 3, |a| {
        let r = a.replica.as_ref().unwrap();
        (
            r.program().held(),
            r.program().query(&Var::<DSet<i64>>::named("sq")).unwrap(),
            r.stats().bytes_received.keys().cloned().collect::<Vec<_>>(),
        )
    });
    assert_eq!(held, vec!["sq".to_string()]);
    assert_eq!(sq, (0..6i64).map(|x| x * x).collect());
    assert_eq!(
        received,
        vec!["sq".to_string()],
        "nothing but its interest arrived"
    );
}

/// Who ran the trigger's action, as node `n` sees it: the `fired` counter per actor.
fn fired_by(sim: &Sim, n: u64) -> std::collections::BTreeMap<u64, u64> {
    with_app(sim, n, |a| {
        a.replica
            .as_ref()
            .unwrap()
            .program()
            .state(&Var::<GCounter>::named("fired"))
            .unwrap()
            .counts()
            .clone()
    })
}

/// Five nodes: servers 0 to 2 armed with the same durable trigger at 20 clicks, clients 3 and
/// 4 holding only the counters (like the ad counter's clients: not the fired set); the clicks
/// stop at 10.
fn armed_cluster(seed: u64) -> Cluster {
    let mut c = cluster(seed, 5, Mode::Full, move |n| {
        let interest = if n.0 < 3 {
            Interest::All
        } else {
            Interest::Only(["clicks", "fired"].map(String::from).into())
        };
        let config = ReplicaConfig {
            durable: true,
            interest,
            ..ReplicaConfig::default()
        };
        let trigger = (n.0 < 3).then_some(20);
        (config, None, trigger)
    });
    c.sim.inject(at(3), Do::Click(10));
    c.sim.run_for(Duration::from_secs(3));
    assert_eq!(clicks(&c.sim, 1), 10);
    c
}

/// Bound on the takeover, from the owner's crash: the failure detector's suspicion timeout
/// (`ReplicaConfig::suspect_after`, 10 s by default) plus three sync intervals (the
/// heartbeats and the threshold's last increment travelling, and the tick that re-checks).
const TAKEOVER_BOUND: Duration = Duration::from_secs(13);

/// Runs until node `n` sees a firing (at most 30 s); returns how long that took.
fn until_fired(sim: &mut Sim, n: u64) -> Option<Duration> {
    let start = sim.now();
    while sim.now() - start < Duration::from_secs(30) {
        sim.run_for(Duration::from_millis(100));
        if fired_by(sim, n).values().sum::<u64>() > 0 {
            return Some(sim.now() - start);
        }
    }
    None
}

/// The owner of a trigger (the smallest armed node) crashes before the threshold holds and
/// never returns: the next armed node takes over and fires, once, within the stated bound.
#[test]
fn trigger_moves_to_a_live_server_when_the_owner_dies() {
    let mut c = armed_cluster(16);
    c.sim.apply(Fault::Crash(NodeId(0)));
    c.sim.inject(at(4), Do::Click(10));
    let took = until_fired(&mut c.sim, 1);
    let took = took.expect("a live armed node fires after the owner died");
    eprintln!("takeover {took:?} after the owner's crash (bound {TAKEOVER_BOUND:?})");
    assert!(took <= TAKEOVER_BOUND, "took {took:?}");
    c.sim.run_for(Duration::from_secs(5));
    for n in 1..5 {
        let by = fired_by(&c.sim, n);
        assert_eq!(by, [(1, 1)].into(), "node {n}: fired once, by node 1");
    }
}

/// The old owner comes back with its durable store after the takeover fired: it learns that
/// the action already ran (the fired set is a replicated variable) and does not run it. It
/// comes back cut off from the other servers, so the first catch-up it gets is a client's,
/// which brings the counter past the threshold but not the fired set: a returning node must
/// not take the ownership back before it heard the fired set (or waited `suspect_after`).
#[test]
fn old_owner_returning_after_a_takeover_does_not_fire_again() {
    let mut c = armed_cluster(17);
    c.sim.apply(Fault::Crash(NodeId(0)));
    c.sim.inject(at(4), Do::Click(10));
    until_fired(&mut c.sim, 1).expect("takeover");
    c.sim.run_for(Duration::from_secs(2));
    c.sim.apply(Fault::Partition {
        id: 2,
        a: vec![NodeId(0)],
        b: vec![NodeId(1), NodeId(2)],
        one_way: false,
    });
    c.sim.apply(Fault::Restart(NodeId(0)));
    c.sim.run_for(Duration::from_secs(5));
    assert_eq!(clicks(&c.sim, 0), 20, "caught up by the clients");
    assert_eq!(fired_by(&c.sim, 0), [(1, 1)].into(), "node 0 did not fire");
    c.sim.apply(Fault::Heal(2));
    // Longer than the suspicion timeout: the returning node's start-up wait is over too.
    c.sim.inject(at(4), Do::Click(1));
    c.sim.run_for(Duration::from_secs(15));
    for n in 0..5 {
        assert_eq!(clicks(&c.sim, n), 21, "node {n}");
        let by = fired_by(&c.sim, n);
        assert_eq!(by, [(1, 1)].into(), "node {n}: still one firing, node 1's");
    }
}

/// The owner fires while its fired record cannot leave it (cut off by a partition), then
/// crashes; the other side takes over and fires too. That is the guarantee: at most once per
/// node, and per side of a partition (a crash between firing and replicating the record is
/// such a side); exactly once in a connected cluster. When the owner comes back with its
/// durable store and the partition heals, nobody fires a third time and both records join.
#[test]
fn owner_that_fired_unseen_then_crashed_fires_at_most_once_per_side() {
    let mut c = armed_cluster(18);
    c.sim.inject(at(3), Do::Click(9));
    c.sim.run_for(Duration::from_secs(3));
    c.sim.apply(Fault::Partition {
        id: 1,
        a: vec![NodeId(0)],
        b: (1..5).map(NodeId).collect(),
        one_way: false,
    });
    c.sim.inject(at(0), Do::Click(1));
    // Its tick persists the record; nothing reaches the other side.
    c.sim.run_for(Duration::from_millis(1500));
    assert_eq!(fired_by(&c.sim, 0), [(0, 1)].into(), "the owner fired");
    assert_eq!(fired_by(&c.sim, 1), [].into(), "unseen by the others");
    c.sim.apply(Fault::Crash(NodeId(0)));
    c.sim.inject(at(3), Do::Click(1));
    let took = until_fired(&mut c.sim, 1).expect("the live side fires");
    eprintln!("takeover {took:?} after the owner's crash (bound {TAKEOVER_BOUND:?})");
    assert!(took <= TAKEOVER_BOUND, "took {took:?}");
    c.sim.apply(Fault::HealAll);
    c.sim.apply(Fault::Restart(NodeId(0)));
    c.sim.inject(at(2), Do::Click(1));
    c.sim.run_for(Duration::from_secs(15));
    for n in 0..5 {
        let by = fired_by(&c.sim, n);
        assert_eq!(
            by,
            [(0, 1), (1, 1)].into(),
            "node {n}: once per side, never again"
        );
    }
}

/// A variable declared at run time on one node, after the neighbours greeted each other,
/// reaches every node (they learn the declaration and that the node holds it), and updates
/// made on any node replicate both ways, under full membership and HyParView.
#[test]
fn a_variable_declared_at_run_time_replicates() {
    for (seed, mode) in [(31, Mode::Full), (32, Mode::HyParView)] {
        let mut c = cluster(seed, 4, mode, |_| (ReplicaConfig::default(), None, None));
        c.sim.inject(at(0), Do::Declare("late".into()));
        c.sim.inject(at(0), Do::AddTo("late".into(), "x".into()));
        c.sim.run_for(Duration::from_secs(4));
        c.sim.inject(at(3), Do::AddTo("late".into(), "y".into()));
        c.sim.run_for(Duration::from_secs(4));
        for n in 0..4 {
            let got = late(&c.sim, n);
            let want: std::collections::BTreeSet<String> =
                ["x", "y"].into_iter().map(String::from).collect();
            assert_eq!(got, Some(want), "{mode:?}: node {n}");
        }
    }
}

fn replica_stat(sim: &Sim, n: u64, f: impl Fn(&Replica) -> u64) -> u64 {
    with_app(sim, n, |a| f(a.replica.as_ref().unwrap()))
}

/// A HyParView link that re-forms with a neighbour caught up recently resumes from what it
/// had acknowledged: no full-state catch-up on either side (module docs of `replica`,
/// "Resuming a link"), and the node still gets what it missed. A restarted node (a new
/// incarnation, nothing durable) gets full states and converges. Before links resumed,
/// node 3's return cost six full-state catch-ups (one per side of its three links).
#[test]
fn relinked_neighbour_resumes_without_full_states() {
    let mut c = cluster(15, 4, Mode::HyParView, |_| {
        (ReplicaConfig::default(), None, None)
    });
    for k in 0..8u64 {
        c.sim.inject(at(k % 4), Do::Click(1));
        c.sim.inject(at(k % 4), Do::Add(k as i64));
    }
    c.sim.run_for(Duration::from_secs(5));
    assert_eq!(clicks(&c.sim, 3), 8);
    let states = |sim: &Sim| -> u64 {
        (0..4)
            .map(|n| replica_stat(sim, n, |r| r.stats().state_msgs))
            .sum()
    };
    let before = states(&c.sim);
    // Node 3 is cut off long enough for every neighbour to drop it (HyParView's peer
    // timeout, 5 s), misses updates, and comes back.
    let others: Vec<NodeId> = (0..3).map(NodeId).collect();
    c.sim.partition(1, &[NodeId(3)], &others, false);
    for k in 0..5u64 {
        c.sim.inject(at(k % 3), Do::Click(1));
    }
    c.sim.run_for(Duration::from_secs(12));
    let alone = with_app(&c.sim, 3, |a| a.replica.as_ref().unwrap().neighbours());
    assert!(alone.is_empty(), "node 3 still linked: {alone:?}");
    c.sim.heal(1);
    c.sim.run_for(Duration::from_secs(15));
    assert_eq!(clicks(&c.sim, 3), 13, "node 3 got what it missed");
    let linked = with_app(&c.sim, 3, |a| a.replica.as_ref().unwrap().neighbours());
    assert!(!linked.is_empty(), "node 3 not linked again");
    let resumed: u64 = (0..4)
        .map(|n| replica_stat(&c.sim, n, |r| r.resumed_links()))
        .sum();
    assert_eq!(
        states(&c.sim),
        before,
        "a re-formed link sent full states ({resumed} resumed)"
    );
    assert!(resumed >= 2 * linked.len() as u64, "{resumed} resumed");
    // A restart is a new incarnation: full states, and it converges.
    c.sim.apply(Fault::Crash(NodeId(3)));
    c.sim.run_for(Duration::from_secs(2));
    c.sim.apply(Fault::Restart(NodeId(3)));
    c.sim.run_for(Duration::from_secs(10));
    assert_eq!(clicks(&c.sim, 3), 13, "restarted node caught up");
    assert!(
        states(&c.sim) > before,
        "the restarted node got full states"
    );
}

/// A damaged record: valid MessagePack that is not a `GCounter` (a string).
const BAD_RECORD: &[u8] = &[0xa3, b'b', b'a', b'd'];

/// Node 2 restarts with its `clicks` record damaged while it was down.
fn restart_with_a_damaged_record(c: &mut Cluster) {
    for k in 0..6u64 {
        c.sim.inject(at(k % 3), Do::Click(1));
    }
    c.sim.run_for(Duration::from_secs(3));
    assert_eq!(clicks(&c.sim, 2), 6);
    c.sim.apply(Fault::Crash(NodeId(2)));
    c.sim.store_mut(NodeId(2)).put(b"df/var/clicks", BAD_RECORD);
    c.sim.apply(Fault::Restart(NodeId(2)));
    // Its neighbours catch it up, and it counts on: both would persist `clicks`.
    c.sim.run_for(Duration::from_secs(3));
    c.sim.inject(at(2), Do::Click(1));
    c.sim.run_for(Duration::from_secs(3));
}

fn unreadable(sim: &Sim, n: u64) -> Vec<rasp_dataflow::replica::UnreadableRecord> {
    with_app(sim, n, |a| {
        a.replica.as_ref().unwrap().unreadable().to_vec()
    })
}

/// A variable record that does not decode at restart was logged, and the next write of the
/// variable silently replaced it: the node started empty for it and lost what the record
/// held. Now the replica keeps the record untouched, writes nothing to the store, and reports
/// it (a real node then refuses to start: exit 2 naming the key, `tests/net_store.rs`).
#[test]
fn an_unreadable_variable_record_is_never_overwritten() {
    let durable = ReplicaConfig {
        durable: true,
        ..ReplicaConfig::default()
    };
    let mut c = cluster(21, 3, Mode::Full, move |_| (durable.clone(), None, None));
    restart_with_a_damaged_record(&mut c);
    assert_eq!(
        c.sim.store(NodeId(2)).get(b"df/var/clicks").as_deref(),
        Some(BAD_RECORD),
        "the damaged record was overwritten"
    );
    let bad = unreadable(&c.sim, 2);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].key, "df/var/clicks");
    assert_eq!(bad[0].moved_to, None);
    assert!(with_app(&c.sim, 2, |a| a
        .replica
        .as_ref()
        .unwrap()
        .is_halted()));
}

/// With `set_aside_unreadable` (a node's `--reset-store`) the record is moved to
/// `df/lost/clicks`, counted, and the node starts without it and catches up.
#[test]
fn a_set_aside_unreadable_record_is_kept_under_lost_and_the_node_catches_up() {
    let durable = ReplicaConfig {
        durable: true,
        set_aside_unreadable: true,
        ..ReplicaConfig::default()
    };
    let mut c = cluster(22, 3, Mode::Full, move |_| (durable.clone(), None, None));
    restart_with_a_damaged_record(&mut c);
    let store = c.sim.store(NodeId(2));
    assert_eq!(store.get(b"df/lost/clicks").as_deref(), Some(BAD_RECORD));
    let bad = unreadable(&c.sim, 2);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].moved_to.as_deref(), Some("df/lost/clicks"));
    assert!(!with_app(&c.sim, 2, |a| a
        .replica
        .as_ref()
        .unwrap()
        .is_halted()));
    assert_eq!(clicks(&c.sim, 2), 7, "caught up from its neighbours");
    assert_eq!(clicks(&c.sim, 0), 7);
    let stored: GCounter =
        rasp_lattice::encoding::decode(&store.get(b"df/var/clicks").expect("persisted")).unwrap();
    assert_eq!(stored.query(), 7);
    assert_eq!(
        c.sim
            .node_metrics(NodeId(2))
            .counter("dataflow.unreadable_records", ""),
        1
    );
}

/// Drops the next `dataflow/sync` message from one node to another once armed (a lost
/// catch-up: the network may lose any single message).
/// While `armed`, skips `nth` syncs (state or delta) from `from` to `to`, drops the next one
/// and disarms.
struct DropSync {
    from: NodeId,
    to: NodeId,
    nth: u32,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl rasp_runtime::sim::Schedule for DropSync {
    fn keep(&mut self, id: &rasp_runtime::sim::MsgId, _at: rasp_runtime::Time) -> bool {
        use std::sync::atomic::Ordering;
        let hit = id.from == self.from
            && id.to == self.to
            && id.kind == rasp_runtime::KindId::of(rasp_dataflow::replica::Sync::KIND);
        if !hit || !self.armed.load(Ordering::SeqCst) {
            return true;
        }
        if self.nth > 0 {
            self.nth -= 1;
            return true;
        }
        self.armed.store(false, Ordering::SeqCst);
        false
    }
}

/// A restarted neighbour's full-state catch-up is lost on the way: the sender must send it
/// again until the neighbour acknowledges it. Node 1 (nothing durable) crashes after it
/// acknowledged everything, so node 0's delta buffer no longer holds what node 1 loses;
/// the one full-state sync node 0 sends the new incarnation is dropped. Before catch-ups
/// were acknowledged, node 0 took node 1 as caught up from the moment it sent the states
/// and node 1 stayed at 0 clicks for good (module docs of `replica`, "Catching up").
#[test]
fn a_lost_catch_up_is_sent_again_until_acknowledged() {
    let mut c = cluster(16, 2, Mode::Full, |_| {
        (ReplicaConfig::default(), None, None)
    });
    for k in 0..8u64 {
        c.sim.inject(at(k % 2), Do::Click(1));
    }
    c.sim.run_for(Duration::from_secs(5));
    assert_eq!(clicks(&c.sim, 1), 8);
    let buffered = with_app(&c.sim, 0, |a| a.replica.as_ref().unwrap().buffer_len());
    assert!(
        buffered < 8,
        "node 1 acknowledged the clicks: {buffered} buffered"
    );
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    c.sim.set_schedule(Box::new(DropSync {
        from: NodeId(0),
        to: NodeId(1),
        nth: 0,
        armed: armed.clone(),
    }));
    c.sim.apply(Fault::Crash(NodeId(1)));
    c.sim.run_for(Duration::from_secs(2));
    // Node 0 has no new delta for node 1, so the first sync it sends node 1 from now on is
    // the catch-up of the new incarnation.
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    c.sim.apply(Fault::Restart(NodeId(1)));
    c.sim.run_for(Duration::from_secs(10));
    assert!(
        !armed.load(std::sync::atomic::Ordering::SeqCst),
        "no sync was dropped: the test did not test anything"
    );
    assert_eq!(clicks(&c.sim, 1), 8, "the restarted node caught up");
}

/// The full states a node sends a neighbour for a variable newly shared between them (here
/// declared at run time on node 0, after the two greeted each other) are lost on the way:
/// they must come again until the neighbour acknowledges them. Node 0's delta of `x` is
/// buffered before node 1 holds `late`, so it is not sent to node 1, and node 1's
/// acknowledgement of the click sent at the same tick retires it from the buffer; before
/// such states were acknowledged, the one lost message left node 1 without `x` for good
/// (module docs of `replica`, "Catch-up at once").
#[test]
fn lost_states_of_a_newly_shared_variable_are_sent_again() {
    let mut c = cluster(17, 2, Mode::Full, |_| {
        (ReplicaConfig::default(), None, None)
    });
    c.sim.run_for(Duration::from_secs(3));
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    // The first sync is the tick's delta (the click, without `x`: node 1 does not hold
    // `late` yet); the second, the states of `late` once node 1 says it holds it.
    c.sim.set_schedule(Box::new(DropSync {
        from: NodeId(0),
        to: NodeId(1),
        nth: 1,
        armed: armed.clone(),
    }));
    c.sim.inject(at(0), Do::Declare("late".into()));
    c.sim.inject(at(0), Do::AddTo("late".into(), "x".into()));
    c.sim.inject(at(0), Do::Click(1));
    c.sim.run_for(Duration::from_secs(10));
    assert!(
        !armed.load(std::sync::atomic::Ordering::SeqCst),
        "no sync was dropped: the test did not test anything"
    );
    assert_eq!(clicks(&c.sim, 1), 1);
    let got = late(&c.sim, 1);
    let want: std::collections::BTreeSet<String> = ["x".to_string()].into();
    assert_eq!(got, Some(want), "node 1 got the newly shared variable");
}

/// The catch-up figures of one run of [`catch_up_run`]: bytes sent for catch-ups (greeting
/// summaries and catch-up payloads) and the part of them that was missing on arrival.
#[derive(Debug)]
struct CatchUp {
    summaries: u64,
    payload: u64,
    missing: u64,
}

impl CatchUp {
    fn ratio(&self) -> f64 {
        (self.summaries + self.payload) as f64 / self.missing.max(1) as f64
    }
}

/// `nodes` durable nodes (2 or 4) share a 300-element set (and its derived square set and
/// two small counters); node 1 crashes, the others add `missed` elements and count 5 clicks
/// (6 in all), node 1 restarts (a new incarnation: a catch-up on every link) and converges.
/// Returns the catch-up traffic from the restart on.
fn catch_up_run(summaries: bool, nodes: u64, missed: u64) -> CatchUp {
    let config = ReplicaConfig {
        durable: true,
        catch_up_summaries: summaries,
        ..ReplicaConfig::default()
    };
    let mut c = cluster(21, nodes, Mode::Full, move |_| (config.clone(), None, None));
    for k in 0..300u64 {
        c.sim.inject(at(k % nodes), Do::Add(k as i64));
    }
    c.sim.inject(at(0), Do::Click(1));
    c.sim.run_for(Duration::from_secs(4));
    c.sim.apply(Fault::Crash(NodeId(1)));
    let up: Vec<u64> = (0..nodes).filter(|&n| n != 1).collect();
    for k in 0..missed {
        c.sim
            .inject(at(up[k as usize % up.len()]), Do::Add(1000 + k as i64));
    }
    for k in 0..5usize {
        c.sim.inject(at(up[k % up.len()]), Do::Click(1));
    }
    c.sim.run_for(Duration::from_secs(3));
    let stat = |sim: &Sim, f: fn(&Replica) -> u64| -> u64 {
        (0..nodes).map(|n| replica_stat(sim, n, f)).sum()
    };
    let others = |sim: &Sim, f: fn(&Replica) -> u64| -> u64 {
        (0..nodes)
            .filter(|&n| n != 1)
            .map(|n| replica_stat(sim, n, f))
            .sum()
    };
    let summary_bytes: fn(&Replica) -> u64 = |r| r.stats().summary_bytes_sent;
    let payload_bytes: fn(&Replica) -> u64 = |r| r.stats().catch_up_bytes_sent;
    let missing_bytes: fn(&Replica) -> u64 = |r| r.stats().catch_up_missing_bytes;
    let before = (
        others(&c.sim, summary_bytes),
        others(&c.sim, payload_bytes),
        others(&c.sim, missing_bytes),
    );
    c.sim.apply(Fault::Restart(NodeId(1)));
    c.sim.run_for(Duration::from_secs(6));
    assert_eq!(clicks(&c.sim, 1), 6, "node 1 caught up on the clicks");
    let set = with_app(&c.sim, 1, |a| {
        a.replica
            .as_ref()
            .unwrap()
            .program()
            .query(&Var::<ORSet<i64>>::named("s"))
            .unwrap()
    });
    assert_eq!(
        set.len(),
        300 + missed as usize,
        "node 1 caught up on the set"
    );
    CatchUp {
        summaries: stat(&c.sim, summary_bytes) - before.0,
        payload: stat(&c.sim, payload_bytes) - before.1,
        missing: stat(&c.sim, missing_bytes) - before.2,
    }
}

/// A restarted node's catch-up ships what the neighbours lack, from their summaries (module
/// docs of `replica`, "Catch-up from a summary"), where whole states cost many times the
/// missing part (per variable of each catch-up, what the receiver lacked when it arrived).
/// With 40 elements missed, at most twice the missing part, summaries included; with 4
/// missed the fixed costs dominate (two summaries of some 70 bytes per greeting, and the two
/// grow-only counters, whose summary would be their whole state, go whole both ways).
/// Figures:
/// `cargo test --release -p rasp-dataflow --test sim_replication catch_up_ships -- --nocapture`.
#[test]
fn catch_up_ships_what_the_neighbour_lacks() {
    for (nodes, missed) in [(2, 4), (2, 40), (4, 4), (4, 40)] {
        let with = catch_up_run(true, nodes, missed);
        let without = catch_up_run(false, nodes, missed);
        println!(
            "catch-up after a restart ({nodes} nodes, a 300-element set, {missed} missed): \
             from summaries {} B summaries + {} B payload for {} B missing ({:.2}×); \
             whole states {} B for {} B missing ({:.2}×)",
            with.summaries,
            with.payload,
            with.missing,
            with.ratio(),
            without.payload,
            without.missing,
            without.ratio()
        );
        assert_eq!(without.summaries, 0);
        assert!(with.missing > 0, "{with:?}");
        assert!(
            without.ratio() > 4.0 * with.ratio(),
            "{with:?} vs {without:?}"
        );
        if missed >= 40 {
            assert!(with.ratio() <= 2.0, "{with:?}");
        }
    }
}
