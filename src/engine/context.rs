//! The context vectors of a request: the recency-weighted mean of its items
//! in the learned space, a search's pseudo-relevance vector there, and the
//! encoded query blended with the items in the content space.

use super::resolve::Resolved;
use super::Engine;
use crate::error::Result;
use crate::overlay::{Overlay, Space};
use crate::retrieval::ann::Metric;

/// Weight of a personalised search's history vector against its query
/// vector (1), in both the learned and the content space.
const HISTORY_WEIGHT: f32 = 0.5;
/// Lexical hits whose vectors form a search's pseudo-relevance vector.
const PRF_HITS: usize = 5;
/// Weight of the mean of a request's negatives, subtracted from its context
/// vector (weight 1) in both spaces: the negative term of Rocchio's
/// relevance feedback.
const NEGATIVE_WEIGHT: f32 = 0.5;
/// Most recent negatives a context vector moves away from.
pub(super) const NEGATIVE_ITEMS: usize = 50;

impl Engine {
    /// The learned-space vector of `item`: its built one, or for an item
    /// without one, what its live record was given.
    pub(super) fn vector_of<'a>(&'a self, o: &'a Overlay, item: u32) -> Option<&'a [f32]> {
        match self.store.row(item) {
            Some(r) => self.ann.vector(r),
            None => o.vector(Space::Learned, item),
        }
    }

    /// A caller's context vector, as the space compares vectors: normalised
    /// unless the space is inner-product.
    pub(super) fn given_vector(&self, v: &[f32]) -> Option<Vec<f32>> {
        match self.ann.metric() {
            Metric::Dot => Some(v.to_vec()),
            Metric::Cosine | Metric::L2 => crate::vector::normalized(v.to_vec()),
        }
    }

    /// The normalised weighted mean of the items' vectors.
    pub(super) fn mean_vector(&self, o: &Overlay, items: &[(u32, f32)]) -> Option<Vec<f32>> {
        let parts: Vec<(&[f32], f32)> = items.iter().filter_map(|&(i, w)| self.vector_of(o, i).map(|v| (v, w))).collect();
        let acc = weighted_sum(&parts)?;
        match self.ann.metric() {
            // Inner-product spaces keep magnitude; the others compare directions.
            Metric::Dot => Some(acc),
            Metric::Cosine | Metric::L2 => crate::vector::normalized(acc),
        }
    }

    /// `v`, a learned-space context vector, moved away from the mean of
    /// the `negatives`' vectors (most recent first); `v` itself where none
    /// has a vector.
    pub(super) fn away_from_negatives(&self, o: &Overlay, v: Option<Vec<f32>>, negatives: &[u32]) -> Option<Vec<f32>> {
        let v = v?;
        let recent = &negatives[..negatives.len().min(NEGATIVE_ITEMS)];
        let share = 1.0 / recent.len().max(1) as f32;
        let parts: Vec<(u32, f32)> = recent.iter().map(|&i| (i, share)).collect();
        let Some(away) = self.mean_vector(o, &parts) else {
            return Some(v);
        };
        let moved = weighted_sum(&[(&v, 1.0), (&away, -NEGATIVE_WEIGHT)])?;
        match self.ann.metric() {
            Metric::Dot => Some(moved),
            Metric::Cosine | Metric::L2 => crate::vector::normalized(moved).or(Some(v)),
        }
    }

    /// The content-space vector of `item`: its live record's, if it has
    /// one (its built text no longer holds), else its built one.
    pub(super) fn content_of<'a>(&'a self, o: &'a Overlay, item: u32) -> Option<&'a [f32]> {
        match o.record(item) {
            Some(_) => o.vector(Space::Content, item),
            None => self.content.as_ref().and_then(|g| g.vector(item)),
        }
    }

    /// The content-space context vector: the encoded search text and the
    /// recency-weighted mean of the context items' content vectors, blended
    /// as the learned space blends them. `None` without a content space.
    pub(super) fn content_context(&self, ctx: &Resolved, text: Option<&str>) -> Result<Option<Vec<f32>>> {
        if self.content.is_none() {
            return Ok(None);
        }
        let o = &ctx.catalog.overlay;
        let query = match text {
            Some(t) => Some(self.encode_query(t)?),
            None => None,
        };
        let items: Vec<(&[f32], f32)> = ctx
            .items
            .iter()
            .filter_map(|&(i, w)| self.content_of(o, i).map(|v| (v, w)))
            .collect();
        let history = blend(&items);
        let context = match (query, history) {
            (Some(q), Some(h)) => blend(&[(&q, 1.0), (&h, HISTORY_WEIGHT)]),
            (q, h) => q.or(h),
        };
        let negatives: Vec<(&[f32], f32)> = ctx
            .negatives
            .iter()
            .take(NEGATIVE_ITEMS)
            .filter_map(|&i| self.content_of(o, i).map(|v| (v, 1.0)))
            .collect();
        Ok(match (context, blend(&negatives)) {
            (Some(c), Some(away)) => blend(&[(&c, 1.0), (&away, -NEGATIVE_WEIGHT)]).or(Some(c)),
            (c, _) => c,
        })
    }

    /// The learned-space vector of a search: the mean of its best lexical
    /// hits' vectors (pseudo-relevance feedback, since the learned space has
    /// no text), blended with the history's when personalised.
    pub(super) fn search_vector(&self, o: &Overlay, lexical_hits: &[(u32, f32)], history: Option<Vec<f32>>) -> Option<Vec<f32>> {
        let prf: Vec<(u32, f32)> = lexical_hits.iter().take(PRF_HITS).map(|&(i, s)| (i, s.max(0.0))).collect();
        match (self.mean_vector(o, &prf), history) {
            (Some(a), Some(b)) => blend(&[(&a, 1.0), (&b, HISTORY_WEIGHT)]),
            (a, b) => a.or(b),
        }
    }
}

/// `sum(w · v)` over `parts` (vectors of one dimension); `None` without parts.
fn weighted_sum(parts: &[(&[f32], f32)]) -> Option<Vec<f32>> {
    let (first, _) = parts.first()?;
    let mut acc = vec![0.0f32; first.len()];
    for (v, w) in parts {
        acc.iter_mut().zip(v.iter()).for_each(|(a, x)| *a += w * x);
    }
    Some(acc)
}

/// The unit-length [`weighted_sum`] of `parts`.
fn blend(parts: &[(&[f32], f32)]) -> Option<Vec<f32>> {
    weighted_sum(parts).and_then(crate::vector::normalized)
}

/// Turns an ANN distance into a similarity where larger is closer.
pub(super) fn similarity(metric: Metric, distance: f32) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - distance,
        Metric::Dot => -distance,
        Metric::L2 => 1.0 / (1.0 + distance.max(0.0)),
    }
}
