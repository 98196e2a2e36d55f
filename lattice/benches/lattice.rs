//! Criterion benchmarks of rasp-lattice: join, delta mutation, decomposition, encode and
//! decode for GSet, ORSet and GMap of 10^3..10^6 elements, and the headline comparison of a
//! one-element delta joined into a 10^6-element ORSet against a full-state join.
//!
//! What "join" measures: a replica holding `n` elements joins the full state of another
//! replica that holds the same `n` elements plus 1% new ones (and, for ORSet, 1% removed;
//! for GMap, 1% of the values raised): a real join that changes the target, not a no-op.
//! The target is cloned outside the timed region (`iter_batched`).
//!
//! "small delta": a 10^6-element ORSet joins, in turn, the delta of adding a fresh element
//! and the delta of removing it (minted by another replica), so the state stays 10^6 elements.
//!
//! `cargo bench -p rasp-lattice --bench lattice -- --test` runs every benchmark once (CI).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use rasp_lattice::*;

const SIZES: [u64; 4] = [1_000, 10_000, 100_000, 1_000_000];

fn config<'a>(
    c: &'a mut Criterion,
    name: &str,
    n: u64,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    if n >= 100_000 {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
    } else {
        g.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    }
    g
}

fn gset(n: u64) -> (GSet<u64>, GSet<u64>) {
    let base: GSet<u64> = (0..n).collect();
    let mut other = base.clone();
    for i in 0..n / 100 {
        other.add(n + i);
    }
    (base, other)
}

fn orset(n: u64) -> (ORSet<u64>, ORSet<u64>) {
    let mut base = ORSet::bottom();
    base.add_all(1, 0..n);
    let mut other = base.clone();
    other.add_all(2, n..n + n / 100);
    for i in 0..n / 100 {
        other.remove(&(i * 97 % n));
    }
    (base, other)
}

fn gmap(n: u64) -> (GMap<u64, MaxInt>, GMap<u64, MaxInt>) {
    let base: GMap<u64, MaxInt> = (0..n).map(|k| (k, MaxInt(1))).collect();
    let mut other = base.clone();
    for i in 0..n / 100 {
        other.apply(i * 97 % n, |m| m.inc(1));
        other.apply(n + i, |m| m.inc(1));
    }
    (base, other)
}

fn bench_type<L: Lattice>(
    c: &mut Criterion,
    name: &str,
    build: impl Fn(u64) -> (L, L),
    mut mutate: impl FnMut(&mut L, u64) -> L,
) {
    for n in SIZES {
        let (base, other) = build(n);
        let mut g = config(c, &format!("{name}/join"), n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_batched(
                || base.clone(),
                |mut t| {
                    assert!(t.join(&other));
                    t
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();

        let mut g = config(c, &format!("{name}/delta_mutate"), n);
        let mut state = base.clone();
        let mut i = 0u64;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                black_box(mutate(&mut state, i))
            })
        });
        drop(state);
        g.finish();

        let mut g = config(c, &format!("{name}/decompose"), n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_with_large_drop(|| base.decompose())
        });
        g.finish();

        let bytes = encode(&base).unwrap();
        let mut g = config(c, &format!("{name}/encode"), n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| encode(&base).unwrap())
        });
        g.finish();
        let mut g = config(c, &format!("{name}/decode"), n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_with_large_drop(|| decode::<L>(&bytes).unwrap())
        });
        g.finish();
    }
}

fn types(c: &mut Criterion) {
    // GSet grows by one fresh element per iteration (a grow-only set has no undo).
    bench_type(c, "gset", gset, |s, i| s.add(u64::MAX - i));
    // ORSet alternates adding a fresh element and removing it: the size stays n.
    bench_type(c, "orset", orset, |s, i| {
        let x = u64::MAX - i.div_ceil(2);
        if i % 2 == 1 {
            s.add(3, x)
        } else {
            s.remove(&x)
        }
    });
    // GMap raises an existing key's value.
    bench_type(c, "gmap", gmap, |m, i| m.apply(i % 1000, |v| v.inc(1)));
}

fn small_delta_vs_full(c: &mut Criterion) {
    let n = 1_000_000;
    let (base, other) = orset(n);
    let mut g = c.benchmark_group("orset_1e6");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("full_state_join", |b| {
        b.iter_batched(
            || base.clone(),
            |mut t| {
                assert!(t.join(&other));
                t
            },
            BatchSize::LargeInput,
        )
    });
    let mut state = base.clone();
    let mut producer = ORSet::<u64>::bottom();
    let mut i = 0u64;
    g.sample_size(100);
    g.bench_function("one_element_delta_join", |b| {
        b.iter_batched(
            || {
                i += 1;
                let x = u64::MAX - i.div_ceil(2);
                if i % 2 == 1 {
                    producer.add(9, x)
                } else {
                    producer.remove(&x)
                }
            },
            |d| assert!(state.join(&d)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    assert_eq!(state.len(), base.len() + (i % 2) as usize);
}

criterion_group!(benches, small_delta_vs_full, types);
criterion_main!(benches);
