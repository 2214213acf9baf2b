//! Per-stage benchmark hooks: a traced request keeps every intermediate
//! result, and any one stage can then be re-run alone on the same inputs.
//! Hidden from the documented API.

use super::retrievers::{self, Hits, Signals};
use super::Engine;
use crate::error::{Error, Result};
use crate::ranking::features::NUM_FEATURES;
use crate::request::{CandidateCounts, Recommendations, Request, Retriever};
use crate::retrieval::fusion::Candidate;

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
    /// Linear item-item (EASE) aggregation over the context items and top-n.
    Linear,
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

/// How [`Engine::ann_hits`] searches the learned space.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnnSearch {
    /// As a request is served: the graph walk, or an exact scan (of the
    /// items inside a selective range filter, or of a space small enough).
    /// The hook searches with depth `k`, so "small enough" is at most
    /// `32 · max(k, 64)` rows here, where a request of the default ANN
    /// depth scans up to 6,400.
    Served,
    /// The graph walk, whatever the filter.
    Walk,
    /// Brute force over every row: the ground truth.
    Exact,
}

/// Every intermediate result of one request, from [`Engine::trace`]. Opaque:
/// it only feeds [`Engine::run_stage`] (and says how many candidates there were).
#[doc(hidden)]
pub struct StageTrace {
    pub(super) signals: Signals,
    pub(super) counts: CandidateCounts,
    pub(super) rank_depth: usize,
    pub(super) weights: [f32; crate::request::Retriever::ALL.len()],
    pub(super) lists: [Hits; Retriever::ALL.len()],
    pub(super) candidates: Vec<Candidate>,
    pub(super) matrix: Vec<f32>,
}

impl StageTrace {
    /// Number of fused candidates the request ranked.
    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }
}

impl std::fmt::Debug for StageTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageTrace")
            .field("candidates", &self.candidates.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Runs `req` like [`recommend`](Engine::recommend) and keeps every
    /// intermediate result, so each stage can then be re-run alone on the
    /// same inputs with [`run_stage`](Engine::run_stage) (per-stage benchmarks
    /// and profiling).
    ///
    /// A benchmark and profiling hook, hidden from the documented API.
    #[doc(hidden)]
    pub fn trace(&self, req: &Request) -> Result<(Recommendations, StageTrace)> {
        let (recs, trace) = self.pipeline(req, true)?;
        let trace = trace.ok_or_else(|| Error::internal("trace", "the pipeline kept no trace"))?;
        Ok((recs, *trace))
    }

    /// The ids of the ANN retriever's `k` hits for a traced request (its
    /// context vector and filter), searched as `how` says: filtered-recall
    /// benchmarks compare the served search and the walk with the exact one.
    ///
    /// A benchmark hook, hidden from the documented API.
    #[doc(hidden)]
    pub fn ann_hits(&self, trace: &StageTrace, k: usize, how: AnnSearch) -> Result<Vec<String>> {
        let s = &trace.signals;
        let Some(v) = s.vector.as_deref() else {
            return Ok(Vec::new());
        };
        let store = &self.store;
        let filter = &s.ctx.filter;
        let accept = |row: u32| store.item_of_row(row).is_some_and(|i| filter(i));
        let rows = match how {
            AnnSearch::Served => {
                let mut signals = Signals {
                    ctx: s.ctx.clone(),
                    vector: s.vector.clone(),
                    content_vector: None,
                    lexical_max: s.lexical_max,
                    covisit: Default::default(),
                    linear: Default::default(),
                    narrow: false,
                };
                let hits = retrievers::entry(Retriever::Ann)
                    .ok_or_else(|| Error::internal("trace", "no ANN entry"))
                    .and_then(|e| (e.run)(self, &mut signals, k))?;
                return Ok(hits
                    .iter()
                    .filter_map(|&(i, _)| s.ctx.catalog.record(i).map(|it| it.id.clone()))
                    .collect());
            }
            AnnSearch::Walk => self.ann.search(v, k, k.max(64), accept),
            AnnSearch::Exact => self.ann.search_exact(v, k, accept),
        }
        .map_err(|e| Error::internal_by("ann", e))?;
        Ok(rows
            .iter()
            .filter_map(|&(row, _)| store.item_of_row(row).and_then(|i| s.ctx.catalog.record(i)).map(|it| it.id.clone()))
            .collect())
    }

    /// Re-runs one stage of a traced request on the inputs it saw and
    /// returns the size of its output (hits, candidates, matrix values or
    /// scores), which benchmarks pass to `black_box`.
    ///
    /// A benchmark and profiling hook, hidden from the documented API.
    #[doc(hidden)]
    pub fn run_stage(&self, trace: &StageTrace, stage: Stage) -> Result<usize> {
        let retriever = match stage {
            Stage::Ann => Retriever::Ann,
            Stage::Content => Retriever::Content,
            Stage::Lexical => Retriever::Lexical,
            Stage::Covisit => Retriever::Covisit,
            Stage::Linear => Retriever::Linear,
            Stage::Fusion => return Ok(super::pipeline::fuse(&trace.lists, trace.rank_depth, &trace.weights).len()),
            Stage::Features => return Ok(self.features(&trace.signals, &trace.candidates).len()),
            Stage::Rank { rows } => {
                // Exactly `rows` rows: the traced ones, repeated if there are fewer.
                if trace.matrix.len() < NUM_FEATURES {
                    return Err(Error::InvalidRequest("the traced request had no candidates to rank".into()));
                }
                let matrix: Vec<f32> = trace
                    .matrix
                    .chunks_exact(NUM_FEATURES)
                    .cycle()
                    .take(rows)
                    .flatten()
                    .copied()
                    .collect();
                return Ok(self.ranker.score(&matrix, rows)?.len());
            }
        };
        let entry = retrievers::entry(retriever).ok_or_else(|| Error::internal("trace", "a retriever without a table entry"))?;
        // A retriever may leave by-products in its signals: run it on a copy
        // without them (a few small vectors; its search dominates).
        let s = &trace.signals;
        let mut signals = Signals {
            ctx: s.ctx.clone(),
            vector: s.vector.clone(),
            content_vector: s.content_vector.clone(),
            lexical_max: s.lexical_max,
            covisit: Default::default(),
            linear: Default::default(),
            narrow: false,
        };
        Ok((entry.run)(self, &mut signals, trace.counts.get(retriever))?.len())
    }
}
