//! Convergence: the same updates spread over 2–10 replicas, delivered as deltas or as full
//! states, in random order with duplicates (and sometimes through the RR `delta` filter),
//! converge to equal states and equal queries.

mod common;

use common::Model;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rasp_lattice::*;

/// splitmix64: a tiny deterministic generator driven by a proptest-chosen seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn deliver<L: Lattice>(rep: &mut L, msg: &L, rr: bool) {
    if rr {
        let expected = rep.clone().joined(msg);
        let d = msg.delta(rep);
        rep.join(&d);
        assert_eq!(
            *rep, expected,
            "RR-filtered delivery differs from plain delivery"
        );
    } else {
        rep.join(msg);
    }
}

/// Runs `ops` (replica, op) on `n` replicas; every op's delta (or the full state after it)
/// is sent to every other replica; messages are delivered in random order, some twice, some
/// early (interleaved with later ops), the rest at the end.
fn converge<L: Model>(n: usize, ops: &[(usize, L::Op)], seed: u64, full_state: bool) {
    let mut rng = Rng(seed);
    let mut reps = vec![L::bottom(); n];
    let mut pending: Vec<(usize, L)> = Vec::new();
    let deliver_one = |reps: &mut Vec<L>, pending: &mut Vec<(usize, L)>, rng: &mut Rng| {
        let i = rng.below(pending.len());
        let (to, msg) = if rng.below(4) == 0 {
            pending[i].clone()
        } else {
            pending.swap_remove(i)
        };
        let rr = rng.below(2) == 0;
        deliver(&mut reps[to], &msg, rr);
    };
    for (r, op) in ops {
        let r = r % n;
        let d = reps[r].apply(r as Actor + 1, op);
        let msg = if full_state { reps[r].clone() } else { d };
        for to in (0..n).filter(|&t| t != r) {
            pending.push((to, msg.clone()));
        }
        while !pending.is_empty() && rng.below(3) == 0 {
            deliver_one(&mut reps, &mut pending, &mut rng);
        }
    }
    while !pending.is_empty() {
        deliver_one(&mut reps, &mut pending, &mut rng);
    }
    for r in &reps[1..] {
        assert_eq!(
            *r, reps[0],
            "replicas diverged (seed {seed}, full_state {full_state})"
        );
        assert_eq!(r.read(), reps[0].read());
    }
    // The converged state is the join of everything: applying the ops to one replica in
    // order with per-replica actors gives the same value only if no op depended on
    // concurrency, so compare with the join of the replicas' own final states instead.
    let mut all = L::bottom();
    for r in &reps {
        all.join(r);
    }
    assert_eq!(all, reps[0]);
}

fn convergence_test<L: Model>() {
    let mut runner = TestRunner::new(Config {
        cases: 96,
        ..Config::default()
    });
    let strat = (
        2usize..=10,
        proptest::collection::vec((0usize..10, L::op()), 0..40),
        any::<u64>(),
        any::<bool>(),
    );
    runner
        .run(&strat, |(n, ops, seed, full)| {
            converge::<L>(n, &ops, seed, full);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", std::any::type_name::<L>()));
}

macro_rules! conv {
    ($name:ident, $t:ty) => {
        #[test]
        fn $name() {
            convergence_test::<$t>();
        }
    };
}

conv!(gcounter, GCounter);
conv!(pncounter, PNCounter);
conv!(ccounter, CCounter);
conv!(maxint, MaxInt);
conv!(gset, GSet<u8>);
conv!(twopset, TwoPSet<u8>);
conv!(orset, ORSet<u8>);
conv!(orset_pair_dots, ORSet<u8, (Dot, Dot)>);
conv!(lww_register, LWWRegister<u8>);
conv!(mv_register, MVRegister<u8>);
conv!(ew_flag, EWFlag);
conv!(dw_flag, DWFlag);
conv!(ivar, IVar<u8>);
conv!(pair, Pair<GCounter, ORSet<u8>>);
conv!(gmap_of_counters, GMap<u8, GCounter>);
conv!(gmap_of_orsets, GMap<u8, ORSet<u8>>);
conv!(awmap_of_orsets, AWMap<u8, ORSet<u8>>);
conv!(awmap_of_ccounters, AWMap<u8, CCounter>);
conv!(awmap_of_mvregisters, AWMap<u8, MVRegister<u8>>);
conv!(awmap_nested, AWMap<u8, AWMap<u8, EWFlag>>);
conv!(bcounter, BCounter);
conv!(boolean, Boolean);
conv!(lexcounter, LexCounter);
conv!(mvmap, MVMap<u8, u8>);
conv!(orset_bulk_ops, common::BulkSet);
