//! The advertisement counter (Lasp talk slides 42–52, PPDP'15 §6): rasp's flagship demo.
//!
//! Rovio's and Riot's ads (observed-remove sets) are unioned, paired with the contracts
//! (product) and filtered to the ads that have a contract: `ads-with-contracts`, the set
//! clients read. Clients pick an ad and count an impression on its grow-only counter, online
//! or offline; for each ad a server-side trigger waits for the counter to reach the threshold
//! and removes the ad from its vendor set, and the removal flows through union, product and
//! filter to every client.
//!
//! With `exact` ([`AdConfig::exact`], `--exact`) each ad's counter is a bounded counter of
//! rights instead, so no ad is counted past its threshold (see [`app`]).
//!
//! | module | what |
//! |---|---|
//! | [`program`] | the dataflow program, written once with the DSL |
//! | [`app`] | the application atom (server and client logic, the client-side invariant) |
//! | [`config`] | the knobs ([`AdConfig`]) |
//! | [`sim`] | the run in the deterministic simulator |
//! | [`summary`] | what a run measured ([`Summary`], time [`summary::Series`]) |
//! | `output` | the CSV files and the plots (PNG and SVG); with the `cli` feature |
//!
//! ```no_run
//! use rasp::ad_counter::{sim, AdConfig};
//!
//! let cfg = AdConfig { clients: 20, threshold: 200, ..AdConfig::default() };
//! let result = sim::run(&cfg, &mut |_| {}).map_err(std::io::Error::other)?;
//! assert!(result.summary.ok());
//! print!("{}", result.summary.table(&result.host));
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod app;
pub mod config;
#[cfg(feature = "cli")]
pub mod output;
pub mod program;
pub mod sim;
pub mod summary;

pub use config::AdConfig;
pub use summary::{RunResult, Summary};
