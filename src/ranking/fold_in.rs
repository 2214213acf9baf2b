//! A request's user vector folded into the learned item space, the way
//! implicit ALS folds in a new user (Hu, Koren & Volinsky 2008; Rendle et
//! al. 2022, "Revisiting the performance of iALS"): the vector `u` that
//! best predicts 1 for the context items and 0 for the catalog at large,
//!
//! ```text
//! u = argmin  Σ_{i∈H} (1 − u·y_i)² / |H|  +  β Σ_j (u·y_j)² / n  +  λ |u|²
//!   = (Σ_{i∈H} y_i y_iᵀ / |H| + β G + λ I)⁻¹ Σ_{i∈H} y_i / |H|,     G = Σ_j y_j y_jᵀ / n
//! ```
//!
//! A candidate's `fold_in` feature is `u·y`. The context vector (the
//! items' mean) ranks every direction the history points in alike; the
//! solve discounts the directions the whole catalog shares — popularity's
//! most of all — and weighs up what is distinctive in this history. On
//! ml-100k it adds 0.002–0.005 NDCG@10 to the served result, in each of
//! the ranker seeds measured; on the music demo's ten-play contexts it
//! costs about 0.003 (BENCHMARKS.md, "Recommendation quality").
//!
//! Every context item counts alike: this is the long-term taste, while
//! recency is what `context_sim`, `max_item_sim` and co-visitation already
//! carry. (Weighting the items by the request's recency weights measured
//! the same on the music demo, within the ranker seed's noise, and is
//! identical on ml-100k, whose requests weigh their items alike.)
//!
//! `G` is estimated once per engine from the stored vectors. A request
//! then costs `|H| · d² / 2` multiply-adds to form its matrix and `d³ / 6`
//! to solve it: about 0.45 million at `d = 64` and the [`MAX_ITEMS`] cap,
//! 0.04 ms measured for a one-item context. Spaces wider than [`MAX_DIM`]
//! (caller-supplied vectors, or a learned space built wider) get no
//! fold-in: the cubic solve would dominate the request.

use crate::linalg::cholesky_solve;

/// Weight of the whole catalog's "not chosen" against the context's
/// "chosen" (β above). Not tuned: iALS's usual balance of the two terms.
const CATALOG_WEIGHT: f64 = 1.0;
/// Ridge λ, relative to the mean eigenvalue of `G` (its trace over `d`).
/// One other value was measured: 1.0 scored ml-100k's validation split
/// 0.004 lower.
const RIDGE: f64 = 0.1;
/// Rows `G` is estimated from at most (an even stride over the rest): its
/// entries' sampling error is then about `1/√16384`, under 1% of the
/// vectors' squared norm, and the cost at open a few tens of milliseconds.
const MAX_GRAM_ROWS: usize = 16_384;
/// Widest space folded into.
const MAX_DIM: usize = 128;
/// Most recent context items a user vector is fitted to: a long history's
/// oldest items are dropped, which bounds the cost at 200 rank-one updates.
const MAX_ITEMS: usize = 200;

/// The catalog's side of the fold-in: `β G + λ I` of a learned space.
#[derive(Clone, Debug)]
pub(crate) struct FoldIn {
    /// The space's dimension `d`.
    dim: usize,
    /// `β G + λ I`, row-major `dim × dim`.
    base: Vec<f64>,
}

impl FoldIn {
    /// Estimates `G` from the rows `vector(0..n)`, of dimension `dim`
    /// (rows of another length are skipped); `None` for an empty space or
    /// one wider than [`MAX_DIM`].
    pub(crate) fn fit<'a>(n: usize, dim: usize, vector: impl Fn(u32) -> Option<&'a [f32]>) -> Option<FoldIn> {
        if n == 0 || dim == 0 || dim > MAX_DIM {
            return None;
        }
        let stride = n.div_ceil(MAX_GRAM_ROWS).max(1);
        let mut g = vec![0.0f64; dim * dim];
        let mut rows = 0usize;
        for v in (0..n).step_by(stride).filter_map(|r| u32::try_from(r).ok().and_then(&vector)) {
            if v.len() == dim {
                rows += 1;
                add_outer(&mut g, v, 1.0);
            }
        }
        if rows == 0 {
            return None;
        }
        symmetrise(&mut g, dim);
        let scale = CATALOG_WEIGHT / rows as f64;
        let trace: f64 = (0..dim).map(|i| g[i * dim + i]).sum::<f64>() / rows as f64;
        let ridge = RIDGE * trace.max(1e-12) / dim as f64;
        let mut base: Vec<f64> = g.iter().map(|x| x * scale).collect();
        for i in 0..dim {
            base[i * dim + i] += ridge;
        }
        Some(FoldIn { dim, base })
    }

    /// The user vector of the context items' `vectors` (most recent first;
    /// the first [`MAX_ITEMS`] of the right dimension count); `None`
    /// without one.
    pub(crate) fn user<'v>(&self, vectors: impl IntoIterator<Item = &'v [f32]>) -> Option<Vec<f32>> {
        let d = self.dim;
        let items: Vec<&[f32]> = vectors.into_iter().filter(|v| v.len() == d).take(MAX_ITEMS).collect();
        if items.is_empty() {
            return None;
        }
        let w = 1.0 / items.len() as f64;
        let mut a = vec![0.0f64; d * d];
        let mut b = vec![0.0f64; d];
        for &v in &items {
            add_outer(&mut a, v, w);
            b.iter_mut().zip(v).for_each(|(bi, &x)| *bi += w * f64::from(x));
        }
        symmetrise(&mut a, d);
        a.iter_mut().zip(&self.base).for_each(|(x, y)| *x += y);
        if !cholesky_solve(&mut a, &mut b, d) {
            return None;
        }
        let u: Vec<f32> = b.iter().map(|&x| x as f32).collect();
        u.iter().all(|x| x.is_finite()).then_some(u)
    }
}

/// Adds `w · v vᵀ` to the lower triangle of the `d × d` matrix `m`.
fn add_outer(m: &mut [f64], v: &[f32], w: f64) {
    let d = v.len();
    for (i, &a) in v.iter().enumerate() {
        let wa = w * f64::from(a);
        for (mij, &b) in m[i * d..i * d + i + 1].iter_mut().zip(v) {
            *mij += wa * f64::from(b);
        }
    }
}

/// Copies the lower triangle of `m` onto its upper one.
fn symmetrise(m: &mut [f64], d: usize) {
    for i in 0..d {
        for j in 0..i {
            m[j * d + i] = m[i * d + j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn basis(d: usize) -> Vec<Vec<f32>> {
        (0..d).map(|i| (0..d).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect()
    }

    #[test]
    fn an_orthonormal_catalog_folds_in_as_the_closed_form_says() {
        // G = I/d, so for a history of e_0 alone u = e_0 / (1 + (β + λ)/d).
        let d = 8;
        let rows = basis(d);
        let f = FoldIn::fit(d, d, |r| rows.get(r as usize).map(Vec::as_slice)).unwrap();
        let u = f.user([rows[0].as_slice()]).unwrap();
        let expect = 1.0 / (1.0 + (CATALOG_WEIGHT + RIDGE) / d as f64);
        assert!((f64::from(dot(&u, &rows[0])) - expect).abs() < 1e-6, "{u:?}");
        assert!(rows[1..].iter().all(|e| dot(&u, e).abs() < 1e-7));
    }

    #[test]
    fn the_direction_every_item_shares_is_discounted() {
        // Every item is a shared direction plus its own: a history's mean
        // points mostly along the shared one, the user vector does not.
        let d = 6;
        let n = 200;
        let rows: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                let mut v = vec![0.0f32; d];
                v[0] = 0.8;
                v[1 + i % (d - 1)] = 0.6;
                v
            })
            .collect();
        let f = FoldIn::fit(n, d, |r| rows.get(r as usize).map(Vec::as_slice)).unwrap();
        let u = f.user([rows[0].as_slice(), rows[5].as_slice()]).unwrap();
        // Items of the history's own direction (1) against items of another (2).
        let same = dot(&u, &rows[0]);
        let other = dot(&u, &rows[1]);
        let mean = &rows[0];
        assert!(dot(mean, &rows[1]) / dot(mean, &rows[0]) > 0.6, "the mean barely separates them");
        assert!(other / same < 0.3, "fold-in: same {same}, other {other}");
    }

    #[test]
    fn the_solve_satisfies_its_normal_equations() {
        let d = 5;
        let mut rng = crate::rng::SplitMix64::new(7);
        let rows: Vec<Vec<f32>> = (0..50).map(|_| (0..d).map(|_| rng.next_f32() - 0.5).collect()).collect();
        let f = FoldIn::fit(rows.len(), d, |r| rows.get(r as usize).map(Vec::as_slice)).unwrap();
        let history = [rows[3].as_slice(), rows[9].as_slice()];
        let u = f.user(history).unwrap();
        // (Σ y yᵀ / |H| + base) u = Σ y / |H|.
        let mut a = f.base.clone();
        let mut b = vec![0.0f64; d];
        for v in history {
            let w = 0.5;
            for i in 0..d {
                b[i] += w * f64::from(v[i]);
                for j in 0..d {
                    a[i * d + j] += w * f64::from(v[i]) * f64::from(v[j]);
                }
            }
        }
        for i in 0..d {
            let lhs: f64 = (0..d).map(|j| a[i * d + j] * f64::from(u[j])).sum();
            assert!((lhs - b[i]).abs() < 1e-5, "row {i}: {lhs} against {}", b[i]);
        }
    }

    #[test]
    fn nothing_to_fold_in_gives_none() {
        let rows = basis(4);
        let f = FoldIn::fit(4, 4, |r| rows.get(r as usize).map(Vec::as_slice)).unwrap();
        assert!(f.user([]).is_none());
        assert!(f.user([&[1.0f32, 0.0][..]]).is_none(), "wrong dimension");
        let nan = [f32::NAN; 4];
        assert!(f.user([nan.as_slice()]).is_none(), "not finite");
        assert!(FoldIn::fit(0, 4, |_| None).is_none());
        assert!(FoldIn::fit(4, 4, |_| None).is_none(), "no row has a vector");
        let wide = vec![0.1f32; MAX_DIM + 1];
        assert!(FoldIn::fit(1, MAX_DIM + 1, |_| Some(wide.as_slice())).is_none());
    }
}
