//! [`IndexBuilder`]: catalog + events → an index directory, written to a
//! temporary sibling and renamed into place only when complete.

mod from_artefacts;
mod settings;

pub(crate) use from_artefacts::Log;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::index::content;
use crate::index::embeddings;
use crate::index::manifest::{BuildStats, Manifest, FORMAT, FORMAT_VERSION};
use crate::index::writer::{self, NewIndex};
use crate::index::BuildParams;
use crate::index::Vectors;
use crate::offline::artefacts::LogArtefacts;
use crate::offline::publish::{publish, remove_stale_siblings, temp_sibling};
use crate::progress::{OnProgress, Progress};
use crate::ranking::model::Ranker;
use crate::ranking::plan::ServingPlan;
use crate::ranking::train::{TrainParams, TrainSummary};
use crate::request::Retriever;
use crate::retrieval::ann::{AnnIndex, Metric};
use crate::retrieval::covisit::{self, CoVisitation};
use crate::retrieval::lexical;
use crate::retrieval::linear::LinearItemItem;
use crate::retrieval::popular::Popularity;
use crate::schema::Schema;
use crate::store::{ItemStore, NONE};

/// Why a build asked to train a ranker fails in a build without `train`.
#[cfg(not(feature = "train"))]
const NO_TRAIN_FEATURE: &str = "ranker training needs twostage's feature `train` (on by default); \
     without it, build with IndexBuilder::without_ranker_training (the fixed-weight ranker)";

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
    /// The ranker a compaction would replace: served as it is when the
    /// build trains none, and kept over a newly trained one that scores
    /// lower on the same held-out lists.
    pub(super) incumbent: Option<Arc<Incumbent>>,
}

/// A served ranker and the plan validated with it.
pub(crate) struct Incumbent {
    pub ranker: Ranker,
    pub serving: ServingPlan,
}

impl std::fmt::Debug for Incumbent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incumbent")
            .field("ranker", self.ranker.info())
            .finish_non_exhaustive()
    }
}

impl IndexBuilder {
    /// This builder, for a compaction replacing the served `incumbent`.
    pub(crate) fn replacing(mut self, incumbent: Incumbent) -> IndexBuilder {
        self.incumbent = Some(Arc::new(incumbent));
        self
    }
}

impl Default for IndexBuilder {
    fn default() -> Self {
        IndexBuilder {
            schema: None,
            group_key: None,
            params: BuildParams::default(),
            // Without the feature there is nothing to train with; asking
            // for training then is an error, not a silent placeholder.
            train: cfg!(feature = "train").then(TrainParams::default),
            encoder: None,
            incumbent: None,
        }
    }
}

/// The content space computed once per build and shared by the ranker's
/// training indexes (one per log window) and the final one: neither the
/// vectors nor their graph depend on the log.
pub(super) struct ContentVectors<'a> {
    pub encoder: &'a Encoder,
    /// The items' vectors (row i for item i) in their HNSW graph.
    pub graph: AnnIndex,
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
    /// Text values of the catalog its loader cut ([`LongText::Truncate`](crate::LongText::Truncate)).
    pub truncated_fields: usize,
    /// Which retrievers can find anything in this index, and why one cannot.
    pub retrievers: Vec<RetrieverState>,
    /// The schema the index was built with (inferred unless one was given):
    /// save it as JSON, edit it, and give it back with [`IndexBuilder::schema`].
    pub schema: Schema,
}

/// Whether one retriever is live in a built index.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RetrieverState {
    /// The retriever.
    pub retriever: Retriever,
    /// Whether it can return candidates at all.
    pub live: bool,
    /// Why it is off, or what limits it (e.g. only some items have a vector).
    pub note: Option<String>,
}

/// Refuses a catalog whose vectors the policy cannot use as given.
fn check_vectors(catalog: &Catalog, policy: Vectors) -> Result<()> {
    let with = catalog.items().iter().filter(|i| i.vector.is_some()).count();
    let first_without = || catalog.items().iter().find(|i| i.vector.is_none()).map_or("", |i| i.id.as_str());
    match policy {
        Vectors::Auto if with > 0 && with < catalog.len() => Err(Error::InvalidConfig(format!(
            "{with} of {} catalog items carry a `vector` (the first without one: `{}`): give every item a vector, \
             or none (vectors are then learned from the log), or build with Vectors::CatalogWithFallback \
             (build_index --vectors catalog-with-fallback) to give the others the mean vector of their group and tags",
            catalog.len(),
            first_without()
        ))),
        Vectors::CatalogWithFallback if with == 0 => Err(Error::InvalidConfig(
            "Vectors::CatalogWithFallback, but no catalog item carries a `vector`".into(),
        )),
        _ => Ok(()),
    }
}

/// The state of every retriever, from what the build found.
fn retriever_states(stats: &BuildStats, has_plays: bool, has_content: bool) -> Vec<RetrieverState> {
    Retriever::ALL
        .iter()
        .map(|&retriever| {
            let (live, note) = match retriever {
                Retriever::Ann if stats.vectors == 0 => (
                    false,
                    Some(match stats.vector_source.as_str() {
                        "catalog" => "no item has a vector".to_string(),
                        _ => "no item has a vector: the catalog supplies none and no session has two plays to learn them from".to_string(),
                    }),
                ),
                Retriever::Ann if stats.vectors < stats.items => (
                    true,
                    Some(format!(
                        "{} of {} items have a vector ({}); the others are never ANN candidates",
                        stats.vectors, stats.items, stats.vector_source
                    )),
                ),
                Retriever::Covisit if stats.sessions == 0 => (false, Some("no session has two plays".to_string())),
                Retriever::Popular | Retriever::Linear if !has_plays => (false, Some("the events have no plays".to_string())),
                Retriever::Content if !has_content => (false, Some("built without a sentence encoder (IndexBuilder::encoder)".to_string())),
                _ => (true, None),
            };
            RetrieverState { retriever, live, note }
        })
        .collect()
}

impl IndexBuilder {
    /// A builder that repeats a recorded build (its schema and parameters),
    /// for retraining an index's ranker.
    pub(super) fn with_params(schema: Schema, params: BuildParams) -> IndexBuilder {
        IndexBuilder {
            schema: Some(schema),
            params,
            ..IndexBuilder::default()
        }
    }

    fn check(&self, catalog: &Catalog, log: Log<'_>) -> Result<Schema> {
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
        match p.ann.validate() {
            Ok(()) => {}
            Err(crate::retrieval::ann::AnnError::InvalidInput(why)) => return bad(&format!("ann {why}")),
            Err(e) => return bad(&e.to_string()),
        }
        if !(1..=1000).contains(&p.covisit.window) || p.covisit.top_k > 100_000 {
            return bad("covisit window must be 1..=1000 and top_k ≤ 100000");
        }
        if let Err(why) = p.linear.check() {
            return bad(&why);
        }
        if p.session_gap_secs <= 0 {
            return bad("session gap must be positive");
        }
        match log {
            Log::Events(events) if events.events().iter().any(|e| e.item as usize >= catalog.len()) => {
                return bad("the events were loaded against another catalog (item ids out of range)");
            }
            Log::Events(_) => {}
            Log::Artefacts(a) => a.check_compatible(catalog, p)?,
        }
        check_vectors(catalog, p.vectors)?;
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
    /// (`content embeddings` and `content hnsw` with an encoder, `ranker
    /// training`, `log statistics`, `covisitation`, `linear`, `embeddings`, `hnsw`, `text
    /// index`, `write`, `publish`).
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
        self.build_log(catalog, Log::Events(events), out.as_ref(), on_progress)
    }

    pub(super) fn build_log(
        &self,
        catalog: &Catalog,
        log: Log<'_>,
        out: &Path,
        on_progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<BuildReport> {
        let (tmp, mut report) = self.stage(catalog, log, out, on_progress)?;
        let published = tracing::info_span!("publish").in_scope(|| publish(&tmp, out));
        if let Err(e) = published {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        report.path = out.to_path_buf();
        Ok(report)
    }

    /// Builds the index that [`build`](IndexBuilder::build) would publish at
    /// `out` into a temporary sibling of it, and returns that directory
    /// (the caller publishes or removes it) with the report.
    pub(crate) fn stage(
        &self,
        catalog: &Catalog,
        log: Log<'_>,
        out: &Path,
        on_progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<(PathBuf, BuildReport)> {
        let _span = tracing::info_span!("build", items = catalog.len(), events = log.events(), out = %out.display()).entered();
        let schema = self.check(catalog, log)?;
        // Before any work: encoding the catalog can take minutes.
        #[cfg(feature = "train")]
        let training_log = self.training_log(catalog, log)?;
        let started = Instant::now();
        // Leftovers of builds that were killed (their process is gone) would
        // otherwise pile up next to the index forever.
        remove_stale_siblings(out);
        let mut content_phases = Vec::new();
        let content = match &self.encoder {
            Some(encoder) => {
                let clock = Instant::now();
                let vectors = content::encode_catalog(encoder, catalog, &schema, on_progress)?;
                content_phases.push(("content embeddings", clock.elapsed()));
                let clock = Instant::now();
                let graph = content::build_graph(&vectors, encoder.dim(), &self.params.ann, on_progress)?;
                content_phases.push(("content hnsw", clock.elapsed()));
                Some(ContentVectors { encoder, graph })
            }
            None => None,
        };
        let content = content.as_ref();
        #[cfg(feature = "train")]
        let trained = match training_log {
            Some((params, log)) => self.train_ranker(catalog, log, &schema, content, out, params, &mut |_| {}, on_progress)?,
            None => None,
        };
        #[cfg(not(feature = "train"))]
        let trained: Option<(Ranker, TrainSummary)> = match self.train {
            Some(_) => return Err(Error::InvalidConfig(NO_TRAIN_FEATURE.into())),
            None => None,
        };
        let (ranker, training, serving) = match (trained, &self.incumbent) {
            (Some((r, summary)), _) => {
                let serving = summary.serving.clone();
                (r, Some(summary), serving)
            }
            (None, Some(kept)) => (kept.ranker.clone(), None, kept.serving.clone()),
            (None, None) => (Ranker::fixed_default()?, None, ServingPlan::default()),
        };
        let tmp = temp_sibling(out, "tmp")?;
        let built = match log {
            // Kept for compaction, which rebuilds from it.
            Log::Events(events) => crate::index::build_log::write(&tmp, events),
            Log::Artefacts(_) => Ok(()),
        }
        .and_then(|()| self.build_into(catalog, log, &schema, content, &tmp, started, &ranker, &serving, on_progress))
        .and_then(|(stats, mut phases)| {
            let bytes = crate::index::manifest::list_files(&tmp)?
                .iter()
                .map(|rel| std::fs::metadata(tmp.join(rel)).map(|m| m.len()).unwrap_or(0))
                .sum();
            if let Some(t) = &training {
                phases.insert(0, ("ranker training", Duration::from_secs_f64(t.seconds)));
            }
            phases.splice(0..0, content_phases);
            let has_plays = log.has_plays();
            Ok(BuildReport {
                retrievers: retriever_states(&stats, has_plays, content.is_some()),
                schema: schema.clone(),
                truncated_fields: catalog.truncated_fields(),
                path: tmp.clone(),
                stats,
                bytes,
                phases,
                training,
            })
        });
        match built {
            Ok(report) => Ok((tmp, report)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // As train_ranker: private, distinct inputs.
    pub(super) fn build_into(
        &self,
        catalog: &Catalog,
        log: Log<'_>,
        schema: &Schema,
        content: Option<&ContentVectors<'_>>,
        dir: &Path,
        started: Instant,
        ranker: &Ranker,
        serving: &ServingPlan,
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

        let phase = tracing::info_span!("log statistics").entered();
        let categories = log.query_categories(catalog, &schema.tag_fields);
        let computed;
        let log = match log {
            Log::Events(events) => {
                computed = LogArtefacts::compute(catalog, events, p.session_gap_secs, p.covisit.window, p.linear.partners_needed(n));
                &computed
            }
            Log::Artefacts(a) => a,
        };
        lap("log statistics", &mut phases);
        drop(phase);
        let events = log.summary.events as usize;
        let phase = tracing::info_span!("covisitation").entered();
        let pairs = covisit::pair_weights(&log.pairs);
        let popularity = Popularity::from_counts(&log.counts);
        let covisit = CoVisitation::build(n, &pairs, p.covisit.top_k);
        lap("covisitation", &mut phases);
        on_progress(&Progress::new("covisitation", events, events, "events"));
        drop(phase);
        // Start and end only: the fit is one matrix problem.
        on_progress(&Progress::new("linear item-item", 0, n, "items"));
        let phase = tracing::info_span!("linear").entered();
        let (linear, linear_fit) = LinearItemItem::fit_counts(&log.cooccurrence, &p.linear);
        lap("linear item-item", &mut phases);
        on_progress(&Progress::new("linear item-item", n, n, "items"));
        drop(phase);
        let phase = tracing::info_span!("embeddings").entered();

        // The store without vector rows first: content fallback needs its tags and groups.
        let mut store = ItemStore::build(catalog, schema, popularity, covisit, linear, vec![NONE; n], Vec::new());
        on_progress(&Progress::new("embeddings", 0, n, "items"));
        // `check_vectors` has refused a partial catalog unless a fallback was asked for.
        let (mut vectors, source) = match (catalog.vector_dim(), p.vectors) {
            (Some(_), Vectors::Auto | Vectors::CatalogWithFallback) => {
                (catalog.items().iter().map(|it| it.vector.clone()).collect::<Vec<_>>(), "catalog")
            }
            _ => (embeddings::learn(n, &pairs, &p.embedding), "learned"),
        };
        if p.metric == Metric::Cosine {
            vectors = vectors.into_iter().map(|v| v.and_then(crate::vector::normalized)).collect();
        }
        let before: Vec<bool> = vectors.iter().map(Option::is_some).collect();
        embeddings::fill_from_content(&mut vectors, &store.groups, &store.tags);
        store.cold_filled = (0..n as u32)
            .filter(|&i| !before[i as usize] && vectors[i as usize].is_some())
            .collect();
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

        lexical::build(catalog, schema, &writer::text_dir(dir), &|k| {
            on_progress(&Progress::new("text index", k, n, "documents"))
        })?;
        lap("text index", &mut phases);
        drop(phase);

        let phase = tracing::info_span!("write").entered();

        writer::write_parts(
            dir,
            NewIndex {
                store: &store,
                ann: &ann,
                content: content.map(|c| &c.graph),
                ranker,
                categories: &categories,
            },
        )?;
        // After the parts are written, so build_ms covers writing them.
        let stats = BuildStats {
            items: n,
            events,
            sessions: log.summary.sessions as usize,
            vectors: store.row_item.len(),
            dim,
            vector_source: source.to_string(),
            linear_fit: linear_fit.name().to_string(),
            linear_weights: store.linear.nnz(),
            query_category_searches: categories.searches(),
            build_ms: started.elapsed().as_millis() as u64,
        };
        let manifest = Manifest {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            created_by: format!("twostage {}", env!("CARGO_PKG_VERSION")),
            schema: schema.clone(),
            build: p.clone(),
            stats: stats.clone(),
            ranker: ranker.info().clone(),
            encoder: content.map(|c| c.encoder.info().clone()),
            serving: serving.clone(),
            files: Vec::new(),
            log: None,
            manifest_crc32: 0,
        };
        writer::seal(dir, manifest)?;
        lap("write", &mut phases);
        drop(phase);
        Ok((stats, phases))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A serving-only build (no feature `train`) builds with the fixed-weight
    /// ranker by default and refuses, writing nothing, a build asked to train.
    #[test]
    #[cfg(not(feature = "train"))]
    fn without_the_train_feature_a_build_asked_to_train_is_refused() {
        use crate::catalog::Item;
        let catalog = Catalog::new((0..4).map(|i| Item::new(format!("i{i}"), format!("item {i}"))).collect()).unwrap();
        let events = Events::from_events(Vec::new(), Vec::new(), &catalog).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("index");
        let report = IndexBuilder::new().build(&catalog, &events, &out).unwrap();
        assert!(report.training.is_none());
        let refused = dir.path().join("refused");
        let e = IndexBuilder::new()
            .ranker(TrainParams::default())
            .build(&catalog, &events, &refused)
            .unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(ref m) if m.contains("feature `train`")), "{e}");
        assert!(!refused.exists());
    }

    /// The default build trains when it can: the feature is on.
    #[test]
    #[cfg(feature = "train")]
    fn with_the_train_feature_the_default_build_trains_a_ranker() {
        assert!(IndexBuilder::new().train.is_some());
    }
}
