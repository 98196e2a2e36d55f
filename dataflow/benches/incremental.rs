//! Incremental cost of the dataflow engine (README, "Measuring"): a `map → filter` chain over an
//! `ORSet<u64>` through [`Program`], time per update (an add of a fresh element, then its
//! remove, so the state stays the same size) at 10^3 and 10^6 elements. An update must cost
//! O(delta), not O(state): the 10^6 / 10^3 ratio must stay under 2.
//!
//! Setup joins one ORSet of `n` elements into the source (one bind, one pass through the
//! chain): a few seconds at 10^6. Each timed iteration is one add and one remove (two
//! updates): the reported time is per pair.
//!
//! `cargo bench -p rasp-dataflow --bench incremental` (figures);
//! `cargo bench -p rasp-dataflow --bench incremental -- --test` runs each once (CI).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rasp_dataflow::causal::DSet;
use rasp_dataflow::update::{add, remove};
use rasp_dataflow::{Func, Program, Var};
use rasp_lattice::{Lattice, ORSet};

const SIZES: [u64; 2] = [1_000, 1_000_000];

/// The chain `s → map (×3) → filter (odd)`, with `n` elements in `s`.
fn chain(n: u64) -> (Program, Var<ORSet<u64>>, Var<DSet<u64>>) {
    let mut p = Program::new(1);
    let s = p.declare::<ORSet<u64>>("s").expect("fresh");
    let m = p
        .map("tripled", &s, Func::new("triple", |x: &u64| x * 3))
        .expect("map");
    let f = p
        .filter("odd", &m, Func::new("odd", |x: &u64| x % 2 == 1))
        .expect("filter");
    let mut init = ORSet::bottom();
    init.add_all(1, 0..n);
    p.bind(&s, &init).expect("bind");
    (p, s, f)
}

fn incremental(c: &mut Criterion) {
    let mut g = c.benchmark_group("map-filter/orset-update");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in SIZES {
        let (mut p, s, f) = chain(n);
        assert_eq!(
            p.state(&f).expect("held").elements().count(),
            (n / 2) as usize
        );
        // Fresh odd elements (they pass the filter after ×3), beyond the initial ones.
        let mut x = n | 1;
        g.bench_with_input(BenchmarkId::new("add+remove", n), &n, |b, _| {
            b.iter(|| {
                x += 2;
                black_box(p.update(&s, add(x), 1).expect("add"));
                black_box(p.update(&s, remove(x), 1).expect("remove"));
            })
        });
        // The chain still holds exactly the initial elements.
        assert_eq!(
            p.state(&f).expect("held").elements().count(),
            (n / 2) as usize
        );
        assert!(!p.state(&s).expect("held").is_bottom());
    }
    g.finish();
}

criterion_group!(benches, incremental);
criterion_main!(benches);
