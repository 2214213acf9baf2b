//! The HTTP service around an [`EngineHandle`]: router, handlers, middleware.
//!
//! Shared by the `serve` example (`main.rs` beside this file) and its
//! integration test (`tests/serve.rs` includes this file with `#[path]`), so
//! the test drives exactly the code the example runs, in-process on a
//! loopback port, without depending on the example binary being built first.
//!
//! | route                | what                                                              |
//! |----------------------|-------------------------------------------------------------------|
//! | `GET /`              | the playground: a page to try searches and "listening" contexts   |
//! | `POST /recommend`    | a [`twostage::Request`] as JSON → [`Recommendations::to_json`](twostage::Recommendations::to_json) |
//! | `GET /healthz`       | `{"status":"ok","index":..,"items":..,"live":{..}}` (and `"generation"` when following a store) |
//! | `GET /metrics`       | Prometheus text (the metrics are listed in `telemetry.rs`)        |
//! | `POST /admin/reload` | `{"index": DIR}` (optional): open DIR and swap it in              |
//! | `POST /admin/compact` | start a compaction ([`EngineHandle::compact`]) in the background: 202, or 409 while one runs |
//! | `POST /items`        | `{"items": [...]}` (items-file records): add or change them, durably ([`EngineHandle::upsert_items`]) |
//! | `DELETE /items/{id}` | delete the item from every result, durably ([`EngineHandle::delete_items`]) |
//! | `POST /events`       | `{"events": [...]}` (events-file records): count them, durably ([`EngineHandle::record_events`]) |
//!
//! Admin routes (reload, compaction, upserts, deletes and events) need `Authorization: Bearer <token>` with the token the
//! service was started with (compared in constant time); without a
//! configured token they are disabled. Either way a missing or wrong token
//! is a 401.
//!
//! Engine work (recommend, reload) runs on tokio's blocking pool, never on
//! the async worker threads: a request takes a millisecond or more of CPU,
//! which would stall every other connection on that worker. Errors are JSON
//! `{"error": message, "kind": kind}`: the caller's mistakes are 4xx, and only
//! a real fault (a failed stage, a panicked task) or a timeout is a 5xx.
//!
//! Middleware (`tower-http`), outermost first: a `tracing` span and an
//! info-level event per request (method, path, status, latency); the
//! response counter of `telemetry.rs`; JSON bodies for the errors the layers
//! below answer themselves; a request timeout ([`DEFAULT_REQUEST_TIMEOUT`],
//! 503); a body limit of [`MAX_BODY_BYTES`] (413).

#![allow(dead_code)] // main.rs and the test each use a different part.

#[cfg(feature = "generations")]
#[path = "follow.rs"]
pub mod follow;
#[path = "impressions.rs"]
mod impressions;
#[path = "telemetry.rs"]
mod telemetry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request as HttpRequest, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use twostage::{EngineHandle, Error, Request};

pub use impressions::ImpressionLog;
pub use telemetry::Telemetry;

/// Largest accepted request body. A request is a context, a few filters and
/// at most a 1,000-item history: 256 KiB is generous, and it bounds the
/// memory one connection can make the service buffer.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Longest a request may take, by default, before the service answers 503.
/// A recommend takes milliseconds and a reload seconds; past this the
/// client is better told than kept waiting. Engine work already started on
/// the blocking pool still runs to its end, only the answer is dropped: a
/// reload that times out still swaps the index in (and is logged and
/// counted as usual).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The playground page: plain HTML and JavaScript, no build step, no CDN.
const PLAYGROUND: &str = include_str!("playground.html");

/// What every handler shares.
pub struct AppState {
    /// The engine currently serving.
    pub handle: Arc<EngineHandle>,
    /// What `POST /admin/reload` opens when its body names no directory.
    pub index_dir: PathBuf,
    /// Counters and histograms for `/metrics`.
    pub telemetry: Arc<Telemetry>,
    /// The bearer token admin routes require; `None` disables them.
    pub admin_token: Option<String>,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Where the items shown to users are logged (`--impressions`), if anywhere.
    pub impressions: Option<ImpressionLog>,
    /// The index-generation follower (`--index URL`), once started.
    #[cfg(feature = "generations")]
    pub follower: std::sync::OnceLock<Arc<follow::Follower>>,
}

impl AppState {
    /// State serving `handle`, reloading from `index_dir` by default, with
    /// admin routes behind `admin_token` (disabled when `None`) and the
    /// [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn new(
        handle: EngineHandle,
        index_dir: PathBuf,
        admin_token: Option<String>,
    ) -> Result<Arc<AppState>, metrics_exporter_prometheus::BuildError> {
        AppState::with_request_timeout(handle, index_dir, admin_token, DEFAULT_REQUEST_TIMEOUT)
    }

    /// [`AppState::new`] with another request timeout.
    pub fn with_request_timeout(
        handle: EngineHandle,
        index_dir: PathBuf,
        admin_token: Option<String>,
        request_timeout: Duration,
    ) -> Result<Arc<AppState>, metrics_exporter_prometheus::BuildError> {
        AppState::with_impressions(handle, index_dir, admin_token, request_timeout, None)
    }

    /// [`AppState::with_request_timeout`] that also logs what each answer to
    /// a request with a `user` showed to `impressions`.
    pub fn with_impressions(
        handle: EngineHandle,
        index_dir: PathBuf,
        admin_token: Option<String>,
        request_timeout: Duration,
        impressions: Option<ImpressionLog>,
    ) -> Result<Arc<AppState>, metrics_exporter_prometheus::BuildError> {
        Ok(Arc::new(AppState {
            handle: Arc::new(handle),
            index_dir,
            telemetry: Arc::new(Telemetry::new()?),
            admin_token: admin_token.filter(|t| !t.is_empty()),
            request_timeout,
            impressions,
            #[cfg(feature = "generations")]
            follower: std::sync::OnceLock::new(),
        }))
    }

    /// Whether `headers` carry the admin token.
    fn is_admin(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(expected) = &self.admin_token else {
            return false;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), expected.as_bytes())
    }
}

/// Byte equality whose time does not depend on where the inputs differ (only
/// on the longer length), so a token cannot be guessed byte by byte from
/// timings.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
        // Keeps the optimiser from turning the loop into an early exit once
        // `diff` is non-zero, which would reintroduce the timing leak.
        diff = std::hint::black_box(diff);
    }
    diff == 0
}

/// The service's routes over `state`, with its middleware.
pub fn router(state: Arc<AppState>) -> Router {
    // `Router::layer` wraps the routes and both fallbacks: the counter sees
    // every response, and `MatchedPath` is known to it. The last layer added
    // is the outermost.
    Router::new()
        .route("/", get(playground))
        .route("/recommend", post(recommend))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/admin/reload", post(reload))
        .route("/admin/compact", post(compact))
        .route("/items", post(upsert_items))
        .route("/items/{id}", delete(delete_item))
        .route("/events", post(record_events))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route".to_string()) })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route".to_string(),
            )
        })
        // One limit, tower-http's: it refuses a too-large Content-Length
        // before reading a byte, and a chunked body fails the extractor.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.request_timeout,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.telemetry),
            telemetry::count_responses,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                ),
        )
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` completes; in-flight
/// requests are finished first.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": message, "kind": kind}).to_string(),
    )
        .into_response()
}

fn json_ok(body: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Gives a JSON error body to the errors the layers answer themselves (the
/// body limit's 413, the timeout's 503), so every error a client sees has
/// the same shape; handlers' own errors are JSON already.
async fn json_errors(request: HttpRequest, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => error(status, "body_too_large", format!("the request body is over {MAX_BODY_BYTES} bytes")),
        StatusCode::SERVICE_UNAVAILABLE => error(status, "timeout", "no answer within the service's request timeout".to_string()),
        _ => error(status, "http", status.canonical_reason().unwrap_or("error").to_string()),
    }
}

/// A library error as a response: 400 for what the caller can fix, 500 for a fault.
fn engine_error(e: &Error) -> Response {
    let kind = match e {
        Error::UnknownItem(_) => "unknown_item",
        Error::InvalidRequest(_) => "invalid_request",
        Error::InvalidData { .. } | Error::InvalidParquet { .. } => "invalid_data",
        Error::InvalidConfig(_) => "invalid_config",
        Error::Io { .. } => "io",
        Error::Corrupt { .. } => "corrupt_index",
        Error::IncompatibleVersion { .. } => "incompatible_index",
        _ => "internal",
    };
    let status = if e.is_caller_error() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    error(status, kind, e.to_string())
}

/// A body the extractor refused (too large, unreadable) keeps its status
/// (413 for too large) but gets a JSON body like every other error.
fn body_error(rejection: BytesRejection) -> Response {
    let status = rejection.status();
    let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "body_too_large"
    } else {
        "bad_body"
    };
    error(status, kind, rejection.body_text())
}

async fn playground() -> Html<&'static str> {
    Html(PLAYGROUND)
}

async fn recommend(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    match body {
        Err(rejection) => body_error(rejection),
        Ok(bytes) => match serde_path_to_error::deserialize::<_, Request>(&mut serde_json::Deserializer::from_slice(&bytes)) {
            // Bad JSON, a wrong type and an unknown field (`Request` denies
            // them) all land here, the message prefixed with where
            // (`range[0].gte: invalid type: string "2000", expected f64`).
            Err(e) if e.path().iter().next().is_some() => {
                error(StatusCode::BAD_REQUEST, "bad_json", format!("{}: {}", e.path(), e.inner()))
            }
            Err(e) => error(StatusCode::BAD_REQUEST, "bad_json", e.inner().to_string()),
            Ok(request) => {
                let shared = Arc::clone(&state);
                // Serialising the answer (and logging what it shows) is
                // work too: it stays on the blocking pool.
                let work = tokio::task::spawn_blocking(move || {
                    shared.handle.recommend(&request).map(|r| {
                        let body = match (&shared.impressions, &request.user) {
                            (Some(log), Some(user)) => with_impressions(log, user, &r),
                            _ => r.to_json(),
                        };
                        (body, r.timings)
                    })
                });
                match work.await {
                    Ok(Ok((body, timings))) => {
                        state.telemetry.observe_stages(&timings);
                        json_ok(body)
                    }
                    Ok(Err(e)) => engine_error(&e),
                    Err(e) => error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        format!("the request's task failed: {e}"),
                    ),
                }
            }
        },
    }
}

/// The answer's JSON with a request id, its items logged as impressions
/// (a failed write is logged and does not fail the answer).
fn with_impressions(log: &ImpressionLog, user: &str, r: &twostage::Recommendations) -> String {
    let id = log.request_id();
    let items: Vec<String> = r.items.iter().map(|i| i.id.clone()).collect();
    if let Err(e) = log.record(&id, user, r.variant.as_deref(), &items) {
        tracing::warn!(error = %e, "could not write impressions");
    }
    match serde_json::from_str::<serde_json::Value>(&r.to_json()) {
        Ok(mut v) => {
            v["request_id"] = json!(id);
            v.to_string()
        }
        Err(_) => r.to_json(),
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.handle.load();
    let info = engine.info();
    let mut body = json!({"status": "ok", "index": info.path, "items": engine.len(), "format_version": info.format_version, "ranker": info.ranker.kind});
    // What the live log holds: writes acknowledged since the build (and survived restarts).
    if let Ok(live) = engine.live_status() {
        body["live"] = json!({
            "deleted": live.deleted,
            "added": live.added,
            "upserted": live.upserted,
            "events": live.events,
            "records": live.records,
            "syncs": live.syncs,
            "torn_tail_bytes": live.torn_tail.map(|t| t.bytes),
        });
    }
    #[cfg(feature = "generations")]
    if let Some(f) = state.follower.get() {
        body["generation"] = json!(f.status());
    }
    json_ok(body.to_string())
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.handle.load();
    let mut text = state.telemetry.render(engine.len(), &engine.query_cache_stats());
    // What the live log holds: the writes a build has not folded in yet.
    if let Ok(live) = engine.live_status() {
        text.push_str("# HELP twostage_live_items Items written live since the index was built, by kind.\n");
        text.push_str("# TYPE twostage_live_items gauge\n");
        for (kind, n) in [("added", live.added), ("upserted", live.upserted), ("deleted", live.deleted)] {
            text.push_str(&format!("twostage_live_items{{kind=\"{kind}\"}} {n}\n"));
        }
        text.push_str("# HELP twostage_live_events Events recorded live since the index was built.\n");
        text.push_str("# TYPE twostage_live_events gauge\n");
        text.push_str(&format!("twostage_live_events {}\n", live.events));
    }
    let c = state.handle.compaction_status();
    text.push_str("# HELP twostage_compaction_running Whether a compaction is folding the live writes into a new generation now.\n");
    text.push_str("# TYPE twostage_compaction_running gauge\n");
    text.push_str(&format!("twostage_compaction_running {}\n", u8::from(c.running)));
    text.push_str("# HELP twostage_compactions_total Compactions finished, by outcome.\n");
    text.push_str("# TYPE twostage_compactions_total counter\n");
    text.push_str(&format!("twostage_compactions_total{{outcome=\"completed\"}} {}\n", c.completed));
    text.push_str(&format!("twostage_compactions_total{{outcome=\"failed\"}} {}\n", c.failed));
    if let Some(secs) = c.last_seconds {
        text.push_str("# HELP twostage_compaction_last_seconds Wall time of the last compaction to finish.\n");
        text.push_str("# TYPE twostage_compaction_last_seconds gauge\n");
        text.push_str(&format!("twostage_compaction_last_seconds {secs:.3}\n"));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// `POST /admin/compact`: starts a compaction on a thread of its own (it
/// takes as long as a build, longer than any request may) and answers 202;
/// `/metrics` reports its progress and outcome. 409 while one runs.
async fn compact(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    if let Some(refused) = refuse_unless_admin(&state, &headers) {
        return refused;
    }
    if state.handle.compaction_status().running {
        return error(StatusCode::CONFLICT, "compaction_running", "a compaction is already running".into());
    }
    spawn_compaction(Arc::clone(&state.handle), twostage::Compaction::default(), false);
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": "compacting"}).to_string(),
    )
        .into_response()
}

/// Compacts `handle` under `policy` on a new thread (only when due, if
/// `if_due`), logging the outcome.
pub fn spawn_compaction(handle: Arc<EngineHandle>, policy: twostage::Compaction, if_due: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let result = if if_due {
            handle.compact_if_due(&policy)
        } else {
            handle.compact(&policy).map(Some)
        };
        match result {
            Ok(Some(c)) => tracing::info!(
                items = c.items,
                folded = c.folded_records,
                carried = c.carried_records,
                seconds = c.duration.as_secs_f64(),
                writes_paused_ms = c.writes_paused.as_millis() as u64,
                "compacted"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "compaction failed; still serving the previous generation"),
        }
    })
}

/// Body of `POST /admin/reload`; empty means "the directory the service started with".
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadRequest {
    index: Option<PathBuf>,
}

/// The 401 for a request to an admin route without the admin token; `None` when it has it.
fn refuse_unless_admin(state: &AppState, headers: &axum::http::HeaderMap) -> Option<Response> {
    if state.is_admin(headers) {
        return None;
    }
    let why = if state.admin_token.is_some() {
        "admin routes need `Authorization: Bearer <token>` with the service's admin token"
    } else {
        "admin routes are disabled: start the service with an admin token (TWOSTAGE_ADMIN_TOKEN or --admin-token-file)"
    };
    tracing::warn!("admin request refused: missing or wrong bearer token");
    Some(error(StatusCode::UNAUTHORIZED, "unauthorized", why.to_string()))
}

/// `DELETE /items/{id}`: answers once the deletion is durable and every
/// later request sees it.
async fn delete_item(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(refused) = refuse_unless_admin(&state, &headers) {
        return refused;
    }
    let handle = Arc::clone(&state.handle);
    let span = tracing::Span::current();
    // An fsync: blocking I/O.
    let work = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let result = handle.delete_items(&[id.as_str()]);
        if let Ok(n) = &result {
            tracing::info!(id = %id, newly_deleted = n, "item deleted");
        }
        result.map(|n| (id, n))
    });
    match work.await {
        Ok(Ok((id, n))) => json_ok(json!({"status": "deleted", "id": id, "already_deleted": n == 0}).to_string()),
        Ok(Err(e @ Error::UnknownItem(_))) => error(StatusCode::NOT_FOUND, "unknown_item", e.to_string()),
        Ok(Err(e)) => engine_error(&e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the delete task failed: {e}"),
        ),
    }
}

/// Body of `POST /items`: records of the items file's shape, read by the
/// catalog loader (so by the builder's data contract).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemsRequest {
    items: Vec<serde_json::Value>,
}

/// The items of a `POST /items` body, or the 400 naming `items[i].field`.
fn parse_items(req: &ItemsRequest) -> Result<Vec<twostage::Item>, Box<Response>> {
    let mut lines = String::new();
    for item in &req.items {
        lines.push_str(&item.to_string());
        lines.push('\n');
    }
    match twostage::Catalog::from_jsonl_reader(lines.as_bytes(), std::path::Path::new("items")) {
        Ok(catalog) => Ok(catalog.into_items()),
        Err(Error::InvalidData { line, field, reason, .. }) => {
            let at = line.map_or(String::new(), |l| format!("[{}]", l.saturating_sub(1)));
            Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("items{at}.{field}: {reason}"),
            )))
        }
        Err(e) => Err(Box::new(engine_error(&e))),
    }
}

/// `POST /items`: answers once the batch is durable and every later
/// request sees it; a batch with one bad item is refused whole (400 naming
/// `items[i].field`).
async fn upsert_items(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if let Some(refused) = refuse_unless_admin(&state, &headers) {
        return refused;
    }
    let req = match body.map(|b| serde_json::from_slice::<ItemsRequest>(&b)) {
        Err(rejection) => return body_error(rejection),
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, "bad_json", e.to_string()),
        Ok(Ok(req)) => req,
    };
    let items = match parse_items(&req) {
        Ok(items) => items,
        Err(refused) => return *refused,
    };
    let handle = Arc::clone(&state.handle);
    let span = tracing::Span::current();
    // Encoding (on an index with a content space) and an fsync: blocking work.
    let work = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        handle.upsert_items(&items)
    });
    match work.await {
        Ok(Ok(done)) => json_ok(json!({"status": "upserted", "added": done.added, "updated": done.updated}).to_string()),
        Ok(Err(e)) => engine_error(&e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the upsert task failed: {e}"),
        ),
    }
}

/// Body of `POST /events`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsRequest {
    events: Vec<twostage::LiveEvent>,
}

/// `POST /events`: answers once the batch is durable and counted; a batch
/// with one bad event is refused whole (400 naming `events[i].field`).
async fn record_events(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(refused) = refuse_unless_admin(&state, &headers) {
        return refused;
    }
    let req = match body.map(|b| serde_json::from_slice::<EventsRequest>(&b)) {
        Err(rejection) => return body_error(rejection),
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, "bad_json", e.to_string()),
        Ok(Ok(req)) => req,
    };
    let handle = Arc::clone(&state.handle);
    let span = tracing::Span::current();
    let work = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        handle.record_events(&req.events).map(|()| req.events.len())
    });
    match work.await {
        Ok(Ok(n)) => json_ok(json!({"status": "recorded", "events": n}).to_string()),
        Ok(Err(e)) => engine_error(&e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the events task failed: {e}"),
        ),
    }
}

async fn reload(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if let Some(refused) = refuse_unless_admin(&state, &headers) {
        return refused;
    }
    match body {
        Err(rejection) => body_error(rejection),
        Ok(bytes) => {
            let parsed = if bytes.iter().all(u8::is_ascii_whitespace) {
                Ok(ReloadRequest { index: None })
            } else {
                serde_json::from_slice::<ReloadRequest>(&bytes)
            };
            match parsed {
                Err(e) => error(StatusCode::BAD_REQUEST, "bad_json", e.to_string()),
                Ok(req) => {
                    let dir = req.index.unwrap_or_else(|| state.index_dir.clone());
                    let handle = Arc::clone(&state.handle);
                    // Opening reads and verifies every file: seconds of blocking I/O and CPU.
                    let telemetry = Arc::clone(&state.telemetry);
                    let span = tracing::Span::current();
                    // Logged and counted in the task itself: a reload whose answer
                    // timed out still happened.
                    let work = tokio::task::spawn_blocking(move || {
                        let _entered = span.enter();
                        let result = handle.reload(&dir).map(|old| (dir, old.len(), handle.load().len()));
                        match &result {
                            Ok((dir, previous, items)) => {
                                tracing::info!(index = %dir.display(), items, previous_items = previous, "reloaded");
                            }
                            Err(e) => tracing::warn!(error = %e, "reload failed; still serving the previous index"),
                        }
                        telemetry.observe_reload(result.is_ok());
                        result
                    });
                    match work.await {
                        Ok(Ok((dir, previous, items))) => {
                            json_ok(json!({"status": "reloaded", "index": dir, "items": items, "previous_items": previous}).to_string())
                        }
                        Ok(Err(e)) => {
                            match e {
                                // The service is fine and keeps serving the previous index: the
                                // directory it was pointed at cannot be served. Not a 500.
                                Error::Io { .. } | Error::NotAnIndex { .. } | Error::Corrupt { .. } | Error::IncompatibleVersion { .. } => {
                                    error(
                                        StatusCode::UNPROCESSABLE_ENTITY,
                                        "unusable_index",
                                        format!("{e}; still serving the previous index"),
                                    )
                                }
                                e => engine_error(&e),
                            }
                        }
                        Err(e) => error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            format!("the reload task failed: {e}"),
                        ),
                    }
                }
            }
        }
    }
}
