//! Comparing systems on one prepared split: popularity, ItemKNN, EASE, each
//! retriever alone, fused retrieval, fused retrieval re-ranked by the
//! placeholder, a trained linear and a trained MLP ranker, and the served
//! two-stage result (what the serving plan chosen on the validation requests
//! serves) — all on the same test requests, at cut-off 10, with catalog
//! coverage and the share of the most popular items beside the accuracy.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::{json, Value};

use crate::catalog::Catalog;
use crate::engine::Engine;
use crate::error::Result;
use crate::eval::ease::{self, Ease};
use crate::eval::itemknn::ItemKnn;
use crate::events::Events;
use crate::metrics::{Metrics, MetricsMean};
use crate::offline::builder::IndexBuilder;
use crate::ranking::dataset::Target;
use crate::ranking::fit;
use crate::ranking::model::Ranker;
use crate::ranking::plan::{self, ContextKind, HeldOut, Served};
use crate::ranking::train::{EpochReport, TrainParams};
use crate::request::{Context, Retriever};
use crate::retrieval::covisit;
use crate::retrieval::linear::{LinearItemItem, LinearParams};

/// Cut-off of every metric.
pub const K: usize = 10;

/// A dataset split ready for comparison.
pub struct Prepared {
    /// Dataset name for the report.
    pub name: String,
    /// Items.
    pub catalog: Catalog,
    /// Interactions the served retrieval is built from (the training period).
    pub fit: Events,
    /// Where the ranker's training lists come from: each fold holds out a
    /// different part of `fit` and asks retrieval built on the rest for it.
    pub ranker_folds: Vec<RankerFold>,
    /// Requests (against `fit`) for early stopping.
    pub valid: Vec<Target>,
    /// Requests (against `fit`) that are scored.
    pub test: Vec<Target>,
    /// What the protocol's filtering kept (name → count: `users`, `items`,
    /// `interactions`), to check a split against a reference's.
    pub counts: BTreeMap<String, usize>,
}

/// Part of the training period held out for ranker training lists.
pub struct RankerFold {
    /// Interactions retrieval is built from for these lists (a part of `fit`).
    pub fit: Events,
    /// Requests (against `fit`) the ranker learns from; their answers are
    /// the part of the training period this fold holds out.
    pub targets: Vec<Target>,
}

/// One system's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SystemResult {
    /// Mean metrics over the test requests.
    pub metrics: Metrics,
    /// Share of relevant items among the candidates (retrieval systems).
    pub candidate_recall: Option<f64>,
    /// Share of the catalog in at least one top-K list (catalog coverage@K).
    pub coverage: f64,
    /// Share of all top-K slots taken by the 1% most played items of the
    /// training period: a gain that is a collapse onto hits shows here.
    pub popular_share: f64,
}

/// Items with fewer plays than this in the training period count as cold.
pub const COLD_PLAYS: usize = 5;

/// A comparison.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// Dataset name.
    pub dataset: String,
    /// System name → figures, in a fixed order.
    pub systems: Vec<(String, SystemResult)>,
    /// Test requests scored.
    pub requests: usize,
    /// The same systems on the cold requests only: those whose every
    /// relevant item has fewer than [`COLD_PLAYS`] plays in the training
    /// period.
    pub cold: Vec<(String, SystemResult)>,
    /// Cold test requests scored.
    pub cold_requests: usize,
    /// The same systems on the validation requests (where the λs, the
    /// rankers' early stopping and the serving plan were chosen: optimistic).
    pub valid: Vec<(String, SystemResult)>,
    /// Validation requests scored.
    pub valid_requests: usize,
    /// Ranker training figures and timings.
    pub details: BTreeMap<String, f64>,
}

impl Report {
    /// `{"dataset":..,"systems":{"popularity":{"ndcg@10":..,"hr@10":..,"recall@10":..,"mrr@10":..,"coverage@10":..,"popular_share@10":..},...},
    /// "cold":{..},"valid":{"requests":..,"systems":{..}},"details":{..}}` (test figures under `systems`).
    pub fn to_json(&self) -> Value {
        let systems = Self::systems_json(&self.systems);
        let cold = json!({"requests": self.cold_requests, "systems": Self::systems_json(&self.cold)});
        let valid = json!({"requests": self.valid_requests, "systems": Self::systems_json(&self.valid)});
        json!({"dataset": self.dataset, "requests": self.requests, "systems": systems, "cold": cold, "valid": valid, "details": self.details})
    }

    fn systems_json(systems: &[(String, SystemResult)]) -> serde_json::Map<String, Value> {
        systems
            .iter()
            .map(|(name, r)| {
                let mut v = json!({"ndcg@10": r.metrics.ndcg, "hr@10": r.metrics.hr, "recall@10": r.metrics.recall, "mrr@10": r.metrics.mrr,
                    "coverage@10": r.coverage, "popular_share@10": r.popular_share});
                if let Some(c) = r.candidate_recall {
                    v["candidate_recall"] = json!(c);
                }
                (name.clone(), v)
            })
            .collect()
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut s = format!("dataset {} — {} test requests, metrics @{K}\n", self.dataset, self.requests);
        s += &Self::systems_table(&self.systems);
        s += &format!(
            "\ncold requests (every relevant item has < {COLD_PLAYS} plays in training): {}\n",
            self.cold_requests
        );
        s += &Self::systems_table(&self.cold);
        s += &format!(
            "\nvalidation requests (where λ, early stopping and the plan were chosen): {}\n",
            self.valid_requests
        );
        s += &Self::systems_table(&self.valid);
        s
    }

    fn systems_table(systems: &[(String, SystemResult)]) -> String {
        let mut s = format!(
            "{:<18} {:>8} {:>8} {:>9} {:>8} {:>10} {:>9} {:>8}\n",
            "system", "NDCG", "HR", "Recall", "MRR", "cand.rec", "coverage", "top1%"
        );
        for (name, r) in systems {
            let m = r.metrics;
            let c = r.candidate_recall.map(|c| format!("{c:.4}")).unwrap_or_else(|| "-".into());
            s += &format!(
                "{name:<18} {:>8.4} {:>8.4} {:>9.4} {:>8.4} {:>10} {:>9.4} {:>8.4}\n",
                m.ndcg, m.hr, m.recall, m.mrr, c, r.coverage, r.popular_share
            );
        }
        s
    }
}

/// λ values tried for the linear retriever and for the EASE peer, each
/// choosing its own on the validation requests.
pub const LAMBDAS: [f32; 6] = [50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0];

/// A target's context as internal ids with their recency weights, and the
/// set it must not be recommended (the context and the request's exclusions).
fn history_of(p: &Prepared, target: &Target) -> (Vec<(u32, f32)>, HashSet<u32>) {
    let Context::History { items } = &target.request.context else {
        return (Vec::new(), HashSet::new());
    };
    let ids: Vec<u32> = items.iter().filter_map(|id| p.catalog.index_of(id)).collect();
    let decay = target.request.history_decay;
    let n = ids.len();
    let weighted = ids
        .iter()
        .enumerate()
        .map(|(pos, &i)| (i, decay.powi((n - 1 - pos) as i32)))
        .collect();
    let mut excluded: HashSet<u32> = target.request.exclude.iter().filter_map(|id| p.catalog.index_of(id)).collect();
    excluded.extend(ids);
    (weighted, excluded)
}

fn ids_of(p: &Prepared, items: &[u32]) -> Vec<String> {
    items
        .iter()
        .filter_map(|&i| p.catalog.items().get(i as usize).map(|it| it.id.clone()))
        .collect()
}

/// Mean NDCG@10 of `recommend` over `targets`.
fn mean_ndcg(p: &Prepared, targets: &[Target], recommend: impl Fn(&[(u32, f32)], &HashSet<u32>) -> Vec<u32> + Sync) -> f64 {
    let sum: f64 = targets
        .par_iter()
        .map(|t| {
            let (history, excluded) = history_of(p, t);
            Metrics::at_k(&ids_of(p, &recommend(&history, &excluded)), &t.relevant, K).ndcg
        })
        .sum();
    sum / targets.len().max(1) as f64
}

/// α values tried for the linear retriever, after its λ.
pub const ALPHAS: [f32; 5] = [0.0, 0.1, 0.25, 0.5, 1.0];

/// The λ of [`LAMBDAS`] (with α = 0), then the α of [`ALPHAS`] (with that
/// λ), whose linear item-item model does best on `p.valid`.
fn linear_regularisation(p: &Prepared, params: &LinearParams) -> (f32, f32) {
    let score = |params: &LinearParams| {
        let (model, _) = LinearItemItem::fit(p.catalog.len(), &p.fit, params);
        mean_ndcg(p, &p.valid, |h, excluded| {
            covisit::top_n(&model.aggregate(h), K, |i| !excluded.contains(&i))
                .into_iter()
                .map(|x| x.0)
                .collect()
        })
    };
    let mut best = (f64::MIN, params.lambda);
    for lambda in LAMBDAS {
        let ndcg = score(&params.clone().lambda(lambda).alpha(0.0));
        if ndcg > best.0 {
            best = (ndcg, lambda);
        }
    }
    let lambda = best.1;
    let mut best = (f64::MIN, 0.0);
    for alpha in ALPHAS {
        let ndcg = score(&params.clone().lambda(lambda).alpha(alpha));
        if ndcg > best.0 {
            best = (ndcg, alpha);
        }
    }
    (lambda, best.1)
}

/// The EASE peer with the λ of [`LAMBDAS`] that does best on `p.valid`;
/// `None` above its dense limit.
fn ease_peer(p: &Prepared) -> Option<(Ease, f32)> {
    let mut best: Option<(f64, Ease, f32)> = None;
    for lambda in LAMBDAS {
        let ease = Ease::fit(p.catalog.len(), &p.fit, f64::from(lambda))?;
        let ndcg = mean_ndcg(p, &p.valid, |h, excluded| {
            let history: Vec<u32> = h.iter().map(|x| x.0).collect();
            ease.recommend(&history, K, |j| excluded.contains(&j))
        });
        if best.as_ref().is_none_or(|b| ndcg > b.0) {
            best = Some((ndcg, ease, lambda));
        }
    }
    best.map(|(_, e, l)| (e, l))
}

/// One scored request: per system, its metrics and its top-K items.
type Row = (HashMap<String, (Metrics, Vec<u32>)>, f64, bool);

/// Builds the indexes in `work`, trains the linear and MLP rankers, chooses
/// the serving plan on the validation requests, and scores every system on
/// `p.test` (and on `p.valid`). `progress` hears about each phase.
pub fn compare(p: &Prepared, builder: &IndexBuilder, work: &Path, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let mut details: BTreeMap<String, f64> = p.counts.iter().map(|(k, &v)| (format!("split_{k}"), v as f64)).collect();
    let t = Instant::now();
    let linear_params = builder.build_params().linear.clone();
    // Both rankers train with the builder's seed (the peers are fixed models).
    let seed = builder.ranker_params().map_or(TrainParams::default().seed, |p| p.seed);
    let mlp_params = TrainParams::default().seed(seed);
    let (lambda, alpha) = linear_regularisation(p, &linear_params);
    details.insert("linear_lambda".into(), f64::from(lambda));
    details.insert("linear_alpha".into(), f64::from(alpha));
    details.insert("linear_regularisation_secs".into(), t.elapsed().as_secs_f64());
    progress(&format!("linear item-item λ = {lambda}, α = {alpha} (chosen on validation)"));
    let builder = builder
        .clone()
        .without_ranker_training()
        .linear(linear_params.lambda(lambda).alpha(alpha));
    let t = Instant::now();
    builder.build(&p.catalog, &p.fit, work.join("fit"))?;
    let engine = Engine::open_with_encoder(work.join("fit"), builder.content_encoder())?;
    let mut train_lists = Vec::new();
    let (mut found, mut total) = (0.0, 0usize);
    for (f, fold) in p.ranker_folds.iter().enumerate() {
        let dir = work.join(format!("ranker-fold-{f}"));
        builder.build(&p.catalog, &fold.fit, &dir)?;
        let fold_engine = Engine::open_with_encoder(&dir, builder.content_encoder())?;
        let (lists, recall) = crate::offline::training::lists(&fold_engine, &fold.targets, &|_| {})?;
        found += recall * fold.targets.len() as f64;
        total += fold.targets.len();
        train_lists.extend(lists.into_iter().map(|(l, _)| l));
    }
    details.insert("index_build_and_lists_secs".into(), t.elapsed().as_secs_f64());
    details.insert("ranker_folds".into(), p.ranker_folds.len() as f64);
    details.insert("train_lists".into(), train_lists.len() as f64);
    details.insert("train_candidate_recall".into(), found / total.max(1) as f64);
    let (valid_lists, valid_recall) = crate::offline::training::lists(&engine, &p.valid, &|_| {})?;
    details.insert("valid_candidate_recall".into(), valid_recall);
    let (valid_lists, valid_meta): (Vec<_>, Vec<_>) = valid_lists.into_iter().unzip();
    progress("training lists assembled");

    // As in a build: early stopping on a tenth of the training lists, so the
    // validation lists judge the ranker against fusion on equal terms.
    let (train_lists, stop_lists) = crate::offline::training::early_stopping_split(train_lists);
    let mut rankers: Vec<(&str, Ranker)> = vec![("ranker_fixed", Ranker::fixed_default()?)];
    let linear_ranker = TrainParams::linear().seed(seed);
    for (name, params) in [("ranker_linear", linear_ranker), ("ranker_mlp", mlp_params)] {
        let t = Instant::now();
        let mut epochs = 0;
        let ranker = fit::train(&train_lists, &stop_lists, &params, &mut |r: &EpochReport| {
            epochs = r.epoch;
        })?;
        details.insert(format!("{name}_train_secs"), t.elapsed().as_secs_f64());
        details.insert(format!("{name}_epochs"), epochs as f64);
        details.insert(format!("{name}_valid_ndcg_candidates"), fit::list_ndcg(&ranker, &valid_lists)?);
        progress(&format!("{name} trained in {epochs} epochs"));
        rankers.push((name, ranker));
    }
    // The served system: the plan a build would choose, on the validation
    // lists, between each retriever, their (weighted) fusion and the MLP.
    let mlp = &rankers[rankers.len() - 1].1;
    let held_out = valid_lists
        .iter()
        .zip(valid_meta)
        .map(|(l, (kind, ranks))| {
            Ok(HeldOut {
                kind,
                generated: false,
                ranks,
                ranker: mlp.score(&l.features, l.grades.len())?,
                grades: l.grades.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Every list here is logged, so what training saw does not matter.
    let serving = plan::choose(&held_out, 0);
    if let Some(h) = serving.contexts.get(&ContextKind::History) {
        details.insert("two_stage_serves_ranker".into(), f64::from(u8::from(h.served == Served::Ranker)));
        for (name, ndcg) in &h.validation {
            details.insert(format!("plan_valid_ndcg_candidates {name}"), *ndcg);
        }
    }

    let knn = ItemKnn::fit(p.catalog.len(), &p.fit);
    let t = Instant::now();
    let ease = ease_peer(p);
    details.insert("ease_fit_secs".into(), t.elapsed().as_secs_f64());
    match &ease {
        Some((_, l)) => {
            details.insert("ease_lambda".into(), f64::from(*l));
        }
        None => progress(&format!(
            "EASE skipped: {} items is above its dense limit of {}",
            p.catalog.len(),
            ease::MAX_ITEMS
        )),
    }
    let mut single = vec![
        ("ann", Retriever::Ann),
        ("lexical", Retriever::Lexical),
        ("covisit", Retriever::Covisit),
        ("linear", Retriever::Linear),
        ("popularity", Retriever::Popular),
    ];
    if engine.has_content_space() {
        single.push(("content", Retriever::Content));
    }
    let mut plays = vec![0usize; p.catalog.len()];
    for e in p.fit.events() {
        if e.kind == crate::events::EventKind::Play {
            if let Some(n) = plays.get_mut(e.item as usize) {
                *n += 1;
            }
        }
    }
    let is_cold = |target: &Target| {
        target.relevant.keys().all(|id| {
            p.catalog
                .index_of(id)
                .is_some_and(|i| plays.get(i as usize).is_some_and(|&n| n < COLD_PLAYS))
        })
    };
    let uses_text = p.test.iter().any(|t| t.request.context.text().is_some());
    let uses_negatives = p.test.iter().any(|t| !t.request.negatives.is_empty());
    let score_one = |target: &Target| -> Result<Row> {
        let mut m: HashMap<String, (Metrics, Vec<u32>)> = HashMap::new();
        let mut put = |name: &str, items: Vec<u32>| {
            let metrics = Metrics::at_k(&ids_of(p, &items), &target.relevant, K);
            m.insert(name.to_string(), (metrics, items));
        };
        let top = |c: &crate::ranking::Candidates, order: &[usize]| -> Vec<u32> {
            order.iter().take(K).filter_map(|&i| c.list.get(i).map(|x| x.item)).collect()
        };
        for &(name, r) in &single {
            if r == Retriever::Lexical && !uses_text {
                continue;
            }
            let a = engine.retrieve(&super::only(&target.request, r))?;
            let order: Vec<usize> = (0..a.len()).collect();
            put(name, top(&a, &order));
        }
        if matches!(target.request.context, Context::History { .. }) {
            let (history, excluded) = history_of(p, target);
            let history: Vec<u32> = history.iter().map(|x| x.0).collect();
            put("itemknn", knn.recommend(&history, K, |j| excluded.contains(&j)));
            if let Some((ease, _)) = &ease {
                put("ease", ease.recommend(&history, K, |j| excluded.contains(&j)));
            }
        }
        let a = engine.retrieve(&target.request)?;
        let found = a.ids().filter(|id| target.relevant.contains_key(*id)).count();
        let recall = found as f64 / target.relevant.len().max(1) as f64;
        let fusion_order: Vec<usize> = (0..a.len()).collect();
        put("retrieval", top(&a, &fusion_order));
        let by = |c: &crate::ranking::Candidates, scores: &[f32]| {
            let mut order: Vec<usize> = (0..c.len()).collect();
            order.sort_by(|&x, &y| scores[y].total_cmp(&scores[x]).then(x.cmp(&y)));
            order
        };
        for (name, ranker) in &rankers {
            let scores = ranker.score(a.matrix(), a.len())?;
            put(name, top(&a, &by(&a, &scores)));
        }
        let kind = ContextKind::of(&target.request.context);
        let serve = |c: &crate::ranking::Candidates| -> Result<Vec<u32>> {
            let scores = match serving.order(kind) {
                (Served::Ranker, _) => mlp.score(c.matrix(), c.len())?,
                (Served::Fusion, w) => c
                    .list
                    .iter()
                    .map(|x| plan::fusion_score(&x.hits.map(|h| h.map(|h| h.rank)), &w))
                    .collect(),
            };
            Ok(top(c, &by(c, &scores)))
        };
        let served = serve(&a)?;
        // The same request with its negatives (the user's recent skips)
        // only excluded, served the same way: what moving away from them
        // adds, beyond never returning them. Over every request, so the two
        // rows compare (where there are negatives at all).
        if uses_negatives {
            let without = if target.request.negatives.is_empty() {
                served.clone()
            } else {
                let mut plain = target.request.clone();
                plain.exclude.append(&mut plain.negatives);
                serve(&engine.retrieve(&plain)?)?
            };
            put("two_stage_negatives_only_excluded", without);
        }
        put("two_stage", served);
        Ok((m, recall, is_cold(target)))
    };
    let t = Instant::now();
    let rows: Vec<Row> = p.test.par_iter().map(score_one).collect::<Result<_>>()?;
    details.insert("scoring_secs".into(), t.elapsed().as_secs_f64());
    let valid_rows: Vec<Row> = p.valid.par_iter().map(score_one).collect::<Result<_>>()?;

    let mut by_plays: Vec<u32> = (0..p.catalog.len() as u32).collect();
    by_plays.sort_by_key(|&i| (std::cmp::Reverse(plays[i as usize]), i));
    let head: HashSet<u32> = by_plays.iter().take(p.catalog.len().div_ceil(100)).copied().collect();
    let summarize = |rows: &[&Row]| {
        let mut systems = Vec::new();
        for name in ORDER {
            let mut mean = MetricsMean::default();
            let (mut shown, mut slots, mut popular) = (HashSet::new(), 0usize, 0usize);
            for (m, _, _) in rows {
                if let Some((x, items)) = m.get(name) {
                    mean.add(*x);
                    shown.extend(items.iter().copied());
                    slots += items.len();
                    popular += items.iter().filter(|i| head.contains(i)).count();
                }
            }
            if mean.count() == 0 {
                continue;
            }
            let candidate_recall = (name == "retrieval").then(|| rows.iter().map(|r| r.1).sum::<f64>() / rows.len().max(1) as f64);
            systems.push((
                name.to_string(),
                SystemResult {
                    metrics: mean.mean(),
                    candidate_recall,
                    coverage: shown.len() as f64 / p.catalog.len().max(1) as f64,
                    popular_share: popular as f64 / slots.max(1) as f64,
                },
            ));
        }
        systems
    };
    let all: Vec<&Row> = rows.iter().collect();
    let cold: Vec<&Row> = rows.iter().filter(|r| r.2).collect();
    let valid: Vec<&Row> = valid_rows.iter().collect();
    Ok(Report {
        dataset: p.name.clone(),
        systems: summarize(&all),
        requests: rows.len(),
        cold: summarize(&cold),
        cold_requests: cold.len(),
        valid: summarize(&valid),
        valid_requests: valid.len(),
        details,
    })
}

/// Systems in report order.
const ORDER: [&str; 14] = [
    "popularity",
    "itemknn",
    "ease",
    "ann",
    "lexical",
    "covisit",
    "linear",
    "content",
    "retrieval",
    "ranker_fixed",
    "ranker_linear",
    "ranker_mlp",
    "two_stage",
    "two_stage_negatives_only_excluded",
];
