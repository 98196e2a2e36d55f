//! The bounded counter replicated in the simulator: no interleaving of local uses, transfers
//! and withdrawals across replicas, over links that lose, duplicate and reorder messages,
//! ever lets the total used pass the bound, and the replicas' joins neither create nor lose a
//! right.
//!
//! Each node runs a replica of one [`BCounter`] variable; node 0 grants the bound, then rights
//! move by transfers (made by the giver, as a server or a neighbour answering a request would)
//! and are used or withdrawn where they are. Every 50 ms of simulated time the test checks
//! every replica's view and the join of all of them. A failing case prints its seed; rerun it
//! with `RASP_SEED=<seed> cargo test --release -p rasp-dataflow --test sim_bcounter`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proptest::prelude::*;
use rasp_dataflow::replica::{HasReplica, Replica, ReplicaConfig, SyncMode};
use rasp_dataflow::update::{consume, grant, transfer, withdraw};
use rasp_dataflow::{Program, Var};
use rasp_lattice::{BCounter, Lattice};
use rasp_membership::{Config as MConfig, MembershipAtom, Mode};
use rasp_runtime::sim::{LinkConfig, NetConfig, SeedGuard, Sim, SimConfig};
use rasp_runtime::{
    boot, Atom, AtomAddr, AtomId, Contact, Ctx, Dest, Message, NodeId, Origin, Time,
};
use serde::{Deserialize, Serialize};

const APP: AtomId = AtomId(1);
const VAR: &str = "rights";

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Do {
    Grant(u64),
    Use(u64),
    Transfer(u64, u64),
    Withdraw(u64),
}
impl Message for Do {
    const KIND: &'static str = "test/bcounter-do";
}

/// What one node accepted and refused.
#[derive(Default, Debug)]
struct Tally {
    used: u64,
    refused: u64,
}

struct App {
    sync: SyncMode,
    replica: Option<Replica>,
    tally: Rc<RefCell<Tally>>,
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
        let mut p = Program::new(node.0);
        p.declare::<BCounter>(VAR).unwrap();
        let config = ReplicaConfig {
            sync: self.sync,
            sync_interval: Duration::from_millis(200),
            ..ReplicaConfig::default()
        };
        self.replica = Some(Replica::new(node, config, p));
        Replica::install(self, ctx);
        ctx.on::<Do>(|a, ctx, _: &Origin, op| {
            let me = ctx.node().0;
            let tally = a.tally.clone();
            let p = a.replica().program_mut();
            let v = Var::<BCounter>::named(VAR);
            let r = match op {
                Do::Grant(n) => p.update(&v, grant(n), me),
                Do::Use(n) => {
                    let r = p.update(&v, consume(n), me);
                    let mut t = tally.borrow_mut();
                    match r {
                        Ok(_) => t.used += n,
                        Err(_) => t.refused += n,
                    }
                    r
                }
                Do::Transfer(to, n) => p.update(&v, transfer(to, n), me),
                Do::Withdraw(n) => p.update(&v, withdraw(n), me),
            };
            // A refusal is the only error, and it changes nothing.
            if let Err(e) = r {
                assert!(
                    matches!(
                        e,
                        rasp_dataflow::Error::Lattice(
                            rasp_lattice::Error::InsufficientRights { .. }
                        )
                    ),
                    "{e}"
                );
            }
        });
    }
}

fn state(sim: &Sim, n: u64) -> BCounter {
    sim.with_atom::<App, _>(AtomAddr::new(NodeId(n), APP), |a| {
        a.replica
            .as_ref()
            .unwrap()
            .program()
            .state(&Var::<BCounter>::named(VAR))
            .unwrap()
            .clone()
    })
    .unwrap()
}

fn tally(sim: &Sim, n: u64) -> (u64, u64) {
    sim.with_atom::<App, _>(AtomAddr::new(NodeId(n), APP), |a| {
        let t = a.tally.borrow();
        (t.used, t.refused)
    })
    .unwrap()
}

/// Every replica's view and the join of all views: the bound holds, no right is created or
/// lost by joining, and no replica overstates its own rights.
fn check(sim: &Sim, nodes: u64, bound: u64, seed: u64) -> Result<BCounter, TestCaseError> {
    let views: Vec<BCounter> = (0..nodes).map(|n| state(sim, n)).collect();
    let mut all = BCounter::bottom();
    for (n, v) in views.iter().enumerate() {
        prop_assert!(
            v.used() <= bound,
            "node {} counts {} uses over the bound {} (seed {})",
            n,
            v.used(),
            bound,
            seed
        );
        all.join(v);
    }
    prop_assert!(
        all.used() <= all.granted() && all.granted() <= bound,
        "seed {}",
        seed
    );
    let rights: u64 = (0..nodes).map(|a| all.rights(a)).sum();
    prop_assert_eq!(
        rights + all.used() + all.withdrawn(),
        all.granted(),
        "rights created or lost by the join (seed {})",
        seed
    );
    for (n, v) in views.iter().enumerate() {
        prop_assert!(
            v.rights(n as u64) <= all.rights(n as u64),
            "node {} overstates its rights (seed {})",
            n,
            seed
        );
    }
    Ok(all)
}

fn run_case(
    seed: u64,
    nodes: u64,
    bound: u64,
    sync: SyncMode,
    ops: Vec<(u64, u64, Do)>,
) -> Result<(u64, u64), TestCaseError> {
    let _guard = SeedGuard::new(seed);
    let cfg = SimConfig {
        seed,
        seed_from_env: false,
        net: NetConfig {
            default: LinkConfig {
                latency: rasp_runtime::sim::Latency::Uniform {
                    min: Duration::from_millis(5),
                    max: Duration::from_millis(40),
                },
                loss: 0.1,
                duplicate: 0.1,
                reorder: 0.1,
                reorder_delay: Duration::from_millis(100),
            },
            links: Vec::new(),
        },
        ..SimConfig::default()
    };
    let mut sim = Sim::new(cfg).unwrap();
    for _ in 0..nodes {
        sim.add_node(boot(move |b| {
            let seeds = if b.node().0 == 0 {
                vec![]
            } else {
                vec![Contact::bare(NodeId(0))]
            };
            let mc = MConfig {
                mode: Mode::Full,
                ..MConfig::default()
            };
            b.spawn(MembershipAtom::new(mc, seeds).unwrap());
            b.spawn(App {
                sync,
                replica: None,
                tally: Default::default(),
            });
        }));
    }
    sim.run_for(Duration::from_secs(2));
    let start = sim.now();
    let dest = |n: u64| Dest::Atom(AtomAddr::new(NodeId(n), APP));
    sim.inject(dest(0), Do::Grant(bound));
    let mut last = 0;
    for (at_ms, who, op) in ops {
        let op = match op {
            Do::Transfer(to, n) => Do::Transfer(to % nodes, n),
            o => o,
        };
        last = last.max(at_ms);
        sim.inject_at(Time(start.0 + at_ms * 1_000_000), dest(who % nodes), op);
    }
    // Check every 50 ms through the workload, then let anti-entropy finish.
    let end = Time(start.0 + (last + 10_000) * 1_000_000);
    while sim.now() < end {
        sim.run_for(Duration::from_millis(50));
        check(&sim, nodes, bound, seed)?;
    }
    let all = check(&sim, nodes, bound, seed)?;
    for n in 0..nodes {
        prop_assert_eq!(
            &state(&sim, n),
            &all,
            "node {} did not converge (seed {})",
            n,
            seed
        );
    }
    let accepted: u64 = (0..nodes).map(|n| tally(&sim, n).0).sum();
    prop_assert_eq!(
        all.used(),
        accepted,
        "every accepted use is counted once (seed {})",
        seed
    );
    prop_assert_eq!(all.granted(), bound);
    let refused: u64 = (0..nodes).map(|n| tally(&sim, n).1).sum();
    Ok((accepted, refused))
}

fn op_strategy() -> impl Strategy<Value = (u64, u64, Do)> {
    (
        0u64..8_000,
        0u64..6,
        prop_oneof![
            6 => (1u64..4).prop_map(Do::Use),
            4 => (0u64..6, 1u64..6).prop_map(|(to, n)| Do::Transfer(to, n)),
            1 => (1u64..3).prop_map(Do::Withdraw),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_interleaving_passes_the_bound_under_loss_and_duplication(
        seed in any::<u64>(),
        nodes in 2u64..6,
        bound in 1u64..40,
        sync_k in 0usize..5,
        ops in proptest::collection::vec(op_strategy(), 1..60),
    ) {
        run_case(seed, nodes, bound, SyncMode::ALL[sync_k], ops)?;
    }
}

/// One fixed case (seed from `RASP_SEED`): most uses are refused once the rights run out, and
/// the figures add up.
#[test]
fn a_fixed_case_counts_exactly_up_to_the_bound() {
    let seed = rasp_runtime::sim::seed_from_env(5);
    let mut ops = Vec::new();
    // Node 0 hands 5 rights to each of nodes 1..=3, then everyone uses far more than that.
    for to in 1..=3 {
        ops.push((10 * to, 0, Do::Transfer(to, 5)));
    }
    for k in 0..200u64 {
        ops.push((500 + k * 10, k % 4, Do::Use(1)));
    }
    let (used, refused) = run_case(seed, 4, 20, SyncMode::DeltaBpRr, ops).unwrap();
    // Every right is used (node 0 keeps 5, nodes 1-3 got 5 each and use them all): the
    // count reaches the bound exactly, never more; the rest is refused.
    assert_eq!((used, refused), (20, 180), "seed {seed}");
}
