//! Every lattice's MessagePack form, fuzzed (the decoder of every variable state and delta a
//! peer sends and every variable record a node stores): random bytes, mutated valid
//! encodings, length fields claiming gigabytes, deep nesting, and round trips of valid
//! states built from random mutation and synchronisation histories (the law tests'
//! histories, `tests/common`). Asserts no panic, an error message for every refused input,
//! a peak allocation within the engine's bound, and stable re-encoding
//! (`rasp_fuzzkit`'s docs). `RASP_FUZZ_CASES` sets the inputs per type (default a few
//! thousand); the long run is in the README's "Bad input" section.

mod common;

use common::{run, step, Model};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::{Rng, RngCore};
use rasp_fuzzkit::{target, FuzzRng};
use rasp_lattice::encoding::{decode, encode};
use rasp_lattice::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A valid encoding of a state of `L`: a replica after a random history, or a delta or a
/// join decomposition piece of it (what delta sync ships).
fn valid<L: Model + Serialize>(rng: &mut FuzzRng) -> Vec<u8> {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    let steps = proptest::collection::vec(step::<L>(), 0..24)
        .new_tree(&mut runner)
        .expect("a history")
        .current();
    let reps = run::<L>(&steps);
    let a = &reps[rng.random_range(0..reps.len())];
    let state = match rng.random_range(0..4) {
        0 => a.delta(&reps[0]),
        1 => a.decompose().into_iter().next().unwrap_or_else(L::bottom),
        _ => a.clone(),
    };
    encode(&state).expect("encodes")
}

fn fuzz<L: Model + Serialize + DeserializeOwned>(name: &'static str) {
    target!(name, valid::<L>, |b: &[u8]| {
        let v: L = decode(b).map_err(|e| e.to_string())?;
        encode(&v).map_err(|e| e.to_string())
    })
    .run();
}

/// String elements and keys (what most programs use: `ORSet<String>` in the ad counter).
fn strings(rng: &mut FuzzRng, n: usize) -> Vec<String> {
    (0..rng.random_range(0..=n))
        .map(|_| {
            let len = rng.random_range(0..40);
            (0..len)
                .map(|_| char::from(rng.random_range(b' '..=b'~')))
                .collect()
        })
        .collect()
}

macro_rules! fuzz_type {
    ($name:ident, $t:ty) => {
        #[test]
        fn $name() {
            fuzz::<$t>(stringify!($name));
        }
    };
}

fuzz_type!(gcounter, GCounter);
fuzz_type!(pncounter, PNCounter);
fuzz_type!(ccounter, CCounter);
fuzz_type!(lexcounter, LexCounter);
fuzz_type!(bcounter, BCounter);
fuzz_type!(maxint, MaxInt);
fuzz_type!(gset, GSet<u8>);
fuzz_type!(twopset, TwoPSet<u8>);
fuzz_type!(orset, ORSet<u8>);
fuzz_type!(orset_pair_dots, ORSet<u8, (Dot, Dot)>);
fuzz_type!(lww_register, LWWRegister<u8>);
fuzz_type!(mv_register, MVRegister<u8>);
fuzz_type!(ew_flag, EWFlag);
fuzz_type!(dw_flag, DWFlag);
fuzz_type!(boolean, Boolean);
fuzz_type!(ivar, IVar<u8>);
fuzz_type!(pair, Pair<GCounter, ORSet<u8>>);
fuzz_type!(gmap_of_counters, GMap<u8, GCounter>);
fuzz_type!(gmap_of_orsets, GMap<u8, ORSet<u8>>);
fuzz_type!(awmap_of_orsets, AWMap<u8, ORSet<u8>>);
fuzz_type!(awmap_of_ccounters, AWMap<u8, CCounter>);
fuzz_type!(awmap_nested, AWMap<u8, AWMap<u8, EWFlag>>);
fuzz_type!(mvmap, MVMap<u8, u8>);

#[test]
fn orset_of_strings() {
    target!(
        "orset_of_strings",
        |rng: &mut FuzzRng| {
            let mut s = ORSet::<String>::bottom();
            for x in strings(rng, 12) {
                s.add(rng.random_range(1..4), x.clone());
                if rng.random_bool(0.3) {
                    s.remove(&x);
                }
            }
            encode(&s).expect("encodes")
        },
        |b: &[u8]| {
            let v: ORSet<String> = decode(b).map_err(|e| e.to_string())?;
            encode(&v).map_err(|e| e.to_string())
        }
    )
    .run();
}

#[test]
fn gset_of_strings() {
    target!(
        "gset_of_strings",
        |rng: &mut FuzzRng| {
            let mut s = GSet::<String>::bottom();
            for x in strings(rng, 12) {
                s.add(x);
            }
            encode(&s).expect("encodes")
        },
        |b: &[u8]| {
            let v: GSet<String> = decode(b).map_err(|e| e.to_string())?;
            encode(&v).map_err(|e| e.to_string())
        }
    )
    .run();
}

#[test]
fn mvmap_of_strings() {
    target!(
        "mvmap_of_strings",
        |rng: &mut FuzzRng| {
            let mut m = MVMap::<String, String>::bottom();
            let keys = strings(rng, 6);
            for k in keys {
                for v in strings(rng, 2) {
                    m.write(rng.random_range(1..4), k.clone(), v);
                }
            }
            encode(&m).expect("encodes")
        },
        |b: &[u8]| {
            let v: MVMap<String, String> = decode(b).map_err(|e| e.to_string())?;
            encode(&v).map_err(|e| e.to_string())
        }
    )
    .run();
}
