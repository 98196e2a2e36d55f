//! Per-update cost of `filter → map` with WebAssembly functions against the same functions
//! native, side by side in one run: a set of words, `long = filter(words, more than four
//! letters)`, `loud = map(long, to upper case)`; each update adds one word and propagates
//! through both operators. The WebAssembly functions are `rasp-guest-funcs` (`long_word`,
//! `shout`), built here for wasm32.
//!
//! ```text
//! cargo run --release -p rasp-dataflow --example wasm_functions -- --updates 20000
//! ```

use rasp_dataflow::causal::DSet;
use rasp_dataflow::update::add;
use rasp_dataflow::{Func, Program};
use rasp_lattice::ORSet;
use rasp_wasm::build::{build_guest, target_installed, TARGET};
use rasp_wasm::func::PureModule;
use rasp_wasm::Limits;
use std::time::Instant;

fn word(i: u64) -> String {
    // Lengths 3..=8, so about half pass the filter.
    let len = 3 + (i % 6) as usize;
    (0..len)
        .map(|k| (b'a' + ((i / 7 + k as u64 * 13) % 26) as u8) as char)
        .collect::<String>()
        + &i.to_string()
}

fn run(p: &mut Program, updates: u64) -> f64 {
    let words = rasp_dataflow::Var::<ORSet<String>>::named("words");
    let t = Instant::now();
    for i in 0..updates {
        p.update(&words, add(word(i)), 1).expect("update");
    }
    t.elapsed().as_secs_f64() * 1e9 / updates as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let updates = match args.iter().position(|a| a == "--updates") {
        None => 20_000,
        Some(i) => match args.get(i + 1).and_then(|v| v.parse::<u64>().ok()) {
            Some(n) if n > 0 => n,
            _ => {
                eprintln!("--updates takes a positive integer");
                std::process::exit(2)
            }
        },
    };
    if !target_installed() {
        eprintln!("the {TARGET} target is not installed: rustup target add {TARGET}");
        std::process::exit(2);
    }
    let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = build_guest(&ws, "rasp-guest-funcs", &ws.join("target/guest")).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let module = PureModule::new(&std::fs::read(file).expect("read"), Limits::default())
        .expect("the module validates");
    let native = || {
        let mut p = Program::new(1);
        let words = p.declare::<ORSet<String>>("words").unwrap();
        let long = p
            .filter(
                "long",
                &words,
                Func::new("long", |s: &String| s.chars().count() > 4),
            )
            .unwrap();
        p.map(
            "loud",
            &long,
            Func::new("loud", |s: &String| s.to_uppercase()),
        )
        .unwrap();
        p
    };
    let wasm = || {
        let mut p = Program::new(1);
        let words = p.declare::<ORSet<String>>("words").unwrap();
        let long = p
            .filter_wasm::<String, ORSet<String>>("long", &words, &module, "long_word")
            .unwrap();
        p.map_wasm::<String, String, DSet<String>>("loud", &long, &module, "shout")
            .unwrap();
        p
    };
    println!("{updates} updates through filter → map, 5 pairs (native, wasm)");
    println!("| pair | native ns/update | wasm ns/update | wasm / native |");
    println!("|---|---|---|---|");
    let mut ratios = Vec::new();
    for r in 0..5 {
        let (mut a, mut b) = (native(), wasm());
        let (n, w) = (run(&mut a, updates), run(&mut b, updates));
        let loud = rasp_dataflow::Var::<DSet<String>>::named("loud");
        assert_eq!(
            rasp_lattice::Query::query(a.state(&loud).unwrap()),
            rasp_lattice::Query::query(b.state(&loud).unwrap()),
            "the same output"
        );
        assert_eq!(b.wasm_failures(), 0);
        ratios.push(w / n);
        println!("| {} | {n:.0} | {w:.0} | {:.2} |", r + 1, w / n);
    }
    ratios.sort_by(f64::total_cmp);
    println!("median wasm/native per-update cost: {:.2}", ratios[2]);
}
