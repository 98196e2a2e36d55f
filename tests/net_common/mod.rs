//! Helpers for the real-process network tests: start `rasp` children, read what they print,
//! signal them, and kill them on drop (also when a test fails).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a child may take to print its start lines.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The `rasp` binary under test.
pub fn rasp() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rasp"));
    c.env(
        "RUST_LOG",
        std::env::var("NETTEST_LOG").unwrap_or_else(|_| "info".into()),
    );
    for (k, _) in std::env::vars() {
        if k.starts_with("RASP_") {
            c.env_remove(k);
        }
    }
    c
}

/// A fresh, empty temporary directory for this test process.
pub fn tempdir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "rasp-nettest-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running `rasp` child process. Killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Everything the child printed on stderr so far.
    pub stderr: Arc<Mutex<String>>,
    /// Every stdout line read so far.
    pub seen: Vec<String>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Spawns `cmd` with piped stdout/stderr.
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn rasp");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let e2 = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            for l in BufReader::new(err).lines() {
                let Ok(l) = l else { break };
                let mut s = e2.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        Proc {
            child,
            lines,
            stderr,
            seen: Vec::new(),
            stderr_reader: Some(stderr_reader),
        }
    }

    /// The next stdout line starting with `prefix` (the rest of it), within `timeout`.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return Some(l[prefix.len()..].to_string());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let l = self.lines.recv_timeout(left).ok()?;
            self.seen.push(l.clone());
            if let Some(rest) = l.strip_prefix(prefix) {
                return Some(rest.to_string());
            }
        }
    }

    /// Sends a signal (`TERM`, `INT`, ...) with `kill(1)`.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1)")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the child to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // The child is gone: read the rest of its stderr.
                if let Some(r) = self.stderr_reader.take() {
                    let _ = r.join();
                }
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the child is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// A copy of stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// A started `rasp node`: its process and what it printed at start.
pub struct NodeProc {
    pub proc: Proc,
    pub node_id: u64,
    pub peer_id: String,
    pub boots: u64,
    /// Its loopback listen address, with `/p2p/<peer>`.
    pub addr: String,
}

/// Starts `rasp node --listen /ip4/127.0.0.1/tcp/0 --data-dir <dir> <extra...>` and reads
/// its start lines.
pub fn start_node(dir: &std::path::Path, extra: &[&str]) -> NodeProc {
    read_start(spawn_node(dir, extra))
}

/// Starts several nodes at once (all spawned before any start line is read); same order.
pub fn start_nodes(specs: &[(PathBuf, Vec<String>)]) -> Vec<NodeProc> {
    let procs: Vec<Proc> = specs
        .iter()
        .map(|(dir, extra)| {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            spawn_node(dir, &extra)
        })
        .collect();
    procs.into_iter().map(read_start).collect()
}

/// Spawns `rasp node --listen /ip4/127.0.0.1/tcp/0 --data-dir <dir> <extra...>` without
/// waiting for it (see [`read_start`]).
pub fn spawn_node(dir: &std::path::Path, extra: &[&str]) -> Proc {
    let mut cmd = rasp();
    cmd.arg("node")
        .arg("--listen")
        .arg("/ip4/127.0.0.1/tcp/0")
        .arg("--data-dir")
        .arg(dir)
        .args(extra);
    Proc::spawn(cmd)
}

/// Reads a spawned node's start lines.
pub fn read_start(mut proc: Proc) -> NodeProc {
    let head = match proc.wait_line("node_id=", START_TIMEOUT) {
        Some(h) => h,
        None => panic!("node did not start; stderr:\n{}", proc.stderr_text()),
    };
    let mut node_id = 0;
    let mut peer_id = String::new();
    let mut boots = 0;
    for (i, part) in format!("node_id={head}").split_whitespace().enumerate() {
        let (k, v) = part.split_once('=').unwrap();
        match k {
            "node_id" => node_id = v.parse().unwrap(),
            "peer_id" => peer_id = v.to_string(),
            "boots" => boots = v.parse().unwrap(),
            "membership" | "role" => {}
            _ => panic!("unexpected field {i}: {part}"),
        }
    }
    let addr = proc
        .wait_line("listen=", START_TIMEOUT)
        .expect("listen line");
    NodeProc {
        proc,
        node_id,
        peer_id,
        boots,
        addr,
    }
}

impl Proc {
    /// Reads every stdout line available now (without waiting) and returns the last one
    /// starting with `prefix` (the rest of it), if any. Lines read are not kept in `seen`.
    pub fn latest_line(&mut self, prefix: &str) -> Option<String> {
        let mut last = None;
        while let Ok(l) = self.lines.try_recv() {
            if let Some(rest) = l.strip_prefix(prefix) {
                last = Some(rest.to_string());
            }
        }
        last
    }

    /// Resident set size of the child (`VmRSS` of `/proc/<pid>/status`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}
