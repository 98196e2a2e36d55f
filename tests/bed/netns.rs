//! The bed's hosts: one Linux network namespace per node, each with a veth pair whose host
//! end is on the bed's own bridge, an address in 10.77.0.0/24 (the bridge is 10.77.0.1, node
//! `i` is 10.77.0.(10 + i)), its own nftables table and qdisc for the nemesis, and one rasp
//! process started in it with `ip netns exec`. The namespaces have no default route: traffic
//! can only reach the bridge's /24, never leave the machine.
//!
//! **Names.** Every name carries the bed process's pid and the bed's number in it:
//! namespaces `rbed-<pid>-<bed>-<i>`, the bridge `rb<pid hex>x<bed>br`, host veth ends
//! `rb<pid hex>x<bed>v<i>`; no two beds share a name. The address range is one /24, so beds take a host-wide lock (`/run/lock/rasp-bed.lock`)
//! for their whole life: a second bed process waits for the first.
//!
//! **Teardown.** [`Hosts`] undoes everything on drop (processes killed by pid, namespaces
//! deleted, which drops their rules and qdiscs, bridge and veths deleted), also when a test
//! panics; a SIGINT/SIGTERM handler does the same for every live bed before exiting; every
//! process is started under `setpriv --pdeathsig KILL`, so it dies with the bed even on a
//! kill -9 of the bed; and [`sweep`] removes the leftovers of bed processes that no longer
//! exist (namespaces, their processes, links) before a new bed starts.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

/// Prefix of every namespace the bed creates.
pub const NS_PREFIX: &str = "rbed-";
/// Prefix of every host-side link the bed creates.
pub const LINK_PREFIX: &str = "rb";

/// What a signal handler must undo for one live bed.
#[derive(Clone, Debug, Default)]
struct Undo {
    namespaces: Vec<String>,
    links: Vec<String>,
    bridge: String,
}

static LIVE: Mutex<Vec<Undo>> = Mutex::new(Vec::new());

/// Runs `ip`-style commands; returns the error text on failure.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command inside namespace `ns`.
pub fn in_ns(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes what bed processes that are gone left behind: their namespaces (after killing the
/// processes still running in them, by pid) and their host links. Leaves live beds alone.
pub fn sweep() -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for line in list.lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            let Some(rest) = name.strip_prefix(NS_PREFIX) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid_alive(pid) {
                continue;
            }
            kill_in_ns(name);
            if run("ip", &["netns", "del", name]).is_ok() {
                removed.push(name.to_string());
            }
        }
    }
    if let Ok(links) = run("ip", &["-o", "link", "show"]) {
        for line in links.lines() {
            // "7: rb1a2bxbr: <...>" or "8: rb1a2bxv0@if7: <...>"
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            let Some(rest) = name.strip_prefix(LINK_PREFIX) else {
                continue;
            };
            let Some((hex, _)) = rest.split_once('x') else {
                continue;
            };
            let Ok(pid) = u32::from_str_radix(hex, 16) else {
                continue;
            };
            if !pid_alive(pid) && run("ip", &["link", "del", name]).is_ok() {
                removed.push(name.to_string());
            }
        }
    }
    removed
}

/// Kills (SIGKILL, by pid) every process still running in namespace `ns`.
fn kill_in_ns(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = run("kill", &["-KILL", pid]);
        }
    }
}

fn undo(u: &Undo) {
    // The host ends first: a namespace's deletion (which takes its veth end along) is
    // finished by the kernel asynchronously.
    for l in &u.links {
        let _ = run("ip", &["link", "del", l]);
    }
    for ns in &u.namespaces {
        kill_in_ns(ns);
        let _ = run("ip", &["netns", "del", ns]);
    }
    if !u.bridge.is_empty() {
        let _ = run("ip", &["link", "del", &u.bridge]);
    }
}

/// Installs (once) a SIGINT/SIGTERM handler that tears down every live bed and exits 130.
fn install_signal_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("signal runtime");
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
                let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
            eprintln!("bed: signal received, tearing down");
            let live = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
            for u in &live {
                undo(u);
            }
            std::process::exit(130);
        });
    });
}

/// One namespace of the bed.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name.
    pub ns: String,
}

/// The namespaces, the bridge and the veths of one bed; removed on drop.
pub struct Hosts {
    /// One per node.
    pub hosts: Vec<Host>,
    links: Vec<String>,
    bridge: String,
    /// Whether the kernel has `netem` (then the nemesis uses it for delay, jitter and
    /// reordering; else it uses nftables and htb, see `nemesis.rs`).
    pub netem: bool,
    _lock: File,
}

/// Node `i`'s address.
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 10 + i as u8)
}

impl Hosts {
    /// Creates `n` namespaces (at most 200) on a fresh bridge. Fails with a message saying
    /// why if this machine cannot (not root, no `ip netns`, no nftables).
    pub fn create(n: usize) -> Result<Hosts, String> {
        assert!((1..=200).contains(&n), "1..=200 namespaces");
        install_signal_handler();
        let lock = File::create("/run/lock/rasp-bed.lock")
            .or_else(|_| File::create(std::env::temp_dir().join("rasp-bed.lock")))
            .map_err(|e| format!("cannot create the bed's lock file: {e}"))?;
        lock.lock()
            .map_err(|e| format!("cannot lock the bed's lock file: {e}"))?;
        let gone = sweep();
        if !gone.is_empty() {
            eprintln!("bed: removed leftovers of earlier runs: {}", gone.join(" "));
        }
        run("nft", &["--version"]).map_err(|e| {
            format!("the bed needs nftables (`apt-get install -y nftables`, see .ci/run): {e}")
        })?;
        static BEDS: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let seq = BEDS.fetch_add(1, Ordering::Relaxed) % 100;
        let tag = format!("{LINK_PREFIX}{pid:x}x{seq}");
        let bridge = format!("{tag}br");
        let mut hosts = Hosts {
            hosts: Vec::new(),
            links: Vec::new(),
            bridge: String::new(),
            netem: false,
            _lock: lock,
        };
        let cannot = |e: String| {
            format!(
                "cannot create the bed's network namespaces (the bed needs root, iproute2 \
                 and a kernel with network namespaces, veth and bridges): {e}"
            )
        };
        run("ip", &["link", "add", &bridge, "type", "bridge"]).map_err(cannot)?;
        hosts.bridge = bridge.clone();
        hosts.register();
        run("ip", &["addr", "add", "10.77.0.1/24", "dev", &bridge]).map_err(cannot)?;
        run("ip", &["link", "set", &bridge, "up"]).map_err(cannot)?;
        for i in 0..n {
            let ns = format!("{NS_PREFIX}{pid}-{seq}-{i}");
            let ip = node_ip(i);
            run("ip", &["netns", "add", &ns]).map_err(cannot)?;
            let host_end = format!("{tag}v{i}");
            hosts.hosts.push(Host { ns: ns.clone() });
            hosts.links.push(host_end.clone());
            hosts.register();
            let peer_end = format!("{tag}p{i}");
            let addr = format!("{ip}/24");
            let steps: [&[&str]; 7] = [
                &[
                    "link", "add", &host_end, "type", "veth", "peer", "name", &peer_end,
                ],
                &["link", "set", &peer_end, "netns", &ns],
                &["link", "set", &host_end, "master", &bridge, "up"],
                &["-n", &ns, "link", "set", &peer_end, "name", "eth0"],
                &["-n", &ns, "addr", "add", &addr, "dev", "eth0"],
                &["-n", &ns, "link", "set", "eth0", "up"],
                &["-n", &ns, "link", "set", "lo", "up"],
            ];
            for s in steps {
                run("ip", s).map_err(cannot)?;
            }
        }
        hosts.netem = in_ns(
            &hosts.hosts[0].ns,
            &[
                "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
            ],
        )
        .is_ok();
        if hosts.netem {
            let _ = in_ns(
                &hosts.hosts[0].ns,
                &["tc", "qdisc", "del", "dev", "lo", "root"],
            );
        }
        Ok(hosts)
    }

    fn register(&self) {
        let undo = Undo {
            namespaces: self.hosts.iter().map(|h| h.ns.clone()).collect(),
            links: self.links.clone(),
            bridge: self.bridge.clone(),
        };
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|u| u.bridge != self.bridge);
        live.push(undo);
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let me = Undo {
            namespaces: self.hosts.iter().map(|h| h.ns.clone()).collect(),
            links: self.links.clone(),
            bridge: self.bridge.clone(),
        };
        undo(&me);
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|u| u.bridge != self.bridge);
    }
}
