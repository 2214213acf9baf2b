//! A linear item-item model, EASE (Steck, "Embarrassingly Shallow
//! Autoencoders for Sparse Data", WWW 2019): the item × item weights `B`
//! that best rebuild each user's plays from their other plays,
//! `min ‖X − XB‖² + λ‖B‖²` with `diag(B) = 0`, over the binary user × item
//! play matrix `X`. A user's score for item `j` is `Σ_{i ∈ history} B[i, j]`.
//!
//! Column `j` of `B` is the ridge regression of item `j`'s plays on the
//! other items' plays, so it can be fitted two ways, by catalog size:
//!
//! - **exact**, up to [`LinearParams::max_dense_items`]: the closed form
//!   `B = I − P · diag(1 / diag P)`, `P = (XᵀX + λI)⁻¹`, one dense inverse
//!   (n³ work, 8·n² bytes);
//! - **restricted**, beyond: item `j` is regressed only on its
//!   [`LinearParams::neighbourhood`] items of strongest co-occurrence, one
//!   small solve per item (EASE/SLIM restricted to a neighbourhood): pairs
//!   never played together get no weight, where exact EASE may give them a
//!   small one through the others. Where every pair co-occurs and the
//!   neighbourhood holds every other item, it is the same model.
//!
//! Each item keeps its [`LinearParams::top_k`] largest outgoing weights,
//! strongest first, as co-visitation lists are kept.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::events::{EventKind, Events};
use crate::sparse::Csr;

/// Linear item-item build parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LinearParams {
    /// L2 regularisation λ: larger favours popular, well-supported pairs.
    /// Default 500 (the usual EASE value for MovieLens-sized logs; choose
    /// it on held-out requests, as the evaluation harness does).
    pub lambda: f32,
    /// Extra regularisation of each item in proportion to its own play
    /// count, `λ_i = λ + α · plays_i` (the emphasised-denoising form of
    /// EASE, Steck, "Autoencoders that don't overfit towards the Identity",
    /// NeurIPS 2020: dropout on the input with probability p is α = p/(1−p)).
    /// It damps the weights that popular items give and get. Default 0 (plain EASE).
    pub alpha: f32,
    /// Weights kept per item, strongest first. Default 1,000: on
    /// MovieLens-100K (1,016 items, fitted exactly) keeping 200 lost the
    /// retriever 0.002 NDCG@10 against EASE with every weight (0.2941
    /// against 0.2961); a restricted fit stores about `neighbourhood`
    /// weights per item on average whatever this is.
    pub top_k: usize,
    /// Items each item is regressed on when the catalog is above
    /// `max_dense_items`. Default 128.
    pub neighbourhood: usize,
    /// Largest catalog fitted exactly by one dense inverse. Default 4,000
    /// (8·n² bytes: 128 MB, a few seconds on 2 cores).
    pub max_dense_items: usize,
}

setters!(LinearParams {
    lambda: f32,
    alpha: f32,
    top_k: usize,
    neighbourhood: usize,
    max_dense_items: usize
});

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams {
            lambda: 500.0,
            alpha: 0.0,
            top_k: 1_000,
            neighbourhood: 128,
            max_dense_items: 4_000,
        }
    }
}

impl LinearParams {
    /// Largest `max_dense_items` accepted (8·n² bytes: 3.2 GB).
    pub const MAX_DENSE_LIMIT: usize = 20_000;
    /// Largest `neighbourhood` accepted (a k³ solve per item).
    pub const MAX_NEIGHBOURHOOD: usize = 1_024;

    /// Co-occurrence partners the fit reads per item, over `n` items:
    /// every one for an exact fit (`None`), else the `neighbourhood`
    /// strongest.
    pub(crate) fn partners_needed(&self, n: usize) -> Option<usize> {
        (n > self.max_dense_items).then_some(self.neighbourhood)
    }

    /// Why these parameters cannot be used, if they cannot.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return Err(format!("linear lambda must be a finite number above 0, not {}", self.lambda));
        }
        if !(self.alpha.is_finite() && (0.0..=100.0).contains(&self.alpha)) {
            return Err(format!("linear alpha must be in [0, 100], not {}", self.alpha));
        }
        if self.top_k > 100_000 {
            return Err(format!("linear top_k must be at most 100000, not {}", self.top_k));
        }
        if !(1..=Self::MAX_NEIGHBOURHOOD).contains(&self.neighbourhood) {
            return Err(format!(
                "linear neighbourhood must be 1..={}, not {}",
                Self::MAX_NEIGHBOURHOOD,
                self.neighbourhood
            ));
        }
        if self.max_dense_items > Self::MAX_DENSE_LIMIT {
            return Err(format!(
                "linear max_dense_items must be at most {}, not {}",
                Self::MAX_DENSE_LIMIT,
                self.max_dense_items
            ));
        }
        Ok(())
    }
}

/// Which way a model was fitted (reported by the build).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fit {
    /// No plays: no weights.
    Empty,
    /// The dense closed form.
    Exact,
    /// Per-item regressions on co-occurrence neighbourhoods.
    Restricted,
}

impl Fit {
    /// As the build statistics name it.
    pub fn name(self) -> &'static str {
        match self {
            Fit::Empty => "none",
            Fit::Exact => "exact",
            Fit::Restricted => "restricted",
        }
    }
}

/// Per-item outgoing weights `B[i, ·]`, strongest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct LinearItemItem {
    lists: Csr,
}

impl LinearItemItem {
    /// Fits on the plays in `events` over `n` items.
    #[cfg(any(test, feature = "harness"))]
    pub fn fit(n: usize, events: &Events, p: &LinearParams) -> (LinearItemItem, Fit) {
        LinearItemItem::fit_counts(&Cooccurrence::count(n, events, p.partners_needed(n)), p)
    }

    /// Fits on co-occurrence counts, which must keep at least
    /// [`LinearParams::partners_needed`] partners per item (the builder
    /// checks it for artefacts it is handed).
    pub fn fit_counts(c: &Cooccurrence, p: &LinearParams) -> (LinearItemItem, Fit) {
        let n = c.rows.len();
        if c.rows.iter().all(|r| r.partners.is_empty() && r.own == 0) {
            return (
                LinearItemItem {
                    lists: Csr::from_rows(vec![Vec::new(); n]),
                },
                Fit::Empty,
            );
        }
        let reg = Regularisation {
            lambda: f64::from(p.lambda),
            alpha: f64::from(p.alpha),
        };
        let (rows, fit) = if n <= p.max_dense_items {
            (exact(c, reg), Fit::Exact)
        } else {
            (transpose(n, restricted(c, reg, p.neighbourhood)), Fit::Restricted)
        };
        // Each row cut to its top_k weights by magnitude (negative weights
        // matter: without them the model is not EASE).
        let rows = rows
            .into_par_iter()
            .map(|mut row| {
                // Not finite only from counts that are no Gram matrix (damaged
                // artefacts): dropped, never served.
                row.retain(|&(_, w)| w != 0.0 && w.is_finite());
                row.sort_unstable_by(|x, y| y.1.abs().total_cmp(&x.1.abs()).then(x.0.cmp(&y.0)));
                row.truncate(p.top_k);
                row
            })
            .collect();
        (
            LinearItemItem {
                lists: Csr::from_rows(rows),
            },
            fit,
        )
    }

    /// The weights of `item` towards other items, strongest first.
    #[cfg(test)]
    pub fn weights(&self, item: u32) -> (&[u32], &[f32]) {
        self.lists.row(item as usize)
    }

    /// Sums `weight × B[item, ·]` over context items into a score per
    /// item. Context items themselves may appear; callers filter.
    pub fn aggregate(&self, context: &[(u32, f32)]) -> HashMap<u32, f32> {
        self.lists.weighted_sum(context)
    }

    /// Stored weights.
    pub fn nnz(&self) -> usize {
        self.lists.nnz()
    }

    pub fn validate(&self, n: usize) -> Result<(), String> {
        self.lists.validate(n, n)
    }
}

/// The diagonal added to the Gram matrix: `λ + α · G_ii`.
#[derive(Clone, Copy)]
struct Regularisation {
    lambda: f64,
    alpha: f64,
}

impl Regularisation {
    fn of(self, plays: f64) -> f64 {
        self.lambda + self.alpha * plays
    }
}

/// For each of `n` rows, the columns `key` gives the plays of that row,
/// sorted, once each (items → their users, or users → their items).
fn play_lists(n: usize, events: &Events, key: impl Fn(&crate::events::Event) -> (u32, u32)) -> Vec<Vec<u32>> {
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); n];
    for e in events.events().iter().filter(|e| e.kind == EventKind::Play) {
        let (row, col) = key(e);
        if let Some(list) = lists.get_mut(row as usize) {
            list.push(col);
        }
    }
    lists.par_iter_mut().for_each(|l| {
        l.sort_unstable();
        l.dedup();
    });
    lists
}

/// Columns `(j ← i, w)` of an `n × n` matrix as its rows `(i → j, w)`.
fn transpose(n: usize, columns: Vec<Vec<(u32, f32)>>) -> Vec<Vec<(u32, f32)>> {
    let t = columns
        .into_iter()
        .enumerate()
        .flat_map(|(j, col)| col.into_iter().map(move |(i, w)| (i, j as u32, w)))
        .collect();
    let full = Csr::from_triplets(n, n, t);
    (0..n)
        .map(|i| {
            let (cols, vals) = full.row(i);
            cols.iter().copied().zip(vals.iter().copied()).collect()
        })
        .collect()
}

/// One item's co-occurrence counts: the statistics the fit reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CooccurrenceRow {
    /// Users who played the item.
    pub own: u32,
    /// Other items and the users who played both, by item id; all of
    /// them, or the strongest (most users, ties by smaller id) where the
    /// counts were cut ([`Cooccurrence::kept`]).
    pub partners: Vec<(u32, u32)>,
}

/// Per-item co-occurrence counts over users' distinct plays: the Gram
/// matrix `XᵀX` of the linear model, whole or cut to each item's strongest
/// partners. Integers, so every producer (this build, or a Spark job writing
/// log artefacts) agrees exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cooccurrence {
    /// One row per item.
    pub rows: Vec<CooccurrenceRow>,
    /// Partners kept per item, or `None` for all of them.
    pub kept: Option<usize>,
}

impl Cooccurrence {
    /// Counts the plays in `events` over `n` items, keeping `kept` partners
    /// per item (`None`: all).
    pub fn count(n: usize, events: &Events, kept: Option<usize>) -> Cooccurrence {
        let users = play_lists(n, events, |e| (e.item, e.user));
        let histories = play_lists(events.users().len(), events, |e| (e.user, e.item));
        let rows = (0..n)
            .into_par_iter()
            .map_init(
                || (vec![0u32; n], Vec::new()),
                |(counts, touched), i| {
                    let mut all = cooccurrence(i, &users, &histories, counts, touched);
                    let own = all.iter().find(|&&(j, _)| j as usize == i).map_or(0, |&(_, c)| c);
                    all.retain(|&(j, _)| j as usize != i);
                    CooccurrenceRow {
                        own,
                        partners: strongest(all, kept),
                    }
                },
            )
            .collect();
        Cooccurrence { rows, kept }
    }
}

/// `partners` cut to the `kept` strongest (most users, ties by smaller
/// id), then sorted by item id.
pub(crate) fn strongest(mut partners: Vec<(u32, u32)>, kept: Option<usize>) -> Vec<(u32, u32)> {
    if let Some(k) = kept {
        let by_count = |x: &(u32, u32), y: &(u32, u32)| y.1.cmp(&x.1).then(x.0.cmp(&y.0));
        if k == 0 {
            partners.clear();
        } else if partners.len() > k {
            partners.select_nth_unstable_by(k - 1, by_count);
            partners.truncate(k);
        }
    }
    partners.sort_unstable_by_key(|&(j, _)| j);
    partners
}

/// Co-occurrence counts of item `i` with every item (itself included),
/// through the users who played it; `counts` is all zeros on entry and on
/// exit, `touched` lists the items counted.
fn cooccurrence(i: usize, users: &[Vec<u32>], histories: &[Vec<u32>], counts: &mut [u32], touched: &mut Vec<u32>) -> Vec<(u32, u32)> {
    touched.clear();
    for &u in users.get(i).map(Vec::as_slice).unwrap_or(&[]) {
        for &j in histories.get(u as usize).map(Vec::as_slice).unwrap_or(&[]) {
            let c = &mut counts[j as usize];
            if *c == 0 {
                touched.push(j);
            }
            *c += 1;
        }
    }
    let out = touched.iter().map(|&j| (j, counts[j as usize])).collect();
    for &j in touched.iter() {
        counts[j as usize] = 0;
    }
    out
}

/// Exact EASE: every row of `B` from one dense inverse.
fn exact(c: &Cooccurrence, reg: Regularisation) -> Vec<Vec<(u32, f32)>> {
    let n = c.rows.len();
    let mut gram = vec![0f64; n * n];
    gram.par_chunks_mut(n).zip(&c.rows).enumerate().for_each(|(i, (row, counts))| {
        for &(j, users) in &counts.partners {
            if let Some(g) = row.get_mut(j as usize) {
                *g = f64::from(users);
            }
        }
        let own = f64::from(counts.own);
        row[i] = own + reg.of(own);
    });
    invert_spd(&mut gram, n);
    let p = gram;
    // B[i, j] = −P[i, j] / P[j, j]: row i needs only row i and the diagonal.
    let diagonal: Vec<f64> = (0..n).map(|j| p[j * n + j]).collect();
    p.par_chunks(n)
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .zip(&diagonal)
                .enumerate()
                .filter(|&(j, (&v, _))| j != i && v != 0.0)
                .map(|(j, (&v, &pjj))| (j as u32, (-v / pjj) as f32))
                .collect()
        })
        .collect()
}

/// Restricted EASE: column `j` is the ridge regression of item `j` on its
/// `k` strongest co-occurring items.
fn restricted(c: &Cooccurrence, reg: Regularisation, k: usize) -> Vec<Vec<(u32, f32)>> {
    let n = c.rows.len();
    // Each item's own count and its k strongest co-occurrences, sorted by
    // item so the Gram entries among a neighbourhood are binary searches.
    let cut: Vec<CooccurrenceRow>;
    let rows: &[CooccurrenceRow] = if c.kept.is_some_and(|kept| kept <= k) {
        &c.rows
    } else {
        cut = c
            .rows
            .par_iter()
            .map(|r| CooccurrenceRow {
                own: r.own,
                partners: strongest(r.partners.clone(), Some(k)),
            })
            .collect();
        &cut
    };
    let gram = |a: u32, b: u32| -> f64 {
        let lookup = |x: u32, y: u32| {
            let r = &rows[x as usize].partners;
            r.binary_search_by_key(&y, |&(j, _)| j).ok().map(|p| r[p].1)
        };
        f64::from(lookup(a, b).or_else(|| lookup(b, a)).unwrap_or(0))
    };
    (0..n)
        .into_par_iter()
        .map(|j| {
            let neighbours = &rows[j].partners;
            let m = neighbours.len();
            if m == 0 {
                return Vec::new();
            }
            let mut a = vec![0f64; m * m];
            for (x, &(ix, _)) in neighbours.iter().enumerate() {
                let plays = f64::from(rows[ix as usize].own);
                a[x * m + x] = plays + reg.of(plays);
                for (y, &(iy, _)) in neighbours.iter().enumerate().skip(x + 1) {
                    let g = gram(ix, iy);
                    a[x * m + y] = g;
                    a[y * m + x] = g;
                }
            }
            let mut w: Vec<f64> = neighbours.iter().map(|&(_, c)| f64::from(c)).collect();
            if !crate::linalg::cholesky_solve(&mut a, &mut w, m) {
                return Vec::new();
            }
            neighbours.iter().zip(w).map(|(&(i, _), w)| (i, w as f32)).collect()
        })
        .collect()
}

/// Inverts the symmetric positive-definite `n × n` matrix `a` (row-major) in
/// place by Gauss–Jordan elimination; no pivoting is needed for SPD input.
pub(crate) fn invert_spd(a: &mut [f64], n: usize) {
    for k in 0..n {
        let pivot = a[k * n + k];
        let mut row_k: Vec<f64> = a[k * n..(k + 1) * n].iter().map(|x| x / pivot).collect();
        row_k[k] = 1.0 / pivot;
        a.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            if i == k {
                row.copy_from_slice(&row_k);
                return;
            }
            let f = row[k];
            if f == 0.0 {
                return;
            }
            row[k] = 0.0;
            row.iter_mut().zip(&row_k).for_each(|(x, rk)| *x -= f * rk);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Item};
    use crate::events::Event;

    fn plays(n_items: u32, sets: &[&[u32]]) -> Events {
        let catalog = Catalog::new((0..n_items).map(|i| Item::new(format!("i{i}"), "t")).collect()).unwrap();
        let events = sets
            .iter()
            .enumerate()
            .flat_map(|(u, set)| {
                set.iter().enumerate().map(move |(t, &item)| Event {
                    user: u as u32,
                    item,
                    ts: (u * 100 + t) as i64,
                    kind: EventKind::Play,
                    query: None,
                    session: None,
                })
            })
            .collect();
        Events::from_events((0..sets.len()).map(|u| format!("u{u}")).collect(), events, &catalog).unwrap()
    }

    fn weight(m: &LinearItemItem, a: u32, b: u32) -> f32 {
        let (c, v) = m.weights(a);
        c.iter().position(|&x| x == b).map_or(0.0, |p| v[p])
    }

    #[test]
    fn the_inverse_is_an_inverse() {
        let n = 4;
        let g = [4.0, 1.0, 0.5, 0.0, 1.0, 3.0, 0.2, 0.1, 0.5, 0.2, 2.0, 0.3, 0.0, 0.1, 0.3, 1.5];
        let mut p = g.to_vec();
        invert_spd(&mut p, n);
        for i in 0..n {
            for j in 0..n {
                let dot: f64 = (0..n).map(|m| g[i * n + m] * p[m * n + j]).sum();
                assert!((dot - f64::from(u8::from(i == j))).abs() < 1e-12, "({i},{j}) = {dot}");
            }
        }
    }

    #[test]
    fn items_played_together_point_to_each_other() {
        let mut sets: Vec<&[u32]> = Vec::new();
        for u in 0..20 {
            sets.push(if u % 2 == 0 { &[0, 1, 4] } else { &[2, 3] });
        }
        let events = plays(5, &sets);
        let (m, fit) = LinearItemItem::fit(5, &events, &LinearParams::default().lambda(1.0));
        assert_eq!(fit, Fit::Exact);
        assert!(weight(&m, 0, 1) > 0.0 && weight(&m, 3, 2) > 0.0);
        assert_eq!(weight(&m, 0, 2), 0.0, "never played together");
        let scores = m.aggregate(&[(0, 1.0)]);
        assert!(scores.get(&1).copied().unwrap_or(0.0) > 0.0 && !scores.contains_key(&3));
        assert!(m.validate(5).is_ok());
    }

    #[test]
    fn a_neighbourhood_of_every_item_is_exact_ease() {
        // Overlapping tastes over 6 items, so the weights are all distinct;
        // the last user played everything, so every pair co-occurs.
        let sets: Vec<&[u32]> = vec![
            &[0, 1, 2, 3, 4, 5],
            &[0, 1, 2],
            &[1, 2, 3],
            &[2, 3, 4],
            &[3, 4, 5],
            &[0, 5],
            &[0, 2, 4],
            &[1, 3, 5],
            &[0, 1],
            &[4, 5, 1],
            &[2, 5],
        ];
        let events = plays(6, &sets);
        let p = LinearParams::default().lambda(2.0);
        let (dense, f1) = LinearItemItem::fit(6, &events, &p);
        let (sparse, f2) = LinearItemItem::fit(6, &events, &p.clone().max_dense_items(0).neighbourhood(5));
        assert_eq!((f1, f2), (Fit::Exact, Fit::Restricted));
        for a in 0..6 {
            for b in 0..6 {
                let (x, y) = (weight(&dense, a, b), weight(&sparse, a, b));
                assert!((x - y).abs() < 1e-5, "B[{a},{b}]: exact {x}, restricted {y}");
            }
        }
        assert!(dense.nnz() > 6, "the test compares real weights");
        // A smaller neighbourhood keeps only the strongest pairs.
        let (small, _) = LinearItemItem::fit(6, &events, &p.max_dense_items(0).neighbourhood(1));
        assert!(small.nnz() <= 6);
    }

    #[test]
    fn no_plays_no_weights_and_bad_parameters_are_named() {
        let events = plays(3, &[]);
        let (m, fit) = LinearItemItem::fit(3, &events, &LinearParams::default());
        assert_eq!((fit, m.nnz()), (Fit::Empty, 0));
        assert!(m.validate(3).is_ok());
        assert!(LinearParams::default().lambda(0.0).check().unwrap_err().contains("lambda"));
        assert!(LinearParams::default().lambda(f32::NAN).check().is_err());
        assert!(LinearParams::default().alpha(-1.0).check().unwrap_err().contains("alpha"));
        assert!(LinearParams::default()
            .neighbourhood(0)
            .check()
            .unwrap_err()
            .contains("neighbourhood"));
        assert!(LinearParams::default().max_dense_items(1 << 20).check().is_err());
        assert!(LinearParams::default().check().is_ok());
    }
}
