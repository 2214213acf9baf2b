//! The online composition: encode the context, retrieve, fuse, assemble
//! features, rank, cut to k. Every stage is a plain function over plain
//! data; this module only wires them and times them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::catalog::Item;
use crate::encoder::{self, Encoder, EncoderInfo};
use crate::error::{Error, Result};
use crate::index::manifest::{BuildStats, Manifest};
use crate::index::schema::Schema;
use crate::index::store::ItemStore;
use crate::index::{decode, ANN_FILE, CONTENT_FILE, ITEMS_FILE, RANKER_FILE, TEXT_DIR};
use crate::ranking::features::{self, ContextSignals, FEATURES, NUM_FEATURES};
use crate::ranking::model::{Ranker, RankerInfo};
use crate::request::{
    Context, Provenance, Recommendation, Recommendations, Request, Retriever, Timings, MAX_CANDIDATES, MAX_HISTORY, MAX_K,
};
use crate::retrieval::ann::{AnnIndex, Metric};
use crate::retrieval::covisit;
use crate::retrieval::fusion::{self, Candidate};
use crate::retrieval::lexical::{self, LexicalIndex};

/// Weight of a personalised search's history vector against its query
/// vector (1), in both the learned and the content space.
const HISTORY_WEIGHT: f32 = 0.5;
/// Lexical hits whose vectors form a search's pseudo-relevance vector.
const PRF_HITS: usize = 5;
/// Largest rank depth a request may ask for.
const MAX_RANK_DEPTH: usize = 10_000;

/// An opened index: immutable, `Send + Sync`, cheap to share behind an `Arc`.
pub struct Engine {
    store: Arc<ItemStore>,
    ann: AnnIndex,
    /// The content space (row i is item i), when the index has one.
    content: Option<AnnIndex>,
    /// The sentence encoder for search texts, once attached.
    encoder: Option<Encoder>,
    text: LexicalIndex,
    ranker: Ranker,
    manifest: Manifest,
    by_id: HashMap<String, u32>,
    path: PathBuf,
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
    /// The sentence encoder that built the content space, if the index has one.
    pub encoder: Option<EncoderInfo>,
    /// Whether that encoder is attached (searches need it).
    pub encoder_attached: bool,
}

/// Candidates and their feature matrix, before ranking.
pub(crate) struct Assembled {
    pub candidates: Vec<Candidate>,
    /// Row-major `[candidates × NUM_FEATURES]`.
    pub matrix: Vec<f32>,
    pub timings: Timings,
}

/// A request with every id resolved and every filter compiled.
struct Resolved {
    terms: Vec<String>,
    /// Context items with recency weights, most recent weight 1.
    items: Vec<(u32, f32)>,
    filter: Arc<dyn Fn(u32) -> bool + Send + Sync>,
    has_text: bool,
}

impl Engine {
    /// Opens the index in `dir`, verifying the format version and the
    /// checksum of every file before decoding anything.
    pub fn open(dir: impl AsRef<Path>) -> Result<Engine> {
        let dir = dir.as_ref();
        let (manifest, mut files) = Manifest::read_verified(dir)?;
        let take = |files: &mut std::collections::BTreeMap<String, Vec<u8>>, name: &str| {
            files
                .remove(name)
                .ok_or_else(|| Error::corrupt(dir.join(name), "missing from the manifest"))
        };
        let store: ItemStore = decode(&take(&mut files, ITEMS_FILE)?, &dir.join(ITEMS_FILE))?;
        let ann: AnnIndex = decode(&take(&mut files, ANN_FILE)?, &dir.join(ANN_FILE))?;
        ann.validate().map_err(|e| Error::corrupt(dir.join(ANN_FILE), e))?;
        if ann.metric() != manifest.build.metric {
            return Err(Error::corrupt(dir.join(ANN_FILE), "metric differs from the manifest"));
        }
        store.validate(ann.len()).map_err(|e| Error::corrupt(dir.join(ITEMS_FILE), e))?;
        if store.len() != manifest.stats.items {
            return Err(Error::corrupt(dir.join(ITEMS_FILE), "item count differs from the manifest"));
        }
        let ranker = Ranker::from_bytes(&take(&mut files, RANKER_FILE)?, manifest.ranker.clone(), &dir.join(RANKER_FILE))?;
        let content = match &manifest.encoder {
            Some(info) => {
                let path = dir.join(CONTENT_FILE);
                let graph: AnnIndex = decode(&take(&mut files, CONTENT_FILE)?, &path)?;
                graph.validate().map_err(|e| Error::corrupt(&path, e))?;
                if graph.len() != store.len() || graph.dim() != info.dim || graph.metric() != Metric::Cosine {
                    return Err(Error::corrupt(
                        &path,
                        "content space does not match the items or the encoder in the manifest",
                    ));
                }
                Some(graph)
            }
            None if files.contains_key(CONTENT_FILE) => {
                return Err(Error::corrupt(
                    dir.join(CONTENT_FILE),
                    "a content space without an encoder in the manifest",
                ));
            }
            None => None,
        };
        let prefix = format!("{TEXT_DIR}/");
        let text_files = files
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest.to_string(), v)))
            .collect();
        let text = LexicalIndex::from_files(&text_files, &manifest.schema, &dir.join(TEXT_DIR))?;
        let mut by_id = HashMap::with_capacity(store.len());
        for (i, item) in store.items.iter().enumerate() {
            if by_id.insert(item.id.clone(), i as u32).is_some() {
                return Err(Error::corrupt(dir.join(ITEMS_FILE), format!("duplicate item id `{}`", item.id)));
            }
        }
        Ok(Engine {
            store: Arc::new(store),
            ann,
            content,
            encoder: None,
            text,
            ranker,
            manifest,
            by_id,
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

    /// Number of items in the index.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// True when the index holds no items.
    pub fn is_empty(&self) -> bool {
        self.store.len() == 0
    }

    /// The catalog record of `id` (without its vector).
    pub fn item(&self, id: &str) -> Option<&Item> {
        self.by_id.get(id).and_then(|&i| self.store.items.get(i as usize))
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
            encoder: self.manifest.encoder.clone(),
            encoder_attached: self.encoder.is_some(),
        }
    }

    fn resolve_id(&self, id: &str) -> Result<u32> {
        self.by_id.get(id).copied().ok_or_else(|| Error::UnknownItem(id.to_string()))
    }

    fn resolve(&self, req: &Request) -> Result<Resolved> {
        if req.k > MAX_K {
            return Err(Error::InvalidRequest(format!("k = {} is above the limit of {MAX_K}", req.k)));
        }
        if Retriever::ALL.iter().any(|&r| req.candidates.get(r) > MAX_CANDIDATES) || req.rank_depth > MAX_RANK_DEPTH {
            return Err(Error::InvalidRequest(format!(
                "candidate counts are limited to {MAX_CANDIDATES} per retriever and rank_depth to {MAX_RANK_DEPTH}"
            )));
        }
        let (text, history): (Option<&str>, &[String]) = match &req.context {
            Context::Search { text } => (Some(text), &[]),
            Context::Listening { item } => (None, std::slice::from_ref(item)),
            Context::History { items } => (None, items),
            Context::PersonalizedSearch { text, history } => (Some(text), history),
        };
        if matches!(req.context, Context::History { .. }) && history.is_empty() {
            return Err(Error::InvalidRequest("a history context needs at least one item".into()));
        }
        if !(req.history_decay > 0.0 && req.history_decay <= 1.0) {
            return Err(Error::InvalidRequest(format!(
                "history_decay = {} is not in (0, 1]",
                req.history_decay
            )));
        }
        if history.len() > MAX_HISTORY {
            return Err(Error::InvalidRequest(format!(
                "history of {} items is above the limit of {MAX_HISTORY}",
                history.len()
            )));
        }
        let terms = match text {
            Some(t) if t.trim().is_empty() => return Err(Error::InvalidRequest("the search text is empty".into())),
            Some(t) => lexical::analyze(t),
            None => Vec::new(),
        };
        // Most recent last: weight decays towards the past; a repeated item keeps its most recent weight.
        let mut weights: HashMap<u32, f32> = HashMap::new();
        let len = history.len();
        for (pos, id) in history.iter().enumerate() {
            let item = self.resolve_id(id)?;
            let w = req.history_decay.powi(i32::try_from(len - 1 - pos).unwrap_or(i32::MAX));
            let slot = weights.entry(item).or_insert(0.0);
            *slot = slot.max(w);
        }
        let mut items: Vec<(u32, f32)> = weights.into_iter().collect();
        items.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        let mut excluded: Vec<u32> = req.exclude.iter().filter_map(|id| self.by_id.get(id).copied()).collect();
        excluded.extend(items.iter().map(|&(i, _)| i));
        excluded.sort_unstable();
        excluded.dedup();
        let tag_id = |f: &crate::request::TagFilter| -> Result<Option<u32>> {
            if !self.manifest.schema.tag_fields.contains(&f.field) {
                return Err(Error::InvalidRequest(format!(
                    "`{}` is not a tag field of this index (tag fields: {})",
                    f.field,
                    self.manifest.schema.tag_fields.join(", ")
                )));
            }
            Ok(self.store.tags.id(&f.field, &f.value))
        };
        let mut require = Vec::new();
        let mut impossible = false;
        for f in &req.require_tags {
            match tag_id(f)? {
                Some(id) => require.push(id),
                // No item has that tag: nothing can pass.
                None => impossible = true,
            }
        }
        let forbid: Vec<u32> = req
            .exclude_tags
            .iter()
            .map(tag_id)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
        let store = Arc::clone(&self.store);
        let filter: Arc<dyn Fn(u32) -> bool + Send + Sync> = Arc::new(move |item: u32| {
            !impossible
                && excluded.binary_search(&item).is_err()
                && require.iter().all(|&t| store.tags.has(item, t))
                && !forbid.iter().any(|&t| store.tags.has(item, t))
        });
        Ok(Resolved {
            terms,
            items,
            filter,
            has_text: text.is_some(),
        })
    }

    fn vector_of(&self, item: u32) -> Option<&[f32]> {
        self.store.row(item).and_then(|r| self.ann.vector(r))
    }

    /// The normalised weighted mean of the items' vectors.
    fn mean_vector(&self, items: &[(u32, f32)]) -> Option<Vec<f32>> {
        let parts: Vec<(&[f32], f32)> = items.iter().filter_map(|&(i, w)| self.vector_of(i).map(|v| (v, w))).collect();
        let acc = weighted_sum(&parts)?;
        match self.ann.metric() {
            // Inner-product spaces keep magnitude; the others compare directions.
            Metric::Dot => Some(acc),
            Metric::Cosine | Metric::L2 => crate::index::embeddings::normalized(acc),
        }
    }

    /// Serves one request. See [`Request`] for what it may ask.
    ///
    /// Unknown context ids, an empty search text, an unknown tag field or
    /// an out-of-range size are errors; `k = 0` is an empty list; the context
    /// items and excluded ids never appear in the result.
    ///
    /// Emits a `recommend` span (info level) with one child span per stage
    /// (debug level: `encode`, `lexical`, `ann`, `covisit`, `content`,
    /// `popular`, `fusion`, `features`, `rank`) for the service's `tracing`
    /// subscriber.
    pub fn recommend(&self, req: &Request) -> Result<Recommendations> {
        self.pipeline(req, false).map(|(r, _)| r)
    }

    /// Serves many requests in parallel on the rayon thread pool (all cores
    /// by default), one result per request in the same order. Throughput
    /// mode for offline scoring and batch serving; each request's timings
    /// are its own wall-clock times.
    pub fn recommend_batch(&self, reqs: &[Request]) -> Vec<Result<Recommendations>> {
        use rayon::prelude::*;
        reqs.par_iter().map(|r| self.recommend(r)).collect()
    }

    /// Runs `req` like [`recommend`](Engine::recommend) and keeps every
    /// intermediate result, so each stage can then be re-run alone on the
    /// same inputs with [`run_stage`](Engine::run_stage) (per-stage benchmarks
    /// and profiling).
    ///
    /// A benchmark and profiling hook, hidden from the documented API.
    #[doc(hidden)]
    pub fn trace(&self, req: &Request) -> Result<(Recommendations, StageTrace)> {
        let (recs, trace) = self.pipeline(req, true)?;
        let trace = trace.ok_or_else(|| Error::InvalidRequest("k = 0 runs no stage to trace".into()))?;
        Ok((recs, *trace))
    }

    /// Re-runs one stage of a traced request on the inputs it saw and
    /// returns the size of its output (hits, candidates, matrix values or
    /// scores), which benchmarks pass to `black_box`.
    ///
    /// A benchmark and profiling hook, hidden from the documented API.
    #[doc(hidden)]
    pub fn run_stage(&self, trace: &StageTrace, stage: Stage) -> Result<usize> {
        let t = trace;
        Ok(match stage {
            Stage::Ann => self.ann_stage(t.vector.as_deref(), t.counts.ann, &t.ctx.filter)?.len(),
            Stage::Content => self
                .content_stage(t.content_vector.as_deref(), t.counts.content, &t.ctx.filter)?
                .len(),
            Stage::Lexical => {
                if t.ctx.has_text {
                    self.text.search(&t.ctx.terms, t.counts.lexical, Arc::clone(&t.ctx.filter))?.len()
                } else {
                    0
                }
            }
            Stage::Covisit => {
                let scores = self.store.covisit.aggregate(&t.ctx.items);
                covisit::top_n(&scores, t.counts.covisit, |i| (t.ctx.filter)(i)).len()
            }
            Stage::Fusion => fusion::fuse(&t.lists(), t.rank_depth).len(),
            Stage::Features => self
                .features_stage(
                    t.vector.as_deref(),
                    t.content_vector.as_deref(),
                    &t.ctx,
                    &t.covisit_scores,
                    &t.lexical_hits,
                    &t.candidates,
                )
                .len(),
            Stage::Rank { rows } => {
                // Exactly `rows` rows: the traced ones, repeated if there are fewer.
                let have = t.matrix.len() / NUM_FEATURES;
                if have == 0 {
                    return Err(Error::InvalidRequest("the traced request had no candidates to rank".into()));
                }
                let matrix: Vec<f32> = t.matrix.chunks_exact(NUM_FEATURES).cycle().take(rows).flatten().copied().collect();
                self.ranker.score(&matrix, rows)?.len()
            }
        })
    }

    /// ANN candidates for `vector` (none without a vector).
    fn ann_stage(&self, vector: Option<&[f32]>, n: usize, filter: &Arc<dyn Fn(u32) -> bool + Send + Sync>) -> Result<Vec<(u32, f32)>> {
        Ok(match vector {
            Some(v) if n > 0 && !self.ann.is_empty() => {
                let store = &self.store;
                let accept = |row: u32| store.item_of_row(row).is_some_and(|i| filter(i));
                let ef = n.max(64);
                self.ann
                    .search(v, n, ef, accept)
                    .map_err(|e| Error::internal_by("ann", e))?
                    .into_iter()
                    .filter_map(|(row, d)| store.item_of_row(row).map(|i| (i, similarity(self.ann.metric(), d))))
                    .collect()
            }
            _ => Vec::new(),
        })
    }

    /// Content-space neighbours of `vector` (none without a content space or vector).
    fn content_stage(&self, vector: Option<&[f32]>, n: usize, filter: &Arc<dyn Fn(u32) -> bool + Send + Sync>) -> Result<Vec<(u32, f32)>> {
        Ok(match (&self.content, vector) {
            (Some(graph), Some(v)) if n > 0 => graph
                .search(v, n, n.max(64), |row| filter(row))
                .map_err(|e| Error::internal_by("content", e))?
                .into_iter()
                .map(|(row, d)| (row, similarity(Metric::Cosine, d)))
                .collect(),
            _ => Vec::new(),
        })
    }

    fn content_of(&self, item: u32) -> Option<&[f32]> {
        self.content.as_ref().and_then(|g| g.vector(item))
    }

    /// The content-space context vector: the encoded search text and the
    /// recency-weighted mean of the context items' content vectors, blended
    /// as the learned space blends them. `None` without a content space.
    fn content_context(&self, ctx: &Resolved, text: Option<&str>) -> Result<Option<Vec<f32>>> {
        let Some(graph) = &self.content else {
            return Ok(None);
        };
        let query = match text {
            Some(t) => {
                let Some(enc) = &self.encoder else {
                    return Err(Error::EncoderMismatch {
                        expected: self.manifest.encoder.as_ref().map(encoder::describe).unwrap_or_default(),
                        found: None,
                    });
                };
                let _span = tracing::debug_span!("encode", part = "query").entered();
                Some(enc.encode(t)?)
            }
            None => None,
        };
        let items: Vec<(&[f32], f32)> = ctx.items.iter().filter_map(|&(i, w)| graph.vector(i).map(|v| (v, w))).collect();
        let history = blend(&items);
        Ok(match (query, history) {
            (Some(q), Some(h)) => blend(&[(&q, 1.0), (&h, HISTORY_WEIGHT)]),
            (q, h) => q.or(h),
        })
    }

    /// The feature matrix for `candidates`.
    fn features_stage(
        &self,
        vector: Option<&[f32]>,
        content_vector: Option<&[f32]>,
        ctx: &Resolved,
        covisit_scores: &HashMap<u32, f32>,
        lexical_hits: &[(u32, f32)],
        candidates: &[Candidate],
    ) -> Vec<f32> {
        let vector_of = |i: u32| self.vector_of(i);
        let content_of = |i: u32| self.content_of(i);
        let signals = ContextSignals {
            vector,
            items: &ctx.items,
            covisit: covisit_scores,
            lexical_max: lexical_hits.first().map(|h| h.1).unwrap_or(0.0),
            vector_of: &vector_of,
            terms: &ctx.terms,
            content_vector,
            content_of: &content_of,
        };
        features::assemble(&signals, candidates, &self.store)
    }

    /// The whole online path; with `keep`, also the intermediate results.
    fn pipeline(&self, req: &Request, keep: bool) -> Result<(Recommendations, Option<Box<StageTrace>>)> {
        let span = tracing::info_span!("recommend", k = req.k, candidates = tracing::field::Empty);
        let _entered = span.enter();
        let t_total = Instant::now();
        if req.k == 0 {
            // Still validated: a malformed request is an error whatever k is.
            self.resolve(req)?;
            let timings = Timings {
                encode: t_total.elapsed(),
                total: t_total.elapsed(),
                ..Timings::default()
            };
            return Ok((
                Recommendations {
                    items: Vec::new(),
                    candidates: 0,
                    timings,
                },
                None,
            ));
        }
        let (
            Assembled {
                candidates,
                matrix,
                mut timings,
            },
            trace,
        ) = self.assemble_inner(req, keep)?;
        span.record("candidates", candidates.len());
        let t = Instant::now();
        let stage = tracing::debug_span!("rank").entered();
        let scores = self.ranker.score(&matrix, candidates.len())?;
        let items = self.top_k(&candidates, &scores, &matrix, req);
        drop(stage);
        timings.rank = t.elapsed();
        timings.total = t_total.elapsed();
        Ok((
            Recommendations {
                items,
                candidates: candidates.len(),
                timings,
            },
            trace,
        ))
    }

    /// Everything before the ranker: encode, retrieve, fuse, assemble
    /// features. Training and evaluation call this too, so the ranker
    /// learns from exactly the features it is served.
    pub(crate) fn assemble(&self, req: &Request) -> Result<Assembled> {
        self.assemble_inner(req, false).map(|(a, _)| a)
    }

    /// [`assemble`](Engine::assemble), keeping the intermediate results when `keep`.
    fn assemble_inner(&self, req: &Request, keep: bool) -> Result<(Assembled, Option<Box<StageTrace>>)> {
        let mut timings = Timings::default();
        let t = Instant::now();
        let stage = tracing::debug_span!("encode").entered();
        let ctx = self.resolve(req)?;
        let history_vector = if ctx.items.is_empty() { None } else { self.mean_vector(&ctx.items) };
        let content_vector = self.content_context(&ctx, req.context.text())?;
        drop(stage);
        timings.encode = t.elapsed();

        let counts = req.candidates;
        let t = Instant::now();
        let stage = tracing::debug_span!("lexical").entered();
        let lexical_hits = if ctx.has_text {
            self.text.search(&ctx.terms, counts.lexical, Arc::clone(&ctx.filter))?
        } else {
            Vec::new()
        };
        drop(stage);
        timings.lexical = t.elapsed();

        // A search reaches the embedding space through its best lexical hits
        // (pseudo-relevance feedback), blended with the history when personalised.
        let t = Instant::now();
        let stage = tracing::debug_span!("encode", part = "search vector").entered();
        let vector = if ctx.has_text {
            let prf: Vec<(u32, f32)> = lexical_hits.iter().take(PRF_HITS).map(|&(i, s)| (i, s.max(0.0))).collect();
            let prf_vector = self.mean_vector(&prf);
            match (prf_vector, history_vector) {
                (Some(a), Some(b)) => blend(&[(&a, 1.0), (&b, HISTORY_WEIGHT)]),
                (a, b) => a.or(b),
            }
        } else {
            history_vector
        };
        drop(stage);
        timings.encode += t.elapsed();

        let t = Instant::now();
        let stage = tracing::debug_span!("ann").entered();
        let ann_hits = self.ann_stage(vector.as_deref(), counts.ann, &ctx.filter)?;
        drop(stage);
        timings.ann = t.elapsed();

        let t = Instant::now();
        let stage = tracing::debug_span!("covisit").entered();
        let covisit_scores = self.store.covisit.aggregate(&ctx.items);
        let covisit_hits = covisit::top_n(&covisit_scores, counts.covisit, |i| (ctx.filter)(i));
        drop(stage);
        timings.covisit = t.elapsed();

        let t = Instant::now();
        let stage = tracing::debug_span!("content").entered();
        let content_hits = self.content_stage(content_vector.as_deref(), counts.content, &ctx.filter)?;
        drop(stage);
        timings.content = t.elapsed();

        // Popularity covers cold contexts; a pure search wants matches, not hits.
        let t = Instant::now();
        let stage = tracing::debug_span!("popular").entered();
        let popular_hits = if ctx.items.is_empty() {
            Vec::new()
        } else {
            self.store.popularity.top(counts.popular, |i| (ctx.filter)(i))
        };
        drop(stage);
        timings.popular = t.elapsed();

        let t = Instant::now();
        let stage = tracing::debug_span!("fusion").entered();
        let lists: [(Retriever, &[(u32, f32)]); 5] = [
            (Retriever::Ann, &ann_hits),
            (Retriever::Lexical, &lexical_hits),
            (Retriever::Covisit, &covisit_hits),
            (Retriever::Popular, &popular_hits),
            (Retriever::Content, &content_hits),
        ];
        let candidates = fusion::fuse(&lists, req.rank_depth);
        drop(stage);
        timings.fusion = t.elapsed();

        let t = Instant::now();
        let stage = tracing::debug_span!("features").entered();
        let matrix = self.features_stage(
            vector.as_deref(),
            content_vector.as_deref(),
            &ctx,
            &covisit_scores,
            &lexical_hits,
            &candidates,
        );
        drop(stage);
        timings.features = t.elapsed();
        let trace = keep.then(|| {
            Box::new(StageTrace {
                ctx,
                vector,
                content_vector,
                counts,
                rank_depth: req.rank_depth,
                ann_hits,
                lexical_hits,
                covisit_scores,
                covisit_hits,
                popular_hits,
                content_hits,
                candidates: candidates.clone(),
                matrix: matrix.clone(),
            })
        });
        Ok((
            Assembled {
                candidates,
                matrix,
                timings,
            },
            trace,
        ))
    }

    /// Internal id of an external id (for the evaluation harness).
    #[cfg(feature = "harness")]
    pub(crate) fn internal_id(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// External id of an internal id.
    pub(crate) fn external_id(&self, item: u32) -> Option<&str> {
        self.store.items.get(item as usize).map(|i| i.id.as_str())
    }

    fn top_k(&self, candidates: &[Candidate], scores: &[f32], matrix: &[f32], req: &Request) -> Vec<Recommendation> {
        let mut order: Vec<usize> = (0..candidates.len().min(scores.len())).collect();
        // Ties fall back to fusion order, which is itself tie-broken by id.
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.truncate(req.k);
        order
            .into_iter()
            .filter_map(|i| {
                let c = &candidates[i];
                let item = self.store.items.get(c.item as usize)?;
                let sources = Retriever::ALL
                    .iter()
                    .filter_map(|&r| {
                        c.hits[r.index()].map(|h| Provenance {
                            retriever: r,
                            rank: h.rank,
                            score: h.score,
                        })
                    })
                    .collect();
                let features = req.explain.then(|| {
                    let row = matrix.get(i * NUM_FEATURES..(i + 1) * NUM_FEATURES).unwrap_or(&[]);
                    FEATURES.iter().zip(row).map(|(n, v)| (n.to_string(), *v)).collect()
                });
                Some(Recommendation {
                    id: item.id.clone(),
                    score: scores[i],
                    sources,
                    features,
                })
            })
            .collect()
    }
}

/// One stage of the online path, for [`Engine::run_stage`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// ANN search with the context vector.
    Ann,
    /// Content-space ANN search (nothing for indexes without one).
    Content,
    /// BM25 search with the query terms (nothing for contexts without text).
    Lexical,
    /// Co-visitation aggregation over the context items and top-n.
    Covisit,
    /// Fusion of the retrievers' lists into ranked, de-duplicated candidates.
    Fusion,
    /// Feature assembly for the fused candidates.
    Features,
    /// The ranker's forward pass over exactly `rows` candidates (the traced
    /// feature rows, repeated if there were fewer).
    Rank {
        /// Number of candidate rows scored.
        rows: usize,
    },
}

/// Every intermediate result of one request, from [`Engine::trace`]. Opaque:
/// it only feeds [`Engine::run_stage`] (and says how many candidates there were).
#[doc(hidden)]
pub struct StageTrace {
    ctx: Resolved,
    vector: Option<Vec<f32>>,
    content_vector: Option<Vec<f32>>,
    counts: crate::request::CandidateCounts,
    rank_depth: usize,
    ann_hits: Vec<(u32, f32)>,
    lexical_hits: Vec<(u32, f32)>,
    covisit_scores: HashMap<u32, f32>,
    covisit_hits: Vec<(u32, f32)>,
    popular_hits: Vec<(u32, f32)>,
    content_hits: Vec<(u32, f32)>,
    candidates: Vec<Candidate>,
    matrix: Vec<f32>,
}

impl StageTrace {
    /// Number of fused candidates the request ranked.
    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }

    fn lists(&self) -> [(Retriever, &[(u32, f32)]); 5] {
        [
            (Retriever::Ann, &self.ann_hits),
            (Retriever::Lexical, &self.lexical_hits),
            (Retriever::Covisit, &self.covisit_hits),
            (Retriever::Popular, &self.popular_hits),
            (Retriever::Content, &self.content_hits),
        ]
    }
}

impl std::fmt::Debug for StageTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageTrace")
            .field("candidates", &self.candidates.len())
            .finish_non_exhaustive()
    }
}

/// `sum(w · v)` over `parts` (vectors of one dimension); `None` without parts.
fn weighted_sum(parts: &[(&[f32], f32)]) -> Option<Vec<f32>> {
    let (first, _) = parts.first()?;
    let mut acc = vec![0.0f32; first.len()];
    for (v, w) in parts {
        acc.iter_mut().zip(v.iter()).for_each(|(a, x)| *a += w * x);
    }
    Some(acc)
}

/// The unit-length [`weighted_sum`] of `parts`.
fn blend(parts: &[(&[f32], f32)]) -> Option<Vec<f32>> {
    weighted_sum(parts).and_then(crate::index::embeddings::normalized)
}

/// Turns an ANN distance into a similarity where larger is closer.
fn similarity(metric: Metric, distance: f32) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - distance,
        Metric::Dot => -distance,
        Metric::L2 => 1.0 / (1.0 + distance.max(0.0)),
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
