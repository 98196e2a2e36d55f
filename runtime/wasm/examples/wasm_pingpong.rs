//! Simulator events per second with WebAssembly atoms against the same atoms native, in one
//! run: two nodes, a pinger keeping `--window` requests outstanding to a ponger, `--count`
//! round trips. The guest is `rasp-guest-pingpong` (built here for wasm32); the native twin
//! below is the same logic against `rasp_runtime::Ctx`. Pairs alternate (native, wasm) so
//! the machine's noise falls on both; the median ratio is printed.
//!
//! ```text
//! cargo run --release -p rasp-wasm --example wasm_pingpong -- --count 20000 --runs 5
//! ```

use rasp_runtime::sim::{Sim, SimConfig};
use rasp_runtime::{boot, Atom, Boot, Ctx, Dest, Message, NodeId, RequestError, Time};
use rasp_wasm::build::{build_guest, target_installed, TARGET};
use rasp_wasm::{wasm_boot, Limits, WasmModule};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The guest's argument (same encoding as `rasp_guest_pingpong::PingPong`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct PingPong {
    pinger: bool,
    peer: u64,
    count: u64,
    window: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Ping(u64);
impl Message for Ping {
    const KIND: &'static str = "pp/ping";
}

#[derive(Clone, Serialize, Deserialize)]
struct Pong(u64);
impl Message for Pong {
    const KIND: &'static str = "pp/pong";
}

/// The native twin of the guest.
struct Native {
    cfg: PingPong,
    sent: u64,
    answered: u64,
}

impl Native {
    fn ping(&mut self, ctx: &mut Ctx<Self>) {
        if self.sent >= self.cfg.count {
            return;
        }
        self.sent += 1;
        ctx.request(
            Dest::service(NodeId(self.cfg.peer), "pingpong"),
            Ping(self.sent),
            Duration::from_secs(1),
            |me: &mut Native, ctx, r: Result<Pong, RequestError>| {
                if r.is_ok() {
                    me.answered += 1;
                    if me.answered == me.cfg.count {
                        ctx.count("pp_done", 1);
                    }
                } else {
                    // Not answered (the peer not up yet, a lost message): ask again.
                    me.sent -= 1;
                }
                me.ping(ctx);
            },
        );
    }
}

impl Atom for Native {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        if !self.cfg.pinger {
            if ctx.register("pingpong").is_ok() {
                ctx.on::<Ping>(|_, ctx, from, Ping(n)| ctx.reply(from, Pong(n)));
            }
            return;
        }
        // A moment for the node to connect (on a real node); retries cover the rest.
        ctx.after(Duration::from_millis(200), |me, ctx| {
            for _ in 0..me.cfg.window {
                me.ping(ctx);
            }
        });
    }
}

fn flag(args: &[String], name: &str, default: u64) -> u64 {
    match args.iter().position(|a| a == name) {
        None => default,
        Some(i) => match args.get(i + 1).map(|v| v.parse::<u64>()) {
            Some(Ok(v)) if v > 0 => v,
            _ => {
                eprintln!("{name} takes a positive integer");
                std::process::exit(2);
            }
        },
    }
}

/// One run: (simulator events, wall seconds).
fn run(make: &dyn Fn(PingPong) -> Boot, count: u64, window: u64) -> (u64, f64) {
    run_with(make, make, count, window)
}

/// One run with the ponger from `ponger` and the pinger from `pinger`.
fn run_with(
    ponger: &dyn Fn(PingPong) -> Boot,
    pinger: &dyn Fn(PingPong) -> Boot,
    count: u64,
    window: u64,
) -> (u64, f64) {
    let make = pinger;
    let mut sim = Sim::new(SimConfig::seeded(1)).expect("config");
    let ponger = sim.add_node(ponger(PingPong::default()));
    let pinger = sim.add_node(make(PingPong {
        pinger: true,
        peer: ponger.0,
        count,
        window,
    }));
    let t = Instant::now();
    sim.run_until(Time::from_secs(3600));
    let wall = t.elapsed().as_secs_f64();
    let done = sim.node_metrics(pinger).counter("pp_done", "");
    assert_eq!(done, 1, "the pinger finished its round trips");
    let fuel_of = |n: NodeId| {
        sim.with_atom::<rasp_wasm::WasmAtom, _>(
            rasp_runtime::AtomAddr::new(n, rasp_runtime::AtomId(0)),
            |w| w.fuel_used(),
        )
        .unwrap_or(0)
    };
    let (fp, fq) = (fuel_of(ponger), fuel_of(pinger));
    if fp + fq > 0 {
        eprintln!(
            "guest fuel per round trip: ponger {:.0}, pinger {:.0}",
            fp as f64 / count as f64,
            fq as f64 / count as f64
        );
    }
    (sim.events(), wall)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: wasm_pingpong [--count N (20000)] [--window W (16)] [--runs R (5)] [--guest FILE.wasm]"
        );
        return;
    }
    let count = flag(&args, "--count", 20_000);
    let window = flag(&args, "--window", 16);
    let runs = flag(&args, "--runs", 5);
    if !target_installed() {
        eprintln!("the {TARGET} target is not installed: rustup target add {TARGET}");
        std::process::exit(2);
    }
    // `--guest FILE` runs a guest built elsewhere (other build settings); by default the
    // example builds `rasp-guest-pingpong` itself.
    let file = match args.iter().position(|a| a == "--guest") {
        Some(i) => match args.get(i + 1) {
            Some(f) => std::path::PathBuf::from(f),
            None => {
                eprintln!("--guest takes a .wasm file");
                std::process::exit(2);
            }
        },
        None => {
            let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            build_guest(&ws, "rasp-guest-pingpong", &ws.join("target/guest")).unwrap_or_else(|e| {
                eprintln!("{e}");
                std::process::exit(1)
            })
        }
    };
    let module: Arc<WasmModule> =
        WasmModule::from_file(&file, Limits::default()).expect("the guest validates");
    let native = |cfg: PingPong| -> Boot {
        boot(move |b| {
            b.spawn(Native {
                cfg,
                sent: 0,
                answered: 0,
            });
        })
    };
    let wasm =
        |cfg: PingPong| -> Boot { wasm_boot(module.clone(), rmp_serde::to_vec(&cfg).unwrap()) };
    // The ponger written by hand in WebAssembly text (the tests' `pp_echo.wat`).
    let wat_src =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/pp_echo.wat"))
            .expect("pp_echo.wat");
    let wat_module = WasmModule::new(&wat_src, Limits::default()).expect("the wat guest validates");
    let by_hand = |_: PingPong| -> Boot { wasm_boot(wat_module.clone(), Vec::new()) };
    println!("{count} round trips, window {window}, {runs} pairs (native, wasm)");
    println!("| run | native events/s | wasm events/s | wasm / native | native pinger + wat ponger, events/s |");
    println!("|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for r in 0..runs {
        let (en, wn) = run(&native, count, window);
        let (ew, ww) = run(&wasm, count, window);
        let (et, wt) = run_with(&by_hand, &native, count, window);
        assert_eq!(en, ew, "the same schedule in both worlds");
        assert_eq!(en, et, "the same schedule with the wat ponger");
        let (rn, rw, rt) = (en as f64 / wn, ew as f64 / ww, et as f64 / wt);
        ratios.push(rw / rn);
        println!(
            "| {} | {:.0} | {:.0} | {:.3} | {:.0} |",
            r + 1,
            rn,
            rw,
            rw / rn,
            rt
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median wasm/native events/s ratio: {:.3} ({} events per run)",
        ratios[ratios.len() / 2],
        run(&native, count, window).0
    );
}
