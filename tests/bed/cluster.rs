//! The bed's processes: one rasp node per namespace ([`super::netns`]), started with
//! `ip netns exec <ns> setpriv --pdeathsig KILL <binary> …`, listening on its namespace's
//! address (`/ip4/10.77.0.x/tcp/7000`, HTTP on port 8080 with a bearer token), its stderr in
//! `<data dir>/node.log`. Node 0 is the seed (no `--join`); every other node joins it. A
//! restart reruns exactly the node's first command line on the same data directory.

use super::netns::{node_ip, Hosts};
use reqwest::blocking::Client;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The app the nodes run.
#[derive(Clone, Debug)]
pub enum AppKind {
    /// The generic workload ([`super::workload::Workload`]) with these trigger thresholds.
    Workload {
        /// `--triggers`.
        triggers: Vec<u64>,
    },
    /// `rasp ad-counter node`.
    AdCounter {
        /// `--threshold`.
        threshold: u64,
        /// `--ads-per-vendor`.
        ads_per_vendor: u32,
        /// `--impression-interval-ms`.
        impression_ms: u64,
    },
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Nodes (namespaces).
    pub nodes: usize,
    /// The first `servers` nodes are servers, the rest clients.
    pub servers: usize,
    /// `--membership`.
    pub membership: String,
    /// `--sync-interval-ms`.
    pub sync_ms: u64,
    /// The app.
    pub app: AppKind,
}

/// One node's process.
pub struct Proc {
    /// The child (`ip netns exec` execs into setpriv, which execs the node: one pid).
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// The next stdout line starting with `prefix` (the rest of it), within `timeout`.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let l = self.lines.recv_timeout(left).ok()?;
            if let Some(rest) = l.strip_prefix(prefix) {
                return Some(rest.to_string());
            }
        }
    }

    /// Resident set size, KiB.
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

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node of the bed.
pub struct Node {
    /// Its index.
    pub index: usize,
    /// Its data directory.
    pub dir: PathBuf,
    /// Its command line after the binary (the same at every restart).
    pub args: Vec<String>,
    /// The running process, if any.
    pub proc: Option<Proc>,
    /// Whether it is stopped (SIGSTOP).
    pub paused: bool,
    /// `http://10.77.0.x:8080`.
    pub http: String,
    /// Its libp2p address with `/p2p/<peer>` (known after its first start).
    pub addr: String,
}

/// The nodes of a bed, on their namespaces.
pub struct Cluster {
    /// The namespaces (dropped after the processes: fields drop in order).
    pub nodes: Vec<Node>,
    /// The spec it was started from.
    pub spec: Spec,
    /// The HTTP API's bearer token.
    pub token: String,
    /// The bed's directory (data directories, token, logs).
    pub dir: PathBuf,
    /// The namespaces.
    pub hosts: Hosts,
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn binary(app: &AppKind) -> (PathBuf, Vec<String>) {
    match app {
        AppKind::Workload { .. } => (
            std::env::current_exe().expect("the bed's own binary"),
            vec!["node".into()],
        ),
        AppKind::AdCounter { .. } => (
            PathBuf::from(env!("CARGO_BIN_EXE_rasp")),
            vec!["ad-counter".into(), "node".into()],
        ),
    }
}

impl Cluster {
    /// Creates the namespaces and starts every node (node 0 first, then the others joining
    /// it), waiting for their start lines.
    pub fn start(spec: Spec, name: &str) -> Result<Cluster, String> {
        let hosts = Hosts::create(spec.nodes)?;
        let dir = std::env::temp_dir().join(format!("rasp-bed-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let token = format!(
            "bed-{:x}",
            std::process::id() as u64 * 7919 + spec.nodes as u64
        );
        std::fs::write(dir.join("token"), &token).map_err(|e| e.to_string())?;
        let mut c = Cluster {
            nodes: Vec::new(),
            spec: spec.clone(),
            token,
            dir: dir.clone(),
            hosts,
        };
        for i in 0..spec.nodes {
            let ip = node_ip(i);
            let ndir = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&ndir).map_err(|e| e.to_string())?;
            let role = if i < spec.servers { "server" } else { "client" };
            let mut args: Vec<String> = vec![
                "--index".into(),
                i.to_string(),
                "--role".into(),
                role.into(),
                "--membership".into(),
                spec.membership.clone(),
                "--listen".into(),
                format!("/ip4/{ip}/tcp/7000"),
                "--data-dir".into(),
                ndir.display().to_string(),
                "--http".into(),
                format!("{ip}:8080"),
                "--http-token-file".into(),
                dir.join("token").display().to_string(),
                "--sync-interval-ms".into(),
                spec.sync_ms.to_string(),
            ];
            match &spec.app {
                AppKind::Workload { triggers } => {
                    let t: Vec<String> = triggers.iter().map(u64::to_string).collect();
                    args.extend(["--triggers".into(), t.join(",")]);
                }
                AppKind::AdCounter {
                    threshold,
                    ads_per_vendor,
                    impression_ms,
                } => args.extend([
                    "--threshold".into(),
                    threshold.to_string(),
                    "--ads-per-vendor".into(),
                    ads_per_vendor.to_string(),
                    "--impression-interval-ms".into(),
                    impression_ms.to_string(),
                ]),
            }
            if i > 0 {
                args.extend(["--join".into(), c.nodes[0].addr.clone()]);
            }
            c.nodes.push(Node {
                index: i,
                dir: ndir,
                args,
                proc: None,
                paused: false,
                http: format!("http://{ip}:8080"),
                addr: String::new(),
            });
            c.launch(i)?;
        }
        Ok(c)
    }

    /// Spawns node `i` with its command line plus `extra`, without waiting.
    pub fn spawn(&self, i: usize, extra: &[&str]) -> Result<Proc, String> {
        let (bin, sub) = binary(&self.spec.app);
        let n = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(n.dir.join("node.log"))
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts.hosts[i].ns])
            .args(["setpriv", "--pdeathsig", "KILL"])
            .arg(bin)
            .args(sub)
            .args(&n.args)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("BED_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (k, _) in std::env::vars() {
            if k.starts_with("RASP_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().map_err(|e| format!("spawn node {i}: {e}"))?;
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { child, lines })
    }

    /// (Re)starts node `i` with its command line and waits until it listens.
    pub fn launch(&mut self, i: usize) -> Result<(), String> {
        let mut p = self.spawn(i, &[])?;
        let Some(listen) = p.wait_line("listen=", START_TIMEOUT) else {
            let status = p.child.try_wait().ok().flatten();
            return Err(format!(
                "node {i} did not start (exit: {status:?}); its log:\n{}",
                self.log_tail(i, 30)
            ));
        };
        let n = &mut self.nodes[i];
        n.addr = listen;
        n.proc = Some(p);
        n.paused = false;
        Ok(())
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let s = std::fs::read_to_string(self.nodes[i].dir.join("node.log")).unwrap_or_default();
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }

    /// kill -9 of node `i` (the process is reaped).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.nodes[i].paused = false;
    }

    /// SIGSTOP (`stop`) or SIGCONT of node `i`.
    pub fn pause(&mut self, i: usize, stop: bool) {
        let n = &mut self.nodes[i];
        if let Some(p) = &n.proc {
            let sig = if stop { "-STOP" } else { "-CONT" };
            let _ = Command::new("kill")
                .arg(sig)
                .arg(p.child.id().to_string())
                .status();
            n.paused = stop;
        }
    }

    /// An HTTP client for the nodes' APIs (short time-outs: a paused node must not hold a
    /// client for long).
    pub fn client(&self, timeout: Duration) -> Client {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.token).parse().expect("header"),
        );
        Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .default_headers(h)
            .build()
            .expect("HTTP client")
    }

    /// `GET /vars/<id>`'s `value` on node `i`.
    pub fn value(&self, c: &Client, i: usize, id: &str) -> Result<Value, String> {
        let url = format!("{}/vars/{}", self.nodes[i].http, id.replace('/', "%2F"));
        let r = c.get(url).send().map_err(|e| e.to_string())?;
        let status = r.status();
        let text = r.text().map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if !status.is_success() {
            return Err(format!("{status}: {v}"));
        }
        Ok(v["value"].clone())
    }

    /// The last lines of every node's log.
    pub fn logs(&self) -> String {
        let lines = if self.nodes.len() > 8 { 3 } else { 8 };
        (0..self.nodes.len())
            .map(|i| format!("--- node {i}\n{}", self.log_tail(i, lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(p) = &n.proc {
                // A stopped process still dies of SIGKILL; continue it anyway.
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(p.child.id().to_string())
                    .status();
            }
            n.proc = None;
        }
        if std::env::var_os("BED_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
