//! Membership on the network: 20 real `rasp node` processes on loopback, their views gathered
//! with `rasp overlay` (the `GetView` debug request) and checked with
//! `rasp_membership::overlay`.
//!
//! - HyParView: the overlay forms connected, with no isolated node and no asymmetric link;
//!   after `kill -9` of one node its neighbours drop it and the survivors' overlay is
//!   connected and symmetric again.
//! - Full and client-server (3 servers): the same 20 nodes, the same arguments, only the
//!   `--membership` flag changed; every node has exactly the expected neighbours.
//!
//! The tests of this file run one at a time (20 processes each). Each prints its timings.

#[path = "net_common/mod.rs"]
mod common;

use common::{rasp, start_node, start_nodes, tempdir, NodeProc};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const NODES: usize = 20;
const SERVERS: usize = 3;
/// How long an overlay may take to settle (HyParView repairs within a promotion period, 5 s).
const SETTLE: Duration = Duration::from_secs(40);

static SERIAL: Mutex<()> = Mutex::new(());

/// The arguments of node `i` in `mode`: identical in every mode except the flag (the role is
/// ignored outside client-server).
fn args(mode: &str, i: usize) -> Vec<String> {
    let role = if i < SERVERS { "server" } else { "client" };
    vec![
        "--membership".into(),
        mode.into(),
        "--role".into(),
        role.into(),
    ]
}

/// Node 0 first, then the other 19 in parallel, all joining node 0.
fn start_cluster(mode: &str, name: &str) -> Vec<NodeProc> {
    let base = tempdir(name);
    let a0 = args(mode, 0);
    let a0: Vec<&str> = a0.iter().map(String::as_str).collect();
    let seed = start_node(&base.join("n0"), &a0);
    let specs: Vec<_> = (1..NODES)
        .map(|i| {
            let mut a = args(mode, i);
            a.extend(["--join".to_string(), seed.addr.clone()]);
            (base.join(format!("n{i}")), a)
        })
        .collect();
    let mut nodes = vec![seed];
    nodes.extend(start_nodes(&specs));
    nodes
}

/// Runs `rasp overlay` on `addrs`; its JSON document.
fn overlay(addrs: &[&str]) -> Value {
    let out = rasp()
        .env("RUST_LOG", "warn")
        .arg("overlay")
        .arg("--timeout-ms")
        .arg("3000")
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

/// Each answering node's neighbours, by node id.
fn neighbours(doc: &Value) -> Vec<(u64, BTreeSet<u64>)> {
    doc["nodes"]
        .as_object()
        .expect("nodes")
        .iter()
        .map(|(k, v)| {
            let n: BTreeSet<u64> = v["neighbours"]
                .as_array()
                .expect("neighbours")
                .iter()
                .map(|x| x.as_u64().expect("id"))
                .collect();
            (k.parse().expect("id"), n)
        })
        .collect()
}

/// Polls `check` on fresh overlay documents until it passes; the passing document. Panics
/// with the last failure after [`SETTLE`].
fn settle(
    what: &str,
    addrs: &[&str],
    mut check: impl FnMut(&Value) -> Result<(), String>,
) -> (Value, Duration) {
    let t0 = Instant::now();
    loop {
        let doc = overlay(addrs);
        match check(&doc) {
            Ok(()) => return (doc, t0.elapsed()),
            Err(e) if t0.elapsed() > SETTLE => {
                panic!("{what}: not settled after {:?}: {e}\n{doc}", t0.elapsed())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// The common checks: every peer answered in `mode`, connected, no isolated node, no
/// asymmetric link.
fn healthy(doc: &Value, asked: usize, mode: &str) -> Result<(), String> {
    let r = &doc["report"];
    let answered = doc["answered"].as_u64().unwrap_or(0) as usize;
    if answered != asked {
        return Err(format!("{answered}/{asked} answered"));
    }
    if let Some((n, v)) = doc["nodes"]
        .as_object()
        .expect("nodes")
        .iter()
        .find(|(_, v)| v["mode"] != mode)
    {
        return Err(format!("node {n} runs {}", v["mode"]));
    }
    if r["connected"] != Value::Bool(true) {
        return Err(format!("not connected: components {}", r["components"]));
    }
    if r["isolated"].as_array().is_none_or(|a| !a.is_empty()) {
        return Err(format!("isolated: {}", r["isolated"]));
    }
    if r["asymmetric"].as_array().is_none_or(|a| !a.is_empty()) {
        return Err(format!("asymmetric: {}", r["asymmetric"]));
    }
    Ok(())
}

#[test]
fn hyparview_overlay_forms_and_repairs_after_kill_9() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let mut nodes = start_cluster("hyparview", "hyparview");
    let started = t0.elapsed();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let all: Vec<&str> = addrs.iter().map(String::as_str).collect();

    // (a) Formation.
    let active_size = rasp_membership::hyparview::Config::default().active_size;
    let (doc, formed) = settle("formation", &all, |d| {
        healthy(d, NODES, "hyparview")?;
        match neighbours(d).iter().find(|(_, v)| v.len() > active_size) {
            Some((n, v)) => Err(format!("node {n} has {} neighbours", v.len())),
            None => Ok(()),
        }
    });

    // (b) kill -9 the node with the most neighbours.
    let views = neighbours(&doc);
    let (victim_id, victim_view) = views
        .iter()
        .max_by_key(|(_, v)| v.len())
        .cloned()
        .expect("views");
    let victim = nodes
        .iter()
        .position(|n| n.node_id == victim_id)
        .expect("victim is one of ours");
    let mut dead = nodes.remove(victim);
    dead.proc.signal("KILL");
    dead.proc.wait_exit(Duration::from_secs(5)).expect("killed");
    let killed_at = Instant::now();
    let survivors: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let (doc, repaired) = settle("repair after kill -9", &survivors, |d| {
        if let Some((n, _)) = neighbours(d).iter().find(|(_, v)| v.contains(&victim_id)) {
            return Err(format!("node {n} still lists the killed node"));
        }
        healthy(d, NODES - 1, "hyparview")
    });
    // The killed node's former neighbours are still in the overlay and have neighbours.
    let after = neighbours(&doc);
    for n in &victim_view {
        let v = after
            .iter()
            .find(|(m, _)| m == n)
            .expect("survivor answered");
        assert!(!v.1.is_empty(), "former neighbour {n} is isolated");
    }
    eprintln!(
        "hyparview, {NODES} processes: started in {started:?}, overlay healthy after {formed:?} \
         more; killed node {victim_id} ({} neighbours), survivors repaired in {:?} (first \
         healthy check {repaired:?}); degrees {}; total {:?}",
        victim_view.len(),
        killed_at.elapsed(),
        doc["report"]["degree_histogram"],
        t0.elapsed()
    );
}

/// Starts the 20 nodes in `mode`; waits until every node lists exactly `expected(i)`.
fn static_mode(mode: &str, expected: impl Fn(usize, &[u64]) -> BTreeSet<u64>) {
    let t0 = Instant::now();
    let nodes = start_cluster(mode, mode);
    let started = t0.elapsed();
    let ids: Vec<u64> = nodes.iter().map(|n| n.node_id).collect();
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let (doc, settled) = settle(mode, &addrs, |d| {
        healthy(d, NODES, mode)?;
        let views = neighbours(d);
        for (i, id) in ids.iter().enumerate() {
            let want = expected(i, &ids);
            let got = &views.iter().find(|(n, _)| n == id).expect("answered").1;
            if *got != want {
                return Err(format!(
                    "node {i} lists {} neighbours, expected {}",
                    got.len(),
                    want.len()
                ));
            }
        }
        Ok(())
    });
    eprintln!(
        "{mode}, {NODES} processes: started in {started:?}, views as expected after {settled:?} \
         more; degrees {}; total {:?}",
        doc["report"]["degree_histogram"],
        t0.elapsed()
    );
}

#[test]
fn full_membership_every_node_sees_all_others() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static_mode("full", |i, ids| {
        ids.iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, &n)| n)
            .collect()
    });
}

#[test]
fn client_server_clients_see_the_servers_and_servers_see_all() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static_mode("client-server", |i, ids| {
        ids.iter()
            .enumerate()
            .filter(|&(j, _)| j != i && (i < SERVERS || j < SERVERS))
            .map(|(_, &n)| n)
            .collect()
    });
}

/// A bad-settings case: arguments, environment variables, the expected message.
type BadCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Bad membership settings stop `rasp node` with exit code 2 and a message naming them.
#[test]
fn bad_membership_settings_exit_two() {
    let dir = tempdir("badmembership");
    let toml = dir.join("rasp.toml");
    std::fs::write(&toml, "membership = \"ring\"\n").unwrap();
    let cases: [BadCase; 4] = [
        (
            &["--membership", "ring"],
            &[],
            "invalid value 'ring' for '--membership",
        ),
        (
            &[],
            &[("RASP_ROLE", "boss")],
            "invalid value 'boss' for '--role",
        ),
        (
            &["--config", toml.to_str().unwrap()],
            &[],
            "unknown membership mode \"ring\"",
        ),
        (
            &["--join", "/ip4/127.0.0.1/tcp/1"],
            &[],
            "no /p2p/<peer id> suffix",
        ),
    ];
    for (flags, env, want) in cases {
        let out = rasp()
            .arg("node")
            .arg("--data-dir")
            .arg(dir.join("d"))
            .args(flags)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?} {env:?}: {err}");
        assert!(
            err.contains(want),
            "{flags:?} {env:?}: expected {want:?} in:\n{err}"
        );
    }
}
