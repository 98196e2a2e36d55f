//! The studio's server side: execution logs, branches, files and the HTTP API, on a small
//! app with a workload and on the ad counter through `rasp ad-counter studio` (a real
//! process). The page itself is exercised in a real browser by `tests/studio_browser.rs`.

use rasp::app::fuzz::{write_failure, TraceFile};
use rasp::app::log::LogKind;
use rasp::app::plan::{execute, Collect};
use rasp::app::{App, Invariant, NoArgs, NodeCtx, NodeMeta, WorkItem};
use rasp::dataflow::update::add;
use rasp::dataflow::{Error, Program, Var};
use rasp::lattice::GSet;
use rasp::studio::server::{router, Studio};
use rasp::studio::{Action, Execution, StudioArgs};
use serde_json::{json, Value};
use std::time::Duration;

fn items() -> Var<GSet<u64>> {
    Var::named("items")
}

/// Every node adds a few numbers; every replica must end up with all of them.
#[derive(Clone, Default)]
struct Adds;

impl App for Adds {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        p.declare::<GSet<u64>>(items().id()).map(|_| ())
    }
    fn workload(
        &self,
        nodes: &[NodeMeta],
        horizon: Duration,
        rng: &mut dyn rand::RngCore,
    ) -> Vec<WorkItem> {
        rasp::app::plan::spread_workload(nodes, horizon, 2, rng, |n, k| {
            format!("add {}", n * 10 + k)
        })
    }
    fn on_work(&mut self, node: &mut NodeCtx<'_, Self>, op: &str) {
        if let Some(n) = op.strip_prefix("add ").and_then(|n| n.parse::<u64>().ok()) {
            let _ = node.update(&items(), add(n));
        }
    }
    fn invariants(&self) -> Vec<Invariant> {
        vec![Invariant::eventually(
            "all items everywhere",
            Duration::from_secs(10),
            |nodes| {
                let first = nodes.first().and_then(|n| n.program.query(&items()).ok());
                for n in nodes {
                    if n.program.query(&items()).ok() != first {
                        return Err(format!("node {} differs", n.index));
                    }
                }
                Ok(())
            },
        )]
    }
}

fn args() -> StudioArgs {
    StudioArgs {
        horizon_s: 2.0,
        settle_s: 10.0,
        ..StudioArgs::default()
    }
}

fn root() -> Execution<Adds> {
    let plan = args().plan(&Adds).unwrap();
    Execution::run(0, None, "seed 1".into(), Adds, Vec::new(), plan).unwrap()
}

#[test]
fn a_logged_run_is_the_same_run_and_its_log_is_whole() {
    let plan = args().plan(&Adds).unwrap();
    let plain = execute(&Adds, &plan, Collect::default(), None).unwrap();
    let logged = execute(
        &Adds,
        &plan,
        Collect {
            log: true,
            ..Collect::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(plain.hash, logged.hash, "the log changed the run");
    assert_eq!(plain.events, logged.events);
    let log = logged.log.unwrap();
    assert_eq!(log.events.len() as u64, logged.events);
    for (k, e) in log.events.iter().enumerate() {
        assert_eq!(e.i, k as u64 + 1);
    }
    assert!(log.events.windows(2).all(|w| w[0].t <= w[1].t));
    // Every delivery names its message, which names it back (or counts it as a duplicate).
    let mut deliveries = 0;
    for e in log.events.iter().filter(|e| e.kind == LogKind::Deliver) {
        let m = &log.messages[e.msg.expect("a delivery names its message")];
        let (first, _) = m.delivered.expect("delivered");
        assert!(first == e.i || m.duplicates > 0, "{m:?} at {}", e.i);
        assert!(m.sent_i < e.i, "sent before it is delivered");
        deliveries += 1;
    }
    assert!(deliveries > 20, "{deliveries} deliveries");
    // Each workload operation shows as an input on its node.
    let inputs: Vec<_> = log
        .events
        .iter()
        .filter(|e| e.kind == LogKind::Input)
        .map(|e| e.label.clone())
        .collect();
    assert_eq!(inputs.len(), 6, "{inputs:?}");
    assert!(inputs.iter().all(|l| l.starts_with("add ")), "{inputs:?}");
    // The state at the end holds every item everywhere.
    let end = log.state_at(log.events.len() as u64);
    let all = &end.nodes[0].vars["items"];
    assert!(end.nodes.iter().all(|n| n.up && &n.vars["items"] == all));
    assert!(end.diverged.is_empty());
    // Before the first event nothing is up.
    assert!(log.state_at(0).nodes.iter().all(|n| !n.up));
}

#[test]
fn branches_are_exact_and_change_what_they_say() {
    let r = root();
    let log = &r.log;
    // A message sent by a sync and in flight at some cursor.
    let (k, at) = log
        .messages
        .iter()
        .enumerate()
        .find_map(|(k, m)| {
            let (d, _) = m.delivered?;
            (m.kind == "dataflow/sync" && d > m.sent_i + 1).then_some((k, m.sent_i))
        })
        .expect("a sync in flight for at least one event");
    let name = log.msg_name(k);
    assert!(log.state_at(at).in_flight.contains(&k));
    let drop = Action::Drop { msg: name.clone() };
    let (plan, label) = drop.apply(&r.plan, log, at).unwrap();
    assert!(label.contains(&name));
    let b = Execution::run(1, Some((0, at)), label, Adds, Vec::new(), plan).unwrap();
    // The same execution up to the cursor.
    for (x, y) in log.events.iter().zip(&b.log.events).take(at as usize) {
        assert_eq!((x.i, x.t, x.node, &x.label), (y.i, y.t, y.node, &y.label));
    }
    let m = b.log.find_msg(&name).expect("still sent");
    assert!(m.dropped && m.delivered.is_none(), "{m:?}");

    // A crash: the node is down right after the cursor, then back.
    let crash = Action::Crash {
        node: 1,
        down_ms: 1500,
        wipe: false,
    };
    let (plan, _) = crash.apply(&r.plan, log, at).unwrap();
    let c = Execution::run(2, Some((0, at)), "crash".into(), Adds, Vec::new(), plan).unwrap();
    let crash_i = c
        .log
        .events
        .iter()
        .find(|e| e.i > at && e.kind == LogKind::Fault && e.label == "crash")
        .expect("the crash is an event")
        .i;
    assert!(!c.log.state_at(crash_i).nodes[1].up);
    assert!(c
        .log
        .bands
        .iter()
        .any(|b| b.kind == "crash" && b.nodes == [1]));
    assert!(c.log.state_at(c.log.events.len() as u64).nodes[1].up);

    // An injected update reaches every replica. (Node 2 restarted just before it in this
    // run: a client's operation goes to the incarnation that is up when it arrives; it was
    // lost when it was bound to the crashed one.)
    let upd = Action::Update {
        node: 2,
        op: "add 777".into(),
    };
    let (plan, _) = upd.apply(&r.plan, log, at).unwrap();
    let u = Execution::run(3, Some((0, at)), "update".into(), Adds, Vec::new(), plan).unwrap();
    let end = u.log.state_at(u.log.events.len() as u64);
    assert!(end.nodes.iter().all(|n| n.vars["items"].contains("777")));

    // Bad choices are refused with the reason.
    let bad = [
        (
            Action::Drop {
                msg: "9>9:x#0".into(),
            },
            "no message named",
        ),
        (
            Action::Crash {
                node: 7,
                down_ms: 10,
                wipe: false,
            },
            "does not exist",
        ),
        (
            Action::Partition {
                a: vec![0],
                b: vec![0],
                lasts_ms: 10,
                one_way: false,
            },
            "both sides",
        ),
        (
            Action::Pause {
                node: 0,
                lasts_ms: 0,
            },
            "between 1 ms",
        ),
    ];
    for (a, why) in bad {
        let e = a.apply(&r.plan, log, at).unwrap_err();
        assert!(e.contains(why), "{a:?}: {e}");
    }
    assert!(drop.apply(&r.plan, log, 1 << 40).is_err());
}

#[test]
fn shiviz_clocks_grow_and_deliveries_follow_sends() {
    let r = root();
    let text = rasp::studio::shiviz::log(&r.log);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() % 2, 0);
    let mut last: Vec<u64> = vec![0; 3];
    for pair in lines.chunks(2) {
        let (host, clock) = pair[1].split_once(' ').expect("host clock");
        let n: usize = host.trim_start_matches('n').parse().unwrap();
        let c: serde_json::Map<String, Value> = serde_json::from_str(clock).unwrap();
        let own = c[&format!("n{n}")].as_u64().unwrap();
        assert_eq!(own, last[n] + 1, "{pair:?}");
        last[n] = own;
    }
    assert!(last.iter().all(|&c| c > 10), "{last:?}");
}

/// The HTTP API, served in-process on a real socket and asked with a real client.
#[test]
fn the_http_api_answers_and_refuses_bad_requests() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let studio = Studio::new("adds".into(), root());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, router(studio)).await });
    let base = format!("http://{addr}");
    let http = reqwest::blocking::Client::new();
    let get = |path: &str| {
        let r = http.get(format!("{base}{path}")).send().unwrap();
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    };
    let json = |s: &str| serde_json::from_str::<Value>(s).unwrap();

    let (s, body) = get("/api/executions");
    assert_eq!(s, 200);
    let v = json(&body);
    assert_eq!(v["app"], "adds");
    let total = v["executions"][0]["events"].as_u64().unwrap();
    assert!(total > 100);

    let (s, body) = get("/api/executions/0/events?from=1&to=50");
    assert_eq!(s, 200);
    let v = json(&body);
    assert_eq!(v["events"].as_array().unwrap().len(), 50);
    assert_eq!(v["events"][0]["kind"], "boot");
    let (_, body) = get("/api/executions/0/events?t0=0.5&t1=1.0");
    let v = json(&body);
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| (0.5..1.0).contains(&e["t"].as_f64().unwrap())));

    let (s, body) = get("/api/executions/0/messages?from=1&to=100");
    assert_eq!(s, 200);
    let msgs = json(&body)["messages"].as_array().unwrap().clone();
    assert!(!msgs.is_empty());
    let (s, body) = get(&format!("/api/executions/0/state?at={total}"));
    assert_eq!(s, 200);
    let st = json(&body);
    assert_eq!(st["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(st["overlay"]["connected"], true);
    assert_eq!(get("/api/executions/0/divergence").0, 200);
    assert_eq!(get("/api/executions/0/bands").0, 200);
    let (s, log) = get("/api/executions/0/shiviz");
    assert_eq!(s, 200);
    assert!(log.lines().count() > 100);

    // Bad requests: a clear error, nothing changed.
    for (path, status) in [
        ("/api/executions/9", 404),
        ("/api/executions/x/events", 400),
        ("/api/executions/0/events?from=9&to=2", 400),
        ("/api/executions/0/events?from=1&t0=1", 400),
        ("/api/executions/0/events?t0=-1", 400),
        ("/api/executions/0/events?bogus=1", 400),
        ("/api/executions/0/state?at=99999999", 400),
        ("/api/executions/0/state", 400),
        ("/api/nothing", 404),
    ] {
        let (s, body) = get(path);
        assert_eq!(s, status, "{path}: {body}");
        assert!(json(&body)["error"].is_string(), "{path}: {body}");
    }
    let post = |path: &str, body: Vec<u8>| {
        let r = http
            .post(format!("{base}{path}"))
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    };
    for body in [
        b"{".to_vec(),
        br#"{"at": 5, "action": {"type": "explode"}}"#.to_vec(),
        br#"{"at": 5, "action": {"type": "crash", "node": 9, "down_ms": 5}}"#.to_vec(),
        // Nothing to restart or heal: the run has no fault at event 5.
        br#"{"at": 5, "action": {"type": "restart", "node": 1}}"#.to_vec(),
        br#"{"at": 5, "action": {"type": "heal"}}"#.to_vec(),
        br#"{"at": 5, "action": {"type": "heal", "node": 1}}"#.to_vec(),
        vec![b'x'; 100 << 10],
    ] {
        let (s, text) = post("/api/executions/0/branch", body);
        assert!(s == 400 || s == 413, "{s}: {text}");
        assert!(json(&text)["error"].is_string(), "{s}: {text}");
    }
    assert_eq!(post("/api/upload", b"not a file".to_vec()).0, 400);
    assert_eq!(post("/api/upload", b"{\"format\": \"x\"}".to_vec()).0, 400);
    assert_eq!(
        json(&get("/api/executions").1)["executions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A branch, then its download uploaded again: the same execution.
    let m = &msgs[msgs.len() / 2];
    let at = m["sent_i"].as_u64().unwrap();
    let req = json!({"at": at, "action": {"type": "drop", "msg": m["id"]}});
    let (s, body) = post("/api/executions/0/branch", req.to_string().into_bytes());
    assert_eq!(s, 201, "{body}");
    let b = json(&body);
    assert_eq!(b["id"], 1);
    assert_eq!(b["parent"]["id"], 0);
    let (s, file) = get("/api/executions/1/download");
    assert_eq!(s, 200);
    let (s, body) = post("/api/upload", file.into_bytes());
    assert_eq!(s, 201, "{body}");
    let up = json(&body);
    assert_eq!(up["events"], b["events"]);
    assert_eq!(up["parent"], Value::Null);

    // A fuzz trace file (MessagePack) opens too, with its violation.
    let plan = args().plan(&Adds).unwrap();
    let path = std::env::temp_dir().join(format!("rasp-studio-{}.trace", std::process::id()));
    write_failure(&Adds, Vec::new(), Some(0), &plan, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(TraceFile::from_bytes(&bytes).is_ok());
    let (s, body) = post("/api/upload", bytes);
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        json(&body)["events"],
        json(&get("/api/executions/0").1)["events"]
    );
    let _ = std::fs::remove_file(path);
}
