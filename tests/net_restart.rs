//! Real `rasp node` processes restarted from their data directories:
//!
//! - the first node of a cluster, `kill -9`ed and restarted with exactly its first command
//!   line (no `--join`, a new port), finds the others again through the contacts its
//!   membership atom remembered in the store;
//! - a damaged data directory stops the node with exit code 2 and a message naming the
//!   file: a store truncated to half its size, a zero-length store, an empty `node.key`, a
//!   missing store beside an existing key; `--reset-store` (also `RASP_RESET_STORE`, TOML
//!   `reset_store`) moves the bad file aside and starts with an empty store.

#[path = "net_common/mod.rs"]
mod common;

use common::{rasp, spawn_node, start_node, tempdir, Proc};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the restarted first node may take to be back in a healthy overlay: its join
/// through a remembered contact is one connection and a few round trips on loopback; the
/// bound leaves room for a loaded 2-core machine and for one HyParView promotion period
/// (5 s) should the first attempt go astray.
const REJOIN_BOUND: Duration = Duration::from_secs(20);

/// Runs `rasp node --data-dir <dir> <args>` with `env`; expects exit 2 and every needle on
/// stderr, and no panic. Returns stderr.
fn refuses(dir: &Path, args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let mut cmd = rasp();
    cmd.arg("node")
        .arg("--listen")
        .arg("/ip4/127.0.0.1/tcp/0")
        .arg("--data-dir")
        .arg(dir)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn(cmd);
    let status = p.wait_exit(EXIT_TIMEOUT);
    let err = p.stderr_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "expected exit 2 (still running = None); stderr:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in stderr:\n{err}");
    }
    assert!(!err.contains("panicked"), "a panic:\n{err}");
    err
}

/// Starts a node in `dir` once (so it has a key and a store) and stops it with SIGTERM.
fn run_once(dir: &Path) -> String {
    let mut n = start_node(dir, &[]);
    assert_eq!(n.boots, 1);
    n.proc.signal("TERM");
    let s = n.proc.wait_exit(EXIT_TIMEOUT).expect("exits on SIGTERM");
    assert_eq!(s.code(), Some(0), "{}", n.proc.stderr_text());
    n.peer_id
}

fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// `truncate -s 50% store.redb` made `rasp node` panic in redb (exit 101).
#[test]
fn truncated_store_exits_two_naming_the_file() {
    let dir = tempdir("truncated");
    let peer = run_once(&dir);
    let store = dir.join("store.redb");
    let len = std::fs::metadata(&store).unwrap().len();
    set_len(&store, len / 2);
    let store_name = store.display().to_string();
    refuses(
        &dir,
        &[],
        &[],
        &[&store_name, "is damaged", "--reset-store"],
    );
    assert_eq!(
        std::fs::metadata(&store).unwrap().len(),
        len / 2,
        "untouched"
    );

    // --reset-store: the bad file is kept aside, the node starts with an empty store and
    // its old identity.
    let n = start_node(&dir, &["--reset-store"]);
    assert_eq!((n.boots, n.peer_id.as_str()), (1, peer.as_str()));
    let aside = dir.join("store.redb.lost-1");
    assert_eq!(std::fs::metadata(&aside).unwrap().len(), len / 2);
    drop(n);
    // The fresh store is healthy: a plain restart counts on from it.
    assert_eq!(start_node(&dir, &[]).boots, 2);
}

/// A zero-length store started as a fresh one: durable state lost without a word.
#[test]
fn empty_store_is_refused_then_reset_by_the_environment() {
    let dir = tempdir("emptystore");
    let peer = run_once(&dir);
    let store = dir.join("store.redb");
    set_len(&store, 0);
    let store_name = store.display().to_string();
    refuses(&dir, &[], &[], &[&store_name, "is empty", "node.key"]);
    let n = start_node_env(&dir, &[("RASP_RESET_STORE", "1")]);
    assert_eq!((n.boots, n.peer_id.as_str()), (1, peer.as_str()));
    assert!(dir.join("store.redb.lost-1").exists());
}

/// A store deleted beside an existing key started as a fresh one.
#[test]
fn missing_store_with_a_key_is_refused_then_reset_by_the_config_file() {
    let dir = tempdir("nostore");
    let peer = run_once(&dir);
    std::fs::remove_file(dir.join("store.redb")).unwrap();
    let store_name = dir.join("store.redb").display().to_string();
    refuses(
        &dir,
        &[],
        &[],
        &[&store_name, "does not exist", "has run before"],
    );
    let toml = dir.join("rasp.toml");
    std::fs::write(&toml, "reset_store = true\n").unwrap();
    let n = start_node(&dir, &["--config", toml.to_str().unwrap()]);
    assert_eq!((n.boots, n.peer_id.as_str()), (1, peer.as_str()));
}

/// An empty `node.key` said "cargo feature `rsa` is not enabled" and exited 1.
#[test]
fn empty_or_garbage_key_exits_two_naming_the_file() {
    let dir = tempdir("emptykey");
    run_once(&dir);
    let key = dir.join("node.key");
    let key_name = key.display().to_string();
    std::fs::write(&key, b"").unwrap();
    let err = refuses(&dir, &[], &[], &[&key_name, "is empty"]);
    assert!(!err.contains("rsa"), "{err}");
    std::fs::write(&key, b"not a key at all").unwrap();
    let err = refuses(&dir, &["--reset-store"], &[], &[&key_name, "damaged"]);
    assert!(!err.contains("rsa"), "{err}");
}

/// Starts a node in `dir` with extra environment variables.
fn start_node_env(dir: &Path, env: &[(&str, &str)]) -> common::NodeProc {
    let mut cmd = rasp();
    cmd.arg("node")
        .arg("--listen")
        .arg("/ip4/127.0.0.1/tcp/0")
        .arg("--data-dir")
        .arg(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::read_start(Proc::spawn(cmd))
}

/// Runs `rasp overlay` on `addrs`; its JSON document.
fn overlay(addrs: &[&str]) -> Value {
    let out = rasp()
        .env("RUST_LOG", "warn")
        .arg("overlay")
        .arg("--timeout-ms")
        .arg("2000")
        .arg("--peer")
        .arg(addrs.join(","))
        .output()
        .expect("run rasp overlay");
    assert!(
        out.status.success(),
        "rasp overlay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("overlay JSON")
}

fn neighbours_of(doc: &Value, node: u64) -> Vec<u64> {
    doc["nodes"][node.to_string()]["neighbours"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Every one of `n` nodes answered, the overlay is connected, nobody is isolated.
fn healthy(doc: &Value, n: usize) -> Result<(), String> {
    let answered = doc["answered"].as_u64().unwrap_or(0) as usize;
    if answered != n {
        return Err(format!("{answered}/{n} answered"));
    }
    let r = &doc["report"];
    if r["connected"] != Value::Bool(true) {
        return Err(format!("not connected: components {}", r["components"]));
    }
    if r["isolated"].as_array().is_none_or(|a| !a.is_empty()) {
        return Err(format!("isolated: {}", r["isolated"]));
    }
    Ok(())
}

/// Polls the overlay of `addrs` until `check` passes; the time it took. Panics after `bound`.
fn settle(
    what: &str,
    addrs: &[&str],
    bound: Duration,
    mut check: impl FnMut(&Value) -> Result<(), String>,
) -> Duration {
    let t0 = Instant::now();
    loop {
        let doc = overlay(addrs);
        match check(&doc) {
            Ok(()) => return t0.elapsed(),
            Err(e) if t0.elapsed() > bound => {
                panic!("{what}: not settled after {:?}: {e}\n{doc}", t0.elapsed())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// §3 of the reliability issue: the seed, restarted exactly as first started (no `--join`,
/// `--listen .../tcp/0` so a new port), stayed isolated forever.
#[test]
fn restarted_first_node_finds_its_cluster_again() {
    const NODES: usize = 4;
    let base = tempdir("seedrestart");
    let dir0 = base.join("n0");
    let seed = start_node(&dir0, &[]);
    let mut nodes = vec![seed];
    for i in 1..NODES {
        let join = nodes[0].addr.clone();
        nodes.push(start_node(&base.join(format!("n{i}")), &["--join", &join]));
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let all: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let formed = settle("formation", &all, Duration::from_secs(40), |d| {
        healthy(d, NODES)
    });

    let seed_id = nodes[0].node_id;
    let mut dead = nodes.remove(0);
    dead.proc.signal("KILL");
    dead.proc.wait_exit(EXIT_TIMEOUT).expect("killed");
    let survivors: Vec<&str> = all[1..].to_vec();
    settle(
        "survivors drop the killed seed",
        &survivors,
        Duration::from_secs(40),
        |d| match (1..NODES).find(|i| neighbours_of(d, nodes[i - 1].node_id).contains(&seed_id)) {
            Some(i) => Err(format!("node {i} still lists the seed")),
            None => healthy(d, NODES - 1),
        },
    );

    // Exactly its first command line.
    let restarted_at = Instant::now();
    let again = common::read_start(spawn_node(&dir0, &[]));
    let started = restarted_at.elapsed();
    assert_eq!(again.node_id, seed_id, "same identity");
    assert_eq!(again.boots, 2);
    let mut now: Vec<&str> = vec![again.addr.as_str()];
    now.extend(survivors.iter().copied());
    let back = settle("restarted seed rejoins", &now, REJOIN_BOUND, |d| {
        healthy(d, NODES)?;
        if neighbours_of(d, seed_id).is_empty() {
            return Err("the restarted seed has no neighbour".into());
        }
        Ok(())
    });
    eprintln!(
        "{NODES} processes: overlay formed in {formed:?}; seed restarted (kill -9, same command \
         line, new port: {} → {}) in {started:?}, back in a healthy overlay {back:?} later \
         (bound {REJOIN_BOUND:?})",
        addrs[0], again.addr
    );
}
