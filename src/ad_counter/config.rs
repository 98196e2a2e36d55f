//! The advertisement counter's knobs: one plain struct with defaults that say where they came
//! from, validated once before anything runs.

use rasp_dataflow::replica::SyncMode;
use rasp_membership::Mode;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Settings of one advertisement-counter run (simulated or across processes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdConfig {
    /// Client nodes (they read `ads-with-contracts` and count impressions).
    pub clients: u32,
    /// Server nodes (they hold every variable and own the removal triggers).
    pub servers: u32,
    /// Ads per vendor (two vendors, Rovio and Riot). Default 10: PPDP'15 §6.
    pub ads_per_vendor: u32,
    /// Impressions after which an ad is removed. The paper's is 50,000; the default here is
    /// 2,000 so that the default run takes well under a minute of wall time (the talk's later
    /// harness scaled it with the cluster: 180 × clients).
    pub threshold: u64,
    /// Time between two impressions of one client. Default 1 s (the talk's harness: 10 s).
    pub impression_interval: Duration,
    /// Time between two synchronisations of a replica with its neighbours. Default 1 s
    /// (ICDE'19's setup; the talk's harness: 5 s).
    pub sync_interval: Duration,
    /// Expected fraction of the clients offline at any time: at every `offline_duration`
    /// epoch each client is offline for the whole epoch with this probability.
    pub offline_fraction: f64,
    /// Length of an offline epoch.
    pub offline_duration: Duration,
    /// Membership protocol.
    pub membership: Mode,
    /// Synchronisation of variables.
    pub sync: SyncMode,
    /// Message loss probability on every link (simulator only).
    pub loss: f64,
    /// Transient network partitions splitting the nodes in two random halves, each lasting
    /// `offline_duration`, at random times in the expected run time (simulator only).
    pub partitions: u32,
    /// The seed fixing every random choice (simulator: the whole run).
    pub seed: u64,
    /// Upper bound of the run in (virtual) time; a run that has not removed every ad and
    /// converged by then reports failure.
    pub duration: Duration,
    /// Where plots and CSV files go.
    pub out_dir: PathBuf,
    /// Exact mode: each ad's impressions are bounded-counter rights (0 overcount, impressions
    /// without a right refused; see [`crate::ad_counter::app`]). Default off.
    #[serde(default)]
    pub exact: bool,
    /// Catch neighbours up with whole states instead of the deltas since their summaries
    /// (`rasp_dataflow::replica`, "Catch-up from a summary"): the old path, for comparisons
    /// (simulator only). Default off.
    #[serde(default)]
    pub whole_state_catch_up: bool,
}

impl Default for AdConfig {
    fn default() -> Self {
        AdConfig {
            clients: 50,
            servers: 2,
            ads_per_vendor: 10,
            threshold: 2_000,
            impression_interval: Duration::from_secs(1),
            sync_interval: Duration::from_secs(1),
            offline_fraction: 0.1,
            offline_duration: Duration::from_secs(20),
            membership: Mode::HyParView,
            sync: SyncMode::DeltaBpRr,
            loss: 0.0,
            partitions: 0,
            seed: 42,
            duration: Duration::from_secs(7_200),
            out_dir: PathBuf::from("out/ad-counter"),
            exact: false,
            whole_state_catch_up: false,
        }
    }
}

impl AdConfig {
    /// Checks every value; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients == 0 {
            return Err("clients must be at least 1".into());
        }
        if self.servers == 0 {
            return Err("servers must be at least 1".into());
        }
        if self.ads_per_vendor == 0 {
            return Err("ads-per-vendor must be at least 1".into());
        }
        if self.threshold == 0 {
            return Err("threshold must be at least 1".into());
        }
        if self.impression_interval.is_zero() {
            return Err("impression-interval must be positive".into());
        }
        if self.sync_interval.is_zero() {
            return Err("sync-interval must be positive".into());
        }
        if !(0.0..1.0).contains(&self.offline_fraction) {
            return Err(format!(
                "offline-fraction must be in [0, 1), got {}",
                self.offline_fraction
            ));
        }
        if self.offline_fraction > 0.0 && self.offline_duration.is_zero() {
            return Err("offline-duration must be positive".into());
        }
        if !(0.0..1.0).contains(&self.loss) {
            return Err(format!("loss must be in [0, 1), got {}", self.loss));
        }
        if self.duration.is_zero() {
            return Err("duration must be positive".into());
        }
        Ok(())
    }

    /// Every ad's name: `rovio/0` … `riot/<n-1>`.
    pub fn ads(&self) -> Vec<String> {
        crate::ad_counter::program::ad_names(self.ads_per_vendor)
    }

    /// The impressions needed to remove every ad, divided by the clients' total rate: the
    /// run's expected length if no client were ever offline.
    pub fn expected_run(&self) -> Duration {
        let ads = 2.0 * f64::from(self.ads_per_vendor);
        let per_client = ads * self.threshold as f64 / f64::from(self.clients);
        self.impression_interval.mul_f64(per_client.max(1.0))
    }
}
