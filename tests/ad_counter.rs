//! The advertisement counter in the simulator: a small run meets the invariants, the same
//! seed gives the same summary, and the CLI rejects bad settings with exit code 2.

use rasp::ad_counter::{sim, AdConfig};
use rasp::dataflow::replica::SyncMode;
use rasp::membership::Mode;
use std::process::Command;
use std::time::Duration;

fn small(mode: Mode, sync: SyncMode) -> AdConfig {
    AdConfig {
        clients: 12,
        servers: 2,
        threshold: 60,
        offline_fraction: 0.2,
        offline_duration: Duration::from_secs(10),
        membership: mode,
        sync,
        seed: rasp::runtime::sim::seed_from_env(7),
        ..AdConfig::default()
    }
}

#[test]
fn small_run_meets_the_invariants() {
    for mode in [Mode::HyParView, Mode::ClientServer, Mode::Full] {
        let cfg = small(mode, SyncMode::DeltaBpRr);
        let r = sim::run(&cfg, &mut |_| {}).unwrap();
        let s = &r.summary;
        let repro = format!(
            "seed {} (RASP_SEED={} cargo test --test ad_counter)",
            cfg.seed, cfg.seed
        );
        assert!(s.all_removed, "{mode}: not all ads removed; {repro}");
        assert!(s.converged, "{mode}: replicas did not converge; {repro}");
        assert_eq!(s.violations, 0, "{mode}: {repro}");
        assert_eq!(s.resurrections, 0, "{mode}: {repro}");
        assert_eq!(s.per_ad.len(), 20);
        assert_eq!(s.trigger_firings, 20, "{mode}: one firing per ad; {repro}");
        // Every ad reached its threshold, and the impressions all arrived at the servers.
        assert!(s.per_ad.iter().all(|a| a.impressions >= cfg.threshold));
        assert_eq!(
            s.per_ad.iter().map(|a| a.impressions).sum::<u64>(),
            s.impressions,
            "{mode}: servers' counters hold every impression counted; {repro}"
        );
        assert!(
            s.offline_impressions > 0,
            "{mode}: some clients counted offline"
        );
        assert!(
            s.convergence_s.is_some_and(|c| c < 30.0),
            "{mode}: {:?}",
            s.convergence_s
        );
        assert!(s.bytes.contains_key("client") && s.bytes.contains_key("server"));
        assert!(s.payload_bytes > 0 && s.protocol_bytes > 0);
        assert!(!r.series.samples.is_empty());
    }
}

#[test]
fn same_seed_same_summary() {
    let cfg = small(Mode::HyParView, SyncMode::DeltaBpRr);
    let a = sim::run(&cfg, &mut |_| {}).unwrap();
    let b = sim::run(&cfg, &mut |_| {}).unwrap();
    assert_eq!(a.summary, b.summary);
    assert_eq!(a.series, b.series);
    let other = AdConfig {
        seed: cfg.seed + 1,
        ..cfg
    };
    let c = sim::run(&other, &mut |_| {}).unwrap();
    assert_ne!(a.summary.trace_hash, c.summary.trace_hash);
}

#[test]
fn outputs_are_written() {
    let dir = std::env::temp_dir().join(format!("rasp-ad-test-{}", std::process::id()));
    let cfg = AdConfig {
        out_dir: dir.clone(),
        ..small(Mode::ClientServer, SyncMode::State)
    };
    let r = sim::run(&cfg, &mut |_| {}).unwrap();
    let w = rasp::ad_counter::output::write_all(&r, &dir).unwrap();
    let csv = std::fs::read_to_string(dir.join("samples.csv")).unwrap();
    assert!(csv.starts_with("t_s,impressions,divergence"));
    assert_eq!(csv.lines().count(), r.series.samples.len() + 1);
    let over = std::fs::read_to_string(dir.join("overcount.csv")).unwrap();
    assert_eq!(over.lines().count(), 21);
    if w.plots_skipped.is_none() {
        assert_eq!(w.plots.len(), 8);
        for p in &w.plots {
            assert!(
                std::fs::metadata(p).unwrap().len() > 1000,
                "{}",
                p.display()
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn rasp(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rasp"))
        .args(args)
        .env_remove("RASP_SEED")
        .output()
        .unwrap()
}

#[test]
fn cli_bad_input_exits_2() {
    let dir = std::env::temp_dir().join(format!("rasp-ad-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_toml = dir.join("bad.toml");
    std::fs::write(&bad_toml, "clients = 10\nthreshhold = 5\n").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["--membership".into(), "mesh".into()],
        vec!["--sync".into(), "delta-bp-rr-x".into()],
        vec!["--offline-fraction".into(), "1.5".into()],
        vec!["--clients".into(), "0".into()],
        vec!["--loss".into(), "-0.1".into()],
        vec!["--threshold".into(), "many".into()],
        vec!["--config".into(), bad_toml.display().to_string()],
        vec!["--processes".into(), "2".into()],
    ];
    for c in cases {
        let mut args = vec!["ad-counter".to_string(), "--no-output".into()];
        args.extend(c.clone());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rasp(&refs);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cli_json_summary() {
    let out = rasp(&[
        "ad-counter",
        "--no-output",
        "--json",
        "--clients",
        "8",
        "--threshold",
        "40",
        "--membership",
        "client-server",
        "--seed",
        "3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["all_removed"], true);
    assert_eq!(v["summary"]["converged"], true);
    assert_eq!(v["summary"]["violations"], 0);
    assert_eq!(v["summary"]["membership"], "client-server");
}

/// The advertisement counter is an app like any other: `rasp ad-counter sim` runs it on the
/// App road (the same boot as a real node, its invariants checked after every event) and it
/// converges with every ad removed, in every membership mode.
#[test]
fn ad_counter_sim_subcommand_runs_the_app() {
    for mode in ["full", "client-server", "hyparview"] {
        let out = rasp(&[
            "ad-counter",
            "sim",
            "--nodes",
            "7",
            "--servers",
            "2",
            "--membership",
            mode,
            "--ads-per-vendor",
            "2",
            "--threshold",
            "30",
            "--impression-interval-ms",
            "100",
            "--sync-interval-ms",
            "200",
            "--duration-s",
            "40",
            "--check-every",
            "10",
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{mode}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["converged"], true, "{mode}: {v}");
        let invariants = v["invariants"].to_string();
        assert!(invariants.contains("no impression for a removed ad"), "{v}");
        // Servers (0, 1) hold the vendor sets: empty at the end; every node sees no ad.
        for i in ["0", "1"] {
            assert_eq!(v["values"][i]["ads/rovio"], "{}", "{mode}: {v}");
            assert_eq!(v["values"][i]["ads/riot"], "{}", "{mode}: {v}");
        }
        for i in 0..7 {
            assert_eq!(
                v["values"][i.to_string()]["ads-with-contracts"],
                "{}",
                "{mode}: node {i}: {v}"
            );
        }
    }
    // Its own flags are checked like any app's.
    let out = rasp(&["ad-counter", "sim", "--threshold", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threshold"));
}
