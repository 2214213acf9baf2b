//! twostage as an HTTP service (axum on tokio).
//!
//! ```text
//! cargo run --release --example serve                      # builds target/quickstart-index from data/music if missing
//! cargo run --release --example serve -- --index target/music-index --addr 127.0.0.1:8080
//!
//! open http://127.0.0.1:8080/                              # the playground page
//! curl -s localhost:8080/recommend -d '{"context":{"listening":{"item":"trk-00042"}},"k":10}'
//! curl -s localhost:8080/healthz
//! curl -s localhost:8080/metrics
//! curl -s -XPOST localhost:8080/admin/reload -H "Authorization: Bearer $TWOSTAGE_ADMIN_TOKEN" \
//!      -d '{"index":"target/music-index"}'                                          # after a rebuild
//! curl -s -XPOST localhost:8080/admin/compact -H "Authorization: Bearer $TWOSTAGE_ADMIN_TOKEN" # fold the live writes in now
//! ```
//!
//! With `--features generations`, `--index` may be an object-store URL
//! (`file:///srv/indexes/music`, `s3://bucket/indexes/music`) where builds
//! publish index generations (`GenerationStore::publish`): the service
//! serves the latest one and follows the pointer (`--poll-ms`), swapping in
//! each new generation it verified whole (`follow.rs`).
//!
//! The routes, their errors and metrics are documented in `service.rs`.
//! Set `--log info` (or `debug` for every request stage) to print a line
//! per HTTP request (method, path, status, latency) and the library's
//! tracing spans.

#[path = "../support/progress.rs"]
mod progress;
mod service;

use std::path::PathBuf;
#[cfg(feature = "generations")]
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Parser;
use twostage::{Catalog, EngineHandle, Events, IndexBuilder};

/// Serve recommendations over HTTP.
#[derive(Parser)]
struct Args {
    /// Index directory to serve, or (feature `generations`) the URL of a
    /// store of published index generations to follow.
    #[arg(long, default_value = "target/quickstart-index")]
    index: PathBuf,
    /// With a store URL: how often to poll its pointer, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    poll_ms: u64,
    /// With a store URL: where downloaded generations are kept.
    #[arg(long, default_value = "target/generations")]
    cache: PathBuf,
    /// When the index does not exist yet, build it from items.jsonl and events.jsonl here.
    #[arg(long, default_value = "data/music")]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Threads running engine work (the blocking pool). Default: one per core.
    #[arg(long)]
    workers: Option<usize>,
    /// Log to stderr: `info` (a line per HTTP request with its status and
    /// latency, the library's spans per request and build phase as they
    /// close, reloads) or `debug` (also every request stage). Default: no
    /// subscriber.
    #[arg(long, value_parser = ["off", "info", "debug"], default_value = "off")]
    log: String,
    /// Sentence-encoder model directory: indexes built with it get semantic
    /// search (an index built here without one is built with it).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A file holding the admin token (`POST /admin/reload` needs
    /// `Authorization: Bearer <token>`). Default: the environment variable
    /// TWOSTAGE_ADMIN_TOKEN; with neither, admin routes are disabled.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, default_value_t = service::DEFAULT_REQUEST_TIMEOUT.as_secs())]
    timeout_secs: u64,
    /// Append the items each answer shows to this JSON Lines file, in the
    /// events format (`"type": "impression"`), for requests that carry a
    /// `user`; each such answer gets a `request_id`.
    #[arg(long)]
    impressions: Option<PathBuf>,
    /// Every this many seconds, compact the index when its live writes
    /// passed the default thresholds (`twostage::Compaction::default`); 0
    /// never compacts on its own (`POST /admin/compact` still does).
    #[arg(long, default_value_t = 60)]
    compact_check_secs: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let level = match args.log.as_str() {
        "debug" => Some(tracing::Level::DEBUG),
        "info" => Some(tracing::Level::INFO),
        _ => None,
    };
    if let Some(level) = level {
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(std::io::stderr)
            .init();
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    // Engine work is CPU-bound: more blocking threads than cores only adds
    // context switches; excess requests wait in the pool's queue instead.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(args.workers.unwrap_or(cores).max(1))
        .build()?;
    // A store URL: serve its latest generation, downloaded and verified.
    #[cfg(feature = "generations")]
    let (index_dir, follower) = if service::follow::is_url(&args.index) {
        let url = args.index.to_string_lossy().into_owned();
        let store = twostage::GenerationStore::open(&url)?;
        let (follower, dir) = runtime.block_on(service::follow::Follower::start(store, args.cache.clone()))?;
        (dir, Some(follower))
    } else {
        (args.index.clone(), None)
    };
    #[cfg(not(feature = "generations"))]
    let index_dir = if args.index.to_str().is_some_and(|s| s.contains("://")) {
        anyhow::bail!(
            "--index {} is a URL: following index generations needs `--features generations`",
            args.index.display()
        );
    } else {
        args.index.clone()
    };
    if !index_dir.join("manifest.json").is_file() {
        eprintln!("no index at {}; building one from {}", index_dir.display(), args.data.display());
        let catalog = Catalog::from_jsonl_path(args.data.join("items.jsonl"))?;
        let events = Events::from_jsonl_path(args.data.join("events.jsonl"), &catalog)?;
        let bars = progress::PhaseBars::default();
        let mut builder = IndexBuilder::new().group_key("artist");
        if let Some(dir) = &args.model {
            builder = builder.encoder(twostage::Encoder::load(dir)?);
        }
        builder.build_with_progress(&catalog, &events, &index_dir, &|p| bars.update(p))?;
        bars.finish();
    }
    let encoder = args.model.as_ref().map(twostage::Encoder::load).transpose()?;
    // Reloads keep the encoder attached (EngineHandle::reload).
    let handle = twostage::Engine::open_with_encoder(&index_dir, encoder.as_ref())
        .map(EngineHandle::new)
        .with_context(|| format!("opening {}", index_dir.display()))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("binding {}", args.addr))?;
        let addr = listener.local_addr()?;
        eprintln!(
            "serving {} ({} items) on http://{addr} (playground: http://{addr}/)",
            args.index.display(),
            handle.load().len(),
        );
        let token = match &args.admin_token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the admin token from {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("TWOSTAGE_ADMIN_TOKEN").ok(),
        };
        eprintln!(
            "admin routes {}",
            if token.as_deref().is_some_and(|t| !t.is_empty()) {
                "enabled (bearer token)"
            } else {
                "disabled (no admin token)"
            }
        );
        let timeout = std::time::Duration::from_secs(args.timeout_secs.max(1));
        let impressions = args.impressions.as_deref().map(service::ImpressionLog::open).transpose()?;
        let state = service::AppState::with_impressions(handle, index_dir.clone(), token, timeout, impressions)?;
        #[cfg(feature = "generations")]
        if let Some(follower) = follower {
            follower.spawn(Arc::clone(&state.handle), std::time::Duration::from_millis(args.poll_ms.max(10)));
            let _ = state.follower.set(follower);
        }
        // A replica following a store serves the generations published
        // there, not ones of its own.
        #[cfg(feature = "generations")]
        let following = state.follower.get().is_some();
        #[cfg(not(feature = "generations"))]
        let following = false;
        if args.compact_check_secs > 0 && !following {
            let handle = Arc::clone(&state.handle);
            let every = std::time::Duration::from_secs(args.compact_check_secs);
            std::thread::spawn(move || loop {
                std::thread::sleep(every);
                // One at a time: this waits for the compaction it starts.
                let _ = service::spawn_compaction(Arc::clone(&handle), twostage::Compaction::default(), true).join();
            });
        }
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        service::run(listener, state, shutdown).await?;
        Ok(())
    })
}
