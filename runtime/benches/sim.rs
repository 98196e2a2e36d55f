//! Simulator throughput: events per second of a trivial ping-pong atom, against a naive
//! baseline (the bare event loop: a binary heap of (time, seq, message) and a match, no
//! atoms, no network model). Run `cargo bench -p rasp-runtime --bench sim`; in CI
//! `cargo bench -p rasp-runtime --bench sim -- --test` runs each once.
//!
//! Target: ≥ 5 million events/s on one core (typed moves, one pair). Figures are printed
//! by `cargo run -p rasp-runtime --release --example sim_figures`.

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use rasp_runtime::sim::{Sim, SimConfig, WireMode};
use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Ctx, Message, NodeId, Origin, Time};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::Duration;

#[derive(Clone, Serialize, Deserialize)]
struct Ball(u64);
impl Message for Ball {
    const KIND: &'static str = "bench/ball";
}

struct Player;
impl Atom for Player {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.on::<Ball>(|_, ctx, from: &Origin, Ball(n)| ctx.send(from.from, Ball(n + 1)));
        let node = ctx.node().0;
        if node.is_multiple_of(2) {
            ctx.send(AtomAddr::new(NodeId(node + 1), AtomId(0)), Ball(0));
        }
    }
}

const EVENTS: u64 = 200_000;

fn ping_pong(wire: WireMode, pairs: usize) -> Sim {
    let cfg = SimConfig {
        wire,
        measure_bytes: false,
        seed_from_env: false,
        ..SimConfig::seeded(1)
    };
    let mut sim = Sim::new(cfg).unwrap();
    sim.add_nodes(
        2 * pairs,
        &boot(|b| {
            b.spawn(Player);
        }),
    );
    sim.run_until(Time::from_millis(10));
    sim
}

/// The naive baseline: the same traffic pattern as a bare heap loop.
fn baseline(events: u64) -> u64 {
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    heap.push(Reverse((0u64, seq, 0u32, Box::new(0u64))));
    let mut n = 0;
    while n < events {
        let Reverse((t, _, node, ball)) = heap.pop().unwrap();
        seq += 1;
        heap.push(Reverse((t + 1_000_000, seq, node ^ 1, Box::new(*ball + 1))));
        n += 1;
    }
    black_box(heap.len() as u64)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    g.throughput(Throughput::Elements(EVENTS));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("baseline_bare_heap", |b| b.iter(|| baseline(EVENTS)));
    for (name, wire) in [("typed", WireMode::Typed), ("encode", WireMode::Encode)] {
        for pairs in [1usize, 1000] {
            g.bench_with_input(BenchmarkId::new(name, pairs), &pairs, |b, &pairs| {
                let mut sim = ping_pong(wire, pairs);
                b.iter(|| {
                    for _ in 0..EVENTS {
                        sim.step();
                    }
                    black_box(sim.events())
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("idle_nodes");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("add_10k_idle_nodes", |b| {
        b.iter(|| {
            let mut sim = Sim::new(SimConfig::seeded(2)).unwrap();
            struct Idle;
            impl Atom for Idle {
                fn init(&mut self, _: &mut Ctx<Self>) {}
            }
            sim.add_nodes(
                10_000,
                &boot(|b| {
                    b.spawn(Idle);
                }),
            );
            sim.run_until(Time::ZERO);
            black_box(sim.node_count())
        })
    });
    g.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
