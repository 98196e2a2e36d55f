//! Forms a large HyParView overlay with the bare cores and broadcasts over it with Plumtree
//! (issue 4's scale benchmark; a program, not a test). Prints simulated and wall time, the
//! overlay checks, broadcast figures and the process's peak memory (`VmHWM`).
//!
//! `cargo run -p rasp-membership --release --example overlay_scale -- [nodes] [seed]`
//! (default 100,000 nodes; 1,000,000 works given the memory).

use rasp_membership::overlay::Overlay;
use rasp_membership::testkit::{Sim, PAYLOAD};
use rasp_membership::{Config, PeerService, ServiceEvent};
use std::time::{Duration, Instant};

fn peak_rss_mb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}

fn main() -> Result<(), rasp_membership::Error> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let wall = Instant::now();
    let mut sim: Sim<PeerService<u64, u32>> = Sim::new(seed);
    // Joins arrive at 10,000 per simulated second, each through one of the first 3 nodes.
    let gap = Duration::from_micros(100);
    for i in 0..n {
        let node = PeerService::new(i, Config::default())?;
        let seeds: Vec<u64> = (0..i.min(3)).collect();
        sim.add(node, |s, rng, out| {
            if seeds.is_empty() {
                s.start(rng, out)
            } else {
                s.join(seeds, Duration::ZERO, rng, out)
            }
        });
        sim.run_for(gap);
    }
    sim.run_for(Duration::from_secs(20));
    let formed = wall.elapsed();
    let mut overlay = Overlay::new();
    for id in sim.live_ids() {
        let s = sim.node(id).expect("live");
        overlay.insert(id, s.neighbours().iter().copied().collect());
    }
    let r = overlay.report();
    println!(
        "{n} nodes: formed in {:.1} s simulated, {:.1} s wall; connected {}, isolated {}, asymmetric {}, degrees {:?}",
        sim.now.as_secs_f64(),
        formed.as_secs_f64(),
        r.connected,
        r.isolated.len(),
        r.asymmetric.len(),
        r.degree_histogram
    );
    drop(overlay);
    for k in 0..5u32 {
        let before = sim.sent.get(PAYLOAD).copied().unwrap_or(0);
        let first = sim.events.len();
        sim.with(7, |s, rng, out| {
            s.broadcast(k, rng, out);
        });
        sim.run_for(Duration::from_secs(2));
        let mut reached = 0u64;
        let mut ldh = 0;
        for (_, _, e) in &sim.events[first..] {
            if let ServiceEvent::Delivered { round, .. } = e {
                reached += 1;
                ldh = ldh.max(*round);
            }
        }
        sim.events.clear();
        let payloads = sim.sent.get(PAYLOAD).copied().unwrap_or(0) - before;
        println!(
            "broadcast {k}: reliability {:.6}, RMR {:.3}, LDH {ldh}",
            reached as f64 / (n - 1) as f64,
            payloads as f64 / reached.max(1) as f64 - 1.0
        );
    }
    println!("wall {:.1} s, peak memory {:?} MB", wall.elapsed().as_secs_f64(), peak_rss_mb());
    Ok(())
}
