//! The online side: an opened index that answers requests.
//!
//! - `resolve`: request validation and id resolution, one compiled filter;
//! - `ranges`: number attributes as sorted columns, for range filters;
//! - `context`: the context vectors in the learned and the content space;
//! - `retrievers`: the retriever table the pipeline walks;
//! - `diversity`: group caps and maximal marginal relevance after ranking;
//! - `rules`: boosts, recency and pins after the ranker;
//! - `budget`: a request's latency budget, shared out over the stages;
//! - `variants`: the ranking variants an experiment chooses between;
//! - `pipeline`: retrieval → fusion → features ([`Candidates`]) → ranking → top k;
//! - `trace`: per-stage benchmark hooks.
//!
//! The index is read and cross-checked by `index::reader`; this module only
//! holds what it read.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::Item;
use crate::encoder::{self, Encoder, EncoderInfo};
use crate::error::{Error, Result};
use crate::index::manifest::{BuildStats, Manifest};
use crate::index::reader;
use crate::ranking::model::{Ranker, RankerInfo};
use crate::ranking::{Candidates, Scorer};
use crate::request::{Recommendations, Request};
use crate::retrieval::ann::AnnIndex;
use crate::retrieval::lexical::LexicalIndex;
use crate::schema::Schema;
use crate::store::ItemStore;

mod budget;
mod context;
mod diversity;
mod pipeline;
mod ranges;
mod resolve;
mod retrievers;
mod rules;
mod trace;
mod variants;
mod writes;

use pipeline::Model;
pub use trace::{AnnSearch, Stage, StageTrace};
pub use variants::VARIANTS;
pub use writes::Upserted;

/// An opened index: `Send + Sync`, cheap to share behind an `Arc`. Its
/// built files never change; live writes ([`Engine::upsert_items`],
/// [`Engine::delete_items`], [`Engine::record_events`]) publish a new view
/// that each request takes whole when it starts.
///
/// ```no_run
/// # fn main() -> twostage::Result<()> {
/// use twostage::{Context, Engine, Request};
/// let engine = Engine::open("target/music-index")?;
/// let recs = engine.recommend(&Request::new(Context::history(["trk-00042", "trk-00043"])).k(5).fields(["title"]))?;
/// for r in &recs.items {
///     // The catalog record is there too, for anything the request did not ask for.
///     let artist = engine.item(&r.id).and_then(|i| i.attributes.get("artist").cloned());
///     println!("{} {:?} {:.3} via {:?}", r.id, artist, r.score, r.sources);
/// }
/// println!("{} items, built by {}", engine.len(), engine.info().created_by);
/// # Ok(()) }
/// ```
pub struct Engine {
    store: Arc<ItemStore>,
    /// What the words of logged searches say of item categories.
    categories: crate::ranking::categories::QueryCategories,
    ann: AnnIndex,
    /// The learned space's catalog statistics a request's user vector is
    /// folded in with (none for an empty space).
    fold_in: Option<crate::ranking::fold_in::FoldIn>,
    /// The content space (row i is item i), when the index has one.
    content: Option<AnnIndex>,
    /// The sentence encoder for search texts, once attached.
    encoder: Option<Encoder>,
    /// Vectors of recent search texts, so a repeated query is not encoded again.
    query_cache: crate::encoder::cache::QueryCache,
    /// The text index: the built documents, and those of upserted items.
    text: LexicalIndex,
    ranker: Ranker,
    manifest: Manifest,
    /// Built item of each external id (items added live are in the overlay).
    by_id: Arc<HashMap<String, u32>>,
    /// Every stored field name some item has, for checking `Request::fields`.
    field_names: FieldNames,
    /// The number attributes as sorted columns, for range filters.
    numbers: Arc<ranges::NumberColumns>,
    /// What each stage has cost recently, for latency budgets.
    costs: budget::StageCosts,
    /// Deletions and events since the build, and the log that keeps them.
    live: crate::live::Live,
    path: PathBuf,
}

/// The stored field names of an index's items, by kind.
#[derive(Default)]
struct FieldNames {
    text: BTreeSet<String>,
    attributes: BTreeSet<String>,
    tags: BTreeSet<String>,
}

impl FieldNames {
    fn of(items: &[Item]) -> FieldNames {
        let mut names = FieldNames::default();
        for item in items {
            names.text.extend(item.text.keys().cloned());
            names.attributes.extend(item.attributes.keys().cloned());
            names.tags.extend(item.tags.keys().cloned());
        }
        names
    }

    /// Whether some item, built or upserted (`live`), has field `name` (as
    /// `Item::field` reads names).
    fn knows(&self, name: &str, live: &crate::overlay::FieldNames) -> bool {
        let text = |n: &str| self.text.contains(n) || live.text.contains(n);
        let attributes = |n: &str| self.attributes.contains(n) || live.attributes.contains(n);
        let tags = |n: &str| self.tags.contains(n) || live.tags.contains(n);
        match name.split_once('.') {
            _ if name == "title" => true,
            Some(("text", n)) => text(n),
            Some(("attributes", n)) => attributes(n),
            Some(("tags", n)) => tags(n),
            _ => attributes(name) || text(name) || tags(name),
        }
    }

    /// Every name, for error messages.
    fn list(&self, live: &crate::overlay::FieldNames) -> String {
        let mut all: Vec<&str> = vec!["title"];
        all.extend(self.attributes.iter().chain(&self.text).chain(&self.tags).map(String::as_str));
        all.extend(live.attributes.iter().chain(&live.text).chain(&live.tags).map(String::as_str));
        all.sort_unstable();
        all.dedup();
        all.join(", ")
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.path)
            .field("items", &self.store.len())
            .field("encoder", &self.manifest.encoder.as_ref().map(|e| &e.name))
            .field("encoder_attached", &self.encoder.is_some())
            .finish_non_exhaustive()
    }
}

/// A summary of an opened index.
#[derive(Clone, Debug)]
pub struct IndexInfo {
    /// The directory.
    pub path: PathBuf,
    /// On-disk format version.
    pub format_version: u32,
    /// Which twostage wrote it.
    pub created_by: String,
    /// Figures from the build.
    pub stats: BuildStats,
    /// The field roles.
    pub schema: Schema,
    /// The ranking model.
    pub ranker: RankerInfo,
    /// Which order each kind of context is served with, and the validation
    /// figures it was chosen on (see [`ServingPlan`](crate::ServingPlan)).
    pub serving: crate::ranking::ServingPlan,
    /// The sentence encoder that built the content space, if the index has one.
    pub encoder: Option<EncoderInfo>,
    /// Whether that encoder is attached (searches need it).
    pub encoder_attached: bool,
}

impl Engine {
    /// Opens the index in `dir`, verifying the format version and the
    /// checksum of every file before decoding anything, and replays its
    /// live log (the deletions made since the build, see
    /// [`Engine::delete_items`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<Engine> {
        let dir = dir.as_ref();
        let parts = reader::read(dir)?;
        let field_names = FieldNames::of(&parts.store.items);
        let numbers = Arc::new(ranges::NumberColumns::of(&parts.store.items));
        let rules = crate::live::SessionRules {
            gap_secs: parts.manifest.build.session_gap_secs,
            window: parts.manifest.build.covisit.window,
            keep: parts.manifest.build.covisit.top_k,
        };
        let store = Arc::new(parts.store);
        let by_id = Arc::new(parts.by_id);
        let built = crate::live::Built::new(crate::live::upsert::BuiltParts {
            store: &store,
            by_id: Arc::clone(&by_id),
            group_key: parts.manifest.schema.group_key.clone(),
            tag_fields: parts.manifest.schema.tag_fields.clone(),
            vector_source: &parts.manifest.stats.vector_source,
            metric: parts.ann.metric(),
            dim: parts.ann.dim(),
            vector_of: &|i| store.row(i).and_then(|r| parts.ann.vector(r)).map(<[f32]>::to_vec),
        });
        let live = crate::live::Live::open(dir, Arc::clone(&store), built, &parts.text, rules)?;
        let fold_in = crate::ranking::fold_in::FoldIn::fit(parts.ann.len(), parts.ann.dim(), |r| parts.ann.vector(r));
        Ok(Engine {
            live,
            fold_in,
            store,
            categories: parts.categories,
            ann: parts.ann,
            content: parts.content,
            encoder: None,
            query_cache: crate::encoder::cache::QueryCache::new(crate::encoder::cache::DEFAULT_QUERY_CACHE),
            text: parts.text,
            ranker: parts.ranker,
            manifest: parts.manifest,
            by_id,
            field_names,
            numbers,
            costs: budget::StageCosts::default(),
            path: dir.to_path_buf(),
        })
    }

    /// Attaches the sentence encoder that searches need on an index with a
    /// content space. It must be the model the index was built with (same
    /// fingerprint), else [`Error::EncoderMismatch`]; an index without a
    /// content space refuses any encoder ([`Error::InvalidConfig`]).
    ///
    /// Listening and history requests use the stored item vectors and run
    /// without it; a search on such an index without it is an
    /// [`Error::EncoderMismatch`] rather than a quietly weaker result.
    pub fn with_encoder(mut self, encoder: Encoder) -> Result<Engine> {
        match &self.manifest.encoder {
            None => Err(Error::InvalidConfig(format!(
                "the index at {} has no content space: build it with IndexBuilder::encoder to use an encoder",
                self.path.display()
            ))),
            Some(built) if !built.same_model(encoder.info()) => Err(Error::EncoderMismatch {
                expected: encoder::describe(built),
                found: Some(encoder::describe(encoder.info())),
            }),
            Some(_) => {
                self.encoder = Some(encoder);
                Ok(self)
            }
        }
    }

    /// The attached sentence encoder, if any.
    pub fn encoder(&self) -> Option<&Encoder> {
        self.encoder.as_ref()
    }

    /// The vector of a search text by the attached encoder (through the
    /// query cache), which an index with a content space needs.
    pub(super) fn encode_query(&self, text: &str) -> Result<Vec<f32>> {
        let enc = self.attached_encoder()?;
        let _span = tracing::debug_span!("encode", part = "query").entered();
        Ok(self.query_cache.get_or_encode(text, || enc.encode(text))?.to_vec())
    }

    /// The content vectors of upserted items' texts, which an index with a
    /// content space needs.
    pub(super) fn encode_items(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let enc = self.attached_encoder()?;
        let _span = tracing::debug_span!("encode", part = "items", items = texts.len()).entered();
        enc.encode_batch(texts, &|_| {})
    }

    /// The encoder this index's content space needs, or why there is none.
    fn attached_encoder(&self) -> Result<&Encoder> {
        let built = || self.manifest.encoder.as_ref().map(encoder::describe).unwrap_or_default();
        match &self.encoder {
            Some(enc) => Ok(enc),
            None if cfg!(not(feature = "encoder")) => Err(Error::InvalidConfig(format!(
                "the index at {} was built with the sentence encoder {}; its searches need twostage's feature `encoder`",
                self.path.display(),
                built()
            ))),
            None => Err(Error::EncoderMismatch {
                expected: built(),
                found: None,
            }),
        }
    }

    /// Caches the vectors of at most `entries` search texts (rounded up to
    /// an even number; 0 turns caching off), replacing the cache and its
    /// counters. Default [`DEFAULT_QUERY_CACHE`](crate::DEFAULT_QUERY_CACHE)
    /// (4,096). A text is looked up with its whitespace normalised (runs
    /// made one space, ends trimmed), which never changes its vector; case
    /// is kept. Only an index with a content space encodes queries.
    pub fn with_query_cache(mut self, entries: usize) -> Engine {
        self.query_cache = crate::encoder::cache::QueryCache::new(entries);
        self
    }

    /// Hits, misses, entries and bytes of the query-embedding cache since
    /// the engine opened (or since [`with_query_cache`](Engine::with_query_cache)).
    pub fn query_cache_stats(&self) -> crate::QueryCacheStats {
        self.query_cache.stats()
    }

    /// Whether the index has a content space (was built with an encoder).
    pub fn has_content_space(&self) -> bool {
        self.content.is_some()
    }

    /// [`Engine::open`], then [`Engine::with_encoder`] when `encoder` is given.
    pub fn open_with_encoder(dir: impl AsRef<Path>, encoder: Option<&Encoder>) -> Result<Engine> {
        let engine = Engine::open(dir)?;
        match encoder {
            Some(e) => engine.with_encoder(e.clone()),
            None => Ok(engine),
        }
    }

    /// Number of items in the index: those built and those added since
    /// ([`Engine::upsert_items`]), deleted ones included.
    pub fn len(&self) -> usize {
        self.live.view().overlay.len()
    }

    /// True when the index holds no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The catalog record of `id` as of now (without its vector): the
    /// latest upserted one, or the built one. A copy, since a later upsert
    /// may replace it.
    pub fn item(&self, id: &str) -> Option<Item> {
        let items = self.items_now(&self.live.view());
        self.id_of(&items.overlay, id).and_then(|i| items.record(i).cloned())
    }

    /// The catalog under the live records of `view`.
    pub(crate) fn items_now(&self, view: &crate::live::View) -> crate::overlay::Items {
        crate::overlay::Items {
            store: Arc::clone(&self.store),
            overlay: Arc::clone(&view.overlay),
        }
    }

    /// The internal id of external id `id`: built, or added live.
    pub(crate) fn id_of(&self, overlay: &crate::overlay::Overlay, id: &str) -> Option<u32> {
        self.by_id.get(id).copied().or_else(|| overlay.added_id(id))
    }

    /// The vector of `id` in the index's ANN space (learned from the log,
    /// or the catalog's, as the build chose): what history and listening
    /// contexts are compared with. `None` for an item outside that space or
    /// an id the index does not hold. Useful to export the space, for
    /// example to give every shard of a catalog the same vectors.
    pub fn item_vector(&self, id: &str) -> Option<Vec<f32>> {
        let view = self.live.view();
        self.id_of(&view.overlay, id)
            .and_then(|i| self.vector_of(&view.overlay, i))
            .map(<[f32]>::to_vec)
    }

    /// The BM25 statistics of the search `text` in this index: its items,
    /// its tokens and, per term of the search as this index analyses it,
    /// the items holding it. Summed over every shard of a catalog
    /// ([`TextStatistics::add`](crate::TextStatistics::add)) and sent with
    /// the search ([`Request::text_statistics`](crate::Request::text_statistics)),
    /// they make each shard score as the whole catalog would. An empty
    /// text is an [`Error::InvalidRequest`], as for a search.
    pub fn text_statistics(&self, text: &str) -> Result<crate::TextStatistics> {
        if text.trim().is_empty() {
            return Err(Error::InvalidRequest("the search text is empty".into()));
        }
        self.text.statistics(&self.live.view().text, &self.text.query_terms(text))
    }

    /// What this index is and how it was built.
    pub fn info(&self) -> IndexInfo {
        IndexInfo {
            path: self.path.clone(),
            format_version: self.manifest.format_version,
            created_by: self.manifest.created_by.clone(),
            stats: self.manifest.stats.clone(),
            schema: self.manifest.schema.clone(),
            ranker: self.manifest.ranker.clone(),
            serving: self.manifest.serving.clone(),
            encoder: self.manifest.encoder.clone(),
            encoder_attached: self.encoder.is_some(),
        }
    }

    /// Serves one request. See [`Request`] for what it may ask.
    ///
    /// Unknown context ids, an empty search text, an unknown tag field or
    /// an out-of-range size (`k = 0` included) are errors; the context
    /// items and excluded ids never appear in the result.
    ///
    /// Emits a `recommend` span (info level) with one child span per stage
    /// (debug level: `encode`, `lexical`, `ann`, `covisit`, `linear`, `content`,
    /// `popular`, `fusion`, `features`, `rank`) for the service's `tracing`
    /// subscriber.
    pub fn recommend(&self, req: &Request) -> Result<Recommendations> {
        self.pipeline(req, false).map(|(r, _)| r)
    }

    /// Runs the first stage alone: retrieval, fusion and the feature rows,
    /// the [`Candidates`] the ranker would score (validated like
    /// [`recommend`](Engine::recommend), `k` included, though nothing is cut
    /// to it here). Rank them with
    /// [`rank`](Engine::rank), or use them as they are.
    pub fn retrieve(&self, req: &Request) -> Result<Candidates> {
        self.retrieve_inner(req, false).map(|(c, _)| c)
    }

    /// The second stage: scores `candidates` (from [`retrieve`](Engine::retrieve)
    /// of the same `req` on this engine) with `scorer`, or with the index's
    /// own model when `None`, sorts and cuts to `req.k`. `retrieve` then
    /// `rank(.., None)` answers as [`recommend`](Engine::recommend)
    /// does (the timings' total runs from the start of `retrieve`).
    ///
    /// Candidates retrieved by another engine (say, before an
    /// [`EngineHandle`](crate::EngineHandle) swapped in a new index) are an
    /// [`Error::InvalidRequest`]: one answer never mixes two indexes.
    pub fn rank(&self, req: &Request, candidates: Candidates, scorer: Option<&dyn Scorer>) -> Result<Recommendations> {
        resolve::check_k(req.k)?;
        diversity::check(self, req)?;
        rules::check(self, &candidates.items.overlay, req)?;
        let model = scorer.map_or(Model::Index, Model::Caller);
        self.rank_inner(req, candidates, model)
    }

    /// The whole online path; with `keep`, also the intermediate results.
    fn pipeline(&self, req: &Request, keep: bool) -> Result<(Recommendations, Option<Box<StageTrace>>)> {
        let span = tracing::info_span!("recommend", k = req.k, candidates = tracing::field::Empty);
        let _entered = span.enter();
        let (candidates, trace) = self.retrieve_inner(req, keep)?;
        span.record("candidates", candidates.len());
        Ok((self.rank_inner(req, candidates, Model::Index)?, trace))
    }

    /// Serves many requests in parallel on the rayon thread pool (all cores
    /// by default), one result per request in the same order. Throughput
    /// mode for offline scoring and batch serving; each request's timings
    /// are its own wall-clock times.
    pub fn recommend_batch(&self, reqs: &[Request]) -> Vec<Result<Recommendations>> {
        use rayon::prelude::*;
        reqs.par_iter().map(|r| self.recommend(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Engine>();
    }
}
