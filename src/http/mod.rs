//! A running node's HTTP API: query, declare and update its replicated variables, wait for
//! thresholds, watch changes, look at its overlay, and scrape its metrics. Lasp's shell
//! (declare, update, query, read) over HTTP, plus `GET /metrics` in the Prometheus text format.
//!
//! # Endpoints
//!
//! | request | answer |
//! |---|---|
//! | `GET /health` | `{"status": "ok", "node_id", "neighbours", "connected"}` once the node's atoms answer |
//! | `GET /vars` | every variable of the program: id, type, size in bytes, whether held here and derived |
//! | `GET /vars/{id}` | `{"id", "type", "rust_type", "bytes", "derived", "value"}`: the external value as JSON |
//! | `PUT /vars/{id}` | declares it, body `{"type": "orset"}` (see [`rasp_dataflow::json::JsonTypes::standard`]); 201 if new, 200 if it existed with that type |
//! | `POST /vars/{id}` | an update, e.g. `{"add": "milk"}`, `{"inc": 3}` (table in [`rasp_dataflow::json`]), made by this node's actor and replicated like any update; a 200 is an acknowledgement (see below) |
//! | `GET /vars/{id}/read?threshold=T&timeout_ms=MS` | long-poll until the threshold `T` holds (JSON, or a bare word taken as a JSON string; default `"not_bottom"`): at once if it holds, else as soon as the change that makes it hold is applied; 408 after the time-out (default 30 s, at most 300 s) |
//! | `GET /vars/{id}/watch` | server-sent events: a `value` event with the variable now and at every change of its value, sent as the change is applied; a slow reader skips to the latest (see below); the stream ends after `timeout_ms` (default and most: one hour) |
//! | `GET /overlay` | this node's membership view: mode, neighbours, passive view, replication neighbours |
//! | `GET /metrics` | Prometheus text ([`metrics`]) |
//!
//! # What an acknowledged update means
//!
//! A `200` answer to `POST /vars/{id}` means the update is **applied on this node and
//! durable**: before answering, the node writes every variable changed since its last write
//! to its store ([`Replica::persist_now`]; each write is a committed redb transaction with an
//! fsync), instead of waiting for the next sync interval. An acknowledged update therefore
//! survives a kill -9 or a power loss of this node right after the answer, even if no peer
//! heard of it yet: the restarted node loads it and ships it. If the store refuses the write,
//! the answer is `503` (the update is applied in memory and the next interval retries the
//! write, but nothing is promised). An update the node never answered (a time-out, a reset
//! connection) may or may not have been applied. The test bed's checker (`tests/bed/`)
//! checks exactly this promise: every acknowledged update is in every replica's final value.
//!
//! # Reads and watches are woken by changes
//!
//! A `/read` or `/watch` registers a subscription in the node's dataflow program
//! ([`rasp_dataflow::Program::subscribe_dyn`]) from inside the node, in the same step that
//! reads the variable's current value, so no change falls between the two. Every change of
//! the variable (a local update through the API or the app, a merge from a peer's sync) runs
//! the callback, which renders the variable and pushes it into a bounded buffer the HTTP task
//! awaits ([`feed`]); the long-poll answers, or the stream sends the event, at once. The
//! subscription is removed when the read answers or times out, when the stream ends, and
//! when the client closes the connection (`rasp_program_subscriptions` in [`metrics`] shows
//! the count).
//!
//! **A slow watcher** (one that reads its stream more slowly than the variable changes) gets
//! every change while at most [`feed::FEED_EVENTS`] events (and [`feed::FEED_BYTES`] bytes)
//! wait for it; beyond that the waiting events are dropped and the latest value is sent
//! next. Intermediate values can be skipped for a slow reader, never the latest, and a
//! watcher never holds unbounded memory. A watch sends an event when the variable's value
//! changes; a change of its state that leaves the value as it was (say, metadata of a
//! removal arriving again) sends none.
//!
//! # Bad requests
//!
//! Every error is a JSON object `{"error": "<message>", "status": <code>}` and changes nothing:
//! 404 for an unknown variable or route, 400 for malformed JSON or an operation or threshold
//! that does not fit the type, 409 for an update of a derived variable or a declaration that
//! conflicts, 413 for a body over [`MAX_BODY_BYTES`], 401 without the bearer token, 503 when
//! the node is shutting down or too busy.
//!
//! # Security and bounds
//!
//! The API listens on loopback by default (`--http 127.0.0.1:0`). Listening on any other
//! address requires a token file (`--http-token-file`, one line, the token): the node refuses
//! to start without one (exit code 2). With a token every request needs
//! `Authorization: Bearer <token>`. At most [`MAX_IN_FLIGHT`] requests run at once and at most
//! [`MAX_STREAMS`] long-polls and event streams; beyond them the answer is 503. Each request
//! waits at most [`CALL_TIMEOUT`] for the node's atoms.
//!
//! ```sh
//! rasp node --listen /ip4/127.0.0.1/tcp/0 --http 127.0.0.1:8080
//! curl -X PUT  localhost:8080/vars/cart -d '{"type": "orset"}'
//! curl -X POST localhost:8080/vars/cart -d '{"add": "milk"}'
//! curl localhost:8080/vars/cart            # {"id":"cart","type":"orset","value":["milk"],...}
//! curl 'localhost:8080/vars/cart/read?threshold={"cardinality":2}&timeout_ms=5000'
//! curl -N localhost:8080/vars/cart/watch
//! curl localhost:8080/metrics
//! ```

pub mod client;
pub mod feed;
pub mod metrics;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use rasp_dataflow::json::{JsonError, JsonTypes};
use rasp_dataflow::replica::{HasReplica, Replica};
use rasp_dataflow::Program;
use rasp_runtime::net::NodeHandle;
use rasp_runtime::{AtomId, Host, Platform};
use serde::Deserialize;
use serde_json::{json, Value};
use std::cell::Cell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Largest request body accepted (an update or a declaration is a few bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most requests handled at once.
pub const MAX_IN_FLIGHT: usize = 256;
/// Most long-polls (`/read`) and event streams (`/watch`) open at once.
pub const MAX_STREAMS: usize = 64;
/// How long a request waits for the node's atoms to answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time-out of a `/read` long-poll.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time-out of a `/read` long-poll.
pub const MAX_READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Default and longest life of a `/watch` stream.
pub const MAX_WATCH: Duration = Duration::from_secs(3600);

/// The default address of the API.
pub const DEFAULT_ADDR: &str = "127.0.0.1:0";

/// `--http` flags (with `RASP_*` variables; the TOML keys are `http`, `no_http` and
/// `http_token_file`, see [`crate::cli::config`]).
#[derive(Debug, Clone, Default, Args)]
pub struct HttpArgs {
    /// Address of the node's HTTP API (host:port) [default: 127.0.0.1:0]; other addresses than
    /// loopback need --http-token-file
    #[arg(long, env = "RASP_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Do not serve the HTTP API
    #[arg(long, env = "RASP_NO_HTTP", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub no_http: bool,
    /// File holding the bearer token every HTTP request must carry (required beyond loopback)
    #[arg(long, env = "RASP_HTTP_TOKEN_FILE", value_name = "PATH")]
    pub http_token_file: Option<PathBuf>,
}

/// The resolved API settings.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The bearer token, if any.
    pub token: Option<String>,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// What the TOML file may say about the API (its `http`, `no_http`, `http_token_file` keys).
#[derive(Debug, Default, Clone)]
pub struct HttpFile {
    /// `http = "127.0.0.1:8080"`.
    pub http: Option<String>,
    /// `no_http = true`.
    pub no_http: Option<bool>,
    /// `http_token_file = "token"` (relative to the file's directory).
    pub http_token_file: Option<PathBuf>,
}

/// Resolves the API settings: flag > environment > file > default. `None`: no API. An
/// address beyond loopback without a token, an unreadable or empty token file are errors.
pub fn resolve(args: &HttpArgs, file: &HttpFile) -> crate::Result<Option<HttpConfig>> {
    if args.no_http || (args.http.is_none() && file.no_http == Some(true)) {
        return Ok(None);
    }
    let addr = match (&args.http, &file.http) {
        (Some(a), _) => *a,
        (None, Some(s)) => s
            .parse()
            .map_err(|e| format!("config file: invalid http address {s:?}: {e}"))?,
        (None, None) => DEFAULT_ADDR.parse().expect("default address"),
    };
    let token_file = args
        .http_token_file
        .clone()
        .or_else(|| file.http_token_file.clone());
    let token = match &token_file {
        Some(p) => Some(read_token(p)?),
        None => None,
    };
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(format!(
            "--http {addr} listens beyond loopback: give a bearer token with --http-token-file \
             (or RASP_HTTP_TOKEN_FILE), or listen on 127.0.0.1"
        )
        .into());
    }
    Ok(Some(HttpConfig { addr, token }))
}

/// Reads a token file: its first line, trimmed; empty, unreadable, not UTF-8 or larger than
/// [`MAX_TOKEN_FILE_BYTES`] is an error.
pub fn read_token(p: &Path) -> crate::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(p)
        .and_then(|f| f.take(MAX_TOKEN_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| crate::Error::io(format!("cannot read token file {}", p.display()), e))?;
    if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "token file {} is larger than {MAX_TOKEN_FILE_BYTES} bytes: it should hold one line, the token",
            p.display()
        ).into());
    }
    let t = text.lines().next().unwrap_or("").trim().to_string();
    if t.is_empty() {
        return Err(format!("token file {} is empty", p.display()).into());
    }
    Ok(t)
}

/// Largest token file read ([`read_token`]); a bigger file is refused, not read whole.
pub const MAX_TOKEN_FILE_BYTES: u64 = 4096;

type Access = fn(&mut Host, AtomId, &mut dyn FnMut(&mut Replica)) -> bool;

/// The atom holding a node's [`Replica`], for the API: its id, its type (erased), and the
/// JSON types of its program.
#[derive(Clone)]
pub struct ReplicaAtom {
    id: AtomId,
    access: Access,
    types: Arc<JsonTypes>,
}

impl std::fmt::Debug for ReplicaAtom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaAtom").field("id", &self.id).finish()
    }
}

impl ReplicaAtom {
    /// The atom `id` of type `A`, with the standard JSON types
    /// ([`JsonTypes::standard`]).
    pub fn of<A: HasReplica>(id: AtomId) -> Self {
        ReplicaAtom {
            id,
            access: |h, id, f| h.with_atom_mut::<A, _>(id, |a| f(a.replica())).is_some(),
            types: Arc::new(JsonTypes::standard()),
        }
    }

    /// With these JSON types instead.
    pub fn with_types(mut self, types: JsonTypes) -> Self {
        self.types = Arc::new(types);
        self
    }

    /// The atom id.
    pub fn id(&self) -> AtomId {
        self.id
    }

    /// Runs `f` on the replica, on the node's atoms' thread; `None` if the node stopped or
    /// the atom is not running.
    pub async fn with<R: Send + 'static>(
        &self,
        node: &NodeHandle,
        f: impl FnOnce(&mut Replica) -> R + Send + 'static,
    ) -> Option<R> {
        let access = self.access;
        let id = self.id;
        node.call(move |h, _| {
            let mut f = Some(f);
            let mut out = None;
            access(h, id, &mut |rep| {
                if let Some(f) = f.take() {
                    out = Some(f(rep));
                }
            });
            out
        })
        .await
        .flatten()
    }
}

/// An API error: a status and a message, answered as `{"error", "status"}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.message, "status": self.status.as_u16()}));
        let mut r = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("header"));
        }
        r
    }
}

impl From<JsonError> for ApiError {
    fn from(e: JsonError) -> Self {
        use rasp_dataflow::Error as D;
        let status = match &e {
            JsonError::UnknownVar(_) => StatusCode::NOT_FOUND,
            JsonError::Dataflow(D::UnknownVar(_) | D::NotHeld(_)) => StatusCode::NOT_FOUND,
            JsonError::Dataflow(D::Derived(_) | D::TypeMismatch { .. }) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

#[derive(Clone)]
struct Api {
    node: NodeHandle,
    replica: Option<ReplicaAtom>,
    token: Option<Arc<str>>,
    in_flight: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    /// Events dropped by slow watchers' feeds (see [`feed`]).
    skipped: Arc<AtomicU64>,
}

impl Api {
    /// Runs `f` on the node's replica, on the atoms' thread.
    async fn with_replica<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Replica, &Arc<JsonTypes>) -> R + Send + 'static,
    ) -> ApiResult<R> {
        self.with_replica_on(move |rep, types, _| f(rep, types))
            .await
    }

    /// [`Api::with_replica`], with the node's platform (its durable store) at hand.
    async fn with_replica_on<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Replica, &Arc<JsonTypes>, &mut dyn Platform) -> R + Send + 'static,
    ) -> ApiResult<R> {
        let r = self.replica.clone().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "this node runs no dataflow replica: no variables",
            )
        })?;
        let call = self.node.call(move |h, platform| {
            let mut f = Some(f);
            let mut out = None;
            (r.access)(h, r.id, &mut |rep| {
                if let Some(f) = f.take() {
                    out = Some(f(rep, &r.types, &mut *platform));
                }
            });
            out
        });
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Err(_) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node's atoms did not answer in time",
            )),
            Ok(None) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node is shutting down",
            )),
            Ok(Some(None)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the dataflow atom is not running",
            )),
            Ok(Some(Some(r))) => Ok(r),
        }
    }

    /// Takes charge of the program subscription `id` (removed when dropped).
    fn subscription(&self, id: u64) -> feed::Subscription {
        let r = self
            .replica
            .clone()
            .expect("a subscription needs the replica");
        feed::Subscription::new(self.node.clone(), r, id)
    }

    /// How many reads and watches are open now.
    fn streams_open(&self) -> usize {
        MAX_STREAMS - self.streams.available_permits()
    }

    fn stream_permit(&self) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("too many open reads and watches (at most {MAX_STREAMS})"),
            )
        })
    }
}

/// Starts the API of a running node on `cfg.addr`, serving the replica of atom `atom` (of
/// type `A`) with the standard JSON types; prints `http=<addr>` on stdout and returns the
/// bound address. The server runs on the caller's tokio runtime until it ends.
pub async fn start<A: HasReplica>(
    cfg: &HttpConfig,
    node: NodeHandle,
    atom: AtomId,
) -> crate::Result<SocketAddr> {
    start_with(cfg, node, Some(ReplicaAtom::of::<A>(atom))).await
}

/// [`start`] with an erased [`ReplicaAtom`] (own JSON types), or none (a node without a
/// dataflow program: `/vars` answers 404, the rest works).
pub async fn start_with(
    cfg: &HttpConfig,
    node: NodeHandle,
    replica: Option<ReplicaAtom>,
) -> crate::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|e| crate::Error::io(format!("cannot listen for HTTP on {}", cfg.addr), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| crate::Error::io("HTTP listener address", e))?;
    let api = Api {
        node,
        replica,
        token: cfg.token.as_deref().map(Arc::from),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        skipped: Arc::new(AtomicU64::new(0)),
    };
    if api.replica.is_some() {
        // Variables declared over this API before a restart: declared again, their stored
        // states restored, before the first request is answered.
        let restored = api
            .with_replica_on(|rep, types, platform| {
                let mut out = Vec::new();
                match rep.declared_at_runtime(platform) {
                    Ok(decls) => {
                        for (id, ty) in decls {
                            let r = types
                                .declare(rep.program_mut(), &id, &ty)
                                .map_err(|e| e.to_string())
                                .and_then(|_| rep.restore_var(platform, &id));
                            out.push((id, r));
                        }
                    }
                    Err(e) => out.push(("(the store)".into(), Err(e.to_string()))),
                }
                out
            })
            .await;
        match restored {
            Ok(list) => {
                for (id, r) in list {
                    match r {
                        Ok(had) => {
                            tracing::info!(var = %id, state_restored = had, "variable declared over HTTP before the restart, declared again")
                        }
                        Err(e) => {
                            tracing::error!(var = %id, error = %e, "cannot declare again a variable declared over HTTP before the restart")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e.message, "cannot restore the variables declared over HTTP")
            }
        }
    }
    let app = router(api);
    println!("http={addr}");
    tracing::info!(%addr, "HTTP API listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("HTTP API stopped: {e}");
        }
    });
    Ok(addr)
}

fn router(api: Api) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/vars", get(list_vars))
        .route("/vars/{id}", get(get_var).put(declare_var).post(update_var))
        .route("/vars/{id}/read", get(read_var))
        .route("/vars/{id}/watch", get(watch_var))
        .route("/overlay", get(overlay))
        .route("/metrics", get(metrics::scrape))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(api.clone(), guard))
        .with_state(api)
}

/// Bearer-token check and the in-flight bound, before any handler.
async fn guard(State(api): State<Api>, headers: HeaderMap, req: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
            )
            .into_response();
        }
    }
    let Ok(_permit) = api.in_flight.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many requests in flight (at most {MAX_IN_FLIGHT})"),
        )
        .into_response();
    };
    next.run(req).await
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn body_json(body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    let bytes = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))
}

async fn health(State(api): State<Api>) -> ApiResult<Json<Value>> {
    let id = api.node.id();
    let answer = api.node.call(|h, p| {
        let neighbours = membership_view(h).map_or(0, |v| v.neighbours.len());
        (neighbours, p.connected().len())
    });
    match tokio::time::timeout(CALL_TIMEOUT, answer).await {
        Ok(Some((neighbours, connected))) => Ok(Json(json!({
            "status": "ok",
            "node_id": id.0,
            "neighbours": neighbours,
            "connected": connected,
        }))),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node's atoms do not answer",
        )),
    }
}

fn membership_view(h: &Host) -> Option<rasp_membership::atom::View> {
    let id = h.lookup_service(rasp_runtime::ServiceId::of(rasp_membership::atom::SERVICE))?;
    let node = h.node();
    h.with_atom::<rasp_membership::MembershipAtom, _>(id, |m| m.view(node))
}

async fn overlay(State(api): State<Api>) -> ApiResult<Json<Value>> {
    let replica = api.replica.clone();
    let answer = api.node.call(move |h, p| {
        let view = membership_view(h);
        let replicating = replica.and_then(|r| {
            let mut out = None;
            (r.access)(h, r.id, &mut |rep| out = Some(rep.neighbours()));
            out
        });
        (view, replicating, p.connected())
    });
    let Ok(Some((view, replicating, connected))) = tokio::time::timeout(CALL_TIMEOUT, answer).await
    else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node's atoms do not answer",
        ));
    };
    let ids = |v: &[rasp_runtime::NodeId]| v.iter().map(|n| n.0).collect::<Vec<_>>();
    Ok(Json(json!({
        "node_id": api.node.id().0,
        "mode": view.as_ref().map(|v| v.mode.to_string()),
        "neighbours": view.as_ref().map(|v| ids(&v.neighbours)).unwrap_or_default(),
        "passive": view.as_ref().map(|v| ids(&v.passive)).unwrap_or_default(),
        "replicating_with": replicating.map(|r| ids(&r)),
        "connected": ids(&connected),
    })))
}

/// One variable as the API shows it.
fn describe(p: &Program, types: &JsonTypes, id: &str) -> Result<Value, JsonError> {
    let state = match p.state_dyn(id) {
        Ok(s) => s,
        Err(rasp_dataflow::Error::UnknownVar(_)) => {
            return Err(JsonError::UnknownVar(id.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    let rust = state.type_name();
    let value = match types.value(p, id)? {
        Some(v) => v,
        None => json!({ "debug": p.show(id).unwrap_or_default() }),
    };
    Ok(json!({
        "id": id,
        "type": types.display_name(rust),
        "rust_type": rust,
        "bytes": state.encoded_size(),
        "derived": p.is_derived(id)?,
        "value": value,
    }))
}

async fn list_vars(State(api): State<Api>) -> ApiResult<Json<Value>> {
    api.with_replica(|rep, types| {
        let p = rep.program();
        let vars: Vec<Value> = p
            .graph()
            .into_iter()
            .map(|d| {
                let held = p.holds(&d.id);
                let bytes = p.state_dyn(&d.id).map(|s| s.encoded_size()).ok();
                json!({
                    "id": d.id,
                    "type": types.display_name(&d.type_name),
                    "held": held,
                    "derived": d.op.is_some(),
                    "bytes": bytes,
                })
            })
            .collect();
        Json(json!({ "vars": vars }))
    })
    .await
}

async fn get_var(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> ApiResult<Json<Value>> {
    let v = api
        .with_replica(move |rep, types| describe(rep.program(), types, &id))
        .await??;
    Ok(Json(v))
}

async fn declare_var(
    State(api): State<Api>,
    UrlPath(id): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body_json(body)?;
    let ty = body
        .get("type")
        .and_then(Value::as_str)
        .filter(|_| body.as_object().is_some_and(|o| o.len() == 1))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "a declaration is {\"type\": \"<name>\"}, e.g. {\"type\": \"orset\"}",
            )
        })?
        .to_string();
    let (created, v, durable) = api
        .with_replica_on(move |rep, types, platform| {
            let created = types.declare(rep.program_mut(), &id, &ty)?;
            let mut durable = Ok(());
            if created {
                // Remembered, so the restarted node declares it again; and what the store
                // holds of it (from before a restart that forgot it) is joined back.
                durable = rep
                    .remember_declaration(platform, &id, &ty)
                    .map_err(|e| e.to_string())
                    .and_then(|()| rep.restore_var(platform, &id).map(|_| ()));
            }
            describe(rep.program(), types, &id).map(|v| (created, v, durable))
        })
        .await??;
    if let Err(e) = durable {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the variable is declared here but its declaration is not durable: {e}"),
        ));
    }
    if created {
        tracing::info!(var = %v["id"], r#type = %v["type"], "variable declared over HTTP");
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(v)).into_response())
}

async fn update_var(
    State(api): State<Api>,
    UrlPath(id): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let op = body_json(body)?;
    let v = api
        .with_replica_on(move |rep, types, platform| {
            let changed = types.update(rep.program_mut(), &id, &op)?;
            // The answer acknowledges the update: applied here *and* durable, so it
            // survives a crash of this node right after the answer (see the module docs).
            rep.persist_now(platform).map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the update was applied here but could not be made durable: {e}"),
                )
            })?;
            let mut v = describe(rep.program(), types, &id)?;
            v["changed"] = json!(changed);
            Ok::<_, ApiError>(v)
        })
        .await??;
    Ok(Json(v))
}

/// Query parameters of `/read` and `/watch`.
#[derive(Debug, Deserialize)]
pub struct WaitParams {
    /// The threshold (JSON; a bare word is a JSON string).
    pub threshold: Option<String>,
    /// Time-out in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// A threshold query parameter: JSON, or else the text as a JSON string.
fn threshold_value(t: Option<&str>) -> Value {
    match t {
        None => json!("not_bottom"),
        Some(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())),
    }
}

async fn read_var(
    State(api): State<Api>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<WaitParams>,
) -> ApiResult<Response> {
    let threshold = threshold_value(q.threshold.as_deref());
    let timeout = q
        .timeout_ms
        .map_or(READ_TIMEOUT, Duration::from_millis)
        .min(MAX_READ_TIMEOUT);
    let _permit = api.stream_permit()?;
    let deadline = tokio::time::Instant::now() + timeout;
    let (tx, rx) = feed::feed();
    let (id2, t2) = (id.clone(), threshold.clone());
    // In one step on the node: the answer if the threshold holds now, else a subscription
    // that answers at the first change after which it holds.
    let now = api
        .with_replica(move |rep, types| {
            let p = rep.program_mut();
            if types.holds(p, &id2, &t2)? {
                return describe(p, types, &id2).map(Ok);
            }
            if tx.orphaned() {
                // The HTTP side gave up waiting for this call: subscribe nothing.
                return Ok(Err(None));
            }
            let types = types.clone();
            let own = Rc::new(Cell::new(None::<u64>));
            let me = own.clone();
            let var = id2.clone();
            let sub = p.subscribe_dyn(&var, move |p, _| {
                if !tx.orphaned() && types.holds(p, &id2, &t2).unwrap_or(false) {
                    if let Ok(v) = describe(p, &types, &id2) {
                        tx.push(v.to_string());
                    }
                } else if !tx.orphaned() {
                    return;
                }
                // Answered, or the reader is gone: this subscription is done.
                if let Some(me) = me.get() {
                    p.unsubscribe(me);
                }
            })?;
            own.set(Some(sub));
            Ok(Err(Some(sub)))
        })
        .await??;
    let sub = match now {
        Ok(v) => return Ok(Json(v).into_response()),
        Err(sub) => sub.map(|s| api.subscription(s)),
    };
    let answer = tokio::time::timeout_at(deadline, rx.next()).await;
    drop(sub);
    match answer {
        // Rendered as JSON by the callback.
        Ok(Some(v)) => Ok(([(header::CONTENT_TYPE, "application/json")], v).into_response()),
        Ok(None) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is shutting down",
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "threshold {threshold} did not hold on `{id}` within {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

async fn watch_var(
    State(api): State<Api>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<WaitParams>,
) -> ApiResult<Response> {
    let life = q
        .timeout_ms
        .map_or(MAX_WATCH, Duration::from_millis)
        .min(MAX_WATCH);
    let (tx, rx) = feed::feed();
    let skipped = api.skipped.clone();
    // In one step on the node: the variable now (a watch of a typo is a 404, not an empty
    // stream) and a subscription pushing it at every change of its value.
    let (first, sub) = api
        .with_replica(move |rep, types| {
            let p = rep.program_mut();
            let first = describe(p, types, &id)?;
            let types = types.clone();
            let own = Rc::new(Cell::new(None::<u64>));
            let me = own.clone();
            let mut last = first["value"].clone();
            let var = id.clone();
            let sub = p.subscribe_dyn(&var, move |p, _| {
                if tx.orphaned() {
                    // The reader is gone and its clean-up has not come yet.
                    if let Some(me) = me.get() {
                        p.unsubscribe(me);
                    }
                    return;
                }
                if let Ok(v) = describe(p, &types, &id) {
                    if v["value"] != last {
                        last = v["value"].clone();
                        let dropped = tx.push(v.to_string());
                        skipped.fetch_add(dropped as u64, Ordering::Relaxed);
                    }
                }
            })?;
            own.set(Some(sub));
            Ok::<_, JsonError>((first, sub))
        })
        .await??;
    let sub = api.subscription(sub);
    let permit = api.stream_permit()?;
    let deadline = tokio::time::Instant::now() + life;
    struct W {
        rx: feed::FeedRx,
        first: Option<String>,
        deadline: tokio::time::Instant,
        _sub: feed::Subscription,
        _permit: tokio::sync::OwnedSemaphorePermit,
    }
    let state = W {
        rx,
        first: Some(first.to_string()),
        deadline,
        _sub: sub,
        _permit: permit,
    };
    let stream = futures::stream::unfold(state, |mut w| async move {
        let data = match w.first.take() {
            Some(d) => d,
            // The node stopped (the program dropped the callback) or the life is over.
            None => tokio::time::timeout_at(w.deadline, w.rx.next())
                .await
                .ok()??,
        };
        let ev = Event::default().event("value").data(data);
        Some((Ok::<_, std::convert::Infallible>(ev), w))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_token_file_is_refused_without_reading_it_whole() {
        let dir = std::env::temp_dir().join(format!("rasp-token-size-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("token");
        std::fs::write(&p, vec![b'a'; 8 << 20]).unwrap();
        let e = read_token(&p).unwrap_err().to_string();
        assert!(e.contains("larger than 4096 bytes"), "{e}");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        assert_eq!(read_token(&p).unwrap(), "s3cret");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_token(&p)
            .unwrap_err()
            .to_string()
            .contains("cannot read token file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn beyond_loopback_needs_a_token() {
        let args = HttpArgs {
            http: Some("0.0.0.0:0".parse().unwrap()),
            ..HttpArgs::default()
        };
        let e = resolve(&args, &HttpFile::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--http-token-file"), "{e}");
        let dir = std::env::temp_dir().join(format!("rasp-http-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tok = dir.join("token");
        std::fs::write(&tok, "s3cret\n").unwrap();
        let ok = resolve(
            &HttpArgs {
                http_token_file: Some(tok.clone()),
                ..args.clone()
            },
            &HttpFile::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.token.as_deref(), Some("s3cret"));
        std::fs::write(&tok, "\n").unwrap();
        let e = resolve(
            &HttpArgs {
                http_token_file: Some(tok),
                ..args
            },
            &HttpFile::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn defaults_flags_and_file() {
        let d = resolve(&HttpArgs::default(), &HttpFile::default())
            .unwrap()
            .unwrap();
        assert_eq!(d.addr.to_string(), DEFAULT_ADDR);
        let off = HttpArgs {
            no_http: true,
            ..HttpArgs::default()
        };
        assert!(resolve(&off, &HttpFile::default()).unwrap().is_none());
        let file = HttpFile {
            http: Some("127.0.0.1:9000".into()),
            ..HttpFile::default()
        };
        let f = resolve(&HttpArgs::default(), &file).unwrap().unwrap();
        assert_eq!(f.addr.port(), 9000);
        let flag = HttpArgs {
            http: Some("127.0.0.1:9001".parse().unwrap()),
            ..HttpArgs::default()
        };
        assert_eq!(resolve(&flag, &file).unwrap().unwrap().addr.port(), 9001);
        let file_off = HttpFile {
            no_http: Some(true),
            ..HttpFile::default()
        };
        assert!(resolve(&HttpArgs::default(), &file_off).unwrap().is_none());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn threshold_parameters() {
        assert_eq!(threshold_value(None), json!("not_bottom"));
        assert_eq!(threshold_value(Some("3")), json!(3));
        assert_eq!(threshold_value(Some("milk")), json!("milk"));
        assert_eq!(
            threshold_value(Some("{\"cardinality\":2}")),
            json!({"cardinality": 2})
        );
    }
}
