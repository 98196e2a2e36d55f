//! The studio's HTTP server (axum): the page and the JSON API it reads.
//!
//! Every answer is JSON; times `t` are seconds of virtual time; event indices `i` start at 1
//! and are dense within an execution. Errors are `4xx` with `{"error": "..."}`: 404 for an
//! unknown execution or endpoint, 400 for a bad query or body, 413 for a body over the limit.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /`, `GET /assets/{file}` | the page (embedded) |
//! | `GET /api/executions` | `{app, executions: [Summary]}` (id 0 is the root) |
//! | `GET /api/executions/{id}` | its `Summary`: `{id, parent: {id, at}?, label, events, end_t, nodes: [{index, role}], violation: {invariant, message, i, t}?}` |
//! | `GET …/{id}/events?from=A&to=B` (or `?t0=X&t1=Y`) | `{total, events: [{i, t, node, kind, label, detail, msg, violation}]}`, at most 5,000 |
//! | `GET …/{id}/messages?from=A&to=B` | the remote messages sent in or crossing `[A, B]`: `{messages: [{id, from, to, kind, seq, sent_i, sent_t, delivered_i, delivered_t, dropped, duplicates, detail}]}` |
//! | `GET …/{id}/bands` | crashes, pauses and partitions as spans |
//! | `GET …/{id}/state?at=K` | the cluster right after event K: nodes (up, vars, neighbours), diverged variables, messages in flight, overlay checks |
//! | `GET …/{id}/divergence` | `{points: [[i, t, n]]}`: diverged variables, at each change |
//! | `POST …/{id}/branch` | body `{at, action}` ([`super::Action`]): `201` + the new execution's `Summary` |
//! | `GET …/{id}/download` | the execution as JSON ([`super::StudioFile`]) |
//! | `POST /api/upload` | a studio file or a `fuzz`/`shrink` trace file: `201` + `Summary` |
//! | `GET …/{id}/shiviz` | the execution as a ShiViz log ([`super::shiviz`]) |

use super::{parse_upload, Action, Execution, StudioFile, STUDIO_FORMAT};
use crate::app::log::{ExecLog, LogEvent};
use crate::app::plan::role;
use crate::app::{user_args_from_words, App};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rasp_membership::Role;
use serde_json::{json, Value};
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

/// At most this many events per `events` answer.
pub const MAX_WINDOW: u64 = 5_000;
/// At most this many messages per `messages` answer.
pub const MAX_MESSAGES: usize = 20_000;
/// The largest upload.
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;
/// At most this many executions in one studio (branches and uploads); a branch beyond is
/// refused rather than letting memory grow without bound.
pub const MAX_EXECUTIONS: usize = 256;

/// The studio's state: the app's name and the tree of executions.
pub struct Studio<A: App> {
    name: String,
    execs: RwLock<Vec<Arc<Execution<A>>>>,
}

impl<A: App> Studio<A> {
    /// A studio whose root is `root`.
    pub fn new(name: String, root: Execution<A>) -> Arc<Self> {
        Arc::new(Studio {
            name,
            execs: RwLock::new(vec![Arc::new(root)]),
        })
    }

    fn get(&self, id: usize) -> Result<Arc<Execution<A>>, ApiError> {
        self.execs
            .read()
            .expect("not poisoned")
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no execution {id}")))
    }

    fn push(
        &self,
        make: impl FnOnce(usize) -> crate::Result<Execution<A>>,
    ) -> Result<Value, ApiError> {
        let id = {
            let n = self.execs.read().expect("not poisoned").len();
            if n >= MAX_EXECUTIONS {
                return Err(ApiError::bad(format!(
                    "this studio holds {MAX_EXECUTIONS} executions already; start it again for more"
                )));
            }
            n
        };
        let exec = make(id).map_err(|e| ApiError::bad(e.to_string()))?;
        let mut all = self.execs.write().expect("not poisoned");
        let id = all.len();
        let exec = Execution { id, ..exec };
        let s = summary(&exec);
        all.push(Arc::new(exec));
        Ok(s)
    }
}

/// An error answer: a status and `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(m: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, m.into())
    }
    fn not_found(m: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, m.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// An execution id from the path, or a JSON error.
fn path_id(p: Result<Path<usize>, PathRejection>) -> ApiResult<usize> {
    p.map(|Path(id)| id)
        .map_err(|e| ApiError::bad(format!("bad execution id: {}", e.body_text())))
}

/// A request body, or a JSON error (413 past the route's limit: axum answers its own
/// rejection in plain text).
fn body(b: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    b.map_err(|r| ApiError(r.status(), r.body_text()))
}

/// A query string, or a JSON error.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad(format!("bad query: {}", e.body_text())))
}

fn secs(t: rasp_runtime::Time) -> f64 {
    t.0 as f64 / 1e9
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Server => "server",
        Role::Client => "client",
    }
}

/// An execution's summary.
pub fn summary<A: App>(e: &Execution<A>) -> Value {
    json!({
        "id": e.id,
        "parent": e.parent.map(|(id, at)| json!({"id": id, "at": at})),
        "label": e.label,
        "events": e.log.events.len(),
        "events_run": e.events,
        "truncated": e.log.truncated,
        "end_t": secs(e.end),
        "nodes": (0..e.plan.nodes)
            .map(|i| json!({"index": i, "role": role_name(role(i, e.plan.servers))}))
            .collect::<Vec<_>>(),
        "violation": e.log.violation.as_ref().map(|v| json!({
            "invariant": v.invariant,
            "message": v.message,
            "i": v.event,
            "t": secs(v.time),
        })),
    })
}

fn msg_ref(log: &ExecLog, k: usize) -> Value {
    let m = &log.messages[k];
    json!({
        "id": m.name(),
        "from": m.id.from.0,
        "to": m.id.to.0,
        "kind": m.kind,
        "seq": m.id.seq,
        "sent_i": m.sent_i,
        "sent_t": secs(m.sent_t),
    })
}

fn event_json(log: &ExecLog, e: &LogEvent) -> Value {
    json!({
        "i": e.i,
        "t": secs(e.t),
        "node": e.node,
        "kind": e.kind,
        "label": e.label,
        "detail": e.detail,
        "msg": e.msg.map(|k| msg_ref(log, k)),
        "violation": log.violation.as_ref().is_some_and(|v| v.event == e.i),
    })
}

/// The query of `events` and `messages`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    from: Option<u64>,
    to: Option<u64>,
    t0: Option<f64>,
    t1: Option<f64>,
}

impl Window {
    /// The inclusive event range it names.
    fn range(&self, log: &ExecLog) -> ApiResult<(u64, u64)> {
        let total = log.events.len() as u64;
        let at = |t: f64, what: &str| {
            if !(t.is_finite() && t >= 0.0) {
                return Err(ApiError::bad(format!(
                    "{what} must be a time in seconds, got {t}"
                )));
            }
            Ok(log.first_at(rasp_runtime::Time((t * 1e9) as u64)))
        };
        let from = match (self.from, self.t0) {
            (Some(f), None) => f.max(1),
            (None, Some(t)) => at(t, "t0")?,
            (None, None) => 1,
            (Some(_), Some(_)) => return Err(ApiError::bad("give from or t0, not both")),
        };
        let to = match (self.to, self.t1) {
            (Some(t), None) => t,
            (None, Some(t)) => at(t, "t1")?.saturating_sub(1).max(from),
            (None, None) => from.saturating_add(999),
            (Some(_), Some(_)) => return Err(ApiError::bad("give to or t1, not both")),
        };
        if to < from {
            return Err(ApiError::bad(format!("to ({to}) is before from ({from})")));
        }
        Ok((from, to.min(from.saturating_add(MAX_WINDOW - 1)).min(total)))
    }
}

async fn executions<A: App>(State(s): State<Arc<Studio<A>>>) -> Json<Value> {
    let all: Vec<Value> = s
        .execs
        .read()
        .expect("not poisoned")
        .iter()
        .map(|e| summary(e))
        .collect();
    Json(json!({ "app": s.name, "executions": all }))
}

async fn one<A: App>(
    State(s): State<Arc<Studio<A>>>,
    id: Result<Path<usize>, PathRejection>,
) -> ApiResult<Json<Value>> {
    Ok(Json(summary(&*s.get(path_id(id)?)?)))
}

async fn events<A: App>(
    State(s): State<Arc<Studio<A>>>,
    id: Result<Path<usize>, PathRejection>,
    w: Result<Query<Window>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let id = path_id(id)?;
    let e = s.get(id)?;
    let (from, to) = query(w)?.range(&e.log)?;
    let evs: Vec<Value> = e
        .log
        .events
        .iter()
        .skip(from.saturating_sub(1) as usize)
        .take_while(|ev| ev.i <= to)
        .map(|ev| event_json(&e.log, ev))
        .collect();
    Ok(Json(json!({ "total": e.log.events.len(), "events": evs })))
}

async fn messages<A: App>(
    State(s): State<Arc<Studio<A>>>,
    id: Result<Path<usize>, PathRejection>,
    w: Result<Query<Window>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let id = path_id(id)?;
    let e = s.get(id)?;
    let (from, to) = query(w)?.range(&e.log)?;
    let msgs: Vec<Value> = e
        .log
        .messages
        .iter()
        .take_while(|m| m.sent_i <= to)
        .filter(|m| match m.delivered {
            Some((d, _)) => d >= from,
            None => m.sent_i >= from || !m.dropped,
        })
        .take(MAX_MESSAGES)
        .map(|m| {
            json!({
                "id": m.name(),
                "from": m.id.from.0,
                "to": m.id.to.0,
                "kind": m.kind,
                "seq": m.id.seq,
                "sent_i": m.sent_i,
                "sent_t": secs(m.sent_t),
                "delivered_i": m.delivered.map(|d| d.0),
                "delivered_t": m.delivered.map(|d| secs(d.1)),
                "dropped": m.dropped,
                "duplicates": m.duplicates,
                "detail": m.detail,
            })
        })
        .collect();
    Ok(Json(json!({ "messages": msgs })))
}

async fn bands<A: App>(
    State(s): State<Arc<Studio<A>>>,
    id: Result<Path<usize>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let id = path_id(id)?;
    let e = s.get(id)?;
    Ok(Json(json!({ "bands": e.log.bands })))
}

/// The query of `state`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct At {
    at: u64,
}

/// Whether the live nodes' neighbour graph (taken as undirected) is connected, the live
/// nodes with no live neighbour, and the one-way links `[a, b]` (a lists b, b does not list a).
pub fn overlay_checks(up: &[bool], neighbours: &[Vec<u32>]) -> (bool, Vec<u32>, Vec<[u32; 2]>) {
    let n = up.len();
    let live = |k: u32| (k as usize) < n && up[k as usize];
    let mut adj: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n];
    let mut asymmetric = Vec::new();
    for (a, ns) in neighbours.iter().enumerate() {
        let a = a as u32;
        if !live(a) {
            continue;
        }
        for &b in ns.iter().filter(|&&b| live(b)) {
            adj[a as usize].insert(b);
            adj[b as usize].insert(a);
            if !neighbours[b as usize].contains(&a) {
                asymmetric.push([a, b]);
            }
        }
    }
    let isolated: Vec<u32> = (0..n as u32)
        .filter(|&k| live(k) && adj[k as usize].is_empty())
        .collect();
    let lives: Vec<u32> = (0..n as u32).filter(|&k| live(k)).collect();
    let connected = match lives.first() {
        None => true,
        Some(&s) => {
            let mut seen = BTreeSet::from([s]);
            let mut q = VecDeque::from([s]);
            while let Some(x) = q.pop_front() {
                for &y in &adj[x as usize] {
                    if seen.insert(y) {
                        q.push_back(y);
                    }
                }
            }
            seen.len() == lives.len()
        }
    };
    (connected, isolated, asymmetric)
}

async fn state<A: App>(
    State(s): State<Arc<Studio<A>>>,
    id: Result<Path<usize>, PathRejection>,
    q: Result<Query<At>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let id = path_id(id)?;
    let e = s.get(id)?;
    let q = query(q)?;
    let total = e.log.events.len() as u64;
    if q.at > total {
        return Err(ApiError::bad(format!(
            "event {} is beyond the execution's {total} events",
            q.at
        )));
    }
    let st = e.log.state_at(q.at);
    let t =
        q.at.checked_sub(1)
            .and_then(|k| e.log.events.get(k as usize))
            .map_or(0.0, |ev| secs(ev.t));
    let up: Vec<bool> = st.nodes.iter().map(|n| n.up).collect();
    let nbrs: Vec<Vec<u32>> = st.nodes.iter().map(|n| n.neighbours.clone()).collect();
    let (connected, isolated, asymmetric) = overlay_checks(&up, &nbrs);
    let nodes: Vec<Value> = st
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "index": i,
                "role": role_name(role(i as u32, e.plan.servers)),
                "up": n.up,
                "vars": n.vars,
                "neighbours": n.neighbours,
            })
        })
        .collect();
    Ok(Json(json!({
        "at": q.at,
        "t": t,
        "nodes": nodes,
        "diverged": st.diverged,
        "in_flight": st.in_flight.iter().map(|&k| msg_ref(&e.log, k)).collect::<Vec<_>>(),
        "overlay": {"connected": connected, "isolated": isolated, "asymmetric": asymmetric},
    })))
}

async fn divergence<A: App>(
    State(s): State<Arc<Studio<A>>>,
    id: Result<Path<usize>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let id = path_id(id)?;
    let e = s.get(id)?;
    let points: Vec<Value> = e
        .log
        .divergence
        .iter()
        .map(|(i, t, n)| json!([i, secs(*t), n]))
        .collect();
    Ok(Json(json!({ "points": points })))
}

/// The body of `branch`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchBody {
    at: u64,
    action: Action,
}

async fn branch<A: App>(
    State(s): State<Arc<Studio<A>>>,
    id: Result<Path<usize>, PathRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b: BranchBody = serde_json::from_slice(&body(bytes)?)
        .map_err(|e| ApiError::bad(format!("malformed branch request: {e}")))?;
    let parent = s.get(path_id(id)?)?;
    if let Action::Update { op, .. } = &b.action {
        parent
            .app
            .check_op(op)
            .map_err(|e| ApiError::bad(format!("update: {e}")))?;
    }
    let (plan, label) = b
        .action
        .apply(&parent.plan, &parent.log, b.at)
        .map_err(ApiError::bad)?;
    let at = b.at;
    created(s, move |new| {
        Execution::run(
            new,
            Some((parent.id, at)),
            label,
            parent.app.clone(),
            parent.args.clone(),
            plan,
        )
    })
    .await
}

/// Runs a new execution off the async threads and adds it to the tree: `201` + its summary.
async fn created<A: App>(
    s: Arc<Studio<A>>,
    make: impl FnOnce(usize) -> crate::Result<Execution<A>> + Send + 'static,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let v = tokio::task::spawn_blocking(move || s.push(make))
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the run failed: {e}"),
            )
        })??;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn download<A: App>(
    State(s): State<Arc<Studio<A>>>,
    id: Result<Path<usize>, PathRejection>,
) -> ApiResult<Response> {
    let id = path_id(id)?;
    let e = s.get(id)?;
    let f = StudioFile {
        format: STUDIO_FORMAT.into(),
        app: s.name.clone(),
        args: e.args.clone(),
        plan: e.plan.clone(),
        label: e.label.clone(),
    };
    let body = serde_json::to_string_pretty(&f)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(attachment(
        "application/json",
        &format!("{}-{id}.studio.json", s.name),
        body,
    ))
}

async fn upload<A: App>(
    State(s): State<Arc<Studio<A>>>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (args, plan, label) = parse_upload(&body(bytes)?).map_err(ApiError::bad)?;
    let base = s.get(0)?;
    let mut app = base.app.clone();
    if args != base.args {
        // The file's own flags configure the app, as `replay` does with a trace file.
        let user =
            user_args_from_words::<A::Args>(&args).map_err(|e| ApiError::bad(e.to_string()))?;
        app.configure(&user).map_err(ApiError::bad)?;
    }
    created(s, move |id| {
        Execution::run(id, None, label, app, args, plan)
    })
    .await
}

async fn shiviz<A: App>(
    State(s): State<Arc<Studio<A>>>,
    id: Result<Path<usize>, PathRejection>,
) -> ApiResult<Response> {
    let id = path_id(id)?;
    let e = s.get(id)?;
    Ok(attachment(
        "text/plain; charset=utf-8",
        &format!("rasp-{id}.shiviz.log"),
        super::shiviz::log(&e.log),
    ))
}

/// A file to download: its type, its name (spaces and quotes become dashes), its body.
fn attachment(content_type: &'static str, filename: &str, body: String) -> Response {
    let name = filename.replace([' ', '"'], "-");
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const STUDIO_JS: &str = include_str!("assets/studio.js");
const STUDIO_CSS: &str = include_str!("assets/studio.css");

async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    let (ty, body) = match file.as_str() {
        "studio.js" => ("text/javascript; charset=utf-8", STUDIO_JS),
        "studio.css" => ("text/css; charset=utf-8", STUDIO_CSS),
        _ => return ApiError::not_found(format!("no asset {file:?}")).into_response(),
    };
    ([(header::CONTENT_TYPE, ty)], body).into_response()
}

/// The studio's routes over `studio`.
pub fn router<A: App>(studio: Arc<Studio<A>>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/api/executions", get(executions::<A>))
        .route("/api/executions/{id}", get(one::<A>))
        .route("/api/executions/{id}/events", get(events::<A>))
        .route("/api/executions/{id}/messages", get(messages::<A>))
        .route("/api/executions/{id}/bands", get(bands::<A>))
        .route("/api/executions/{id}/state", get(state::<A>))
        .route("/api/executions/{id}/divergence", get(divergence::<A>))
        .route(
            "/api/executions/{id}/branch",
            post(branch::<A>).layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route("/api/executions/{id}/download", get(download::<A>))
        .route("/api/executions/{id}/shiviz", get(shiviz::<A>))
        .route(
            "/api/upload",
            post(upload::<A>).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed here".into(),
            )
        })
        .with_state(studio)
}

/// Serves the studio with `root` on `addr` until SIGINT/SIGTERM; prints
/// `studio=http://ADDR/` on stdout once it listens.
pub fn serve<A: App>(name: String, root: Execution<A>, addr: SocketAddr) -> ExitCode {
    let studio = Studio::new(name, root);
    let rt = crate::cli::runtime();
    rt.block_on(async move {
        let stop = crate::cli::ShutdownSignal::install();
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rasp: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let local = listener.local_addr().map_or(addr, |a| a);
        {
            let all = studio.execs.read().expect("not poisoned");
            let root = &all[0];
            println!(
                "execution: {} ({} events, {})",
                root.label,
                root.log.events.len(),
                root.log
                    .violation
                    .as_ref()
                    .map_or("no violation".to_string(), |v| format!(
                        "violates `{}` at event {}",
                        v.invariant, v.event
                    ))
            );
        }
        println!("studio=http://{local}/");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let app = router(studio);
        match axum::serve(listener, app)
            .with_graceful_shutdown(stop.wait())
            .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rasp: the studio stopped: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
