//! The boundary between the two stages: [`Candidates`], the fused
//! candidates of one request with their provenance and feature rows, and
//! [`Scorer`], the one-method trait a ranking model implements to score
//! them. Serving, training and evaluation all pass through this type.

use crate::ranking::features::{FEATURES, NUM_FEATURES};
use crate::request::{Provenance, Retriever, Timings};
use crate::retrieval::fusion::Candidate;

/// The output of the retrieval stage for one request, and the input of the
/// ranking stage: candidates in fusion order (best reciprocal-rank fusion
/// first), each with the retrievers that found it and one row of
/// [`feature_names`](Candidates::feature_names) values.
///
/// From [`Engine::retrieve`](crate::Engine::retrieve); ranked by
/// [`Engine::rank`](crate::Engine::rank) with the index's model or with a
/// [`Scorer`] of the caller's.
///
/// ```no_run
/// # fn main() -> twostage::Result<()> {
/// use twostage::{Context, Engine, Request};
/// let engine = Engine::open("index")?;
/// let req = Request::new(Context::search("melancholic jazz"));
/// let candidates = engine.retrieve(&req)?;
/// for i in 0..candidates.len().min(3) {
///     println!("{:?} found by {:?}, BM25 reciprocal rank {:?}", candidates.id(i), candidates.sources(i), candidates.feature(i, "lexical_rank_rr"));
/// }
/// let recs = engine.rank(&req, candidates, None)?; // the index's own model: what recommend returns
/// # let _ = recs; Ok(()) }
/// ```
pub struct Candidates {
    pub(crate) list: Vec<Candidate>,
    /// Row-major `[candidates × NUM_FEATURES]`.
    pub(crate) matrix: Vec<f32>,
    pub(crate) timings: Timings,
    /// Passed on to `Recommendations::warnings`.
    pub(crate) warnings: Vec<String>,
    /// When the request that retrieved them started (for the total).
    pub(crate) started: std::time::Instant,
    /// The catalog the request saw: the built store under its live records.
    pub(crate) items: crate::overlay::Items,
    /// The request's latency budget: its plan and every cut (all made by
    /// the end of retrieval); `met` is set once the request is ranked.
    pub(crate) budget: Option<crate::request::BudgetReport>,
}

impl Candidates {
    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when retrieval found nothing that passed the filters.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The feature names, in column order (the same for every request and
    /// recorded with every trained model).
    pub fn feature_names() -> &'static [&'static str] {
        &FEATURES
    }

    /// The external id of candidate `i`.
    pub fn id(&self, i: usize) -> Option<&str> {
        self.item(i).map(|it| it.id.as_str())
    }

    /// The catalog record of candidate `i` (without its vector).
    pub fn item(&self, i: usize) -> Option<&crate::catalog::Item> {
        let c = self.list.get(i)?;
        self.items.record(c.item)
    }

    /// The external ids of all candidates, in fusion order (position `i` is
    /// candidate `i`).
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.list.iter().map(|c| self.items.record(c.item).map_or("", |it| it.id.as_str()))
    }

    /// The retrievers that found candidate `i`, with its rank and score in each.
    pub fn sources(&self, i: usize) -> Vec<Provenance> {
        let Some(c) = self.list.get(i) else {
            return Vec::new();
        };
        Retriever::ALL
            .iter()
            .filter_map(|&r| {
                c.hits[r.index()].map(|h| Provenance {
                    retriever: r,
                    rank: h.rank,
                    score: h.score,
                })
            })
            .collect()
    }

    /// The feature row of candidate `i`.
    pub fn features(&self, i: usize) -> Option<&[f32]> {
        if i >= self.list.len() {
            return None;
        }
        self.matrix.get(i * NUM_FEATURES..(i + 1) * NUM_FEATURES)
    }

    /// One feature of candidate `i`, by name.
    pub fn feature(&self, i: usize, name: &str) -> Option<f32> {
        let column = FEATURES.iter().position(|&f| f == name)?;
        self.features(i).and_then(|row| row.get(column)).copied()
    }

    /// Every feature row, row-major (`len() × feature_names().len()` values):
    /// the shape a batched model scores in one forward pass.
    pub fn matrix(&self) -> &[f32] {
        &self.matrix
    }

    /// Time spent in each retrieval stage (ranking not yet run).
    pub fn timings(&self) -> &Timings {
        &self.timings
    }
}

impl std::fmt::Debug for Candidates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidates").field("len", &self.list.len()).finish_non_exhaustive()
    }
}

/// A ranking model of the caller's, for [`Engine::rank`](crate::Engine::rank):
/// one score per candidate, larger is better. The engine sorts by it (ties
/// in fusion order) and cuts to `k`.
///
/// ```
/// use twostage::{Candidates, Scorer};
/// /// Ranks by reciprocal-rank fusion alone.
/// struct FusionOrder;
/// impl Scorer for FusionOrder {
///     fn score(&self, candidates: &Candidates) -> Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
///         Ok((0..candidates.len()).map(|i| candidates.feature(i, "rrf").unwrap_or(0.0)).collect())
///     }
/// }
/// ```
pub trait Scorer {
    /// Scores every candidate: exactly `candidates.len()` finite values.
    /// An error (or a wrong count) fails the request as an internal error.
    fn score(&self, candidates: &Candidates) -> Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>>;
}
