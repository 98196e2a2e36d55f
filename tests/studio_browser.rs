//! rasp studio in a real browser: Debian's Chromium (headless) driven through ChromeDriver
//! with `fantoccini` (the W3C WebDriver protocol), against real studio processes
//! (`rasp ad-counter studio`, `rasp studio --attach`) and, for a zoo app the `rasp` binary
//! does not hold, the studio's own `--trace` road in this process.
//!
//! The page's stable element ids are listed at the top of `src/studio/assets/studio.js` and
//! in `src/studio/assets/live.html`; the JSON API in `src/studio/server.rs`. Screenshots of
//! every key step go to `target/studio-artifacts/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them): without them the tests fail, naming the
//! packages. They run in the default test run; alone: `cargo test --release --test studio_browser`.

#[path = "net_common/mod.rs"]
mod common;
#[path = "zoo/lww.rs"]
mod lww;

use common::{rasp, start_node, tempdir, NodeProc, Proc, START_TIMEOUT};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any one wait for the page may take.
const WAIT: Duration = Duration::from_secs(20);

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// A child in its own process group, killed with the whole group on drop (ChromeDriver
/// starts Chromium, which starts its renderers: all go, also when a test panics).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // `--` ends the options: procps' kill reads `-KILL -13` (a small group id, as in
        // a fresh PID namespace) as two signal options and then signals pid -1, that is
        // every process the caller may signal.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", self.0.id()))
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium session and its ChromeDriver.
struct Browser {
    c: Client,
    /// Where the page's downloads land.
    downloads: PathBuf,
    _driver: Group,
}

/// Starts ChromeDriver on a free port and a headless Chromium session in it.
async fn browser() -> Browser {
    for (bin, pkg) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: these tests need Debian's `chromium` and `chromium-driver` \
             packages (apt-get install -y chromium chromium-driver; `{pkg}` holds {bin})"
        );
    }
    let port = free_port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start chromedriver");
    let driver = Group(driver);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < WAIT,
            "chromedriver did not listen on 127.0.0.1:{port} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let downloads = tempdir("browser-downloads");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--window-size=1600,1000", "--disable-dev-shm-usage"],
            "prefs": {
                "download.default_directory": downloads.to_str().expect("a UTF-8 temp path"),
                "download.prompt_for_download": false,
            },
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session through chromedriver");
    Browser {
        c,
        downloads,
        _driver: driver,
    }
}

/// The tests take turns: each drives its own Chromium and simulations, and two at once on a
/// 2-core machine would only slow both past their waits. A test that failed (a poisoned
/// lock) does not stop the next one.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs an async test body on a fresh runtime.
fn run<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn artifacts() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("studio-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Saves a screenshot as `target/studio-artifacts/<name>.png`.
async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let p = artifacts().join(format!("{name}.png"));
    std::fs::write(&p, png).unwrap();
    eprintln!("screenshot: {}", p.display());
}

/// Runs `script` (a function body with `return`) in the page.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// Polls `script` until `ok` holds for its value, up to [`WAIT`]; fails saying what was
/// expected, the last value and the page's status line.
async fn wait_js(c: &Client, what: &str, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = js(c, script).await;
        if ok(&v) {
            return v;
        }
        if start.elapsed() > WAIT {
            let status = js(
                c,
                "const s = document.getElementById('status') || document.getElementById('live-status'); \
                 return s ? s.textContent : null;",
            )
            .await;
            panic!("expected {what} within {WAIT:?}; the page showed {v} (status line: {status})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The studio's `window.studio` fields.
const STUDIO: &str = "const s = window.studio; return s ? {exec: s.exec, cursor: s.cursor, \
    total: s.total, rendered: s.rendered, lastRenderMs: s.lastRenderMs, \
    lastScrubMs: s.lastScrubMs} : null;";

fn text_of(id: &str) -> String {
    format!("const e = document.getElementById('{id}'); return e ? e.innerText : null;")
}

/// Opens the studio page and waits for the first diagram frame; `window.studio` then.
async fn open(c: &Client, url: &str) -> Value {
    c.goto(url).await.expect("open the studio");
    wait_js(
        c,
        "the diagram drawn (window.studio.rendered > 0)",
        STUDIO,
        |v| {
            v["rendered"].as_u64().is_some_and(|r| r > 0)
                && v["total"].as_u64().is_some_and(|t| t > 0)
        },
    )
    .await
}

/// Moves the cursor as a user dragging the slider does (value, then an `input` event) and
/// waits until the cursor and the variables panel are at `k`.
async fn scrub(c: &Client, k: u64) {
    js(
        c,
        &format!(
            "const s = document.getElementById('scrub'); s.value = '{k}'; \
             s.dispatchEvent(new Event('input', {{bubbles: true}})); return true;"
        ),
    )
    .await;
    wait_at(c, k).await;
}

/// Waits until the cursor is at `k` and the variables panel shows the state after `k`.
async fn wait_at(c: &Client, k: u64) {
    wait_js(
        c,
        &format!("the cursor and the variables panel at event {k}"),
        "return {cursor: window.studio.cursor, at: document.getElementById('vars-at').textContent};",
        |v| v["cursor"] == k && v["at"].as_str().is_some_and(|a| a.starts_with(&format!("(event {k},"))),
    )
    .await;
}

/// Sets a `<select>` or `<input>` and fires `change` and `input`.
async fn set(c: &Client, id: &str, value: &str) {
    let ok = js(
        c,
        &format!(
            "const e = document.getElementById('{id}'); if (!e) return false; e.value = {v}; \
             e.dispatchEvent(new Event('input', {{bubbles: true}})); \
             e.dispatchEvent(new Event('change', {{bubbles: true}})); return e.value === {v};",
            v = json!(value)
        ),
    )
    .await;
    assert_eq!(ok, true, "#{id} does not take the value {value:?}");
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id} not on the page: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click #{id}: {e}"));
}

/// The studio's JSON API.
async fn get(base: &str, path: &str) -> Value {
    let r = reqwest::get(format!("{base}{path}"))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

/// A studio process: `rasp <args>`, its URL from the `studio=` line.
fn studio(args: &[&str]) -> (Proc, String) {
    let mut cmd = rasp();
    cmd.args(args);
    studio_of(cmd, args)
}

/// The to-do example's binary (`examples/todo`), which `cargo test` builds beside the tests.
fn todo_example() -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_rasp"))
        .parent()
        .expect("the target profile dir")
        .join("examples")
        .join("todo");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release --example todo`",
        bin.display()
    );
    Command::new(bin)
}

/// A studio process of `cmd` (with `args`, for messages); its URL from the `studio=` line.
fn studio_of(cmd: Command, args: &[&str]) -> (Proc, String) {
    let mut p = Proc::spawn(cmd);
    let url = p
        .wait_line("studio=", Duration::from_secs(60))
        .unwrap_or_else(|| {
            panic!(
                "no studio= line from rasp {args:?}; stderr:\n{}",
                p.stderr_text()
            )
        });
    if let Some(l) = p.seen.iter().find(|l| l.starts_with("execution:")) {
        eprintln!("{l}");
    }
    (p, url)
}

/// A small seeded ad-counter run: one server, three clients, a few ads.
const SMALL: &[&str] = &[
    "ad-counter",
    "studio",
    "--seed",
    "1",
    "--nodes",
    "4",
    "--servers",
    "1",
    "--membership",
    "client-server",
    "--horizon-s",
    "3",
    "--settle-s",
    "5",
    "--ads-per-vendor",
    "1",
    "--threshold",
    "20",
];

fn base_of(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

#[test]
fn step_scrub_and_step_back_a_seeded_ad_counter_run() {
    let _turn = one_at_a_time();
    let (_p, url) = studio(SMALL);
    run(async move {
        let b = browser().await;
        let c = &b.c;
        let s = open(c, &url).await;
        let total = s["total"].as_u64().unwrap();
        eprintln!("{total} events; first render at {} ms", s["lastRenderMs"]);
        assert!(total > 20, "{s}");
        shot(c, "1-opened").await;

        let info0 = js(c, &text_of("cursor-info")).await;
        let cur0 = s["cursor"].as_u64().unwrap();
        click(c, "step").await;
        let info1 = wait_js(
            c,
            "#cursor-info to change after a step",
            &text_of("cursor-info"),
            |v| *v != info0,
        )
        .await;
        wait_at(c, cur0 + 1).await;
        assert!(
            info1
                .as_str()
                .unwrap()
                .contains(&format!("event {}", cur0 + 1)),
            "{info1}"
        );

        // Two cursors, two different variable tables.
        let early = (total / 10).max(3);
        scrub(c, early).await;
        let vars_early = js(c, &text_of("vars")).await;
        let info_early = js(c, &text_of("cursor-info")).await;
        shot(c, "1-scrub-early").await;
        scrub(c, total).await;
        let vars_late = js(c, &text_of("vars")).await;
        let info_late = js(c, &text_of("cursor-info")).await;
        shot(c, "1-scrub-end").await;
        assert_ne!(info_early, info_late);
        assert_ne!(
            vars_early, vars_late,
            "the variables at event {early} and at the end ({total}) are the same"
        );

        click(c, "step-back").await;
        wait_at(c, total - 1).await;
        let info = js(c, &text_of("cursor-info")).await;
        assert!(
            info.as_str()
                .unwrap()
                .contains(&format!("event {} ", total - 1)),
            "{info}"
        );
    });
}

/// Waits for a new execution to be current in `#tree`; its id.
async fn wait_new_current(c: &Client, before: u64) -> u64 {
    let v = wait_js(
        c,
        "a new entry in #tree that is .current",
        "const all = document.querySelectorAll('#tree .exec'); \
         const cur = document.querySelector('#tree .exec.current'); \
         return {n: all.length, current: cur ? Number(cur.dataset.id) : null, exec: window.studio.exec};",
        |v| v["n"].as_u64() == Some(before + 1) && v["current"] == v["exec"] && v["current"] != 0,
    )
    .await;
    v["current"].as_u64().unwrap()
}

#[test]
fn branch_by_dropping_a_message_in_flight() {
    let _turn = one_at_a_time();
    let (_p, url) = studio(SMALL);
    let base = base_of(&url);
    run(async move {
        let b = browser().await;
        let c = &b.c;
        let s = open(c, &url).await;
        let total = s["total"].as_u64().unwrap();
        // A cursor with a message in flight whose drop changes the run later on: the first
        // sync in flight after the first third.
        let (at, msg) = dataflow_in_flight(&base, total / 3, total).await;
        scrub(c, at).await;
        set(c, "branch-action", "drop").await;
        let opts = wait_js(
            c,
            &format!("{msg} among #branch-msg's options"),
            "return [...document.querySelectorAll('#branch-msg option')].map(o => o.value);",
            |v| v.as_array().unwrap().iter().any(|o| o == msg.as_str()),
        )
        .await;
        eprintln!("in flight at {at}: {opts}");
        set(c, "branch-msg", &msg).await;
        shot(c, "2-before-drop").await;
        click(c, "branch-go").await;
        let id = wait_new_current(c, 1).await;
        shot(c, "2-after-drop").await;

        // The API: the dropped message is marked, and the run differs later on.
        let m = message(&base, id, &msg).await;
        assert_eq!(m["dropped"], true, "{m}");
        assert_eq!(m["delivered_i"], Value::Null, "{m}");
        let child = get(&base, &format!("/api/executions/{id}")).await;
        assert_eq!(child["parent"], json!({"id": 0, "at": at}), "{child}");
        let end = child["events"].as_u64().unwrap().min(total);
        let mut differs = None;
        for k in (at + 1..=end).step_by(((end - at) / 40).max(1) as usize) {
            let p = get(&base, &format!("/api/executions/0/state?at={k}")).await;
            let q = get(&base, &format!("/api/executions/{id}/state?at={k}")).await;
            if p["nodes"] != q["nodes"] {
                differs = Some(k);
                break;
            }
        }
        let k = differs.expect("the branch's state equals the parent's at every later cursor");
        // The page at that cursor in both executions.
        scrub(c, k).await;
        let vars_child = js(c, &text_of("vars")).await;
        let info_child = js(c, &text_of("cursor-info")).await;
        back_to_root(c).await;
        scrub(c, k).await;
        let vars_parent = js(c, &text_of("vars")).await;
        let info_parent = js(c, &text_of("cursor-info")).await;
        eprintln!("at {k}: parent {info_parent} / branch {info_child}");
        assert_ne!(
            vars_child, vars_parent,
            "the page shows the same variables at event {k}"
        );
    });
}

#[test]
fn branch_by_crashing_a_node_shows_it_down() {
    let _turn = one_at_a_time();
    let (_p, url) = studio(SMALL);
    let base = base_of(&url);
    run(async move {
        let b = browser().await;
        let c = &b.c;
        let s = open(c, &url).await;
        let total = s["total"].as_u64().unwrap();
        let at = total / 3;
        let st = get(&base, &format!("/api/executions/0/state?at={at}")).await;
        // A node up at the cursor (the seeded run has faults of its own).
        let n = st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .find(|n| n["up"] == true)
            .unwrap_or_else(|| panic!("no client up at {at}: {st}"))["index"]
            .as_u64()
            .unwrap();
        scrub(c, at).await;
        set(c, "branch-action", "crash").await;
        set(c, "branch-node", &n.to_string()).await;
        set(c, "branch-ms", "3000").await;
        click(c, "branch-go").await;
        let id = wait_new_current(c, 1).await;
        // The crash event, then the node down in the API and on the page.
        let ev = get(
            &base,
            &format!("/api/executions/{id}/events?from={at}&to={}", at + 5000),
        )
        .await;
        let crash = ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "fault" && e["node"] == n && e["label"] == "crash")
            .unwrap_or_else(|| panic!("no crash of n{n} after event {at}"))["i"]
            .as_u64()
            .unwrap();
        let st = get(&base, &format!("/api/executions/{id}/state?at={crash}")).await;
        assert_eq!(st["nodes"][n as usize]["up"], false, "{st}");
        scrub(c, crash).await;
        let down_js = format!(
            "const th = [...document.querySelectorAll('#vars thead th')].map(t => t.textContent); \
             const cells = document.querySelectorAll('#vars td.down[data-node=\"{n}\"]').length; \
             return {{th, cells}};"
        );
        let down = wait_js(c, &format!("n{n} shown down in #vars"), &down_js, |v| {
            v["cells"].as_u64().is_some_and(|k| k > 0)
                && v["th"].as_array().unwrap().iter().any(|t| {
                    t.as_str()
                        .is_some_and(|t| t.starts_with(&format!("n{n} ")) && t.ends_with("(down)"))
                })
        })
        .await;
        eprintln!("down at {crash}: {down}");
        shot(c, "3-crashed").await;
        // Before the crash it was up.
        scrub(c, crash - 1).await;
        let up = js(c, &down_js).await;
        assert_eq!(up["cells"], 0, "n{n} shown down before the crash: {up}");

        // Restart it by hand while it is down: a branch of the branch, where n is up again
        // within a few events instead of 3 s later.
        let down_at = crash + 3;
        scrub(c, down_at).await;
        set(c, "branch-action", "restart").await;
        set(c, "branch-node", &n.to_string()).await;
        click(c, "branch-go").await;
        let again = wait_new_current(c, 2).await;
        let ev = get(
            &base,
            &format!(
                "/api/executions/{again}/events?from={down_at}&to={}",
                down_at + 50
            ),
        )
        .await;
        let restart = ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "fault" && e["node"] == n && e["label"] == "restart")
            .unwrap_or_else(|| panic!("no restart of n{n} right after event {down_at}: {ev}"))
            .clone();
        let r = restart["i"].as_u64().unwrap();
        let crash_t = get(
            &base,
            &format!("/api/executions/{id}/events?from={crash}&to={crash}"),
        )
        .await["events"][0]["t"]
            .as_f64()
            .unwrap();
        assert!(
            restart["t"].as_f64().unwrap() < crash_t + 3.0,
            "restarted at {} s, as late as the crash's own 3 s",
            restart["t"]
        );
        scrub(c, r).await;
        let up = wait_js(c, &format!("n{n} up again in #vars"), &down_js, |v| {
            v["cells"] == 0
        })
        .await;
        eprintln!("restarted by hand at event {r}: {up}");
        shot(c, "3-restarted").await;
    });
}

#[test]
fn a_shrunk_zoo_trace_opens_at_its_violation() {
    let _turn = one_at_a_time();
    use rasp::app::fuzz::{fuzz, write_failure, FuzzArgs, TraceFile};
    use rasp::app::shrink::shrink_to_file;
    use rasp::studio::{run_cmd, StudioArgs};

    // The zoo's lost update (tests/zoo/lww.rs): fuzz finds it, shrink cuts it down.
    let app = lww::LwwCounter::default();
    let args = FuzzArgs {
        runs: 40,
        threads: Some(2),
        nodes: 3,
        membership: rasp::membership::Mode::Full,
        horizon_s: 5.0,
        settle_s: 10.0,
        max_faults: 2,
        ..FuzzArgs::default()
    };
    let report = fuzz(&app, &args).unwrap();
    let (run_i, plan, v) = report.failure.expect("the fuzzer finds the lost update");
    let dir = tempdir("browser-zoo");
    let found = dir.join("lww.trace");
    write_failure(&app, Vec::new(), Some(run_i), &plan, &found).unwrap();
    let loaded = TraceFile::load(&found).unwrap();
    let min = dir.join("lww.min.trace");
    let (s, _) = shrink_to_file(&app, &loaded, Duration::from_secs(30), &min).unwrap();
    eprintln!(
        "fuzz run {run_i}: {v}; shrunk {} → {} events",
        s.events.0, s.events.1
    );
    let file = TraceFile::load(&min).unwrap();

    // The zoo app is not in the `rasp` binary: its studio (the `--trace` road of
    // `<app> studio`) is served from a thread of this process.
    let port = free_port();
    let sargs = StudioArgs {
        trace: Some(min.clone()),
        addr: ([127, 0, 0, 1], port).into(),
        ..StudioArgs::default()
    };
    std::thread::spawn(move || run_cmd(app, &sargs, Some(&file), Vec::new()));
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < WAIT,
            "the zoo studio did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run(async move {
        let sum = get(&base, "/api/executions/0").await;
        let vi = sum["violation"]["i"]
            .as_u64()
            .unwrap_or_else(|| panic!("no violation: {sum}"));
        let b = browser().await;
        let c = &b.c;
        open(c, &format!("{base}/")).await;
        let text = wait_js(
            c,
            "#violation naming the invariant",
            &text_of("violation"),
            |v| v.as_str().is_some_and(|t| t.contains(lww::COUNTS)),
        )
        .await;
        eprintln!("#violation: {text}");
        shot(c, "4-violation").await;
        click(c, "jump-violation").await;
        wait_at(c, vi).await;
        let ev = get(
            &base,
            &format!("/api/executions/0/events?from={vi}&to={vi}"),
        )
        .await;
        assert_eq!(ev["events"][0]["violation"], true, "{ev}");
        let tree = js(
            c,
            "return document.querySelectorAll('#tree .exec.violating').length;",
        )
        .await;
        assert_eq!(tree, 1, "the execution is marked violating in #tree");
        shot(c, "4-at-violation").await;
    });
}

fn http_of(n: &mut NodeProc) -> String {
    n.proc
        .wait_line("http=", START_TIMEOUT)
        .unwrap_or_else(|| panic!("no http= line; stderr:\n{}", n.proc.stderr_text()))
}

#[test]
fn live_view_sees_a_killed_node_go_down() {
    let _turn = one_at_a_time();
    let dirs: Vec<_> = (0..4)
        .map(|i| tempdir(&format!("browser-live{i}")))
        .collect();
    let hv = ["--membership", "hyparview"];
    let mut n0 = start_node(&dirs[0], &hv);
    let h0 = http_of(&mut n0);
    let join = n0.addr.clone();
    let with_join = [hv[0], hv[1], "--join", join.as_str()];
    let mut n1 = start_node(&dirs[1], &with_join);
    let h1 = http_of(&mut n1);
    let mut n2 = start_node(&dirs[2], &with_join);
    let h2 = http_of(&mut n2);
    // A fourth node that joins no one: its own component, its own cart.
    let mut lone = start_node(&dirs[3], &hv);
    let h3 = http_of(&mut lone);
    let attach = format!("{h0},{h1},{h2},{h3}");
    let (_studio, url) = studio(&["studio", "--attach", &attach, "--interval-ms", "200"]);
    run(async move {
        let b = browser().await;
        let c = &b.c;
        c.goto(&url).await.expect("open /live");
        let rows = "return [...document.querySelectorAll('#live-nodes tr[data-addr]')].map(r => \
            ({addr: r.dataset.addr, cls: r.className, state: r.querySelector('td.state') ? \
            r.querySelector('td.state').textContent : null}));";
        wait_js(c, "four rows, each up", rows, |v| {
            let v = v.as_array().unwrap();
            v.len() == 4
                && v.iter().all(|r| {
                    r["state"] == "up"
                        && r["cls"]
                            .as_str()
                            .is_some_and(|c| c.split(' ').any(|c| c == "up"))
                })
        })
        .await;
        // A cart on the three joined nodes (declared on n0) and another on the lone node.
        let http = reqwest::Client::new();
        for (h, item) in [(&h0, "milk"), (&h3, "tea")] {
            for (put, body) in [
                (true, json!({"type": "orset"})),
                (false, json!({"add": item})),
            ] {
                let url = format!("http://{h}/vars/cart");
                let req = if put { http.put(url) } else { http.post(url) };
                let r = req
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("the node's API");
                assert!(r.status().is_success(), "{h}: {}", r.status());
            }
        }
        let cart = "const r = document.querySelector('#live-vars tr[data-var=\"cart\"]');             if (!r) return null; return {verdict: r.querySelector('td.verdict').textContent,             diverged: r.querySelectorAll('td.diverged').length,             cells: [...r.querySelectorAll('td[data-node]')].map(t => t.textContent)};";
        let v = wait_js(c, "the cart on all four, diverged at one", cart, |v| {
            v["verdict"]
                .as_str()
                .is_some_and(|t| t.starts_with("diverged: 1 of 4"))
                && v["diverged"].as_u64() >= Some(1)
                && v["cells"].as_array().is_some_and(|c| {
                    c.iter()
                        .filter(|t| t.as_str().is_some_and(|t| t.contains("milk")))
                        .count()
                        == 3
                })
        })
        .await;
        eprintln!("cart: {v}");
        let checks = wait_js(
            c,
            "the checks: not connected, a variable diverged",
            &text_of("live-checks"),
            |v| {
                v.as_str()
                    .is_some_and(|t| t.contains("not connected") && t.contains("diverged: 1"))
            },
        )
        .await;
        eprintln!("checks: {checks}");
        let rates = wait_js(
            c,
            "message rates per kind",
            "return [...document.querySelectorAll('#live-rates tr')].map(r => r.cells[0].textContent);",
            |v| v.as_array().is_some_and(|k| k.iter().any(|k| k.as_str().is_some_and(|k| k.contains('/')))),
        )
        .await;
        eprintln!("rate rows: {rates}");
        wait_js(c, "the overlay graph drawn", &painted("live-graph"), |v| {
            v.as_u64().is_some_and(|n| n > 100)
        })
        .await;
        shot(c, "5-live-up").await;
        n2.proc.child.kill().unwrap();
        let killed = Instant::now();
        let v = wait_js(c, &format!("the row of {h2} with class down"), rows, |v| {
            v.as_array().unwrap().iter().any(|r| {
                r["addr"] == h2.as_str()
                    && r["cls"]
                        .as_str()
                        .is_some_and(|c| c.split(' ').any(|c| c == "down"))
            })
        })
        .await;
        let took = killed.elapsed();
        eprintln!("killed node shown down on the page after {took:?}: {v}");
        assert!(took < Duration::from_secs(10), "down only after {took:?}");
        let others = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["addr"] != h2.as_str() && r["state"] == "up")
            .count();
        assert_eq!(others, 3, "{v}");
        shot(c, "5-live-down").await;
        drop(n0);
        drop(n1);
        drop(lone);
    });
}

#[test]
fn a_ten_thousand_event_run_renders_and_scrubs_with_100_nodes_collapsed() {
    let _turn = one_at_a_time();
    let (_p, url) = studio(&[
        "ad-counter",
        "studio",
        "--seed",
        "1",
        "--nodes",
        "100",
        "--servers",
        "1",
        "--membership",
        "client-server",
        "--horizon-s",
        "6",
        "--settle-s",
        "10",
        "--ads-per-vendor",
        "1",
        "--threshold",
        "200",
    ]);
    run(async move {
        let b = browser().await;
        let c = &b.c;
        let s = open(c, &url).await;
        let total = s["total"].as_u64().unwrap();
        assert!(
            total >= 10_000,
            "only {total} events: the run must have 10,000 or more"
        );
        let first = wait_js(c, "lastRenderMs (the first full render)", STUDIO, |v| {
            v["lastRenderMs"].is_f64() || v["lastRenderMs"].is_u64()
        })
        .await;
        let render = first["lastRenderMs"].as_f64().unwrap();
        assert!(render.is_finite() && render > 0.0, "{first}");
        eprintln!("events: {total}; time to first render: {render:.0} ms");
        shot(c, "6-opened").await;
        let mut times = Vec::new();
        for k in 1..=20u64 {
            let target = total * k / 21;
            let prev = js(c, "return window.studio.lastScrubMs;").await;
            scrub(c, target).await;
            let ms = wait_js(
                c,
                &format!("lastScrubMs for the scrub to {target}"),
                "return window.studio.lastScrubMs;",
                |v| v.as_f64().is_some() && *v != prev,
            )
            .await
            .as_f64()
            .unwrap();
            assert!(ms.is_finite() && ms >= 0.0, "{ms}");
            times.push(ms);
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        eprintln!(
            "scrub ms (20 steps): {:?}; median {:.1}, max {:.1}",
            times
                .iter()
                .map(|t| (t * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            sorted[10],
            sorted[19]
        );
        // Still responsive: a script answers at once.
        let t0 = Instant::now();
        assert_eq!(js(c, "return 1 + 1;").await, 2);
        eprintln!("page answers a script in {:?}", t0.elapsed());

        // Collapsed lanes at 100 nodes: the page collapses them itself (60 nodes or more);
        // unchecking #collapse draws full lanes, checking it again thin ones.
        let collapse = "return {checked: document.getElementById('collapse').checked, \
            rendered: window.studio.rendered};";
        let v = js(c, collapse).await;
        assert_eq!(v["checked"], true, "100 lanes open collapsed: {v}");
        shot(c, "6-collapsed-default").await;
        for want in [false, true] {
            let r0 = js(c, "return window.studio.rendered;")
                .await
                .as_u64()
                .unwrap();
            click(c, "collapse").await;
            wait_js(
                c,
                &format!(
                    "a redraw with #collapse {}",
                    if want { "checked" } else { "unchecked" }
                ),
                collapse,
                |v| v["checked"] == want && v["rendered"].as_u64().is_some_and(|r| r > r0),
            )
            .await;
            if !want {
                shot(c, "6-expanded").await;
            }
        }
        let lanes = js(
            c,
            "return document.querySelectorAll('#lanes input[data-lane]').length;",
        )
        .await;
        assert_eq!(lanes, 100, "one lane toggle per node");
        shot(c, "6-collapsed").await;
    });
}

/// The events `from..=to` of execution `exec` from the API.
async fn events(base: &str, exec: u64, from: u64, to: u64) -> Vec<Value> {
    let v = get(
        base,
        &format!("/api/executions/{exec}/events?from={from}&to={to}"),
    )
    .await;
    v["events"].as_array().expect("events").clone()
}

#[test]
fn play_at_two_speeds_next_of_node_and_kind_and_go_to_a_time() {
    let _turn = one_at_a_time();
    let (_p, url) = studio(SMALL);
    let base = base_of(&url);
    run(async move {
        let b = browser().await;
        let c = &b.c;
        let s = open(c, &url).await;
        let total = s["total"].as_u64().unwrap();
        let all = events(&base, 0, 0, total).await;

        // Play at 1 event per second: about one step in a second (at most a few).
        set(c, "speed", "1").await;
        click(c, "play").await;
        wait_js(c, "playback running", STUDIO_PLAY, |v| v["playing"] == true).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        click(c, "play").await;
        let slow = wait_js(c, "playback paused", STUDIO_PLAY, |v| v["playing"] == false).await;
        let slow_steps = slow["cursor"].as_u64().unwrap();
        assert!(
            (1..=4).contains(&slow_steps),
            "1 event/s for 1.5 s stepped {slow_steps} events"
        );
        // Paused means paused.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let still = js(c, STUDIO_PLAY).await;
        assert_eq!(
            still["cursor"], slow["cursor"],
            "the cursor moved while paused"
        );
        // At 1000 events per second the run plays to its end and stops there.
        set(c, "speed", "1000").await;
        click(c, "play").await;
        let end = wait_js(c, "playback to the end of the run", STUDIO_PLAY, |v| {
            v["playing"] == false && v["cursor"].as_u64() == Some(total)
        })
        .await;
        eprintln!("1 ev/s: {slow_steps} steps in 1.5 s; 1000 ev/s: at the end {end}");
        wait_at(c, total).await;

        // Next event of node 2 and of kind "timer", from the start.
        scrub(c, 0).await;
        set(c, "next-node", "2").await;
        click(c, "next-node-btn").await;
        let of_node = all
            .iter()
            .find(|e| e["i"].as_u64().unwrap() > 0 && e["node"] == 2)
            .expect("an event of n2")["i"]
            .as_u64()
            .unwrap();
        wait_at(c, of_node).await;
        click(c, "next-node-btn").await;
        let of_node2 = all
            .iter()
            .find(|e| e["i"].as_u64().unwrap() > of_node && e["node"] == 2)
            .expect("a second event of n2")["i"]
            .as_u64()
            .unwrap();
        wait_at(c, of_node2).await;
        set(c, "next-kind", "timer").await;
        click(c, "next-kind-btn").await;
        let timer = all
            .iter()
            .find(|e| e["i"].as_u64().unwrap() > of_node2 && e["kind"] == "timer")
            .expect("a timer after it")["i"]
            .as_u64()
            .unwrap();
        wait_at(c, timer).await;
        let detail = js(c, &text_of("detail")).await;
        assert!(
            detail.as_str().is_some_and(|d| d.contains("timer")),
            "#detail at a timer event: {detail}"
        );

        // Go to t = 2.5 s: the first event at or after it.
        let want = all
            .iter()
            .find(|e| e["t"].as_f64().unwrap() >= 2.5)
            .expect("an event after 2.5 s")["i"]
            .as_u64()
            .unwrap();
        set(c, "goto-t", "2.5").await;
        click(c, "goto-t-btn").await;
        wait_at(c, want).await;
        let info = js(c, &text_of("cursor-info")).await;
        eprintln!("go to 2.5 s: {info}");
        shot(c, "7-goto-t").await;
    });
}

/// `window.studio`'s cursor and playback.
const STUDIO_PLAY: &str = "return {cursor: window.studio.cursor, playing: window.studio.playing};";

/// A dataflow message in flight at or after event `from` of the root execution: (cursor, id).
async fn dataflow_in_flight(base: &str, from: u64, total: u64) -> (u64, String) {
    let mut at = from;
    loop {
        let st = get(base, &format!("/api/executions/0/state?at={at}")).await;
        if let Some(m) = st["in_flight"].as_array().unwrap().iter().find(|m| {
            m["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("dataflow/"))
        }) {
            return (at, m["id"].as_str().unwrap().to_string());
        }
        at += 1;
        assert!(
            at < total,
            "no dataflow message in flight after event {from}"
        );
    }
}

/// Makes the root execution current again (a click on it in `#tree`).
async fn back_to_root(c: &Client) {
    c.find(Locator::Css("#tree .exec[data-id=\"0\"]"))
        .await
        .expect("the root in #tree")
        .click()
        .await
        .unwrap();
    wait_js(c, "the root current again", STUDIO, |v| v["exec"] == 0).await;
}

/// A message of execution `exec` by id.
async fn message(base: &str, exec: u64, id: &str) -> Value {
    let msgs = get(
        base,
        &format!("/api/executions/{exec}/messages?from=0&to=1000000"),
    )
    .await;
    msgs["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} not among execution {exec}'s messages"))
        .clone()
}

#[test]
fn branch_by_duplicating_delaying_pausing_partitioning_and_injecting_an_update() {
    let _turn = one_at_a_time();
    let (_p, url) = studio(SMALL);
    let base = base_of(&url);
    run(async move {
        let b = browser().await;
        let c = &b.c;
        let s = open(c, &url).await;
        let total = s["total"].as_u64().unwrap();
        let (at, msg) = dataflow_in_flight(&base, total / 3, total).await;
        let parent_msg = message(&base, 0, &msg).await;
        let mut made = 1u64; // executions in the tree

        // Duplicate the message: the branch delivers it twice.
        scrub(c, at).await;
        set(c, "branch-action", "duplicate").await;
        wait_js(
            c,
            &format!("{msg} among #branch-msg's options"),
            "return [...document.querySelectorAll('#branch-msg option')].map(o => o.value);",
            |v| v.as_array().unwrap().iter().any(|o| o == msg.as_str()),
        )
        .await;
        set(c, "branch-msg", &msg).await;
        click(c, "branch-go").await;
        let dup = wait_new_current(c, made).await;
        made += 1;
        let m = message(&base, dup, &msg).await;
        assert_eq!(m["duplicates"], 1, "{m}");
        shot(c, "8-branch-duplicate").await;

        // Delay it by 2 s: delivered at least 2 s after the parent delivered it.
        back_to_root(c).await;
        scrub(c, at).await;
        set(c, "branch-action", "delay").await;
        set(c, "branch-msg", &msg).await;
        set(c, "branch-ms", "2000").await;
        click(c, "branch-go").await;
        let delayed = wait_new_current(c, made).await;
        made += 1;
        let m = message(&base, delayed, &msg).await;
        let (before, after) = (
            parent_msg["delivered_t"]
                .as_f64()
                .expect("delivered in the parent"),
            m["delivered_t"].as_f64().expect("delivered in the branch"),
        );
        assert!(
            after >= before + 1.99,
            "delivered at {after} s, {before} s before the delay"
        );

        // Pause client n2 for 1.5 s, partition n0 from the clients for 1 s: bands.
        for (action, ms) in [("pause", "1500"), ("partition", "1000")] {
            back_to_root(c).await;
            scrub(c, at).await;
            set(c, "branch-action", action).await;
            set(c, "branch-node", "2").await;
            set(c, "branch-a", "0").await;
            set(c, "branch-b", "1,2,3").await;
            set(c, "branch-ms", ms).await;
            click(c, "branch-go").await;
            let id = wait_new_current(c, made).await;
            made += 1;
            let bands = get(&base, &format!("/api/executions/{id}/bands")).await;
            let band = bands["bands"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["kind"] == action && b["from_i"].as_u64().unwrap() >= at)
                .unwrap_or_else(|| panic!("no {action} band from event {at}: {bands}"))
                .clone();
            if action == "pause" {
                assert_eq!(band["nodes"], json!([2]), "{band}");
            } else {
                assert_eq!((&band["a"], &band["b"]), (&json!([0]), &json!([1, 2, 3])));
            }
            let secs = band["to_t"].as_f64().unwrap() - band["from_t"].as_f64().unwrap();
            let want = ms.parse::<f64>().unwrap() / 1000.0;
            assert!(
                (secs - want).abs() < 1e-6,
                "{action} lasts {secs} s: {band}"
            );
            let label = js(c, &text_of("exec-label")).await;
            assert!(
                label.as_str().is_some_and(|l| l.contains(action)),
                "#exec-label names the {action}: {label}"
            );
            shot(c, &format!("8-branch-{action}")).await;
        }

        // Heal the run's own partition while it is in effect: its band ends at the cursor.
        let bands = get(&base, "/api/executions/0/bands").await;
        let part = bands["bands"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["kind"] == "partition")
            .unwrap_or_else(|| panic!("the seeded run has no partition: {bands}"))
            .clone();
        let (from, to) = (
            part["from_i"].as_u64().unwrap(),
            part["to_i"].as_u64().unwrap(),
        );
        let mid = (from + to) / 2;
        back_to_root(c).await;
        scrub(c, mid).await;
        set(c, "branch-action", "heal").await;
        click(c, "branch-go").await;
        let healed = wait_new_current(c, made).await;
        made += 1;
        let hb = get(&base, &format!("/api/executions/{healed}/bands")).await;
        let band = hb["bands"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["kind"] == "partition" && b["from_i"] == part["from_i"])
            .unwrap_or_else(|| panic!("the partition's band is gone: {hb}"))
            .clone();
        let mid_t = get(
            &base,
            &format!("/api/executions/0/events?from={mid}&to={mid}"),
        )
        .await["events"][0]["t"]
            .as_f64()
            .unwrap();
        let end = band["to_t"].as_f64().unwrap();
        assert!(
            (end - mid_t).abs() < 0.001 && end < part["to_t"].as_f64().unwrap(),
            "healed at {end} s; the cursor is at {mid_t} s, the partition ended at {}",
            part["to_t"]
        );
        shot(c, "8-branch-heal").await;

        // An update the app does not know is refused with its reason, and no branch is made.
        let st = get(&base, &format!("/api/executions/0/state?at={at}")).await;
        let client = st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .find(|n| n["up"] == true)
            .unwrap_or_else(|| panic!("no client up at {at}: {st}"))["index"]
            .as_u64()
            .unwrap();
        back_to_root(c).await;
        scrub(c, at).await;
        set(c, "branch-action", "update").await;
        set(c, "branch-node", &client.to_string()).await;
        set(c, "branch-op", "fly away").await;
        click(c, "branch-go").await;
        let status = wait_js(c, "the refusal in #status", &text_of("status"), |v| {
            v.as_str().is_some_and(|t| t.contains("unknown operation"))
        })
        .await;
        eprintln!("refused: {status}");
        let n = js(c, "return document.querySelectorAll('#tree .exec').length;").await;
        assert_eq!(n, made, "a refused update made an execution");
        // One it knows: the client shows an ad in its view once more; its counter grows.
        let ad = ["rovio/0", "riot/0"]
            .into_iter()
            .find(|ad| {
                st["nodes"][client as usize]["vars"]
                    .get(format!("views/{ad}"))
                    .is_some()
            })
            .expect("the client holds an ad's views");
        let op = format!("view {ad}");
        set(c, "branch-op", &op).await;
        click(c, "branch-go").await;
        let upd = wait_new_current(c, made).await;
        let evs = events(&base, upd, at, at + 400).await;
        let input = evs
            .iter()
            .find(|e| e["kind"] == "input" && e["node"] == client && e["label"] == op.as_str())
            .unwrap_or_else(|| panic!("no input event `{op}` on n{client} after {at}: {evs:?}"));
        let k = input["i"].as_u64().unwrap();
        let views = |st: &Value| -> Option<String> {
            st["nodes"][client as usize]["vars"][format!("views/{ad}")]
                .as_str()
                .map(String::from)
        };
        // The input event itself counts the impression: one more than just before it.
        let p = get(&base, &format!("/api/executions/{upd}/state?at={}", k - 1)).await;
        let q = get(&base, &format!("/api/executions/{upd}/state?at={k}")).await;
        let count = |st: &Value| -> u64 {
            views(st)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("views/{ad} at n{client}: {st}"))
        };
        eprintln!(
            "views/{ad} at n{client}: {} before the injected view, {} after",
            count(&p),
            count(&q)
        );
        assert_eq!(
            count(&q),
            count(&p) + 1,
            "the injected view did not count once"
        );
        scrub(c, k).await;
        shot(c, "8-branch-update").await;
    });
}

/// Clicks the link `id` and waits for its download to finish in `dir` (emptied first):
/// the file's name (the server's `Content-Disposition`) and bytes.
async fn download(c: &Client, id: &str, dir: &Path) -> (String, Vec<u8>) {
    for f in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    click(c, id).await;
    let start = Instant::now();
    loop {
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        if let [name] = names.as_slice() {
            if !name.ends_with(".crdownload") && !name.starts_with('.') {
                let b = std::fs::read(dir.join(name)).unwrap();
                if !b.is_empty() {
                    return (name.clone(), b);
                }
            }
        }
        assert!(
            start.elapsed() < WAIT,
            "#{id}: no finished download in {} within {WAIT:?} (there: {names:?})",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the canvas `id` has anything drawn on it (a pixel that is not background).
fn painted(id: &str) -> String {
    format!(
        "const c = document.getElementById('{id}'); const x = c.getContext('2d'); \
         const d = x.getImageData(0, 0, c.width, c.height).data; let n = 0; \
         for (let i = 0; i < d.length; i += 4) {{ \
           if (d[i + 3] > 0 && (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235)) n++; }} \
         return n;"
    )
}

#[test]
fn download_upload_shiviz_lanes_filter_and_panels() {
    let _turn = one_at_a_time();
    let (_p, url) = studio(SMALL);
    let base = base_of(&url);
    run(async move {
        let b = browser().await;
        let c = &b.c;
        let s = open(c, &url).await;
        let total = s["total"].as_u64().unwrap();

        // Download JSON through the page, upload it back: the same execution again.
        let (name, file) = download(c, "download", &b.downloads).await;
        eprintln!("downloaded {name}: {} bytes", file.len());
        let doc: Value = serde_json::from_slice(&file).expect("the download is JSON");
        assert_eq!(doc["format"], "rasp-studio/1", "{doc}");
        let path = b.downloads.join(&name);
        c.find(Locator::Id("upload"))
            .await
            .expect("#upload")
            .send_keys(path.to_str().unwrap())
            .await
            .expect("a file given to #upload");
        let up = wait_new_current(c, 1).await;
        let summary = get(&base, &format!("/api/executions/{up}")).await;
        assert_eq!(summary["events"], total, "{summary}");
        let (p, q) = (
            get(&base, &format!("/api/executions/0/state?at={total}")).await,
            get(&base, &format!("/api/executions/{up}/state?at={total}")).await,
        );
        assert_eq!(p["nodes"], q["nodes"], "the uploaded run ends elsewhere");
        shot(c, "9-uploaded").await;

        // The ShiViz log of the uploaded execution: two lines per event, host and clock.
        let (name, log) = download(c, "shiviz", &b.downloads).await;
        assert!(
            name.contains(&up.to_string()),
            "{name} is not execution {up}'s"
        );
        let log = String::from_utf8(log).expect("UTF-8");
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines.len() >= 2 && lines.len().is_multiple_of(2),
            "{} lines",
            lines.len()
        );
        for pair in lines.chunks(2).take(50) {
            let (host, clock) = pair[1].split_once(' ').expect("host and clock");
            assert!(host.starts_with('n'), "host {host:?}");
            let v: Value = serde_json::from_str(clock).expect("the clock is JSON");
            assert!(
                v.get(host).is_some(),
                "{host}'s clock lacks its own entry: {clock}"
            );
        }

        // Lanes: hide one, none, all; filter to the nodes that talk to client n1; collapse.
        let lanes = "return window.studio.lanes;";
        assert_eq!(js(c, lanes).await, json!([0, 1, 2, 3]));
        c.find(Locator::Css("#lanes input[data-lane=\"2\"]"))
            .await
            .expect("lane n2's box")
            .click()
            .await
            .unwrap();
        wait_js(c, "lane n2 hidden", lanes, |v| *v == json!([0, 1, 3])).await;
        shot(c, "9-lane-hidden").await;
        click(c, "lanes-none").await;
        wait_js(c, "every lane hidden", lanes, |v| *v == json!([])).await;
        click(c, "lanes-all").await;
        wait_js(c, "every lane shown", lanes, |v| *v == json!([0, 1, 2, 3])).await;
        set(c, "filter-node", "1").await;
        // Client-server membership: a client talks to the server only.
        let filtered = wait_js(c, "the lanes of n1 and whom it talks to", lanes, |v| {
            *v == json!([0, 1])
        })
        .await;
        eprintln!("filtered to n1: {filtered}");
        shot(c, "9-filter-n1").await;
        set(c, "filter-node", "all").await;
        click(c, "collapse").await;
        wait_js(
            c,
            "lanes collapsed",
            "return window.studio.collapsed;",
            |v| *v == json!(true),
        )
        .await;

        // Panels at the cursor: the overlay drawn and checked, the divergence over time,
        // the event's details; a click on the divergence strip moves the cursor.
        scrub(c, total / 5).await;
        let flags = js(c, &text_of("overlay-flags")).await;
        assert!(
            flags.as_str().is_some_and(|f| !f.trim().is_empty()),
            "#overlay-flags is empty"
        );
        let ov = wait_js(c, "the overlay drawn", &painted("overlay"), |v| {
            v.as_u64().is_some_and(|n| n > 50)
        })
        .await;
        let dv = wait_js(c, "the divergence drawn", &painted("divergence"), |v| {
            v.as_u64().is_some_and(|n| n > 50)
        })
        .await;
        let detail = js(c, &text_of("detail")).await;
        assert!(
            detail.as_str().is_some_and(|d| d.len() > 10),
            "#detail: {detail}"
        );
        eprintln!("overlay flags: {flags}; painted pixels: overlay {ov}, divergence {dv}");
        let before = js(c, STUDIO).await["cursor"].clone();
        let strip = c
            .find(Locator::Id("divergence"))
            .await
            .expect("#divergence");
        strip.click().await.expect("click the divergence strip");
        let moved = wait_js(c, "the cursor moved by the strip", STUDIO, |v| {
            v["cursor"] != before
        })
        .await;
        eprintln!("divergence click: cursor {before} → {}", moved["cursor"]);
        shot(c, "9-panels").await;
    });
}

#[test]
fn the_todo_example_breaks_its_invariant_by_an_add_injected_by_hand() {
    let _turn = one_at_a_time();
    let args = ["studio", "--seed", "1"];
    let mut cmd = todo_example();
    cmd.args(args);
    let (_p, url) = studio_of(cmd, &args);
    let base = base_of(&url);
    run(async move {
        let b = browser().await;
        let c = &b.c;
        let s = open(c, &url).await;
        let total = s["total"].as_u64().unwrap();
        let root = get(&base, "/api/executions/0").await;
        assert_eq!(root["violation"], Value::Null, "{root}");
        // The first cursor where node 0 holds "milk" as done.
        let mut at = 1;
        loop {
            let st = get(&base, &format!("/api/executions/0/state?at={at}")).await;
            if st["nodes"][0]["vars"]["todo/done"]
                .as_str()
                .is_some_and(|d| d.contains("\"milk\""))
            {
                break;
            }
            at += 1;
            assert!(at <= total, "node 0 never sees milk done");
        }
        scrub(c, at).await;
        set(c, "branch-action", "update").await;
        set(c, "branch-node", "0").await;
        set(c, "branch-op", "add milk").await;
        click(c, "branch-go").await;
        let id = wait_new_current(c, 1).await;
        let child = get(&base, &format!("/api/executions/{id}")).await;
        let v = &child["violation"];
        assert_eq!(v["invariant"], "done items leave the list", "{child}");
        let text = wait_js(
            c,
            "#violation naming the invariant",
            &text_of("violation"),
            |v| {
                v.as_str()
                    .is_some_and(|t| t.contains("done items leave the list"))
            },
        )
        .await;
        eprintln!("add milk at event {at}: {text}");
        click(c, "jump-violation").await;
        wait_at(c, v["i"].as_u64().unwrap()).await;
        let red = js(
            c,
            "return document.querySelectorAll('#tree .exec.violating').length;",
        )
        .await;
        assert_eq!(red, 1, "the branch is marked violating in #tree");
        shot(c, "10-todo-violation").await;
    });
}
