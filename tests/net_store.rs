//! A real node's store damaged while the node was down (README, "Bad input"): an ad counter
//! server writes its variables, is killed with SIGKILL, and its `store.redb` is damaged in
//! several ways (cut short, a page zeroed, overwritten with random bytes, replaced by a
//! file of another type, a directory in its place), or one variable's record is replaced by
//! bytes that do not decode. Every restart stops with exit code 2 and a message naming the
//! file (and the record) and `--reset-store`, never a panic and never an empty start; with
//! `--reset-store` the node starts, the bad file (or record) kept aside, not deleted.

#[path = "net_common/mod.rs"]
mod common;

use common::{rasp, read_start, tempdir, Proc};
use rasp_runtime::net::RedbStore;
use std::path::{Path, PathBuf};
use std::time::Duration;

const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

fn node_cmd(dir: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = rasp();
    cmd.args([
        "ad-counter",
        "node",
        "--index",
        "0",
        "--role",
        "server",
        "--no-http",
    ])
    .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--data-dir"])
    .arg(dir)
    .args(extra);
    cmd
}

/// Runs the ad counter's server 0 until its variables are in its store, then SIGKILLs it.
/// Returns the variable records written.
fn write_and_kill(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut n = read_start(Proc::spawn(node_cmd(dir, &[])));
    assert_eq!(n.boots, 1);
    // The seeding and the first persist happen within a sync interval (1 s).
    std::thread::sleep(Duration::from_millis(2500));
    n.proc.signal("KILL");
    n.proc.wait_exit(EXIT_TIMEOUT).expect("killed");
    let store = RedbStore::open(dir).expect("a healthy store after kill -9");
    let vars = store.scan_prefix(b"df/var/").unwrap();
    assert!(vars.len() >= 3, "the node wrote its variables: {vars:?}");
    vars
}

/// Restarts the node in `dir`: exit code 2, every needle on stderr, no panic. Stderr.
fn refuses(dir: &Path, needles: &[&str]) -> String {
    let mut p = Proc::spawn(node_cmd(dir, &[]));
    let status = p.wait_exit(EXIT_TIMEOUT);
    let err = p.stderr_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "expected exit 2 (None: still running); stderr:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in stderr:\n{err}");
    }
    assert!(!err.contains("panicked"), "a panic:\n{err}");
    err
}

/// Copies a data directory (node key and store).
fn copy_dir(from: &Path, name: &str) -> PathBuf {
    let to = tempdir(name);
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    to
}

/// A deterministic stream of bytes (xorshift), for "random" damage that replays.
fn noise(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A way to damage a store file.
type Damage = Box<dyn Fn(&Path)>;

#[test]
fn a_damaged_store_file_stops_the_node_until_reset() {
    let base = tempdir("store-damage");
    write_and_kill(&base);
    let original = std::fs::read(base.join("store.redb")).unwrap();
    let len = original.len();
    let page = 4096;
    // The first page with data in it past the header, zeroed.
    let zero_at = (page..len - page)
        .step_by(page)
        .find(|&i| original[i..i + page].iter().any(|&b| b != 0))
        .expect("a data page");
    let damages: Vec<(&str, Damage)> = vec![
        (
            "truncated",
            Box::new(move |p: &Path| {
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.set_len(len as u64 / 3).unwrap();
            }),
        ),
        (
            "zeroed-page",
            Box::new(move |p: &Path| {
                let mut b = std::fs::read(p).unwrap();
                b[zero_at..zero_at + page].fill(0);
                std::fs::write(p, b).unwrap();
            }),
        ),
        (
            "header-zeroed",
            Box::new(move |p: &Path| {
                let mut b = std::fs::read(p).unwrap();
                b[..page].fill(0);
                std::fs::write(p, b).unwrap();
            }),
        ),
        (
            "random-bytes",
            Box::new(move |p: &Path| std::fs::write(p, noise(len, 0x9e37_79b9_7f4a_7c15)).unwrap()),
        ),
        (
            "wrong-type",
            Box::new(|p: &Path| {
                let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
                png.extend(noise(3000, 7));
                std::fs::write(p, png).unwrap();
            }),
        ),
    ];
    for (name, damage) in &damages {
        let dir = copy_dir(&base, name);
        let store = dir.join("store.redb");
        damage(&store);
        let damaged = std::fs::read(&store).unwrap();
        let err = refuses(&dir, &[&store.display().to_string(), "--reset-store"]);
        assert!(
            std::fs::read(&store).unwrap() == damaged,
            "{name}: the refused file was changed"
        );
        // With the flag: the file is kept aside, byte for byte, and the node starts.
        let mut n = read_start(Proc::spawn(node_cmd(&dir, &["--reset-store"])));
        let aside = dir.join("store.redb.lost-1");
        assert_eq!(
            std::fs::read(&aside).ok().as_deref(),
            Some(&damaged[..]),
            "{name}: kept aside; first refusal said:\n{err}"
        );
        n.proc.signal("TERM");
        n.proc.wait_exit(EXIT_TIMEOUT).expect("stops on SIGTERM");
        assert!(
            n.proc.stderr_text().contains("moved it aside"),
            "{name}: {}",
            n.proc.stderr_text()
        );
        assert!(!n.proc.stderr_text().contains("panicked"));
    }
    // A directory where the file should be: the node cannot use it and says so.
    let dir = copy_dir(&base, "directory");
    std::fs::remove_file(dir.join("store.redb")).unwrap();
    std::fs::create_dir(dir.join("store.redb")).unwrap();
    refuses(&dir, &[&dir.join("store.redb").display().to_string()]);
}

/// One variable's record replaced by bytes that do not decode: the node refuses to start,
/// naming the record; with `--reset-store` it moves the record to `df/lost/<id>` and starts.
#[test]
fn an_unreadable_variable_record_stops_the_node_until_reset() {
    let dir = tempdir("record-damage");
    let vars = write_and_kill(&dir);
    let (key, _) = vars
        .iter()
        .find(|(k, _)| !k.starts_with(b"df/var/__"))
        .expect("a program variable")
        .clone();
    let key_name = String::from_utf8(key.clone()).unwrap();
    let id = key_name.trim_start_matches("df/var/").to_string();
    let bad = [0xa3, b'b', b'a', b'd'];
    RedbStore::open(&dir).unwrap().put(&key, &bad).unwrap();
    let store = dir.join("store.redb");
    refuses(
        &dir,
        &[
            &store.display().to_string(),
            &key_name,
            "--reset-store",
            "do not decode",
        ],
    );
    let s = RedbStore::open(&dir).unwrap();
    assert_eq!(
        s.get(&key).unwrap().as_deref(),
        Some(&bad[..]),
        "left untouched"
    );
    drop(s);

    let mut n = read_start(Proc::spawn(node_cmd(&dir, &["--reset-store"])));
    assert_eq!(
        n.boots, 3,
        "the store itself was kept: the boot counter counts on"
    );
    std::thread::sleep(Duration::from_millis(1500));
    n.proc.signal("TERM");
    n.proc.wait_exit(EXIT_TIMEOUT).expect("stops on SIGTERM");
    let err = n.proc.stderr_text();
    assert!(
        err.contains("moved it aside") && err.contains(&key_name),
        "{err}"
    );
    let s = RedbStore::open(&dir).unwrap();
    let lost = format!("df/lost/{id}");
    assert_eq!(s.get(lost.as_bytes()).unwrap().as_deref(), Some(&bad[..]));
    // The variable is written afresh (the server re-seeds or keeps it as its program does).
    assert!(
        !dir.join("store.redb.lost-1").exists(),
        "the file was not set aside"
    );
}
