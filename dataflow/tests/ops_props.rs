//! The one property (Lasp, PPDP 2015, §3; the README's "A program"): a derived variable's value equals the plain function of
//! its inputs' values — checked after every step of random multi-replica histories, for chains
//! of map, filter, union, product, intersection and fold evaluated incrementally.

use std::collections::BTreeSet;

use proptest::prelude::*;
use rasp_dataflow::causal::{CausalSet, DSet, VarTag};
use rasp_dataflow::fold::{Folded, Sum};
use rasp_dataflow::ops::*;
use rasp_lattice::{Lattice, ORSet, Query};

const A: VarTag = VarTag::of("a");
const B: VarTag = VarTag::of("b");

fn half(x: &i64) -> i64 {
    x.div_euclid(2)
}
fn even(x: &i64) -> bool {
    x % 2 == 0
}

/// One replica: two sources and the derived chain, all maintained incrementally.
#[derive(Clone)]
struct Replica {
    a: ORSet<i64>,
    b: ORSet<i64>,
    m: DSet<i64>,        // map(a, half)
    f: DSet<i64>,        // filter(m, even)
    u: DSet<i64>,        // union(a, b)
    p: DSet<(i64, i64)>, // product(f, b)
    i: DSet<i64>,        // intersection(a, b)
    s: Folded<i64, Sum>, // fold(u, sum)
    mp: DSet<i64>,       // map(p, x + y): a chain through a product
}

impl Replica {
    fn new() -> Self {
        Replica {
            a: ORSet::bottom(),
            b: ORSet::bottom(),
            m: DSet::bottom(),
            f: DSet::bottom(),
            u: DSet::bottom(),
            p: DSet::bottom(),
            i: DSet::bottom(),
            s: Folded::bottom(),
            mp: DSet::bottom(),
        }
    }

    /// Joins `d` into output `out`, returning the effective delta (what changed downstream).
    fn push<L: Lattice>(out: &mut L, d: &L) -> Option<L> {
        let eff = d.delta(out);
        if eff.is_bottom() {
            return None;
        }
        out.join(&eff);
        Some(eff)
    }

    fn on_a(&mut self, incoming: &ORSet<i64>) {
        let eff = incoming.delta(&self.a);
        if eff.is_bottom() {
            return;
        }
        let a_before = self.a.clone();
        self.a.join(&eff);
        let da = eff.lift(A);
        if let Some(dm) = Self::push(&mut self.m, &map_delta(&da, half)) {
            if let Some(df) = Self::push(&mut self.f, &filter_delta(&dm, even)) {
                self.on_f(&df);
            }
        }
        if let Some(du) = Self::push(&mut self.u, &union_delta(&da, A)) {
            self.s.join_set(&du);
        }
        Self::push(
            &mut self.i,
            &intersection_left_delta(&da, (&a_before, A), (&self.b, B)),
        );
    }

    fn on_f(&mut self, df: &DSet<i64>) {
        if let Some(dp) = Self::push(&mut self.p, &product_left_delta(df, &self.b, B)) {
            Self::push(&mut self.mp, &map_delta(&dp, |(x, y)| x + y));
        }
    }

    fn on_b(&mut self, incoming: &ORSet<i64>) {
        let eff = incoming.delta(&self.b);
        if eff.is_bottom() {
            return;
        }
        let b_before = self.b.clone();
        self.b.join(&eff);
        let db = eff.lift(B);
        if let Some(dp) = Self::push(&mut self.p, &product_right_delta(&self.f, VarTag(0), &db)) {
            Self::push(&mut self.mp, &map_delta(&dp, |(x, y)| x + y));
        }
        if let Some(du) = Self::push(&mut self.u, &union_delta(&db, B)) {
            self.s.join_set(&du);
        }
        Self::push(
            &mut self.i,
            &intersection_right_delta((&self.a, A), &db, (&b_before, B)),
        );
    }

    /// The one property, against plain functions of the sources' values.
    fn check(&self) -> Result<(), TestCaseError> {
        let a: BTreeSet<i64> = self.a.query();
        let b: BTreeSet<i64> = self.b.query();
        let m: BTreeSet<i64> = a.iter().map(half).collect();
        let f: BTreeSet<i64> = m.iter().copied().filter(even).collect();
        let u: BTreeSet<i64> = a.union(&b).copied().collect();
        let p: BTreeSet<(i64, i64)> = f
            .iter()
            .flat_map(|x| b.iter().map(move |y| (*x, *y)))
            .collect();
        let i: BTreeSet<i64> = a.intersection(&b).copied().collect();
        let mp: BTreeSet<i64> = p.iter().map(|(x, y)| x + y).collect();
        prop_assert_eq!(self.m.query(), m, "map");
        prop_assert_eq!(self.f.query(), f, "filter");
        prop_assert_eq!(self.u.query(), u.clone(), "union");
        prop_assert_eq!(self.p.query(), p, "product");
        prop_assert_eq!(self.i.query(), i, "intersection");
        prop_assert_eq!(self.mp.query(), mp, "map over product");
        prop_assert_eq!(self.s.query(), u.iter().sum::<i64>(), "fold");
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Step {
    Add { r: usize, set_b: bool, x: i64 },
    Remove { r: usize, set_b: bool, x: i64 },
    Sync { from: usize, to: usize, set_b: bool },
}

fn step(n: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..n, any::<bool>(), -4i64..8).prop_map(|(r, set_b, x)| Step::Add { r, set_b, x }),
        2 => (0..n, any::<bool>(), -4i64..8).prop_map(|(r, set_b, x)| Step::Remove { r, set_b, x }),
        3 => (0..n, 0..n, any::<bool>()).prop_map(|(from, to, set_b)| Step::Sync { from, to, set_b }),
    ]
}

type Snapshot = (DSet<(i64, i64)>, DSet<i64>, Folded<i64, Sum>);

/// Runs the history; also returns the derived states of every replica after every step (stale
/// states a client may receive).
fn run(n: usize, steps: &[Step]) -> Result<(Vec<Replica>, Vec<Snapshot>), TestCaseError> {
    let mut rs = vec![Replica::new(); n];
    let mut snaps = Vec::new();
    for s in steps {
        match *s {
            Step::Add { r, set_b, x } => {
                let actor = r as u64 + 1;
                if set_b {
                    let d = rs[r].b.add_delta(actor, x);
                    rs[r].on_b(&d);
                } else {
                    let d = rs[r].a.add_delta(actor, x);
                    rs[r].on_a(&d);
                }
            }
            Step::Remove { r, set_b, x } => {
                if set_b {
                    let d = rs[r].b.remove_delta(&x);
                    rs[r].on_b(&d);
                } else {
                    let d = rs[r].a.remove_delta(&x);
                    rs[r].on_a(&d);
                }
            }
            Step::Sync { from, to, set_b } => {
                if set_b {
                    let st = rs[from].b.clone();
                    rs[to].on_b(&st);
                } else {
                    let st = rs[from].a.clone();
                    rs[to].on_a(&st);
                }
            }
        }
        for r in &rs {
            r.check()?;
            snaps.push((r.p.clone(), r.i.clone(), r.s.clone()));
        }
    }
    // Heal: everyone exchanges everything.
    for from in 0..n {
        for to in 0..n {
            let (a, b) = (rs[from].a.clone(), rs[from].b.clone());
            rs[to].on_a(&a);
            rs[to].on_b(&b);
        }
    }
    for r in &rs {
        r.check()?;
    }
    Ok((rs, snaps))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn derived_values_equal_plain_functions(n in 1usize..4, steps in proptest::collection::vec(step(3), 0..60)) {
        let steps: Vec<Step> = steps.into_iter().map(|s| match s {
            Step::Add { r, set_b, x } => Step::Add { r: r % n, set_b, x },
            Step::Remove { r, set_b, x } => Step::Remove { r: r % n, set_b, x },
            Step::Sync { from, to, set_b } => Step::Sync { from: from % n, to: to % n, set_b },
        }).collect();
        let (rs, _) = run(n, &steps)?;
        // At convergence every replica holds equal derived values, and equal derived states.
        for r in &rs[1..] {
            prop_assert_eq!(r.p.query(), rs[0].p.query());
            prop_assert_eq!(r.i.query(), rs[0].i.query());
            prop_assert_eq!(r.s.query(), rs[0].s.query());
            prop_assert_eq!(&r.m, &rs[0].m);
            prop_assert_eq!(&r.u, &rs[0].u);
        }
    }

    /// Clients that hold only derived variables (Selective Hearing) and join stale derived
    /// states of several servers, in any order, converge to the servers' final value.
    #[test]
    fn derived_states_replicate_to_clients(steps in proptest::collection::vec(step(3), 0..60), picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..20)) {
        let (rs, snaps) = run(3, &steps)?;
        let mut client_p: DSet<(i64, i64)> = DSet::bottom();
        let mut client_i: DSet<i64> = DSet::bottom();
        let mut client_s: Folded<i64, Sum> = Folded::bottom();
        if !snaps.is_empty() {
            for k in &picks {
                let (p, i, s) = &snaps[k.index(snaps.len())];
                client_p.join(p);
                client_i.join(i);
                client_s.join(s);
            }
        }
        for r in &rs {
            client_p.join(&r.p);
            client_i.join(&r.i);
            client_s.join(&r.s);
        }
        prop_assert_eq!(client_p.query(), rs[0].p.query());
        prop_assert_eq!(client_i.query(), rs[0].i.query());
        prop_assert_eq!(client_s.query(), rs[0].s.query());
    }
}
