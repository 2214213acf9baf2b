//! The HTTP service example, driven over loopback by a real HTTP client.
//!
//! The router is the example's own code (`examples/serve/service.rs`,
//! included by path), served on 127.0.0.1 port 0 by a tokio runtime on a
//! background thread; the client is `ureq`, so every request crosses a real
//! TCP socket and HTTP/1.1 parser.

mod common;
#[path = "../examples/serve/service.rs"]
mod service;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use twostage::{Context, EngineHandle, Request};

/// A running server; dropping it shuts the server down and waits for it.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The admin token the test servers start with; `call` sends it.
const TOKEN: &str = "test-admin-token";

impl Server {
    fn start(index: &Path) -> Server {
        Server::start_with_token(index, Some(TOKEN))
    }

    fn start_with_token(index: &Path, token: Option<&str>) -> Server {
        Server::start_with(index, token, service::DEFAULT_REQUEST_TIMEOUT)
    }

    fn start_with(index: &Path, token: Option<&str>, timeout: Duration) -> Server {
        Server::start_full(index, token, timeout, None)
    }

    fn start_full(index: &Path, token: Option<&str>, timeout: Duration, impressions: Option<&Path>) -> Server {
        let handle = EngineHandle::open(index).expect("open index");
        let log = impressions.map(|p| service::ImpressionLog::open(p).expect("impression log"));
        let state =
            service::AppState::with_impressions(handle, index.to_path_buf(), token.map(str::to_string), timeout, log).expect("state");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(4)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                service::run(listener, state, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
            });
        });
        Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build()
}

/// (status, body) of a request; 4xx and 5xx are answers, not client errors.
fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    call_as(agent, method, url, body, Some(TOKEN))
}

/// [`call`] with `token` as the bearer token (none when `None`).
fn call_as(agent: &ureq::Agent, method: &str, url: &str, body: Option<&str>, token: Option<&str>) -> (u16, String) {
    let mut req = agent.request(method, url).set("content-type", "application/json");
    if let Some(t) = token {
        req = req.set("authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    match result {
        Ok(resp) => (resp.status(), resp.into_string().expect("body")),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().expect("body")),
        Err(e) => panic!("{method} {url}: transport error {e}"),
    }
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn recommend_healthz_and_metrics() {
    let fx = common::music();
    let server = Server::start(&fx.dir);
    let agent = agent();

    let (status, body) = call(&agent, "GET", &server.url("/healthz"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["items"], fx.engine.len());

    let (status, body) = call(
        &agent,
        "POST",
        &server.url("/recommend"),
        Some(r#"{"context":{"listening":{"item":"trk-00042"}},"k":10}"#),
    );
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    let ids: Vec<&str> = v["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    let direct = fx.engine.recommend(&Request::new(Context::listening("trk-00042")).k(10)).unwrap();
    let expected: Vec<&str> = direct.items.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, expected, "the service answers what the library answers");
    assert!(v["items"][0]["sources"].as_object().is_some_and(|s| !s.is_empty()));
    assert!(v["timings_us"]["total"].as_u64().is_some());

    let (status, body) = call(
        &agent,
        "POST",
        &server.url("/recommend"),
        Some(r#"{"context":{"search":{"text":"jazz"}},"k":3,"explain":true}"#),
    );
    assert_eq!(status, 200, "{body}");
    assert!(json(&body)["items"][0]["features"].is_object(), "explain returns features: {body}");

    let (status, text) = call(&agent, "GET", &server.url("/metrics"), None);
    assert_eq!(status, 200);
    assert!(
        text.contains(r#"twostage_http_requests_total{endpoint="/recommend",status="200"} 2"#),
        "{text}"
    );
    // Every stage has its histogram, the last one (total) included.
    for (stage, _) in twostage::Timings::default().stages() {
        assert!(
            text.contains(&format!(r#"twostage_stage_duration_seconds_count{{stage="{stage}"}} 2"#)),
            "{stage}: {text}"
        );
    }
    assert!(
        text.contains(r#"twostage_stage_duration_seconds_bucket{stage="rank",le="+Inf"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"twostage_request_duration_seconds_count{endpoint="/recommend"} 2"#),
        "{text}"
    );
    assert!(text.contains(&format!("twostage_index_items {}", fx.engine.len())), "{text}");
    // No content space here, so no search was encoded or cached.
    for line in [
        "twostage_query_cache_hits_total 0",
        "twostage_query_cache_misses_total 0",
        "twostage_query_cache_entries 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}: {text}");
    }
}

#[test]
fn bad_requests_are_4xx_with_a_json_error() {
    let fx = common::music();
    let server = Server::start(&fx.dir);
    let agent = agent();
    let cases: [(&str, &str, Option<&str>, u16, &str); 11] = [
        ("POST", "/recommend", Some("{not json"), 400, "bad_json"),
        (
            "POST",
            "/recommend",
            Some(r#"{"context":{"search":{"text":"x"}},"kk":3}"#),
            400,
            "bad_json",
        ),
        (
            "POST",
            "/recommend",
            Some(r#"{"context":{"listening":{"item":"no-such-track"}}}"#),
            400,
            "unknown_item",
        ),
        (
            "POST",
            "/recommend",
            Some(r#"{"context":{"search":{"text":"  "}}}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/recommend",
            Some(r#"{"context":{"search":{"text":"x"}},"k":100000000}"#),
            400,
            "invalid_request",
        ),
        // k = 0 is the caller's mistake (Error::InvalidRequest), not an empty list.
        (
            "POST",
            "/recommend",
            Some(r#"{"context":{"listening":{"item":"trk-00042"}},"k":0}"#),
            400,
            "invalid_request",
        ),
        // A malformed range is refused by the JSON reader, one on a field
        // that is not a number attribute by the engine, naming it.
        (
            "POST",
            "/recommend",
            Some(r#"{"context":{"search":{"text":"x"}},"range":[{"attr":"year","gte":"2000"}]}"#),
            400,
            "bad_json",
        ),
        (
            "POST",
            "/recommend",
            Some(r#"{"context":{"search":{"text":"x"}},"range":[{"attr":"artist","gte":2000}]}"#),
            400,
            "invalid_request",
        ),
        ("GET", "/recommend", None, 405, "method_not_allowed"),
        ("GET", "/nowhere", None, 404, "not_found"),
        ("POST", "/admin/reload", Some(r#"{"dir":"x"}"#), 400, "bad_json"),
    ];
    for (method, path, body, want_status, want_kind) in cases {
        let (status, text) = call(&agent, method, &server.url(path), body);
        assert_eq!(status, want_status, "{method} {path}: {text}");
        let v = json(&text);
        assert_eq!(v["kind"], want_kind, "{method} {path}: {text}");
        assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()), "{text}");
    }
    // A control's bad value is named by its path in the body.
    for (body, names) in [
        (
            r#"{"context":{"search":{"text":"x"}},"range":[{"attr":"year","gte":"2000"}]}"#,
            "range[0].gte",
        ),
        (
            r#"{"context":{"search":{"text":"x"}},"group_cap":{"key":"artist","max":-1}}"#,
            "group_cap.max",
        ),
        (r#"{"context":{"search":{"text":"x"}},"mmr":{"lambda":0.5,"beta":1}}"#, "mmr"),
        (r#"{"context":{"search":{"text":"x"}},"negatives":"trk-00001"}"#, "negatives"),
        (r#"{"context":{"search":{"text":"x"}},"variant":"b"}"#, "variant"),
        (
            r#"{"context":{"search":{"text":"x"}},"boosts":[{"field":"genre","value":"jazz","weight":"high"}]}"#,
            "boosts[0].weight",
        ),
        (
            r#"{"context":{"search":{"text":"x"}},"recency":{"attr":"year","half_life":-1,"weight":1}}"#,
            "half_life",
        ),
        (
            r#"{"context":{"search":{"text":"x"}},"pins":[{"id":"trk-00001","position":-1}]}"#,
            "pins[0].position",
        ),
    ] {
        let (status, text) = call(&agent, "POST", &server.url("/recommend"), Some(body));
        assert_eq!(status, 400, "{body}: {text}");
        assert!(json(&text)["error"].as_str().is_some_and(|m| m.contains(names)), "{body}: {text}");
    }
    // Every control at once is a good request.
    let every = r#"{"context":{"history":{"items":["trk-00042"]}},"k":5,"negatives":["trk-00043"],
        "range":[{"attr":"year","gte":1950}],"group_cap":{"key":"artist","max":2},"mmr":{"lambda":0.8},
        "boosts":[{"field":"genre","value":"jazz","weight":0.2}],"recency":{"attr":"year","half_life":10,"weight":0.1},
        "pins":[{"id":"trk-00044","position":1}],"budget_ms":50,"user":"usr-00001","variant":"ranker"}"#;
    let (status, text) = call(&agent, "POST", &server.url("/recommend"), Some(every));
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["items"][1]["id"], "trk-00044", "{text}");
    assert_eq!(json(&text)["budget"]["budget_us"], 50_000, "{text}");
    assert_eq!(json(&text)["variant"], "ranker", "{text}");
    // A body announced over the limit is refused before a byte of it is read.
    let (status, text) = announce_oversized_body(server.addr, "/recommend");
    assert_eq!(status, 413, "{text}");
    assert_eq!(json(&text)["kind"], "body_too_large", "{text}");

    let (_, text) = call(&agent, "GET", &server.url("/metrics"), None);
    // The 405 is answered by the router, the 413 by the body limit: the
    // counting middleware sits outside both and sees them all.
    assert!(
        text.contains(r#"twostage_http_errors_total{endpoint="/recommend",class="client"} 18"#),
        "{text}"
    );
    for (endpoint, status, n) in [
        ("/recommend", 400, 16),
        ("/recommend", 413, 1),
        ("/recommend", 405, 1),
        ("unmatched", 404, 1),
        ("/admin/reload", 400, 1),
    ] {
        let line = format!(r#"twostage_http_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}"#);
        assert!(text.lines().any(|l| l == line), "{line}: {text}");
    }
    assert!(!text.contains(r#"class="server""#), "no request was a server fault: {text}");
}

/// Writes `head` (a request line and headers, up to the blank line) and then
/// `body` on a fresh connection, and returns the (status, body) of the
/// answer. Raw, because the service answers an oversized body without
/// reading all of it and closes: a client that insists on writing its whole
/// request first (ureq does) can see a broken pipe instead of the answer.
fn raw_post(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

/// Announces a body over the limit in Content-Length and sends none of it:
/// the service refuses it before reading a byte.
fn announce_oversized_body(addr: SocketAddr, path: &str) -> (u16, String) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        service::MAX_BODY_BYTES + 1
    );
    raw_post(addr, &head, b"")
}

/// A too-large body sent chunked (no Content-Length to refuse up front)
/// fails while it is read, and is a 413 with a JSON error all the same.
#[test]
fn a_chunked_body_over_the_limit_is_a_413() {
    let fx = common::music();
    let server = Server::start(&fx.dir);
    let head = format!(
        "POST /recommend HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        server.addr
    );
    // One chunk one byte over the limit: the service must read all of it to
    // know, and answers before the (never sent) last chunk.
    let size = service::MAX_BODY_BYTES + 1;
    let mut chunk = format!("{size:x}\r\n").into_bytes();
    chunk.extend(std::iter::repeat_n(b'a', size));
    let (status, text) = raw_post(server.addr, &head, &chunk);
    assert_eq!(status, 413, "{text}");
    assert_eq!(json(&text)["kind"], "body_too_large", "{text}");
    let (_, metrics) = call(&agent(), "GET", &server.url("/metrics"), None);
    assert!(
        metrics.contains(r#"twostage_http_requests_total{endpoint="/recommend",status="413"} 1"#),
        "{metrics}"
    );
}

#[test]
fn the_playground_page_is_served_at_the_root() {
    let fx = common::music();
    let server = Server::start(&fx.dir);
    let resp = agent().get(&server.url("/")).call().expect("GET /");
    assert_eq!(resp.status(), 200);
    assert!(resp.content_type().starts_with("text/html"), "{}", resp.content_type());
    let page = resp.into_string().expect("body");
    assert!(page.contains("twostage playground") && page.contains("/recommend"), "{page}");
    // Self-contained: nothing is loaded from another host.
    assert!(!page.contains("http://") && !page.contains("https://"), "the page links elsewhere");
}

/// A request the service cannot answer within its timeout is a 503 with a
/// JSON error, counted as a server error. A reload (it opens and verifies
/// every file of an index: tens of milliseconds at least) cannot finish in
/// a millisecond; it still completes, and is counted, after the answer.
#[test]
fn a_request_over_the_timeout_is_a_503() {
    let fx = common::music();
    let server = Server::start_with(&fx.dir, Some(TOKEN), Duration::from_millis(1));
    let agent = agent();
    let (status, text) = call(&agent, "POST", &server.url("/admin/reload"), Some(""));
    assert_eq!(status, 503, "{text}");
    assert_eq!(json(&text)["kind"], "timeout", "{text}");
    let reloaded = r#"twostage_reloads_total{result="ok"} 1"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let (_, metrics) = call(&agent, "GET", &server.url("/metrics"), None);
        if metrics.contains(reloaded) || std::time::Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(metrics.contains(reloaded), "the reload ran to its end: {metrics}");
    for line in [
        r#"twostage_http_requests_total{endpoint="/admin/reload",status="503"} 1"#,
        r#"twostage_http_errors_total{endpoint="/admin/reload",class="server"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }
}

/// A `tracing` writer into a shared buffer, for reading back what a fmt subscriber printed.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_request_is_traced_with_its_method_path_and_status() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Global: the server answers on tokio's threads, not this one. Other tests
    // in this binary log into the buffer too; this one looks for its own path.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only test here that installs a subscriber");
    let fx = common::music();
    let server = Server::start(&fx.dir);
    let (status, _) = call(&agent(), "GET", &server.url("/traced-nowhere"), None);
    assert_eq!(status, 404);
    let (status, _) = call(
        &agent(),
        "POST",
        &server.url("/recommend?traced"),
        Some(r#"{"context":{"listening":{"item":"trk-00042"}},"k":3}"#),
    );
    assert_eq!(status, 200);
    drop(server); // waits for the server, so its last lines are written
    let text = captured
        .0
        .lock()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default();
    for (method, uri, status) in [("GET", "/traced-nowhere", "404"), ("POST", "/recommend?traced", "200")] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("method={method}")) && l.contains(&format!("uri={uri}")) && l.contains("latency="))
            .unwrap_or_else(|| panic!("no response line for {method} {uri} in:\n{text}"));
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains(&format!("status={status}")), "{line}");
    }
}

#[test]
fn reload_under_concurrent_load_drops_no_request() {
    let fx = common::music();
    let tmp = tempfile::tempdir().unwrap();
    let other: PathBuf = tmp.path().join("index-b");
    common::copy_dir(&fx.dir, &other);
    let server = Arc::new(Server::start(&fx.dir));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let total = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let (server, stop, total) = (Arc::clone(&server), Arc::clone(&stop), Arc::clone(&total));
            let ids: Vec<String> = fx
                .catalog
                .items()
                .iter()
                .skip(c * 97)
                .step_by(13)
                .take(400)
                .map(|i| i.id.clone())
                .collect();
            std::thread::spawn(move || {
                let agent = agent();
                let mut served = 0usize;
                // Bounded: at most 400 requests per client, and stop once the reloads are done.
                for id in ids {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) && served >= 20 {
                        break;
                    }
                    let body = format!(r#"{{"context":{{"listening":{{"item":"{id}"}}}},"k":5}}"#);
                    let (status, text) = call(&agent, "POST", &server.url("/recommend"), Some(&body));
                    assert_eq!(status, 200, "{id}: {text}");
                    assert_eq!(json(&text)["items"].as_array().map(Vec::len), Some(5), "{text}");
                    served += 1;
                    total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                served
            })
        })
        .collect();

    let agent = agent();
    let load = || total.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while load() < 10 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = load();
    for round in 0..4 {
        let dir = if round % 2 == 0 { &other } else { &fx.dir };
        let (status, text) = call(
            &agent,
            "POST",
            &server.url("/admin/reload"),
            Some(&json!({"index": dir}).to_string()),
        );
        assert_eq!(status, 200, "{text}");
        let (_, health) = call(&agent, "GET", &server.url("/healthz"), None);
        assert_eq!(json(&health)["index"], json!(dir), "the reloaded index serves");
    }
    // A directory that is not an index is refused, and the current one keeps serving.
    let (status, text) = call(
        &agent,
        "POST",
        &server.url("/admin/reload"),
        Some(&json!({"index": tmp.path().join("missing")}).to_string()),
    );
    assert_eq!(status, 422, "{text}");
    assert_eq!(json(&text)["kind"], "unusable_index");
    // An empty body reloads the directory the service started with.
    let (status, text) = call(&agent, "POST", &server.url("/admin/reload"), Some(""));
    assert_eq!(status, 200, "{text}");
    let during = load() - before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let served: usize = clients.into_iter().map(|t| t.join().expect("client thread")).sum();
    assert!(served >= 60, "{served} requests");
    assert!(during > 0, "requests were served while the reloads ran");
    let (_, metrics) = call(&agent, "GET", &server.url("/metrics"), None);
    assert!(metrics.contains(r#"twostage_reloads_total{result="ok"} 5"#), "{metrics}");
    assert!(metrics.contains(r#"twostage_reloads_total{result="error"} 1"#), "{metrics}");
    assert!(!metrics.contains(r#"class="server""#), "{metrics}");
}

#[test]
fn delete_needs_the_token_is_durable_and_leaves_every_answer() {
    // A private copy: the deletion must not reach the other tests' index.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    common::copy_dir(&common::music().dir, &dir);
    let agent = agent();
    let search = r#"{"context":{"search":{"text":"ambient soft drones"}},"k":20}"#;
    let top = |server: &Server| -> Vec<String> {
        let (status, text) = call(&agent, "POST", &server.url("/recommend"), Some(search));
        assert_eq!(status, 200, "{text}");
        json(&text)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let server = Server::start(&dir);
    let victim = top(&server)[0].clone();
    let url = server.url(&format!("/items/{victim}"));
    for token in [None, Some("wrong")] {
        let (status, text) = call_as(&agent, "DELETE", &url, None, token);
        assert_eq!(status, 401, "{token:?}: {text}");
    }
    assert_eq!(top(&server)[0], victim, "a refused delete changes nothing");
    let (status, text) = call(&agent, "DELETE", &url, None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["already_deleted"], false);
    assert!(!top(&server).contains(&victim), "visible from the answer on");
    let (status, text) = call(&agent, "DELETE", &server.url("/items/no-such-track"), None);
    assert_eq!((status, json(&text)["kind"].as_str().unwrap()), (404, "unknown_item"), "{text}");
    // Events: refused without the token, whole when one is bad, counted when good.
    let events = server.url("/events");
    let one = format!(r#"{{"events":[{{"user":"u1","item":"{victim}","ts":1800000000}}]}}"#);
    assert_eq!(call_as(&agent, "POST", &events, Some(&one), None).0, 401);
    let (status, text) = call(
        &agent,
        "POST",
        &events,
        Some(
            r#"{"events":[{"user":"u1","item":"trk-00002","ts":1800000000},{"user":"u1","item":"trk-00003","ts":1800000000,"type":"search"}]}"#,
        ),
    );
    assert_eq!(status, 400, "{text}");
    assert!(json(&text)["error"].as_str().unwrap().contains("events[1].query"), "{text}");
    let (status, text) = call(
        &agent,
        "POST",
        &events,
        Some(r#"{"events":[{"user":"u1","item":"trk-00002","ts":1800000000,"type":"skip"}]}"#),
    );
    assert_eq!((status, json(&text)["events"].as_u64()), (200, Some(1)), "{text}");
    // A restarted service on the same directory still has it deleted.
    drop(server);
    let again = Server::start(&dir);
    assert!(!top(&again).contains(&victim));
    let (status, text) = call(&agent, "DELETE", &again.url(&format!("/items/{victim}")), None);
    assert_eq!((status, json(&text)["already_deleted"].as_bool()), (200, Some(true)), "{text}");
}

#[test]
fn upserts_need_the_token_are_checked_whole_and_served_at_once_and_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    common::copy_dir(&common::music().dir, &dir);
    let agent = agent();
    let search = r#"{"context":{"search":{"text":"zyzzyva quokka"}},"k":5,"fields":["title","year"]}"#;
    let top = |server: &Server| -> Value {
        let (status, text) = call(&agent, "POST", &server.url("/recommend"), Some(search));
        assert_eq!(status, 200, "{text}");
        json(&text)["items"][0].clone()
    };
    let server = Server::start(&dir);
    let url = server.url("/items");
    let good = r#"{"id":"new-1","title":"Zyzzyva Quokka","tags":{"genre":"ambient"},"attributes":{"artist":"Heavy Parade","year":2031}}"#;
    let body = format!(r#"{{"items":[{good}]}}"#);
    for token in [None, Some("wrong")] {
        let (status, text) = call_as(&agent, "POST", &url, Some(&body), token);
        assert_eq!(status, 401, "{token:?}: {text}");
    }
    // One bad record refuses the batch, naming it.
    let bad = format!(r#"{{"items":[{good},{{"id":"new-2","title":"x","attributes":{{"year":"soon"}}}}]}}"#);
    let (status, text) = call(&agent, "POST", &url, Some(&bad));
    assert_eq!(status, 400, "{text}");
    assert!(
        json(&text)["error"].as_str().unwrap().starts_with("items[1].attributes.year"),
        "{text}"
    );
    assert_ne!(top(&server)["id"], "new-1", "a refused batch applies nothing");
    let (status, text) = call(&agent, "POST", &url, Some(&body));
    assert_eq!((status, json(&text)["added"].as_u64()), (200, Some(1)), "{text}");
    let first = top(&server);
    assert_eq!(
        (first["id"].as_str(), first["fields"]["year"].as_f64()),
        (Some("new-1"), Some(2031.0))
    );
    // Changed: found by the new record.
    let changed = r#"{"items":[{"id":"new-1","title":"Zyzzyva Quokka","attributes":{"artist":"Heavy Parade","year":2032}}]}"#;
    let (status, text) = call(&agent, "POST", &url, Some(changed));
    assert_eq!((status, json(&text)["updated"].as_u64()), (200, Some(1)), "{text}");
    assert_eq!(top(&server)["fields"]["year"].as_f64(), Some(2032.0));
    drop(server);
    let again = Server::start(&dir);
    assert_eq!(top(&again)["fields"]["year"].as_f64(), Some(2032.0), "after a restart");
    let (_, health) = call(&agent, "GET", &again.url("/healthz"), None);
    assert_eq!(json(&health)["live"]["added"], 1, "{health}");
    let (_, metrics) = call(&agent, "GET", &again.url("/metrics"), None);
    assert!(metrics.contains("twostage_live_items{kind=\"added\"} 1\n"), "{metrics}");
}

#[test]
fn admin_routes_need_the_token_and_are_off_without_one() {
    let fx = common::music();
    let server = Server::start(&fx.dir);
    let agent = agent();
    let url = server.url("/admin/reload");
    for token in [None, Some("wrong"), Some(""), Some("test-admin-tokenX")] {
        let (status, text) = call_as(&agent, "POST", &url, Some(""), token);
        assert_eq!(status, 401, "{token:?}: {text}");
        assert_eq!(json(&text)["kind"], "unauthorized");
    }
    assert_eq!(call(&agent, "POST", &url, Some("")).0, 200, "the right token reloads");
    let (_, metrics) = call(&agent, "GET", &server.url("/metrics"), None);
    assert!(
        metrics.contains(r#"twostage_http_errors_total{endpoint="/admin/reload",class="client"} 4"#),
        "{metrics}"
    );

    // Without a configured token, no header opens them.
    let closed = Server::start_with_token(&fx.dir, None);
    let (status, text) = call(&agent, "POST", &closed.url("/admin/reload"), Some(""));
    assert_eq!(status, 401, "{text}");
    assert!(json(&text)["error"].as_str().unwrap().contains("disabled"), "{text}");
    // Recommendations never need it.
    let (status, _) = call_as(
        &agent,
        "POST",
        &closed.url("/recommend"),
        Some(r#"{"context":{"search":{"text":"jazz"}}}"#),
        None,
    );
    assert_eq!(status, 200);
}

/// The ids of the results the playground shows, and their titles, in order.
const SHOWN: &str = r#"return Array.from(document.querySelectorAll('#results tbody tr')).map(tr =>
    [tr.dataset.id, tr.querySelector('td.title').firstChild.textContent]);"#;

/// Waits until the playground has finished its `run`-th request, and returns what it shows.
fn shown_after(page: &webdriver::Session, run: u32) -> anyhow::Result<Vec<(String, String)>> {
    let done = format!(
        r#"const s = document.getElementById("status");
           return Number(s.dataset.run) >= {run} && s.dataset.state !== "loading" ? s.dataset.state : null;"#
    );
    let state = page.wait_for(&done, Duration::from_secs(60))?;
    anyhow::ensure!(state == "done", "the page ended in state {state}");
    Ok(serde_json::from_value(page.script(SHOWN, json!([]))?)?)
}

/// The engine's own answer to `context`: (id, title) in order.
fn expected(fx: &common::Fixture, context: Context) -> Vec<(String, String)> {
    let recs = fx.engine.recommend(&Request::new(context).k(10)).expect("recommend");
    recs.items
        .iter()
        .map(|r| (r.id.clone(), fx.engine.item(&r.id).expect("item").title.clone()))
        .collect()
}

/// The playground in headless Chromium: a search from the URL shows the
/// engine's results by title, and picking a "currently listening" item with
/// the picker personalises them. Writes screenshots under target/playground/.
#[test]
fn playground_in_a_real_browser() {
    let Some(browser) = webdriver::Browser::find() else {
        eprintln!(
            "SKIPPED playground_in_a_real_browser: no chromium and chromedriver on PATH \
             (apt-get install chromium chromium-driver, or set TWOSTAGE_CHROMIUM and TWOSTAGE_CHROMEDRIVER)"
        );
        return;
    };
    if let Err(e) = drive_playground(&browser) {
        panic!("{e:#}");
    }
}

fn drive_playground(browser: &webdriver::Browser) -> anyhow::Result<()> {
    let fx = common::music();
    let server = Server::start(&fx.dir);
    let page = webdriver::Session::start(browser, 1280, 1000)?;
    let shots = PathBuf::from(option_env!("CARGO_TARGET_DIR").unwrap_or(concat!(env!("CARGO_MANIFEST_DIR"), "/target"))).join("playground");

    page.goto(&server.url("/?q=jazz"))?;
    let searched = shown_after(&page, 1)?;
    assert_eq!(
        searched,
        expected(fx, Context::search("jazz")),
        "the page shows the engine's answer, by title"
    );
    assert!(searched.iter().all(|(_, title)| !title.is_empty()));
    let timings = page.script(r#"return document.querySelectorAll('#timings tbody tr').length;"#, json!([]))?;
    assert_eq!(timings, twostage::Timings::STAGES, "a row per stage");
    let sources = page.script(r#"return document.querySelectorAll('#results .src').length;"#, json!([]))?;
    assert!(
        sources.as_u64().is_some_and(|n| n >= searched.len() as u64),
        "provenance shown: {sources}"
    );
    page.screenshot(&shots.join("search.png"))?;

    // Pick an item by its title with the "currently listening" picker.
    let listened = fx.catalog.items().iter().find(|i| i.id == "trk-00042").expect("trk-00042");
    let pick = page.find("#pick")?;
    page.type_into(&pick, &listened.title)?;
    let wanted = format!(r#"li[data-id="{}"]"#, listened.id);
    page.wait_for(
        &format!(r#"return document.querySelector('#suggestions {wanted}') !== null;"#),
        Duration::from_secs(30),
    )?;
    page.click(&page.find(&format!("#suggestions {wanted}"))?)?;
    let personalised = shown_after(&page, 2)?;
    assert_eq!(
        personalised,
        expected(fx, Context::personalized_search("jazz", [listened.id.as_str()])),
        "a search with a history"
    );
    assert_ne!(personalised, searched, "the listening item changed the results");
    let url = page.script("return location.search;", json!([]))?;
    assert_eq!(url, format!("?q=jazz&history={}", listened.id), "the URL links to this view");
    let path = shots.join("playground.png");
    page.screenshot(&path)?;
    eprintln!(
        "playground screenshots: {} and {}",
        shots.join("search.png").display(),
        path.display()
    );
    Ok(())
}

#[test]
fn answers_to_a_user_are_logged_as_impressions_the_events_loader_reads() {
    let fx = common::music();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("impressions.jsonl");
    let server = Server::start_full(&fx.dir, Some(TOKEN), service::DEFAULT_REQUEST_TIMEOUT, Some(&path));
    let agent = agent();
    let mut shown = Vec::new();
    for user in ["usr-00001", "usr-00002"] {
        let body = format!(r#"{{"context":{{"listening":{{"item":"trk-00042"}}}},"k":5,"user":"{user}"}}"#);
        let (status, text) = call(&agent, "POST", &server.url("/recommend"), Some(&body));
        assert_eq!(status, 200, "{text}");
        let v = json(&text);
        let id = v["request_id"].as_str().expect("a request id").to_string();
        let items: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        shown.push((id, user, v["variant"].as_str().unwrap().to_string(), items));
    }
    // Without a user nothing is logged, and no request id is given.
    let (_, text) = call(
        &agent,
        "POST",
        &server.url("/recommend"),
        Some(r#"{"context":{"listening":{"item":"trk-00042"}},"k":5}"#),
    );
    assert!(json(&text).get("request_id").is_none(), "{text}");
    assert_ne!(shown[0].0, shown[1].0, "request ids are unique");

    // The log is an events file: loaded beside the events, apart from them.
    let events = twostage::Events::from_jsonl_path(&path, &fx.catalog).expect("the impression log loads as events");
    assert_eq!(events.len(), 0);
    let got = events.impressions();
    assert_eq!(got.len(), 10);
    for (id, user, variant, items) in &shown {
        let mine: Vec<_> = got.iter().filter(|i| &i.request == id).collect();
        assert_eq!(mine.len(), items.len());
        for imp in mine {
            assert_eq!(&events.users()[imp.user as usize], user);
            assert_eq!(imp.variant.as_deref(), Some(variant.as_str()));
            assert_eq!(fx.catalog.items()[imp.item as usize].id, items[imp.position as usize]);
        }
    }
}

#[test]
fn compaction_needs_the_token_runs_in_the_background_and_shows_in_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    common::copy_dir(&common::music().dir, &dir);
    let agent = agent();
    let server = Server::start(&dir);
    let (status, text) = call(&agent, "DELETE", &server.url("/items/trk-00001"), None);
    assert_eq!(status, 200, "{text}");
    let url = server.url("/admin/compact");
    assert_eq!(call_as(&agent, "POST", &url, None, None).0, 401);
    let (status, text) = call(&agent, "POST", &url, None);
    assert_eq!(status, 202, "{text}");
    // Finished within a minute, as /metrics tells, and served: the deleted
    // item is now unknown, the log empty.
    let metrics = server.url("/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, text) = call(&agent, "GET", &metrics, None);
        if text.contains(r#"twostage_compactions_total{outcome="completed"} 1"#) {
            assert!(text.contains("twostage_compaction_running 0"), "{text}");
            assert!(text.contains(r#"twostage_live_items{kind="deleted"} 0"#), "{text}");
            break;
        }
        assert!(!text.contains(r#"twostage_compactions_total{outcome="failed"} 1"#), "{text}");
        assert!(std::time::Instant::now() < deadline, "no compaction finished: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, text) = call(&agent, "DELETE", &server.url("/items/trk-00001"), None);
    assert_eq!((status, json(&text)["kind"].as_str().unwrap()), (404, "unknown_item"), "{text}");
}
