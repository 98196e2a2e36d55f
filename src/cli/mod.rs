//! The `rasp` command line: one subcommand per tool (`Command`).
//!
//! Output conventions: machine-readable lines go to stdout (`key=value` lines at start, one
//! JSON object per result line); logs go to stderr (`RUST_LOG` filters, default `info`).
//! Exit codes: 0 success (including shutdown by SIGINT/SIGTERM), 1 runtime failure,
//! 2 bad configuration or usage.
//!
//! With the `cli` feature (default) the module holds every subcommand; without it, only
//! what the App road ([`crate::app`]) runs on: [`node`], [`config`] and the helpers below.

#[cfg(feature = "cli")]
pub mod ad_counter;
#[cfg(feature = "cli")]
pub mod bench;
pub mod config;
pub mod node;
#[cfg(feature = "cli")]
pub mod overlay;

#[cfg(feature = "cli")]
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// rasp: coordination-free distributed dataflow over CRDTs.
#[cfg(feature = "cli")]
#[derive(Debug, Parser)]
#[command(name = "rasp", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[cfg(feature = "cli")]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start one node: listen, join a cluster, run its atoms until SIGINT/SIGTERM.
    Node(Box<crate::app::node::AppNodeArgs>),
    /// Print a fresh 256-bit cluster key in the libp2p `/key/swarm/psk/1.0.0/` format.
    GenPsk,
    /// Measure loopback message throughput between two `rasp` processes.
    BenchNet(bench::BenchArgs),
    /// The receiving side of `bench-net` (started by it).
    #[command(hide = true)]
    BenchSink(bench::SinkArgs),
    /// Ask running nodes for their membership views; print the overlay report as JSON.
    Overlay(overlay::OverlayArgs),
    /// The advertisement counter (Lasp's flagship demo): simulator, matrix or real processes;
    /// `ad-counter sim|node` run it as an app.
    AdCounter(Box<ad_counter::AdCounterCmd>),
    /// Talk to a running node's HTTP API: get, set, read (threshold), watch, declare, list
    Var(crate::http::client::VarArgs),
    /// rasp studio in the browser: `--attach ADDR,...` draws a running cluster live (overlay,
    /// checks, variables, message rates) from the nodes' HTTP APIs
    Studio(crate::studio::live::LiveArgs),
}

/// Exit code for a bad configuration or usage (clap uses 2 too).
pub const EXIT_CONFIG: u8 = 2;

/// Parses the command line and runs the subcommand.
#[cfg(feature = "cli")]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::AdCounter(c)
            if matches!(
                c.app,
                Some(
                    crate::app::AppCommand::Check(_)
                        | crate::app::AppCommand::Fuzz(_)
                        | crate::app::AppCommand::Shrink(_)
                        | crate::app::AppCommand::Studio(_)
                )
            ) =>
        {
            crate::app::init_tracing_at("warn")
        }
        _ => crate::init_tracing(),
    }
    match cli.command {
        Command::Node(args) => crate::app::node::run(crate::app::NoProgram, *args, Vec::new()),
        Command::GenPsk => {
            print!("{}", rasp_runtime::net::identity::generate_psk_file_text());
            println!();
            ExitCode::SUCCESS
        }
        Command::BenchNet(args) => bench::run(args),
        Command::BenchSink(args) => bench::run_sink(args),
        Command::Overlay(args) => overlay::run(args),
        Command::AdCounter(cmd) => ad_counter::run_cmd(*cmd),
        Command::Var(args) => crate::http::client::run(args),
        Command::Studio(args) => crate::studio::live::run(args),
    }
}

/// Prints `rasp: <msg>` to stderr and returns the configuration exit code.
pub fn config_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("rasp: configuration error: {msg}");
    ExitCode::from(EXIT_CONFIG)
}

/// A multi-threaded tokio runtime for a command.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// SIGINT/SIGTERM listeners. Create them before announcing readiness, so a signal sent
/// right after the start lines are printed is handled (not fatal).
pub struct ShutdownSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Installs the handlers (inside a tokio runtime).
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            ShutdownSignal {
                term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
                int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
            }
        }
        #[cfg(not(unix))]
        ShutdownSignal {}
    }

    /// Waits for SIGINT or SIGTERM (Ctrl-C only on non-Unix).
    pub async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = self.int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C: shutting down");
        }
    }
}
