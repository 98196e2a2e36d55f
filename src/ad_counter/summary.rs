//! What a run measured: the [`Summary`] (deterministic for a seed in the simulator), the time
//! [`Series`] behind the plots, and the host figures (wall time, peak memory) that are not
//! deterministic and so live apart.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Traffic of one message kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bytes {
    /// Bytes sent to other nodes.
    pub sent: u64,
    /// Bytes received from other nodes.
    pub recv: u64,
    /// Messages sent (local and remote).
    pub msgs: u64,
}

/// The outcome of one ad.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdOutcome {
    /// The ad.
    pub ad: String,
    /// Its counter at the end (impressions counted).
    pub impressions: u64,
    /// Impressions past the threshold.
    pub over: u64,
}

/// Every ad's outcome from the final counters, with the mean and the largest overcount in
/// percent of the threshold: `(per_ad, mean_pct, max_pct)`.
pub fn outcomes(
    ads: impl IntoIterator<Item = String>,
    counters: &BTreeMap<String, u64>,
    threshold: u64,
) -> (Vec<AdOutcome>, f64, f64) {
    let per_ad: Vec<AdOutcome> = ads
        .into_iter()
        .map(|ad| {
            let c = counters.get(&ad).copied().unwrap_or(0);
            AdOutcome {
                ad,
                impressions: c,
                over: c.saturating_sub(threshold),
            }
        })
        .collect();
    let pct = |o: &AdOutcome| o.over as f64 * 100.0 / threshold as f64;
    let mean = per_ad.iter().map(pct).sum::<f64>() / per_ad.len().max(1) as f64;
    let max = per_ad.iter().map(pct).fold(0.0, f64::max);
    (per_ad, mean, max)
}

/// Bytes sent and received per role and message kind, summed over nodes, with the totals a
/// [`Summary`] reports; the simulator and the process runs fill it the same way.
#[derive(Clone, Debug, Default)]
pub struct ByteTally {
    /// Per role (`server`, `client`), per message kind.
    pub bytes: BTreeMap<String, BTreeMap<String, Bytes>>,
    /// Bytes sent by every node.
    pub sent: u64,
    /// Bytes sent by clients.
    pub client_sent: u64,
    /// Bytes of dataflow sync messages sent by clients.
    pub client_sync: u64,
}

impl ByteTally {
    /// Adds one node's per-kind metrics; `role` is `server` or `client`.
    pub fn add(&mut self, role: &str, kinds: &BTreeMap<String, rasp_runtime::KindStats>) {
        let sync = <rasp_dataflow::replica::Sync as rasp_runtime::Message>::KIND;
        for (kind, st) in kinds {
            let b = self
                .bytes
                .entry(role.to_string())
                .or_default()
                .entry(kind.clone())
                .or_default();
            b.sent += st.bytes_sent;
            b.recv += st.bytes_recv;
            b.msgs += st.msgs_sent;
            self.sent += st.bytes_sent;
            if role == "client" {
                self.client_sent += st.bytes_sent;
                if kind == sync {
                    self.client_sync += st.bytes_sent;
                }
            }
        }
    }
}

/// What the simulator and the process runs measure the same way, from which
/// [`Summary::measured`] builds a summary.
pub struct Measured<'a> {
    /// `sim` or `processes`.
    pub world: &'static str,
    /// The run's configuration.
    pub cfg: &'a super::AdConfig,
    /// Every ad of the run.
    pub ads: Vec<String>,
    /// The reports of the nodes that answered.
    pub reports: Vec<&'a super::app::NodeReport>,
    /// The traffic of those nodes.
    pub tally: ByteTally,
    /// Variable payload bytes the replicas sent.
    pub payload: u64,
    /// The run's length in seconds.
    pub run_s: f64,
}

impl Summary {
    /// The summary of what both worlds measure alike: the counters of the first report, the
    /// reports' sums, the traffic. What only one world knows (convergence, offline
    /// impressions, the last impression) is left unset (`false`, `0`, `None`) for the caller
    /// to fill in.
    pub fn measured(m: Measured<'_>) -> Summary {
        let cfg = m.cfg;
        let counters = m
            .reports
            .first()
            .map(|r| r.counters.clone())
            .unwrap_or_default();
        let ads = m.ads.len() as u32;
        let (per_ad, overcount_mean_pct, overcount_max_pct) =
            outcomes(m.ads, &counters, cfg.threshold);
        let sum = |f: fn(&super::app::NodeReport) -> u64| m.reports.iter().map(|r| f(r)).sum();
        let clients = f64::from(cfg.clients.max(1));
        Summary {
            world: m.world.into(),
            clients: cfg.clients,
            servers: cfg.servers,
            ads,
            threshold: cfg.threshold,
            membership: cfg.membership.to_string(),
            sync: cfg.sync.to_string(),
            seed: cfg.seed,
            all_removed: m.reports.iter().all(|r| {
                r.visible.is_empty() && r.vendor_ads.as_ref().is_none_or(|v| v.is_empty())
            }),
            converged: false,
            violations: sum(|r| r.violations),
            resurrections: sum(|r| r.resurrections),
            trigger_firings: sum(|r| r.fired.len() as u64),
            impressions: sum(|r| r.impressions),
            offline_impressions: 0,
            last_impression_s: 0.0,
            converged_at_s: None,
            convergence_s: None,
            overcount_mean_pct,
            overcount_max_pct,
            per_ad,
            payload_bytes: m.payload,
            protocol_bytes: m.tally.sent.saturating_sub(m.payload),
            state_per_client_per_90s: m.tally.client_sync as f64 / clients * 90.0
                / m.run_s.max(1e-9),
            bytes_per_client: m.tally.client_sent as f64 / clients,
            bytes: m.tally.bytes,
            run_s: m.run_s,
            events: 0,
            trace_hash: 0,
            timed_out_s: None,
            exact: cfg.exact,
            refused_no_rights: sum(|r| r.refused_no_rights),
            rights_requests: sum(|r| r.rights_requests),
            catch_up_summary_bytes: 0,
            catch_up_payload_bytes: 0,
            catch_up_missing_bytes: 0,
            bytes_per_impression: m.tally.sent as f64 / (sum(|r| r.impressions).max(1) as f64),
            impression_lower_bound: 0.0,
        }
    }
}

/// The summary of a run: the same for the same seed in the simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `sim` or `processes`.
    pub world: String,
    /// Client nodes.
    pub clients: u32,
    /// Server nodes.
    pub servers: u32,
    /// Ads (both vendors).
    pub ads: u32,
    /// Removal threshold.
    pub threshold: u64,
    /// Membership mode.
    pub membership: String,
    /// Sync mode.
    pub sync: String,
    /// The seed.
    pub seed: u64,
    /// Every ad was removed from the vendor sets and from every client's view.
    pub all_removed: bool,
    /// Every replica holds the same value of every variable it shares with a server.
    pub converged: bool,
    /// Impressions refused because their ad's removal had been received (must be 0).
    pub violations: u64,
    /// Removed ads that came back into a client's view (must be 0).
    pub resurrections: u64,
    /// Removal triggers fired, over all servers: one per ad in a connected cluster; more when
    /// a partition (or a lost unshipped firing) let two sides each fire once.
    pub trigger_firings: u64,
    /// Impressions counted, in total.
    pub impressions: u64,
    /// Impressions counted by clients that had no neighbour at the time.
    pub offline_impressions: u64,
    /// When the last impression was counted (seconds since the workload started).
    pub last_impression_s: f64,
    /// When every replica agreed (seconds since the workload started).
    pub converged_at_s: Option<f64>,
    /// Convergence time after the last impression, in seconds.
    pub convergence_s: Option<f64>,
    /// Mean overcounting: impressions past the threshold, as % of the threshold.
    pub overcount_mean_pct: f64,
    /// Largest overcounting of one ad, %.
    pub overcount_max_pct: f64,
    /// Per ad.
    pub per_ad: Vec<AdOutcome>,
    /// Traffic per role (`client`, `server`) and message kind, summed over the role's nodes.
    pub bytes: BTreeMap<String, BTreeMap<String, Bytes>>,
    /// Variable payload bytes sent (the CRDT states and deltas), over all nodes.
    pub payload_bytes: u64,
    /// Everything else sent (membership, greetings, acks, envelopes), over all nodes.
    pub protocol_bytes: u64,
    /// Bytes of `dataflow/sync` messages sent per client, normalised to 90 s of run time
    /// (the talk's figure: ~5 GiB per client per 90 s).
    pub state_per_client_per_90s: f64,
    /// All bytes sent per client (every kind), over the whole run.
    pub bytes_per_client: f64,
    /// Run length (virtual seconds in the simulator).
    pub run_s: f64,
    /// Simulator events processed (0 for processes).
    pub events: u64,
    /// The simulator's trace hash (0 for processes).
    pub trace_hash: u64,
    /// When the run gave up before converging (processes: `--timeout-s`), its length in
    /// seconds; `None` when it ran to the end.
    #[serde(default)]
    pub timed_out_s: Option<f64>,
    /// Exact mode (`--exact`): bounded-counter rights instead of grow-only counters.
    #[serde(default)]
    pub exact: bool,
    /// Exact mode: impressions refused because the client held no right on the ad.
    #[serde(default)]
    pub refused_no_rights: u64,
    /// Exact mode: rights requests the clients sent.
    #[serde(default)]
    pub rights_requests: u64,
    /// Catch-ups (simulator; 0 for processes): bytes of the variable summaries the
    /// greetings carried, over all nodes (`rasp_dataflow::replica`, "Catch-up from a
    /// summary").
    #[serde(default)]
    pub catch_up_summary_bytes: u64,
    /// Catch-ups: payload bytes sent (deltas since the neighbours' summaries, or whole
    /// states with `--whole-state-catch-up`).
    #[serde(default)]
    pub catch_up_payload_bytes: u64,
    /// Catch-ups: of what was sent, the part the receiver lacked when it arrived (per
    /// variable, the minimal delta): what an ideal catch-up sends.
    #[serde(default)]
    pub catch_up_missing_bytes: u64,
    /// All bytes sent (every kind, every node) per impression counted.
    #[serde(default)]
    pub bytes_per_impression: f64,
    /// The lower bound of `bytes_per_impression` (simulator, grow-only mode; 0 otherwise):
    /// every impression's delta (the one-entry counter `{client: count}`, encoded) sent once
    /// to each other replica holding the ad's counter, and nothing else.
    #[serde(default)]
    pub impression_lower_bound: f64,
}

impl Summary {
    /// (summary + payload bytes of catch-ups) / their missing part; 0 without catch-ups.
    pub fn catch_up_ratio(&self) -> f64 {
        if self.catch_up_missing_bytes == 0 {
            return 0.0;
        }
        (self.catch_up_summary_bytes + self.catch_up_payload_bytes) as f64
            / self.catch_up_missing_bytes as f64
    }

    /// Bytes per impression over its lower bound; 0 when the bound is unknown.
    pub fn impression_ratio(&self) -> f64 {
        if self.impression_lower_bound <= 0.0 {
            return 0.0;
        }
        self.bytes_per_impression / self.impression_lower_bound
    }
}

/// Figures of the machine that ran it (not deterministic).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFigures {
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Peak resident memory of this process (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

/// One sample of the run, for the plots and the CSV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the workload started.
    pub t: f64,
    /// Impressions counted so far.
    pub impressions: u64,
    /// Mean fraction of the counted impressions a replica has not seen yet (sampled replicas).
    pub divergence: f64,
    /// Replicas that still see an ad the servers have removed.
    pub stale: u64,
    /// Ads still in the vendor sets.
    pub ads_left: u64,
    /// Clients offline.
    pub offline: u64,
    /// Cumulative bytes sent per message kind, over all nodes.
    pub kinds: BTreeMap<String, u64>,
    /// Cumulative variable payload bytes sent, over all nodes.
    pub payload: u64,
}

/// The time series of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Samples in time order.
    pub samples: Vec<Sample>,
}

/// A run's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The summary.
    pub summary: Summary,
    /// Wall time and memory.
    pub host: HostFigures,
    /// The series.
    pub series: Series,
}

/// The peak resident memory of this process (Linux `VmHWM`), in KiB; 0 elsewhere.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `n` bytes in a readable unit.
pub fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

impl Summary {
    /// Whether the run met its invariants: all ads removed, converged, no violation, no
    /// resurrection.
    pub fn ok(&self) -> bool {
        self.failures().is_empty()
    }

    /// Why the run failed, one phrase per reason (empty when [`ok`](Self::ok)).
    pub fn failures(&self) -> Vec<String> {
        let mut why = Vec::new();
        if let Some(t) = self.timed_out_s {
            why.push(format!("timed out after {t:.1} s"));
        }
        if !self.all_removed {
            why.push("not every ad was removed everywhere".into());
        }
        if !self.converged {
            why.push("the replicas did not converge".into());
        }
        if self.violations > 0 {
            why.push(format!("{} invariant violations", self.violations));
        }
        if self.resurrections > 0 {
            why.push(format!("{} removed ads came back", self.resurrections));
        }
        why
    }

    /// The summary table (plain text).
    pub fn table(&self, host: &HostFigures) -> String {
        let mut s = String::new();
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2} s"));
        let rows: Vec<(&str, String)> = vec![
            ("world", self.world.clone()),
            (
                "nodes",
                format!("{} clients, {} servers", self.clients, self.servers),
            ),
            (
                "ads / threshold",
                format!("{} ads, {} impressions", self.ads, self.threshold),
            ),
            (
                "membership / sync",
                format!("{} / {}", self.membership, self.sync),
            ),
            ("seed", self.seed.to_string()),
            (
                "mode",
                if self.exact {
                    "exact (bounded-counter rights)".into()
                } else {
                    "grow-only counters (Lasp)".into()
                },
            ),
            ("all ads removed", yes(self.all_removed).into()),
            ("replicas converged", yes(self.converged).into()),
            (
                "invariant violations",
                format!(
                    "{} (resurrected ads: {})",
                    self.violations, self.resurrections
                ),
            ),
            ("trigger firings", self.trigger_firings.to_string()),
            (
                "impressions",
                format!(
                    "{} ({} while offline)",
                    self.impressions, self.offline_impressions
                ),
            ),
            (
                "last impression at",
                format!("{:.2} s", self.last_impression_s),
            ),
            (
                "refused for lack of rights",
                format!(
                    "{} ({} rights requests)",
                    self.refused_no_rights, self.rights_requests
                ),
            ),
            ("converged at", opt(self.converged_at_s)),
            ("convergence after last impr.", opt(self.convergence_s)),
            (
                "overcounting",
                format!(
                    "mean {:.2} %, max {:.2} %",
                    self.overcount_mean_pct, self.overcount_max_pct
                ),
            ),
            (
                "payload / protocol bytes",
                format!(
                    "{} / {}",
                    human_bytes(self.payload_bytes as f64),
                    human_bytes(self.protocol_bytes as f64)
                ),
            ),
            ("bytes sent per client", human_bytes(self.bytes_per_client)),
            (
                "catch-up bytes / missing part",
                format!(
                    "{} summaries + {} payload / {} missing = {:.2}×",
                    human_bytes(self.catch_up_summary_bytes as f64),
                    human_bytes(self.catch_up_payload_bytes as f64),
                    human_bytes(self.catch_up_missing_bytes as f64),
                    self.catch_up_ratio()
                ),
            ),
            (
                "bytes per impression",
                if self.impression_lower_bound > 0.0 {
                    format!(
                        "{:.1} B (lower bound {:.1} B: {:.1}×)",
                        self.bytes_per_impression,
                        self.impression_lower_bound,
                        self.impression_ratio()
                    )
                } else {
                    format!(
                        "{:.1} B (no lower bound computed)",
                        self.bytes_per_impression
                    )
                },
            ),
            (
                "state per client per 90 s",
                format!(
                    "{} (Lasp, talk: ~5 GiB)",
                    human_bytes(self.state_per_client_per_90s)
                ),
            ),
            ("run length", format!("{:.1} s", self.run_s)),
            ("simulator events", self.events.to_string()),
            ("wall time", format!("{:.2} s", host.wall_s)),
            (
                "peak memory (VmHWM)",
                human_bytes(host.peak_rss_kib as f64 * 1024.0),
            ),
        ];
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            let _ = writeln!(s, "  {k:<w$}  {v}");
        }
        let _ = writeln!(s, "  traffic by role and kind (sent / received):");
        for (role, kinds) in &self.bytes {
            for (kind, b) in kinds {
                let _ = writeln!(
                    s,
                    "    {role:<7} {kind:<18} {:>12} / {:>12}  ({} msgs)",
                    human_bytes(b.sent as f64),
                    human_bytes(b.recv as f64),
                    b.msgs
                );
            }
        }
        s
    }
}
