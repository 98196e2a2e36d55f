//! Every lattice type passes every law of `rasp_lattice::laws` on random states built from
//! random mutation / synchronisation histories on three replicas.

mod common;

use common::{law_test, summary_test, Model};
use rasp_lattice::*;

const CASES: u32 = 256;

macro_rules! law {
    ($name:ident, $t:ty) => {
        #[test]
        fn $name() {
            law_test::<$t>(CASES);
        }
    };
}

law!(gcounter, GCounter);
law!(pncounter, PNCounter);
law!(ccounter, CCounter);
law!(maxint, MaxInt);
law!(gset, GSet<u8>);
law!(twopset, TwoPSet<u8>);
law!(orset, ORSet<u8>);
law!(orset_pair_dots, ORSet<u8, (Dot, Dot)>);
law!(lww_register, LWWRegister<u8>);
law!(mv_register, MVRegister<u8>);
law!(ew_flag, EWFlag);
law!(dw_flag, DWFlag);
law!(ivar, IVar<u8>);
law!(pair, Pair<GCounter, ORSet<u8>>);
law!(gmap_of_counters, GMap<u8, GCounter>);
law!(gmap_of_orsets, GMap<u8, ORSet<u8>>);
law!(awmap_of_orsets, AWMap<u8, ORSet<u8>>);
law!(awmap_of_ccounters, AWMap<u8, CCounter>);
law!(awmap_of_ewflags, AWMap<u8, EWFlag>);
law!(awmap_of_dwflags, AWMap<u8, DWFlag>);
law!(awmap_of_mvregisters, AWMap<u8, MVRegister<u8>>);
law!(awmap_nested, AWMap<u8, AWMap<u8, EWFlag>>);

/// `read` is used by the convergence tests; make sure it is exercised here too.
#[test]
fn reads_render() {
    let mut s = ORSet::<u8>::bottom();
    Model::apply(&mut s, 1, &common::SetOp::Add(3));
    assert_eq!(s.read(), "{3}");
}

law!(bcounter, BCounter);
law!(boolean, Boolean);
law!(lexcounter, LexCounter);
law!(mvmap, MVMap<u8, u8>);
law!(orset_bulk_ops, common::BulkSet);

/// `b ⊔ a.delta_since(&b.summary()) == b ⊔ a` (the catch-up law) for every type with a
/// summary.
macro_rules! summary {
    ($name:ident, $t:ty) => {
        #[test]
        fn $name() {
            summary_test::<$t>(CASES);
        }
    };
}

summary!(summary_gcounter, GCounter);
summary!(summary_pncounter, PNCounter);
summary!(summary_maxint, MaxInt);
summary!(summary_orset, ORSet<u8>);
summary!(summary_orset_pair_dots, ORSet<u8, (Dot, Dot)>);
summary!(summary_lww_register, LWWRegister<u8>);
