//! # twostage
//!
//! Two-stage discovery — search and recommendations — as industry builds it:
//! a fast, coarse **candidate retrieval** stage (HNSW approximate nearest
//! neighbours, BM25 lexical search, item-to-item co-visitation, a linear
//! item-item model (EASE), popularity)
//! followed by a precise **ranking** stage (a model scoring every candidate
//! in one batched forward pass), behind one call: [`Engine::recommend`].
//!
//! ```text
//! Request ─▶ encode ─▶ retrievers ─▶ fuse + filter ─▶ features ─▶ ranker ─▶ top k
//!                      ANN | BM25 | co-visitation | linear | popularity
//! ```
//!
//! Offline, an [`IndexBuilder`] turns a [`Catalog`] of items and an
//! [`Events`] log into an index directory (learned item embeddings, an HNSW
//! graph, a tantivy index, co-visitation lists, linear item-item weights,
//! popularity, a per-item
//! store, ranker weights, and a manifest with a checksum of every file).
//! Online, [`Engine::open`] verifies and loads that directory into an
//! immutable, `Send + Sync` engine.
//!
//! ## A tour
//!
//! ```
//! use twostage::{Catalog, Context, Engine, Events, IndexBuilder, Request};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A catalog: one JSON object per line (see `Catalog` for the schema).
//! let items = r#"
//! {"id":"t1","title":"Blue Train","tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane"}}
//! {"id":"t2","title":"Giant Steps","tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane"}}
//! {"id":"t3","title":"So What","tags":{"genre":["jazz"]},"attributes":{"artist":"Davis"}}
//! {"id":"t4","title":"Thunderstruck","tags":{"genre":["rock"]},"attributes":{"artist":"AC/DC"}}
//! {"id":"t5","title":"Back in Black","tags":{"genre":["rock"]},"attributes":{"artist":"AC/DC"}}
//! "#;
//! let catalog = Catalog::from_jsonl_reader(items.as_bytes(), "items.jsonl".as_ref())?;
//!
//! // Listening sessions: who played what, when (unix seconds).
//! let mut log = String::new();
//! for user in 0..20 {
//!     let session: &[&str] = if user % 2 == 0 { &["t1", "t2", "t3"] } else { &["t4", "t5"] };
//!     for (i, item) in session.iter().enumerate() {
//!         log += &format!("{{\"user\":\"u{user}\",\"item\":\"{item}\",\"ts\":{}}}\n", 1_700_000_000 + user * 10_000 + i as i64 * 200);
//!     }
//! }
//! let events = Events::from_jsonl_reader(log.as_bytes(), "events.jsonl".as_ref(), &catalog)?;
//!
//! // Offline: build the index directory.
//! let dir = std::env::temp_dir().join(format!("twostage-tour-{}", std::process::id()));
//! IndexBuilder::new().group_key("artist").build(&catalog, &events, &dir)?;
//!
//! // Online: open once, serve many requests from many threads.
//! let engine = Engine::open(&dir)?;
//! let recs = engine.recommend(&Request::new(Context::listening("t1")).k(2))?;
//! assert_eq!(recs.items.len(), 2);
//! assert!(recs.items.iter().all(|r| r.id != "t1"), "the context item is never recommended");
//! assert_eq!(recs.items[0].id, "t2", "t2 follows t1 in every jazz session");
//!
//! let hits = engine.recommend(&Request::new(Context::search("back in black")).k(1))?;
//! assert_eq!(hits.items[0].id, "t5");
//! println!("{:?}", hits.timings); // per-stage latency
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(()) }
//! ```
//!
//! ## The two stages, one at a time
//!
//! [`Engine::retrieve`] runs the first stage alone and returns the
//! [`Candidates`] the ranker would see: ids, the retrievers that found each,
//! and one row of named features. [`Engine::rank`] ranks them with the
//! index's model (`None`; the same answer as `recommend`) or with a
//! [`Scorer`] of your own:
//!
//! ```no_run
//! # fn main() -> twostage::Result<()> {
//! use twostage::{Candidates, Context, Engine, Request, Scorer};
//!
//! /// Prefers what is trending now.
//! struct Trending;
//! impl Scorer for Trending {
//!     fn score(&self, c: &Candidates) -> Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
//!         Ok((0..c.len()).map(|i| c.feature(i, "recent_share").unwrap_or(0.0)).collect())
//!     }
//! }
//!
//! let engine = Engine::open("index")?;
//! let req = Request::new(Context::listening("t1"));
//! let candidates = engine.retrieve(&req)?;
//! println!("{} candidates, first {:?}", candidates.len(), candidates.id(0));
//! let recs = engine.rank(&req, candidates, Some(&Trending))?;
//! # let _ = recs; Ok(()) }
//! ```
//!
//! ## Reliability
//!
//! - **Verified on open.** The manifest records the format version and a
//!   CRC-32 and size of every file; [`Engine::open`] reads every file, checks
//!   the exact file set, sizes and checksums, and only then decodes (bounded by
//!   the file sizes). A truncated, bit-flipped, missing, extra or foreign file
//!   is an [`Error::Corrupt`] or [`Error::Io`] naming the file; an index from a
//!   newer twostage is [`Error::IncompatibleVersion`]; a directory without a
//!   `manifest.json` is [`Error::NotAnIndex`]. The build's event log
//!   (`events.bin`, kept for compaction) is checked by size on open and
//!   whole by the compaction that reads it.
//! - **Atomic builds.** [`IndexBuilder::build`] writes into a hidden sibling
//!   directory, fsyncs it and swaps it into place (one atomic
//!   `renameat2(RENAME_EXCHANGE)` on Linux). A failed or killed build leaves an
//!   existing index untouched; the next build removes a dead build's leftovers.
//! - **One error type.** [`Error::is_caller_error`] separates bad input and
//!   requests (fix the input) from what broke (I/O, corruption, versions).
//! - **Live writes, durable.** [`Engine::upsert_items`],
//!   [`Engine::delete_items`] and [`Engine::record_events`] change what is
//!   served without a rebuild: each call returns once its batch is fsynced
//!   to the index directory's write-ahead log (which [`Engine::open`]
//!   replays) and every request that starts after it sees the change; a
//!   batch with one bad record applies nothing.
//!   [`EngineHandle::compact`] folds them into a new generation, rebuilt
//!   from the event log every build keeps in the index plus the live
//!   writes, and swaps it in while requests run; writes made meanwhile are
//!   carried into its log.
//! - **Hot swap.** [`Engine`] is `Send + Sync`; each request takes one view
//!   of its live writes for its whole run. An
//!   [`EngineHandle`] holds the current engine; each request runs on the
//!   snapshot it took, so swapping in a rebuilt index never mixes two indexes
//!   in one answer:
//!
//! ```no_run
//! # fn main() -> twostage::Result<()> {
//! use std::sync::Arc;
//! use twostage::{Context, EngineHandle, Request};
//! let handle = Arc::new(EngineHandle::open("index")?);
//! let worker = {
//!     let handle = Arc::clone(&handle);
//!     std::thread::spawn(move || handle.recommend(&Request::new(Context::search("jazz"))))
//! };
//! handle.reload("index")?; // e.g. after a nightly rebuild published a new index
//! # let _ = worker.join();
//! # Ok(()) }
//! ```
//!
//! ## Embedding in a service
//!
//! Keep an [`EngineHandle`] in the service's state, run each request on a
//! blocking thread (a recommend call is a fraction of a millisecond to a few
//! milliseconds of CPU, which must not stall an async executor), answer
//! [`Recommendations::to_json`], and split errors with
//! [`Error::is_caller_error`] into 4xx and 5xx. With axum:
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{extract::State, http::StatusCode, routing::post, Json, Router};
//! use twostage::{EngineHandle, Request};
//!
//! async fn recommend(State(engine): State<Arc<EngineHandle>>, Json(req): Json<Request>) -> (StatusCode, String) {
//!     match tokio::task::spawn_blocking(move || engine.recommend(&req)).await {
//!         Ok(Ok(recs)) => (StatusCode::OK, recs.to_json()),
//!         Ok(Err(e)) if e.is_caller_error() => (StatusCode::BAD_REQUEST, e.to_string()),
//!         Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
//!         Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Arc::new(EngineHandle::open("index")?);
//! let app = Router::new().route("/recommend", post(recommend)).with_state(Arc::clone(&engine));
//! // Elsewhere, after a rebuild: engine.reload("index")? — in-flight requests finish on the old index.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! With actix-web the shape is the same: `web::Data<EngineHandle>` as app
//! data and `web::block(move || engine.recommend(&req)).await` in the handler.
//! The `serve` example (`examples/serve/`) is a complete service: JSON errors,
//! body limits, Prometheus metrics, hot reload.
//!
//! Every request stage and build phase is a [`tracing`](https://docs.rs/tracing)
//! span (see [`Engine::recommend`] and [`IndexBuilder::build`]), so the
//! service's own subscriber sees them; long builds also report
//! [`Progress`] through [`IndexBuilder::build_with_progress`].
//!
//! ## Semantic search and cold start
//!
//! With a sentence encoder ([`Encoder`], a BERT-family model such as
//! all-MiniLM-L6-v2 run in-process, in bf16 on CPUs with AVX-512 BF16 and in
//! `f32` on candle elsewhere; `scripts/fetch_minilm.sh` fetches it), a build embeds every item's text into a content space beside
//! the one learned from plays. A search then encodes its query and retrieves
//! by meaning; a listening or history context finds items that read alike,
//! played or not. The index records which model built it, and searches need
//! that same model attached:
//!
//! ```no_run
//! # fn main() -> twostage::Result<()> {
//! use twostage::{Catalog, Context, Encoder, Engine, Events, IndexBuilder, Request};
//! let encoder = Encoder::load("models/all-MiniLM-L6-v2")?;
//! let catalog = Catalog::from_jsonl_path("data/music/items.jsonl")?;
//! let events = Events::from_jsonl_path("data/music/events.jsonl", &catalog)?;
//! IndexBuilder::new().encoder(encoder.clone()).build(&catalog, &events, "target/semantic-index")?;
//! let engine = Engine::open("target/semantic-index")?.with_encoder(encoder)?;
//! let recs = engine.recommend(&Request::new(Context::search("songs for a rainy sunday")))?;
//! # let _ = recs; Ok(()) }
//! ```
//!
//! ## Modules
//!
//! - [`catalog`], [`events`] and [`schema`]: the data and its contract (errors name file, line and field).
//! - [`request`]: [`Context`], [`Request`], [`Recommendations`], [`Timings`].
//! - [`retrieval`]: the candidate retrievers and their fusion.
//! - [`ranking`]: the stage boundary ([`Candidates`], [`Scorer`]), the feature
//!   schema and the ranking model.
//! - [`encoder`]: the in-process sentence encoder ([`Encoder`]).
//! - [`index`]: the on-disk format and the parts a build computes for it.
//! - [`Engine`] serves; [`IndexBuilder`] and [`retrain_ranker`] build (see
//!   `docs/architecture.md` for the layers and the data flow).
//!
//! Behind the `harness` feature, outside the engine's default build (the
//! examples and tests that need them declare the feature):
//!
//! - `synth`: the deterministic generator of the shipped demo data.
//! - `movielens`: the MovieLens loaders.
//! - `eval`: offline evaluation — metrics, baselines, protocols and the
//!   comparison of systems on them.
//! - [`progress`]: [`Progress`] reports of long builds.

#![warn(missing_docs)]
// A build without ranker training or the sentence encoder (the features
// `train` and `encoder`, on by default) leaves their helpers unused, and the
// uninhabited stand-in `Encoder` makes the code that would attach one
// unreachable; the default build is checked in full.
#![cfg_attr(not(all(feature = "train", feature = "encoder")), allow(dead_code, unreachable_code, unused_mut))]
// The docs describe the default build; in one without those features their
// links to the training and encoder items have nothing to point at.
#![cfg_attr(
    not(all(feature = "train", feature = "encoder")),
    allow(rustdoc::broken_intra_doc_links, rustdoc::private_intra_doc_links)
)]

/// Builder-style setters for a `#[non_exhaustive]` parameter struct, one per
/// field and named after it, so a caller starts from a default and changes
/// what it needs (`AnnParams::default().m(32)`) while new fields stay
/// non-breaking.
macro_rules! setters {
    ($ty:ty { $($field:ident: $t:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets `", stringify!($field), "` (see the field of that name).")]
                #[must_use]
                pub fn $field(mut self, value: $t) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

pub mod catalog;
pub mod encoder;
mod engine;
mod error;
#[cfg(feature = "harness")]
pub mod eval;
pub mod events;
mod handle;
pub mod index;
mod jsonl;
mod linalg;
mod live;
mod metrics;
#[cfg(feature = "harness")]
pub mod movielens;
mod offline;
mod overlay;
#[cfg(feature = "parquet")]
mod parquet;
pub mod progress;
pub mod ranking;
pub mod request;
pub mod retrieval;
// The seeded generator, public for the benchmarks' synthetic data only.
#[doc(hidden)]
pub mod rng;
pub mod schema;
mod sparse;
mod store;
#[cfg(feature = "harness")]
pub mod synth;
// The vector kernels, public for the ANN benchmark's exact ground truth only.
#[doc(hidden)]
pub mod vector;

pub use catalog::{Attribute, Catalog, FieldValue, Item, LoadOptions, LongText, Typing};
pub use encoder::{Encoder, EncoderInfo, QueryCacheStats, DEFAULT_QUERY_CACHE};
pub use engine::{Engine, IndexInfo, Upserted, VARIANTS};
// Per-stage benchmark hooks (`Engine::trace`, `Engine::run_stage`), not part of the documented API.
#[doc(hidden)]
pub use engine::{AnnSearch, Stage, StageTrace};
pub use error::{Error, Result};
pub use events::{Event, EventKind, Events, Impression};
pub use handle::{CompactionStatus, EngineHandle};
pub use index::manifest::{BuildStats, FORMAT_VERSION};
pub use index::{BuildParams, EmbeddingParams, Vectors};
pub use live::{LiveEvent, LiveStatus, TornTail, MAX_WRITE_BATCH};
pub use offline::artefacts::{ArtefactSummary, LogArtefacts, ARTEFACTS_FORMAT, ARTEFACTS_VERSION};
pub use offline::builder::{BuildReport, IndexBuilder, RetrieverState};
pub use offline::compact::{Compacted, Compaction};
#[cfg(feature = "generations")]
pub use offline::generations::{Generation, GenerationStore};
#[cfg(feature = "train")]
pub use offline::training::retrain_ranker;
pub use progress::Progress;
pub use ranking::{Candidates, ContextKind, ContextPlan, ModelKind, Scorer, Served, ServingPlan, TrainParams, TrainSummary};
pub use request::{
    Boost, BudgetReport, Context, GroupCap, Mmr, Pin, Provenance, RangeFilter, Recency, Recommendation, Recommendations, Request,
    Retriever, TextStatistics, Timings,
};
pub use retrieval::ann::{AnnParams, Metric};
pub use retrieval::{CovisitParams, LinearParams};
pub use schema::{Analyzer, Schema, TextField};

/// The README's Rust examples, compiled and run by `cargo test` (doctests),
/// so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
