//! The bounded counter's invariant on plain replicas (no network model): whatever the
//! interleaving of grants, uses, transfers and withdrawals, and whatever deltas are lost,
//! duplicated or reordered, no replica's view ever counts more uses than rights were granted,
//! and a join neither creates nor loses a right. The same property under the simulator's
//! network is `dataflow/tests/sim_bcounter.rs`.

use proptest::prelude::*;
use rasp_lattice::*;

#[derive(Clone, Debug)]
enum Step {
    Grant(usize, u64),
    Use(usize, u64),
    Transfer(usize, usize, u64),
    Withdraw(usize, u64),
    /// Deliver (or, if `lose`, drop) the pending message `i`; a duplicate stays pending.
    Deliver {
        i: usize,
        lose: bool,
        dup: bool,
    },
}

fn step(n: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..n, 0u64..8).prop_map(|(r, k)| Step::Grant(r, k)),
        4 => (0..n, 0u64..4).prop_map(|(r, k)| Step::Use(r, k)),
        3 => (0..n, 0..n, 0u64..5).prop_map(|(a, b, k)| Step::Transfer(a, b, k)),
        1 => (0..n, 0u64..3).prop_map(|(r, k)| Step::Withdraw(r, k)),
        6 => (any::<usize>(), prop::bool::weighted(0.2), prop::bool::weighted(0.2))
            .prop_map(|(i, lose, dup)| Step::Deliver { i, lose, dup }),
    ]
}

fn actor(r: usize) -> Actor {
    r as Actor + 1
}

fn conserved(s: &BCounter, n: usize) -> bool {
    let rights: u64 = (0..n).map(|r| s.rights(actor(r))).sum();
    rights + s.used() + s.withdrawn() == s.granted()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_interleaving_passes_the_bound_and_joins_conserve_rights(
        n in 2usize..=6,
        steps in proptest::collection::vec(step(6), 0..120),
    ) {
        let steps: Vec<Step> = steps
            .into_iter()
            .map(|s| match s {
                Step::Grant(r, k) => Step::Grant(r % n, k),
                Step::Use(r, k) => Step::Use(r % n, k),
                Step::Transfer(a, b, k) => Step::Transfer(a % n, b % n, k),
                Step::Withdraw(r, k) => Step::Withdraw(r % n, k),
                d => d,
            })
            .collect();
        let mut reps = vec![BCounter::bottom(); n];
        let mut pending: Vec<(usize, BCounter)> = Vec::new();
        let mut bound = 0u64;
        let mut uses_accepted = 0u64;
        for s in &steps {
            let (r, d) = match *s {
                Step::Grant(r, k) => {
                    bound += k;
                    (r, Ok(reps[r].grant(actor(r), k)))
                }
                Step::Use(r, k) => {
                    let d = reps[r].consume(actor(r), k);
                    if d.is_ok() {
                        uses_accepted += k;
                    }
                    (r, d)
                }
                Step::Transfer(a, b, k) => (a, reps[a].transfer(actor(a), actor(b), k)),
                Step::Withdraw(r, k) => (r, reps[r].withdraw(actor(r), k)),
                Step::Deliver { i, lose, dup } => {
                    if !pending.is_empty() {
                        let i = i % pending.len();
                        let (to, msg) = if dup { pending[i].clone() } else { pending.swap_remove(i) };
                        if !lose {
                            reps[to].join(&msg);
                        }
                    }
                    continue;
                }
            };
            if let Ok(d) = d {
                for to in (0..n).filter(|&t| t != r) {
                    pending.push((to, d.clone()));
                }
            }
            for (i, v) in reps.iter().enumerate() {
                prop_assert!(v.used() <= bound, "replica {i} counts {} uses over the bound {bound}", v.used());
            }
        }
        // Lost messages are made up by a final full-state exchange (anti-entropy).
        let mut all = BCounter::bottom();
        for v in &reps {
            all.join(v);
        }
        prop_assert_eq!(all.used(), uses_accepted);
        prop_assert!(all.used() <= all.granted());
        prop_assert_eq!(all.granted(), bound);
        prop_assert!(conserved(&all, n), "rights created or lost: {:?}", all);
        for (r, v) in reps.iter().enumerate() {
            // A join only adds transfers received: a replica's own rights never shrink by it,
            // and every right it spent is accounted for.
            prop_assert!(all.rights(actor(r)) >= v.rights(actor(r)));
            let mut j = v.clone();
            for w in &reps {
                j.join(w);
                prop_assert!(j.used() <= bound);
            }
            prop_assert_eq!(&j, &all);
        }
    }
}
