//! Search quality on graded queries: each retriever alone, fused retrieval
//! and fused retrieval re-ranked by the index's ranker, on the same queries,
//! at cut-off 10.
//!
//! A graded query file is JSON Lines, one query per line:
//! `{"id":"q-0001","query":"groovy soul","relevant":{"trk-00855":2,"trk-00547":1}}`
//! (grades ≥ 1; ids not in the index count as relevant and unfound).

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::Deserialize;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::eval::compare::K;
use crate::metrics::{Metrics, MetricsMean};
use crate::request::{Context, Request, Retriever};

/// A search query with graded relevant items.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradedQuery {
    /// Query id.
    pub id: String,
    /// The search text.
    pub query: String,
    /// Relevant item id → grade (≥ 1).
    pub relevant: HashMap<String, u32>,
    /// What kind of query this is (free-form; the music generator says
    /// `title`, `descriptor`...).
    #[serde(default)]
    pub kind: Option<String>,
}

/// Reads a graded query file; a malformed line is an error naming it.
pub fn load_graded_queries(path: impl AsRef<Path>) -> Result<Vec<GradedQuery>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |field: &str, reason: String| Error::InvalidData {
            path: path.to_path_buf(),
            line: Some(n + 1),
            field: field.to_string(),
            reason,
        };
        let q: GradedQuery = serde_json::from_str(line).map_err(|e| bad("line", e.to_string()))?;
        if q.query.trim().is_empty() {
            return Err(bad("query", "empty".into()));
        }
        if q.relevant.is_empty() || q.relevant.values().any(|&g| g == 0) {
            return Err(bad("relevant", "needs at least one item, every grade ≥ 1".into()));
        }
        out.push(q);
    }
    Ok(out)
}

/// Mean metrics of every system over `queries`, in a fixed order: `bm25`
/// (lexical alone), `dense` (the content space alone; indexes with an encoder),
/// `fused` (every retriever, reciprocal-rank order, no ranker) and
/// `fused+ranker` (what [`Engine::recommend`] serves).
pub fn search_quality(engine: &Engine, queries: &[GradedQuery]) -> Result<Vec<(String, Metrics)>> {
    // The learned space alone is no system for a search: it is reached
    // through the lexical hits' vectors.
    let mut systems: Vec<(&str, Option<Retriever>)> = vec![("bm25", Some(Retriever::Lexical))];
    if engine.has_content_space() {
        systems.push(("dense", Some(Retriever::Content)));
    }
    systems.push(("fused", None));
    let rows: Vec<Vec<Metrics>> = queries
        .par_iter()
        .map(|q| -> Result<Vec<Metrics>> {
            let base = Request::new(Context::search(q.query.clone())).k(K);
            let mut row = Vec::with_capacity(systems.len() + 1);
            for &(_, alone) in &systems {
                let a = match alone {
                    Some(r) => engine.retrieve(&super::only(&base, r))?,
                    None => engine.retrieve(&base)?,
                };
                let order: Vec<String> = a.ids().map(str::to_string).collect();
                row.push(Metrics::at_k(&order, &q.relevant, K));
            }
            let served: Vec<String> = engine.recommend(&base)?.items.into_iter().map(|r| r.id).collect();
            row.push(Metrics::at_k(&served, &q.relevant, K));
            Ok(row)
        })
        .collect::<Result<_>>()?;
    let names = systems.iter().map(|s| s.0).chain(["fused+ranker"]);
    Ok(names
        .enumerate()
        .map(|(i, name)| {
            let mut mean = MetricsMean::default();
            rows.iter().for_each(|r| mean.add(r[i]));
            (name.to_string(), mean.mean())
        })
        .collect())
}
