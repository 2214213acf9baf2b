//! The retriever table: every first-stage retriever is one entry that the
//! pipeline walks in order. An entry names the retriever (which gives its
//! name, its depth in [`CandidateCounts`](crate::request::CandidateCounts),
//! its slot in [`Timings`](crate::Timings) and its provenance column) and
//! says how to run it on a request's [`Signals`]. Its feature columns are
//! declared beside the others in `ranking::features`.
//!
//! Adding a retriever: a variant of [`Retriever`], a function here, one
//! entry in [`RETRIEVERS`], its feature columns.

use std::collections::HashMap;

use super::context::similarity;
use super::resolve::Resolved;
use super::Engine;
use crate::error::{Error, Result};
use crate::overlay::Space;
use crate::request::Retriever;
use crate::retrieval::ann::Metric;
use crate::retrieval::covisit;

/// What the retrievers and the features know of one request.
pub(crate) struct Signals {
    pub ctx: Resolved,
    /// The learned-space context vector: the items' mean, or for a search
    /// its pseudo-relevance vector (set once the lexical hits are known).
    pub vector: Option<Vec<f32>>,
    /// The content-space context vector, on indexes with a content space.
    pub content_vector: Option<Vec<f32>>,
    /// The best BM25 score of this request, to put lexical scores on [0, 1].
    pub lexical_max: f32,
    /// Co-visitation score of every item reachable from the context items
    /// (the co-visitation retriever's by-product; features read it for
    /// every candidate).
    pub covisit: HashMap<u32, f32>,
    /// Linear item-item score of every item the context items' weights
    /// reach (the linear retriever's by-product, read by the features).
    pub linear: HashMap<u32, f32>,
    /// The vector retrievers search with a beam no wider than their depth
    /// (a latency budget's first cut).
    pub narrow: bool,
}

/// Hits of one retriever, best first: (internal item id, its score).
pub(crate) type Hits = Vec<(u32, f32)>;

/// One retriever, as the pipeline runs it.
pub(crate) struct Entry {
    pub retriever: Retriever,
    /// Its tracing span (span names are static, hence one function each).
    pub span: fn() -> tracing::Span,
    /// Its hits for `depth` candidates (none when `depth` is 0 or it does not apply).
    pub run: fn(&Engine, &mut Signals, usize) -> Result<Hits>,
    /// What later retrievers learn from its hits, run in an `encode` span
    /// and timed as encoding: the lexical hits give a search its vector.
    pub then: Option<Then>,
}

/// What a retriever's hits teach the retrievers after it (see [`Entry::then`]).
pub(crate) type Then = fn(&Engine, &mut Signals, &[(u32, f32)]);

/// Every retriever, in the order they run (the lexical one first: its hits
/// give a search the vector the vector retrievers search with).
pub(crate) const RETRIEVERS: [Entry; 6] = [
    Entry {
        retriever: Retriever::Lexical,
        span: || tracing::debug_span!("lexical"),
        run: lexical,
        then: Some(search_vector),
    },
    Entry {
        retriever: Retriever::Ann,
        span: || tracing::debug_span!("ann"),
        run: ann,
        then: None,
    },
    Entry {
        retriever: Retriever::Covisit,
        span: || tracing::debug_span!("covisit"),
        run: covisit,
        then: None,
    },
    Entry {
        retriever: Retriever::Linear,
        span: || tracing::debug_span!("linear"),
        run: linear,
        then: None,
    },
    Entry {
        retriever: Retriever::Content,
        span: || tracing::debug_span!("content"),
        run: content,
        then: None,
    },
    Entry {
        retriever: Retriever::Popular,
        span: || tracing::debug_span!("popular"),
        run: popular,
        then: None,
    },
];

/// The table entry of `r`.
pub(crate) fn entry(r: Retriever) -> Option<&'static Entry> {
    RETRIEVERS.iter().find(|e| e.retriever == r)
}

/// An item played at least this often has collaborative neighbours (its
/// co-visitation and linear lists, its learned vector): a `listening` context
/// on it skips the more-like-this query, whose disjunction of up to 25 terms
/// is most of the request's cost (lexical p50 1.1 ms at 100k items, against
/// 0.03 ms for a list lookup; BENCHMARKS.md).
pub(crate) const MORE_LIKE_THIS_MAX_PLAYS: u32 = 20;

/// BM25F over the analysed query terms of a search; for a `listening`
/// context on an item with fewer than [`MORE_LIKE_THIS_MAX_PLAYS`] plays,
/// more like this: the item's own salient terms (its text finds related
/// items before it has plays).
fn lexical(engine: &Engine, s: &mut Signals, depth: usize) -> Result<Hits> {
    if depth == 0 {
        return Ok(Vec::new());
    }
    if s.ctx.has_text {
        return engine.text.search(
            &s.ctx.text,
            &s.ctx.search_terms,
            depth,
            std::sync::Arc::clone(&s.ctx.filter),
            s.ctx.text_statistics.as_ref(),
        );
    }
    match (s.ctx.listening, s.ctx.items.first()) {
        (true, Some(&(item, _))) if s.ctx.popularity.plays(item) < MORE_LIKE_THIS_MAX_PLAYS => {
            let Some(record) = s.ctx.catalog.record(item) else {
                return Ok(Vec::new());
            };
            let terms = engine.text.salient_terms(&s.ctx.text, record)?;
            let terms: Vec<(&str, f32)> = terms.iter().map(|(t, b)| (t.as_str(), *b)).collect();
            engine
                .text
                .search_weighted(&s.ctx.text, &terms, depth, std::sync::Arc::clone(&s.ctx.filter), None)
        }
        _ => Ok(Vec::new()),
    }
}

fn search_vector(engine: &Engine, s: &mut Signals, hits: &[(u32, f32)]) {
    s.lexical_max = hits.first().map(|h| h.1).unwrap_or(0.0);
    if s.ctx.has_text && !s.ctx.vector_given {
        let overlay = &s.ctx.catalog.overlay;
        let vector = engine.search_vector(overlay, hits, s.vector.take());
        s.vector = engine.away_from_negatives(overlay, vector, &s.ctx.negatives);
    }
}

/// Nearest neighbours of the context vector in the learned space: the
/// built graph's, merged with the live records' (scanned).
fn ann(engine: &Engine, s: &mut Signals, depth: usize) -> Result<Hits> {
    let Some(v) = s.vector.as_deref() else {
        return Ok(Vec::new());
    };
    if depth == 0 {
        return Ok(Vec::new());
    }
    let store = &engine.store;
    let filter = &s.ctx.filter;
    let overlay = &s.ctx.catalog.overlay;
    let metric = engine.ann.metric();
    let built = if engine.ann.is_empty() || s.ctx.no_built {
        Vec::new()
    } else {
        let accept = |row: u32| store.item_of_row(row).is_some_and(|i| filter(i));
        let ef = if s.narrow { depth } else { depth.max(64) };
        let hits = match how_to_search(engine, s, ef, engine.ann.len()) {
            Search::Rows(items) if overlay.records_len() == 0 => {
                engine.ann.search_rows(v, depth, items.iter().filter_map(|&i| store.row(i)), accept)
            }
            // A changed item's number may have moved into the range.
            Search::Rows(items) => {
                let mut rows: Vec<u32> = items
                    .iter()
                    .copied()
                    .chain(overlay.changed_built_items())
                    .filter_map(|i| store.row(i))
                    .collect();
                rows.sort_unstable();
                rows.dedup();
                engine.ann.search_rows(v, depth, rows, accept)
            }
            Search::Scan => engine.ann.search_exact(v, depth, accept),
            Search::Walk => engine.ann.search(v, depth, ef, accept),
        };
        hits.map_err(|e| Error::internal_by("ann", e))?
            .into_iter()
            .filter_map(|(row, d)| store.item_of_row(row).map(|i| (i, d)))
            .collect()
    };
    let live = if overlay.records_len() == 0 {
        Vec::new()
    } else {
        let q = match metric {
            Metric::Cosine => crate::vector::normalized(v.to_vec()),
            Metric::L2 | Metric::Dot => Some(v.to_vec()),
        };
        q.map(|q| overlay.nearest(Space::Learned, &q, depth, metric, |i| filter(i)))
            .unwrap_or_default()
    };
    Ok(crate::overlay::merge_nearest(built, live, depth)
        .into_iter()
        .map(|(i, d)| (i, similarity(metric, d)))
        .collect())
}

/// Distances a graph walk computes per node it visits (about the layer-0
/// degree, `2m`): the constant of [`how_to_search`]'s cost model.
const WALK_DEGREE: u128 = 32;

/// How a vector retriever finds a request's nearest rows.
enum Search<'e> {
    /// Exactly, among these items (those inside the narrowest range).
    Rows(&'e [u32]),
    /// Exactly, over every row.
    Scan,
    /// By walking the graph.
    Walk,
}

/// Whether a vector retriever should search its graph of `n` rows with
/// beam `ef` exactly rather than walk it. To collect `ef` rows that pass
/// a filter admitting `a` of `n`, the walk visits about `ef · n / a` nodes
/// at [`WALK_DEGREE`] distances each; a scan of those rows computes `a`. So
/// the scan wins when `a² ≤ ef · WALK_DEGREE · n`:
///
/// - for the items inside the request's narrowest range filter, when they
///   are few (at 1M rows and a beam of 200, below about 8% selectivity),
///   as Lucene and Qdrant also fall back to exact search under selective
///   filters;
/// - for the whole space, when it is small (`n ≤ ef · WALK_DEGREE`: a few
///   thousand rows), like Qdrant's `full_scan_threshold`. There the exact
///   answer costs no more than the walk's approximate one, and it is the
///   same in every build of the same data, where the graph's parallel
///   build is not.
///
/// Either scan is exact, so recall holds. The narrowest range alone may be
/// loose where the ranges together are not (two ranges passing 7% each may
/// pass 0.5% together): when the span is within [`COUNT_MARGIN`] of the
/// threshold, the items in it that pass every filter are counted (one
/// filter check each, far cheaper than a distance) and the count decides.
fn how_to_search<'e>(engine: &'e Engine, s: &Signals, ef: usize, n: usize) -> Search<'e> {
    if scan_is_cheaper(n, ef, n) {
        return Search::Scan;
    }
    let Some(span) = s.ctx.narrowest else {
        return Search::Walk;
    };
    let items = engine.numbers.items(&span);
    if scan_is_cheaper(items.len(), ef, n) {
        return Search::Rows(items);
    }
    if !scan_is_cheaper(items.len() / COUNT_MARGIN, ef, n) {
        return Search::Walk;
    }
    let passing = items.iter().filter(|&&i| (s.ctx.filter)(i)).count();
    if scan_is_cheaper(passing, ef, n) {
        Search::Rows(items)
    } else {
        Search::Walk
    }
}

/// How far above [`how_to_search`]'s threshold a range's span may lie and
/// still have its passing items counted.
const COUNT_MARGIN: usize = 3;

/// [`how_to_search`]'s cost model: scanning `allowed` rows against walking a
/// graph of `n` with beam `ef` under a filter that admits them.
fn scan_is_cheaper(allowed: usize, ef: usize, n: usize) -> bool {
    let a = allowed as u128;
    a.saturating_mul(a) <= (ef as u128).saturating_mul(WALK_DEGREE).saturating_mul(n as u128)
}

/// Items played after the context items, summed over them by recency weight.
fn covisit(engine: &Engine, s: &mut Signals, depth: usize) -> Result<Hits> {
    s.covisit = engine.store.covisit.aggregate(&s.ctx.items);
    s.ctx.live_covisit.add_to(&s.ctx.items, &mut s.covisit);
    Ok(covisit::top_n(&s.covisit, depth, |i| (s.ctx.filter)(i)))
}

/// Items the context items predict in the linear item-item model, for
/// history and listening contexts; a personalised search gets the scores
/// as features only (what the history predicts is not what was searched).
fn linear(engine: &Engine, s: &mut Signals, depth: usize) -> Result<Hits> {
    // Aggregated even at depth 0, as co-visitation is: the features score
    // every candidate with it.
    s.linear = engine.store.linear.aggregate(&s.ctx.items);
    if s.ctx.has_text {
        return Ok(Vec::new());
    }
    Ok(covisit::top_n(&s.linear, depth, |i| (s.ctx.filter)(i)))
}

/// Nearest neighbours of the content-space context vector: the built
/// graph's (less the items whose records changed since), merged with the
/// live records' (scanned).
fn content(engine: &Engine, s: &mut Signals, depth: usize) -> Result<Hits> {
    let (Some(graph), Some(v)) = (&engine.content, s.content_vector.as_deref()) else {
        return Ok(Vec::new());
    };
    if depth == 0 {
        return Ok(Vec::new());
    }
    let filter = &s.ctx.filter;
    let overlay = &s.ctx.catalog.overlay;
    let ef = if s.narrow { depth } else { depth.max(64) };
    // Row i of the content space is item i.
    let accept = |row: u32| filter(row) && !overlay.shadows(row);
    let built = if s.ctx.no_built {
        Vec::new()
    } else {
        let hits = match how_to_search(engine, s, ef, graph.len()) {
            Search::Rows(items) => graph.search_rows(v, depth, items.iter().copied(), accept),
            Search::Scan => graph.search_exact(v, depth, accept),
            Search::Walk => graph.search(v, depth, ef, accept),
        };
        hits.map_err(|e| Error::internal_by("content", e))?
    };
    let live = match crate::vector::normalized(v.to_vec()) {
        Some(q) if overlay.records_len() > 0 => overlay.nearest(Space::Content, &q, depth, Metric::Cosine, |i| filter(i)),
        _ => Vec::new(),
    };
    Ok(crate::overlay::merge_nearest(built, live, depth)
        .into_iter()
        .map(|(row, d)| (row, similarity(Metric::Cosine, d)))
        .collect())
}

/// The most played items: cold-start cover for contexts with items (a pure
/// search wants matches, not hits).
fn popular(_engine: &Engine, s: &mut Signals, depth: usize) -> Result<Hits> {
    if s.ctx.items.is_empty() {
        return Ok(Vec::new());
    }
    Ok(s.ctx.popularity.top(depth, |i| (s.ctx.filter)(i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selective_filters_scan_and_loose_ones_walk() {
        let n = 1_000_000;
        // The selectivities the range-filter benchmark measures, at a beam of 200.
        assert!(scan_is_cheaper(n / 2_000, 200, n), "0.05%");
        assert!(scan_is_cheaper(n / 200, 200, n), "0.5%");
        assert!(scan_is_cheaper(n / 20, 200, n), "5%");
        assert!(!scan_is_cheaper(n / 2, 200, n), "50%");
        // Every row allowed, on a tiny graph: the scan is as cheap as a walk.
        assert!(scan_is_cheaper(100, 64, 100));
        assert!(scan_is_cheaper(usize::MAX, usize::MAX, usize::MAX), "no overflow");
    }
}
