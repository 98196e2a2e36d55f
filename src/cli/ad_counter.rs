//! `rasp ad-counter`: the advertisement counter (see [`crate::ad_counter`]), in the
//! deterministic simulator (default), as a matrix of membership × sync modes (`--matrix`), or
//! across real `rasp` processes on loopback (`--processes N`).
//!
//! Settings: flag > `RASP_*` environment > TOML file (`--config`, keys are the flag names with
//! underscores, unknown keys are errors) > default ([`AdConfig::default`]). A bad value stops
//! with a message naming the setting and exit code 2; a run whose invariants fail (an ad not
//! removed, replicas not converged, a violation) exits 1.
//!
//! ```toml
//! clients = 100
//! servers = 2
//! ads_per_vendor = 10
//! threshold = 2000
//! impression_interval_ms = 1000
//! sync_interval_ms = 1000
//! offline_fraction = 0.1
//! offline_duration_s = 20
//! membership = "hyparview"
//! sync = "delta-bp-rr"
//! loss = 0.0
//! partitions = 0
//! seed = 42
//! duration_s = 7200
//! out = "out/ad-counter"
//! exact = false
//! ```
//!
//! **The app.** The advertisement counter is an [`crate::app::App`] ([`AdCounter`]), and
//! `rasp ad-counter sim …` / `rasp ad-counter node …` are its subcommands like any app's
//! (see [`crate::app`]): the simulator with the app's invariants checked after every event,
//! and one real node (every `rasp node` flag, `--index`, `--role`, the app's flags).
//!
//! **Across processes.** `--processes N` starts `servers` server processes and `N - servers`
//! client processes of this same binary (`rasp ad-counter node --index K --report-ms 250`) on
//! 127.0.0.1, node 0 seeding the ads and every other joining through it. Each prints a
//! `ad=<json>` line ([`NodeLine`]) every 250 ms; the launcher stops when every ad is removed everywhere and
//! every node reports the same counters (or at `--timeout-s`), prints the same summary, and
//! stops every process it started (also on error and on SIGINT/SIGTERM). Offline clients,
//! loss and partitions are simulator-only (real processes stay online). `--kill-owner-after-s S`
//! kills the trigger owner (the server with the smallest node id) with SIGKILL after `S`
//! seconds and never restarts it: the run then checks that another server takes the
//! triggers over (the killed node is left out of the summary).

use super::config_error;
use crate::ad_counter::app::{self, AdArgs, AdCounter, NodeReport};
use crate::ad_counter::summary::{
    peak_rss_kib, ByteTally, HostFigures, Measured, RunResult, Summary,
};
use crate::ad_counter::{output, sim, AdConfig};
use crate::app::{AppAtom, AppCommand, Main, APP_ATOM};
use clap::Args;
use rasp_dataflow::replica::SyncMode;
use rasp_membership::Mode;
use rasp_runtime::KindStats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `rasp ad-counter` flags (every one optional: see the module docs for precedence).
#[derive(Debug, Clone, Default, Args)]
pub struct AdCounterArgs {
    /// Client nodes [default: 50]
    #[arg(long, env = "RASP_CLIENTS", value_name = "N")]
    pub clients: Option<u32>,
    /// Server nodes [default: 2]
    #[arg(long, env = "RASP_SERVERS", value_name = "N")]
    pub servers: Option<u32>,
    /// Ads per vendor (two vendors) [default: 10, the paper's]
    #[arg(long, env = "RASP_ADS_PER_VENDOR", value_name = "N")]
    pub ads_per_vendor: Option<u32>,
    /// Impressions after which an ad is removed [default: 2000; the paper's is 50000]
    #[arg(long, env = "RASP_THRESHOLD", value_name = "N")]
    pub threshold: Option<u64>,
    /// Milliseconds between two impressions of a client [default: 1000]
    #[arg(long, env = "RASP_IMPRESSION_INTERVAL_MS", value_name = "MS")]
    pub impression_interval_ms: Option<u64>,
    /// Milliseconds between two synchronisations [default: 1000]
    #[arg(long, env = "RASP_SYNC_INTERVAL_MS", value_name = "MS")]
    pub sync_interval_ms: Option<u64>,
    /// Expected fraction of clients offline at any time, in [0, 1) [default: 0.1]
    #[arg(long, env = "RASP_OFFLINE_FRACTION", value_name = "F")]
    pub offline_fraction: Option<f64>,
    /// Seconds of one offline epoch [default: 20]
    #[arg(long, env = "RASP_OFFLINE_DURATION_S", value_name = "S")]
    pub offline_duration_s: Option<f64>,
    /// Membership: full, client-server or hyparview [default: hyparview]
    #[arg(long, env = "RASP_MEMBERSHIP", value_name = "MODE")]
    pub membership: Option<String>,
    /// Sync: state, delta, delta-bp, delta-rr or delta-bp-rr [default: delta-bp-rr]
    #[arg(long, env = "RASP_SYNC", value_name = "MODE")]
    pub sync: Option<String>,
    /// Message loss probability, in [0, 1) [default: 0]
    #[arg(long, env = "RASP_LOSS", value_name = "P")]
    pub loss: Option<f64>,
    /// Transient network partitions (random halves) [default: 0]
    #[arg(long, env = "RASP_PARTITIONS", value_name = "N")]
    pub partitions: Option<u32>,
    /// Seed of every random choice [default: 42]
    #[arg(long, env = "RASP_SEED", value_name = "SEED")]
    pub seed: Option<u64>,
    /// Upper bound of the run, in (virtual) seconds [default: 7200]
    #[arg(long, env = "RASP_DURATION_S", value_name = "S")]
    pub duration_s: Option<f64>,
    /// Output directory for plots and CSV [default: out/ad-counter]
    #[arg(long, env = "RASP_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// TOML file with these settings
    #[arg(long, env = "RASP_AD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the summary as one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
    /// Write no plots or CSV
    #[arg(long)]
    pub no_output: bool,
    /// Run every membership × sync mode and print the comparison table
    #[arg(long, conflicts_with = "processes")]
    pub matrix: bool,
    /// Run across this many real `rasp` processes on loopback instead of the simulator
    #[arg(long, value_name = "N")]
    pub processes: Option<u32>,
    /// Processes: give up after this many wall-clock seconds
    #[arg(long, value_name = "S", default_value_t = 120.0)]
    pub timeout_s: f64,
    /// Processes: kill -9 the trigger owner (the server with the smallest node id) this many
    /// seconds after start and do not restart it; the run then waits for the other servers
    /// to take its triggers over (the killed node is left out of the summary)
    #[arg(long, value_name = "S")]
    pub kill_owner_after_s: Option<f64>,
    /// Exact mode: each ad's impressions are bounded-counter rights shared among the clients
    /// (0 overcount; an impression without a right is refused). With `--matrix`, every
    /// combination runs in both modes, side by side
    #[arg(long, env = "RASP_EXACT")]
    pub exact: bool,
    /// Catch neighbours up with whole states instead of the deltas since their summaries
    /// (the old path, to compare the catch-up figures; simulator only)
    #[arg(long)]
    pub whole_state_catch_up: bool,
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    clients: Option<u32>,
    servers: Option<u32>,
    ads_per_vendor: Option<u32>,
    threshold: Option<u64>,
    impression_interval_ms: Option<u64>,
    sync_interval_ms: Option<u64>,
    offline_fraction: Option<f64>,
    offline_duration_s: Option<f64>,
    membership: Option<String>,
    sync: Option<String>,
    loss: Option<f64>,
    partitions: Option<u32>,
    seed: Option<u64>,
    duration_s: Option<f64>,
    out: Option<PathBuf>,
    exact: Option<bool>,
}

fn secs(name: &str, v: f64) -> Result<Duration, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "{name} must be a non-negative number of seconds, got {v}"
        ))
    }
}

/// Resolves the settings (flag > environment > file > default) and validates them.
pub fn resolve(args: &AdCounterArgs) -> crate::Result<AdConfig> {
    let file = match &args.config {
        Some(p) => {
            let text = crate::cli::config::read_config_text(p)?;
            toml::from_str::<FileConfig>(&text)
                .map_err(|e| format!("config file {}: {e}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let d = AdConfig::default();
    let membership = match args.membership.clone().or(file.membership) {
        Some(s) => s.parse::<Mode>().map_err(|e| format!("membership: {e}"))?,
        None => d.membership,
    };
    let sync = match args.sync.clone().or(file.sync) {
        Some(s) => s.parse::<SyncMode>().map_err(|e| format!("sync: {e}"))?,
        None => d.sync,
    };
    let ms = |v: Option<u64>, dflt: Duration| v.map_or(dflt, Duration::from_millis);
    let cfg = AdConfig {
        clients: args.clients.or(file.clients).unwrap_or(d.clients),
        servers: args.servers.or(file.servers).unwrap_or(d.servers),
        ads_per_vendor: args
            .ads_per_vendor
            .or(file.ads_per_vendor)
            .unwrap_or(d.ads_per_vendor),
        threshold: args.threshold.or(file.threshold).unwrap_or(d.threshold),
        impression_interval: ms(
            args.impression_interval_ms.or(file.impression_interval_ms),
            d.impression_interval,
        ),
        sync_interval: ms(
            args.sync_interval_ms.or(file.sync_interval_ms),
            d.sync_interval,
        ),
        offline_fraction: args
            .offline_fraction
            .or(file.offline_fraction)
            .unwrap_or(d.offline_fraction),
        offline_duration: match args.offline_duration_s.or(file.offline_duration_s) {
            Some(v) => secs("offline-duration-s", v)?,
            None => d.offline_duration,
        },
        membership,
        sync,
        loss: args.loss.or(file.loss).unwrap_or(d.loss),
        partitions: args.partitions.or(file.partitions).unwrap_or(d.partitions),
        seed: args.seed.or(file.seed).unwrap_or(d.seed),
        duration: match args.duration_s.or(file.duration_s) {
            Some(v) => secs("duration-s", v)?,
            None => d.duration,
        },
        out_dir: args.out.clone().or(file.out).unwrap_or(d.out_dir),
        exact: args.exact || file.exact.unwrap_or(d.exact),
        whole_state_catch_up: args.whole_state_catch_up,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Runs `rasp ad-counter`.
pub fn run(args: AdCounterArgs) -> ExitCode {
    let mut cfg = match resolve(&args) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    if args.matrix {
        return run_matrix(&cfg, args.json);
    }
    let result = match args.processes {
        Some(n) => {
            if n <= cfg.servers {
                return config_error(format!(
                    "--processes must exceed the servers ({}): the rest are clients",
                    cfg.servers
                ));
            }
            if !(args.timeout_s.is_finite() && args.timeout_s > 0.0) {
                return config_error("--timeout-s must be positive");
            }
            let kill = match args.kill_owner_after_s {
                Some(s) if !(s.is_finite() && s >= 0.0) => {
                    return config_error("--kill-owner-after-s must be a non-negative number")
                }
                Some(_) if cfg.servers < 2 => {
                    return config_error("--kill-owner-after-s needs at least two servers")
                }
                k => k.map(Duration::from_secs_f64),
            };
            cfg.clients = n - cfg.servers;
            processes::run(&cfg, Duration::from_secs_f64(args.timeout_s), kill)
        }
        None => run_sim(&cfg),
    };
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rasp: ad-counter: {e}");
            return ExitCode::FAILURE;
        }
    };
    report(&result, &cfg, args.json, args.no_output)
}

fn report(result: &RunResult, cfg: &AdConfig, json: bool, no_output: bool) -> ExitCode {
    if json {
        let v = serde_json::json!({ "summary": &result.summary, "host": &result.host });
        println!("{}", serde_json::to_string(&v).expect("json"));
    } else {
        println!("advertisement counter");
        print!("{}", result.summary.table(&result.host));
    }
    if !no_output {
        match output::write_all(result, &cfg.out_dir) {
            Ok(w) => {
                if let Some(why) = &w.plots_skipped {
                    eprintln!("rasp: {why}");
                }
                eprintln!(
                    "wrote {} data files and {} plots to {}",
                    w.data.len(),
                    w.plots.len(),
                    cfg.out_dir.display()
                );
            }
            Err(e) => {
                eprintln!("rasp: ad-counter: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if result.summary.ok() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "rasp: ad-counter: failed: {} (rerun: --seed {} --membership {} --sync {})",
            result.summary.failures().join("; "),
            cfg.seed,
            cfg.membership,
            cfg.sync
        );
        ExitCode::FAILURE
    }
}

/// The simulator run with a progress bar on stderr (hidden when stderr is not a terminal).
pub fn run_sim(cfg: &AdConfig) -> crate::Result<RunResult> {
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::with_draw_target(
            Some(u64::from(cfg.ads_per_vendor) * 2),
            indicatif::ProgressDrawTarget::stderr(),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} ads removed  {msg}",
        )
        .expect("template"),
    );
    let ads = u64::from(cfg.ads_per_vendor) * 2;
    let r = sim::run(cfg, &mut |p| {
        bar.set_position(ads - p.ads_left.min(ads));
        bar.set_message(format!(
            "t={:.0}s impressions={} offline={}",
            p.t, p.impressions, p.offline
        ));
    });
    bar.finish_and_clear();
    r
}

/// One row of the comparison.
#[derive(Clone, Debug, Serialize)]
struct MatrixRow {
    membership: String,
    sync: String,
    exact: bool,
    ok: bool,
    bytes_per_client: f64,
    state_per_client_per_90s: f64,
    overcount_mean_pct: f64,
    convergence_s: Option<f64>,
    refused_no_rights: u64,
    wall_s: f64,
}

fn run_matrix(cfg: &AdConfig, json: bool) -> ExitCode {
    let mut rows = Vec::new();
    let mut all_ok = true;
    for mode in [Mode::Full, Mode::ClientServer, Mode::HyParView] {
        for (sync, exact) in SyncMode::ALL
            .into_iter()
            .flat_map(|s| [(s, false), (s, true)])
            .filter(|&(_, e)| !e || cfg.exact)
        {
            let c = AdConfig {
                membership: mode,
                sync,
                exact,
                ..cfg.clone()
            };
            let label = if exact { "exact" } else { "lasp" };
            eprintln!("running {mode} / {sync} / {label} ...");
            let r = match sim::run(&c, &mut |_| {}) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("rasp: ad-counter: {e}");
                    return ExitCode::FAILURE;
                }
            };
            all_ok &= r.summary.ok();
            eprintln!(
                "  ok={} bytes/client={:.0} overcount={:.2}% convergence={:?} s wall={:.1} s",
                r.summary.ok(),
                r.summary.bytes_per_client,
                r.summary.overcount_mean_pct,
                r.summary.convergence_s,
                r.host.wall_s
            );
            rows.push(MatrixRow {
                membership: mode.to_string(),
                sync: sync.to_string(),
                exact,
                ok: r.summary.ok(),
                bytes_per_client: r.summary.bytes_per_client,
                state_per_client_per_90s: r.summary.state_per_client_per_90s,
                overcount_mean_pct: r.summary.overcount_mean_pct,
                convergence_s: r.summary.convergence_s,
                refused_no_rights: r.summary.refused_no_rights,
                wall_s: r.host.wall_s,
            });
        }
    }
    if json {
        println!("{}", serde_json::to_string(&rows).expect("json"));
    } else {
        println!(
            "{} clients, {} servers, threshold {}, seed {}",
            cfg.clients, cfg.servers, cfg.threshold, cfg.seed
        );
        println!(
            "| membership | sync | exact | ok | bytes sent per client | state per client per 90 s | overcount % | convergence (s) | refused (no rights) | wall (s) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {:.1} |",
                r.membership,
                r.sync,
                if r.exact { "yes" } else { "no" },
                if r.ok { "yes" } else { "NO" },
                crate::ad_counter::summary::human_bytes(r.bytes_per_client),
                crate::ad_counter::summary::human_bytes(r.state_per_client_per_90s),
                r.overcount_mean_pct,
                r.convergence_s.map_or("-".into(), |c| format!("{c:.2}")),
                r.refused_no_rights,
                r.wall_s
            );
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// ----- `rasp ad-counter sim|node`: the app's own subcommands ------------------------------

/// `rasp ad-counter`: the experiment (no subcommand) or the app's subcommands.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AdCounterCmd {
    /// The advertisement counter as any app runs: `sim` (N nodes in the simulator, with the
    /// app's invariants checked after every event) or `node` (one real node).
    #[command(subcommand)]
    pub app: Option<AppCommand<AdArgs>>,
    /// The experiment's settings (without a subcommand).
    #[command(flatten)]
    pub run: AdCounterArgs,
}

/// Runs `rasp ad-counter [sim|node]`.
pub fn run_cmd(cmd: AdCounterCmd) -> ExitCode {
    match cmd.app {
        Some(app) => run_app(app),
        None => run(cmd.run),
    }
}

/// What a node prints with `--report-ms`: its report and its traffic per message kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeLine {
    /// The application's report.
    pub report: NodeReport,
    /// Traffic per message kind.
    pub kinds: BTreeMap<String, KindStats>,
    /// Variable payload bytes sent.
    pub payload: u64,
    /// Peak memory (VmHWM) of the process, KiB.
    pub peak_rss_kib: u64,
}

/// Runs one of the app's subcommands; a node with `--report-ms` prints `ad=<json>`
/// ([`NodeLine`]) that often.
pub fn run_app(cmd: AppCommand<AdArgs>) -> ExitCode {
    let mut main = Main::new(AdCounter::default());
    if let AppCommand::Node(c) = &cmd {
        if let Some(ms) = c.user.report_ms.filter(|&ms| ms > 0) {
            let every = Duration::from_millis(ms);
            main = main.on_node_start(move |n| {
                tokio::spawn(print_reports(n.handle.clone(), n.id.0, every));
            });
        }
    }
    main.run_command(cmd)
}

/// Prints the node's [`NodeLine`] every `every`, until the node stops.
async fn print_reports(node: rasp_runtime::net::NodeHandle, id: u64, every: Duration) {
    loop {
        let line = node
            .call(move |h, _| {
                let (report, payload) = h.with_atom::<AppAtom<AdCounter>, _>(APP_ATOM, |a| {
                    let payload = a
                        .replica_ref()
                        .map_or(0, |r| r.stats().bytes_sent.values().sum::<u64>());
                    (app::report(a, id), payload)
                })?;
                Some(NodeLine {
                    report,
                    kinds: h.metrics_snapshot().kinds,
                    payload,
                    peak_rss_kib: peak_rss_kib(),
                })
            })
            .await;
        match line {
            None => return, // node stopped
            Some(Some(l)) => println!("ad={}", serde_json::to_string(&l).expect("json")),
            Some(None) => {}
        }
        tokio::time::sleep(every).await;
    }
}

mod processes {
    //! The launcher of `--processes`.
    use super::*;

    /// Children stopped (and data directories removed) when dropped.
    struct Cluster {
        children: Vec<Child>,
        dirs: Vec<PathBuf>,
    }

    impl Drop for Cluster {
        fn drop(&mut self) {
            for c in &mut self.children {
                let _ = c.kill();
            }
            for c in &mut self.children {
                let _ = c.wait();
            }
            for d in &self.dirs {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }

    /// Each node's last report, and when (launcher clock) its impression count last grew.
    type Lines = Arc<Mutex<Vec<Option<(NodeLine, Option<Instant>)>>>>;

    fn spawn(
        cfg: &AdConfig,
        k: usize,
        join: Option<&str>,
        cluster: &mut Cluster,
        lines: &Lines,
    ) -> Result<std::sync::mpsc::Receiver<String>, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let dir = std::env::temp_dir().join(format!("rasp-ad-{}-{k}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        cluster.dirs.push(dir.clone());
        let role = if k < cfg.servers as usize {
            "server"
        } else {
            "client"
        };
        let mut cmd = Command::new(exe);
        cmd.args(["ad-counter", "node"])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--membership", &cfg.membership.to_string()])
            .args(["--role", role, "--index", &k.to_string()])
            .args(["--ads-per-vendor", &cfg.ads_per_vendor.to_string()])
            .args(["--threshold", &cfg.threshold.to_string()])
            .args([
                "--impression-interval-ms",
                &cfg.impression_interval.as_millis().to_string(),
            ])
            .args([
                "--sync-interval-ms",
                &cfg.sync_interval.as_millis().to_string(),
            ])
            .args(["--sync", cfg.sync.name(), "--report-ms", "250"])
            .env_remove("RASP_CONFIG")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(j) = join {
            cmd.args(["--join", j]);
        }
        if cfg.exact {
            cmd.arg("--exact");
        }
        let mut child = cmd.spawn().map_err(|e| format!("starting a node: {e}"))?;
        let out = child.stdout.take().expect("piped");
        cluster.children.push(child);
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(j) = line.strip_prefix("ad=") {
                    if let Ok(l) = serde_json::from_str::<NodeLine>(j) {
                        let mut lines = lines.lock().expect("lock");
                        let grew = match &lines[k] {
                            Some((prev, at)) if prev.report.impressions >= l.report.impressions => {
                                *at
                            }
                            _ if l.report.impressions > 0 => Some(Instant::now()),
                            _ => None,
                        };
                        lines[k] = Some((l, grew));
                    }
                } else if let Some(a) = line.strip_prefix("listen=") {
                    let _ = tx.send(a.to_string());
                }
            }
        });
        Ok(rx)
    }

    fn done(lines: &[Option<(NodeLine, Option<Instant>)>]) -> bool {
        let Some(Some((first, _))) = lines.first() else {
            return false;
        };
        lines.iter().all(|l| {
            l.as_ref().is_some_and(|(l, _)| {
                let r = &l.report;
                r.visible.is_empty()
                    && r.vendor_ads.as_ref().is_none_or(|v| v.is_empty())
                    && r.counters == first.report.counters
                    && !r.counters.is_empty()
            })
        })
    }

    /// Kills (SIGKILL) the server with the smallest node id among those that reported, and
    /// returns its index; `None` while no server reported yet.
    fn kill_the_owner(cfg: &AdConfig, cluster: &mut Cluster, lines: &Lines) -> Option<usize> {
        let k = {
            let lines = lines.lock().expect("lock");
            (0..cfg.servers as usize)
                .filter_map(|k| lines[k].as_ref().map(|(l, _)| (l.report.node, k)))
                .min()?
                .1
        };
        let _ = cluster.children[k].kill();
        let _ = cluster.children[k].wait();
        lines.lock().expect("lock")[k] = None;
        Some(k)
    }

    /// Runs the workload across processes; with `kill_owner`, kills the trigger owner that
    /// long after start (see [`AdCounterArgs::kill_owner_after_s`]).
    pub fn run(
        cfg: &AdConfig,
        timeout: Duration,
        kill_owner: Option<Duration>,
    ) -> crate::Result<RunResult> {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            std::thread::spawn(move || {
                super::super::runtime().block_on(async {
                    super::super::ShutdownSignal::install().wait().await;
                });
                stop.store(true, Ordering::SeqCst);
            });
        }
        let n = (cfg.servers + cfg.clients) as usize;
        let mut cluster = Cluster {
            children: Vec::new(),
            dirs: Vec::new(),
        };
        let lines: Lines = Arc::new(Mutex::new(vec![None; n]));
        let rx = spawn(cfg, 0, None, &mut cluster, &lines)?;
        let seed = rx
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| "the first node printed no listen address".to_string())?;
        for k in 1..n {
            spawn(cfg, k, Some(&seed), &mut cluster, &lines)?;
        }
        let start = Instant::now();
        let mut converged_at = None;
        let mut killed: Option<usize> = None;
        let live = |lines: &[Option<(NodeLine, Option<Instant>)>],
                    killed: Option<usize>|
         -> Vec<Option<(NodeLine, Option<Instant>)>> {
            lines
                .iter()
                .enumerate()
                .filter(|(k, _)| Some(*k) != killed)
                .map(|(_, l)| l.clone())
                .collect()
        };
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if stop.load(Ordering::SeqCst) {
                return Err("interrupted; every node stopped".into());
            }
            if killed.is_none() && kill_owner.is_some_and(|after| start.elapsed() >= after) {
                killed = kill_the_owner(cfg, &mut cluster, &lines);
                if let Some(k) = killed {
                    eprintln!(
                        "rasp: ad-counter: killed the trigger owner (process {k}) at {:.1} s",
                        start.elapsed().as_secs_f64()
                    );
                }
            }
            for (k, c) in cluster.children.iter_mut().enumerate() {
                if Some(k) == killed {
                    continue;
                }
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!("a node exited early ({st}); every node stopped").into());
                }
            }
            if killed.is_some() == kill_owner.is_some()
                && done(&live(&lines.lock().expect("lock"), killed))
            {
                converged_at = Some(start.elapsed());
                // One more report round, so the traffic figures include the last syncs.
                std::thread::sleep(Duration::from_millis(300));
                break;
            }
            if start.elapsed() > timeout {
                break;
            }
        }
        let run = start.elapsed();
        let (lines, grew): (Vec<Option<NodeLine>>, Vec<Option<Instant>>) =
            live(&lines.lock().expect("lock"), killed)
                .iter()
                .map(|l| match l {
                    Some((l, at)) => (Some(l.clone()), *at),
                    None => (None, None),
                })
                .unzip();
        drop(cluster);
        // Reports come every 250 ms, so this is the last impression to within one report.
        let last_impression = grew
            .iter()
            .flatten()
            .max()
            .map(|t| t.saturating_duration_since(start));
        let mut result = summarise(cfg, &lines, run, converged_at, started);
        let s = &mut result.summary;
        s.last_impression_s = last_impression.map_or(0.0, |d| d.as_secs_f64());
        s.convergence_s = converged_at
            .zip(last_impression)
            .map(|(c, l)| c.saturating_sub(l).as_secs_f64());
        if converged_at.is_none() {
            s.timed_out_s = Some(run.as_secs_f64());
        }
        Ok(result)
    }

    fn summarise(
        cfg: &AdConfig,
        lines: &[Option<NodeLine>],
        run: Duration,
        converged_at: Option<Duration>,
        started: Instant,
    ) -> RunResult {
        let reports: Vec<&NodeLine> = lines.iter().flatten().collect();
        let mut tally = ByteTally::default();
        for l in &reports {
            tally.add(l.report.role.as_str(), &l.kinds);
        }
        let base = Summary::measured(Measured {
            world: "processes",
            cfg,
            ads: cfg.ads(),
            reports: reports.iter().map(|l| &l.report).collect(),
            tally,
            payload: reports.iter().map(|l| l.payload).sum(),
            run_s: run.as_secs_f64(),
        });
        let summary = Summary {
            all_removed: reports.len() == lines.len() && base.all_removed,
            converged: converged_at.is_some(),
            converged_at_s: converged_at.map(|d| d.as_secs_f64()),
            ..base
        };
        RunResult {
            summary,
            host: HostFigures {
                wall_s: started.elapsed().as_secs_f64(),
                peak_rss_kib: reports.iter().map(|l| l.peak_rss_kib).max().unwrap_or(0),
            },
            series: Default::default(),
        }
    }
}
