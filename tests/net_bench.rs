//! Keeps `rasp bench-net` from rotting: a short run between two real processes must deliver
//! every message (the window keeps the per-peer queue from dropping any) and report a rate.
//! The measured figures come from the full command, in release:
//! `cargo run --release -- bench-net --count 1000000 --size 16,1024`.

#[path = "net_common/mod.rs"]
mod common;

use common::rasp;

#[test]
fn bench_net_short_run_delivers_everything() {
    let out = rasp()
        .args(["bench-net", "--count", "5000", "--size", "16,1024"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr:\n{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (l, size) in lines.iter().zip([16, 1024]) {
        assert_eq!(l["size"], size);
        assert_eq!(l["messages"], 5000 - 5000 % 128);
        assert_eq!(l["dropped"], 0);
        assert!(l["msgs_per_sec"].as_f64().unwrap() > 0.0);
    }
}
