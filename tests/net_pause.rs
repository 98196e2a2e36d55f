//! A node paused (SIGSTOP) under traffic rejoins after SIGCONT: 8 real `rasp ad-counter node`
//! processes on loopback (2 servers, 6 clients, full membership, delta sync every 200 ms,
//! an impression every 50 ms per client, a threshold no ad reaches so traffic never stops).
//! One client is stopped for [`PAUSE`] (15 s: longer than the membership's failure timeout
//! and the ping timeout, so every peer drops it and it drops every peer), then continued.
//!
//! Asserted within [`RECOVERY_BOUND`] of SIGCONT: the victim's view holds every other node
//! again, every other node's view holds the victim again, and the counters the victim sees
//! move by more than its own impressions (it receives the others' increments again).
//!
//! The 60 s pause (past the membership's `remove_after`, so the victim is also marked
//! removed in the member list and must refute) is an ignored test, for its length (about 65 s):
//! `cargo test --release --test net_pause paused_node_rejoins_under_traffic_after_60s -- --ignored --nocapture`.
//! It relies on two guards of full membership (`rasp_membership::full` module docs): the woken
//! node treats its late heartbeat tick as its own absence, and members that each marked the
//! other removed find each other again through the bounded probes of removed members.
//!
//! Diagnostics: `PAUSE_VICTIM=<k> PAUSE_S=<s> cargo test --release --test net_pause
//! paused_node_rejoins_under_traffic_custom -- --ignored --nocapture` picks the victim and the
//! pause; `PAUSE_LOG=<filter>` sets the nodes' `RUST_LOG`, and `PAUSE_DUMP=<dir>` prints the
//! views every 100 ms after SIGCONT and writes each node's stderr to `<dir>/node-<k>.log`.

#[path = "net_common/mod.rs"]
mod common;

use common::{rasp, tempdir, Proc};
use serde_json::Value;
use std::time::{Duration, Instant};

const NODES: usize = 8;
const SERVERS: usize = 2;
/// The stopped node in the default test (a client).
const VICTIM: usize = 5;
/// How long the victim stays stopped in the default test.
const PAUSE: Duration = Duration::from_secs(15);
/// The stated bound on recovery after SIGCONT. Detecting the stale connection takes up to a
/// ping interval plus timeout (8 s) on either side; redialling and the first heartbeats then
/// take well under a second on loopback.
const RECOVERY_BOUND: Duration = Duration::from_secs(20);

struct AdNode {
    proc: Proc,
    /// The last `ad=` report printed.
    last: Option<Value>,
}

impl AdNode {
    fn poll(&mut self) -> Option<&Value> {
        if let Some(l) = self.proc.latest_line("ad=") {
            self.last = Some(serde_json::from_str(&l).expect("ad= line is JSON"));
        }
        self.last.as_ref()
    }

    /// Neighbour count of the last report.
    fn neighbours(&mut self) -> u64 {
        self.poll()
            .map_or(0, |v| v["report"]["neighbours"].as_u64().unwrap_or(0))
    }

    /// Increments seen here that other nodes made: the sum of the counters minus the
    /// impressions counted locally.
    fn remote_increments(&mut self) -> u64 {
        self.poll().map_or(0, |v| {
            let r = &v["report"];
            let sum: u64 = r["counters"]
                .as_object()
                .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
            sum.saturating_sub(r["impressions"].as_u64().unwrap_or(0))
        })
    }
}

fn spawn(dir: &std::path::Path, k: usize, join: Option<&str>) -> Proc {
    let role = if k < SERVERS { "server" } else { "client" };
    let mut cmd = rasp();
    cmd.env(
        "RUST_LOG",
        std::env::var("PAUSE_LOG").unwrap_or_else(|_| "warn".into()),
    )
    .args(["ad-counter", "node"])
    .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--data-dir"])
    .arg(dir)
    .args([
        "--membership",
        "full",
        "--role",
        role,
        "--index",
        &k.to_string(),
    ])
    .args(["--report-ms", "250"])
    .args(["--threshold", "1000000000"])
    .args([
        "--impression-interval-ms",
        "50",
        "--sync-interval-ms",
        "200",
    ]);
    if let Some(j) = join {
        cmd.args(["--join", j]);
    }
    Proc::spawn(cmd)
}

fn start_cluster(name: &str) -> Vec<AdNode> {
    let base = tempdir(name);
    let mut first = spawn(&base.join("n0"), 0, None);
    let seed = first
        .wait_line("listen=", common::START_TIMEOUT)
        .unwrap_or_else(|| panic!("seed did not start: {}", first.stderr_text()));
    let mut nodes = vec![AdNode {
        proc: first,
        last: None,
    }];
    for k in 1..NODES {
        nodes.push(AdNode {
            proc: spawn(&base.join(format!("n{k}")), k, Some(&seed)),
            last: None,
        });
    }
    nodes
}

/// Waits until `ok` holds, polling every 100 ms; the time it took, or `None` after `limit`.
fn until(limit: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if ok() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn views(nodes: &mut [AdNode]) -> Vec<u64> {
    nodes.iter_mut().map(AdNode::neighbours).collect()
}

/// Runs the scenario with a pause of `pause`; returns the recovery time after SIGCONT.
fn pause_and_resume(victim: usize, pause: Duration, name: &str) -> Duration {
    let mut nodes = start_cluster(name);
    let full = (NODES - 1) as u64;
    let formed = until(Duration::from_secs(40), || {
        views(&mut nodes).iter().all(|&n| n == full)
    });
    assert!(
        formed.is_some(),
        "cluster never formed: views {:?}",
        views(&mut nodes)
    );
    // Let traffic run for a while.
    std::thread::sleep(Duration::from_secs(2));
    let before = nodes[victim].remote_increments();
    nodes[victim].proc.signal("STOP");
    let dropped = until(pause, || {
        let v = views(&mut nodes);
        v.iter()
            .enumerate()
            .all(|(k, &n)| k == victim || n == full - 1)
    });
    eprintln!(
        "victim paused; peers dropped it after {:?}",
        dropped.map(|d| d.as_secs_f64())
    );
    let left = pause.saturating_sub(dropped.unwrap_or(pause));
    std::thread::sleep(left);
    nodes[victim].proc.signal("CONT");
    let resumed = Instant::now();
    // Reports printed before the pause are still in the pipe; the first check needs a fresh one.
    std::thread::sleep(Duration::from_millis(500));
    let recovered = until(RECOVERY_BOUND, || {
        let v = views(&mut nodes);
        if std::env::var("PAUSE_DUMP").is_ok() {
            eprintln!("{:.1} s {v:?}", resumed.elapsed().as_secs_f64());
        }
        let moved = nodes[victim].remote_increments() > before;
        moved && v.iter().all(|&n| n == full)
    });
    if let Ok(d) = std::env::var("PAUSE_DUMP") {
        for (k, n) in nodes.iter().enumerate() {
            std::fs::write(format!("{d}/node-{k}.log"), n.proc.stderr_text()).unwrap();
        }
    }
    let vic = nodes[victim].poll().cloned();
    let v = views(&mut nodes);
    let after = nodes[victim].remote_increments();
    let Some(_) = recovered else {
        panic!(
            "paused node did not rejoin within {RECOVERY_BOUND:?} of SIGCONT (pause {pause:?}): \
             views {v:?} (victim is #{victim}), remote increments at the victim {before} -> \
             {after}; victim report {vic:?}\nvictim stderr:\n{}",
            nodes[victim].proc.stderr_text()
        );
    };
    let took = resumed.elapsed();
    eprintln!(
        "pause {:?}: rejoined {:.2} s after SIGCONT; remote increments at the victim {before} -> {after}",
        pause,
        took.as_secs_f64()
    );
    took
}

#[test]
fn paused_node_rejoins_under_traffic() {
    pause_and_resume(VICTIM, PAUSE, "pause15");
}

#[test]
#[ignore = "a 60 s pause: run with --ignored"]
fn paused_node_rejoins_under_traffic_after_60s() {
    pause_and_resume(VICTIM, Duration::from_secs(60), "pause60");
}

/// The scenario with the victim (`PAUSE_VICTIM`, default 5; 0 and 1 are servers) and pause
/// (`PAUSE_S`, default 15) from the environment.
#[test]
#[ignore = "a diagnostic run: set PAUSE_VICTIM / PAUSE_S, run with --ignored"]
fn paused_node_rejoins_under_traffic_custom() {
    let env = |k: &str, d: u64| std::env::var(k).map_or(d, |v| v.parse().expect(k));
    let victim = env("PAUSE_VICTIM", VICTIM as u64) as usize;
    assert!(victim < NODES, "PAUSE_VICTIM must be below {NODES}");
    pause_and_resume(victim, Duration::from_secs(env("PAUSE_S", 15)), "custom");
}
