//! Feature assembly: the one function that turns (context, candidates) into
//! the matrix the ranker scores. Serving and training both call it, so the
//! model learns from exactly the features it is served.

use std::collections::HashMap;

use crate::ranking::categories::Affinity;
use crate::request::Retriever;
use crate::retrieval::fusion::Candidate;
use crate::store::NONE;

/// Declares the feature columns once: their names (saved with every
/// model, so the order is part of the format) and the [`Col`] each is
/// written through.
macro_rules! columns {
    ($($name:ident),* $(,)?) => {
        /// One feature column, named as in [`FEATURES`].
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        enum Col {
            $($name),*
        }

        /// Feature names, in column order. Saved with every model; a model
        /// whose list differs is refused at open.
        pub const FEATURES: [&str; [$(stringify!($name)),*].len()] = [$(stringify!($name)),*];
    };
}

columns!(
    ann_found,
    ann_rank_rr,
    ann_sim,
    lexical_found,
    lexical_rank_rr,
    lexical_score,
    covisit_found,
    covisit_rank_rr,
    covisit_score,
    popular_found,
    popular_rank_rr,
    rrf,
    context_sim,
    covisit_context,
    log_popularity,
    recent_share,
    skip_rate,
    tag_overlap,
    same_group,
    has_vector,
    title_match,
    group_match,
    exact_match,
    content_found,
    content_rank_rr,
    content_sim,
    linear_found,
    linear_rank_rr,
    linear_context,
    linear_relative,
    history_size,
    max_item_sim,
    played_at,
    time_gap,
    negative_sim,
    negative_content_sim,
    negative_tag_overlap,
    query_category,
    fold_in,
);

/// Most recent context items a candidate is compared with one by one
/// (`max_item_sim`): bounds the cost for long histories.
const MAX_SIM_ITEMS: usize = 50;

/// Each retriever's own columns: whether it found the candidate, its
/// reciprocal rank there, and (for some) its score.
const RETRIEVER_COLUMNS: [(Retriever, Col, Col, Option<Col>); 6] = [
    (Retriever::Ann, Col::ann_found, Col::ann_rank_rr, Some(Col::ann_sim)),
    (
        Retriever::Lexical,
        Col::lexical_found,
        Col::lexical_rank_rr,
        Some(Col::lexical_score),
    ),
    (
        Retriever::Covisit,
        Col::covisit_found,
        Col::covisit_rank_rr,
        Some(Col::covisit_score),
    ),
    (Retriever::Popular, Col::popular_found, Col::popular_rank_rr, None),
    (Retriever::Content, Col::content_found, Col::content_rank_rr, None),
    // Its score is `linear_context`, set for every candidate.
    (Retriever::Linear, Col::linear_found, Col::linear_rank_rr, None),
];

/// One candidate's row, written by column (a fixed-size array, so every
/// column index is known to be in bounds).
struct Row<'a>(&'a mut [f32; NUM_FEATURES]);

impl Row<'_> {
    #[inline]
    fn set(&mut self, col: Col, value: f32) {
        self.0[col as usize] = value;
    }
}

/// Number of feature columns.
pub const NUM_FEATURES: usize = FEATURES.len();

/// What the features need to know about the request's context.
pub(crate) struct ContextSignals<'a> {
    /// Unit context vector (history/listening mean, or the search's
    /// pseudo-relevance vector), if one could be built.
    pub vector: Option<&'a [f32]>,
    /// Context items with recency weights, most recent first (weight 1.0).
    pub items: &'a [(u32, f32)],
    /// Co-visitation score of every item reachable from the context items.
    pub covisit: &'a HashMap<u32, f32>,
    /// Linear item-item score of every item the context items reach.
    pub linear: &'a HashMap<u32, f32>,
    /// Play and skip counts as the request sees them (built and live).
    pub popularity: &'a crate::retrieval::popular::Popularity,
    /// The best BM25 score of this request, to put lexical scores on [0, 1].
    pub lexical_max: f32,
    /// `vector_of(item)` gives the item's unit vector, if it has one.
    pub vector_of: &'a dyn Fn(u32) -> Option<&'a [f32]>,
    /// The search's analysed terms (empty without a search).
    pub terms: &'a [String],
    /// Unit context vector in the content space (the encoded query, the
    /// context items' content vectors, or both), if the index has one.
    pub content_vector: Option<&'a [f32]>,
    /// `content_of(item)` gives the item's unit content vector.
    pub content_of: &'a dyn Fn(u32) -> Option<&'a [f32]>,
    /// The request's negatives (disliked or skipped), most recent first.
    pub negatives: &'a [u32],
    /// The search's affinity with item categories, learned from logged
    /// searches (`None` without a search or a word ever logged).
    pub categories: Option<&'a Affinity<'a>>,
    /// The context items' user vector folded into the learned space
    /// ([`super::fold_in`]), if one could be solved.
    pub fold_in: Option<&'a [f32]>,
}

/// Share of `terms` found in `text` once analysed, and whether the two are
/// the same words in the same order (an exact title or artist match).
fn coverage(terms: &[String], text: &str) -> (f32, bool) {
    if terms.is_empty() || text.is_empty() {
        return (0.0, false);
    }
    let words = crate::retrieval::lexical::analyze(text);
    let found = terms.iter().filter(|t| words.contains(t)).count();
    (found as f32 / terms.len() as f32, words == terms)
}

/// The largest inner product of `v` with any of `others`; `None` without others.
fn max_dot(others: &[&[f32]], v: &[f32]) -> Option<f32> {
    others
        .iter()
        .map(|o| o.iter().zip(v).map(|(a, b)| a * b).sum::<f32>())
        .reduce(f32::max)
}

fn rr(rank: u32) -> f32 {
    1.0 / (1.0 + rank as f32)
}

/// Fills a row-major `[candidates × NUM_FEATURES]` matrix.
pub(crate) fn assemble(ctx: &ContextSignals<'_>, candidates: &[Candidate], store: &crate::overlay::Items) -> Vec<f32> {
    // Context tag and group distributions, weighted by recency.
    let total_w: f32 = ctx.items.iter().map(|&(_, w)| w).sum();
    let mut tag_w: HashMap<u32, f32> = HashMap::new();
    let mut group_w: HashMap<u32, f32> = HashMap::new();
    for &(item, w) in ctx.items {
        for &t in store.tags(item) {
            *tag_w.entry(t).or_insert(0.0) += w;
        }
        let g = store.group(item);
        if g != NONE {
            *group_w.entry(g).or_insert(0.0) += w;
        }
    }
    let norm = if total_w > 0.0 { 1.0 / total_w } else { 0.0 };
    // The linear score is a sum over the history, so its scale grows with
    // it: the share of the list's best puts every request on one scale.
    let linear_of = |item: u32| ctx.linear.get(&item).copied().unwrap_or(0.0);
    let linear_best = candidates.iter().map(|c| linear_of(c.item)).fold(0.0f32, f32::max);
    let history_size = (ctx.items.len() as f32).ln_1p();
    // When the context's items are played: the request's period of activity.
    let times: Vec<(f32, f32)> = ctx
        .items
        .iter()
        .filter_map(|&(i, w)| ctx.popularity.played_at(i).map(|t| (t, w)))
        .collect();
    let weight: f32 = times.iter().map(|x| x.1).sum();
    let context_time = (weight > 0.0).then(|| times.iter().map(|(t, w)| t * w).sum::<f32>() / weight);
    let recent: Vec<&[f32]> = ctx
        .items
        .iter()
        .take(MAX_SIM_ITEMS)
        .filter_map(|&(i, _)| (ctx.vector_of)(i))
        .collect();

    // The negatives' vectors in both spaces and their tags, each tag
    // counted once per negative that carries it.
    let recent_negatives = &ctx.negatives[..ctx.negatives.len().min(MAX_SIM_ITEMS)];
    let negative_vectors: Vec<&[f32]> = recent_negatives.iter().filter_map(|&i| (ctx.vector_of)(i)).collect();
    let negative_contents: Vec<&[f32]> = recent_negatives.iter().filter_map(|&i| (ctx.content_of)(i)).collect();
    let mut negative_tags: HashMap<u32, f32> = HashMap::new();
    for &item in recent_negatives {
        for &t in store.tags(item) {
            *negative_tags.entry(t).or_insert(0.0) += 1.0 / recent_negatives.len() as f32;
        }
    }

    let mut out = vec![0.0f32; candidates.len() * NUM_FEATURES];
    for (c, row) in candidates.iter().zip(out.chunks_exact_mut(NUM_FEATURES)) {
        let Ok(row) = <&mut [f32; NUM_FEATURES]>::try_from(row) else {
            continue; // chunks_exact_mut gives exactly NUM_FEATURES values
        };
        let mut row = Row(row);
        for &(r, found, rank, score) in &RETRIEVER_COLUMNS {
            let Some(h) = c.hits[r.index()] else {
                continue;
            };
            row.set(found, 1.0);
            row.set(rank, rr(h.rank));
            let value = match r {
                Retriever::Lexical if ctx.lexical_max > 0.0 => h.score / ctx.lexical_max,
                Retriever::Lexical => 0.0,
                Retriever::Covisit => h.score.max(0.0).ln_1p(),
                _ => h.score,
            };
            if let Some(col) = score {
                row.set(col, value);
            }
        }
        // RRF of a top-1-everywhere item is about 4/61; scale to roughly [0, 1].
        row.set(Col::rrf, c.rrf * 15.0);
        let item_vec = (ctx.vector_of)(c.item);
        if let (Some(q), Some(v)) = (ctx.vector, item_vec) {
            row.set(Col::context_sim, q.iter().zip(v).map(|(a, b)| a * b).sum());
        }
        if let Some(v) = item_vec {
            if let Some(u) = ctx.fold_in {
                row.set(Col::fold_in, u.iter().zip(v).map(|(a, b)| a * b).sum());
            }
            if let Some(max) = max_dot(&recent, v) {
                row.set(Col::max_item_sim, max);
            }
            if let Some(max) = max_dot(&negative_vectors, v) {
                row.set(Col::negative_sim, max);
            }
        }
        if let Some(max) = (ctx.content_of)(c.item).and_then(|v| max_dot(&negative_contents, v)) {
            row.set(Col::negative_content_sim, max);
        }
        row.set(
            Col::covisit_context,
            ctx.covisit.get(&c.item).copied().unwrap_or(0.0).max(0.0).ln_1p(),
        );
        let linear = linear_of(c.item);
        row.set(Col::linear_context, linear);
        if linear_best > 0.0 {
            row.set(Col::linear_relative, linear / linear_best);
        }
        row.set(Col::history_size, history_size);
        if let Some(t) = ctx.popularity.played_at(c.item) {
            row.set(Col::played_at, t);
            if let Some(ct) = context_time {
                row.set(Col::time_gap, (t - ct).abs());
            }
        }
        row.set(Col::log_popularity, ctx.popularity.log_popularity(c.item));
        row.set(Col::recent_share, ctx.popularity.recent_share(c.item));
        row.set(Col::skip_rate, ctx.popularity.skip_rate(c.item));
        let tags = store.tags(c.item);
        if !tags.is_empty() {
            let s: f32 = tags.iter().map(|t| tag_w.get(t).copied().unwrap_or(0.0)).sum();
            row.set(Col::tag_overlap, s * norm / tags.len() as f32);
        }
        if !tags.is_empty() && !negative_tags.is_empty() {
            let s: f32 = tags.iter().map(|t| negative_tags.get(t).copied().unwrap_or(0.0)).sum();
            row.set(Col::negative_tag_overlap, s / tags.len() as f32);
        }
        let g = store.group(c.item);
        if g != NONE {
            row.set(Col::same_group, group_w.get(&g).copied().unwrap_or(0.0) * norm);
        }
        row.set(Col::has_vector, if item_vec.is_some() { 1.0 } else { 0.0 });
        if !ctx.terms.is_empty() {
            let title = store.record(c.item).map(|i| i.title.as_str()).unwrap_or("");
            let (t_cov, t_exact) = coverage(ctx.terms, title);
            let (g_cov, g_exact) = coverage(ctx.terms, store.group_name(c.item).unwrap_or(""));
            row.set(Col::title_match, t_cov);
            row.set(Col::group_match, g_cov);
            row.set(Col::exact_match, if t_exact || g_exact { 1.0 } else { 0.0 });
        }
        if let Some(score) = ctx.categories.zip(store.record(c.item)).and_then(|(a, item)| a.score(item)) {
            row.set(Col::query_category, score);
        }
        // For every candidate, not only the content retriever's: the ranker
        // then sees how well a co-visited or lexical hit fits the text too.
        if let (Some(q), Some(v)) = (ctx.content_vector, (ctx.content_of)(c.item)) {
            row.set(Col::content_sim, q.iter().zip(v).map(|(a, b)| a * b).sum());
        }
    }
    out
}
