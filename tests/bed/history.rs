//! The bed's clients, their history, and the checker.
//!
//! **Clients** (threads of the bed process, outside every namespace, over the bridge) send
//! updates of the workload app ([`super::workload`]) to random nodes' HTTP APIs: adds of
//! fresh elements to `w/set`, removes of elements they added (on the node that acknowledged
//! the add: an observed-remove removes what that node has seen), `inc 1` of `w/hits`, and
//! `inc`/`dec` of `w/bal`. Each is logged with its node, start and end time and outcome. A
//! `200` is an **acknowledgement**: the node applied the update and made it durable before
//! answering (`rasp::http`'s module docs, "What an acknowledged update means"). Anything
//! else (refused connection, time-out of a paused node, reset of a killed one) is not: the
//! update may or may not have been applied.
//!
//! **The checker** runs after the last heal and a quiet period without updates. It waits
//! until every node answers with the same values (the convergence time is measured from
//! the last heal), then verifies:
//! - every acknowledged add is in the final set, unless a remove of it was attempted; every
//!   acknowledged remove is absent (no removed element comes back);
//! - `w/hits` is at least the acknowledged increments and at most the attempted ones;
//!   `w/bal` lies between what the acknowledged and the attempted updates allow;
//! - the derived variables equal their function of the final set (`w/marked` = the filter,
//!   `w/upper` = the map);
//! - each trigger's action ran exactly once if `w/hits` reached its threshold and no fault
//!   of the run could elect a second owner, at most once more per such fault otherwise (the
//!   replica's documented guarantee, see [`check_workload`]), and never if the threshold
//!   was not reached (`w/runs/<trigger>`);
//! - all replicas are equal.
//!
//! For the ad counter ([`super::cluster::AppKind::AdCounter`]) the clients are observers:
//! every few hundred milliseconds they read each node's `ads-with-contracts`; the checker
//! verifies no ad came back on a node after it disappeared there, that every ad was
//! removed everywhere (each removal trigger fired), and that all replicas agree.

use super::cluster::Cluster;
use super::workload::{marked, runs_id, trigger_name, upper, BAL, HITS, MARKED, SET, UPPER};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An update a client sent.
#[derive(Clone, Debug)]
pub enum Update {
    /// Add to `w/set`.
    Add(String),
    /// Remove from `w/set`.
    Remove(String),
    /// `inc` of `w/hits`.
    Hit(u64),
    /// `inc` (positive) or `dec` (negative) of `w/bal`.
    Bal(i64),
}

/// One entry of the history.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The node asked.
    pub node: usize,
    /// The update.
    pub update: Update,
    /// Sent, seconds from the start.
    pub start: f64,
    /// Answered (or given up), seconds from the start.
    pub end: f64,
    /// Acknowledged (200).
    pub acked: bool,
}

/// The history, shared by the clients.
pub type History = Arc<Mutex<Vec<Entry>>>;

/// Sends one update; whether it was acknowledged.
fn post(c: &Client, http: &str, var: &str, body: &Value) -> bool {
    let url = format!("{http}/vars/{}", var.replace('/', "%2F"));
    match c.post(url).body(body.to_string()).send() {
        Ok(r) => r.status() == 200,
        Err(_) => false,
    }
}

/// The client threads: `workers` of them, each sending one update every `interval` to a
/// random node, until `stop`.
pub struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// What they sent.
    pub history: History,
}

impl Clients {
    /// Starts the clients of the workload app.
    pub fn workload(
        c: &Cluster,
        seed: u64,
        workers: usize,
        interval: Duration,
        t0: Instant,
    ) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let history: History = Arc::default();
        let https: Vec<String> = c.nodes.iter().map(|n| n.http.clone()).collect();
        let mut threads = Vec::new();
        for w in 0..workers {
            let (stop, history, https) = (stop.clone(), history.clone(), https.clone());
            let client = c.client(Duration::from_millis(1500));
            threads.push(std::thread::spawn(move || {
                let mut rng =
                    ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(w as u64));
                let mut mine: Vec<(String, usize)> = Vec::new();
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let roll = rng.random_range(0..100);
                    let (node, update) = if roll < 15 && !mine.is_empty() {
                        let k = rng.random_range(0..mine.len());
                        let (e, node) = mine.swap_remove(k);
                        (node, Update::Remove(e))
                    } else if roll < 55 {
                        seq += 1;
                        let p = if rng.random_range(0..3) == 0 {
                            "k"
                        } else {
                            "e"
                        };
                        (
                            rng.random_range(0..https.len()),
                            Update::Add(format!("{p}{w}-{seq}")),
                        )
                    } else if roll < 85 {
                        (rng.random_range(0..https.len()), Update::Hit(1))
                    } else {
                        let v = rng.random_range(1..=5i64);
                        let v = if rng.random_range(0..2) == 0 { v } else { -v };
                        (rng.random_range(0..https.len()), Update::Bal(v))
                    };
                    let (var, body) = match &update {
                        Update::Add(e) => (SET, json!({ "add": e })),
                        Update::Remove(e) => (SET, json!({ "remove": e })),
                        Update::Hit(n) => (HITS, json!({ "inc": n })),
                        Update::Bal(v) if *v >= 0 => (BAL, json!({ "inc": v })),
                        Update::Bal(v) => (BAL, json!({ "dec": -v })),
                    };
                    let start = t0.elapsed().as_secs_f64();
                    let acked = post(&client, &https[node], var, &body);
                    let end = t0.elapsed().as_secs_f64();
                    if let (Update::Add(e), true) = (&update, acked) {
                        mine.push((e.clone(), node));
                    }
                    history.lock().unwrap().push(Entry {
                        node,
                        update,
                        start,
                        end,
                        acked,
                    });
                    std::thread::sleep(interval);
                }
            }));
        }
        Clients {
            stop,
            threads,
            history,
        }
    }

    /// Stops the clients and waits for them.
    pub fn stop(self) -> Vec<Entry> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let h = self.history.lock().unwrap();
        h.clone()
    }
}

/// Writes the history as tab-separated lines (start, end, node, update, acked) to `path`.
pub fn write_history(path: &std::path::Path, h: &[Entry]) -> std::io::Result<()> {
    let mut s = String::from("start_s\tend_s\tnode\tupdate\tacked\n");
    for e in h {
        s.push_str(&format!(
            "{:.3}\t{:.3}\t{}\t{:?}\t{}\n",
            e.start, e.end, e.node, e.update, e.acked
        ));
    }
    std::fs::write(path, s)
}

/// The outcome of a check: the figures and what went wrong.
#[derive(Debug, Default)]
pub struct Verdict {
    /// `key=value` figures, in order.
    pub figures: Vec<(String, String)>,
    /// Everything that went wrong.
    pub failures: Vec<String>,
}

impl Verdict {
    fn fig(&mut self, k: &str, v: impl ToString) {
        self.figures.push((k.to_string(), v.to_string()));
    }

    /// The one line of figures.
    pub fn line(&self) -> String {
        self.figures
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Reads `vars` on every node: `None` for a node that did not answer.
fn snapshot(c: &Cluster, client: &Client, vars: &[String]) -> Vec<Option<BTreeMap<String, Value>>> {
    (0..c.nodes.len())
        .map(|i| {
            let mut m = BTreeMap::new();
            for v in vars {
                m.insert(v.clone(), normalise(c.value(client, i, v).ok()?));
            }
            Some(m)
        })
        .collect()
}

/// Arrays sorted (sets are shown in an order that may differ between replicas).
fn normalise(v: Value) -> Value {
    match v {
        Value::Array(mut a) => {
            a.sort_by_key(|x| x.to_string());
            Value::Array(a)
        }
        v => v,
    }
}

/// Polls every node until all answer with the same values of `vars` and `done` holds of
/// them, or `timeout`; returns the values and when the first round of reads that found
/// them began.
pub fn converge(
    c: &Cluster,
    vars: &[String],
    timeout: Duration,
    done: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> Result<(BTreeMap<String, Value>, Instant), String> {
    let client = c.client(Duration::from_secs(3));
    let t = Instant::now();
    let mut last;
    loop {
        let round = Instant::now();
        let s = snapshot(c, &client, vars);
        if let Some(Some(first)) = s.first() {
            if s.iter().all(|x| x.as_ref() == Some(first)) && done(first) {
                return Ok((first.clone(), round));
            }
        }
        last = s;
        if t.elapsed() > timeout {
            let differ: Vec<String> = last
                .iter()
                .enumerate()
                .filter(|(_, x)| x.as_ref() != last[0].as_ref() || x.is_none())
                .map(|(i, x)| match x {
                    None => format!("node {i}: no answer"),
                    Some(m) => format!("node {i}: {}", short(&json!(m))),
                })
                .collect();
            return Err(format!(
                "no convergence within {timeout:?}: node 0 {}; differing: {}",
                last[0]
                    .as_ref()
                    .map(|m| short(&json!(m)))
                    .unwrap_or("no answer".into()),
                differ.join("; ")
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 400 {
        format!("{}…", &s[..s.floor_char_boundary(400)])
    } else {
        s
    }
}

/// The workload's variables.
pub fn workload_vars(triggers: &[u64]) -> Vec<String> {
    let mut v: Vec<String> = [SET, HITS, BAL, MARKED, UPPER].map(String::from).to_vec();
    v.extend(triggers.iter().map(|&t| runs_id(&trigger_name(t))));
    v
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks the workload's history against its final values (see the module docs).
///
/// `sides` is how many faults of the run could each elect one more trigger owner: a split
/// (partition, one-way, bridge) or a kill or pause, every one of which outlasts the failure
/// detector. The replica's guarantee (`rasp_dataflow::replica`'s module docs, "What 'once'
/// means") is exactly once in a connected cluster and at most once per side of such a
/// fault, so a trigger must run at least once and at most `1 + sides` times; with
/// `sides = 0` exactly once.
pub fn check_workload(
    c: &Cluster,
    history: &[Entry],
    triggers: &[u64],
    sides: usize,
    last_heal: Instant,
    timeout: Duration,
) -> Verdict {
    let mut v = Verdict::default();
    if let Err(e) = write_history(&c.dir.join("history.tsv"), history) {
        v.failures.push(format!("cannot write the history: {e}"));
    }
    let acked = history.iter().filter(|e| e.acked).count();
    v.fig("updates", history.len());
    v.fig("acked", acked);
    let acked_adds: BTreeSet<&str> = history
        .iter()
        .filter_map(|e| match (&e.update, e.acked) {
            (Update::Add(x), true) => Some(x.as_str()),
            _ => None,
        })
        .collect();
    let removes_tried: BTreeSet<&str> = history
        .iter()
        .filter_map(|e| match &e.update {
            Update::Remove(x) => Some(x.as_str()),
            _ => None,
        })
        .collect();
    let acked_removes: BTreeSet<&str> = history
        .iter()
        .filter_map(|e| match (&e.update, e.acked) {
            (Update::Remove(x), true) => Some(x.as_str()),
            _ => None,
        })
        .collect();
    let sum = |pred: &dyn Fn(&Entry) -> bool, f: &dyn Fn(&Update) -> i64| -> i64 {
        history
            .iter()
            .filter(|e| pred(e))
            .map(|e| f(&e.update))
            .sum()
    };
    let hits = |u: &Update| if let Update::Hit(n) = u { *n as i64 } else { 0 };
    let hits_acked = sum(&|e| e.acked, &hits);
    let hits_tried = sum(&|_| true, &hits);
    let bal_up = |u: &Update| {
        if let Update::Bal(x) = u {
            (*x).max(0)
        } else {
            0
        }
    };
    let bal_down = |u: &Update| {
        if let Update::Bal(x) = u {
            (-*x).max(0)
        } else {
            0
        }
    };
    // Lowest: acked incs and every dec tried; highest: every inc tried and acked decs.
    let bal_lo = sum(&|e| e.acked, &bal_up) - sum(&|_| true, &bal_down);
    let bal_hi = sum(&|_| true, &bal_up) - sum(&|e| e.acked, &bal_down);
    let vars = workload_vars(triggers);
    let expected: BTreeSet<String> = acked_adds
        .iter()
        .filter(|x| !removes_tried.contains(*x))
        .map(|x| x.to_string())
        .collect();
    let conv = converge(c, &vars, timeout, |m| {
        let set = strings(&m[SET]);
        expected.is_subset(&set) && m[HITS].as_i64().unwrap_or(0) >= hits_acked
    });
    let (fin, at) = match conv {
        Ok(x) => x,
        Err(e) => {
            // Not converged: check what the first node that answers has, to say what is lost.
            v.failures.push(e);
            let client = c.client(Duration::from_secs(3));
            let s = snapshot(c, &client, &vars);
            match s.into_iter().flatten().next() {
                Some(m) => (m, Instant::now()),
                None => {
                    v.fig("lost", "unknown");
                    return v;
                }
            }
        }
    };
    let set = strings(&fin[SET]);
    let lost_adds: Vec<&String> = expected.iter().filter(|x| !set.contains(*x)).collect();
    let back: Vec<&&str> = acked_removes.iter().filter(|x| set.contains(**x)).collect();
    let h = fin[HITS].as_i64().unwrap_or(-1);
    let b = fin[BAL].as_i64().unwrap_or(i64::MIN);
    let lost_hits = (hits_acked - h).max(0);
    let lost = lost_adds.len() as i64 + back.len() as i64 + lost_hits + i64::from(b < bal_lo);
    v.fig("lost", lost);
    v.fig("set", set.len());
    v.fig(
        "hits",
        format!("{h}(acked {hits_acked},tried {hits_tried})"),
    );
    v.fig("bal", format!("{b}(in {bal_lo}..={bal_hi})"));
    if !lost_adds.is_empty() {
        v.failures.push(format!(
            "{} acknowledged adds lost, e.g. {:?}",
            lost_adds.len(),
            &lost_adds[..lost_adds.len().min(5)]
        ));
    }
    if !back.is_empty() {
        v.failures.push(format!(
            "{} acknowledged removes undone, e.g. {:?}",
            back.len(),
            &back[..back.len().min(5)]
        ));
    }
    if h < hits_acked || h > hits_tried {
        v.failures.push(format!(
            "w/hits = {h}, outside acked {hits_acked} ..= tried {hits_tried}"
        ));
    }
    if b < bal_lo || b > bal_hi {
        v.failures
            .push(format!("w/bal = {b}, outside {bal_lo} ..= {bal_hi}"));
    }
    let want_marked: BTreeSet<String> = set.iter().filter(|s| marked(s)).cloned().collect();
    let want_upper: BTreeSet<String> = set.iter().map(|s| upper(s)).collect();
    if strings(&fin[MARKED]) != want_marked {
        v.failures
            .push("w/marked is not filter(marked, w/set)".to_string());
    }
    if strings(&fin[UPPER]) != want_upper {
        v.failures
            .push("w/upper is not map(upper, w/set)".to_string());
    }
    let mut fired = Vec::new();
    let mut extra = 0;
    for &t in triggers {
        let id = runs_id(&trigger_name(t));
        let runs = fin[&id].as_i64().unwrap_or(-1);
        fired.push(format!("{t}:{runs}"));
        let (lo, hi) = if h >= t as i64 {
            (1, 1 + sides as i64)
        } else {
            (0, 0)
        };
        if runs < lo || runs > hi {
            v.failures.push(format!(
                "trigger {} ran {runs} times (w/hits = {h}; expected {lo} ..= {hi}: {sides} \
                 faults that could each elect another owner)",
                trigger_name(t)
            ));
        } else if runs > 1 {
            extra += runs - 1;
        }
    }
    v.fig("triggers", fired.join(","));
    v.fig(
        "trigger_extra_runs",
        format!("{extra}(allowed<={sides}/trigger)"),
    );
    v.fig(
        "converged_after_heal_s",
        format!(
            "{:.2}",
            at.saturating_duration_since(last_heal).as_secs_f64()
        ),
    );
    v
}

/// Observations of `ads-with-contracts` by node, for the ad counter.
pub struct Observer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

/// The ads of an `ads-with-contracts` value (a set of `[ad, contract]` pairs).
pub fn ads(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get(0).and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl Observer {
    /// Starts reading every node's `ads-with-contracts` every 300 ms; an ad present on a
    /// node after it had disappeared there is a resurrection.
    pub fn start(c: &Cluster) -> Observer {
        let stop = Arc::new(AtomicBool::new(false));
        let https: Vec<String> = c.nodes.iter().map(|n| n.http.clone()).collect();
        let client = c.client(Duration::from_millis(1000));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen: Vec<BTreeSet<String>> = vec![BTreeSet::new(); https.len()];
            let mut gone: Vec<BTreeSet<String>> = vec![BTreeSet::new(); https.len()];
            let mut back = Vec::new();
            while !s2.load(Ordering::Relaxed) {
                for (i, h) in https.iter().enumerate() {
                    let Ok(r) = client.get(format!("{h}/vars/ads-with-contracts")).send() else {
                        continue;
                    };
                    let Ok(v) = r.text().map(|t| serde_json::from_str::<Value>(&t)) else {
                        continue;
                    };
                    let Ok(v) = v else { continue };
                    let now = ads(&v["value"]);
                    for a in &now {
                        if gone[i].contains(a) {
                            back.push(format!("node {i}: ad {a} came back"));
                            gone[i].remove(a);
                        }
                    }
                    for a in seen[i].difference(&now) {
                        gone[i].insert(a.clone());
                    }
                    seen[i] = now;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            back
        });
        Observer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; the resurrections seen.
    pub fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// Checks the ad counter: every ad removed everywhere, replicas equal, no resurrection.
pub fn check_ad_counter(
    c: &Cluster,
    ad_names: &[String],
    threshold: u64,
    resurrections: Vec<String>,
    last_heal: Instant,
    timeout: Duration,
) -> Verdict {
    let mut v = Verdict::default();
    let mut vars = vec!["ads-with-contracts".to_string()];
    vars.extend(ad_names.iter().map(|a| format!("views/{a}")));
    let conv = converge(c, &vars, timeout, |m| {
        ads(&m["ads-with-contracts"]).is_empty()
    });
    v.fig("resurrected", resurrections.len());
    if !resurrections.is_empty() {
        v.failures.push(format!(
            "{} ads came back on a node after they had gone there, e.g. {:?}",
            resurrections.len(),
            &resurrections[..resurrections.len().min(5)]
        ));
    }
    let mut at = Instant::now();
    match conv {
        Ok((m, round)) => {
            at = round;
            let views: Vec<i64> = ad_names
                .iter()
                .map(|a| m[&format!("views/{a}")].as_i64().unwrap_or(0))
                .collect();
            let total: i64 = views.iter().sum();
            let under: Vec<&String> = ad_names
                .iter()
                .zip(&views)
                .filter(|(_, &n)| n < threshold as i64)
                .map(|(a, _)| a)
                .collect();
            if !under.is_empty() {
                v.failures
                    .push(format!("ads removed below the threshold: {under:?}"));
            }
            let max = views.iter().copied().max().unwrap_or(0);
            v.fig(
                "ads_removed",
                format!("{}/{}", ad_names.len(), ad_names.len()),
            );
            v.fig("impressions", total);
            v.fig(
                "overcount_max_pct",
                format!("{:.1}", (max as f64 / threshold as f64 - 1.0) * 100.0),
            );
        }
        Err(e) => v.failures.push(e),
    }
    v.fig(
        "converged_after_heal_s",
        format!(
            "{:.2}",
            at.saturating_duration_since(last_heal).as_secs_f64()
        ),
    );
    v
}
