//! WebAssembly atoms on real processes: a guest written by hand in the WebAssembly text
//! format (`runtime/wasm/tests/guests/pp_echo.wat`, the ponger) on one `rasp node`, the Rust
//! ping-pong guest (`rasp-guest-pingpong`, the pinger) on another, over real libp2p
//! connections; each node's `/metrics` shows its guest's counters. A module the host
//! refuses stops `rasp node` at start with the reason.

#[path = "net_common/mod.rs"]
mod common;

use common::{rasp, start_node, tempdir, NodeProc, START_TIMEOUT};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/wasm/tests/guests")
}

fn http_of(n: &mut NodeProc) -> String {
    let a = n
        .proc
        .wait_line("http=", START_TIMEOUT)
        .unwrap_or_else(|| panic!("no http= line; stderr:\n{}", n.proc.stderr_text()));
    format!("http://{a}")
}

/// `rasp_events_total{name}` of a node (0 if absent).
fn events(h: &str, name: &str) -> f64 {
    let text = reqwest::blocking::get(format!("{h}/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "rasp_events_total")
        .filter(|s| s.labels.get("name") == Some(name))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn a_wat_ponger_answers_a_rust_pinger_across_processes() {
    use rasp_wasm::build::{build_guest, target_installed, TARGET};
    let base = tempdir("wasm-pp");
    let wat = guests_dir().join("pp_echo.wat");
    let mut a = start_node(&base.join("a"), &["--atom", wat.to_str().unwrap()]);
    let ha = http_of(&mut a);
    if !target_installed() {
        eprintln!("the {TARGET} target is not installed: only the wat guest runs");
        return;
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pinger = build_guest(ws, "rasp-guest-pingpong", &ws.join("target/guest"))
        .unwrap_or_else(|e| panic!("{e}"));
    let arg = format!(
        r#"{{"pinger": true, "peer": {}, "count": 200, "window": 4}}"#,
        a.node_id
    );
    let mut b = start_node(
        &base.join("b"),
        &[
            "--join",
            &a.addr,
            "--atom",
            pinger.to_str().unwrap(),
            "--atom-arg-json",
            &arg,
        ],
    );
    let hb = http_of(&mut b);
    let t = Instant::now();
    while events(&hb, "pp_done") < 1.0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the pinger did not finish; b:\n{}\na:\n{}",
            b.proc.stderr_text(),
            a.proc.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("200 round trips between processes in {:?}", t.elapsed());
    assert!(
        events(&ha, "wat_echoes") >= 200.0,
        "the wat guest answered them"
    );
    assert_eq!(
        events(&ha, "wasm_atoms_stopped") + events(&hb, "wasm_atoms_stopped"),
        0.0
    );
}

#[test]
fn a_module_the_host_refuses_stops_the_node_at_start() {
    let dir = tempdir("wasm-bad");
    let bad = dir.join("bad.wat");
    std::fs::write(
        &bad,
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func)))"#,
    )
    .unwrap();
    let out = rasp()
        .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--data-dir"])
        .arg(dir.join("n"))
        .arg("--atom")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wasi_snapshot_preview1.fd_write"), "{err}");
    assert!(err.contains("does not provide"), "{err}");
}
