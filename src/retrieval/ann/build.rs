//! Building an index: the input checks, then the `hnsw_rs` adapter. This is
//! the one file that knows the graph builder is `hnsw_rs`.
//!
//! The HNSW graph is *built* by `hnsw_rs` (good graph quality, parallel
//! insertion) and then copied into flat arrays: vectors contiguous by row,
//! neighbour lists per layer in CSR form. Searching the flat copy with a plain
//! beam search avoids `hnsw_rs`'s per-query locks, `Arc` clones and
//! allocations, which made it about twice as fast at equal recall in our
//! measurements. The `hnsw_rs` structure is dropped right after the copy.
//!
//! `hnsw_rs`'s parallel insertion is nondeterministic (thread races decide
//! insertion order and hence the graph), which is why [`AnnParams`] has no
//! seed; with `parallel = false` the insertion order is stable, but the level
//! assignment inside `hnsw_rs` is still randomly drawn. The bounds on `m`
//! ([`AnnParams::MIN_M`]`..=`[`AnnParams::MAX_M`]) are `hnsw_rs` limits (see
//! [`build_index`]), `MAX_LAYERS` is its maximum number of layers, and
//! `MAX_NORM_SQUARED` keeps distances finite, which its `dist >= 0`
//! assertions need.

use std::panic::{catch_unwind, AssertUnwindSafe};

use hnsw_rs::prelude::{DistL2, Distance, Hnsw};

use super::graph::{Csr, Graph, MAX_LAYERS, MAX_NORM_SQUARED};
use super::{AnnError, AnnIndex, AnnParams, Metric};
use crate::vector::{dot, norm_squared_f64, normalize};

/// The body of [`AnnIndex::build_reporting`] (see [`AnnIndex::build`] for
/// the contract).
pub(super) fn build_index(
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    params: &AnnParams,
    inserted: &(dyn Fn(usize) + Sync),
) -> Result<AnnIndex, AnnError> {
    if dim == 0 {
        return Err(AnnError::InvalidInput("dim must be > 0".into()));
    }
    if !vectors.len().is_multiple_of(dim) {
        return Err(AnnError::InvalidInput(format!(
            "vectors.len() = {} is not a multiple of dim = {dim}",
            vectors.len()
        )));
    }
    // hnsw_rs stores in-layer positions as i32, our ids are u32.
    let n = vectors.len() / dim;
    if n > i32::MAX as usize {
        return Err(AnnError::InvalidInput(format!("too many rows: {n}")));
    }
    // hnsw_rs calls process::exit for m > 256, and m < 2 makes its level
    // scale 1/ln(m) infinite.
    params.validate()?;

    let mut data = vectors.to_vec();
    let mut max_norm2 = 0.0f64;
    for (row, v) in data.chunks_exact_mut(dim).enumerate() {
        if v.iter().any(|x| !x.is_finite()) {
            return Err(AnnError::InvalidInput(format!("row {row} has a non-finite value")));
        }
        let n2 = norm_squared_f64(v);
        if n2 > MAX_NORM_SQUARED {
            return Err(AnnError::InvalidInput(format!("row {row} has a too large norm")));
        }
        max_norm2 = max_norm2.max(n2);
        if metric == Metric::Cosine && !normalize(v) {
            return Err(AnnError::InvalidInput(format!(
                "row {row} is a zero vector, which has no cosine direction"
            )));
        }
    }

    if n == 0 {
        return Ok(AnnIndex::from_graph(Graph::empty(dim, metric)));
    }
    // hnsw_rs may panic on internal assertions; turn that into an error
    // rather than unwinding through the caller.
    let built = catch_unwind(AssertUnwindSafe(|| match metric {
        Metric::L2 => from_hnsw(&insert_all(&data, dim, params, DistL2, inserted), data, dim, metric),
        Metric::Cosine => from_hnsw(&insert_all(&data, dim, params, BuildCosine, inserted), data, dim, metric),
        Metric::Dot => {
            // Pad the shift by a relative epsilon so rounding in the f32
            // dot of a vector with itself cannot go negative.
            let shift = (max_norm2 * (1.0 + 1e-5)) as f32;
            from_hnsw(&insert_all(&data, dim, params, BuildDot { shift }, inserted), data, dim, metric)
        }
    }));
    match built {
        Ok(r) => r,
        Err(_) => Err(AnnError::Build("hnsw_rs panicked".into())),
    }
}

/// Cosine distance used while building. Vectors are already normalised, so
/// `1 - dot` is in `[0, 2]`; clamp at 0 because `hnsw_rs` asserts distances
/// are non-negative and rounding can give `-1e-7` (anndists' `DistDot` itself
/// asserts `dot <= 1.000002`, which rounding on long vectors can violate).
struct BuildCosine;
impl Distance<f32> for BuildCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Inner-product distance used while building: `shift - dot` with `shift` =
/// the largest squared norm in the data set. By Cauchy-Schwarz this is
/// non-negative for any pair of data vectors (as `hnsw_rs` requires), and as
/// a constant shift of `-dot` it leaves every comparison `hnsw_rs` makes (beam
/// order and its neighbour-selection heuristic) identical to ranking by
/// `-dot`, i.e. the usual "inner product space" HNSW graph.
struct BuildDot {
    shift: f32,
}
impl Distance<f32> for BuildDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.shift - dot(a, b)).max(0.0)
    }
}

/// Inserts every row of `data` into a fresh `hnsw_rs` graph, data id = row,
/// so hnsw_rs's origin ids map straight back to rows.
fn insert_all<D: Distance<f32> + Send + Sync>(
    data: &[f32],
    dim: usize,
    params: &AnnParams,
    dist: D,
    inserted: &(dyn Fn(usize) + Sync),
) -> Hnsw<'static, f32, D> {
    let n = data.len() / dim.max(1);
    // MAX_LAYERS (16) is hnsw_rs's maximum number of layers.
    let hnsw: Hnsw<f32, D> = Hnsw::new(params.m, n, MAX_LAYERS, params.ef_construction, dist);
    let rows: Vec<(&[f32], usize)> = data.chunks_exact(dim.max(1)).zip(0..n).collect();
    // In chunks, so progress can be reported between them; each chunk is
    // still inserted in parallel, and the graph is the same kind of graph.
    let mut done = 0;
    for chunk in rows.chunks(crate::progress::REPORT_EVERY) {
        if params.parallel {
            hnsw.parallel_insert_slice(&chunk.to_vec());
        } else {
            for &r in chunk {
                hnsw.insert_slice(r);
            }
        }
        done += chunk.len();
        inserted(done);
    }
    hnsw
}

/// Copies a built `hnsw_rs` graph (data ids = rows of `vectors`) into an
/// [`AnnIndex`]. `vectors` must be what was inserted (normalised for Cosine).
/// `pub(crate)` so benchmarks can compare hnsw_rs's own search on the very
/// same graph.
pub(crate) fn from_hnsw<D: Distance<f32> + Send + Sync>(
    hnsw: &Hnsw<'_, f32, D>,
    vectors: Vec<f32>,
    dim: usize,
    metric: Metric,
) -> Result<AnnIndex, AnnError> {
    let n = vectors.len() / dim.max(1);
    let (base, upper, entry) = copy_graph(hnsw, n)?;
    let idx = AnnIndex::from_graph(Graph {
        dim,
        metric,
        n,
        vectors,
        base,
        upper,
        entry,
    });
    // Cheap (linear) and turns any surprise in hnsw_rs's output into an
    // error here instead of wrong answers later.
    idx.validate().map_err(|e| AnnError::Build(e.to_string()))?;
    Ok(idx)
}

/// Reads the neighbour lists of every point out of `hnsw` into CSR layers.
fn copy_graph<D: Distance<f32> + Send + Sync>(hnsw: &Hnsw<'_, f32, D>, n: usize) -> Result<(Csr, Vec<Csr>, u32), AnnError> {
    let pi = hnsw.get_point_indexation();
    let top = pi.get_max_level_observed() as usize;
    // level[row] = layer the point lives on in hnsw_rs (its max layer).
    let mut level: Vec<Option<u8>> = vec![None; n];
    // Layer-0 lists indexed by row; upper layers as (row, list) pairs,
    // sorted and compacted below.
    let mut base_lists: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut upper_rows: Vec<Vec<(u32, Vec<u32>)>> = vec![Vec::new(); top];
    for layer in 0..=top {
        for p in pi.get_layer_iterator(layer) {
            let row = p.get_origin_id();
            let Some(slot) = level.get_mut(row) else {
                return Err(AnnError::Build(format!("hnsw_rs returned unknown id {row}")));
            };
            if slot.is_some() {
                return Err(AnnError::Build(format!("hnsw_rs returned id {row} twice")));
            }
            *slot = Some(layer as u8);
            for (l, nbs) in p.get_neighborhood_id().into_iter().enumerate().take(layer + 1) {
                // Ids are < n <= i32::MAX (checked on the way in; filtered
                // again here in case hnsw_rs hands back something odd).
                let ids: Vec<u32> = nbs
                    .iter()
                    .map(|nb| nb.get_origin_id())
                    .filter(|&r| r < n && r != row)
                    .map(|r| r as u32)
                    .collect();
                if l == 0 {
                    if let Some(dst) = base_lists.get_mut(row) {
                        *dst = ids;
                    }
                } else if let Some(dst) = upper_rows.get_mut(l - 1) {
                    dst.push((row as u32, ids));
                }
            }
        }
    }
    if level.iter().any(Option::is_none) {
        return Err(AnnError::Build("hnsw_rs lost some points".into()));
    }
    // Entry point: any member of the top layer works for greedy descent; the
    // first one inserted there is also what hnsw_rs itself uses.
    let entry = pi
        .get_layer_iterator(top)
        .next()
        .map(|p| p.get_origin_id() as u32)
        .ok_or_else(|| AnnError::Build("empty top layer".into()))?;

    let lv = |r: u32| level.get(r as usize).copied().flatten().unwrap_or(0) as usize;
    let base = Csr::from_lists(Vec::new(), &base_lists)?;
    drop(base_lists);
    let mut upper = Vec::with_capacity(top);
    for (i, mut rows) in upper_rows.into_iter().enumerate() {
        let l = i + 1;
        rows.sort_unstable_by_key(|(r, _)| *r);
        // Keep only neighbours that really are on this layer, so the
        // structure passes validate() whatever hnsw_rs did.
        let (nodes, ls): (Vec<u32>, Vec<Vec<u32>>) = rows
            .into_iter()
            .map(|(r, ids)| (r, ids.into_iter().filter(|&x| lv(x) >= l).collect()))
            .unzip();
        upper.push(Csr::from_lists(nodes, &ls)?);
    }
    Ok((base, upper, entry))
}
