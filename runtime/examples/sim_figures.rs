//! Prints the simulator's headline figures (run with `--release`):
//!
//! - events per second for a trivial ping-pong atom (`PAIRS` concurrent pairs on
//!   distinct nodes), in both wire modes;
//! - runtime bytes per idle node (one idle atom each), measured as the growth of the
//!   process's resident set (`VmRSS` in `/proc/self/status`) while adding the nodes. (A
//!   counting global allocator would need `unsafe`, which the workspace forbids; RSS is an
//!   upper bound: it includes allocator overhead and the node vectors' spare capacity.)
//!
//! `cargo run -p rasp-runtime --release --example sim_figures [idle_nodes] [events]`

use rasp_runtime::sim::{Sim, SimConfig, WireMode};
use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Ctx, Message, NodeId, Origin, Time};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Clone, Serialize, Deserialize)]
struct Ball(u64);
impl Message for Ball {
    const KIND: &'static str = "figures/ball";
}

/// Sends the ball back to whoever sent it; node `2k` serves first to node `2k + 1`.
struct Player {
    hits: u64,
}
impl Atom for Player {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.on::<Ball>(|me, ctx, from: &Origin, Ball(n)| {
            me.hits += 1;
            ctx.send(from.from, Ball(n + 1));
        });
        let node = ctx.node().0;
        if node.is_multiple_of(2) {
            // Serve once every node exists.
            ctx.after(Duration::ZERO, move |_, ctx| {
                ctx.send(AtomAddr::new(NodeId(node + 1), AtomId(0)), Ball(0))
            });
        }
    }
}

/// Does nothing: the idle atom.
struct Idle;
impl Atom for Idle {
    fn init(&mut self, _: &mut Ctx<Self>) {}
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn ping_pong(wire: WireMode, pairs: u64, events: u64) -> f64 {
    let cfg = SimConfig {
        wire,
        measure_bytes: false,
        seed_from_env: false,
        ..SimConfig::seeded(1)
    };
    let mut sim = Sim::new(cfg).unwrap();
    let b = boot(|b| {
        b.spawn(Player { hits: 0 });
    });
    sim.add_nodes(2 * pairs as usize, &b);
    // Warm up (connections open), then measure.
    sim.run_until(Time::from_millis(10));
    let (e0, t0) = (sim.events(), Instant::now());
    while sim.events() - e0 < events {
        assert!(sim.step(), "the ball was dropped");
    }
    let secs = t0.elapsed().as_secs_f64();
    (sim.events() - e0) as f64 / secs
}

fn main() {
    let mut args = std::env::args().skip(1);
    let idle: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let events: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000_000);

    for pairs in [1u64, 1000] {
        let typed = ping_pong(WireMode::Typed, pairs, events);
        let enc = ping_pong(WireMode::Encode, pairs, events / 4);
        println!(
            "ping-pong, {pairs} pair(s): {:.2} M events/s typed moves, {:.2} M events/s MessagePack encoding",
            typed / 1e6,
            enc / 1e6
        );
    }

    let before = rss_bytes();
    let t0 = Instant::now();
    let mut sim = Sim::new(SimConfig {
        seed_from_env: false,
        ..SimConfig::seeded(2)
    })
    .unwrap();
    sim.add_nodes(
        idle,
        &boot(|b| {
            b.spawn(Idle);
        }),
    );
    sim.run_until(Time::ZERO); // runs the boot events
    let took = t0.elapsed();
    let after = rss_bytes();
    assert_eq!(
        sim.host(NodeId(idle as u64 - 1))
            .map(|h| h.atom_ids().len()),
        Some(1)
    );
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "{idle} idle nodes (one idle atom each): {:.0} bytes/node (RSS growth {} MiB), added in {:.2?}",
            (a.saturating_sub(b)) as f64 / idle as f64,
            (a.saturating_sub(b)) >> 20,
            took
        ),
        _ => println!("{idle} idle nodes added in {took:.2?}; /proc/self/status unavailable"),
    }
    drop(sim);
}
