//! One app, two worlds: the to-do list of `examples/todo` (included below, unchanged) runs a
//! seedless scenario (fixed updates at fixed nodes) in the simulator and across three real
//! processes on loopback, under full, client-server and HyParView membership; every node ends
//! with the same values in both worlds.
//!
//! This test binary is itself an app's binary (`harness = false`): started with `node` or
//! `sim` as its first argument it is `rasp::main(Todo)`, and the test starts itself that way
//! as the real processes. Run it with `cargo test --release --test app_parity`.

#[allow(dead_code)]
#[path = "../examples/todo/app.rs"]
mod todo;

use rasp::app::sim::{self, SimArgs, SimReport};
use rasp::membership::Mode;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Sync interval in both worlds (shorter than the default, to keep the test short).
const SYNC_MS: u64 = 200;
/// How long real processes get to reach the simulator's values.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(25);

type Values = BTreeMap<String, String>;

/// A child process of this binary, killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(args: &[String], dir: &std::path::Path, name: &str) -> Proc {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new(std::env::current_exe().expect("own path"));
        for (k, _) in std::env::vars() {
            if k.starts_with("RASP_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RUST_LOG", "info")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let mut child = cmd.spawn().expect("spawn node");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            stderr,
        }
    }

    /// The next line starting with `prefix` (its rest), within `timeout`.
    fn line(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let l = self.lines.recv_timeout(left).ok()?;
            if let Some(rest) = l.strip_prefix(prefix) {
                return Some(rest.to_string());
            }
        }
    }

    /// The latest `values=` line printed so far, if any (does not wait).
    fn latest_values(&mut self, last: &mut Option<Values>) {
        while let Ok(l) = self.lines.try_recv() {
            if let Some(json) = l.strip_prefix("values=") {
                *last = Some(serde_json::from_str(json).expect("values= line is JSON"));
            }
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rasp-app-parity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn sim_args(mode: Mode) -> SimArgs {
    let mut a = SimArgs {
        membership: mode,
        duration_s: 20.0,
        ..SimArgs::default()
    };
    a.replication.sync_interval_ms = Some(SYNC_MS);
    a
}

fn in_simulator(mode: Mode) -> Result<SimReport, String> {
    let r = sim::run(todo::Todo::default(), &sim_args(mode)).map_err(|e| e.to_string())?;
    if !r.converged {
        return Err(format!(
            "{mode}: the simulator did not converge: {}",
            r.text()
        ));
    }
    // The scenario's outcome, independent of the world.
    let items = &r.values[&0]["todo/items"];
    if items != r#"{"!call mum", "!pay rent", "!plan the party", "tea"}"# {
        return Err(format!("{mode}: unexpected final items {items}"));
    }
    let again = sim::run(todo::Todo::default(), &sim_args(mode)).map_err(|e| e.to_string())?;
    if again.trace_hash != r.trace_hash {
        return Err(format!(
            "{mode}: the same seed gave two trace hashes ({:#x}, {:#x})",
            r.trace_hash, again.trace_hash
        ));
    }
    Ok(r)
}

fn node_args(mode: Mode, i: u32, dir: &std::path::Path, join: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = [
        "node",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--membership",
        &mode.to_string(),
        "--sync-interval-ms",
        &SYNC_MS.to_string(),
        "--print-values",
    ]
    .map(String::from)
    .into();
    a.extend(["--index".into(), i.to_string()]);
    a.extend([
        "--data-dir".into(),
        dir.join(format!("n{i}")).display().to_string(),
    ]);
    if mode == Mode::ClientServer {
        let role = if i == 0 { "server" } else { "client" };
        a.extend(["--role".into(), role.into()]);
    }
    if let Some(j) = join {
        a.extend(["--join".into(), j.into()]);
    }
    a
}

/// Three real processes; returns how long they took to reach `expected`.
fn across_processes(mode: Mode, expected: &BTreeMap<u32, Values>) -> Result<Duration, String> {
    let dir = tempdir(&mode.to_string());
    let started = Instant::now();
    let mut first = Proc::spawn(&node_args(mode, 0, &dir, None), &dir, "n0");
    let addr = first
        .line("listen=", Duration::from_secs(20))
        .ok_or_else(|| {
            format!(
                "{mode}: node 0 printed no listen= line: {}",
                first.stderr_text()
            )
        })?;
    let mut procs = vec![first];
    for i in 1..3 {
        procs.push(Proc::spawn(
            &node_args(mode, i, &dir, Some(&addr)),
            &dir,
            &format!("n{i}"),
        ));
    }
    let mut last: Vec<Option<Values>> = vec![None; 3];
    let deadline = started + CONVERGE_TIMEOUT;
    loop {
        for (p, l) in procs.iter_mut().zip(last.iter_mut()) {
            p.latest_values(l);
        }
        let all = (0..3).all(|i| last[i].as_ref() == expected.get(&(i as u32)));
        if all {
            let took = started.elapsed();
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(took);
        }
        if Instant::now() > deadline {
            let mut msg = format!("{mode}: real processes did not reach the simulator's values\n");
            for i in 0..3 {
                msg.push_str(&format!(
                    "node {i}: expected {:?}\n        got {:?}\n        stderr: {}\n",
                    expected.get(&(i as u32)),
                    last[i],
                    procs[i].stderr_text()
                ));
            }
            return Err(msg);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `sim` subcommand of this binary, end to end, with the README's faults (loss, a
/// partition, a crash and a restart): `--json` parses, the invariant holds after every event
/// (the restarted node does not add its items again) and the run converges.
fn sim_subcommand() -> Result<(), String> {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "sim",
            "--nodes",
            "3",
            "--membership",
            "full",
            "--loss",
            "0.2",
        ])
        .args([
            "--partition",
            "0/1,2@0.5-5",
            "--crash",
            "1@6",
            "--restart",
            "1@8",
        ])
        .args(["--duration-s", "20", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "sim exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("sim --json: {e}"))?;
    if v["converged"] != serde_json::Value::Bool(true)
        || !v["trace_hash"].is_u64()
        || v["values"]["1"] != v["values"]["0"]
    {
        return Err(format!("sim --json: unexpected report {v}"));
    }
    Ok(())
}

/// `rasp node` is the node of an app with no program: it runs an (empty) app atom, so
/// `--print-values` prints an empty map.
fn rasp_node_is_an_app_node() -> Result<(), String> {
    let dir = tempdir("rasp-node");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rasp"));
    for (k, _) in std::env::vars() {
        if k.starts_with("RASP_") {
            cmd.env_remove(k);
        }
    }
    let stderr = dir.join("stderr");
    cmd.args([
        "node",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--print-values",
        "--data-dir",
    ])
    .arg(dir.join("data"))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&stderr).map_err(|e| e.to_string())?);
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let out = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut p = Proc {
        child,
        lines,
        stderr,
    };
    match p.line("values=", Duration::from_secs(20)) {
        Some(v) if v == "{}" => Ok(()),
        Some(v) => Err(format!("rasp node printed values={v}, expected {{}}")),
        None => Err(format!(
            "rasp node printed no values= line: {}",
            p.stderr_text()
        )),
    }
}

fn main() -> ExitCode {
    let first = std::env::args().nth(1);
    if matches!(first.as_deref(), Some("node" | "sim")) {
        return rasp::main(todo::Todo::default());
    }
    let mut failed = Vec::new();
    for mode in [Mode::Full, Mode::ClientServer, Mode::HyParView] {
        let result = in_simulator(mode).and_then(|r| {
            let took = across_processes(mode, &r.values)?;
            Ok((r, took))
        });
        match result {
            Ok((r, took)) => println!(
                "app_parity {mode}: simulator converged at {:.2} s (virtual), 3 processes reached the same values in {:.2} s",
                r.converged_at_s.unwrap_or(0.0),
                took.as_secs_f64()
            ),
            Err(e) => {
                eprintln!("app_parity {mode}: FAILED\n{e}");
                failed.push(mode);
            }
        }
    }
    if let Err(e) = sim_subcommand() {
        eprintln!("app_parity sim subcommand: FAILED: {e}");
        failed.push(Mode::Full);
    }
    if let Err(e) = rasp_node_is_an_app_node() {
        eprintln!("app_parity rasp node: FAILED: {e}");
        failed.push(Mode::Full);
    }
    if failed.is_empty() {
        println!("app_parity: ok");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
