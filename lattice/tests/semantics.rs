//! Targeted semantic tests: add-wins, disable-wins, IVar conflicts, thresholds, hostile
//! input, causal-metadata accessors, the small-delta join path.

use std::collections::{BTreeMap, BTreeSet};

use rasp_lattice::*;

#[test]
fn orset_add_wins_and_no_tombstones() {
    let mut a = ORSet::<char>::bottom();
    let add = a.add(1, 'x');
    let mut b = a.clone();
    // Concurrently: a removes x, b re-adds x.
    let rm = a.remove(&'x');
    let readd = b.add(2, 'x');
    a.join(&readd);
    b.join(&rm);
    assert_eq!(a, b);
    assert!(a.contains(&'x'), "concurrent add must win");
    // The first dot is removed (covered, not held); the re-add's dot is active.
    let first = *add.dots(&'x').unwrap().iter().next().unwrap();
    assert!(a.is_covered(&first));
    assert_eq!(a.dots(&'x').unwrap().len(), 1);
    // Removal leaves no element entry behind and the context stays compact.
    a.remove(&'x');
    assert!(a.is_empty() && !a.is_bottom());
    assert!(a.context().cloud().is_empty());
    assert_eq!(
        a.context().version_vector(),
        &BTreeMap::from([(1, 1), (2, 1)])
    );
}

#[test]
fn orset_parts_round_trip_and_validation() {
    let mut s = ORSet::<u32>::bottom();
    for i in 0..10 {
        s.add(7, i);
    }
    s.remove(&3);
    let (store, ctx) = s.clone().into_parts();
    let back = ORSet::from_parts(store.clone(), ctx.clone()).unwrap();
    assert_eq!(back, s);
    // A dot the context does not cover is rejected.
    let mut bad = store.clone();
    bad.insert(99, BTreeSet::from([Dot::new(8, 1)]));
    assert!(matches!(
        ORSet::from_parts(bad, ctx.clone()),
        Err(Error::InvalidCausalState(_))
    ));
    // A dot held by two elements is rejected.
    let mut dup = store.clone();
    let d = *store[&0].iter().next().unwrap();
    dup.insert(100, BTreeSet::from([d]));
    assert!(ORSet::from_parts(dup, ctx.clone()).is_err());
    // So is an element with no dot.
    let mut empty = store;
    empty.insert(101, BTreeSet::new());
    assert!(ORSet::from_parts(empty, ctx).is_err());
}

#[test]
fn hostile_bytes_are_errors() {
    // An OR-set whose store holds a dot its context does not cover.
    let store: BTreeMap<u8, BTreeSet<Dot>> =
        BTreeMap::from([(1, BTreeSet::from([Dot::new(1, 5)]))]);
    let bytes = encode(&(store, CausalContext::new())).unwrap();
    assert!(matches!(decode::<ORSet<u8>>(&bytes), Err(Error::Decode(_))));
    assert!(decode::<AWMap<u8, EWFlag>>(&[0x92, 0xc1]).is_err());
    assert!(decode::<GCounter>(&[0xff; 7]).is_err());
}

#[test]
fn flags() {
    let mut a = EWFlag::bottom();
    a.enable(1);
    let mut b = a.clone();
    let off = a.disable(1);
    let on = b.enable(2);
    a.join(&on);
    b.join(&off);
    assert_eq!(a, b);
    assert!(a.query(), "enable wins");

    let mut a = DWFlag::bottom();
    assert!(!a.query());
    a.enable(1);
    assert!(a.query());
    let mut b = a.clone();
    let off = a.disable(1);
    let on = b.enable(2);
    a.join(&on);
    b.join(&off);
    assert_eq!(a, b);
    assert!(!a.query(), "disable wins");
}

#[test]
fn ivar_single_assignment_and_conflict() {
    let mut a = IVar::<u8>::bottom();
    let d = a.assign(4).unwrap();
    assert_eq!(a.query(), Some(4));
    assert!(
        a.assign(4).unwrap().is_bottom(),
        "re-assigning the same value is a no-op"
    );
    assert!(matches!(a.assign(5), Err(Error::AlreadyAssigned)));
    assert_eq!(a.query(), Some(4));
    let mut b = IVar::bottom();
    b.assign(5).unwrap();
    b.join(&d);
    assert!(b.is_conflict());
    assert_eq!(b.query(), None);
    assert_eq!(b.values(), &BTreeSet::from([4, 5]));
}

#[test]
fn thresholds() {
    let mut c = GCounter::bottom();
    let t = Threshold::value(3);
    assert!(!t.holds(&c).unwrap());
    c.inc(1, 3);
    assert!(t.holds(&c).unwrap());
    assert!(Threshold::<GCounter>::NotBottom.holds(&c).unwrap());
    assert!(!Threshold::Strict(c.clone()).holds(&c).unwrap());
    assert!(Threshold::AtLeast(c.clone()).holds(&c).unwrap());

    let mut s = ORSet::<u8>::bottom();
    assert!(!Threshold::<ORSet<u8>>::NotBottom.holds(&s).unwrap());
    s.add(1, 1);
    s.add(1, 2);
    assert!(Threshold::cardinality(2).holds(&s).unwrap());
    // Unsupported variants are a clear error, never a silent false.
    let e = Threshold::<ORSet<u8>>::Value(1).holds(&s).unwrap_err();
    assert!(e.to_string().contains("value"), "{e}");
    assert!(Threshold::<GCounter>::Cardinality(1).validate().is_err());
    assert!(Threshold::<MaxInt>::Value(1).validate().is_ok());
    assert!(Threshold::<GSet<u8>>::Cardinality(1).validate().is_ok());
    assert!(Threshold::<MVRegister<u8>>::Cardinality(1)
        .validate()
        .is_err());
}

#[test]
fn awmap_add_wins_keeps_concurrent_part() {
    let mut a = AWMap::<char, ORSet<u8>>::bottom();
    a.update('k', |s| s.add(1, 1));
    let mut b = a.clone();
    let rm = a.remove(&'k');
    let up = b.update('k', |s| s.add(2, 2));
    a.join(&up);
    b.join(&rm);
    assert_eq!(a, b);
    // The removal retired the observed element 1; the concurrent add of 2 survives.
    assert_eq!(a.query(), BTreeMap::from([('k', BTreeSet::from([2]))]));
    // Counters inside a map reset on removal.
    let mut m = AWMap::<u8, CCounter>::bottom();
    m.update(0, |c| c.inc(1, 5));
    m.remove(&0);
    m.update(0, |c| c.inc(1, 2));
    assert_eq!(m.query(), BTreeMap::from([(0, 2)]));
}

#[test]
fn small_delta_join_into_large_set() {
    let mut big = ORSet::<u64>::bottom();
    big.add_all(1, 0..10_000);
    let mut other = ORSet::<u64>::bottom();
    let d = other.add(2, 123_456);
    assert!(big.join(&d));
    assert!(!big.join(&d));
    assert_eq!(big.len(), 10_001);
    let r = other.remove(&123_456);
    assert!(big.join(&r));
    assert_eq!(big.len(), 10_000);
    // RR: the delta of a duplicate against the state is bottom.
    assert!(d.delta(&big).is_bottom());
}

#[test]
fn encoded_size_matches_for_every_type() {
    fn chk<L: Lattice>(x: L) {
        assert_eq!(encode(&x).unwrap().len(), encoded_size(&x));
        assert_eq!(decode::<L>(&encode(&x).unwrap()).unwrap(), x);
    }
    let mut s = ORSet::<String>::bottom();
    s.add(1, "a".into());
    chk(s.clone());
    let mut g = GCounter::bottom();
    g.inc(3, 9);
    chk(g.clone());
    chk(Pair(g.clone(), s));
    let mut m = GMap::<String, GCounter>::bottom();
    m.apply('x'.into(), |c| c.inc(1, 1));
    chk(m);
    let mut l = LWWRegister::<String>::bottom();
    l.set(1, 10, "v".into());
    chk(l);
    chk(MaxInt(7));
    let t = Threshold::<GCounter>::Value(3);
    assert_eq!(encode(&t).unwrap().len(), encoded_size(&t));
    assert_eq!(
        decode::<Threshold<GCounter>>(&encode(&t).unwrap()).unwrap(),
        t
    );
}

#[test]
fn hostile_causal_states_are_rejected() {
    use std::collections::BTreeMap;
    // An MV-register whose store holds a dot its context does not cover.
    let store: BTreeMap<Dot, u8> = BTreeMap::from([(Dot::new(1, 3), 7)]);
    let bytes = encode(&(store, CausalContext::new())).unwrap();
    let err = decode::<MVRegister<u8>>(&bytes).unwrap_err();
    assert!(err.to_string().contains("not covered"), "{err}");
    // The same with a covering context decodes.
    let store: BTreeMap<Dot, u8> = BTreeMap::from([(Dot::new(1, 1), 7)]);
    let ctx: CausalContext = [Dot::new(1, 1)].into_iter().collect();
    let bytes = encode(&(store, ctx)).unwrap();
    let r: MVRegister<u8> = decode(&bytes).unwrap();
    assert_eq!(r.query(), BTreeSet::from([7]));
}
