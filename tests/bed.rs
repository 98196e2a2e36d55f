//! The Jepsen-style test bed: real rasp processes, one per Linux network namespace on a
//! bridge of their own, a seeded nemesis that breaks the real network and the real
//! processes, clients whose every update is logged, and a checker that says what was lost
//! (module docs of `bed/netns.rs`, `bed/cluster.rs`, `bed/nemesis.rs`, `bed/history.rs`; the
//! README's "Testing under real faults").
//!
//! This binary has its own small runner (`harness = false`): run it with `cargo test
//! --release --test bed [-- FILTER…] [--ignored]`. Without `--ignored` it runs the small
//! runs and the regression scenarios (the default test run and `.ci/run`); `--ignored`
//! runs the large run (`large`, sized by `BED_NODES`, `BED_DURATION_S`, `BED_KINDS`). Each
//! run prints one line of figures, `bed <name>: …`, and fails on any loss; a failing run
//! prints its seed and the command that repeats it (`BED_SEED=<seed>`). Run with
//! `node …` as its first argument, the binary is the workload app's node
//! ([`bed::workload::Workload`] through `rasp::main`): the bed starts its nodes that way.
//!
//! The machine must let the bed create network namespaces (root, iproute2, nftables):
//! otherwise every run fails with a message saying so.

#[path = "bed/mod.rs"]
mod bed;

use bed::cluster::{AppKind, Cluster, Spec};
use bed::history::{self, Clients, Observer, Verdict};
use bed::nemesis::{self, Fault, Kind, Step};
use bed::workload::{runs_id, trigger_name, Workload, HITS};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// One run of the bed.
#[derive(Clone, Debug)]
struct Run {
    name: String,
    nodes: usize,
    servers: usize,
    membership: &'static str,
    app: AppKind,
    /// Seconds of nemesis (and of client traffic).
    duration_s: f64,
    kinds: Vec<Kind>,
    fault_s: (f64, f64),
    seed: u64,
    workers: usize,
    interval: Duration,
    converge: Duration,
}

impl Run {
    fn small(name: &str, membership: &'static str, kinds: &[Kind], seed: u64) -> Run {
        Run {
            name: name.to_string(),
            nodes: 5,
            servers: 2,
            membership,
            app: AppKind::Workload {
                triggers: vec![40, 150, 100_000],
            },
            duration_s: 24.0,
            kinds: kinds.to_vec(),
            fault_s: (3.0, 6.0),
            seed,
            workers: 3,
            interval: Duration::from_millis(25),
            converge: Duration::from_secs(45),
        }
    }

    fn spec(&self) -> Spec {
        Spec {
            nodes: self.nodes,
            servers: self.servers,
            membership: self.membership.to_string(),
            sync_ms: 200,
            app: self.app.clone(),
        }
    }

    fn seed(&self) -> u64 {
        std::env::var("BED_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(self.seed)
    }
}

/// Waits until every node's HTTP API answers.
fn wait_healthy(c: &Cluster) -> Result<(), String> {
    let client = c.client(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in &c.nodes {
        loop {
            if let Ok(r) = client.get(format!("{}/health", n.http)).send() {
                if r.status() == 200 {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(format!("node {} never answered /health", n.index));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn finish(name: &str, seed: u64, v: Verdict, c: &Cluster, extra: &str) -> Result<String, String> {
    let line = format!("bed {name}: seed={seed} {} {extra}", v.line());
    println!("{line}");
    if v.failures.is_empty() {
        Ok(line)
    } else {
        Err(format!(
            "{}\nreproduce: BED_SEED={seed} cargo test --release --test bed -- {name}\nnode logs (tails):\n{}",
            v.failures.join("\n"),
            c.logs()
        ))
    }
}

/// A run with a drawn nemesis schedule (see [`nemesis::schedule`]).
fn drawn(r: &Run) -> Result<String, String> {
    let seed = r.seed();
    let steps = nemesis::schedule(seed, r.nodes, &r.kinds, r.duration_s, r.fault_s);
    scripted(r, seed, &steps)
}

/// A run with the nemesis steps given.
fn scripted(r: &Run, seed: u64, steps: &[Step]) -> Result<String, String> {
    let mut c = Cluster::start(r.spec(), &r.name)?;
    nemesis::prepare(&c)?;
    wait_healthy(&c)?;
    let kinds: Vec<&str> = r.kinds.iter().map(|k| k.name()).collect();
    println!(
        "bed {}: {} nodes, {}, seed {seed}, {} faults of [{}] over {:.0} s (netem in kernel: {})",
        r.name,
        r.nodes,
        r.membership,
        steps.len(),
        kinds.join(","),
        r.duration_s,
        c.hosts.netem
    );
    let t0 = Instant::now();
    match &r.app {
        AppKind::Workload { triggers } => {
            let clients = Clients::workload(&c, seed, r.workers, r.interval, t0);
            let rec = nemesis::run(&mut c, steps, t0, |_| {});
            let rec = match rec {
                Ok(x) => x,
                Err(e) => {
                    clients.stop();
                    return Err(format!("nemesis: {e}"));
                }
            };
            // The clients stop at the last heal: the quiet period starts there, and the
            // convergence time is measured from it.
            nemesis::heal_network(&c)?;
            let last_heal = rec.last_heal.unwrap_or_else(Instant::now);
            let h = clients.stop();
            let sides = nemesis::sides(steps);
            let v = history::check_workload(&c, &h, triggers, sides, last_heal, r.converge);
            let faults: Vec<String> = rec
                .applied
                .iter()
                .map(|(k, n)| format!("{k}:{n}"))
                .collect();
            finish(
                &r.name,
                seed,
                v,
                &c,
                &format!("faults={}", faults.join(",")),
            )
        }
        AppKind::AdCounter {
            threshold,
            ads_per_vendor,
            ..
        } => {
            let obs = Observer::start(&c);
            let rec = nemesis::run(&mut c, steps, t0, |_| {});
            let rec = match rec {
                Ok(x) => x,
                Err(e) => {
                    obs.stop();
                    return Err(format!("nemesis: {e}"));
                }
            };
            nemesis::heal_network(&c)?;
            let last_heal = rec.last_heal.unwrap_or_else(Instant::now);
            let ads: Vec<String> = ["rovio", "riot"]
                .iter()
                .flat_map(|v| (0..*ads_per_vendor).map(move |i| format!("{v}/{i}")))
                .collect();
            let back = obs.stop();
            let v = history::check_ad_counter(&c, &ads, *threshold, back, last_heal, r.converge);
            let faults: Vec<String> = rec
                .applied
                .iter()
                .map(|(k, n)| format!("{k}:{n}"))
                .collect();
            finish(
                &r.name,
                seed,
                v,
                &c,
                &format!("faults={}", faults.join(",")),
            )
        }
    }
}

// ---- the small runs (default test run) ----

fn small_full() -> Result<String, String> {
    drawn(&Run::small(
        "small_full",
        "full",
        &[Kind::Partition, Kind::Kill],
        1,
    ))
}

fn small_client_server() -> Result<String, String> {
    drawn(&Run::small(
        "small_client_server",
        "client-server",
        &[Kind::Pause, Kind::Link],
        2,
    ))
}

fn small_hyparview() -> Result<String, String> {
    drawn(&Run::small(
        "small_hyparview",
        "hyparview",
        &[Kind::Bridge, Kind::OneWay],
        3,
    ))
}

fn small_ad_counter() -> Result<String, String> {
    let mut r = Run::small(
        "small_ad_counter",
        "full",
        &[Kind::Partition, Kind::Kill],
        4,
    );
    r.app = AppKind::AdCounter {
        threshold: 80,
        ads_per_vendor: 2,
        impression_ms: 100,
    };
    drawn(&r)
}

// ---- the large run (--ignored) ----

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

/// One run per nemesis kind (`BED_KINDS`, all by default), on `BED_NODES` namespaces (40),
/// sharing `BED_DURATION_S` (600) between them, under `BED_MEMBERSHIP` (hyparview).
fn large() -> Result<String, String> {
    let nodes = env_or("BED_NODES", 40usize);
    let total = env_or("BED_DURATION_S", 600.0f64);
    let membership: &'static str = match std::env::var("BED_MEMBERSHIP").as_deref() {
        Ok("full") => "full",
        Ok("client-server") => "client-server",
        _ => "hyparview",
    };
    let kinds: Vec<Kind> = match std::env::var("BED_KINDS") {
        Ok(s) => s.split(',').filter_map(Kind::parse).collect(),
        Err(_) => Kind::ALL.to_vec(),
    };
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for (k, kind) in kinds.iter().enumerate() {
        let mut r = Run::small(
            &format!("large_{}", kind.name()),
            membership,
            &[*kind],
            100 + k as u64,
        );
        r.nodes = nodes;
        r.servers = 3;
        r.duration_s = total / kinds.len() as f64;
        r.fault_s = (5.0, 15.0);
        r.workers = 6;
        r.converge = Duration::from_secs(120);
        r.app = AppKind::Workload {
            triggers: vec![100, 1000, 1_000_000],
        };
        match drawn(&r) {
            Ok(l) => lines.push(l),
            Err(e) => {
                eprintln!("{e}");
                failed.push(kind.name());
            }
        }
    }
    if failed.is_empty() {
        Ok(lines.join("\n"))
    } else {
        Err(format!("large runs failed: {failed:?}"))
    }
}

// ---- the regression scenarios of the six reliability defects, on real faults ----

fn step(at: f64, heal: f64, fault: Fault) -> Step {
    Step { at, heal, fault }
}

/// A HyParView overlay split 4 | 4 for 20 s (long enough for each half to refill its
/// active views from its own side) heals and converges within the run's bound.
fn scenario_partition_heal() -> Result<String, String> {
    let mut r = Run::small(
        "scenario_partition_heal",
        "hyparview",
        &[Kind::Partition],
        11,
    );
    r.nodes = 8;
    r.duration_s = 26.0;
    r.converge = Duration::from_secs(30);
    let steps = [step(
        2.0,
        22.0,
        Fault::Split {
            a: vec![0, 1, 2, 3],
            b: vec![4, 5, 6, 7],
            one_way: false,
            bridge: None,
        },
    )];
    scripted(&r, r.seed, &steps)
}

/// A node SIGSTOPped for 15 s under traffic (full membership; far past the failure
/// detector's 2 s) rejoins and converges after SIGCONT.
fn scenario_pause_under_traffic() -> Result<String, String> {
    let mut r = Run::small("scenario_pause_under_traffic", "full", &[Kind::Pause], 12);
    r.nodes = 6;
    r.duration_s = 22.0;
    r.converge = Duration::from_secs(30);
    let steps = [step(2.0, 17.0, Fault::Pause(3))];
    scripted(&r, r.seed, &steps)
}

/// The seed node (node 0, started without `--join`) killed and restarted with exactly its
/// first command line finds the cluster again (the contacts in its store).
fn scenario_seed_restart() -> Result<String, String> {
    let mut r = Run::small("scenario_seed_restart", "client-server", &[Kind::Kill], 13);
    r.duration_s = 16.0;
    r.converge = Duration::from_secs(30);
    let steps = [step(3.0, 8.0, Fault::Kill(0))];
    scripted(&r, r.seed, &steps)
}

/// The trigger owner (server 0) killed before the threshold: server 1 takes over and runs
/// the action once; when server 0 comes back it does not run it again.
fn scenario_trigger_owner_death() -> Result<String, String> {
    let mut r = Run::small(
        "scenario_trigger_owner_death",
        "client-server",
        &[Kind::Kill],
        14,
    );
    let threshold = 120;
    r.app = AppKind::Workload {
        triggers: vec![threshold],
    };
    let mut c = Cluster::start(r.spec(), &r.name)?;
    nemesis::prepare(&c)?;
    wait_healthy(&c)?;
    c.kill(0);
    println!("nemesis: kill -9 node 0 (the trigger owner), before the threshold");
    let t0 = Instant::now();
    let clients = Clients::workload(&c, r.seed, r.workers, r.interval, t0);
    let client = c.client(Duration::from_secs(2));
    let runs = runs_id(&trigger_name(threshold));
    let deadline = Instant::now() + Duration::from_secs(40);
    let took = loop {
        let hits = c
            .value(&client, 1, HITS)
            .ok()
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let ran = c
            .value(&client, 1, &runs)
            .ok()
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        if ran >= 1 && hits >= threshold as i64 {
            break t0.elapsed();
        }
        if Instant::now() > deadline {
            clients.stop();
            return Err(format!(
                "with the owner dead, trigger never ran on server 1 (w/hits = {hits})\n{}",
                c.logs()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "bed {}: server 1 ran the trigger {:.2} s after the owner's death",
        r.name,
        took.as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(2));
    println!("nemesis: restart node 0");
    c.launch(0)?;
    std::thread::sleep(Duration::from_secs(4));
    let last_heal = Instant::now();
    let h = clients.stop();
    // The owner died before the threshold, so nothing may run twice: exactly once.
    let v = history::check_workload(&c, &h, &[threshold], 0, last_heal, r.converge);
    finish(
        &r.name,
        r.seed,
        v,
        &c,
        &format!("takeover_s={:.2}", took.as_secs_f64()),
    )
}

/// Attackers on the host open 192 streams to node 2 over the bridge and send only frame
/// headers announcing 4 MiB; node 2's resident set stays within +64 MiB and the cluster
/// (node 2 included) keeps converging under a lossy link fault.
fn scenario_header_only_attack() -> Result<String, String> {
    use futures::AsyncWriteExt;
    use rasp_runtime::net::raw::RawPeer;
    use rasp_runtime::net::Multiaddr;
    const BOUND_KIB: u64 = 64 * 1024;
    let mut r = Run::small("scenario_header_only_attack", "full", &[Kind::Link], 15);
    r.nodes = 4;
    let mut c = Cluster::start(r.spec(), &r.name)?;
    nemesis::prepare(&c)?;
    wait_healthy(&c)?;
    let t0 = Instant::now();
    let clients = Clients::workload(&c, r.seed, r.workers, r.interval, t0);
    let fault = Fault::Link {
        links: vec![(0, 2), (1, 2)],
        loss_pm: 50,
        dup_pm: 20,
        slower_pct: 20,
    };
    println!("nemesis: {fault}");
    nemesis::apply(&mut c, &fault)?;
    let victim = c.nodes[2].proc.as_ref().ok_or("node 2 is not running")?;
    let before = victim.rss_kib().ok_or("no VmRSS")?;
    let addr: Multiaddr = c.nodes[2].addr.parse().map_err(|e| format!("{e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let peak = rt.block_on(async {
        let header = (4u32 << 20).to_be_bytes();
        let mut keep = Vec::new();
        for _ in 0..192 {
            let mut raw = RawPeer::new(None).map_err(|e| e.to_string())?;
            let peer = raw.connect(addr.clone(), Duration::from_secs(10)).await?;
            let mut s = raw.open(peer).await?;
            s.write_all(&header).await.map_err(|e| e.to_string())?;
            s.flush().await.map_err(|e| e.to_string())?;
            keep.push((raw, s));
        }
        println!("nemesis: 192 header-only streams of 4 MiB open on node 2");
        let mut peak = 0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            peak = peak.max(
                c.nodes[2]
                    .proc
                    .as_ref()
                    .and_then(|p| p.rss_kib())
                    .unwrap_or(0),
            );
        }
        drop(keep);
        Ok::<u64, String>(peak)
    })?;
    nemesis::heal_network(&c)?;
    let last_heal = Instant::now();
    let h = clients.stop();
    let mut v = history::check_workload(&c, &h, &[40, 150], 0, last_heal, r.converge);
    if peak > before + BOUND_KIB {
        v.failures.push(format!(
            "node 2's RSS grew from {before} KiB to {peak} KiB under the attack (bound +{BOUND_KIB} KiB)"
        ));
    }
    finish(
        &r.name,
        r.seed,
        v,
        &c,
        &format!("rss_before_kib={before} rss_peak_kib={peak}"),
    )
}

/// A node killed and its store truncated to half refuses to start (exit 2, naming the
/// file); started with `--reset-store` it rejoins and catches up.
fn scenario_truncated_store() -> Result<String, String> {
    let mut r = Run::small("scenario_truncated_store", "full", &[Kind::Kill], 16);
    r.nodes = 4;
    let mut c = Cluster::start(r.spec(), &r.name)?;
    nemesis::prepare(&c)?;
    wait_healthy(&c)?;
    let t0 = Instant::now();
    let clients = Clients::workload(&c, r.seed, r.workers, r.interval, t0);
    std::thread::sleep(Duration::from_secs(5));
    let h = clients.stop();
    // Everything acknowledged reaches every node before the store is damaged, so the reset
    // loses nothing the cluster does not hold.
    history::converge(
        &c,
        &history::workload_vars(&[40, 150, 100_000]),
        r.converge,
        |_| true,
    )?;
    c.kill(2);
    let store = c.nodes[2].dir.join("store.redb");
    let len = std::fs::metadata(&store)
        .map_err(|e| format!("{}: {e}", store.display()))?
        .len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&store)
        .and_then(|f| f.set_len(len / 2))
        .map_err(|e| e.to_string())?;
    println!(
        "nemesis: kill -9 node 2, truncate {} from {len} to {} bytes",
        store.display(),
        len / 2
    );
    let mut p = c.spawn(2, &[])?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = p.child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() > deadline {
            return Err("a node with a truncated store kept running".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(p);
    let log = c.log_tail(2, 20);
    if status.code() != Some(2) || !log.contains("store.redb") {
        return Err(format!(
            "a truncated store: expected exit code 2 and a message naming store.redb, got {status:?}:\n{log}"
        ));
    }
    println!(
        "bed {}: refused to start ({status}): {}",
        r.name,
        log.lines().last().unwrap_or("")
    );
    let mut p = c.spawn(2, &["--reset-store"])?;
    let addr = p
        .wait_line("listen=", Duration::from_secs(30))
        .ok_or_else(|| format!("--reset-store did not start:\n{}", c.log_tail(2, 20)))?;
    c.nodes[2].addr = addr;
    c.nodes[2].proc = Some(p);
    let last_heal = Instant::now();
    // The store was reset after everything had converged: nothing can run twice.
    let v = history::check_workload(&c, &h, &[40, 150, 100_000], 0, last_heal, r.converge);
    finish(&r.name, r.seed, v, &c, "")
}

/// An update the HTTP API acknowledged survives a kill -9 of its node right after the
/// answer, before any sync interval (10 s here) could have written it or shipped it: the
/// acknowledgement means durable (`rasp::http`'s module docs). On loopback, one node, no
/// namespaces needed.
fn acked_update_survives_kill_9() -> Result<String, String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("rasp-bed-{}-ack", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let start = || -> Result<(std::process::Child, String), String> {
        let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .args([
                "node",
                "--index",
                "0",
                "--role",
                "client",
                "--membership",
                "full",
            ])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0"])
            .args(["--sync-interval-ms", "10000", "--data-dir"])
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let out = BufReader::new(child.stdout.take().expect("piped"));
        for l in out.lines() {
            let l = l.map_err(|e| e.to_string())?;
            if let Some(h) = l.strip_prefix("http=") {
                return Ok((child, format!("http://{h}")));
            }
        }
        Err("the node printed no http= line".into())
    };
    let client = reqwest::blocking::Client::new();
    let (mut child, http) = start()?;
    // Let the first sync tick pass (the node starts with one), then update.
    std::thread::sleep(Duration::from_millis(500));
    let r = client
        .post(format!("{http}/vars/w%2Fset"))
        .body(r#"{"add": "acked"}"#)
        .send()
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("update answered {}", r.status()));
    }
    child.kill().map_err(|e| e.to_string())?;
    let _ = child.wait();
    let (mut child, http) = start()?;
    let v: serde_json::Value = client
        .get(format!("{http}/vars/w%2Fset"))
        .send()
        .and_then(|r| r.text())
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("{e}: {t}")))?;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let kept = v["value"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "acked"));
    if kept {
        Ok(
            "bed acked_update_survives_kill_9: the acknowledged add is in the restarted node's set"
                .into(),
        )
    } else {
        Err(format!(
            "an acknowledged update was lost by a kill -9 right after the answer: w/set = {}",
            v["value"]
        ))
    }
}

type Case = (&'static str, bool, fn() -> Result<String, String>);

const CASES: &[Case] = &[
    (
        "acked_update_survives_kill_9",
        false,
        acked_update_survives_kill_9,
    ),
    ("small_full", false, small_full),
    ("small_client_server", false, small_client_server),
    ("small_hyparview", false, small_hyparview),
    ("small_ad_counter", false, small_ad_counter),
    ("scenario_partition_heal", false, scenario_partition_heal),
    (
        "scenario_pause_under_traffic",
        false,
        scenario_pause_under_traffic,
    ),
    ("scenario_seed_restart", false, scenario_seed_restart),
    (
        "scenario_trigger_owner_death",
        false,
        scenario_trigger_owner_death,
    ),
    (
        "scenario_header_only_attack",
        false,
        scenario_header_only_attack,
    ),
    ("scenario_truncated_store", false, scenario_truncated_store),
    ("large", true, large),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("node") {
        return rasp::main(Workload::default());
    }
    let ignored = args.iter().any(|a| a == "--ignored");
    let include = args.iter().any(|a| a == "--include-ignored");
    let exact = args.iter().any(|a| a == "--exact");
    // libtest's flags that take a value: their value is not a filter.
    let mut filters: Vec<&String> = Vec::new();
    let mut skips: Vec<&String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip" => skips.extend(it.next()),
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => {
                it.next();
            }
            _ if a.starts_with('-') => {}
            _ => filters.push(a),
        }
    }
    let chosen: Vec<&Case> = CASES
        .iter()
        .filter(|(_, heavy, _)| include || *heavy == ignored)
        .filter(|(name, _, _)| !skips.iter().any(|k| name.contains(k.as_str())))
        .filter(|(name, _, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _, _) in &chosen {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let t = Instant::now();
    let mut failed = Vec::new();
    for (name, _, f) in &chosen {
        let s = Instant::now();
        // A panicking run fails alone (its bed is torn down as the panic unwinds).
        let result = std::panic::catch_unwind(f).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        });
        match result {
            Ok(_) => println!("test {name} ... ok ({:.1} s)", s.elapsed().as_secs_f64()),
            Err(e) => {
                println!(
                    "test {name} ... FAILED ({:.1} s)\n{e}",
                    s.elapsed().as_secs_f64()
                );
                failed.push(*name);
            }
        }
    }
    println!(
        "bed: {} passed, {} failed, {:.0} s{}",
        chosen.len() - failed.len(),
        failed.len(),
        t.elapsed().as_secs_f64(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {failed:?}")
        }
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
