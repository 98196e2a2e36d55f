//! The simulators' event queue against a binary heap, in the classic "hold" model of
//! event-set benchmarks (Jones, "An empirical comparison of priority-queue and event-set
//! implementations", CACM 29(4), 1986, section 2): `n` events pending, and each operation
//! pops the earliest and schedules one new event 10–50 ms later (the simulators' default
//! latency), so the queue stays at `n`. The cost per hold should stay flat in `n` for
//! [`TimeQueue`] and grow with `log n` (and the cache misses of a large heap) for the heap.
//!
//! `cargo bench -p rasp-runtime --bench queue`; `-- --test` runs each once.

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rasp_runtime::sim::TimeQueue;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;

/// Holds per measured iteration.
const HOLDS: u64 = 100_000;

/// Delays in nanoseconds, drawn once so both queues see the same keys.
fn delays(n: usize) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    (0..n)
        .map(|_| rng.random_range(10_000_000..=50_000_000))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_hold");
    g.sample_size(10);
    g.throughput(Throughput::Elements(HOLDS));
    let d = delays(1 << 16);
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        let mut radix: TimeQueue<u32> = TimeQueue::new();
        let mut heap: BinaryHeap<Reverse<(u64, u64, u32)>> = BinaryHeap::new();
        let mut seq = 0u64;
        for i in 0..n {
            seq += 1;
            radix.push(d[i % d.len()], seq, i as u32);
            heap.push(Reverse((d[i % d.len()], seq, i as u32)));
        }
        let mut k = 0usize;
        g.bench_with_input(BenchmarkId::new("time_queue", n), &n, |b, _| {
            b.iter(|| {
                for _ in 0..HOLDS {
                    let (at, _, v) = radix.pop().expect("held");
                    seq += 1;
                    k = (k + 1) & (d.len() - 1);
                    radix.push(at + d[k], seq, black_box(v));
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("binary_heap", n), &n, |b, _| {
            b.iter(|| {
                for _ in 0..HOLDS {
                    let Reverse((at, _, v)) = heap.pop().expect("held");
                    seq += 1;
                    k = (k + 1) & (d.len() - 1);
                    heap.push(Reverse((at + d[k], seq, black_box(v))));
                }
            })
        });
    }
    g.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
