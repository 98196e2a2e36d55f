//! `rasp studio --attach ADDR,ADDR,...`: the live view of a running cluster of real rasp nodes,
//! drawn in the browser from each node's HTTP API ([`crate::http`]).
//!
//! ```sh
//! rasp studio --attach 127.0.0.1:8080,127.0.0.1:8081,127.0.0.1:8082
//! # studio=http://127.0.0.1:40123/live
//! ```
//!
//! # What it does
//!
//! One poller task per attached node asks it, every `--interval-ms` (default
//! [`DEFAULT_INTERVAL_MS`]), for `GET /health`, `/overlay`, `/vars`, each held variable's
//! `/vars/{id}` and `/metrics`, each request with a [`REQUEST_TIMEOUT`] time-out. A node is
//! **down** as soon as one of these requests fails (refused, reset, timed out, an error status,
//! an answer that is not what the API sends): its error text is kept and shown, its
//! neighbours and rates are cleared, its last variables are kept but left out of the checks.
//! From `/metrics` (the Prometheus text of [`crate::http::metrics`]) the poller reads the
//! message counters per kind (`rasp_messages_sent_total`, `rasp_messages_received_total`,
//! `rasp_message_bytes_sent_total`, `rasp_message_bytes_received_total`) and derives a
//! **rate per kind**: the counters' deltas over the time between two answers at least
//! [`RATE_WINDOW`] (or one interval) apart.
//!
//! After each poll the [`Snapshot`] of the cluster is recomputed with the checks Lasp's
//! Sprinter made on the overlay (Meiklejohn et al., "Partisan: Scaling the Distributed Actor
//! Runtime", USENIX ATC 2019, section 5; the Lasp talk's slides 122–129; the same checks
//! as `rasp overlay`, [`rasp_membership::overlay::Overlay::report`]), taken over the **live**
//! nodes: whether the graph of active views is connected, which nodes are isolated (no live
//! neighbour), which links are asymmetric (`a` lists `b`, `b` does not list `a`), which links
//! point to a node that is down or not attached; and per variable whether the live replicas
//! hold equal values, and which nodes differ from the value most of them hold.
//!
//! # Endpoints of the studio
//!
//! | request | answer |
//! |---|---|
//! | `GET /live` | the page (`assets/live.html`, `live.js`, `live.css`: plain JavaScript, no build step, nothing fetched from elsewhere) |
//! | `GET /api/live` | the current [`Snapshot`] as JSON |
//! | `GET /api/live/stream` | server-sent events: a `snapshot` event with the snapshot now and at each change (a slow reader skips to the latest), and a keep-alive comment every 5 s; at most [`MAX_STREAMS`] open |
//! | `GET /assets/live.js`, `/assets/live.css` | the page's script and style |
//!
//! The studio listens on loopback by default (`--addr 127.0.0.1:0`) and prints
//! `studio=http://ADDR/live` on stdout once it listens; it runs until SIGINT or SIGTERM. With
//! `--token` (or `RASP_TOKEN`) or `--token-file`, every request to the nodes carries
//! `Authorization: Bearer <token>`, as `rasp var` does ([`crate::http::client`]).
//!
//! # Bounded memory
//!
//! Whatever the nodes answer, the studio keeps at most, per node: [`MAX_VARS`] variables
//! (the first by id; the snapshot says when there were more), [`MAX_VALUE_BYTES`] bytes of
//! JSON per value (a larger value is kept as a truncated preview, and compared by a digest of
//! its full text), [`MAX_LIST`] neighbours and passive-view entries, [`MAX_KINDS`] message
//! kinds, and [`MAX_ERROR_CHARS`] characters of error text. No answer is read past
//! [`MAX_BODY_BYTES`] (a larger one is an error). At most [`MAX_NODES`] nodes can be
//! attached.

use crate::cli::{config_error, runtime, ShutdownSignal};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Args;
use futures::StreamExt;
use rasp_membership::overlay::Overlay;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

/// Default time between two polls of a node, in milliseconds.
pub const DEFAULT_INTERVAL_MS: u64 = 500;
/// Shortest `--interval-ms` accepted.
pub const MIN_INTERVAL_MS: u64 = 50;
/// Longest `--interval-ms` accepted (one minute).
pub const MAX_INTERVAL_MS: u64 = 60_000;
/// Time-out of each request to a node (connecting, answering and reading the answer): a
/// node that stops answering shows as down within one interval plus this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Shortest span message rates are measured over (or the interval, if longer): over a
/// shorter one, a slow answer followed by a quick one would turn two messages into a
/// thousand per second.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Most nodes attached at once.
pub const MAX_NODES: usize = 64;
/// Most variables kept per node.
pub const MAX_VARS: usize = 128;
/// Most bytes of JSON kept per variable value (beyond: a truncated preview).
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Largest answer read from a node.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most neighbours (and passive-view entries) kept per node.
pub const MAX_LIST: usize = 256;
/// Most message kinds kept per node.
pub const MAX_KINDS: usize = 64;
/// Most characters of error text kept per node.
pub const MAX_ERROR_CHARS: usize = 300;
/// Most event streams (`/api/live/stream`) open at once.
pub const MAX_STREAMS: usize = 32;
/// Variable values fetched at once from one node.
const VAR_CONCURRENCY: usize = 8;

/// `rasp studio` flags.
#[derive(Debug, Clone, Args)]
pub struct LiveArgs {
    /// The nodes' HTTP API addresses (host:port as printed in their `http=` start line, or
    /// http://host:port), comma-separated or repeated
    #[arg(
        long,
        required = true,
        value_delimiter = ',',
        value_name = "ADDR,ADDR,..."
    )]
    pub attach: Vec<String>,
    /// Time between two polls of each node, in milliseconds
    #[arg(long, default_value_t = DEFAULT_INTERVAL_MS, value_name = "MS")]
    pub interval_ms: u64,
    /// Where the studio's page listens (host:port); loopback by default
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub addr: SocketAddr,
    /// The nodes' bearer token
    #[arg(
        long,
        env = "RASP_TOKEN",
        value_name = "TOKEN",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// File holding the nodes' bearer token (one line)
    #[arg(long, env = "RASP_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

/// An attached node: the address as shown, and the base URL of its API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`.
    pub addr: String,
    /// `http://host:port` (or `https://`).
    pub base: String,
}

/// Parses one `--attach` address: `host:port`, or `http://host:port` / `https://host:port`
/// with no path, query or credentials.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("an empty address in --attach".into());
    }
    let bad = |why: &str| {
        format!("--attach {s:?}: {why} (expected host:port, e.g. 127.0.0.1:8080, as a node prints in its http= line)")
    };
    let url_text = if s.contains("://") {
        s.to_string()
    } else {
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(bad("no port"));
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad("the port is not a number in 1..=65535")),
            Ok(_) => {}
        }
        format!("http://{s}")
    };
    let url = reqwest::Url::parse(&url_text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http:// and https:// are served by a node"));
    }
    let host = url.host_str().ok_or_else(|| bad("no host"))?.to_string();
    let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
    if !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(bad(
            "give the node's address only, no path, query or credentials",
        ));
    }
    Ok(Target {
        addr: format!("{host}:{port}"),
        base: format!("{}://{host}:{port}", url.scheme()),
    })
}

/// One variable as a node holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VarState {
    /// Its JSON type name (`orset`, `gcounter`, ...).
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether it is the output of an operator.
    pub derived: bool,
    /// Its value (a truncated preview string when `truncated`).
    pub value: Value,
    /// Whether `value` is a preview of a value larger than [`MAX_VALUE_BYTES`].
    pub truncated: bool,
    /// A digest of the value's full JSON text: replicas with equal values have equal digests.
    pub digest: Option<String>,
    /// Why the value could not be read, if it could not (then no digest).
    pub error: Option<String>,
}

/// Message rates of one kind, per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    /// Messages sent per second.
    pub sent: f64,
    /// Messages received per second.
    pub received: f64,
    /// Payload bytes sent to other nodes per second.
    pub bytes_sent: f64,
    /// Payload bytes received from other nodes per second.
    pub bytes_received: f64,
}

/// The message counters of one kind, as `/metrics` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounters {
    /// `rasp_messages_sent_total`.
    pub sent: u64,
    /// `rasp_messages_received_total`.
    pub received: u64,
    /// `rasp_message_bytes_sent_total`.
    pub bytes_sent: u64,
    /// `rasp_message_bytes_received_total`.
    pub bytes_received: u64,
}

/// What the studio knows of one attached node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeState {
    /// The address it was attached by (`host:port`).
    pub addr: String,
    /// Whether its last poll was answered in full.
    pub up: bool,
    /// Its node id (decimal text: it may not fit a JavaScript number), once it answered.
    pub node_id: Option<String>,
    /// Its membership mode (`hyparview`, `full`, ...).
    pub mode: Option<String>,
    /// Its active view (node ids), while up.
    pub neighbours: Vec<String>,
    /// Its passive view (node ids), while up.
    pub passive: Vec<String>,
    /// Open connections, while up.
    pub connected: usize,
    /// Its held variables (the first [`MAX_VARS`] by id), as last read.
    pub vars: BTreeMap<String, VarState>,
    /// How many variables it holds (may exceed `vars.len()`).
    pub vars_held: usize,
    /// Message rates per kind (the first [`MAX_KINDS`] kinds by name), while up.
    pub rates: BTreeMap<String, Rate>,
    /// Why it is down (its last error, or [`NOT_POLLED`] before its first answer), if it is.
    pub error: Option<String>,
}

/// The error of a node not polled yet.
pub const NOT_POLLED: &str = "no answer yet";

impl NodeState {
    /// A node not polled yet.
    pub fn new(addr: &str) -> Self {
        NodeState {
            addr: addr.to_string(),
            up: false,
            node_id: None,
            mode: None,
            neighbours: Vec::new(),
            passive: Vec::new(),
            connected: 0,
            vars: BTreeMap::new(),
            vars_held: 0,
            rates: BTreeMap::new(),
            error: Some(NOT_POLLED.into()),
        }
    }
}

/// The check of one variable over the live replicas holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VarCheck {
    /// The variable.
    pub id: String,
    /// Live nodes whose value was read.
    pub replicas: usize,
    /// Whether all of them hold the same value.
    pub equal: bool,
    /// Nodes (addresses) whose value differs from the one most replicas hold (ties: the
    /// value of the first node in `--attach` order).
    pub differing: Vec<String>,
    /// Live nodes that do not hold it.
    pub missing: Vec<String>,
}

/// The checks over the live nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checks {
    /// Nodes up.
    pub live: usize,
    /// Addresses of the nodes down.
    pub down: Vec<String>,
    /// Whether the live nodes form one component over their active views (false with none).
    pub connected: bool,
    /// Component sizes, largest first.
    pub components: Vec<usize>,
    /// Live nodes (addresses, in `--attach` order) with no live neighbour in either direction.
    pub isolated: Vec<String>,
    /// `[a, b]` (addresses): live `a` lists live `b`, `b` does not list `a`.
    pub asymmetric: Vec<[String; 2]>,
    /// `[a, id]`: live `a` lists node `id`, which is down or not attached.
    pub dangling: Vec<[String; 2]>,
    /// One check per variable held by a live node, by id.
    pub vars: Vec<VarCheck>,
    /// Ids of the variables whose live replicas differ.
    pub diverged: Vec<String>,
}

/// The checks of the overlay and of the variables over the live nodes (see the module docs).
pub fn checks(nodes: &[NodeState]) -> Checks {
    let live: Vec<&NodeState> = nodes
        .iter()
        .filter(|n| n.up && n.node_id.is_some())
        .collect();
    let mut by_id: BTreeMap<&str, &str> = BTreeMap::new();
    for n in &live {
        if let Some(id) = &n.node_id {
            by_id.entry(id.as_str()).or_insert(n.addr.as_str());
        }
    }
    let mut overlay: Overlay<String> = Overlay::new();
    let mut dangling = Vec::new();
    for n in &live {
        let mut view = Vec::new();
        for m in &n.neighbours {
            match by_id.get(m.as_str()) {
                Some(a) => view.push((*a).to_string()),
                None => dangling.push([n.addr.clone(), m.clone()]),
            }
        }
        overlay.insert(n.addr.clone(), view);
    }
    let report = overlay.report();
    let mut asymmetric: Vec<[String; 2]> =
        report.asymmetric.into_iter().map(|(a, b)| [a, b]).collect();
    asymmetric.sort();
    dangling.sort();
    let ids: BTreeSet<&str> = live
        .iter()
        .flat_map(|n| n.vars.keys().map(String::as_str))
        .collect();
    let mut vars = Vec::new();
    let mut diverged = Vec::new();
    for id in ids {
        // Digest → the nodes holding that value, in --attach order.
        let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
        let mut missing = Vec::new();
        for n in &live {
            match n.vars.get(id) {
                Some(VarState {
                    digest: Some(d), ..
                }) => match groups.iter_mut().find(|(g, _)| *g == d.as_str()) {
                    Some((_, holders)) => holders.push(&n.addr),
                    None => groups.push((d.as_str(), vec![&n.addr])),
                },
                Some(_) => {}
                None => missing.push(n.addr.clone()),
            }
        }
        let replicas = groups.iter().map(|(_, h)| h.len()).sum();
        // The most held value; the first group (first node in order) wins ties.
        let majority = groups
            .iter()
            .enumerate()
            .max_by(|(i, a), (j, b)| a.1.len().cmp(&b.1.len()).then(j.cmp(i)))
            .map(|(i, _)| i);
        let mut differing: Vec<String> = groups
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != majority)
            .flat_map(|(_, (_, h))| h.iter().map(|a| a.to_string()))
            .collect();
        differing.sort();
        let equal = groups.len() <= 1;
        if !equal {
            diverged.push(id.to_string());
        }
        vars.push(VarCheck {
            id: id.to_string(),
            replicas,
            equal,
            differing,
            missing,
        });
    }
    Checks {
        live: live.len(),
        down: nodes
            .iter()
            .filter(|n| !n.up)
            .map(|n| n.addr.clone())
            .collect(),
        connected: !live.is_empty() && report.components.len() == 1,
        components: report.components,
        // In --attach order, as the rest.
        isolated: live
            .iter()
            .filter(|n| report.isolated.contains(&n.addr))
            .map(|n| n.addr.clone())
            .collect(),
        asymmetric,
        dangling,
        vars,
        diverged,
    }
}

/// What the page draws: every attached node and the checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Bumped at each change of the rest (a node up or down, a view, a value, a rate, a
    /// check): a quiet cluster keeps its `seq`, and the stream sends no event for it.
    pub seq: u64,
    /// The poll interval, in milliseconds.
    pub interval_ms: u64,
    /// The attached nodes, in `--attach` order.
    pub nodes: Vec<NodeState>,
    /// The checks over the live ones.
    pub checks: Checks,
}

/// Parses the message counters per kind out of the Prometheus text of `/metrics` (see
/// [`crate::http::metrics`]); other families are skipped, and so are kinds beyond the first
/// [`MAX_KINDS`] by name.
pub fn parse_kind_counters(text: &str) -> BTreeMap<String, KindCounters> {
    let mut out: BTreeMap<String, KindCounters> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, labels, value)) = parse_sample(line) else {
            continue;
        };
        let field: fn(&mut KindCounters) -> &mut u64 = match name {
            "rasp_messages_sent_total" => |k| &mut k.sent,
            "rasp_messages_received_total" => |k| &mut k.received,
            "rasp_message_bytes_sent_total" => |k| &mut k.bytes_sent,
            "rasp_message_bytes_received_total" => |k| &mut k.bytes_received,
            _ => continue,
        };
        let Some((_, kind)) = labels.into_iter().find(|(k, _)| k == "kind") else {
            continue;
        };
        if !out.contains_key(&kind) {
            if out.len() >= MAX_KINDS {
                match out.keys().next_back() {
                    Some(last) if kind < *last => {
                        let last = last.clone();
                        out.remove(&last);
                    }
                    _ => continue,
                }
            }
            out.insert(kind.clone(), KindCounters::default());
        }
        if let Some(k) = out.get_mut(&kind) {
            // Counters are integers; a float text is rounded down, a negative one is 0.
            *field(k) = value.max(0.0) as u64;
        }
    }
    out
}

/// A sample's labels, `(name, value)` in order.
type Labels = Vec<(String, String)>;

/// One sample line: `name{k="v",...} value [timestamp]`.
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..end];
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        loop {
            while chars.next_if(|(_, c)| *c == ',' || *c == ' ').is_some() {}
            match chars.peek() {
                Some((i, '}')) => {
                    rest = &r[i + 1..];
                    break;
                }
                None => return None,
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut val = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => val.push('\n'),
                        c => val.push(c),
                    },
                    c => val.push(c),
                }
            }
            labels.push((key.trim().to_string(), val));
        }
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some((name, labels, value))
}

/// The rates between two readings of the counters `dt` seconds apart. A counter that went
/// back (the node restarted) counts from zero.
pub fn rates(
    prev: &BTreeMap<String, KindCounters>,
    now: &BTreeMap<String, KindCounters>,
    dt: f64,
) -> BTreeMap<String, Rate> {
    if dt <= 0.0 {
        return BTreeMap::new();
    }
    let per_s = |a: u64, b: u64| {
        let d = if b >= a { b - a } else { b };
        // One decimal: the page shows no more, and equal rates keep the snapshot equal.
        ((d as f64 / dt) * 10.0).round() / 10.0
    };
    now.iter()
        .map(|(kind, c)| {
            let p = prev.get(kind).copied().unwrap_or_default();
            (
                kind.clone(),
                Rate {
                    sent: per_s(p.sent, c.sent),
                    received: per_s(p.received, c.received),
                    bytes_sent: per_s(p.bytes_sent, c.bytes_sent),
                    bytes_received: per_s(p.bytes_received, c.bytes_received),
                },
            )
        })
        .collect()
}

/// A stable digest of a JSON text (FNV-1a, 64 bits), as 16 hex digits.
fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `s` cut to at most `max` characters (with an ellipsis when cut).
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// A variable as kept from its `/vars/{id}` answer.
pub fn var_state(answer: &Value) -> VarState {
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    let text = value.to_string();
    let truncated = text.len() > MAX_VALUE_BYTES;
    VarState {
        ty: clip(answer["type"].as_str().unwrap_or("?"), 64),
        derived: answer["derived"].as_bool().unwrap_or(false),
        digest: Some(digest(&text)),
        value: if truncated {
            Value::String(clip(&text, MAX_VALUE_BYTES / 4))
        } else {
            value
        },
        truncated,
        error: None,
    }
}

/// Why a request to a node failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FetchError {
    /// No answer: refused, reset, timed out, not HTTP.
    Transport(String),
    /// An error status, with the API's message.
    Status(u16, String),
    /// An answer larger than [`MAX_BODY_BYTES`], or not what the API sends.
    Body(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Transport(e) | FetchError::Body(e) => f.write_str(e),
            FetchError::Status(s, m) => write!(f, "{s}: {m}"),
        }
    }
}

/// A request's failure in a few words: `timed out after 1 s`, `cannot connect: <cause>`, or
/// `bad answer: <cause>`, where the cause is the innermost error (say, `Connection refused`
/// or `invalid HTTP version parsed`).
fn describe_error(e: &reqwest::Error) -> String {
    let mut inner: &(dyn std::error::Error + 'static) = e;
    while let Some(c) = inner.source() {
        inner = c;
    }
    let cause = inner.to_string();
    if e.is_timeout() {
        format!("timed out after {} s", REQUEST_TIMEOUT.as_secs_f64())
    } else if e.is_connect() {
        format!("cannot connect: {cause}")
    } else {
        format!("bad answer: {cause}")
    }
}

/// How the poller talks to the nodes.
#[derive(Clone)]
struct Fetcher {
    client: reqwest::Client,
    token: Option<Arc<str>>,
}

impl Fetcher {
    async fn bytes(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let mut req = self.client.get(url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| FetchError::Transport(describe_error(&e)))?;
        let too_large = || FetchError::Body(format!("answer larger than {MAX_BODY_BYTES} bytes"));
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Transport(describe_error(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let msg = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(FetchError::Status(status.as_u16(), clip(&msg, 200)));
        }
        Ok(body)
    }

    async fn json(&self, url: &str) -> Result<Value, FetchError> {
        let body = self.bytes(url).await?;
        serde_json::from_slice(&body)
            .map_err(|e| FetchError::Body(format!("the answer is not JSON: {e}")))
    }
}

/// What one full poll of a node read.
struct Fresh {
    node_id: String,
    mode: Option<String>,
    neighbours: Vec<String>,
    passive: Vec<String>,
    connected: usize,
    vars: BTreeMap<String, VarState>,
    vars_held: usize,
    counters: BTreeMap<String, KindCounters>,
}

/// Node ids of a JSON array (numbers or strings), the first [`MAX_LIST`].
fn id_list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| match x {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(clip(s, 40)),
            _ => None,
        })
        .take(MAX_LIST)
        .collect()
}

/// Percent-encodes a path segment (everything but unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Polls `t` once: every endpoint, then each held variable.
async fn poll_once(f: &Fetcher, t: &Target) -> Result<Fresh, String> {
    let url = |p: &str| format!("{}{p}", t.base);
    let (u_health, u_overlay, u_vars, u_metrics) = (
        url("/health"),
        url("/overlay"),
        url("/vars"),
        url("/metrics"),
    );
    let (health, overlay, list, metrics) = tokio::join!(
        f.json(&u_health),
        f.json(&u_overlay),
        f.json(&u_vars),
        f.bytes(&u_metrics),
    );
    let health = health.map_err(|e| format!("GET /health: {e}"))?;
    let node_id = match &health["node_id"] {
        Value::Number(n) => n.to_string(),
        _ => return Err("GET /health: the answer has no node_id: not a rasp node?".into()),
    };
    let overlay = overlay.map_err(|e| format!("GET /overlay: {e}"))?;
    if !overlay.is_object() {
        return Err("GET /overlay: the answer is not an object".into());
    }
    let metrics = metrics.map_err(|e| format!("GET /metrics: {e}"))?;
    let counters = parse_kind_counters(&String::from_utf8_lossy(&metrics));
    let held: Vec<String> = match list {
        Ok(v) => {
            let mut ids: Vec<String> = v["vars"]
                .as_array()
                .ok_or("GET /vars: the answer has no vars list")?
                .iter()
                .filter(|d| d["held"].as_bool().unwrap_or(false))
                .filter_map(|d| d["id"].as_str().map(String::from))
                .collect();
            ids.sort();
            ids.dedup();
            ids
        }
        // A node without a dataflow replica has no variables.
        Err(FetchError::Status(404, _)) => Vec::new(),
        Err(e) => return Err(format!("GET /vars: {e}")),
    };
    let vars_held = held.len();
    let answers: Vec<(String, Result<Value, FetchError>)> =
        futures::stream::iter(held.into_iter().take(MAX_VARS))
            .map(|id| async {
                let r = f
                    .json(&url(&format!("/vars/{}", encode_segment(&id))))
                    .await;
                (id, r)
            })
            .buffered(VAR_CONCURRENCY)
            .collect()
            .await;
    let mut vars = BTreeMap::new();
    for (id, r) in answers {
        let state = match r {
            Ok(v) => var_state(&v),
            // Not held any more (or not yet): skipped until the next poll.
            Err(FetchError::Status(404, _)) => continue,
            Err(FetchError::Transport(e)) => {
                return Err(format!("GET /vars/{}: {e}", clip(&id, 60)))
            }
            Err(e) => VarState {
                ty: "?".into(),
                derived: false,
                value: Value::Null,
                truncated: false,
                digest: None,
                error: Some(clip(&e.to_string(), MAX_ERROR_CHARS)),
            },
        };
        vars.insert(clip(&id, 200), state);
    }
    Ok(Fresh {
        node_id,
        mode: overlay["mode"].as_str().map(|m| clip(m, 40)),
        neighbours: id_list(&overlay["neighbours"]),
        passive: id_list(&overlay["passive"]),
        connected: health["connected"].as_u64().unwrap_or(0) as usize,
        vars,
        vars_held,
        counters,
    })
}

/// The attached nodes' states and the snapshot published from them.
pub struct Hub {
    state: Mutex<HubState>,
    tx: watch::Sender<Arc<str>>,
    streams: Arc<Semaphore>,
    interval_ms: u64,
}

struct HubState {
    nodes: Vec<NodeState>,
    seq: u64,
    /// The nodes and checks of the last published snapshot, as JSON.
    last: String,
}

impl Hub {
    /// A hub for `targets`, polled every `interval_ms`; nothing polled yet.
    pub fn new(targets: &[Target], interval_ms: u64) -> Arc<Hub> {
        let nodes: Vec<NodeState> = targets.iter().map(|t| NodeState::new(&t.addr)).collect();
        let (tx, _) = watch::channel(Arc::from(""));
        let hub = Arc::new(Hub {
            state: Mutex::new(HubState {
                nodes,
                seq: 0,
                last: String::new(),
            }),
            tx,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            interval_ms,
        });
        hub.update(|_| {});
        hub
    }

    /// Changes the nodes' states with `f`, then publishes a new snapshot if anything changed.
    pub fn update(&self, f: impl FnOnce(&mut [NodeState])) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut st.nodes);
        let checks = checks(&st.nodes);
        let body = serde_json::to_string(&(&st.nodes, &checks)).unwrap_or_default();
        if body == st.last && st.seq > 0 {
            return;
        }
        st.seq += 1;
        st.last = body;
        let snap = Snapshot {
            seq: st.seq,
            interval_ms: self.interval_ms,
            nodes: st.nodes.clone(),
            checks,
        };
        let text = serde_json::to_string(&snap).unwrap_or_default();
        self.tx.send_replace(Arc::from(text));
    }

    /// The current snapshot as JSON.
    pub fn snapshot_json(&self) -> Arc<str> {
        self.tx.borrow().clone()
    }
}

/// Polls node `i` of the hub every `interval`, forever.
async fn poll_loop(hub: Arc<Hub>, i: usize, target: Target, f: Fetcher, interval: Duration) {
    let mut prev: Option<(Instant, BTreeMap<String, KindCounters>)> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = poll_once(&f, &target).await;
        let now = Instant::now();
        hub.update(|nodes| {
            let n = &mut nodes[i];
            match result {
                Ok(fresh) => {
                    let window = interval.max(RATE_WINDOW);
                    match &prev {
                        // Too soon after the reading rates are taken from (a slow poll and
                        // a quick one): the rates stand, the next poll measures a longer span.
                        Some((t, _)) if now - *t < window => {}
                        Some((t, p)) => {
                            n.rates = rates(p, &fresh.counters, (now - *t).as_secs_f64());
                            prev = Some((now, fresh.counters));
                        }
                        None => {
                            n.rates = BTreeMap::new();
                            prev = Some((now, fresh.counters));
                        }
                    }
                    n.up = true;
                    n.error = None;
                    n.node_id = Some(fresh.node_id);
                    n.mode = fresh.mode;
                    n.neighbours = fresh.neighbours;
                    n.passive = fresh.passive;
                    n.connected = fresh.connected;
                    n.vars = fresh.vars;
                    n.vars_held = fresh.vars_held;
                }
                Err(e) => {
                    if n.up {
                        tracing::warn!(node = %n.addr, "down: {e}");
                    }
                    prev = None;
                    n.up = false;
                    n.error = Some(clip(&e, MAX_ERROR_CHARS));
                    n.neighbours.clear();
                    n.passive.clear();
                    n.connected = 0;
                    n.rates.clear();
                }
            }
        });
    }
}

async fn page() -> Html<&'static str> {
    Html(include_str!("assets/live.html"))
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/live.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/live.css"),
    )
}

async fn api_snapshot(State(hub): State<Arc<Hub>>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        hub.snapshot_json().to_string(),
    )
}

async fn api_stream(State(hub): State<Arc<Hub>>) -> Response {
    let Ok(permit) = hub.streams.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many open streams (at most {MAX_STREAMS})"),
        )
            .into_response();
    };
    let mut rx = hub.tx.subscribe();
    let first = rx.borrow_and_update().clone();
    let stream = futures::stream::unfold(
        (Some(first), rx, permit),
        |(first, mut rx, permit)| async move {
            let data = match first {
                Some(d) => d,
                None => {
                    rx.changed().await.ok()?;
                    rx.borrow_and_update().clone()
                }
            };
            let ev = Event::default().event("snapshot").data(&*data);
            Some((Ok::<_, std::convert::Infallible>(ev), (None, rx, permit)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
        .into_response()
}

/// The studio's live routes (see the module docs) over `hub`.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/live", get(page))
        .route("/api/live", get(api_snapshot))
        .route("/api/live/stream", get(api_stream))
        .route("/assets/live.js", get(script))
        .route("/assets/live.css", get(style))
        .with_state(hub)
}

/// Checks the flags: the targets (parsed, no duplicates, at most [`MAX_NODES`]), the
/// interval, the token.
pub fn validate(args: &LiveArgs) -> Result<(Vec<Target>, Option<String>), String> {
    let mut targets: Vec<Target> = Vec::new();
    for a in &args.attach {
        let t = parse_target(a)?;
        if targets.iter().any(|u| u.base == t.base) {
            return Err(format!("--attach lists {} twice", t.addr));
        }
        targets.push(t);
    }
    if targets.is_empty() {
        return Err("--attach needs at least one node address".into());
    }
    if targets.len() > MAX_NODES {
        return Err(format!(
            "--attach lists {} nodes; at most {MAX_NODES} can be attached",
            targets.len()
        ));
    }
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&args.interval_ms) {
        return Err(format!(
            "--interval-ms {} is out of range {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS}",
            args.interval_ms
        ));
    }
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) if t.trim().is_empty() => return Err("--token is empty".into()),
        (Some(t), _) => Some(t.trim().to_string()),
        (None, Some(p)) => Some(crate::http::read_token(p).map_err(|e| e.to_string())?),
        (None, None) => None,
    };
    Ok((targets, token))
}

/// Runs `rasp studio --attach ...` until SIGINT or SIGTERM.
pub fn run(args: LiveArgs) -> ExitCode {
    let (targets, token) = match validate(&args) {
        Ok(v) => v,
        Err(e) => return config_error(e),
    };
    runtime().block_on(async move {
        let signal = ShutdownSignal::install();
        let client = match reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("rasp: HTTP client: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(args.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rasp: cannot listen on {}: {e}", args.addr);
                return ExitCode::FAILURE;
            }
        };
        let local = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("rasp: studio listener address: {e}");
                return ExitCode::FAILURE;
            }
        };
        if !local.ip().is_loopback() {
            tracing::warn!(
                %local,
                "the studio listens beyond loopback: anyone who reaches it sees the nodes' variables"
            );
        }
        let hub = Hub::new(&targets, args.interval_ms);
        let fetcher = Fetcher {
            client,
            token: token.map(Arc::from),
        };
        let interval = Duration::from_millis(args.interval_ms);
        for (i, t) in targets.iter().enumerate() {
            tokio::spawn(poll_loop(
                hub.clone(),
                i,
                t.clone(),
                fetcher.clone(),
                interval,
            ));
        }
        println!("studio=http://{local}/live");
        tracing::info!(%local, nodes = targets.len(), "studio live view listening");
        tokio::select! {
            r = axum::serve(listener, router(hub)) => {
                if let Err(e) = r {
                    eprintln!("rasp: studio server stopped: {e}");
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            _ = signal.wait() => ExitCode::SUCCESS,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses() {
        let t = parse_target("127.0.0.1:8080").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080");
        assert_eq!(t.base, "http://127.0.0.1:8080");
        assert_eq!(
            parse_target("http://localhost:9/").unwrap().base,
            "http://localhost:9"
        );
        assert_eq!(parse_target("[::1]:80").unwrap().addr, "[::1]:80");
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:",
            ":80",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "host:port",
            "ftp://h:1",
            "http://h:1/vars",
            "http://u:p@h:1",
            "not an address:80",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_target("127.0.0.1").unwrap_err();
        assert!(e.contains("no port") && e.contains("host:port"), "{e}");
    }

    fn args(attach: &[&str]) -> LiveArgs {
        LiveArgs {
            attach: attach.iter().map(|s| s.to_string()).collect(),
            interval_ms: DEFAULT_INTERVAL_MS,
            addr: "127.0.0.1:0".parse().unwrap(),
            token: None,
            token_file: None,
        }
    }

    #[test]
    fn flags() {
        assert_eq!(validate(&args(&["h:1", "h:2"])).unwrap().0.len(), 2);
        let e = validate(&args(&["h:1", "http://h:1"])).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let mut a = args(&["h:1"]);
        a.interval_ms = 0;
        assert!(validate(&a).unwrap_err().contains("--interval-ms"));
        a.interval_ms = 100;
        a.token = Some("  s3cret ".into());
        assert_eq!(validate(&a).unwrap().1.as_deref(), Some("s3cret"));
        let many: Vec<String> = (1..=MAX_NODES + 1).map(|p| format!("h:{p}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(validate(&args(&many)).unwrap_err().contains("at most"));
    }

    #[test]
    fn metrics_text() {
        let text = "# TYPE rasp_messages_sent counter\n\
            rasp_messages_sent_total{kind=\"dataflow/sync\"} 12\n\
            rasp_messages_received_total{kind=\"dataflow/sync\"} 7\n\
            rasp_message_bytes_sent_total{kind=\"dataflow/sync\"} 1200\n\
            rasp_message_bytes_received_total{kind=\"a \\\"q\\\" b\"} 5\n\
            rasp_events_total{name=\"x\",label=\"y\"} 4\n\
            rasp_messages_sent_total{other=\"k\"} 3\n\
            rasp_messages_sent_total{kind=\"broken\n\
            garbage line\n\
            # EOF\n";
        let c = parse_kind_counters(text);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(
            c["dataflow/sync"],
            KindCounters {
                sent: 12,
                received: 7,
                bytes_sent: 1200,
                bytes_received: 0
            }
        );
        assert_eq!(c["a \"q\" b"].bytes_received, 5);
        // The encoder's own output parses the same way.
        let mut s = crate::http::metrics::Scrape::default();
        s.runtime.kinds.insert(
            "membership/hyparview".into(),
            rasp_runtime::KindStats {
                msgs_sent: 3,
                bytes_sent: 120,
                msgs_recv: 2,
                bytes_recv: 80,
            },
        );
        let c = parse_kind_counters(&crate::http::metrics::encode_scrape(&s));
        assert_eq!(
            c["membership/hyparview"],
            KindCounters {
                sent: 3,
                received: 2,
                bytes_sent: 120,
                bytes_received: 80
            }
        );
    }

    #[test]
    fn kinds_are_bounded() {
        let text: String = (0..MAX_KINDS + 20)
            .rev()
            .map(|i| format!("rasp_messages_sent_total{{kind=\"k{i:03}\"}} {i}\n"))
            .collect();
        let c = parse_kind_counters(&text);
        assert_eq!(c.len(), MAX_KINDS);
        assert!(c.contains_key("k000"));
        assert!(!c.contains_key(&format!("k{:03}", MAX_KINDS)));
    }

    #[test]
    fn rates_are_deltas_over_time() {
        let k = |sent, received| KindCounters {
            sent,
            received,
            bytes_sent: sent * 10,
            bytes_received: 0,
        };
        let prev = BTreeMap::from([("a".to_string(), k(10, 4))]);
        let now = BTreeMap::from([("a".to_string(), k(20, 5)), ("b".to_string(), k(3, 0))]);
        let r = rates(&prev, &now, 0.5);
        assert_eq!(r["a"].sent, 20.0);
        assert_eq!(r["a"].received, 2.0);
        assert_eq!(r["a"].bytes_sent, 200.0);
        assert_eq!(r["b"].sent, 6.0);
        // A restart: the counter went back, it counts from zero.
        let r = rates(&now, &prev, 1.0);
        assert_eq!(r["a"].sent, 10.0);
        assert!(rates(&prev, &now, 0.0).is_empty());
    }

    fn node(addr: &str, id: u64, up: bool, neighbours: &[u64]) -> NodeState {
        let mut n = NodeState::new(addr);
        n.up = up;
        n.error = (!up).then(|| "refused".to_string());
        n.node_id = Some(id.to_string());
        n.neighbours = neighbours.iter().map(u64::to_string).collect();
        n
    }

    fn with_var(mut n: NodeState, id: &str, v: Value) -> NodeState {
        n.vars
            .insert(id.into(), var_state(&json!({"type": "gset", "value": v})));
        n
    }

    #[test]
    fn overlay_checks_over_live_nodes() {
        let nodes = vec![
            node("a:1", 1, true, &[2, 3]),
            node("b:1", 2, true, &[1, 3]),
            node("c:1", 3, true, &[1, 2]),
        ];
        let c = checks(&nodes);
        assert!(c.connected);
        assert_eq!(c.live, 3);
        assert!(c.isolated.is_empty() && c.asymmetric.is_empty() && c.dangling.is_empty());
        // c goes down; a and b still list it for a while.
        let mut nodes = nodes;
        nodes[2] = node("c:1", 3, false, &[]);
        let c = checks(&nodes);
        assert_eq!(c.live, 2);
        assert_eq!(c.down, vec!["c:1"]);
        assert!(c.connected);
        assert_eq!(
            c.dangling,
            vec![
                ["a:1".to_string(), "3".to_string()],
                ["b:1".to_string(), "3".to_string()]
            ]
        );
        // a lists b, b lists nobody: asymmetric, connected; d is alone.
        let nodes = vec![
            node("a:1", 1, true, &[2]),
            node("b:1", 2, true, &[]),
            node("d:1", 4, true, &[]),
        ];
        let c = checks(&nodes);
        assert!(!c.connected);
        assert_eq!(c.components, vec![2, 1]);
        assert_eq!(c.isolated, vec!["d:1"]);
        assert_eq!(c.asymmetric, vec![["a:1".to_string(), "b:1".to_string()]]);
        assert!(!checks(&[node("a:1", 1, false, &[])]).connected);
    }

    #[test]
    fn divergence_over_live_replicas() {
        let nodes = vec![
            with_var(node("a:1", 1, true, &[]), "s", json!(["x"])),
            with_var(node("b:1", 2, true, &[]), "s", json!(["x", "y"])),
            with_var(node("c:1", 3, true, &[]), "s", json!(["x"])),
            // Down: its stale value is not checked.
            with_var(node("d:1", 4, false, &[]), "s", json!(["z"])),
            with_var(node("e:1", 5, true, &[]), "t", json!(1)),
        ];
        let c = checks(&nodes);
        assert_eq!(c.diverged, vec!["s"]);
        let s = &c.vars[0];
        assert_eq!((s.id.as_str(), s.replicas, s.equal), ("s", 3, false));
        assert_eq!(s.differing, vec!["b:1"]);
        assert_eq!(s.missing, vec!["e:1"]);
        let t = &c.vars[1];
        assert!(t.equal && t.differing.is_empty());
        assert_eq!(t.missing, vec!["a:1", "b:1", "c:1"]);
        // A tie: the first node's value is the reference.
        let nodes = vec![
            with_var(node("a:1", 1, true, &[]), "s", json!(["x"])),
            with_var(node("b:1", 2, true, &[]), "s", json!(["y"])),
        ];
        assert_eq!(checks(&nodes).vars[0].differing, vec!["b:1"]);
    }

    #[test]
    fn large_values_are_kept_as_previews_with_a_full_digest() {
        let big: Vec<String> = (0..5000).map(|i| format!("element-{i}")).collect();
        let mut other = big.clone();
        other[4999] = "different".into();
        let a = var_state(&json!({"type": "gset", "value": big}));
        let b = var_state(&json!({"type": "gset", "value": other}));
        assert!(a.truncated && b.truncated);
        assert!(a.value.as_str().unwrap().len() <= MAX_VALUE_BYTES);
        assert_eq!(a.value, b.value, "same preview");
        assert_ne!(a.digest, b.digest, "different full values");
        let small = var_state(&json!({"type": "gcounter", "value": 3, "derived": true}));
        assert_eq!(
            (small.value, small.truncated, small.derived),
            (json!(3), false, true)
        );
    }

    #[test]
    fn the_hub_publishes_only_changes() {
        let targets = vec![parse_target("a:1").unwrap()];
        let hub = Hub::new(&targets, 500);
        let first: Value = serde_json::from_str(&hub.snapshot_json()).unwrap();
        assert_eq!(first["seq"], 1);
        assert_eq!(first["nodes"][0]["addr"], "a:1");
        assert_eq!(first["nodes"][0]["up"], false);
        hub.update(|_| {});
        let same: Value = serde_json::from_str(&hub.snapshot_json()).unwrap();
        assert_eq!(same["seq"], 1);
        hub.update(|n| {
            n[0].up = true;
            n[0].node_id = Some("7".into());
        });
        let next: Value = serde_json::from_str(&hub.snapshot_json()).unwrap();
        assert_eq!(next["seq"], 2);
        assert_eq!(next["checks"]["live"], 1);
        assert_eq!(next["checks"]["connected"], true);
    }

    #[test]
    fn error_text_is_clipped() {
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("ab", 3), "ab");
        assert_eq!(clip("ééé", 2), "éé…");
        assert_eq!(digest("x"), digest("x"));
        assert_ne!(digest("x"), digest("y"));
        assert_eq!(encode_segment("ads/rovio"), "ads%2Frovio");
    }
}
