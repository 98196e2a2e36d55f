//! What a user sees when a node cannot do what it was told: a busy listen port, a listen
//! address that is not this host's, a join address nobody answers, a peer with another cluster
//! key; and what the tools print (`rasp overlay`'s own listen address, `rasp ad-counter
//! --processes` when it times out). Real `rasp` processes on loopback.

#[path = "net_common/mod.rs"]
mod common;

use common::{rasp, read_start, start_node, tempdir, Proc};
use std::time::{Duration, Instant};

const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A TCP port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the child's stderr contains every needle, up to `timeout`.
fn wait_stderr(p: &Proc, needles: &[&str], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let err = p.stderr_text();
        if needles.iter().all(|n| err.contains(n)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_busy_port_is_refused_with_address_in_use() {
    let port = free_port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let (d1, d2) = (tempdir("busy1"), tempdir("busy2"));
    let node_on = |dir: &std::path::Path| {
        let mut cmd = rasp();
        cmd.arg("node")
            .args(["--listen", &listen])
            .arg("--data-dir")
            .arg(dir);
        Proc::spawn(cmd)
    };
    let first = read_start(node_on(&d1));
    assert!(
        first.addr.contains(&format!("/tcp/{port}/")),
        "{}",
        first.addr
    );
    let mut second = node_on(&d2);
    let status = second
        .wait_exit(EXIT_TIMEOUT)
        .expect("the second node stops at once");
    let err = second.stderr_text();
    assert!(!status.success(), "a second node on {listen} started");
    assert!(err.contains("address in use"), "stderr:\n{err}");
    assert!(
        err.contains(&listen),
        "the message names the address:\n{err}"
    );
}

#[test]
fn a_listen_error_carries_its_os_cause() {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this host.
    let dir = tempdir("notmine");
    let mut cmd = rasp();
    cmd.arg("node")
        .args(["--listen", "/ip4/192.0.2.1/tcp/7000"])
        .arg("--data-dir")
        .arg(&dir);
    let mut p = Proc::spawn(cmd);
    let status = p.wait_exit(EXIT_TIMEOUT).expect("the node stops at once");
    let err = p.stderr_text();
    assert!(!status.success());
    let line = err
        .lines()
        .find(|l| l.contains("cannot listen on /ip4/192.0.2.1/tcp/7000"))
        .unwrap_or_else(|| panic!("no listen error in stderr:\n{err}"));
    let cause = line
        .split("cannot listen on /ip4/192.0.2.1/tcp/7000:")
        .nth(1)
        .unwrap_or("");
    assert!(
        cause.contains("assign requested address"),
        "the OS cause is printed: {line:?}"
    );
}

#[test]
fn a_dead_join_address_is_reported_and_the_node_says_it_is_alone() {
    // A valid peer id that nobody runs: the key of a node that is started and stopped.
    let d0 = tempdir("ghost");
    let ghost = start_node(&d0, &[]);
    let peer = ghost.peer_id.clone();
    drop(ghost);
    let dead = format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", free_port());
    let dir = tempdir("alone");
    let n = start_node(&dir, &["--join", &dead]);
    assert!(
        wait_stderr(
            &n.proc,
            &[
                "cannot join",
                &dead,
                "Connection refused",
                "this node is alone"
            ],
            Duration::from_secs(25)
        ),
        "stderr:\n{}",
        n.proc.stderr_text()
    );
    let err = n.proc.stderr_text();
    let warns = err.lines().filter(|l| l.contains("cannot join")).count();
    assert!(
        warns <= 4,
        "join failures are not logged at every retry ({warns} lines):\n{err}"
    );
}

#[test]
fn a_cluster_key_mismatch_says_so() {
    let (d1, d2) = (tempdir("key1"), tempdir("key2"));
    let (k1, k2) = (d1.join("a.psk"), d2.join("b.psk"));
    for k in [&k1, &k2] {
        let out = rasp().arg("gen-psk").output().unwrap();
        assert!(out.status.success());
        std::fs::write(k, out.stdout).unwrap();
    }
    let a = start_node(&d1, &["--psk-file", k1.to_str().unwrap()]);
    let b = start_node(
        &d2,
        &["--psk-file", k2.to_str().unwrap(), "--join", &a.addr],
    );
    assert!(
        wait_stderr(
            &b.proc,
            &["cannot join", "another cluster key"],
            Duration::from_secs(20)
        ),
        "stderr:\n{}",
        b.proc.stderr_text()
    );
}

/// The local IPv4 addresses of the TCP sockets `pid` listens on (from `/proc`).
fn listening_ips(pid: u32) -> Vec<std::net::Ipv4Addr> {
    let mut inodes = Vec::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let l = link.to_string_lossy().to_string();
                if let Some(i) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.push(i.to_string());
                }
            }
        }
    }
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address is f[1] (hex IP:port, little-endian IP), st is f[3], inode f[9].
            if f.len() < 10 || f[3] != "0A" || !inodes.iter().any(|i| i == f[9]) {
                return None;
            }
            let ip = u32::from_str_radix(f[1].split(':').next()?, 16).ok()?;
            Some(std::net::Ipv4Addr::from(ip.swap_bytes()))
        })
        .collect()
}

#[test]
fn rasp_overlay_listens_on_loopback_by_default() {
    let d0 = tempdir("ovl");
    let ghost = start_node(&d0, &[]);
    let dead = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", free_port(), ghost.peer_id);
    drop(ghost);
    let mut cmd = rasp();
    cmd.args(["overlay", "--peer", &dead, "--timeout-ms", "4000"]);
    let mut p = Proc::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut ips = Vec::new();
    while ips.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        ips = listening_ips(p.child.id());
    }
    assert!(!ips.is_empty(), "rasp overlay listens somewhere");
    assert!(
        ips.iter().all(|ip| ip.is_loopback()),
        "rasp overlay listens on {ips:?}"
    );
    let status = p.wait_exit(EXIT_TIMEOUT).expect("rasp overlay gives up");
    assert!(!status.success(), "nobody answered");
}

#[test]
fn ad_counter_processes_reports_a_time_out_as_such() {
    // A threshold no run reaches in 4 s: the launcher gives up.
    let out = rasp()
        .args([
            "ad-counter",
            "--processes",
            "3",
            "--servers",
            "1",
            "--threshold",
            "1000000",
            "--impression-interval-ms",
            "50",
            "--timeout-s",
            "4",
            "--no-output",
            "--json",
        ])
        .env_remove("RASP_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("timed out after"), "{stderr}");
    assert!(!stderr.contains("invariants failed"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["summary"];
    assert_eq!(s["violations"], 0);
    assert!(s["timed_out_s"].as_f64().unwrap() >= 4.0, "{s}");
    let last = s["last_impression_s"].as_f64().unwrap();
    assert!(
        last > 0.5 && last <= s["run_s"].as_f64().unwrap(),
        "last impression at a real time: {s}"
    );
}

#[test]
fn ad_counter_help_gives_each_default_once() {
    let out = rasp().args(["ad-counter", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let para: String = help
        .split("--timeout-s")
        .nth(1)
        .and_then(|rest| rest.split("\n      --").next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(para.matches("default").count(), 1, "{para}");
}
