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

#[test]
fn strict_thresholds_hold_only_above_the_bound() {
    let mut c = GCounter::bottom();
    let gt = Threshold::strict_value(3);
    c.inc(1, 3);
    assert!(Threshold::value(3).holds(&c).unwrap());
    assert!(!gt.holds(&c).unwrap(), "3 is not > 3");
    c.inc(2, 1);
    assert!(gt.holds(&c).unwrap());

    let mut s = ORSet::<u8>::bottom();
    let gt = Threshold::strict_cardinality(1);
    s.add(1, 1);
    assert!(!gt.holds(&s).unwrap());
    s.add(1, 2);
    assert!(gt.holds(&s).unwrap());
    // Unsupported measures are errors, as for the non-strict variants.
    assert!(matches!(
        Threshold::<ORSet<u8>>::StrictValue(0).validate(),
        Err(Error::UnsupportedThreshold {
            threshold: "value",
            ..
        })
    ));
    assert!(matches!(
        Threshold::<GCounter>::StrictCardinality(0).validate(),
        Err(Error::UnsupportedThreshold {
            threshold: "cardinality",
            ..
        })
    ));
}

#[test]
fn orset_remove_all_and_retain() {
    let mut a = ORSet::<u8>::bottom();
    a.add_all(1, [1, 2, 3, 4, 5, 6]);
    let mut b = a.clone();
    let rm = a.remove_all(&[1, 2, 9]);
    assert_eq!(a.query(), BTreeSet::from([3, 4, 5, 6]));
    let keep = a.retain(|x| x % 2 == 0);
    assert_eq!(a.query(), BTreeSet::from([4, 6]));
    // Concurrently b re-adds 2 and 3: add wins over both bulk removals.
    let readd = b.add_all(2, [2, 3]);
    b.join(&rm);
    b.join(&keep);
    a.join(&readd);
    assert_eq!(a, b);
    assert_eq!(a.query(), BTreeSet::from([2, 3, 4, 6]));
    assert!(a.remove_all(&[]).is_bottom());
    assert!(a.retain(|_| true).is_bottom());
}

#[test]
fn flags_share_one_signature() {
    // Every flag (and the boolean) enables and disables with an actor: generic code can take
    // any of them.
    fn toggle_ew(f: &mut EWFlag, a: Actor) -> (EWFlag, EWFlag) {
        (f.enable(a), f.disable(a))
    }
    fn toggle_dw(f: &mut DWFlag, a: Actor) -> (DWFlag, DWFlag) {
        (f.enable(a), f.disable(a))
    }
    let mut e = EWFlag::bottom();
    let mut d = DWFlag::bottom();
    toggle_ew(&mut e, 1);
    toggle_dw(&mut d, 1);
    assert!(!e.query() && !d.query());
    let mut b = Boolean::bottom();
    b.enable(1);
    assert!(b.query());
}

#[test]
fn boolean_is_or_with_no_way_back() {
    let mut a = Boolean::bottom();
    assert!(!a.query() && a.is_bottom());
    assert!(a.set_delta().query());
    let d = a.set();
    assert!(a.query());
    assert!(a.set().is_bottom(), "setting it again changes nothing");
    let mut b = Boolean::from(false);
    assert!(b.join(&d) && !b.join(&d));
    assert!(Threshold::value(1).holds(&b).unwrap());
    assert!(!Threshold::strict_value(1).holds(&b).unwrap());
}

#[test]
fn lexcounter_versions_make_decrements_inflations() {
    let mut a = LexCounter::bottom();
    a.inc(1, 5);
    let before = a.clone();
    let d = a.dec(1, 7);
    assert_eq!(a.query(), -2);
    assert!(before.is_strict_inflation(&a), "a decrement still inflates");
    assert_eq!(a.entry(1), (1, -2));
    // A stale state never undoes the decrement.
    let mut b = before.clone();
    b.join(&d);
    assert!(!b.join(&before));
    assert_eq!(b.query(), -2);
    let mut c = LexCounter::bottom();
    c.inc(2, 10);
    c.join(&a);
    assert_eq!(c.query(), 8);
    assert!(Threshold::strict_value(7).holds(&c).unwrap());
}

#[test]
fn mvmap_keeps_concurrent_writes_and_add_wins_on_remove() {
    let mut a = MVMap::<u8, String>::bottom();
    a.write(1, 1, "x".into());
    let mut b = a.clone();
    let wa = a.write(1, 1, "a".into());
    let wb = b.write(2, 1, "b".into());
    a.join(&wb);
    b.join(&wa);
    assert_eq!(a, b);
    assert_eq!(
        a.get(&1),
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
    // A remove concurrent with a write: the write survives.
    let mut c = a.clone();
    let rm = a.remove(&1);
    assert!(!a.contains_key(&1));
    let w = c.write(3, 1, "c".into());
    a.join(&w);
    c.join(&rm);
    assert_eq!(a, c);
    assert_eq!(
        a.query(),
        BTreeMap::from([(1, BTreeSet::from(["c".into()]))])
    );
    assert!(Threshold::cardinality(1).holds(&a).unwrap());
    assert!(!Threshold::strict_cardinality(1).holds(&a).unwrap());
}

#[test]
fn bcounter_rights_move_and_bound_the_uses() {
    let (s, c1, c2) = (1, 2, 3);
    let mut server = BCounter::bottom();
    server.grant(s, 10);
    let t1 = server.transfer(s, c1, 4).unwrap();
    let t2 = server.transfer(s, c2, 4).unwrap();
    assert_eq!(server.rights(s), 2);
    assert!(matches!(
        server.transfer(s, c1, 3),
        Err(Error::InsufficientRights {
            actor: 1,
            wanted: 3,
            available: 2
        })
    ));
    let mut a = BCounter::bottom();
    a.join(&t1);
    let mut b = BCounter::bottom();
    b.join(&t2);
    b.join(&t2); // duplicated: still 4
    assert_eq!((a.rights(c1), b.rights(c2)), (4, 4));
    for _ in 0..4 {
        assert!(a.try_use(c1).is_some());
    }
    assert!(a.try_use(c1).is_none(), "no right left");
    // c1 asks c2 (a neighbour) for one.
    let moved = b.transfer(c2, c1, 1).unwrap();
    a.join(&moved);
    a.consume(c1, 1).unwrap();
    b.consume(c2, 3).unwrap();
    assert!(b.consume(c2, 1).is_err());
    // Rights of a retired bound are withdrawn.
    let w = server.withdraw_all(s);
    assert_eq!(server.rights(s), 0);
    let mut all = server.clone();
    all.join(&a);
    all.join(&b);
    all.join(&w);
    assert_eq!(all.used(), 8);
    assert_eq!(all.query(), 8);
    assert_eq!(all.granted(), 10);
    assert_eq!(all.withdrawn(), 2);
    assert_eq!(all.remaining(), 0);
    assert_eq!(all.used_by(c1), 5);
    assert_eq!(all.transferred(c2, c1), 1);
    assert_eq!((all.given(s), all.received(c1)), (8, 5));
    for x in [s, c1, c2] {
        assert_eq!(all.rights(x), 0);
    }
    // Hostile input never panics.
    assert!(decode::<BCounter>(&[0x94, 0xff, 0x00]).is_err());
}
