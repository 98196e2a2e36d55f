//! `rasp studio --attach ...` (`rasp::studio::live`) against real `rasp node` processes with
//! their HTTP APIs: the snapshot follows the cluster (up, neighbours, connectivity, a
//! variable's replicas), a SIGKILLed node shows as down within 5 s, the event stream parses;
//! lone nodes are isolated and their values diverge; a listener answering garbage, one that
//! never answers and a closed port show as down with their errors; bad flags exit 2.

#[path = "net_common/mod.rs"]
mod common;

use common::{rasp, start_node, tempdir, NodeProc, Proc, START_TIMEOUT};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

/// The node's HTTP address (`host:port`) from its `http=` start line.
fn http_of(n: &mut NodeProc) -> String {
    n.proc
        .wait_line("http=", START_TIMEOUT)
        .unwrap_or_else(|| panic!("no http= line; stderr:\n{}", n.proc.stderr_text()))
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Starts `rasp studio --attach <attach> --interval-ms 200`; returns it and its base URL.
fn start_studio(attach: &str) -> (Proc, String) {
    let mut cmd = rasp();
    cmd.args(["studio", "--attach", attach, "--interval-ms", "200"]);
    let mut p = Proc::spawn(cmd);
    let url = p
        .wait_line("studio=", START_TIMEOUT)
        .unwrap_or_else(|| panic!("no studio= line; stderr:\n{}", p.stderr_text()));
    let base = url
        .strip_suffix("/live")
        .unwrap_or_else(|| panic!("studio= line {url:?} does not end in /live"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    (p, base)
}

fn snapshot(c: &Client, base: &str) -> Value {
    let r = c
        .get(format!("{base}/api/live"))
        .send()
        .expect("GET /api/live");
    assert_eq!(r.status(), 200);
    serde_json::from_str(&r.text().unwrap()).expect("snapshot is JSON")
}

/// Polls `/api/live` until `ok` holds, for up to `timeout`; the snapshot and the time taken.
fn wait_for(
    c: &Client,
    base: &str,
    timeout: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let s = snapshot(c, base);
        if ok(&s) {
            return (s, start.elapsed());
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not within {timeout:?}; last snapshot:\n{s:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node<'a>(s: &'a Value, addr: &str) -> &'a Value {
    s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["addr"] == addr)
        .unwrap_or_else(|| panic!("{addr} not in {s:#}"))
}

fn var_check<'a>(s: &'a Value, id: &str) -> Option<&'a Value> {
    s["checks"]["vars"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
}

fn put(c: &Client, h: &str, id: &str, ty: &str) {
    let r = c
        .put(format!("http://{h}/vars/{id}"))
        .body(json!({ "type": ty }).to_string())
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
}

fn post(c: &Client, h: &str, id: &str, op: Value) {
    let r = c
        .post(format!("http://{h}/vars/{id}"))
        .body(op.to_string())
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
}

/// Reads `n` `snapshot` events from the studio's event stream; each `data:` must be a
/// snapshot (JSON with `seq`, `nodes`, `checks`), the `seq`s increasing.
fn read_events(c: &Client, base: &str, n: usize, mut between: impl FnMut()) -> Vec<Value> {
    let resp = c
        .get(format!("{base}/api/live/stream"))
        .send()
        .expect("stream");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut lines = BufReader::new(resp).lines();
    let mut out: Vec<Value> = Vec::new();
    let mut event = String::new();
    while out.len() < n {
        let l = lines.next().expect("stream open").expect("stream line");
        if let Some(e) = l.strip_prefix("event:") {
            event = e.trim().to_string();
        } else if let Some(d) = l.strip_prefix("data:") {
            assert_eq!(event, "snapshot", "event name");
            let v: Value = serde_json::from_str(d.trim()).expect("event data is JSON");
            assert!(v["nodes"].is_array() && v["checks"].is_object(), "{v}");
            if let Some(last) = out.last() {
                assert!(v["seq"].as_u64() > last["seq"].as_u64(), "seq increases");
            }
            out.push(v);
            between();
        }
    }
    out
}

#[test]
fn studio_follows_three_real_nodes_and_sees_a_killed_one_go_down() {
    let dirs: Vec<_> = (0..3).map(|i| tempdir(&format!("studio{i}"))).collect();
    let hv = ["--membership", "hyparview"];
    let mut n0 = start_node(&dirs[0], &hv);
    let h0 = http_of(&mut n0);
    let join = n0.addr.clone();
    let with_join = [hv[0], hv[1], "--join", join.as_str()];
    let mut n1 = start_node(&dirs[1], &with_join);
    let h1 = http_of(&mut n1);
    let mut n2 = start_node(&dirs[2], &with_join);
    let h2 = http_of(&mut n2);
    let c = client();
    put(&c, &h0, "cart", "orset");
    post(&c, &h0, "cart", json!({"add": "milk"}));

    let (mut studio, base) = start_studio(&format!("{h0},{h1},{h2}"));

    // All three up, two neighbours each, connected, symmetric; the cart replicated and equal.
    let (s, took) = wait_for(&c, &base, Duration::from_secs(40), "three up", |s| {
        let nodes = s["nodes"].as_array().unwrap();
        nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n["up"] == true && n["neighbours"].as_array().unwrap().len() == 2)
            && s["checks"]["connected"] == true
            && s["checks"]["asymmetric"] == json!([])
            && var_check(s, "cart").is_some_and(|v| v["replicas"] == 3 && v["equal"] == true)
    });
    eprintln!("three nodes up and converged in the studio after {took:?}");
    for (h, n) in [(&h0, &n0), (&h1, &n1), (&h2, &n2)] {
        let v = node(&s, h);
        assert_eq!(v["node_id"], n.node_id.to_string());
        assert_eq!(v["mode"], "hyparview");
        assert_eq!(v["vars"]["cart"]["value"], json!(["milk"]));
        assert_eq!(v["vars"]["cart"]["type"], "orset");
        assert_eq!(v["error"], Value::Null);
    }
    assert_eq!(s["checks"]["isolated"], json!([]));
    assert_eq!(s["checks"]["down"], json!([]));
    assert_eq!(s["checks"]["diverged"], json!([]));
    assert_eq!(s["interval_ms"], 200);
    // Message rates per kind come from the counters of /metrics.
    let (s, _) = wait_for(&c, &base, Duration::from_secs(20), "rates", |s| {
        node(s, &h0)["rates"]
            .as_object()
            .is_some_and(|r| !r.is_empty())
    });
    let rates = node(&s, &h0)["rates"].as_object().unwrap().clone();
    for r in rates.values() {
        assert!(r["sent"].as_f64().unwrap() >= 0.0 && r["received"].as_f64().is_some());
    }

    // The page and its assets.
    let page = c.get(format!("{base}/live")).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = page.text().unwrap();
    for id in [
        "live-graph",
        "live-nodes",
        "live-vars",
        "live-rates",
        "live-checks",
        "live-status",
        "/assets/live.js",
        "/assets/live.css",
    ] {
        assert!(page.contains(id), "{id} missing from the page");
    }
    let js = c.get(format!("{base}/assets/live.js")).send().unwrap();
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.text().unwrap().contains("EventSource"));
    let css = c.get(format!("{base}/assets/live.css")).send().unwrap();
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));

    // The event stream: the snapshot now, then at changes (an update makes one).
    let mut k = 0;
    let events = read_events(&c, &base, 3, || {
        k += 1;
        post(&c, &h1, "cart", json!({ "add": format!("item-{k}") }));
    });
    assert_eq!(events[0]["nodes"].as_array().unwrap().len(), 3);
    // Updates make replication traffic: some kind's rate goes above zero.
    let start = Instant::now();
    loop {
        post(&c, &h1, "cart", json!({"add": "bread"}));
        std::thread::sleep(Duration::from_millis(150));
        let s = snapshot(&c, &base);
        let busy = s["nodes"].as_array().unwrap().iter().any(|n| {
            n["rates"]
                .as_object()
                .unwrap()
                .values()
                .any(|r| r["sent"].as_f64() > Some(0.0))
        });
        if busy {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no rate above zero: {s:#}"
        );
    }

    // SIGKILL node 2: down within 5 s, with its error; the checks follow.
    n2.proc.child.kill().unwrap();
    let (s, took) = wait_for(&c, &base, Duration::from_secs(5), "n2 down", |s| {
        node(s, &h2)["up"] == false
    });
    eprintln!("killed node shown down after {took:?}");
    let down = node(&s, &h2);
    assert!(
        down["error"].as_str().is_some_and(|e| e.contains("GET /")),
        "{down:#}"
    );
    assert_eq!(down["neighbours"], json!([]));
    assert_eq!(s["checks"]["down"], json!([h2]));
    assert_eq!(s["checks"]["live"], 2);
    // The two survivors still list each other: connected; the cart is checked over them.
    assert_eq!(s["checks"]["connected"], true, "{s:#}");
    let (s, _) = wait_for(&c, &base, Duration::from_secs(20), "cart on 2", |s| {
        var_check(s, "cart").is_some_and(|v| v["replicas"] == 2 && v["equal"] == true)
    });
    assert_eq!(node(&s, &h0)["up"], true);

    studio.signal("TERM");
    let st = studio
        .wait_exit(Duration::from_secs(10))
        .expect("studio exits on SIGTERM");
    assert!(st.success(), "{st:?}; stderr:\n{}", studio.stderr_text());
    assert!(!studio.stderr_text().contains("panicked"));
}

/// A listener that answers every connection with bytes that are not HTTP.
fn garbage_listener() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"SSH-2.0-nonsense \x00\xff\r\n\r\n{not http at all");
        }
    });
    addr
}

/// A listener that accepts and never answers.
fn silent_listener() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            let Ok(s) = s else { break };
            held.push(s);
            if held.len() > 64 {
                held.remove(0);
            }
        }
    });
    addr
}

#[test]
fn lone_nodes_diverge_and_garbage_answers_show_as_down() {
    let dirs: Vec<_> = (0..2)
        .map(|i| tempdir(&format!("studio-lone{i}")))
        .collect();
    let mut a = start_node(&dirs[0], &["--membership", "hyparview"]);
    let ha = http_of(&mut a);
    let mut b = start_node(&dirs[1], &["--membership", "hyparview"]);
    let hb = http_of(&mut b);
    let c = client();
    for (h, item) in [(&ha, "from-a"), (&hb, "from-b")] {
        put(&c, h, "cart", "orset");
        post(&c, h, "cart", json!({ "add": item }));
    }
    let garbage = garbage_listener();
    let silent = silent_listener();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };

    let (mut studio, base) = start_studio(&format!("{ha},{hb},{garbage},{silent},{closed}"));
    let (s, _) = wait_for(&c, &base, Duration::from_secs(30), "lone nodes", |s| {
        node(s, &ha)["up"] == true
            && node(s, &hb)["up"] == true
            && [&garbage, &silent, &closed]
                .iter()
                .all(|x| node(s, x)["up"] == false && node(s, x)["error"] != "no answer yet")
            && var_check(s, "cart").is_some_and(|v| v["replicas"] == 2)
    });
    let ch = &s["checks"];
    assert_eq!(ch["connected"], false, "{ch:#}");
    assert_eq!(ch["live"], 2);
    assert_eq!(ch["isolated"], json!([ha, hb]));
    assert_eq!(ch["down"], json!([garbage, silent, closed]));
    assert_eq!(ch["diverged"], json!(["cart"]));
    let cart = var_check(&s, "cart").unwrap();
    assert_eq!(cart["equal"], false);
    // A tie: the first node's value is the reference, the other differs.
    assert_eq!(cart["differing"], json!([hb]));
    for x in [&garbage, &silent, &closed] {
        let n = node(&s, x);
        let e = n["error"].as_str().unwrap_or("");
        assert!(e.starts_with("GET /"), "{x}: {n:#}");
        assert_eq!(n["node_id"], Value::Null);
    }
    let error = |x: &str| node(&s, x)["error"].as_str().unwrap().to_string();
    assert!(error(&silent).contains("timed out"), "{}", error(&silent));
    assert!(
        error(&closed).contains("cannot connect"),
        "{}",
        error(&closed)
    );
    assert!(
        error(&garbage).contains("bad answer"),
        "{}",
        error(&garbage)
    );
    assert!(studio.alive(), "stderr:\n{}", studio.stderr_text());
    studio.signal("INT");
    let st = studio
        .wait_exit(Duration::from_secs(10))
        .expect("studio exits on SIGINT");
    assert!(st.success(), "{st:?}");
    assert!(!studio.stderr_text().contains("panicked"));
}

#[test]
fn the_token_is_sent_and_a_missing_one_shows_as_down() {
    let dir = tempdir("studio-token");
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let tok = token.to_str().unwrap();
    let mut n = start_node(&dir.join("node"), &["--http-token-file", tok]);
    let h = http_of(&mut n);
    let c = client();
    let mut with = rasp();
    with.args([
        "studio",
        "--attach",
        &h,
        "--interval-ms",
        "200",
        "--token-file",
        tok,
    ]);
    let mut with = Proc::spawn(with);
    let url = with
        .wait_line("studio=", START_TIMEOUT)
        .expect("studio= line");
    let (mut without, base) = start_studio(&h);
    let base_with = url.strip_suffix("/live").unwrap().to_string();
    let id = json!(n.node_id.to_string());
    wait_for(
        &c,
        &base_with,
        Duration::from_secs(20),
        "up with the token",
        |s| node(s, &h)["up"] == true && node(s, &h)["node_id"] == id,
    );
    let (s, _) = wait_for(&c, &base, Duration::from_secs(20), "401 without", |s| {
        node(s, &h)["error"] != "no answer yet"
    });
    let e = node(&s, &h)["error"].as_str().unwrap_or("").to_string();
    assert_eq!(node(&s, &h)["up"], false);
    assert!(e.contains("401") && e.contains("bearer token"), "{e}");
    with.signal("TERM");
    without.signal("TERM");
    assert!(with.wait_exit(Duration::from_secs(10)).unwrap().success());
    assert!(without
        .wait_exit(Duration::from_secs(10))
        .unwrap()
        .success());
}

fn studio_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = rasp()
        .arg("studio")
        .args(args)
        .output()
        .expect("rasp studio");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_flags_exit_2_with_a_clear_message() {
    for (args, want) in [
        (vec!["--attach", "127.0.0.1"], "no port"),
        (vec!["--attach", "127.0.0.1:8080,not-an-address"], "no port"),
        (vec!["--attach", "127.0.0.1:99999"], "1..=65535"),
        (vec!["--attach", "http://127.0.0.1:8080/vars"], "no path"),
        (vec!["--attach", "127.0.0.1:8080,127.0.0.1:8080"], "twice"),
        (
            vec!["--attach", "127.0.0.1:8080", "--interval-ms", "0"],
            "--interval-ms",
        ),
        (vec![], "--attach"),
    ] {
        let (code, err) = studio_exit(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {want:?} not in {err}");
    }
}
