//! Lasp's `bind_to`, awaitable reads and strict thresholds across replicas in the simulator.
//!
//! Four nodes (full membership, lossy and duplicating links): `bind_to` declared at run time
//! on one node ships with the graph and is computed on every node, and a client holding only
//! the copy receives it; a read awaited as a future and a strict threshold read each fire at
//! the first state that passes the bound, on a node that never writes.
//!
//! A failing run prints its seed and the command to reproduce it (`RASP_SEED=<n>`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rasp_dataflow::causal::DSet;
use rasp_dataflow::replica::{HasReplica, Replica, ReplicaConfig};
use rasp_dataflow::update::{add, inc};
use rasp_dataflow::{Func, Interest, Program, Var};
use rasp_lattice::{GCounter, ORSet, Query, Threshold};
use rasp_membership::{Config as MConfig, MembershipAtom};
use rasp_runtime::sim::{seed_from_env, LinkConfig, NetConfig, SeedGuard, Sim, SimConfig};
use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Contact, Ctx, Dest, Message, NodeId, Origin};
use serde::{Deserialize, Serialize};

const APP: AtomId = AtomId(1);
/// The reading node: it never writes.
const READER: u64 = 3;

fn build(p: &mut Program) {
    p.declare::<GCounter>("clicks").unwrap();
    let s = p.declare::<ORSet<i64>>("s").unwrap();
    p.map("sq", &s, Func::new("sq", |x: &i64| x * x)).unwrap();
    rasp_dataflow::json::JsonTypes::standard().teach(p);
    p.know_type(rasp_dataflow::erased::TypeOps::of::<DSet<i64>>());
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Do {
    Click(u64),
    Add(i64),
    /// Declares `clicks-copy = bind_to(clicks)` and `sq-copy = bind_to(sq)` here.
    Bind,
}
impl Message for Do {
    const KIND: &'static str = "test/lasp-do";
}

#[derive(Default)]
struct Seen {
    /// The reader's counter value after every change it saw.
    clicks: Vec<u64>,
    /// The reader's `sq-copy` size after every change it saw.
    sizes: Vec<usize>,
    /// (index into `clicks`, value) when the strict continuation read fired.
    strict_at: Option<(usize, u64)>,
    /// (index into `sizes`, size, clicks-copy value) when the awaiting task finished.
    task_at: Option<(usize, usize, u64)>,
}

struct App {
    interest: Interest,
    replica: Option<Replica>,
    seen: Rc<RefCell<Seen>>,
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
        let mut p = Program::with_interest(node.0, self.interest.clone());
        build(&mut p);
        if node.0 == READER {
            let clicks = Var::<GCounter>::named("clicks");
            let seen = self.seen.clone();
            // Registered before the subscription: on the change that makes it hold it runs
            // first, so `clicks.len()` is that change's index.
            p.read(
                &clicks,
                Threshold::strict_value(7),
                move |_, c: &GCounter| {
                    let mut s = seen.borrow_mut();
                    let at = s.clicks.len();
                    s.strict_at = Some((at, c.query()));
                },
            )
            .unwrap();
            let seen = self.seen.clone();
            p.subscribe(&clicks, move |_, c: &GCounter| {
                seen.borrow_mut().clicks.push(c.query())
            })
            .unwrap();
        }
        self.replica = Some(Replica::new(node, ReplicaConfig::default(), p));
        Replica::install(self, ctx);
        ctx.on::<Do>(|a, ctx, _: &Origin, op| {
            let actor = ctx.node().0;
            let seen = a.seen.clone();
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
                Do::Bind => {
                    p.bind_to("clicks-copy", &Var::<GCounter>::named("clicks"))
                        .unwrap();
                    p.bind_to("sq-copy", &Var::<DSet<i64>>::named("sq"))
                        .unwrap();
                }
            }
            if actor == READER {
                arm_reader(p, seen);
            }
        });
    }
}

/// Once the copies reach the reader, it subscribes to `sq-copy` and spawns a task awaiting
/// `|sq-copy| > 2`, then `clicks-copy > 0`.
fn arm_reader(p: &mut Program, seen: Rc<RefCell<Seen>>) {
    if seen.borrow().task_at.is_some() || p.pending_tasks() > 0 || !p.holds("sq-copy") {
        return;
    }
    let sq_copy = Var::<DSet<i64>>::named("sq-copy");
    let s = seen.clone();
    p.subscribe(&sq_copy, move |_, d: &DSet<i64>| {
        s.borrow_mut().sizes.push(d.len())
    })
    .unwrap();
    let big = p
        .read_async(&sq_copy, Threshold::strict_cardinality(2))
        .unwrap();
    let any = p
        .read_async(
            &Var::<GCounter>::named("clicks-copy"),
            Threshold::strict_value(0),
        )
        .unwrap();
    p.spawn_then(
        async move { (big.await.len(), any.await.query()) },
        move |_, (size, clicks)| {
            let mut s = seen.borrow_mut();
            let at = s.sizes.len();
            s.task_at = Some((at, size, clicks));
        },
    );
}

fn with_app<R>(sim: &Sim, node: u64, f: impl FnOnce(&App) -> R) -> R {
    sim.with_atom::<App, _>(AtomAddr::new(NodeId(node), APP), f)
        .expect("app atom")
}

fn at(node: u64) -> Dest {
    Dest::Atom(AtomAddr::new(NodeId(node), APP))
}

#[test]
fn bind_to_awaitable_and_strict_reads_across_replicas() {
    let seed = seed_from_env(21);
    let _guard = SeedGuard::new(seed);
    let cfg = SimConfig {
        seed,
        seed_from_env: false,
        net: NetConfig {
            default: LinkConfig {
                latency: rasp_runtime::sim::Latency::Uniform {
                    min: Duration::from_millis(10),
                    max: Duration::from_millis(50),
                },
                loss: 0.05,
                duplicate: 0.05,
                ..LinkConfig::default()
            },
            links: Vec::new(),
        },
        ..SimConfig::default()
    };
    let mut sim = Sim::new(cfg).unwrap();
    // Node 4 is a client holding only the copy of the counter.
    for _ in 0..5 {
        sim.add_node(boot(move |b| {
            let node = b.node();
            let seeds = if node.0 == 0 {
                vec![]
            } else {
                vec![Contact::bare(NodeId(0))]
            };
            b.spawn(MembershipAtom::new(MConfig::default(), seeds).unwrap());
            let interest = if node.0 == 4 {
                Interest::Only(["clicks-copy".to_string()].into_iter().collect())
            } else {
                Interest::All
            };
            b.spawn(App {
                interest,
                replica: None,
                seen: Default::default(),
            });
        }));
    }
    sim.run_for(Duration::from_secs(3));
    for k in 0..3u64 {
        sim.inject(at(k), Do::Click(1));
    }
    // Two elements: the task's `> 2` does not hold yet.
    sim.inject(at(0), Do::Add(0));
    sim.inject(at(1), Do::Add(1));
    sim.run_for(Duration::from_secs(2));
    // bind_to declared at run time on node 0 only.
    sim.inject(at(0), Do::Bind);
    sim.run_for(Duration::from_secs(3));
    for n in 0..4 {
        let computes = with_app(&sim, n, |a| {
            let p = a.replica.as_ref().unwrap().program();
            (p.computes("clicks-copy"), p.computes("sq-copy"))
        });
        assert_eq!(computes, (true, true), "node {n} runs both copies");
    }
    // The reader arms its task now that the copies are there (a no-op message suffices).
    sim.inject(at(READER), Do::Click(0));
    sim.run_for(Duration::from_millis(100));
    assert!(with_app(&sim, READER, |a| a
        .seen
        .borrow()
        .task_at
        .is_none()));
    for k in 3..12u64 {
        sim.inject(at(k % 3), Do::Click(1));
        sim.inject(at((k + 1) % 3), Do::Add(k as i64));
        sim.run_for(Duration::from_millis(600));
        let (strict, clicks_here) = with_app(&sim, READER, |a| {
            let s = a.seen.borrow();
            (s.strict_at, s.clicks.last().copied().unwrap_or(0))
        });
        if clicks_here <= 7 {
            assert!(strict.is_none(), "strict read fired at {clicks_here} ≤ 7");
        }
    }
    sim.run_for(Duration::from_secs(5));
    let seen = with_app(&sim, READER, |a| {
        let s = a.seen.borrow();
        (s.strict_at, s.clicks.clone(), s.task_at, s.sizes.clone())
    });
    // The strict read fired at the first state > 7, not at 7.
    let (at_change, value) = seen.0.expect("the strict read fired");
    let first = seen.1.iter().position(|v| *v > 7).unwrap();
    assert_eq!(
        at_change, first,
        "fired at the first state > 7: {:?}",
        seen.1
    );
    assert_eq!(value, seen.1[first]);
    // The task resolved at the first copy with more than 2 elements (its second read held
    // by then) and saw the copy of the counter: it ran right after that change (tasks run
    // after the change's continuations and subscriptions), before any later one.
    let (at_size, size, clicks) = seen.2.expect("the awaiting task finished");
    let first = seen.3.iter().position(|n| *n > 2).unwrap();
    assert_eq!((at_size, size), (first + 1, seen.3[first]), "{:?}", seen.3);
    assert_eq!(seen.3[first], 3, "one element at a time");
    assert!(clicks > 0);
    // Every node converged: copies equal their sources; the client got its copy only.
    for n in 0..4 {
        let (c, cc, sq, sqc) = with_app(&sim, n, |a| {
            let p = a.replica.as_ref().unwrap().program();
            (
                p.query(&Var::<GCounter>::named("clicks")).unwrap(),
                p.query(&Var::<GCounter>::named("clicks-copy")).unwrap(),
                p.query(&Var::<DSet<i64>>::named("sq")).unwrap(),
                p.query(&Var::<DSet<i64>>::named("sq-copy")).unwrap(),
            )
        });
        assert_eq!((c, cc), (12, 12), "node {n}");
        assert_eq!(sq, sqc, "node {n}");
        let want = [0i64, 1].into_iter().chain(3..12).map(|x| x * x).collect();
        assert_eq!(sq, want, "node {n}");
    }
    let (held, copy) = with_app(&sim, 4, |a| {
        let p = a.replica.as_ref().unwrap().program();
        (
            p.held(),
            p.query(&Var::<GCounter>::named("clicks-copy")).unwrap(),
        )
    });
    assert_eq!(held, vec!["clicks-copy".to_string()]);
    assert_eq!(copy, 12);
}
