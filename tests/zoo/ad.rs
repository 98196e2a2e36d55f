//! The ad counter's client that keeps counting after it has seen the ad removed (the
//! invariant of Meiklejohn, Van Roy, "Lasp", PPDP 2015, §6, checked by the ad counter's own
//! `no impression for a removed ad`), put back by the client's `keeps_counting_removed`
//! switch ([`rasp::ad_counter::app::AdCounter`]).

use super::case::Case;
use rasp::ad_counter::app::AdCounter;
use rasp::app::fuzz::FuzzArgs;
use std::time::Duration;

/// The invariant (the ad counter's).
pub const INVARIANT: &str = "no impression for a removed ad";

/// One server and clients, two ads per vendor removed after 20 impressions (the setting
/// `tests/fuzz_shrink.rs` fuzzes clean).
fn app(defect: bool) -> AdCounter {
    let mut a = AdCounter::new(2, 20, Duration::from_millis(100));
    a.keeps_counting_removed = defect;
    a
}

/// The case (no `check`: the removal needs the threshold's impressions, their sync, the
/// trigger and the removal's sync, deeper than the default run's searches).
pub fn case(runs: u64) -> Case<AdCounter> {
    Case {
        name: "ad counter client",
        buggy: app(true),
        fixed: app(false),
        invariant: INVARIANT,
        fuzz: FuzzArgs {
            servers: Some(1),
            // The clients count until the horizon (the ad counter is self-driven: told when
            // the run goes quiet, they stop); the removal must reach them before it.
            horizon_s: 30.0,
            settle_s: 20.0,
            ..super::fuzz_args(runs, 4, 0)
        },
        hand_made: &[
            "n0 (server) starts",
            "n1 (client) starts",
            "n1 → n0 membership/wire delivered (n1 joins)",
            "n0 → n1 dataflow/hello delivered (the ads)",
            "n1 → n0 dataflow/hello delivered",
            "n1 → n0 dataflow/sync delivered (the 20th impression: n0's trigger removes the ad)",
            "n0 → n1 dataflow/sync delivered (the removal; n1 counts the ad again)",
        ],
        check: None,
        expect_clean: true,
    }
}
