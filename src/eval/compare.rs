//! Comparing systems on one prepared split: popularity, ItemKNN, EASE, each
//! retriever alone, fused retrieval, and fused retrieval re-ranked by the
//! placeholder, a trained linear and a trained MLP ranker — all on the same
//! test requests, at cut-off 10.

use std::collections::{BTreeMap, HashMap};
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
use crate::ranking::model::Ranker;
use crate::ranking::train::{self, EpochReport, TrainParams};
use crate::request::{Context, Retriever};

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
    /// The older part of `fit`: retrieval for ranker training lists.
    pub ranker_fit: Events,
    /// Requests (against `ranker_fit`) the ranker learns from.
    pub ranker_targets: Vec<Target>,
    /// Requests (against `fit`) for early stopping.
    pub valid: Vec<Target>,
    /// Requests (against `fit`) that are scored.
    pub test: Vec<Target>,
}

/// One system's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SystemResult {
    /// Mean metrics over the test requests.
    pub metrics: Metrics,
    /// Share of relevant items among the candidates (retrieval systems).
    pub candidate_recall: Option<f64>,
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
    /// Ranker training figures and timings.
    pub details: BTreeMap<String, f64>,
}

impl Report {
    /// `{"dataset":..,"systems":{"popularity":{"ndcg@10":..,"hr@10":..,"recall@10":..,"mrr@10":..},...}, ...}`
    pub fn to_json(&self) -> Value {
        let systems = Self::systems_json(&self.systems);
        let cold = json!({"requests": self.cold_requests, "systems": Self::systems_json(&self.cold)});
        json!({"dataset": self.dataset, "requests": self.requests, "systems": systems, "cold": cold, "details": self.details})
    }

    fn systems_json(systems: &[(String, SystemResult)]) -> serde_json::Map<String, Value> {
        systems
            .iter()
            .map(|(name, r)| {
                let mut v =
                    json!({"ndcg@10": r.metrics.ndcg, "hr@10": r.metrics.hr, "recall@10": r.metrics.recall, "mrr@10": r.metrics.mrr});
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
        s
    }

    fn systems_table(systems: &[(String, SystemResult)]) -> String {
        let mut s = format!(
            "{:<18} {:>8} {:>8} {:>9} {:>8} {:>10}\n",
            "system", "NDCG", "HR", "Recall", "MRR", "cand.rec"
        );
        for (name, r) in systems {
            let m = r.metrics;
            let c = r.candidate_recall.map(|c| format!("{c:.4}")).unwrap_or_else(|| "-".into());
            s += &format!(
                "{name:<18} {:>8.4} {:>8.4} {:>9.4} {:>8.4} {:>10}\n",
                m.ndcg, m.hr, m.recall, m.mrr, c
            );
        }
        s
    }
}

/// Builds both indexes in `work`, trains the linear and MLP rankers, and
/// scores every system on `p.test`. `progress` hears about each phase.
pub fn compare(p: &Prepared, builder: &IndexBuilder, work: &Path, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let mut details = BTreeMap::new();
    let t = Instant::now();
    let builder = builder.clone().without_ranker_training();
    builder.build(&p.catalog, &p.ranker_fit, work.join("ranker-fit"))?;
    builder.build(&p.catalog, &p.fit, work.join("fit"))?;
    details.insert("index_build_secs".into(), t.elapsed().as_secs_f64());
    progress("indexes built");
    let engine_a = Engine::open_with_encoder(work.join("ranker-fit"), builder.content_encoder())?;
    let engine = Engine::open_with_encoder(work.join("fit"), builder.content_encoder())?;

    let t = Instant::now();
    let (train_lists, train_recall) = crate::offline::training::lists(&engine_a, &p.ranker_targets, &|_| {})?;
    let (valid_lists, valid_recall) = crate::offline::training::lists(&engine, &p.valid, &|_| {})?;
    let train_lists: Vec<_> = train_lists.into_iter().map(|(l, _)| l).collect();
    let valid_lists: Vec<_> = valid_lists.into_iter().map(|(l, _)| l).collect();
    details.insert("train_candidate_recall".into(), train_recall);
    details.insert("valid_candidate_recall".into(), valid_recall);
    details.insert("list_assembly_secs".into(), t.elapsed().as_secs_f64());
    progress("training lists assembled");

    let mut rankers: Vec<(&str, Ranker)> = vec![("ranker_fixed", Ranker::fixed_default()?)];
    for (name, params) in [("ranker_linear", TrainParams::linear()), ("ranker_mlp", TrainParams::default())] {
        let t = Instant::now();
        let mut epochs = 0;
        let ranker = train::train(&train_lists, &valid_lists, &params, &mut |r: &EpochReport| {
            epochs = r.epoch;
        })?;
        details.insert(format!("{name}_train_secs"), t.elapsed().as_secs_f64());
        details.insert(format!("{name}_epochs"), epochs as f64);
        details.insert(
            format!("{name}_valid_ndcg_candidates"),
            ranker.info().validation.get("ndcg@10").copied().unwrap_or(0.0),
        );
        progress(&format!("{name} trained in {epochs} epochs"));
        rankers.push((name, ranker));
    }

    let knn = ItemKnn::fit(p.catalog.len(), &p.fit);
    let t = Instant::now();
    let ease = Ease::fit(p.catalog.len(), &p.fit, ease::LAMBDA);
    details.insert("ease_fit_secs".into(), t.elapsed().as_secs_f64());
    if ease.is_none() {
        progress(&format!(
            "EASE skipped: {} items is above its dense limit of {}",
            p.catalog.len(),
            ease::MAX_ITEMS
        ));
    }
    let mut single = vec![
        ("ann", Retriever::Ann),
        ("lexical", Retriever::Lexical),
        ("covisit", Retriever::Covisit),
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
    let uses_text = p
        .test
        .iter()
        .any(|t| matches!(t.request.context, Context::Search { .. } | Context::PersonalizedSearch { .. }));
    let t = Instant::now();
    type Row = (HashMap<String, Metrics>, f64, bool);
    let rows: Vec<Row> = p
        .test
        .par_iter()
        .map(|target| -> Result<Row> {
            let mut m: HashMap<String, Metrics> = HashMap::new();
            let ids = |items: &[u32]| -> Vec<String> {
                items
                    .iter()
                    .filter_map(|&i| p.catalog.items().get(i as usize).map(|it| it.id.clone()))
                    .collect()
            };
            for &(name, r) in &single {
                if r == Retriever::Lexical && !uses_text {
                    continue;
                }
                let a = engine.retrieve(&super::only(&target.request, r))?;
                let order: Vec<String> = a.ids().map(str::to_string).collect();
                m.insert(name.to_string(), Metrics::at_k(&order, &target.relevant, K));
            }
            if let Context::History { items } = &target.request.context {
                let history: Vec<u32> = items.iter().filter_map(|id| p.catalog.index_of(id)).collect();
                // A set: heavy users exclude thousands of older items, checked for every scored item.
                let excluded: std::collections::HashSet<u32> =
                    target.request.exclude.iter().filter_map(|id| p.catalog.index_of(id)).collect();
                let recs = knn.recommend(&history, K, |j| excluded.contains(&j));
                m.insert("itemknn".into(), Metrics::at_k(&ids(&recs), &target.relevant, K));
                if let Some(ease) = &ease {
                    let recs = ease.recommend(&history, K, |j| excluded.contains(&j));
                    m.insert("ease".into(), Metrics::at_k(&ids(&recs), &target.relevant, K));
                }
            }
            let a = engine.retrieve(&target.request)?;
            let fused_ids: Vec<String> = a.ids().map(str::to_string).collect();
            let found = fused_ids.iter().filter(|id| target.relevant.contains_key(*id)).count();
            let recall = found as f64 / target.relevant.len().max(1) as f64;
            m.insert("retrieval".into(), Metrics::at_k(&fused_ids, &target.relevant, K));
            for (name, ranker) in &rankers {
                let scores = ranker.score(a.matrix(), a.len())?;
                let mut order: Vec<usize> = (0..fused_ids.len()).collect();
                order.sort_by(|&x, &y| scores[y].total_cmp(&scores[x]).then(x.cmp(&y)));
                let ranked: Vec<String> = order.iter().map(|&i| fused_ids[i].clone()).collect();
                m.insert(name.to_string(), Metrics::at_k(&ranked, &target.relevant, K));
            }
            Ok((m, recall, is_cold(target)))
        })
        .collect::<Result<_>>()?;
    details.insert("scoring_secs".into(), t.elapsed().as_secs_f64());

    let order = [
        "popularity",
        "itemknn",
        "ease",
        "ann",
        "lexical",
        "covisit",
        "content",
        "retrieval",
        "ranker_fixed",
        "ranker_linear",
        "ranker_mlp",
    ];
    let summarize = |rows: &[&Row]| {
        let mut systems = Vec::new();
        for name in order {
            let mut mean = MetricsMean::default();
            for (m, _, _) in rows {
                if let Some(x) = m.get(name) {
                    mean.add(*x);
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
                },
            ));
        }
        systems
    };
    let all: Vec<&Row> = rows.iter().collect();
    let cold: Vec<&Row> = rows.iter().filter(|r| r.2).collect();
    Ok(Report {
        dataset: p.name.clone(),
        systems: summarize(&all),
        requests: rows.len(),
        cold: summarize(&cold),
        cold_requests: cold.len(),
        details,
    })
}
