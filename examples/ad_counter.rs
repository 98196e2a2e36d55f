//! The advertisement counter, Lasp's flagship demo, in the deterministic simulator:
//!
//! ```text
//! cargo run --release --example ad_counter              # defaults: 50 clients, 2 servers
//! cargo run --release --example ad_counter -- --help    # the knobs (same as `rasp ad-counter`)
//! ```
//!
//! Prints the summary table and writes plots (PNG, SVG) and CSV to `out/ad-counter`.

use clap::Parser;

/// The advertisement counter (same flags as `rasp ad-counter`).
#[derive(Debug, Parser)]
#[command(name = "ad_counter")]
struct Cli {
    #[command(flatten)]
    args: rasp::cli::ad_counter::AdCounterArgs,
}

fn main() -> std::process::ExitCode {
    rasp::cli::ad_counter::run(Cli::parse().args)
}
