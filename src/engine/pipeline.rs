//! The online path of one request: resolve and encode the context, walk the
//! retriever table, fuse, assemble features (the [`Candidates`] at the stage
//! boundary), score, sort and pick k (diversity controls may skip some). Every stage is timed by one helper,
//! [`stage`], which also opens its tracing span.

use std::time::{Duration, Instant};

use super::budget;
use super::retrievers::{Hits, Signals, RETRIEVERS};
use super::trace::StageTrace;
use super::variants::{self, Variant};
use super::Engine;
use crate::error::{Error, Result};
use crate::ranking::features::{self, ContextSignals, FEATURES};
use crate::ranking::{Candidates, ContextKind, Scorer, Served};
use crate::request::{BudgetReport, Recommendation, Recommendations, Request, Retriever, Timings};
use crate::retrieval::fusion::{self, Candidate};

/// Runs `f` inside the span `span()` opens, adding its wall time to `slot`
/// (the span's creation and close included, as a subscriber sees them).
pub(super) fn stage<T>(slot: &mut Duration, span: impl FnOnce() -> tracing::Span, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = span().in_scope(f);
    *slot += t.elapsed();
    out
}

/// Fuses the retrievers' lists (indexed by `Retriever::index`) with the
/// serving plan's weights.
pub(super) fn fuse(lists: &[Hits; Retriever::ALL.len()], depth: usize, weights: &[f32; Retriever::ALL.len()]) -> Vec<Candidate> {
    let views = Retriever::ALL.map(|r| (r, lists[r.index()].as_slice()));
    fusion::fuse(&views, depth, weights)
}

/// The ranking model of one call: the index's own, or the caller's.
pub(super) enum Model<'a> {
    Index,
    Caller(&'a dyn Scorer),
}

impl Engine {
    /// Retrieval, fusion and features; with `keep`, also every intermediate
    /// result, for [`Engine::run_stage`].
    pub(super) fn retrieve_inner(&self, req: &Request, keep: bool) -> Result<(Candidates, Option<Box<StageTrace>>)> {
        let started = Instant::now();
        let mut timings = Timings::default();
        let kind = ContextKind::of(&req.context);
        let class = self.cost_class(req);
        budget::check(req)?;
        let mut plan = req.budget_ms.map(|ms| budget::Plan::new(req, class, ms, started, &self.costs));
        let skips = |plan: &Option<budget::Plan>, r: Retriever| plan.as_ref().is_some_and(|p| p.skip[r.index()]);
        // Encoding the search text counts towards the content retriever's
        // cost: skipping that retriever skips the encoder too.
        let mut content_encode = Duration::ZERO;
        let mut signals = stage(
            &mut timings.encode,
            || tracing::debug_span!("encode"),
            || -> Result<Signals> {
                let ctx = self.resolve(req)?;
                let vector = match &req.context_vector {
                    // The caller's, as given (checked by resolve).
                    Some(v) => self.given_vector(v),
                    None => {
                        let overlay = &ctx.catalog.overlay;
                        let vector = if ctx.items.is_empty() {
                            None
                        } else {
                            self.mean_vector(overlay, &ctx.items)
                        };
                        // A search's vector is moved once it is known (`search_vector`).
                        if ctx.has_text {
                            vector
                        } else {
                            self.away_from_negatives(overlay, vector, &ctx.negatives)
                        }
                    }
                };
                let t = Instant::now();
                let content_vector = if skips(&plan, Retriever::Content) {
                    None
                } else {
                    self.content_context(&ctx, req.context.text())?
                };
                content_encode = t.elapsed();
                Ok(Signals {
                    ctx,
                    vector,
                    content_vector,
                    lexical_max: 0.0,
                    covisit: Default::default(),
                    linear: Default::default(),
                    narrow: plan.as_ref().is_some_and(|p| p.narrow),
                })
            },
        )?;
        self.costs
            .observe(class, budget::Slot::Encode, timings.encode.saturating_sub(content_encode));
        if let Some(w) = plan.as_ref().and_then(|p| p.warning.clone()) {
            signals.ctx.warnings.push(w);
        }

        // Indexed by `Retriever::index`: fusion sums each candidate's
        // reciprocal ranks in that fixed order, whatever order the table runs in.
        let mut lists: [Hits; Retriever::ALL.len()] = Default::default();
        for entry in &RETRIEVERS {
            let r = entry.retriever;
            let mut depth = req.candidates.get(r);
            let have_candidates = lists.iter().any(|l| !l.is_empty());
            let runs = plan.as_mut().is_none_or(|p| depth == 0 || p.runs(r, have_candidates));
            if signals.narrow && matches!(r, Retriever::Ann | Retriever::Content) {
                depth = (depth / 2).max(depth.min(req.k));
            }
            let t = Instant::now();
            let hits = if runs {
                stage(timings.retriever_mut(r), entry.span, || (entry.run)(self, &mut signals, depth))?
            } else {
                Hits::new()
            };
            if runs && depth > 0 && !(signals.narrow && matches!(r, Retriever::Ann | Retriever::Content)) {
                let extra = if r == Retriever::Content { content_encode } else { Duration::ZERO };
                self.costs.observe(class, budget::Slot::Retriever(r), t.elapsed() + extra);
                self.costs.observe_hits(class, r, hits.len());
            }
            if let Some(then) = entry.then {
                let span = || tracing::debug_span!("encode", part = "search vector");
                stage(&mut timings.encode, span, || then(self, &mut signals, &hits));
            }
            if let Some(slot) = lists.get_mut(r.index()) {
                *slot = hits;
            }
        }

        let weights = self.manifest.serving.order(kind).1;
        let mut candidates = stage(
            &mut timings.fusion,
            || tracing::debug_span!("fusion"),
            || fuse(&lists, req.rank_depth, &weights),
        );
        self.costs.observe(class, budget::Slot::Fusion, timings.fusion);
        if let Some(p) = plan.as_mut() {
            // Fusion order is best first: the cut keeps the best-fused.
            candidates.truncate(p.candidates_to_score(candidates.len(), req.k));
        }
        self.add_pinned(req, &mut signals, &mut candidates)?;
        let matrix = stage(
            &mut timings.features,
            || tracing::debug_span!("features"),
            || self.features(&signals, &candidates),
        );
        let warnings = std::mem::take(&mut signals.ctx.warnings);
        let items = signals.ctx.catalog.clone();
        let trace = keep.then(|| {
            Box::new(StageTrace {
                signals,
                counts: req.candidates,
                rank_depth: req.rank_depth,
                weights,
                lists,
                candidates: candidates.clone(),
                matrix: matrix.clone(),
            })
        });
        let candidates = Candidates {
            list: candidates,
            matrix,
            timings,
            warnings,
            started,
            items,
            budget: plan.map(|p| p.report()),
        };
        Ok((candidates, trace))
    }

    /// The feature matrix of `candidates` for the request behind `signals`.
    pub(super) fn features(&self, signals: &Signals, candidates: &[Candidate]) -> Vec<f32> {
        let overlay = &signals.ctx.catalog.overlay;
        let vector_of = |i: u32| self.vector_of(overlay, i);
        let content_of = |i: u32| self.content_of(overlay, i);
        let categories = self.categories.affinity(&signals.ctx.terms);
        let user = self
            .fold_in
            .as_ref()
            .and_then(|f| f.user(signals.ctx.items.iter().filter_map(|&(i, _)| self.vector_of(overlay, i))));
        let context = ContextSignals {
            vector: signals.vector.as_deref(),
            items: &signals.ctx.items,
            covisit: &signals.covisit,
            linear: &signals.linear,
            popularity: &signals.ctx.popularity,
            lexical_max: signals.lexical_max,
            vector_of: &vector_of,
            terms: &signals.ctx.terms,
            content_vector: signals.content_vector.as_deref(),
            content_of: &content_of,
            negatives: &signals.ctx.negatives,
            categories: categories.as_ref(),
            fold_in: user.as_deref(),
        };
        features::assemble(&context, candidates, &signals.ctx.catalog)
    }

    /// Scores `candidates` with `model`, sorts and cuts to `req.k`. The
    /// total runs from the start of the request that retrieved them.
    pub(super) fn rank_inner(&self, req: &Request, candidates: Candidates, model: Model<'_>) -> Result<Recommendations> {
        if !std::sync::Arc::ptr_eq(&candidates.items.store, &self.store) {
            return Err(Error::InvalidRequest(
                "these candidates were retrieved from another index (rank them with the engine that retrieved them)".into(),
            ));
        }
        let (variant, variant_name) = variants::choose(req)?;
        let mut timings = candidates.timings;
        let items = stage(
            &mut timings.rank,
            || tracing::debug_span!("rank"),
            || -> Result<_> {
                let (served, _) = self.manifest.serving.order(ContextKind::of(&req.context));
                let fusion = match variant {
                    // The plan found fusion better than the ranker here: its order is served.
                    Variant::Served => served == Served::Fusion,
                    Variant::Ranker => false,
                    Variant::Fusion => true,
                };
                let scores = match model {
                    Model::Index if fusion => candidates.list.iter().map(|c| c.rrf).collect(),
                    Model::Index => self.ranker.score(&candidates.matrix, candidates.len())?,
                    Model::Caller(scorer) => {
                        let scores = scorer.score(&candidates).map_err(|e| Error::internal_by("rank", e))?;
                        if scores.len() != candidates.len() || scores.iter().any(|s| !s.is_finite()) {
                            return Err(Error::internal(
                                "rank",
                                format!(
                                    "the scorer gave {} scores (all finite?) for {} candidates",
                                    scores.len(),
                                    candidates.len()
                                ),
                            ));
                        }
                        scores
                    }
                };
                Ok(self.top_k(&candidates, &scores, req))
            },
        )?;
        timings.total = candidates.started.elapsed();
        self.costs
            .observe_per_candidate(self.cost_class(req), timings.features + timings.rank, candidates.len());
        Ok(Recommendations {
            items,
            candidates: candidates.len(),
            timings,
            warnings: candidates.warnings,
            budget: candidates.budget.map(|b| BudgetReport {
                met: timings.total <= b.budget,
                ..b
            }),
            variant: variant_name.map(str::to_string),
        })
    }

    fn top_k(&self, candidates: &Candidates, scores: &[f32], req: &Request) -> Vec<Recommendation> {
        let mut order: Vec<usize> = (0..candidates.len().min(scores.len())).collect();
        // Ties fall back to fusion order, which is itself tie-broken by id.
        let terms = self.apply_rules(req, candidates, scores);
        let adjusted: Vec<f32>;
        let scores = match &terms {
            Some(t) => {
                adjusted = t.iter().map(|t| t.total()).collect();
                &adjusted
            }
            None => scores,
        };
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let picked = self.pick(req, candidates, scores, &order);
        let mmr: std::collections::HashMap<usize, (f32, f32)> = picked.iter().filter_map(|p| p.mmr.map(|m| (p.index, m))).collect();
        let picked = self.place_pins(req, candidates, picked.into_iter().map(|p| p.index).collect());
        picked
            .into_iter()
            .filter_map(|i| {
                let item = candidates.item(i)?;
                let fields =
                    (!req.fields.is_empty()).then(|| req.fields.iter().filter_map(|f| item.field(f).map(|v| (f.clone(), v))).collect());
                let features = req.explain.then(|| {
                    let row = candidates.features(i).unwrap_or(&[]);
                    let mut features: Vec<(String, f32)> = FEATURES.iter().zip(row).map(|(n, v)| (n.to_string(), *v)).collect();
                    // The rules' and MMR's terms, beside the ranker's inputs.
                    if let Some(t) = terms.as_ref().and_then(|t| t.get(i)) {
                        features.push(("rule_relevance".into(), t.relevance));
                        features.push(("rule_boost".into(), t.boost));
                        features.push(("rule_recency".into(), t.recency));
                    }
                    if let Some(&(relevance, likeness)) = mmr.get(&i) {
                        features.push(("mmr_relevance".into(), relevance));
                        features.push(("mmr_max_similarity".into(), likeness));
                    }
                    if req.pins.iter().any(|p| p.id == item.id) {
                        features.push(("pinned".into(), 1.0));
                    }
                    features
                });
                Some(Recommendation {
                    id: item.id.clone(),
                    score: scores[i],
                    sources: candidates.sources(i),
                    features,
                    fields,
                })
            })
            .collect()
    }
}
