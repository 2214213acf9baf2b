//! Item embeddings learned from listening sessions: a truncated
//! eigendecomposition of the positive pointwise mutual information (PPMI)
//! matrix of session co-occurrences (Levy & Goldberg 2014 showed this
//! matches skip-gram with negative sampling), computed by randomized
//! subspace iteration (Halko, Martinsson & Tropp 2011). Deterministic for a
//! seed, parallel, and linear in the number of co-occurring pairs.
//!
//! Items that co-occur with nothing (cold items) get a content vector: the
//! mean of the vectors of items in the same group and with the same tags.

use ndarray::{Array2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;
use crate::sparse::Csr;
use crate::store::{TagSets, NONE};
use crate::vector::normalized;

/// Embedding learning parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbeddingParams {
    /// Vector dimension. Default 64.
    pub dim: usize,
    /// Extra random directions that make the truncated decomposition
    /// accurate. Default 16.
    pub oversample: usize,
    /// Subspace iterations. Default 4.
    pub power_iterations: usize,
    /// Context-distribution smoothing exponent. Default 0.75, as in word2vec.
    pub smoothing: f64,
    /// Seed of the random start. Default 42.
    pub seed: u64,
}

setters!(EmbeddingParams {
    dim: usize,
    oversample: usize,
    power_iterations: usize,
    smoothing: f64,
    seed: u64
});

impl Default for EmbeddingParams {
    fn default() -> Self {
        EmbeddingParams {
            dim: 64,
            oversample: 16,
            power_iterations: 4,
            smoothing: 0.75,
            seed: 42,
        }
    }
}

/// The symmetric PPMI matrix of directed co-occurrence pairs over `n` items.
pub(crate) fn ppmi(n: usize, pairs: &[(u32, u32, f32)], smoothing: f64) -> Csr {
    let mut t = Vec::with_capacity(pairs.len() * 2);
    for &(a, b, w) in pairs {
        t.push((a, b, w));
        t.push((b, a, w));
    }
    let mut m = Csr::from_triplets(n, n, t);
    let sums = m.row_sums();
    let total: f64 = sums.iter().map(|&s| s as f64).sum();
    let z: f64 = sums.iter().map(|&s| (s as f64).powf(smoothing)).sum();
    if total <= 0.0 || z <= 0.0 {
        return Csr::from_triplets(n, n, Vec::new());
    }
    let log_marginal: Vec<f64> = sums
        .iter()
        .map(|&s| ((s as f64).powf(smoothing) / z).max(f64::MIN_POSITIVE).ln())
        .collect();
    m.map_values(|r, c, v| {
        let pmi = (v as f64 / total).ln() - log_marginal[r] - log_marginal[c as usize];
        pmi.max(0.0) as f32
    });
    m
}

/// `m · x` for sparse `m` (n×n) and dense `x` (n×k).
fn spmm(m: &Csr, x: &Array2<f32>) -> Array2<f32> {
    let (n, k) = x.dim();
    let mut y = vec![0.0f32; n * k];
    y.par_chunks_mut(k.max(1)).enumerate().for_each(|(i, row)| {
        let (cols, vals) = m.row(i);
        for (&c, &v) in cols.iter().zip(vals) {
            if v != 0.0 {
                row.iter_mut().zip(x.row(c as usize)).for_each(|(a, b)| *a += v * b);
            }
        }
    });
    Array2::from_shape_vec((n, k), y).unwrap_or_else(|_| Array2::zeros((n, k)))
}

/// Orthonormal columns spanning `y` (Cholesky QR, twice for stability).
fn orthonormalize(mut y: Array2<f32>) -> Array2<f32> {
    for _ in 0..2 {
        let g = y.t().dot(&y).mapv(f64::from);
        let k = g.nrows();
        let trace: f64 = (0..k).map(|i| g[[i, i]]).sum();
        let ridge = 1e-7 * trace.max(1e-30) / k.max(1) as f64;
        let l = cholesky(&g, ridge);
        let linv_t = lower_inverse(&l).t().mapv(|x| x as f32);
        y = y.dot(&linv_t);
    }
    y
}

/// Lower-triangular `l` with `l lᵀ = g + ridge·I`; a non-positive pivot is
/// clamped so rank-deficient inputs (fewer items than directions) still work.
fn cholesky(g: &Array2<f64>, ridge: f64) -> Array2<f64> {
    let k = g.nrows();
    let mut l = Array2::<f64>::zeros((k, k));
    for j in 0..k {
        let mut d = g[[j, j]] + ridge;
        for p in 0..j {
            d -= l[[j, p]] * l[[j, p]];
        }
        let d = d.max(ridge.max(1e-30)).sqrt();
        l[[j, j]] = d;
        for i in j + 1..k {
            let mut s = g[[i, j]];
            for p in 0..j {
                s -= l[[i, p]] * l[[j, p]];
            }
            l[[i, j]] = s / d;
        }
    }
    l
}

fn lower_inverse(l: &Array2<f64>) -> Array2<f64> {
    let k = l.nrows();
    let mut inv = Array2::<f64>::zeros((k, k));
    for j in 0..k {
        inv[[j, j]] = 1.0 / l[[j, j]];
        for i in j + 1..k {
            let mut s = 0.0;
            for p in j..i {
                s -= l[[i, p]] * inv[[p, j]];
            }
            inv[[i, j]] = s / l[[i, i]];
        }
    }
    inv
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix by cyclic Jacobi rotations.
pub(crate) fn symmetric_eigen(a: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let k = a.nrows();
    let mut a = a.clone();
    let mut v = Array2::<f64>::eye(k);
    for _sweep in 0..100 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]].powi(2))
            .sum();
        let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(1e-300);
        if off <= 1e-22 * scale {
            break;
        }
        for p in 0..k {
            for q in p + 1..k {
                let apq = a[[p, q]];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..k {
                    let (arp, arq) = (a[[r, p]], a[[r, q]]);
                    a[[r, p]] = c * arp - s * arq;
                    a[[r, q]] = s * arp + c * arq;
                }
                for r in 0..k {
                    let (apr, aqr) = (a[[p, r]], a[[q, r]]);
                    a[[p, r]] = c * apr - s * aqr;
                    a[[q, r]] = s * apr + c * aqr;
                }
                for r in 0..k {
                    let (vrp, vrq) = (v[[r, p]], v[[r, q]]);
                    v[[r, p]] = c * vrp - s * vrq;
                    v[[r, q]] = s * vrp + c * vrq;
                }
            }
        }
    }
    ((0..k).map(|i| a[[i, i]]).collect(), v)
}

/// Learns unit vectors for `n` items from directed co-occurrence pairs.
/// Items that co-occur with nothing get `None`.
pub(crate) fn learn(n: usize, pairs: &[(u32, u32, f32)], params: &EmbeddingParams) -> Vec<Option<Vec<f32>>> {
    let m = ppmi(n, pairs, params.smoothing);
    let k = (params.dim + params.oversample).min(n);
    if k == 0 || m.nnz() == 0 {
        return vec![None; n];
    }
    let mut rng = SplitMix64::new(params.seed);
    let omega = Array2::from_shape_fn((n, k), |_| rng.normal() as f32);
    let mut q = orthonormalize(spmm(&m, &omega));
    for _ in 0..params.power_iterations {
        q = orthonormalize(spmm(&m, &q));
    }
    let mq = spmm(&m, &q);
    let t = q.t().dot(&mq).mapv(f64::from);
    let t = (&t + &t.t()) * 0.5;
    let (values, vectors) = symmetric_eigen(&t);
    let mut order: Vec<usize> = (0..k).filter(|&i| values[i] > 0.0).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.truncate(params.dim);
    if order.is_empty() {
        return vec![None; n];
    }
    // Columns: eigenvectors weighted by sqrt(eigenvalue) ("symmetric" weighting).
    let basis = Array2::from_shape_fn((k, order.len()), |(r, c)| (vectors[[r, order[c]]] * values[order[c]].sqrt()) as f32);
    let e = q.dot(&basis);
    let row_has_data: Vec<bool> = (0..n).map(|i| !m.row(i).0.is_empty()).collect();
    e.axis_iter(Axis(0))
        .zip(row_has_data)
        .map(|(row, has)| if has { normalized(row.iter().copied().collect()) } else { None })
        .collect()
}

/// Gives items without a vector the mean vector of the items that share
/// their group (counted twice: same artist is the strongest content signal)
/// and their tags. Items sharing nothing with a vectored item stay `None`.
pub(crate) fn fill_from_content(vectors: &mut [Option<Vec<f32>>], groups: &[u32], tags: &TagSets) {
    let Some(dim) = vectors.iter().flatten().map(Vec::len).next() else {
        return;
    };
    let mut group_sum: std::collections::HashMap<u32, Vec<f32>> = std::collections::HashMap::new();
    let mut tag_sum: std::collections::HashMap<u32, Vec<f32>> = std::collections::HashMap::new();
    for (i, v) in vectors.iter().enumerate() {
        let Some(v) = v else { continue };
        let add = |acc: &mut Vec<f32>| acc.iter_mut().zip(v).for_each(|(a, x)| *a += x);
        if let Some(&g) = groups.get(i).filter(|&&g| g != NONE) {
            add(group_sum.entry(g).or_insert_with(|| vec![0.0; dim]));
        }
        for &t in tags.of(i as u32) {
            add(tag_sum.entry(t).or_insert_with(|| vec![0.0; dim]));
        }
    }
    for (i, slot) in vectors.iter_mut().enumerate() {
        if slot.is_some() {
            continue;
        }
        let mut acc = vec![0.0f32; dim];
        let mut add = |sum: &Vec<f32>, weight: f32| {
            if let Some(s) = normalized(sum.clone()) {
                acc.iter_mut().zip(&s).for_each(|(a, x)| *a += weight * x);
            }
        };
        if let Some(sum) = groups.get(i).and_then(|g| group_sum.get(g)) {
            add(sum, 2.0);
        }
        for t in tags.of(i as u32) {
            if let Some(sum) = tag_sum.get(t) {
                add(sum, 1.0);
            }
        }
        *slot = normalized(acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_recovers_a_known_spectrum() {
        let a = ndarray::array![[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 5.0]];
        let (mut vals, vecs) = symmetric_eigen(&a);
        // A v = λ v for every pair.
        for (i, &l) in vals.iter().enumerate() {
            let v = vecs.column(i);
            let av = a.dot(&v);
            for r in 0..3 {
                assert!((av[r] - l * v[r]).abs() < 1e-9);
            }
        }
        vals.sort_by(f64::total_cmp);
        assert!((vals[0] - 1.0).abs() < 1e-9 && (vals[1] - 3.0).abs() < 1e-9 && (vals[2] - 5.0).abs() < 1e-9);
    }

    #[test]
    fn orthonormalize_gives_orthonormal_columns() {
        let mut rng = SplitMix64::new(1);
        let y = Array2::from_shape_fn((50, 6), |_| rng.normal() as f32);
        let q = orthonormalize(y);
        let g = q.t().dot(&q);
        for i in 0..6 {
            for j in 0..6 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((g[[i, j]] - want).abs() < 1e-3, "{i},{j}: {}", g[[i, j]]);
            }
        }
    }

    #[test]
    fn items_of_one_cluster_embed_close_together() {
        // Two clusters of 10 items co-occurring only within their cluster.
        let mut seqs = Vec::new();
        let mut rng = SplitMix64::new(7);
        for s in 0..400 {
            let base = if s % 2 == 0 { 0 } else { 10 };
            seqs.push((0..6).map(|_| base + (rng.next_u64() % 10) as u32).collect::<Vec<u32>>());
        }
        let pairs = crate::retrieval::covisit::pair_weights(&crate::retrieval::covisit::pair_counts(&seqs, 3));
        let vecs = learn(
            21,
            &pairs,
            &EmbeddingParams {
                dim: 4,
                ..Default::default()
            },
        );
        assert!(vecs[20].is_none(), "item 20 never occurs");
        let dot = |a: usize, b: usize| -> f32 {
            let (x, y) = (vecs[a].as_ref().unwrap(), vecs[b].as_ref().unwrap());
            x.iter().zip(y).map(|(p, q)| p * q).sum()
        };
        assert!(dot(0, 5) > dot(0, 15) + 0.3, "within {} vs across {}", dot(0, 5), dot(0, 15));
        let again = learn(
            21,
            &pairs,
            &EmbeddingParams {
                dim: 4,
                ..Default::default()
            },
        );
        assert_eq!(vecs, again, "deterministic for a seed");
    }
}
