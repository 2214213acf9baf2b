//! Ranking metrics at a cut-off, over one ranked list and its relevant items.
//!
//! Definitions follow RecBole's so that figures compare with published ones:
//! HR@k (any hit), Recall@k (hits / relevant), MRR@k (1 / rank of the first
//! hit), NDCG@k (graded gains `2^g - 1`, ideal DCG over the relevant items).

use std::collections::HashMap;

use serde::Serialize;

/// Metric values for one list (or averages over many).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Hit ratio: 1 if any relevant item is in the top k.
    pub hr: f64,
    /// Relevant items found in the top k, over all relevant items (at most k).
    pub recall: f64,
    /// Reciprocal rank of the first relevant item in the top k.
    pub mrr: f64,
    /// Normalised discounted cumulative gain.
    pub ndcg: f64,
}

impl Metrics {
    /// Scores `ranked` (best first) against `relevant` (item → grade ≥ 1) at cut-off `k`.
    pub fn at_k<T: std::hash::Hash + Eq>(ranked: &[T], relevant: &HashMap<T, u32>, k: usize) -> Metrics {
        if relevant.is_empty() || k == 0 {
            return Metrics::default();
        }
        let mut dcg = 0.0;
        let mut hits = 0usize;
        let mut first: Option<usize> = None;
        for (pos, item) in ranked.iter().take(k).enumerate() {
            if let Some(&g) = relevant.get(item) {
                dcg += gain(g) / (pos as f64 + 2.0).log2();
                hits += 1;
                first.get_or_insert(pos);
            }
        }
        let mut grades: Vec<u32> = relevant.values().copied().collect();
        grades.sort_unstable_by(|a, b| b.cmp(a));
        let idcg: f64 = grades
            .iter()
            .take(k)
            .enumerate()
            .map(|(pos, &g)| gain(g) / (pos as f64 + 2.0).log2())
            .sum();
        Metrics {
            hr: if hits > 0 { 1.0 } else { 0.0 },
            // RecBole divides by the number of relevant items (not capped at k).
            recall: hits as f64 / relevant.len() as f64,
            mrr: first.map(|p| 1.0 / (p as f64 + 1.0)).unwrap_or(0.0),
            ndcg: if idcg > 0.0 { dcg / idcg } else { 0.0 },
        }
    }
}

fn gain(grade: u32) -> f64 {
    2f64.powi(grade.min(30) as i32) - 1.0
}

/// Running mean of [`Metrics`] over requests.
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsMean {
    sum: Metrics,
    n: usize,
}

impl MetricsMean {
    /// Adds one list's metrics.
    pub fn add(&mut self, m: Metrics) {
        self.sum.hr += m.hr;
        self.sum.recall += m.recall;
        self.sum.mrr += m.mrr;
        self.sum.ndcg += m.ndcg;
        self.n += 1;
    }

    /// Lists added.
    #[cfg_attr(not(feature = "harness"), allow(dead_code))] // the ranker's validation does not count
    pub fn count(&self) -> usize {
        self.n
    }

    /// The means (zeros when nothing was added).
    pub fn mean(&self) -> Metrics {
        if self.n == 0 {
            return Metrics::default();
        }
        let n = self.n as f64;
        Metrics {
            hr: self.sum.hr / n,
            recall: self.sum.recall / n,
            mrr: self.sum.mrr / n,
            ndcg: self.sum.ndcg / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(items: &[(u32, u32)]) -> HashMap<u32, u32> {
        items.iter().copied().collect()
    }

    #[test]
    fn hand_computed_values() {
        // One relevant item at position 2 (0-based 1).
        let m = Metrics::at_k(&[5, 7, 9], &rel(&[(7, 1)]), 10);
        assert_eq!(m.hr, 1.0);
        assert_eq!(m.recall, 1.0);
        assert_eq!(m.mrr, 0.5);
        assert!((m.ndcg - 1.0 / 3f64.log2()).abs() < 1e-12);
        // Perfect order of graded items has NDCG 1.
        let m = Metrics::at_k(&[1, 2, 3], &rel(&[(1, 3), (2, 2), (3, 1)]), 3);
        assert!((m.ndcg - 1.0).abs() < 1e-12);
        // Reversed order is worse.
        assert!(Metrics::at_k(&[3, 2, 1], &rel(&[(1, 3), (2, 2), (3, 1)]), 3).ndcg < 0.9);
        // Hits beyond k do not count; recall divides by all relevant items.
        let m = Metrics::at_k(&[9, 9, 1, 2], &rel(&[(1, 1), (2, 1), (3, 1), (4, 1)]), 3);
        assert_eq!(m.recall, 0.25);
        assert_eq!(Metrics::at_k(&[1], &HashMap::<u32, u32>::new(), 10), Metrics::default());
    }

    #[test]
    fn mean_averages() {
        let mut mean = MetricsMean::default();
        mean.add(Metrics {
            hr: 1.0,
            recall: 1.0,
            mrr: 1.0,
            ndcg: 1.0,
        });
        mean.add(Metrics::default());
        assert_eq!(mean.mean().hr, 0.5);
        assert_eq!(mean.count(), 2);
    }
}
