//! The HTTP service around an [`EngineHandle`]: router, handlers, metrics.
//!
//! Shared by the `serve` example (`main.rs` beside this file) and its
//! integration test (`tests/serve.rs` includes this file with `#[path]`), so
//! the test drives exactly the code the example runs, in-process on a
//! loopback port, without depending on the example binary being built first.
//!
//! | route                | what                                                              |
//! |----------------------|-------------------------------------------------------------------|
//! | `POST /recommend`    | a [`twostage::Request`] as JSON → [`Recommendations::to_json`]      |
//! | `GET /healthz`       | `{"status":"ok","index":..,"items":..}`                           |
//! | `GET /metrics`       | Prometheus text: requests, errors, latency histograms per stage   |
//! | `POST /admin/reload` | `{"index": DIR}` (optional): open DIR and swap it in              |
//!
//! Admin routes need `Authorization: Bearer <token>` with the token the
//! service was started with (compared in constant time); without a
//! configured token they are disabled. Either way a missing or wrong token
//! is a 401.
//!
//! Engine work (recommend, reload) runs on tokio's blocking pool, never on
//! the async worker threads: a request takes a millisecond or more of CPU,
//! which would stall every other connection on that worker. Errors are JSON
//! `{"error": message, "kind": kind}`: the caller's mistakes are 4xx, and only
//! a real fault (a failed stage, a panicked task) is a 500.

#![allow(dead_code)] // main.rs and the test each use a different part.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use twostage::{EngineHandle, Error, Request, Timings};

/// Largest accepted request body. A request is a context, a few filters and
/// at most a 1,000-item history: 256 KiB is generous, and it bounds the
/// memory one connection can make the service buffer.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler shares.
pub struct AppState {
    /// The engine currently serving.
    pub handle: Arc<EngineHandle>,
    /// What `POST /admin/reload` opens when its body names no directory.
    pub index_dir: PathBuf,
    /// Counters and histograms for `/metrics`.
    pub metrics: Metrics,
    /// The bearer token admin routes require; `None` disables them.
    pub admin_token: Option<String>,
}

impl AppState {
    /// State serving `handle`, reloading from `index_dir` by default, with
    /// admin routes behind `admin_token` (disabled when `None`).
    pub fn new(handle: EngineHandle, index_dir: PathBuf, admin_token: Option<String>) -> Arc<AppState> {
        Arc::new(AppState {
            handle: Arc::new(handle),
            index_dir,
            metrics: Metrics::default(),
            admin_token: admin_token.filter(|t| !t.is_empty()),
        })
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
/// on their lengths), so a token cannot be guessed byte by byte from timings.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// The service's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/recommend", post(recommend))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/admin/reload", post(reload))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route".to_string()) })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route".to_string(),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
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

async fn recommend(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let response = match body {
        Err(rejection) => body_error(rejection),
        Ok(bytes) => match serde_json::from_slice::<Request>(&bytes) {
            // Bad JSON, a wrong type and an unknown field (`Request` denies them) all land here.
            Err(e) => error(StatusCode::BAD_REQUEST, "bad_json", e.to_string()),
            Ok(request) => {
                let handle = Arc::clone(&state.handle);
                // Serialising the answer is CPU work too: it stays on the blocking pool.
                let work = tokio::task::spawn_blocking(move || handle.recommend(&request).map(|r| (r.to_json(), r.timings)));
                match work.await {
                    Ok(Ok((body, timings))) => {
                        state.metrics.observe_stages(&timings);
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
    };
    state.metrics.observe_request("/recommend", response.status(), started.elapsed());
    response
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.handle.load();
    let info = engine.info();
    let response = json_ok(
        json!({"status": "ok", "index": info.path, "items": engine.len(), "format_version": info.format_version, "ranker": info.ranker.kind})
            .to_string(),
    );
    state.metrics.observe_request("/healthz", response.status(), Duration::ZERO);
    response
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.handle.load();
    let text = state.metrics.render(engine.len(), &engine.query_cache_stats());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Body of `POST /admin/reload`; empty means "the directory the service started with".
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadRequest {
    index: Option<PathBuf>,
}

async fn reload(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    if !state.is_admin(&headers) {
        let why = if state.admin_token.is_some() {
            "admin routes need `Authorization: Bearer <token>` with the service's admin token"
        } else {
            "admin routes are disabled: start the service with an admin token (TWOSTAGE_ADMIN_TOKEN or --admin-token-file)"
        };
        let response = error(StatusCode::UNAUTHORIZED, "unauthorized", why.to_string());
        state.metrics.observe_request("/admin/reload", response.status(), started.elapsed());
        return response;
    }
    let response = match body {
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
                    let work = tokio::task::spawn_blocking(move || handle.reload(&dir).map(|old| (dir, old.len(), handle.load().len())));
                    match work.await {
                        Ok(Ok((dir, previous, items))) => {
                            tracing::info!(index = %dir.display(), items, previous_items = previous, "reloaded");
                            state.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                            json_ok(json!({"status": "reloaded", "index": dir, "items": items, "previous_items": previous}).to_string())
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "reload failed; still serving the previous index");
                            state.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
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
    };
    state.metrics.observe_request("/admin/reload", response.status(), started.elapsed());
    response
}

/// Histogram bucket upper bounds, microseconds (50 µs to 2.5 s).
const BUCKETS_US: [u64; 15] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
];

/// A Prometheus histogram over [`BUCKETS_US`], lock-free.
#[derive(Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    counts: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let slot = BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(BUCKETS_US.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = BUCKETS_US
                .get(i)
                .map(|&b| format!("{}", b as f64 / 1e6))
                .unwrap_or_else(|| "+Inf".into());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// The service's counters and histograms.
#[derive(Default)]
pub struct Metrics {
    /// Responses by (endpoint, status). A mutex: one short insert per request.
    responses: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Whole-request latency of `/recommend` as the server saw it (parse,
    /// wait for the blocking pool, engine, serialise).
    request: Histogram,
    /// The engine's own per-stage timings, in [`Timings::stages`] order.
    stages: [Histogram; Timings::STAGES],
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl Metrics {
    fn observe_request(&self, endpoint: &'static str, status: StatusCode, elapsed: Duration) {
        // One line per answered request under `--log info`.
        tracing::info!(endpoint, status = status.as_u16(), micros = elapsed.as_micros() as u64, "http");
        if let Ok(mut map) = self.responses.lock() {
            *map.entry((endpoint, status.as_u16())).or_insert(0) += 1;
        }
        if endpoint == "/recommend" {
            self.request.observe(elapsed);
        }
    }

    fn observe_stages(&self, timings: &Timings) {
        for (h, (_, d)) in self.stages.iter().zip(timings.stages()) {
            h.observe(d);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, items: usize, cache: &twostage::QueryCacheStats) -> String {
        let mut out = String::new();
        let responses = self.responses.lock().map(|m| m.clone()).unwrap_or_default();
        out.push_str(
            "# HELP twostage_http_requests_total HTTP requests by endpoint and status code.\n# TYPE twostage_http_requests_total counter\n",
        );
        for ((endpoint, status), n) in &responses {
            let _ = writeln!(
                out,
                "twostage_http_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP twostage_http_errors_total HTTP errors by endpoint and class (client = 4xx, server = 5xx).\n# TYPE twostage_http_errors_total counter\n");
        let mut errors: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for ((endpoint, status), n) in &responses {
            let class = match status {
                400..=499 => "client",
                500..=599 => "server",
                _ => continue,
            };
            *errors.entry((endpoint, class)).or_insert(0) += n;
        }
        for ((endpoint, class), n) in &errors {
            let _ = writeln!(out, "twostage_http_errors_total{{endpoint=\"{endpoint}\",class=\"{class}\"}} {n}");
        }
        out.push_str("# HELP twostage_request_duration_seconds Latency of POST /recommend as the server saw it.\n# TYPE twostage_request_duration_seconds histogram\n");
        self.request
            .render(&mut out, "twostage_request_duration_seconds", "endpoint=\"/recommend\"");
        out.push_str("# HELP twostage_stage_duration_seconds Engine time per stage of successful recommend calls.\n# TYPE twostage_stage_duration_seconds histogram\n");
        for (h, (stage, _)) in self.stages.iter().zip(Timings::default().stages()) {
            h.render(&mut out, "twostage_stage_duration_seconds", &format!("stage=\"{stage}\""));
        }
        out.push_str("# HELP twostage_reloads_total Index reloads by result.\n# TYPE twostage_reloads_total counter\n");
        let _ = writeln!(
            out,
            "twostage_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "twostage_reloads_total{{result=\"error\"}} {}",
            self.reloads_failed.load(Ordering::Relaxed)
        );
        out.push_str("# HELP twostage_index_items Items in the index being served.\n# TYPE twostage_index_items gauge\n");
        let _ = writeln!(out, "twostage_index_items {items}");
        // The engine's own counters: they restart with each reload.
        for (name, kind, help, value) in [
            (
                "query_cache_hits_total",
                "counter",
                "Search texts whose vector came from the query cache.",
                cache.hits,
            ),
            (
                "query_cache_misses_total",
                "counter",
                "Search texts that were encoded.",
                cache.misses,
            ),
            (
                "query_cache_entries",
                "gauge",
                "Search-text vectors in the query cache.",
                cache.entries as u64,
            ),
            (
                "query_cache_bytes",
                "gauge",
                "Bytes held by the query cache's vectors and keys.",
                cache.bytes as u64,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP twostage_{name} {help}\n# TYPE twostage_{name} {kind}\ntwostage_{name} {value}"
            );
        }
        out
    }
}
