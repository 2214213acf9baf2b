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

use super::peers::PlainBm25;
use crate::catalog::Catalog;
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

/// An item with the items relevant as "more like this" (e.g. the pages a
/// manual page's SEE ALSO names): `{"id":"ls.1","relevant":{"dir.1":1}}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarItems {
    /// The context item.
    pub id: String,
    /// Relevant item id → grade (≥ 1).
    pub relevant: HashMap<String, u32>,
}

/// Reads a more-like-this file (JSON Lines of [`SimilarItems`]); a
/// malformed line is an error naming it.
pub fn load_similar(path: impl AsRef<Path>) -> Result<Vec<SimilarItems>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |reason: String| Error::InvalidData {
            path: path.to_path_buf(),
            line: Some(n + 1),
            field: "line".into(),
            reason,
        };
        let s: SimilarItems = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if s.relevant.is_empty() || s.relevant.values().any(|&g| g == 0) {
            return Err(bad("needs at least one relevant item, every grade ≥ 1".into()));
        }
        out.push(s);
    }
    Ok(out)
}

/// The peers every search figure is shown beside, computed in the same run
/// from the same catalog: plain tantivy BM25 and its fusion with the
/// index's dense retriever.
pub struct Peers<'a> {
    /// Plain tantivy BM25 over the catalog.
    pub bm25: &'a PlainBm25,
    /// The catalog the index was built from (the peer's ids are its indexes).
    pub catalog: &'a Catalog,
}

impl Peers<'_> {
    fn ids(&self, rows: &[u32]) -> Vec<String> {
        rows.iter()
            .filter_map(|&i| self.catalog.items().get(i as usize))
            .map(|it| it.id.clone())
            .collect()
    }
}

/// RRF (k = 60) of two id lists, cut to [`K`].
fn rrf_ids(a: &[String], b: &[String]) -> Vec<String> {
    let mut names: Vec<&str> = a.iter().chain(b).map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let rows = |l: &[String]| -> Vec<u32> {
        l.iter()
            .filter_map(|id| names.binary_search(&id.as_str()).ok())
            .map(|i| i as u32)
            .collect()
    };
    let (ra, rb) = (rows(a), rows(b));
    super::peers::rrf(&[&ra, &rb], 60.0, K)
        .into_iter()
        .filter_map(|i| names.get(i as usize).map(|s| s.to_string()))
        .collect()
}

/// Depth of the lists fused for the peer RRF (as the engine's retrievers).
const PEER_DEPTH: usize = 100;

/// The candidate ids of `req` from retriever `r` alone (every retriever
/// when `None`), in fusion order, at the retrievers' own depths (which
/// `k` does not change).
fn alone_ids(engine: &Engine, req: &Request, r: Option<Retriever>) -> Result<Vec<String>> {
    let candidates = match r {
        Some(r) => engine.retrieve(&super::only(req, r))?,
        None => engine.retrieve(req)?,
    };
    Ok(candidates.ids().map(str::to_string).collect())
}

/// Mean metrics over `rows` (one row of per-system metrics per query).
fn means(names: Vec<String>, rows: &[Vec<Metrics>]) -> Vec<(String, Metrics)> {
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let mut mean = MetricsMean::default();
            rows.iter().for_each(|r| mean.add(r[i]));
            (name, mean.mean())
        })
        .collect()
}

/// Mean metrics of every system over `queries`, in a fixed order: the peers
/// `plain bm25` (tantivy BM25, one field, English stemming, OR) and, with a
/// content space, `plain bm25+dense rrf`; then the index's own `bm25`
/// (lexical alone), `dense` (the content space alone), `fused` (every
/// retriever by the serving plan's fusion, no ranker) and `served` (what
/// [`Engine::recommend`] returns).
pub fn search_quality(engine: &Engine, queries: &[GradedQuery], peers: &Peers<'_>) -> Result<Vec<(String, Metrics)>> {
    // The learned space alone is no system for a search: it is reached
    // through the lexical hits' vectors.
    let mut systems: Vec<(&str, Option<Retriever>)> = vec![("bm25", Some(Retriever::Lexical))];
    let dense = engine.has_content_space();
    if dense {
        systems.push(("dense", Some(Retriever::Content)));
    }
    systems.push(("fused", None));
    let rows: Vec<Vec<Metrics>> = queries
        .par_iter()
        .map(|q| -> Result<Vec<Metrics>> {
            let base = Request::new(Context::search(q.query.clone())).k(K);
            let plain = peers.ids(&peers.bm25.search(&q.query, PEER_DEPTH)?);
            let mut row = vec![Metrics::at_k(&plain, &q.relevant, K)];
            // The content retriever alone, once: its list is both the
            // peer fusion's dense half and the `dense` system.
            let dense_ids = if dense {
                alone_ids(engine, &base, Some(Retriever::Content))?
            } else {
                Vec::new()
            };
            if dense {
                row.push(Metrics::at_k(&rrf_ids(&plain, &dense_ids), &q.relevant, K));
            }
            for &(_, alone) in &systems {
                let order = match alone {
                    Some(Retriever::Content) => dense_ids.clone(),
                    other => alone_ids(engine, &base, other)?,
                };
                row.push(Metrics::at_k(&order, &q.relevant, K));
            }
            let served: Vec<String> = engine.recommend(&base)?.items.into_iter().map(|r| r.id).collect();
            row.push(Metrics::at_k(&served, &q.relevant, K));
            Ok(row)
        })
        .collect::<Result<_>>()?;
    let mut names = vec!["plain bm25".to_string()];
    if dense {
        names.push("plain bm25+dense rrf".into());
    }
    names.extend(systems.iter().map(|s| s.0.to_string()));
    names.push("served".into());
    Ok(means(names, &rows))
}

/// More-like-this quality over `similar` (a `listening` context on each
/// item): the peer `plain bm25 mlt` (Lucene-style MoreLikeThis on plain
/// tantivy BM25), the index's own `bm25 mlt` (its lexical retriever alone)
/// and `ann` (the learned space alone), with a content space `dense` (the
/// content space alone) and `plain mlt+dense rrf`, and `served`. Items not in the index are
/// skipped.
pub fn similar_quality(engine: &Engine, similar: &[SimilarItems], peers: &Peers<'_>) -> Result<Vec<(String, Metrics)>> {
    let dense = engine.has_content_space();
    let rows: Vec<Vec<Metrics>> = similar
        .par_iter()
        .filter_map(|s| peers.catalog.index_of(&s.id).map(|i| (s, i)))
        .map(|(s, i)| -> Result<Vec<Metrics>> {
            let plain = peers.ids(&peers.bm25.more_like_this(i, PEER_DEPTH)?);
            let mut row = vec![Metrics::at_k(&plain, &s.relevant, K)];
            let base = Request::new(Context::listening(s.id.clone())).k(K);
            for r in [Retriever::Lexical, Retriever::Ann] {
                row.push(Metrics::at_k(&alone_ids(engine, &base, Some(r))?, &s.relevant, K));
            }
            if dense {
                let d = alone_ids(engine, &base, Some(Retriever::Content))?;
                row.push(Metrics::at_k(&d, &s.relevant, K));
                row.push(Metrics::at_k(&rrf_ids(&plain, &d), &s.relevant, K));
            }
            let served: Vec<String> = engine.recommend(&base)?.items.into_iter().map(|r| r.id).collect();
            row.push(Metrics::at_k(&served, &s.relevant, K));
            Ok(row)
        })
        .collect::<Result<_>>()?;
    let mut names = vec!["plain bm25 mlt".to_string(), "bm25 mlt".to_string(), "ann".to_string()];
    if dense {
        names.extend(["dense".to_string(), "plain mlt+dense rrf".to_string()]);
    }
    names.push("served".into());
    Ok(means(names, &rows))
}
