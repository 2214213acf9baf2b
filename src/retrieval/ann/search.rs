//! The search: per-thread scratch buffers, the greedy descent through the
//! upper layers and the beam search on layer 0 (over either layout), and the
//! exact brute-force search with the same contract.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::graph::{Graph, MAX_NORM_SQUARED};
use super::{AnnError, AnnIndex, Metric};
use crate::vector::{dot, dot_fn, l2_squared, l2_squared_fn, norm_squared_f64, normalize};

/// What the layer-0 beam search needs from a layout.
pub(super) trait Layer0 {
    /// Neighbours of `row` on layer 0.
    fn neighbours(&self, row: u32) -> &[u32];
    /// (Possibly approximate) distance from the prepared query to `row`.
    fn dist(&self, row: u32) -> f32;
    /// Starts fetching what `dist(row)` and `neighbours(row)` will read.
    fn prefetch(&self, row: u32);
}

/// Layer 0 over the `f32` vectors and the CSR lists.
struct FlatView<'a, F> {
    g: &'a Graph,
    q: &'a [f32],
    dist: F,
}

impl<F: Fn(&[f32], &[f32]) -> f32> Layer0 for FlatView<'_, F> {
    #[inline(always)]
    fn neighbours(&self, row: u32) -> &[u32] {
        self.g.base.slot(row as usize)
    }
    #[inline(always)]
    fn dist(&self, row: u32) -> f32 {
        (self.dist)(self.q, self.g.row_vec(row))
    }
    #[inline(always)]
    fn prefetch(&self, row: u32) {
        prefetch(self.g.row_vec(row));
    }
}

/// Candidate in a heap: ordered by distance, ties by row for determinism.
#[derive(Clone, Copy, Debug)]
struct Cand {
    dist: f32,
    row: u32,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        // total_cmp: a total order even for NaN, so heaps never misbehave.
        self.dist.total_cmp(&o.dist).then(self.row.cmp(&o.row))
    }
}

/// Per-thread reusable search state, so a query allocates only its result.
#[derive(Default)]
struct Scratch {
    /// `visited[row] == epoch` means visited in the current query; bumping the
    /// epoch clears the set in O(1).
    visited: Vec<u32>,
    epoch: u32,
    /// Min-heap of nodes still to expand.
    candidates: BinaryHeap<Reverse<Cand>>,
    /// Max-heap of the best `ef` accepted nodes found so far.
    best: BinaryHeap<Cand>,
    /// Normalised copy of the query (Cosine only).
    query: Vec<f32>,
    /// Unvisited neighbours of the node being expanded.
    fresh: Vec<u32>,
}

impl Scratch {
    /// Starts a new query over `n` rows: grows `visited` and advances the
    /// epoch, resetting the array only when the counter wraps.
    fn begin(&mut self, n: usize) {
        if self.visited.len() < n {
            self.visited.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.visited.iter_mut().for_each(|v| *v = 0);
            self.epoch = 1;
        }
        self.candidates.clear();
        self.best.clear();
    }

    /// Marks `row` visited; returns false if it already was.
    #[inline(always)]
    fn visit(&mut self, row: u32) -> bool {
        match self.visited.get_mut(row as usize) {
            Some(v) if *v != self.epoch => {
                *v = self.epoch;
                true
            }
            // Already visited, or out of range (impossible after validate):
            // either way do not expand it.
            _ => false,
        }
    }
}

/// How many neighbour vectors ahead of the current one to prefetch.
const PREFETCH_AHEAD: usize = 2;

/// Hints the CPU to pull the memory of `v` into cache. Only a hint: it
/// cannot fault, and on targets without a prefetch intrinsic it does nothing.
#[inline(always)]
pub(super) fn prefetch<T>(v: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // One hint per 64-byte cache line.
        let bytes = std::mem::size_of_val(v);
        let base = v.as_ptr().cast::<i8>();
        for offset in (0..bytes).step_by(64) {
            // SAFETY: prefetch never faults, and `base + offset` stays inside
            // the live slice; SSE is part of the x86_64 baseline. (`unsafe` is
            // needed before Rust 1.87, where the intrinsic became safe.)
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(base.add(offset));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The body of [`AnnIndex::search`] (see there for the contract).
pub(super) fn search(
    idx: &AnnIndex,
    query: &[f32],
    k: usize,
    ef: usize,
    accept: impl Fn(u32) -> bool,
) -> Result<Vec<(u32, f32)>, AnnError> {
    let g = &idx.g;
    check_query(g, query)?;
    if k == 0 || g.n == 0 {
        return Ok(Vec::new());
    }
    let ef = ef.max(k);
    let run = |s: &mut Scratch| search_with(idx, s, query, k, ef, &accept);
    // `try_borrow_mut` because `accept` may itself search on this thread;
    // `try_with` because this may run during thread-local destruction.
    let out = SCRATCH.try_with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => run(&mut s),
        Err(_) => run(&mut Scratch::default()),
    });
    match out {
        Ok(r) => Ok(r),
        Err(_) => Ok(run(&mut Scratch::default())),
    }
}

/// The body of [`AnnIndex::search_exact`] (see there for the contract), on
/// the graph `g`.
pub(super) fn search_exact(g: &Graph, query: &[f32], k: usize, accept: impl Fn(u32) -> bool) -> Result<Vec<(u32, f32)>, AnnError> {
    // row < n <= i32::MAX, so the cast is lossless.
    search_rows(g, query, k, (0..g.n).map(|r| r as u32), accept)
}

/// Exact search over `rows` only (rows out of range are skipped): what a
/// filter that lets few rows through scans instead of walking the graph.
pub(super) fn search_rows(
    g: &Graph,
    query: &[f32],
    k: usize,
    rows: impl IntoIterator<Item = u32>,
    accept: impl Fn(u32) -> bool,
) -> Result<Vec<(u32, f32)>, AnnError> {
    check_query(g, query)?;
    if k == 0 || g.n == 0 {
        return Ok(Vec::new());
    }
    let mut q = query.to_vec();
    if g.metric == Metric::Cosine {
        // check_query already rejected zero queries.
        normalize(&mut q);
    }
    let mut best: BinaryHeap<Cand> = BinaryHeap::with_capacity(k.min(g.n) + 1);
    for row in rows {
        let start = row as usize * g.dim;
        let Some(v) = g.vectors.get(start..start + g.dim) else {
            continue;
        };
        if !accept(row) {
            continue;
        }
        let c = Cand {
            dist: dist(g.metric, &q, v),
            row,
        };
        if best.len() < k {
            best.push(c);
        } else if best.peek().is_some_and(|w| c < *w) {
            best.pop();
            best.push(c);
        }
    }
    Ok(best.into_sorted_vec().into_iter().map(|c| (c.row, c.dist)).collect())
}

/// Rejects queries search cannot answer meaningfully.
fn check_query(g: &Graph, query: &[f32]) -> Result<(), AnnError> {
    if query.len() != g.dim {
        return Err(AnnError::InvalidInput(format!(
            "query has dim {}, index has dim {}",
            query.len(),
            g.dim
        )));
    }
    if query.iter().any(|x| !x.is_finite()) {
        return Err(AnnError::InvalidInput("query has a non-finite value".into()));
    }
    let n2 = norm_squared_f64(query);
    if n2 > MAX_NORM_SQUARED {
        return Err(AnnError::InvalidInput("query norm too large".into()));
    }
    if g.metric == Metric::Cosine && n2 == 0.0 {
        return Err(AnnError::InvalidInput("zero query under Cosine".into()));
    }
    Ok(())
}

/// Distance under `metric`; `q` is already normalised for Cosine.
#[inline(always)]
pub(super) fn dist(metric: Metric, q: &[f32], v: &[f32]) -> f32 {
    match metric {
        Metric::L2 => l2_squared(q, v),
        Metric::Dot => -dot(q, v),
        Metric::Cosine => 1.0 - dot(q, v),
    }
}

fn search_with(idx: &AnnIndex, s: &mut Scratch, query: &[f32], k: usize, ef: usize, accept: &impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
    let g = &idx.g;
    // Reuse the scratch buffer for the (normalised, for Cosine) query;
    // take it out so `s` stays mutably borrowable.
    let mut q = std::mem::take(&mut s.query);
    q.clear();
    q.extend_from_slice(query);
    if g.metric == Metric::Cosine {
        normalize(&mut q);
    }
    // Monomorphise the hot loop per metric instead of matching per call,
    // and fetch the CPU-specific kernel once per query, not per distance.
    let l2 = l2_squared_fn();
    let dot = dot_fn();
    let r = match g.metric {
        Metric::L2 => search_metric(idx, s, &q, k, ef, accept, l2),
        Metric::Dot => search_metric(idx, s, &q, k, ef, accept, |a, b| -dot(a, b)),
        Metric::Cosine => search_metric(idx, s, &q, k, ef, accept, |a, b| 1.0 - dot(a, b)),
    };
    s.query = q;
    r
}

/// Greedy descent through the upper layers, beam search on layer 0 (on
/// the packed layout when there is one, then exact re-scoring), cut to k.
fn search_metric(
    idx: &AnnIndex,
    s: &mut Scratch,
    q: &[f32],
    k: usize,
    ef: usize,
    accept: &impl Fn(u32) -> bool,
    exact: impl Fn(&[f32], &[f32]) -> f32,
) -> Vec<(u32, f32)> {
    let g = &idx.g;
    let mut cur = g.entry;
    let mut cur_d = exact(q, g.row_vec(cur));
    for layer in g.upper.iter().rev() {
        // Move to the best neighbour until none improves (ef = 1). The
        // strictly decreasing distance guarantees termination.
        loop {
            let mut changed = false;
            for &nb in layer.sparse(cur) {
                let d = exact(q, g.row_vec(nb));
                if d < cur_d {
                    cur_d = d;
                    cur = nb;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    if let Some(p) = &idx.packed {
        let view = p.view(g.metric, g.dim, q);
        let entry_d = view.dist(cur);
        beam(s, &view, g.n, cur, entry_d, ef, accept);
        // Re-score the whole final beam exactly: the half-precision
        // distances only steered the walk.
        let mut out: Vec<(u32, f32)> = s.best.drain().map(|c| (c.row, exact(q, g.row_vec(c.row)))).collect();
        out.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    } else {
        let view = FlatView { g, q, dist: &exact };
        beam(s, &view, g.n, cur, cur_d, ef, accept);
        let mut out: Vec<(u32, f32)> = Vec::with_capacity(k.min(s.best.len()));
        // `best` holds <= ef entries; keep the k nearest in order.
        while s.best.len() > k {
            s.best.pop();
        }
        while let Some(c) = s.best.pop() {
            out.push((c.row, c.dist));
        }
        out.reverse();
        out
    }
}

/// Beam search on layer 0 from `entry`; leaves the best `ef` accepted rows
/// in `s.best`.
fn beam<L: Layer0>(s: &mut Scratch, layer: &L, n: usize, entry: u32, entry_d: f32, ef: usize, accept: &impl Fn(u32) -> bool) {
    s.begin(n);
    s.visit(entry);
    s.candidates.push(Reverse(Cand { dist: entry_d, row: entry }));
    if accept(entry) {
        s.best.push(Cand { dist: entry_d, row: entry });
    }
    while let Some(Reverse(c)) = s.candidates.pop() {
        // Stop once the nearest unexpanded node is worse than the worst
        // of a full beam: nothing reachable through it can improve it.
        let worst = match s.best.peek() {
            Some(w) if s.best.len() >= ef => w.dist,
            _ => f32::INFINITY,
        };
        if c.dist > worst {
            break;
        }
        // The next candidate to expand is known now: start fetching its
        // neighbour list while this one's neighbours are scored.
        if let Some(Reverse(next)) = s.candidates.peek() {
            layer.prefetch(next.row);
        }
        // Two passes: first collect the unvisited neighbours and start
        // fetching their vectors, then compute distances. The search is
        // bound by memory latency (rows sit in random places), and this
        // overlaps the fetch of the next rows with arithmetic on this one.
        let mut fresh = std::mem::take(&mut s.fresh);
        fresh.clear();
        for &nb in layer.neighbours(c.row) {
            if s.visit(nb) {
                fresh.push(nb);
            }
        }
        for &nb in fresh.iter().take(PREFETCH_AHEAD) {
            layer.prefetch(nb);
        }
        for (i, &nb) in fresh.iter().enumerate() {
            if let Some(&next) = fresh.get(i + PREFETCH_AHEAD) {
                layer.prefetch(next);
            }
            let d = layer.dist(nb);
            let worst = match s.best.peek() {
                Some(w) if s.best.len() >= ef => w.dist,
                _ => f32::INFINITY,
            };
            if d < worst {
                // Rejected rows are expanded too, to keep the graph
                // connected under filters, but never enter `best`.
                s.candidates.push(Reverse(Cand { dist: d, row: nb }));
                if accept(nb) {
                    s.best.push(Cand { dist: d, row: nb });
                    if s.best.len() > ef {
                        s.best.pop();
                    }
                }
            }
        }
        s.fresh = fresh;
    }
}

#[cfg(test)]
mod tests {
    use crate::retrieval::ann::tests::{build, clustered, recall, DIM};
    use crate::retrieval::ann::{AnnIndex, Metric};

    #[test]
    fn recall_each_metric() {
        let queries = clustered(100, 2);
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            let idx = build(metric);
            assert_eq!(idx.len(), 2000);
            let r = recall(&idx, &queries, 10, 64, |_| true);
            eprintln!("{metric:?} recall@10 = {r:.4}");
            assert!(r >= 0.95, "{metric:?} recall {r}");
        }
    }

    #[test]
    fn distances_match_exact() {
        let idx = build(Metric::Cosine);
        let q = &clustered(1, 3)[..];
        let got = idx.search(q, 5, 200, |_| true).unwrap();
        let exact = idx.search_exact(q, 5, |_| true).unwrap();
        assert_eq!(got, exact);
        // Cosine distance of a stored vector to itself is ~0.
        let v = idx.vector(7).unwrap().to_vec();
        let hit = idx.search(&v, 1, 50, |_| true).unwrap();
        assert!(hit[0].1.abs() < 1e-5);
    }

    #[test]
    fn filter_returns_only_accepted_and_keeps_recall() {
        let queries = clustered(100, 4);
        let every7 = |r: u32| r.is_multiple_of(7);
        for metric in [Metric::L2, Metric::Dot] {
            let idx = build(metric);
            let r = recall(&idx, &queries, 10, 64, every7);
            eprintln!("{metric:?} filtered (1/7) recall@10 = {r:.4}");
            assert!(r >= 0.95, "{metric:?} filtered recall {r}");
        }
        // A filter passing only 3 rows returns exactly those.
        let idx = build(Metric::L2);
        let few = |r: u32| r == 5 || r == 500 || r == 1999;
        let got = idx.search(&queries[..DIM], 10, 10, few).unwrap();
        let mut rows: Vec<u32> = got.iter().map(|g| g.0).collect();
        rows.sort_unstable();
        assert_eq!(rows, vec![5, 500, 1999]);
        assert!(idx.search(&queries[..DIM], 10, 10, |_| false).unwrap().is_empty());
    }

    #[test]
    fn reentrant_search_from_filter() {
        // `accept` searching the same index on the same thread must not
        // panic on the thread-local scratch borrow.
        let idx = build(Metric::L2);
        let q = clustered(1, 5);
        let got = idx
            .search(&q, 5, 20, |r| r % 2 == 0 && !idx.search(&q, 1, 5, |_| true).unwrap().is_empty())
            .unwrap();
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn concurrent_search() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<AnnIndex>();
        let idx = build(Metric::L2);
        let queries = clustered(40, 6);
        std::thread::scope(|s| {
            for part in queries.chunks(10 * DIM) {
                let idx = &idx;
                s.spawn(move || {
                    for q in part.chunks_exact(DIM) {
                        assert_eq!(idx.search(q, 10, 40, |_| true).unwrap().len(), 10);
                    }
                });
            }
        });
    }
}
