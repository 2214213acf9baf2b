//! The service's metrics, recorded through the `metrics` facade into a
//! Prometheus recorder (`metrics-exporter-prometheus`) that `GET /metrics`
//! renders, and the middleware that counts every response.
//!
//! | metric                                        | type      | labels              | what                                                        |
//! |-----------------------------------------------|-----------|---------------------|-------------------------------------------------------------|
//! | `twostage_http_requests_total`                | counter   | `endpoint`,`status` | every response, 404/405/413/503 from the router and layers included |
//! | `twostage_http_errors_total`                  | counter   | `endpoint`,`class`  | the 4xx (`client`) and 5xx (`server`) among them            |
//! | `twostage_request_duration_seconds`           | histogram | `endpoint`          | time to the response's head, as the server saw it           |
//! | `twostage_stage_duration_seconds`             | histogram | `stage`             | the engine's own timing of each stage of a successful recommend (`Timings::stages`: encode, each retriever, fusion, features, rank, total) |
//! | `twostage_reloads_total`                      | counter   | `result` (`ok`,`error`) | index reloads                                           |
//! | `twostage_index_items`                        | gauge     |                     | items in the index being served                             |
//! | `twostage_query_cache_{hits,misses}_total`    | counter   |                     | the engine's query cache; they restart with each reload     |
//! | `twostage_query_cache_{entries,bytes}`        | gauge     |                     | its size                                                    |
//!
//! `endpoint` is the route's pattern (`/recommend`), or `unmatched` for a
//! path no route has: a label per raw path would let any caller grow the
//! metric set without bound.
//!
//! Each [`Telemetry`] owns its recorder instead of installing one globally,
//! so two services in one process (the integration tests run several) keep
//! separate counts; it records with `metrics::with_local_recorder`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use twostage::{QueryCacheStats, Timings};

const REQUESTS: &str = "twostage_http_requests_total";
const ERRORS: &str = "twostage_http_errors_total";
const REQUEST_DURATION: &str = "twostage_request_duration_seconds";
const STAGE_DURATION: &str = "twostage_stage_duration_seconds";
const RELOADS: &str = "twostage_reloads_total";
const INDEX_ITEMS: &str = "twostage_index_items";
const CACHE_HITS: &str = "twostage_query_cache_hits_total";
const CACHE_MISSES: &str = "twostage_query_cache_misses_total";
const CACHE_ENTRIES: &str = "twostage_query_cache_entries";
const CACHE_BYTES: &str = "twostage_query_cache_bytes";

/// Histogram bucket upper bounds, seconds (50 µs to 2.5 s): an engine stage
/// takes tens of microseconds, a reload seconds.
const BUCKETS_S: [f64; 15] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The service's metrics: a Prometheus recorder and the handle that renders it.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Telemetry {
    /// A recorder with every metric described and the reload counters at 0.
    pub fn new() -> Result<Telemetry, BuildError> {
        // Buckets make histograms real Prometheus histograms (the exporter's
        // default is a summary, which cannot be aggregated across instances).
        let recorder = PrometheusBuilder::new().set_buckets(&BUCKETS_S)?.build_recorder();
        let handle = recorder.handle();
        let telemetry = Telemetry { recorder, handle };
        telemetry.record(|| {
            describe_counter!(REQUESTS, "HTTP responses by endpoint and status code.");
            describe_counter!(ERRORS, "HTTP errors by endpoint and class (client = 4xx, server = 5xx).");
            describe_histogram!(REQUEST_DURATION, Unit::Seconds, "Latency of each request as the server saw it.");
            describe_histogram!(
                STAGE_DURATION,
                Unit::Seconds,
                "Engine time per stage of successful recommend calls."
            );
            describe_counter!(RELOADS, "Index reloads by result.");
            describe_gauge!(INDEX_ITEMS, "Items in the index being served.");
            describe_counter!(CACHE_HITS, "Search texts whose vector came from the query cache.");
            describe_counter!(CACHE_MISSES, "Search texts that were encoded.");
            describe_gauge!(CACHE_ENTRIES, "Search-text vectors in the query cache.");
            describe_gauge!(CACHE_BYTES, "Bytes held by the query cache's vectors and keys.");
            // Present from the start, so an alert on errors has a series to compare with.
            counter!(RELOADS, "result" => "ok").absolute(0);
            counter!(RELOADS, "result" => "error").absolute(0);
        });
        Ok(telemetry)
    }

    fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Counts one response of `endpoint` and its latency.
    pub fn observe_response(&self, endpoint: &str, status: StatusCode, elapsed: Duration) {
        let endpoint = endpoint.to_string();
        self.record(|| {
            counter!(REQUESTS, "endpoint" => endpoint.clone(), "status" => status.as_str().to_string()).increment(1);
            let class = if status.is_client_error() {
                Some("client")
            } else if status.is_server_error() {
                Some("server")
            } else {
                None
            };
            if let Some(class) = class {
                counter!(ERRORS, "endpoint" => endpoint.clone(), "class" => class).increment(1);
            }
            histogram!(REQUEST_DURATION, "endpoint" => endpoint).record(elapsed.as_secs_f64());
        });
    }

    /// Records the engine's per-stage timings of one answered request.
    pub fn observe_stages(&self, timings: &Timings) {
        self.record(|| {
            for (stage, d) in timings.stages() {
                histogram!(STAGE_DURATION, "stage" => stage).record(d.as_secs_f64());
            }
        });
    }

    /// Counts one reload.
    pub fn observe_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.record(|| counter!(RELOADS, "result" => result).increment(1));
    }

    /// The Prometheus text exposition, after reading the gauges of the
    /// engine being served (`items`, `cache`).
    pub fn render(&self, items: usize, cache: &QueryCacheStats) -> String {
        self.record(|| {
            gauge!(INDEX_ITEMS).set(items as f64);
            // The engine keeps these counters itself; they restart when a reload swaps it.
            counter!(CACHE_HITS).absolute(cache.hits);
            counter!(CACHE_MISSES).absolute(cache.misses);
            gauge!(CACHE_ENTRIES).set(cache.entries as f64);
            gauge!(CACHE_BYTES).set(cache.bytes as f64);
        });
        self.handle.render()
    }
}

/// The middleware that counts every response, whoever produced it: a
/// handler, the router's 404/405 fallbacks, the body limit's 413 or the
/// timeout's 503. It sits outside those layers (see `service::router`).
pub async fn count_responses(State(telemetry): State<Arc<Telemetry>>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    telemetry.observe_response(&endpoint, response.status(), started.elapsed());
    response
}
