//! The in-place mutators of [`ORSet`] and [`AWMap`] against the reference path they replace:
//! compute the delta without mutating (`*_delta`), then join it into the state. On random
//! histories of three replicas (with merges, so states hold other actors' dots, removals and
//! out-of-order contexts) both paths give the same state and the same delta at every step, and
//! the in-place state's dot index stays consistent with its store.

use proptest::prelude::*;
use rasp_lattice::*;

const N: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Add(u8),
    AddAll(Vec<u8>),
    Remove(u8),
    RemoveAll(Vec<u8>),
    Retain(u8),
    Clear,
}

#[derive(Clone, Debug)]
enum Step {
    /// Replica, operation.
    Op(usize, Op),
    /// Replica `to` joins replica `from` (full state).
    Merge(usize, usize),
    /// Replica `to` joins the delta of `from` against `to`.
    Delta(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let xs = || proptest::collection::vec(0u8..8, 0..6);
    prop_oneof![
        6 => (0u8..8).prop_map(Op::Add),
        2 => xs().prop_map(Op::AddAll),
        4 => (0u8..8).prop_map(Op::Remove),
        1 => xs().prop_map(Op::RemoveAll),
        1 => (1u8..4).prop_map(Op::Retain),
        1 => Just(Op::Clear),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            6 => (0..N, op()).prop_map(|(r, o)| Step::Op(r, o)),
            1 => (0..N, 0..N).prop_map(|(a, b)| Step::Merge(a, b)),
            1 => (0..N, 0..N).prop_map(|(a, b)| Step::Delta(a, b)),
        ],
        0..80,
    )
}

fn actor(r: usize) -> u64 {
    r as u64 + 1
}

/// The in-place mutation and the reference delta of `op` on `s`.
fn apply(s: &mut ORSet<u8>, a: u64, op: &Op) -> (ORSet<u8>, ORSet<u8>) {
    let reference = match op {
        Op::Add(x) => s.add_delta(a, *x),
        Op::AddAll(xs) => s.add_all_delta(a, xs.iter().copied()),
        Op::Remove(x) => s.remove_delta(x),
        Op::RemoveAll(xs) => s.remove_all_delta(xs),
        Op::Retain(m) => s.retain_delta(|x| x % m == 0),
        Op::Clear => s.clear_delta(),
    };
    let d = match op {
        Op::Add(x) => s.add(a, *x),
        Op::AddAll(xs) => s.add_all(a, xs.iter().copied()),
        Op::Remove(x) => s.remove(x),
        Op::RemoveAll(xs) => s.remove_all(xs),
        Op::Retain(m) => s.retain(|x| x % m == 0),
        Op::Clear => s.clear(),
    };
    (d, reference)
}

/// The dot index agrees with the store: every held dot maps to its element, no other dot is
/// indexed, and removed dots are exactly the covered ones not held.
fn check_index(s: &ORSet<u8>) -> Result<(), TestCaseError> {
    let mut held = 0;
    for (x, ds) in s.iter() {
        prop_assert!(!ds.is_empty());
        for d in ds {
            prop_assert_eq!(s.element_of(d), Some(x));
            prop_assert!(!s.is_covered(d));
            held += 1;
        }
    }
    prop_assert_eq!(s.active_dots(), held);
    for d in s.context().iter() {
        let holds = s.iter().any(|(_, ds)| ds.contains(&d));
        prop_assert_eq!(s.is_covered(&d), !holds);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn orset_in_place_equals_delta_then_join(steps in steps()) {
        let mut fast = vec![ORSet::<u8>::bottom(); N];
        let mut slow = vec![ORSet::<u8>::bottom(); N];
        for step in &steps {
            match step {
                Step::Op(r, op) => {
                    let (d, reference) = apply(&mut fast[*r], actor(*r), op);
                    prop_assert_eq!(&d, &reference);
                    slow[*r].join(&reference);
                    // The delta's own index is consistent too (it is joined elsewhere).
                    check_index(&d)?;
                }
                Step::Merge(from, to) => {
                    let (f, s) = (fast[*from].clone(), slow[*from].clone());
                    fast[*to].join(&f);
                    slow[*to].join(&s);
                }
                Step::Delta(from, to) => {
                    let f = fast[*from].delta(&fast[*to]);
                    let s = slow[*from].delta(&slow[*to]);
                    prop_assert_eq!(&f, &s);
                    fast[*to].join(&f);
                    slow[*to].join(&s);
                }
            }
            for r in 0..N {
                prop_assert_eq!(&fast[r], &slow[r]);
                check_index(&fast[r])?;
            }
        }
        // A rebuilt index (decoding) sees the same set.
        for s in &fast {
            let back: ORSet<u8> = decode(&encode(s).unwrap()).unwrap();
            prop_assert_eq!(&back, s);
        }
    }

    #[test]
    fn awmap_in_place_equals_delta_then_join(steps in steps()) {
        type M = AWMap<u8, ORSet<u8>>;
        let mut fast = vec![M::bottom(); N];
        let mut slow = vec![M::bottom(); N];
        for step in &steps {
            match step {
                Step::Op(r, op) => {
                    let a = actor(*r);
                    let (d, reference) = match op {
                        Op::Remove(k) | Op::Retain(k) => {
                            let reference = fast[*r].remove_delta(&(k % 3));
                            (fast[*r].remove(&(k % 3)), reference)
                        }
                        op => {
                            let key = match op {
                                Op::Add(x) => x % 3,
                                _ => 0,
                            };
                            let reference = fast[*r]
                                .update_delta(key, |s| apply(s, a, op).0);
                            (fast[*r].update(key, |s| apply(s, a, op).0), reference)
                        }
                    };
                    prop_assert_eq!(&d, &reference);
                    slow[*r].join(&reference);
                }
                Step::Merge(from, to) => {
                    let (f, s) = (fast[*from].clone(), slow[*from].clone());
                    fast[*to].join(&f);
                    slow[*to].join(&s);
                }
                Step::Delta(from, to) => {
                    let f = fast[*from].delta(&fast[*to]);
                    let s = slow[*from].delta(&slow[*to]);
                    prop_assert_eq!(&f, &s);
                    fast[*to].join(&f);
                    slow[*to].join(&s);
                }
            }
            for r in 0..N {
                prop_assert_eq!(&fast[r], &slow[r]);
                // The index agrees with a rebuilt one (decoding rebuilds it): the operations
                // that read it (delta, leq, join either way) give the same results.
                let rebuilt: M = decode(&encode(&fast[r]).unwrap()).unwrap();
                for o in 0..N {
                    prop_assert_eq!(fast[r].delta(&fast[o]), rebuilt.delta(&fast[o]));
                    prop_assert_eq!(fast[o].delta(&fast[r]), fast[o].delta(&rebuilt));
                    prop_assert_eq!(fast[r].leq(&fast[o]), rebuilt.leq(&fast[o]));
                    let (mut x, mut y) = (fast[r].clone(), rebuilt.clone());
                    x.join(&fast[o]);
                    y.join(&fast[o]);
                    prop_assert_eq!(x, y);
                    let (mut x, mut y) = (fast[o].clone(), fast[o].clone());
                    x.join(&fast[r]);
                    y.join(&rebuilt);
                    prop_assert_eq!(x, y);
                }
            }
        }
    }
}

/// An OR-set inside an add-wins map keeps its wire form: the bytes of the map element → dots,
/// as a map of [`DotSet`]s encodes it.
#[test]
fn nested_orset_wire_form_is_a_map_of_dot_sets() {
    let mut m = AWMap::<u8, ORSet<u8>>::bottom();
    m.update(1, |s| s.add(1, 10));
    m.update(1, |s| s.add(2, 11));
    m.update(2, |s| s.add(1, 12));
    let (store, ctx) = m.clone().into_parts();
    let plain: std::collections::BTreeMap<u8, DotMap<u8, DotSet>> = store
        .0
        .iter()
        .map(|(k, s)| {
            let inner = s
                .map()
                .iter()
                .map(|(x, ds)| (*x, DotSet(ds.clone())))
                .collect();
            (*k, DotMap(inner))
        })
        .collect();
    #[derive(serde::Serialize)]
    struct Wire<S> {
        store: S,
        ctx: CausalContext,
    }
    let expected = encode(&Wire {
        store: DotMap(plain),
        ctx,
    })
    .unwrap();
    assert_eq!(encode(&m).unwrap(), expected);
    let back: AWMap<u8, ORSet<u8>> = decode(&expected).unwrap();
    assert_eq!(back, m);
}
