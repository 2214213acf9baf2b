//! Item-to-item co-visitation: items played near each other in sessions.
//!
//! For every ordered pair (a, b) with b played within `window` plays after a
//! in one session, a→b gains `1/distance` and b→a half that, so "what
//! people play next" outranks "what people played before". Each item keeps
//! its `top_k` strongest neighbours.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::events::Events;
use crate::sparse::Csr;

/// Co-visitation build parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CovisitParams {
    /// How many plays ahead a pair may be. Default 5.
    pub window: usize,
    /// Neighbours kept per item. Default 100.
    pub top_k: usize,
}

setters!(CovisitParams {
    window: usize,
    top_k: usize
});

impl Default for CovisitParams {
    fn default() -> Self {
        CovisitParams { window: 5, top_k: 100 }
    }
}

/// Play sequences of every session (skips dropped, immediate repeats merged).
pub(crate) fn session_sequences(events: &Events, gap_secs: i64) -> Vec<Vec<u32>> {
    events
        .sessions(gap_secs)
        .iter()
        .map(|s| {
            let mut seq: Vec<u32> = s.played().collect();
            seq.dedup();
            seq
        })
        .filter(|s| s.len() > 1)
        .collect()
}

/// How often item `to` was played `distance` plays after item `from` in one
/// session: the log statistic co-visitation and the learned embeddings are
/// built from. Integer counts, so every producer of them (this build, or a
/// Spark job writing log artefacts) agrees exactly, and the weights derived
/// from them do not depend on the order the log was read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PairCount {
    /// The item played first.
    pub from: u32,
    /// The item played `distance` plays later.
    pub to: u32,
    /// 1 for the next play, up to the window.
    pub distance: u32,
    /// Sessions-times it happened.
    pub count: u64,
}

/// Counts every (a, b, d) with b played d ≤ `window` steps after a ≠ b in
/// one of `sequences`, sorted by (from, to, distance).
pub(crate) fn pair_counts(sequences: &[Vec<u32>], window: usize) -> Vec<PairCount> {
    let mut seen: Vec<(u32, u32, u32)> = Vec::new();
    for seq in sequences {
        for (i, &a) in seq.iter().enumerate() {
            for (d, &b) in seq.iter().skip(i + 1).take(window).enumerate() {
                if a != b {
                    seen.push((a, b, d as u32 + 1));
                }
            }
        }
    }
    seen.par_sort_unstable();
    let mut out: Vec<PairCount> = Vec::new();
    for (from, to, distance) in seen {
        match out.last_mut() {
            Some(last) if (last.from, last.to, last.distance) == (from, to, distance) => last.count += 1,
            _ => out.push(PairCount {
                from,
                to,
                distance,
                count: 1,
            }),
        }
    }
    out
}

/// Directed pair weights `(a, b, Σ_d count_d / d)` from counts sorted by
/// (from, to, distance), summed in f64 in that order: the same counts
/// always give the same bits.
pub(crate) fn pair_weights(counts: &[PairCount]) -> Vec<(u32, u32, f32)> {
    let mut out: Vec<(u32, u32, f64)> = Vec::new();
    for c in counts {
        let w = c.count as f64 / f64::from(c.distance);
        match out.last_mut() {
            Some(last) if (last.0, last.1) == (c.from, c.to) => last.2 += w,
            _ => out.push((c.from, c.to, w)),
        }
    }
    out.into_iter().map(|(a, b, w)| (a, b, w as f32)).collect()
}

/// Per-item neighbour lists, strongest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct CoVisitation {
    lists: Csr,
}

impl CoVisitation {
    /// Builds lists for `n` items from directed pair weights, one entry
    /// per ordered pair ([`pair_weights`]).
    pub fn build(n: usize, pairs: &[(u32, u32, f32)], top_k: usize) -> CoVisitation {
        let mut t = Vec::with_capacity(pairs.len() * 2);
        for &(a, b, w) in pairs {
            t.push((a, b, w));
            t.push((b, a, 0.5 * w));
        }
        let full = Csr::from_triplets(n, n, t);
        let rows = (0..n)
            .map(|i| {
                let (cols, vals) = full.row(i);
                let mut row: Vec<(u32, f32)> = cols.iter().copied().zip(vals.iter().copied()).collect();
                // Ties broken by id so builds are reproducible.
                row.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
                row.truncate(top_k);
                row
            })
            .collect();
        CoVisitation {
            lists: Csr::from_rows(rows),
        }
    }

    /// Neighbours of `item` and their weights, strongest first.
    #[cfg(test)]
    pub fn neighbours(&self, item: u32) -> (&[u32], &[f32]) {
        self.lists.row(item as usize)
    }

    /// Sums `weight × co-visitation` over context items into a score per
    /// neighbour. Context items themselves may appear; callers filter.
    pub fn aggregate(&self, context: &[(u32, f32)]) -> HashMap<u32, f32> {
        self.lists.weighted_sum(context)
    }

    pub fn validate(&self, n: usize) -> Result<(), String> {
        self.lists.validate(n, n)
    }
}

/// The best `n` entries of `scores` that `accept` lets through, best first,
/// ties by id.
pub(crate) fn top_n(scores: &HashMap<u32, f32>, n: usize, accept: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = scores.iter().map(|(&i, &s)| (i, s)).filter(|&(i, _)| accept(i)).collect();
    let by_score = |x: &(u32, f32), y: &(u32, f32)| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0));
    if all.len() > n && n > 0 {
        all.select_nth_unstable_by(n - 1, by_score);
    }
    all.truncate(n);
    all.sort_unstable_by(by_score);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_plays_outweigh_previous_and_far_ones() {
        let seqs = vec![vec![0, 1, 2], vec![0, 1], vec![3, 0]];
        let pairs = pair_weights(&pair_counts(&seqs, 5));
        let cv = CoVisitation::build(4, &pairs, 10);
        let (cols, vals) = cv.neighbours(0);
        assert_eq!(cols[0], 1, "0 is followed by 1 twice");
        assert!((vals[0] - 2.0).abs() < 1e-6);
        let w = |a: u32, b: u32| {
            let (c, v) = cv.neighbours(a);
            c.iter().position(|&x| x == b).map(|p| v[p]).unwrap_or(0.0)
        };
        assert!(w(0, 2) < w(0, 1));
        assert!((w(0, 3) - 0.5).abs() < 1e-6, "3 came before 0: half weight");
        assert!(cv.validate(4).is_ok());
    }

    #[test]
    fn top_n_filters_orders_and_cuts() {
        let cv = CoVisitation::build(4, &pair_weights(&pair_counts(&[vec![0, 1, 2, 3]], 5)), 10);
        let scores = cv.aggregate(&[(0, 1.0)]);
        assert_eq!(top_n(&scores, 2, |_| true).iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(top_n(&scores, 2, |i| i != 1).iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 3]);
        assert!(top_n(&scores, 0, |_| true).is_empty());
    }
}
