//! Criterion benchmarks of [`ORSet`] and [`AWMap`] mutators and merge side by side with
//! `crdts::Orswot` and `crdts::Map` (crdts 7.3), for n = 10^4 and 10^5.
//!
//! The same work on both sides:
//!
//! - `add_one`: add the elements `0..n` one at a time to an empty set (rasp: [`ORSet::add`];
//!   crdts: `read_ctx().derive_add_ctx`, `add`, `apply`).
//! - `add_batch`: add `0..n` as one batch (rasp: [`ORSet::add_all`], one dot per element;
//!   crdts: `add_all`, one dot for the batch, then `apply`).
//! - `remove_half`: from a set holding `0..n`, remove the even elements one at a time (rasp:
//!   [`ORSet::remove`]; crdts: `contains(x).derive_rm_ctx`, `rm`, `apply`). The full set is
//!   cloned outside the timed region.
//! - `merge`: two replicas of n elements each, half of them shared: both saw actor 1 add
//!   `0..n/2`; then actor 1 added `n/2..n` on one and actor 2 added `n..3n/2` on the other.
//!   The first merges the second (result 3n/2 elements). crdts's `merge` takes the other
//!   replica by value, so both replicas are cloned outside the timed region for crdts, the
//!   target only for rasp (whose join borrows the other).
//! - `awmap_add`: an add-wins map of 16 keys, each an OR-set; add `0..n` one at a time, element
//!   `i` into key `i % 16` (rasp: [`AWMap::update`] with [`ORSet::add`]; crdts: `Map::update`
//!   with `Orswot::add`).
//! - `awmap_remove`: from that map, remove every key (rasp: [`AWMap::remove`]; crdts:
//!   `get(k).derive_rm_ctx`, `rm`, `apply`).
//!
//! `cargo bench -p rasp-lattice --bench orswot` (about 3 minutes); `-- --test` runs each once.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use crdts::{CmRDT, CvRDT};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use rasp_lattice::{AWMap, Lattice, ORSet};

const SIZES: [u64; 2] = [10_000, 100_000];
const KEYS: u64 = 16;

type COrswot = crdts::Orswot<u64, u64>;
type CMap = crdts::Map<u64, COrswot, u64>;

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g
}

fn rasp_adds(n: u64) -> ORSet<u64> {
    let mut s = ORSet::bottom();
    for x in 0..n {
        black_box(s.add(1, x));
    }
    s
}

fn crdts_add(s: &mut COrswot, actor: u64, x: u64) {
    let ctx = s.read_ctx().derive_add_ctx(actor);
    let op = s.add(x, ctx);
    s.apply(op);
}

fn crdts_adds(n: u64) -> COrswot {
    let mut s = COrswot::new();
    for x in 0..n {
        crdts_add(&mut s, 1, x);
    }
    s
}

fn rasp_merge_pair(n: u64) -> (ORSet<u64>, ORSet<u64>) {
    let mut a = ORSet::bottom();
    a.add_all(1, 0..n / 2);
    let mut b = a.clone();
    a.add_all(1, n / 2..n);
    b.add_all(2, n..n + n / 2);
    (a, b)
}

fn crdts_merge_pair(n: u64) -> (COrswot, COrswot) {
    let mut a = COrswot::new();
    for x in 0..n / 2 {
        crdts_add(&mut a, 1, x);
    }
    let mut b = a.clone();
    for x in n / 2..n {
        crdts_add(&mut a, 1, x);
    }
    for x in n..n + n / 2 {
        crdts_add(&mut b, 2, x);
    }
    (a, b)
}

fn rasp_map(n: u64) -> AWMap<u64, ORSet<u64>> {
    let mut m = AWMap::<u64, ORSet<u64>>::bottom();
    for x in 0..n {
        black_box(m.update(x % KEYS, |s| s.add(1, x)));
    }
    m
}

fn crdts_map(n: u64) -> CMap {
    let mut m = CMap::new();
    for x in 0..n {
        let ctx = m.read_ctx().derive_add_ctx(1);
        let op = m.update(x % KEYS, ctx, |s, ctx| s.add(x, ctx));
        m.apply(op);
    }
    m
}

fn orset(c: &mut Criterion) {
    for n in SIZES {
        let id = |lib: &str| BenchmarkId::new(lib, n);

        let mut g = group(c, "add_one");
        g.bench_function(id("rasp"), |b| b.iter_with_large_drop(|| rasp_adds(n)));
        g.bench_function(id("crdts"), |b| b.iter_with_large_drop(|| crdts_adds(n)));
        g.finish();

        let mut g = group(c, "add_batch");
        g.bench_function(id("rasp"), |b| {
            b.iter_with_large_drop(|| {
                let mut s = ORSet::<u64>::bottom();
                let d = s.add_all(1, 0..n);
                (s, d)
            })
        });
        g.bench_function(id("crdts"), |b| {
            b.iter_with_large_drop(|| {
                let mut s = COrswot::new();
                let ctx = s.read_ctx().derive_add_ctx(1);
                let op = s.add_all(0..n, ctx);
                s.apply(op);
                s
            })
        });
        g.finish();

        let mut g = group(c, "remove_half");
        let full = rasp_adds(n);
        g.bench_function(id("rasp"), |b| {
            b.iter_batched(
                || full.clone(),
                |mut s| {
                    for x in (0..n).step_by(2) {
                        black_box(s.remove(&x));
                    }
                    s
                },
                BatchSize::LargeInput,
            )
        });
        let cfull = crdts_adds(n);
        g.bench_function(id("crdts"), |b| {
            b.iter_batched(
                || cfull.clone(),
                |mut s| {
                    for x in (0..n).step_by(2) {
                        let ctx = s.contains(&x).derive_rm_ctx();
                        let op = s.rm(x, ctx);
                        s.apply(op);
                    }
                    s
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();

        let mut g = group(c, "merge");
        let (a, b2) = rasp_merge_pair(n);
        g.bench_function(id("rasp"), |b| {
            b.iter_batched(
                || a.clone(),
                |mut t| {
                    assert!(t.join(&b2));
                    t
                },
                BatchSize::LargeInput,
            )
        });
        let (ca, cb) = crdts_merge_pair(n);
        g.bench_function(id("crdts"), |b| {
            b.iter_batched(
                || (ca.clone(), cb.clone()),
                |(mut t, o)| {
                    t.merge(o);
                    t
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();

        let mut g = group(c, "awmap_add");
        g.bench_function(id("rasp"), |b| b.iter_with_large_drop(|| rasp_map(n)));
        g.bench_function(id("crdts"), |b| b.iter_with_large_drop(|| crdts_map(n)));
        g.finish();

        let mut g = group(c, "awmap_remove");
        let m = rasp_map(n);
        g.bench_function(id("rasp"), |b| {
            b.iter_batched(
                || m.clone(),
                |mut m| {
                    for k in 0..KEYS {
                        black_box(m.remove(&k));
                    }
                    m
                },
                BatchSize::LargeInput,
            )
        });
        let cm = crdts_map(n);
        g.bench_function(id("crdts"), |b| {
            b.iter_batched(
                || cm.clone(),
                |mut m| {
                    for k in 0..KEYS {
                        let ctx = m.get(&k).derive_rm_ctx();
                        let op = m.rm(k, ctx);
                        m.apply(op);
                    }
                    m
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, orset);
criterion_main!(benches);
