//! [`IndexBuilder`]: catalog + events → an index directory, written to a
//! temporary sibling and renamed into place only when complete.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::encoder::Encoder;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::index::content;
use crate::index::embeddings::{self, EmbeddingParams};
use crate::index::manifest::{BuildStats, Manifest, FORMAT, FORMAT_VERSION};
use crate::index::schema::Schema;
use crate::index::store::{ItemStore, NONE};
use crate::index::{bincode_config, BuildParams, ANN_FILE, CONTENT_DIR, CONTENT_FILE, ITEMS_FILE, RANKER_FILE, TEXT_DIR};
use crate::progress::{OnProgress, Progress};
use crate::ranking::dataset;
use crate::ranking::model::Ranker;
use crate::ranking::train::{self, EpochReport, ListExample, TrainParams};
use crate::retrieval::ann::{AnnIndex, AnnParams, Metric};
use crate::retrieval::covisit::{self, CoVisitation, CovisitParams};
use crate::retrieval::lexical;
use crate::retrieval::popular::Popularity;

/// Builds an index directory from a catalog and an interaction log.
///
/// ```no_run
/// # fn main() -> twostage::Result<()> {
/// use twostage::{Catalog, Events, IndexBuilder};
/// let catalog = Catalog::from_jsonl_path("data/music/items.jsonl")?;
/// let events = Events::from_jsonl_path("data/music/events.jsonl", &catalog)?;
/// let report = IndexBuilder::new().group_key("artist").build(&catalog, &events, "target/music-index")?;
/// println!("{} items, {} with vectors", report.stats.items, report.stats.vectors);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct IndexBuilder {
    schema: Option<Schema>,
    group_key: Option<String>,
    params: BuildParams,
    train: Option<TrainParams>,
    encoder: Option<Encoder>,
}

impl Default for IndexBuilder {
    fn default() -> Self {
        IndexBuilder {
            schema: None,
            group_key: None,
            params: BuildParams::default(),
            train: Some(TrainParams::default()),
            encoder: None,
        }
    }
}

/// Content vectors computed once per build and shared by the ranker's
/// training index and the final one.
struct ContentVectors<'a> {
    encoder: &'a Encoder,
    /// `[items × dim]`, row i for item i.
    vectors: Vec<f32>,
}

/// Share of the log (its most recent events) whose plays and searches
/// become ranker training lists; retrieval for them is built on the rest,
/// so no list sees its own answer in the co-visitation counts.
pub const RANKER_HOLDOUT: f64 = 0.15;
/// Fewer lists with a relevant candidate than this and the fixed-weight
/// placeholder is kept: a model fitted on less would be noise.
pub const MIN_TRAINING_LISTS: usize = 50;

/// What ranker training did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TrainSummary {
    /// `linear` or `mlp`.
    pub kind: String,
    /// One entry per epoch run.
    pub epochs: Vec<EpochReport>,
    /// Best validation NDCG@10 (over candidates).
    pub valid_ndcg: f64,
    /// Share of training targets whose item retrieval found.
    pub train_candidate_recall: f64,
    /// Share of validation targets whose item retrieval found.
    pub valid_candidate_recall: f64,
    /// Training lists with a relevant candidate.
    pub train_lists: usize,
    /// Validation lists with a relevant candidate.
    pub valid_lists: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// What a build did.
#[derive(Clone, Debug)]
pub struct BuildReport {
    /// Ranker training, when it ran.
    pub training: Option<TrainSummary>,
    /// Where the index now is.
    pub path: PathBuf,
    /// Counts recorded in the manifest.
    pub stats: BuildStats,
    /// Total bytes of the index files.
    pub bytes: u64,
    /// Wall time of each build phase, in order.
    pub phases: Vec<(&'static str, Duration)>,
}

impl IndexBuilder {
    /// A builder with every default: schema inferred from the catalog
    /// ([`Schema::infer`]), 64-dimensional learned embeddings, HNSW with
    /// M = 16 and ef_construction = 200, cosine distance, co-visitation
    /// window 5 keeping 100 neighbours, 30-minute sessions, and an MLP
    /// ranker trained on the most recent 15% of the events (which builds
    /// retrieval a second time, over the older 85%, in a temporary directory:
    /// roughly doubles build time; [`IndexBuilder::without_ranker_training`]
    /// skips it).
    pub fn new() -> IndexBuilder {
        IndexBuilder::default()
    }

    /// Use this schema instead of inferring one.
    pub fn schema(mut self, schema: Schema) -> IndexBuilder {
        self.schema = Some(schema);
        self
    }

    /// Treat equal values of text attribute `attribute` as one group
    /// ("same artist"). Applies on top of an inferred or given schema.
    pub fn group_key(mut self, attribute: impl Into<String>) -> IndexBuilder {
        self.group_key = Some(attribute.into());
        self
    }

    /// Embedding parameters (default: [`EmbeddingParams::default`]).
    pub fn embedding(mut self, params: EmbeddingParams) -> IndexBuilder {
        self.params.embedding = params;
        self
    }

    /// HNSW parameters (default: M 16, ef_construction 200).
    pub fn ann(mut self, params: AnnParams) -> IndexBuilder {
        self.params.ann = params;
        self
    }

    /// Distance for ANN and similarity features (default cosine).
    pub fn metric(mut self, metric: Metric) -> IndexBuilder {
        self.params.metric = metric;
        self
    }

    /// Co-visitation parameters (default: window 5, 100 neighbours).
    pub fn covisit(mut self, params: CovisitParams) -> IndexBuilder {
        self.params.covisit = params;
        self
    }

    /// Train the ranker with these settings (default: [`TrainParams::default`],
    /// an MLP). Training runs when the events hold enough plays or searches.
    pub fn ranker(mut self, params: TrainParams) -> IndexBuilder {
        self.train = Some(params);
        self
    }

    /// Embed every item's text with `encoder` into a content space searched
    /// beside the learned one ([`Retriever::Content`](crate::Retriever::Content)):
    /// searches then match by meaning, and items without plays get
    /// neighbours. The manifest records the model; an engine must attach the
    /// same one ([`Engine::with_encoder`]) to serve searches. Without an
    /// encoder (the default) the index has no content space.
    pub fn encoder(mut self, encoder: Encoder) -> IndexBuilder {
        self.encoder = Some(encoder);
        self
    }

    /// The encoder set by [`IndexBuilder::encoder`] (for the evaluation harness).
    #[cfg(feature = "harness")]
    pub(crate) fn encoder_ref(&self) -> Option<&Encoder> {
        self.encoder.as_ref()
    }

    /// Keep the fixed-weight placeholder ranker; no training.
    pub fn without_ranker_training(mut self) -> IndexBuilder {
        self.train = None;
        self
    }

    /// Inactivity gap that ends a session (default 30 minutes).
    pub fn session_gap(mut self, gap: Duration) -> IndexBuilder {
        self.params.session_gap_secs = i64::try_from(gap.as_secs()).unwrap_or(i64::MAX);
        self
    }

    fn check(&self, catalog: &Catalog, events: &Events) -> Result<Schema> {
        let p = &self.params;
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_string()));
        if catalog.is_empty() {
            return bad("the catalog is empty");
        }
        if !(1..=1024).contains(&p.embedding.dim) || p.embedding.oversample > 1024 || p.embedding.power_iterations > 64 {
            return bad("embedding dim must be 1..=1024, oversample ≤ 1024, power_iterations ≤ 64");
        }
        if !(p.embedding.smoothing.is_finite() && (0.0..=1.0).contains(&p.embedding.smoothing)) {
            return bad("embedding smoothing must be in [0, 1]");
        }
        if !(2..=256).contains(&p.ann.m) || !(1..=10_000).contains(&p.ann.ef_construction) {
            return bad("ann m must be 2..=256 and ef_construction 1..=10000");
        }
        if !(1..=1000).contains(&p.covisit.window) || p.covisit.top_k > 100_000 {
            return bad("covisit window must be 1..=1000 and top_k ≤ 100000");
        }
        if p.session_gap_secs <= 0 {
            return bad("session gap must be positive");
        }
        if events.events().iter().any(|e| e.item as usize >= catalog.len()) {
            return bad("the events were loaded against another catalog (item ids out of range)");
        }
        let mut schema = self.schema.clone().unwrap_or_else(|| Schema::infer(catalog));
        if let Some(g) = &self.group_key {
            schema.group_key = Some(g.clone());
        }
        schema.validate(catalog)?;
        Ok(schema)
    }

    /// Builds the index into `out`. The work happens in a temporary sibling
    /// directory; only a complete, fsynced index is renamed to `out`, and an
    /// index already at `out` is replaced only then. On error nothing at
    /// `out` changes.
    ///
    /// Emits an info-level `build` span with a child span per phase
    /// (`content embeddings` with an encoder, `ranker training`,
    /// `covisitation`, `embeddings`, `hnsw`, `text index`, `content hnsw`
    /// with an encoder, `write`, `publish`).
    pub fn build(&self, catalog: &Catalog, events: &Events, out: impl AsRef<Path>) -> Result<BuildReport> {
        self.build_with_progress(catalog, events, out, &|_| {})
    }

    /// [`IndexBuilder::build`], reporting [`Progress`] to `on_progress` (from
    /// any of the build's threads): events counted, items embedded, vectors
    /// inserted, documents indexed, training lists assembled, epochs run.
    ///
    /// ```no_run
    /// # fn main() -> twostage::Result<()> {
    /// # let catalog = twostage::Catalog::from_jsonl_path("items.jsonl")?;
    /// # let events = twostage::Events::from_jsonl_path("events.jsonl", &catalog)?;
    /// use twostage::{IndexBuilder, Progress};
    /// IndexBuilder::new().build_with_progress(&catalog, &events, "index", &|p: &Progress| {
    ///     eprintln!("{}: {}/{} {}", p.phase, p.done, p.total, p.unit);
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn build_with_progress(
        &self,
        catalog: &Catalog,
        events: &Events,
        out: impl AsRef<Path>,
        on_progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<BuildReport> {
        let out = out.as_ref();
        let _span = tracing::info_span!("build", items = catalog.len(), events = events.len(), out = %out.display()).entered();
        let schema = self.check(catalog, events)?;
        let started = Instant::now();
        // Leftovers of builds that were killed (their process is gone) would
        // otherwise pile up next to the index forever.
        remove_stale_siblings(out);
        let encoding = Instant::now();
        let content = match &self.encoder {
            Some(encoder) => Some(ContentVectors {
                encoder,
                vectors: content::encode_catalog(encoder, catalog, &schema, on_progress)?,
            }),
            None => None,
        };
        let encoding = encoding.elapsed();
        let content = content.as_ref();
        let (ranker, training) = match &self.train {
            Some(params) if !events.is_empty() => {
                match self.train_ranker(catalog, events, &schema, content, out, params, &mut |_| {}, on_progress)? {
                    Some((r, summary)) => (r, Some(summary)),
                    None => (Ranker::fixed_default()?, None),
                }
            }
            _ => (Ranker::fixed_default()?, None),
        };
        let tmp = temp_sibling(out, "tmp")?;
        let built = self
            .build_into(catalog, events, &schema, content, &tmp, started, &ranker, on_progress)
            .and_then(|(stats, mut phases)| {
                // Counted before publishing: afterwards `out` may already be replaced by a concurrent build.
                let bytes = crate::index::manifest::list_files(&tmp)?
                    .iter()
                    .map(|rel| std::fs::metadata(tmp.join(rel)).map(|m| m.len()).unwrap_or(0))
                    .sum();
                tracing::info_span!("publish").in_scope(|| publish(&tmp, out))?;
                if let Some(t) = &training {
                    phases.insert(0, ("ranker training", Duration::from_secs_f64(t.seconds)));
                }
                if content.is_some() {
                    phases.insert(0, ("content embeddings", encoding));
                }
                Ok(BuildReport {
                    path: out.to_path_buf(),
                    stats,
                    bytes,
                    phases,
                    training,
                })
            });
        if built.is_err() && tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        built
    }

    /// Trains a ranker on the most recent [`RANKER_HOLDOUT`] of `events`
    /// against a retrieval index built from the rest (in a temporary
    /// directory beside `out`). `None` when there is too little to learn from.
    // Private; every argument is a distinct input, and bundling them into a
    // struct used once would only move the list.
    #[allow(clippy::too_many_arguments)]
    fn train_ranker(
        &self,
        catalog: &Catalog,
        events: &Events,
        schema: &Schema,
        content: Option<&ContentVectors<'_>>,
        out: &Path,
        params: &TrainParams,
        on_epoch: &mut dyn FnMut(&EpochReport),
        on_progress: OnProgress<'_>,
    ) -> Result<Option<(Ranker, TrainSummary)>> {
        let _span = tracing::info_span!("ranker training").entered();
        let started = Instant::now();
        let all = events.events();
        let cut_at = ((all.len() as f64) * (1.0 - RANKER_HOLDOUT)) as usize;
        let Some(cut) = all.get(cut_at).map(|e| e.ts) else {
            return Ok(None);
        };
        let before: Vec<_> = all.iter().filter(|e| e.ts < cut).cloned().collect();
        if before.is_empty() {
            return Ok(None);
        }
        let before = Events::from_events(events.users().to_vec(), before, catalog)?;
        let ids: Vec<String> = catalog.items().iter().map(|i| i.id.clone()).collect();
        let targets = dataset::subsample(dataset::log_targets(events, &ids, cut, i64::MAX), params.max_lists);
        if targets.len() < MIN_TRAINING_LISTS {
            tracing::info!(
                lists = targets.len(),
                needed = MIN_TRAINING_LISTS,
                "too few logged requests to train a ranker"
            );
            return Ok(None);
        }
        let tmp = temp_sibling(out, "ranker")?;
        let result = (|| {
            tracing::info_span!("retrieval index", events = before.len())
                .in_scope(|| self.build_into(catalog, &before, schema, content, &tmp, started, &Ranker::fixed_default()?, &|_| {}))?;
            let mut engine = Engine::open(&tmp)?;
            if let Some(c) = content {
                engine = engine.with_encoder(c.encoder.clone())?;
            }
            // Validation is the later part of the holdout: early stopping sees the future the model will face.
            let split = targets.len() * 4 / 5;
            let lists_span = tracing::info_span!("training lists", targets = targets.len()).entered();
            let listed = |n: usize| on_progress(&Progress::new("training lists", n, targets.len(), "lists"));
            let (train_lists, train_recall) = dataset::lists(&engine, &targets[..split], &listed)?;
            let (valid_lists, valid_recall) = dataset::lists(&engine, &targets[split..], &|n| listed(split + n))?;
            listed(targets.len());
            drop(lists_span);
            let positive = |l: &[ListExample]| l.iter().filter(|e| e.grades.iter().any(|&g| g > 0)).count();
            if positive(&train_lists) < MIN_TRAINING_LISTS || positive(&valid_lists) == 0 {
                return Ok(None);
            }
            let mut epochs = Vec::new();
            on_progress(&Progress::new("ranker training", 0, params.max_epochs, "epochs"));
            let mut ranker = train::train(&train_lists, &valid_lists, params, &mut |r| {
                epochs.push(r.clone());
                on_epoch(r);
                on_progress(&Progress::new("ranker training", r.epoch, params.max_epochs, "epochs"));
            })?;
            // Early stopping ends the phase before max_epochs: close it.
            on_progress(&Progress::new("ranker training", params.max_epochs, params.max_epochs, "epochs"));
            let mut validation = ranker.info().validation.clone();
            validation.insert("train_candidate_recall".into(), train_recall);
            validation.insert("valid_candidate_recall".into(), valid_recall);
            let valid_ndcg = validation.get("ndcg@10").copied().unwrap_or(0.0);
            ranker.set_validation(validation);
            let summary = TrainSummary {
                kind: ranker.info().kind.clone(),
                epochs,
                valid_ndcg,
                train_candidate_recall: train_recall,
                valid_candidate_recall: valid_recall,
                train_lists: positive(&train_lists),
                valid_lists: positive(&valid_lists),
                seconds: started.elapsed().as_secs_f64(),
            };
            Ok(Some((ranker, summary)))
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }

    #[allow(clippy::too_many_arguments)] // As train_ranker: private, distinct inputs.
    fn build_into(
        &self,
        catalog: &Catalog,
        events: &Events,
        schema: &Schema,
        content: Option<&ContentVectors<'_>>,
        dir: &Path,
        started: Instant,
        ranker: &Ranker,
        on_progress: OnProgress<'_>,
    ) -> Result<(BuildStats, Vec<(&'static str, Duration)>)> {
        let p = &self.params;
        let n = catalog.len();
        let mut phases = Vec::new();
        let mut clock = Instant::now();
        let mut lap = |name: &'static str, phases: &mut Vec<(&'static str, Duration)>| {
            phases.push((name, clock.elapsed()));
            clock = Instant::now();
        };

        let phase = tracing::info_span!("covisitation").entered();
        let sequences = covisit::session_sequences(events, p.session_gap_secs);
        let pairs = covisit::directed_pairs(&sequences, p.covisit.window);
        let popularity = Popularity::build(n, events);
        let covisit = CoVisitation::build(n, &pairs, p.covisit.top_k);
        lap("covisitation", &mut phases);
        on_progress(&Progress::new("covisitation", events.len(), events.len(), "events"));
        drop(phase);
        let phase = tracing::info_span!("embeddings").entered();

        // The store without vector rows first: content fallback needs its tags and groups.
        let mut store = ItemStore::build(catalog, schema, popularity, covisit, vec![NONE; n], Vec::new());
        on_progress(&Progress::new("embeddings", 0, n, "items"));
        let (mut vectors, source) = match catalog.vector_dim() {
            Some(_) => (catalog.items().iter().map(|it| it.vector.clone()).collect::<Vec<_>>(), "catalog"),
            None => (embeddings::learn(n, &pairs, &p.embedding), "learned"),
        };
        if p.metric == Metric::Cosine {
            vectors = vectors.into_iter().map(|v| v.and_then(embeddings::normalized)).collect();
        }
        embeddings::fill_from_content(&mut vectors, &store.groups, &store.tags);
        let dim = vectors.iter().flatten().map(Vec::len).next().unwrap_or(0);
        let mut flat = Vec::new();
        let mut row_item = Vec::new();
        for (item, v) in vectors.iter().enumerate() {
            if let Some(v) = v {
                store.item_row[item] = row_item.len() as u32;
                row_item.push(item as u32);
                flat.extend_from_slice(v);
            }
        }
        store.row_item = row_item;
        let source = if store.row_item.is_empty() { "none" } else { source };
        lap("embeddings", &mut phases);
        on_progress(&Progress::new("embeddings", n, n, "items"));
        drop(phase);
        let phase = tracing::info_span!("hnsw", vectors = store.row_item.len(), dim).entered();

        let rows = store.row_item.len();
        let inserted = |k: usize| on_progress(&Progress::new("hnsw", k, rows, "vectors"));
        inserted(0);
        let ann = if dim == 0 {
            AnnIndex::build(&[], 1, p.metric, &p.ann)
        } else {
            AnnIndex::build_reporting(&flat, dim, p.metric, &p.ann, &inserted)
        }
        .map_err(|e| Error::internal_by("ann build", e))?;
        lap("hnsw", &mut phases);
        drop(phase);
        let phase = tracing::info_span!("text index", documents = n).entered();

        lexical::build(catalog, schema, &dir.join(TEXT_DIR), &|k| {
            on_progress(&Progress::new("text index", k, n, "documents"))
        })?;
        lap("text index", &mut phases);
        drop(phase);

        let content_graph = match content {
            Some(c) => Some(content::build_graph(&c.vectors, c.encoder.dim(), &p.ann, on_progress)?),
            None => None,
        };
        if content_graph.is_some() {
            lap("content hnsw", &mut phases);
        }
        let phase = tracing::info_span!("write").entered();

        write_file(&dir.join(ITEMS_FILE), &encode(&store)?)?;
        write_file(&dir.join(ANN_FILE), &encode(&ann)?)?;
        if let Some(graph) = &content_graph {
            write_file(&dir.join(CONTENT_FILE), &encode(graph)?)?;
        }
        ranker.save(&dir.join(RANKER_FILE))?;
        let stats = BuildStats {
            items: n,
            events: events.len(),
            sessions: sequences.len(),
            vectors: store.row_item.len(),
            dim,
            vector_source: source.to_string(),
            build_ms: started.elapsed().as_millis() as u64,
        };
        Manifest {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            created_by: format!("twostage {}", env!("CARGO_PKG_VERSION")),
            schema: schema.clone(),
            build: p.clone(),
            stats: stats.clone(),
            ranker: ranker.info().clone(),
            encoder: content.map(|c| c.encoder.info().clone()),
            files: Vec::new(),
            manifest_crc32: 0,
        }
        .write(dir)?;
        sync_tree(dir)?;
        lap("write", &mut phases);
        drop(phase);
        Ok((stats, phases))
    }
}

/// Retrains the ranker of the index in `dir` from `events` (the same log
/// shape the index was built from) and replaces its ranker in place: the
/// index is copied to a temporary sibling, given the new weights and
/// manifest, and renamed over the old one. Retrieval is rebuilt only in a
/// temporary index over the older part of the log, as in a full build.
/// `on_epoch` sees every epoch (for progress bars).
///
/// An index with a content space needs the `encoder` it was built with (its
/// item vectors are reused; training searches are encoded by it); an index
/// without one takes `None`.
pub fn retrain_ranker(
    dir: impl AsRef<Path>,
    catalog: &Catalog,
    events: &Events,
    encoder: Option<&Encoder>,
    params: &TrainParams,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<TrainSummary> {
    let dir = dir.as_ref();
    let _span = tracing::info_span!("retrain_ranker", index = %dir.display()).entered();
    let (manifest, files) = Manifest::read_verified(dir)?;
    if manifest.stats.items != catalog.len() {
        return Err(Error::InvalidConfig(format!(
            "the index holds {} items, the catalog {}: retrain with the catalog the index was built from",
            manifest.stats.items,
            catalog.len()
        )));
    }
    let content = match (&manifest.encoder, encoder) {
        (None, None) => None,
        (Some(built), Some(given)) if built.same_model(given.info()) => {
            let path = dir.join(CONTENT_FILE);
            let bytes = files
                .get(CONTENT_FILE)
                .ok_or_else(|| Error::corrupt(&path, "missing from the manifest"))?;
            let graph: AnnIndex = crate::index::decode(bytes, &path)?;
            graph.validate().map_err(|e| Error::corrupt(&path, e))?;
            if graph.len() != catalog.len() || graph.dim() != given.dim() {
                return Err(Error::corrupt(&path, "content space does not match the items or the encoder"));
            }
            let vectors = (0..graph.len() as u32)
                .flat_map(|r| graph.vector(r).unwrap_or(&[]).iter().copied())
                .collect();
            Some(ContentVectors { encoder: given, vectors })
        }
        (Some(built), given) => {
            return Err(Error::EncoderMismatch {
                expected: crate::encoder::describe(built),
                found: given.map(|g| crate::encoder::describe(g.info())),
            })
        }
        (None, Some(_)) => {
            return Err(Error::InvalidConfig(
                "the index has no content space; retrain without an encoder, or rebuild with one".into(),
            ))
        }
    };
    let builder = IndexBuilder {
        schema: Some(manifest.schema.clone()),
        group_key: None,
        params: manifest.build.clone(),
        train: Some(params.clone()),
        encoder: None,
    };
    let Some((ranker, summary)) =
        builder.train_ranker(catalog, events, &manifest.schema, content.as_ref(), dir, params, on_epoch, &|_| {})?
    else {
        return Err(Error::InvalidConfig(format!(
            "too few plays or searches with a retrievable answer in the last {:.0}% of the log to train a ranker (need {MIN_TRAINING_LISTS})",
            RANKER_HOLDOUT * 100.0
        )));
    };
    let tmp = temp_sibling(dir, "tmp")?;
    let result = (|| {
        for (rel, bytes) in &files {
            if rel != RANKER_FILE {
                write_file(&tmp.join(rel), bytes)?;
            }
        }
        ranker.save(&tmp.join(RANKER_FILE))?;
        Manifest {
            ranker: ranker.info().clone(),
            ..manifest
        }
        .write(&tmp)?;
        sync_tree(&tmp)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    tracing::info_span!("publish").in_scope(|| publish(&tmp, dir))?;
    Ok(summary)
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode_config()).map_err(|e| Error::internal_by("encode", e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}

/// fsyncs every file and directory under `dir`, so the rename that
/// publishes it cannot expose unwritten data after a crash.
fn sync_tree(dir: &Path) -> Result<()> {
    for rel in crate::index::manifest::list_files(dir)? {
        let p = dir.join(rel);
        std::fs::File::open(&p).and_then(|f| f.sync_all()).map_err(|e| Error::io(&p, e))?;
    }
    sync_dir(dir)?;
    for sub in [TEXT_DIR, "ann", CONTENT_DIR] {
        let p = dir.join(sub);
        if p.is_dir() {
            sync_dir(&p)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Directories can be fsynced on Unix; elsewhere this is best effort.
    match std::fs::File::open(dir).and_then(|f| f.sync_all()) {
        Ok(()) => Ok(()),
        Err(e) if cfg!(unix) => Err(Error::io(dir, e)),
        Err(_) => Ok(()),
    }
}

/// Leftover siblings older than this are removed even when their process id
/// is alive: after a day it has most likely been reused by another process.
const STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// `out`'s parent directory and final name.
fn split_out(out: &Path) -> Result<(PathBuf, &str)> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidConfig(format!("output path {} has no usable final component", out.display())))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

/// The path of a hidden sibling of `out`: `.NAME.KIND-PID-NANOS`. Hidden and
/// manifest-less until complete, it is never mistaken for an index; the PID
/// lets a later build tell a dead build's leftovers from a running one's.
fn sibling_path(out: &Path, kind: &str) -> Result<PathBuf> {
    let (parent, name) = split_out(out)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Ok(parent.join(format!(".{name}.{kind}-{}-{nanos}", std::process::id())))
}

/// Creates a fresh [`sibling_path`] directory (and `out`'s parent if needed).
fn temp_sibling(out: &Path, kind: &str) -> Result<PathBuf> {
    let (parent, _) = split_out(out)?;
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let path = sibling_path(out, kind)?;
    std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// The process id in a sibling name `.NAME.KIND-PID-NANOS`, if `file` is one
/// of `out_name`'s siblings.
fn sibling_pid(file: &str, out_name: &str) -> Option<u32> {
    ["tmp", "old", "ranker"].iter().find_map(|kind| {
        let rest = file.strip_prefix(&format!(".{out_name}.{kind}-"))?;
        let (pid, nanos) = rest.split_once('-')?;
        nanos.parse::<u32>().ok()?;
        pid.parse::<u32>().ok()
    })
}

/// Whether process `pid` exists. Where that cannot be asked, assume it does
/// (only age then makes a leftover stale).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        if pid <= 0 {
            return true; // kill(0 or negative) addresses process groups: never ask.
        }
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes `out`'s `.tmp`/`.old`/`.ranker` siblings left by builds that died (their
/// process is gone) or that are older than [`STALE_AFTER`]. A concurrent
/// build's directory belongs to a live process and is left alone. Best
/// effort: a leftover that cannot be removed does not fail the build.
fn remove_stale_siblings(out: &Path) {
    let Ok((parent, name)) = split_out(out) else { return };
    let Ok(entries) = std::fs::read_dir(&parent) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| sibling_pid(f, name)) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old || !process_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Atomically exchanges two paths (Linux `renameat2(RENAME_EXCHANGE)`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both pointers are NUL-terminated strings that outlive the call,
    // which only reads them. The raw syscall (rather than the libc wrapper)
    // works with every Linux C library.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Moves the finished `tmp` to `out`.
///
/// An existing index is replaced in one atomic step on Linux (the two
/// directories are exchanged, then the old one, now at `tmp`, is removed): at
/// every instant `out` holds the old or the new index, whatever happens to
/// the process. Where the exchange is unavailable (another OS, a filesystem
/// without it) the old index is renamed aside first and put back if the
/// second rename fails; a crash between the two renames leaves the old index
/// in a hidden `.NAME.old-…` sibling.
fn publish(tmp: &Path, out: &Path) -> Result<()> {
    let exists = match std::fs::symlink_metadata(out) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(out, e)),
    };
    if exists {
        let is_index = out.join(crate::index::manifest::MANIFEST).is_file();
        let is_empty_dir = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !is_index && !is_empty_dir {
            return Err(Error::InvalidConfig(format!(
                "{} exists and is not a twostage index; refusing to replace it",
                out.display()
            )));
        }
        #[cfg(target_os = "linux")]
        match exchange(tmp, out) {
            Ok(()) => {
                sync_parent(out)?;
                // `tmp` now holds the previous index; a failure to remove it
                // is cleaned up by the next build.
                let _ = std::fs::remove_dir_all(tmp);
                return Ok(());
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)) => {}
            Err(e) => return Err(Error::io(out, e)),
        }
        let old = sibling_path(out, "old")?;
        std::fs::rename(out, &old).map_err(|e| Error::io(out, e))?;
        if let Err(e) = std::fs::rename(tmp, out) {
            let _ = std::fs::rename(&old, out);
            return Err(Error::io(out, e));
        }
        sync_parent(out)?;
        let _ = std::fs::remove_dir_all(&old);
        return Ok(());
    }
    std::fs::rename(tmp, out).map_err(|e| Error::io(out, e))?;
    sync_parent(out)
}

/// fsyncs `out`'s parent so the rename that published `out` is durable.
fn sync_parent(out: &Path) -> Result<()> {
    match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_names_parse_only_for_their_own_target() {
        assert_eq!(sibling_pid(".idx.tmp-123-456", "idx"), Some(123));
        assert_eq!(sibling_pid(".idx.old-7-0", "idx"), Some(7));
        for other in [
            ".idx.tmp-123",
            ".idx.tmp-x-1",
            ".idx2.tmp-1-1",
            ".idx.tmp-1.tmp-2-3",
            "idx",
            ".idx.new-1-1",
        ] {
            assert_eq!(sibling_pid(other, "idx"), None, "{other}");
        }
    }

    #[test]
    fn this_process_is_alive() {
        assert!(process_alive(std::process::id()));
    }

    #[test]
    fn stale_siblings_of_dead_builds_are_removed_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("idx");
        // A process that has exited: its id is (almost certainly) free now.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dead_dir = tmp.path().join(format!(".idx.tmp-{dead}-1"));
        let live_dir = tmp.path().join(format!(".idx.tmp-{}-2", std::process::id()));
        let other_target = tmp.path().join(format!(".other.tmp-{dead}-3"));
        for d in [&dead_dir, &live_dir, &other_target] {
            std::fs::create_dir(d).unwrap();
        }
        remove_stale_siblings(&out);
        assert!(!dead_dir.exists(), "a dead build's directory was kept");
        assert!(live_dir.exists(), "a running build's directory was removed");
        assert!(other_target.exists(), "another target's directory was touched");
    }

    #[test]
    fn publish_replaces_an_index_and_refuses_anything_else() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("idx");
        let make = |marker: &str| {
            let d = temp_sibling(&out, "tmp").unwrap();
            std::fs::write(d.join(crate::index::manifest::MANIFEST), marker).unwrap();
            d
        };
        publish(&make("one"), &out).unwrap();
        publish(&make("two"), &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("manifest.json")).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("idx")]);
        let file = tmp.path().join("file");
        std::fs::write(&file, b"mine").unwrap();
        assert!(publish(&make("three"), &file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    }
}
