//! Approximate nearest-neighbour search over dense `f32` vectors.
//!
//! The HNSW graph is *built* by `hnsw_rs` (good graph quality, parallel
//! insertion) and then copied into flat arrays: vectors contiguous by row,
//! neighbour lists per layer in CSR form. Searching the flat copy with a plain
//! beam search avoids `hnsw_rs`'s per-query locks, `Arc` clones and
//! allocations, which made it about twice as fast at equal recall in our
//! measurements. The `hnsw_rs` structure is dropped right after the copy.
//!
//! Distances returned by [`AnnIndex::search`] and [`AnnIndex::search_exact`]
//! (smaller is nearer in all cases):
//! * [`Metric::L2`]: **squared** Euclidean distance.
//! * [`Metric::Dot`]: the negated inner product, `-dot(q, x)`.
//! * [`Metric::Cosine`]: `1 - dot(q/|q|, x/|x|)`, in `[0, 2]` up to rounding
//!   (may be a hair below 0 for identical directions).

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use hnsw_rs::prelude::{DistL2, Distance, Hnsw};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::distance::{dot, dot_fn, half_kernels, l2_squared, l2_squared_fn, norm_squared_f64, normalize, to_f16_bits, HalfKernel};

/// How distances are measured.
///
/// `Cosine` normalises vectors at build time and queries at search time and
/// uses `1 - dot`; `L2` uses the squared Euclidean distance; `Dot` ranks by
/// largest inner product (distance `-dot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Metric {
    /// `1 - cos(q, x)`; vectors are stored normalised.
    Cosine,
    /// Squared Euclidean distance.
    L2,
    /// Negated inner product (maximum inner product search).
    Dot,
}

/// Graph build parameters.
///
/// Defaults: `m = 16`, `ef_construction = 200`, `parallel = true`.
///
/// There is deliberately no seed: `hnsw_rs`'s parallel insertion is
/// nondeterministic (thread races decide insertion order and hence the
/// graph), so two builds of the same data give slightly different graphs and
/// results. Use `parallel = false` for a single-threaded, order-stable build
/// (the level assignment inside `hnsw_rs` is still randomly drawn).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnnParams {
    /// Max neighbours per node on the upper layers (layer 0 keeps up to
    /// `2 * m`). Must be in `2..=256` (an `hnsw_rs` limit).
    pub m: usize,
    /// Beam width used while inserting; higher = better graph, slower build.
    /// Must be at least 1.
    pub ef_construction: usize,
    /// Insert with `hnsw_rs::parallel_insert` on the rayon pool.
    pub parallel: bool,
}

impl Default for AnnParams {
    fn default() -> Self {
        AnnParams {
            m: 16,
            ef_construction: 200,
            parallel: true,
        }
    }
}

/// Errors of the ANN module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnnError {
    /// The caller passed something unusable (bad dimension, non-finite
    /// values, zero vector under cosine, bad parameters, ...).
    #[error("invalid ANN input: {0}")]
    InvalidInput(String),
    /// A deserialised index failed [`AnnIndex::validate`].
    #[error("corrupt ANN index: {0}")]
    Corrupt(String),
    /// The graph builder (`hnsw_rs`) failed unexpectedly.
    #[error("ANN graph build failed: {0}")]
    Build(String),
}

/// Number of layers handed to `hnsw_rs` (its maximum).
const NB_LAYERS: usize = 16;

/// Upper bound on a vector's squared norm. With `|a|^2, |b|^2 <= MAX/4`, both
/// `|a - b|^2 <= 2|a|^2 + 2|b|^2` and `|a.b|` stay finite in `f32`, so no
/// distance can become `inf`/`NaN` (which would break heap ordering and trip
/// `hnsw_rs`'s `dist >= 0` assertions).
const MAX_NORM_SQUARED: f64 = (f32::MAX as f64) / 4.0;

/// One layer's adjacency in CSR form.
///
/// Layer 0 is dense (`nodes` is empty and node `i` is row `i`); upper layers
/// are sparse and list their member rows in `nodes`, strictly increasing, so a
/// row's slot is found by binary search. Upper layers are only walked a few
/// steps per query, so the lookup cost is irrelevant, while dense offsets for
/// every layer would cost `4 * n` bytes per layer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Csr {
    /// Member rows of a sparse (upper) layer; empty for layer 0.
    nodes: Vec<u32>,
    /// `offsets[i]..offsets[i + 1]` indexes `neighbours` for slot `i`.
    offsets: Vec<u32>,
    /// Neighbour rows, concatenated.
    neighbours: Vec<u32>,
}

impl Csr {
    /// Neighbours of slot `i`; empty if out of range (never panics).
    #[inline(always)]
    fn slot(&self, i: usize) -> &[u32] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&s), Some(&e)) => self.neighbours.get(s as usize..e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Neighbours of `row` in a sparse layer; empty if `row` is not a member.
    #[inline]
    fn sparse(&self, row: u32) -> &[u32] {
        match self.nodes.binary_search(&row) {
            Ok(i) => self.slot(i),
            Err(_) => &[],
        }
    }

    /// Builds a CSR from per-slot lists.
    fn from_lists(nodes: Vec<u32>, lists: &[Vec<u32>]) -> Result<Csr, AnnError> {
        let total: usize = lists.iter().map(Vec::len).sum();
        if u32::try_from(total).is_err() {
            return Err(AnnError::InvalidInput("graph has more than u32::MAX edges".into()));
        }
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        let mut neighbours = Vec::with_capacity(total);
        offsets.push(0u32);
        for l in lists {
            neighbours.extend_from_slice(l);
            // Cannot truncate: total fits in u32 (checked above).
            offsets.push(neighbours.len() as u32);
        }
        Ok(Csr {
            nodes,
            offsets,
            neighbours,
        })
    }
}

/// Everything that is serialised. Kept separate from [`AnnIndex`] so that
/// deserialisation goes through [`AnnIndex::validate`] before an index exists.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Graph {
    dim: usize,
    metric: Metric,
    n: usize,
    /// `n * dim` values, row-major, row = internal id (normalised for Cosine).
    vectors: Vec<f32>,
    /// Layer 0, dense.
    base: Csr,
    /// Layers `1..=max_level`, sparse; `upper[l - 1]` is layer `l`.
    upper: Vec<Csr>,
    /// Entry row; a member of the top layer. Meaningless when `n == 0`.
    entry: u32,
}

/// An immutable HNSW graph in flat arrays, searchable from many threads at
/// once (`Send + Sync`; a search only reads the index and uses thread-local
/// scratch space).
///
/// Serialises with serde (the owner uses bincode 2). Deserialising runs
/// [`AnnIndex::validate`] and fails on a corrupt structure, so every
/// `AnnIndex` in existence satisfies the invariants search relies on.
#[derive(Clone)]
pub struct AnnIndex {
    g: Graph,
    /// Search copy of layer 0 (see [`Packed`]); `None` when the CPU lacks
    /// the half-precision kernels or the values do not fit in `f16`. Derived
    /// from `g`, never serialised.
    packed: Option<Packed>,
}

/// One 64-byte cache line; the alignment makes a node's block start on a
/// line boundary so a block touches as few lines as possible.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u32; 16]);

/// Layer 0 laid out for search, one fixed-size block per row, like hnswlib:
/// `[degree, neighbour ids (max_degree slots), vector as f16 bits]`.
///
/// Why: the search is bound by memory latency, not arithmetic. Keeping the
/// neighbour list next to the vector means one prefetched block brings both,
/// and half precision halves the bytes per distance (a 784-dim row is 25
/// cache lines instead of 49). Distances computed on it are approximate, so
/// the final beam is re-scored exactly on the `f32` vectors before the top
/// `k` are cut: results and returned distances are exact `f32` ones.
#[derive(Clone)]
struct Packed {
    lines: Vec<Line>,
    /// Half-precision (L2, dot) kernels for this CPU.
    kernels: (HalfKernel, HalfKernel),
    /// Block size in `u32` words (a multiple of 16).
    stride: usize,
    /// Neighbour slots per block.
    max_degree: usize,
}

impl Packed {
    /// Builds the packed copy, or `None` if it cannot be used (no F16C, or a
    /// value outside the finite `f16` range).
    fn new(g: &Graph) -> Option<Packed> {
        let kernels = half_kernels()?;
        if g.n == 0 || g.dim == 0 || g.vectors.len() != g.n * g.dim || g.vectors.iter().any(|x| x.abs() > 65_000.0) {
            return None;
        }
        let max_degree = (0..g.n).map(|r| g.base.slot(r).len()).max().unwrap_or(0);
        let vec_words = g.dim.div_ceil(2);
        let stride = (1 + max_degree + vec_words).div_ceil(16) * 16;
        let total_lines = g.n.checked_mul(stride / 16)?;
        let mut lines = vec![Line([0; 16]); total_lines];
        let words = words_mut(&mut lines);
        for (row, v) in g.vectors.chunks_exact(g.dim).enumerate() {
            let block = words.get_mut(row * stride..(row + 1) * stride)?;
            let nbs = g.base.slot(row);
            // max_degree <= 2 * 256, so the degree fits.
            block[0] = nbs.len() as u32;
            block[1..1 + nbs.len()].copy_from_slice(nbs);
            for (i, pair) in v.chunks(2).enumerate() {
                let lo = u32::from(to_f16_bits(pair[0]));
                let hi = pair.get(1).map_or(0, |&x| u32::from(to_f16_bits(x)));
                // Little-endian halves, so the u16 view reads them in order.
                block[1 + max_degree + i] = if cfg!(target_endian = "little") {
                    lo | (hi << 16)
                } else {
                    (lo << 16) | hi
                };
            }
        }
        Some(Packed {
            lines,
            kernels,
            stride,
            max_degree,
        })
    }

    fn words(&self) -> &[u32] {
        // SAFETY: `Line` is `repr(C)` over `[u32; 16]` with no padding, so
        // `len` lines are exactly `16 * len` initialised, aligned `u32`s.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<u32>(), self.lines.len() * 16) }
    }
}

fn words_mut(lines: &mut [Line]) -> &mut [u32] {
    // SAFETY: as in `Packed::words`; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u32>(), lines.len() * 16) }
}

/// Reinterprets `u32` words as twice as many `u16`s (alignment 4 >= 2).
fn as_halves(words: &[u32]) -> &[u16] {
    // SAFETY: any bit pattern is a valid u16, the alignment of u32 covers
    // u16, and the length covers exactly the same bytes.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u16>(), words.len() * 2) }
}

/// What the layer-0 beam search needs from a layout.
trait Layer0 {
    /// Neighbours of `row` on layer 0.
    fn neighbours(&self, row: u32) -> &[u32];
    /// (Possibly approximate) distance from the prepared query to `row`.
    fn dist(&self, row: u32) -> f32;
    /// Starts fetching what `dist(row)` and `neighbours(row)` will read.
    fn prefetch(&self, row: u32);
}

/// Layer 0 over the `f32` vectors and the CSR lists.
struct FlatView<'a, F> {
    idx: &'a AnnIndex,
    q: &'a [f32],
    dist: F,
}

impl<F: Fn(&[f32], &[f32]) -> f32> Layer0 for FlatView<'_, F> {
    #[inline(always)]
    fn neighbours(&self, row: u32) -> &[u32] {
        self.idx.g.base.slot(row as usize)
    }
    #[inline(always)]
    fn dist(&self, row: u32) -> f32 {
        (self.dist)(self.q, self.idx.row_vec(row))
    }
    #[inline(always)]
    fn prefetch(&self, row: u32) {
        prefetch(self.idx.row_vec(row));
    }
}

/// Layer 0 over [`Packed`] blocks: distance `offset + sign * kernel(q, v)`.
struct PackedView<'a> {
    words: &'a [u32],
    stride: usize,
    max_degree: usize,
    dim: usize,
    q: &'a [f32],
    kernel: HalfKernel,
    sign: f32,
    offset: f32,
}

impl PackedView<'_> {
    #[inline(always)]
    fn block(&self, row: u32) -> &[u32] {
        let start = row as usize * self.stride;
        self.words.get(start..start + self.stride).unwrap_or(&[])
    }
}

impl Layer0 for PackedView<'_> {
    #[inline(always)]
    fn neighbours(&self, row: u32) -> &[u32] {
        let b = self.block(row);
        let deg = b.first().map_or(0, |&d| (d as usize).min(self.max_degree));
        b.get(1..1 + deg).unwrap_or(&[])
    }
    #[inline(always)]
    fn dist(&self, row: u32) -> f32 {
        let b = self.block(row);
        let v = as_halves(b.get(1 + self.max_degree..).unwrap_or(&[]));
        let v = v.get(..self.dim).unwrap_or(&[]);
        self.offset + self.sign * (self.kernel)(self.q, v)
    }
    #[inline(always)]
    fn prefetch(&self, row: u32) {
        prefetch(self.block(row));
    }
}

impl std::fmt::Debug for AnnIndex {
    // A summary only: the derived form would print every vector.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex")
            .field("n", &self.g.n)
            .field("dim", &self.g.dim)
            .field("metric", &self.g.metric)
            .field("layers", &(self.g.upper.len() + 1))
            .field(
                "edges",
                &(self.g.base.neighbours.len() + self.g.upper.iter().map(|c| c.neighbours.len()).sum::<usize>()),
            )
            .finish()
    }
}

impl Serialize for AnnIndex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.g.serialize(s)
    }
}

impl<'de> Deserialize<'de> for AnnIndex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut idx = AnnIndex {
            g: Graph::deserialize(d)?,
            packed: None,
        };
        // Untrusted bytes: refuse anything search could trip over, before
        // deriving the search layout from them.
        idx.validate().map_err(serde::de::Error::custom)?;
        idx.packed = Packed::new(&idx.g);
        Ok(idx)
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
fn prefetch<T>(v: &[T]) {
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

impl AnnIndex {
    /// Builds an index over `vectors` (`n * dim` values, row-major; row `i`
    /// gets internal id `i`, which is what search returns).
    ///
    /// Errors (never panics) on `dim == 0`, a length that is not a multiple
    /// of `dim`, non-finite values, a vector whose squared norm exceeds
    /// `f32::MAX / 4` (distances could overflow), a zero vector under
    /// `Cosine`, more than `i32::MAX` rows, or `m` outside `2..=256` /
    /// `ef_construction == 0`. `n == 0` gives a valid empty index.
    pub fn build(vectors: &[f32], dim: usize, metric: Metric, params: &AnnParams) -> Result<AnnIndex, AnnError> {
        AnnIndex::build_reporting(vectors, dim, metric, params, &|_| {})
    }

    /// [`AnnIndex::build`], calling `inserted(rows so far)` as insertion
    /// proceeds (from any thread).
    pub(crate) fn build_reporting(
        vectors: &[f32],
        dim: usize,
        metric: Metric,
        params: &AnnParams,
        inserted: &(dyn Fn(usize) + Sync),
    ) -> Result<AnnIndex, AnnError> {
        if dim == 0 {
            return Err(AnnError::InvalidInput("dim must be > 0".into()));
        }
        if vectors.len() % dim != 0 {
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
        if !(2..=256).contains(&params.m) {
            return Err(AnnError::InvalidInput(format!("m = {} not in 2..=256", params.m)));
        }
        if params.ef_construction == 0 {
            return Err(AnnError::InvalidInput("ef_construction must be > 0".into()));
        }

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
            let base = Csr {
                nodes: vec![],
                offsets: vec![0],
                neighbours: vec![],
            };
            let g = Graph {
                dim,
                metric,
                n,
                vectors: data,
                base,
                upper: vec![],
                entry: 0,
            };
            return Ok(AnnIndex::from_graph(g));
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

    /// Up to `k` nearest rows to `query`, nearest first, as `(row, distance)`
    /// (see the module docs for what the distance is per metric).
    ///
    /// `ef` is the beam width, clamped to `>= k`; larger is slower and more
    /// accurate. `accept(row)` filters results: rejected rows are still
    /// traversed (the graph stays connected) but never returned. With a
    /// filter, the beam keeps expanding until it holds `ef` *accepted* rows
    /// (or the reachable graph is exhausted), so recall holds up under
    /// selective filters at a cost of roughly `1 / selectivity` more distance
    /// computations; for extremely selective filters `search_exact` on a
    /// candidate list may be cheaper. If fewer than `k` rows pass, returns
    /// the passing rows that were reached.
    ///
    /// Errors on a query of the wrong dimension, with non-finite values, with
    /// a squared norm above `f32::MAX / 4`, or a zero query under `Cosine`.
    /// `k == 0` or an empty index give an empty result.
    ///
    /// Where the CPU has AVX2, FMA and F16C, the layer-0 walk reads a
    /// half-precision copy of the vectors laid out next to their neighbour
    /// lists (half the memory traffic), and the final `ef` rows are
    /// re-scored on the `f32` vectors, so returned distances are exact.
    pub fn search(&self, query: &[f32], k: usize, ef: usize, accept: impl Fn(u32) -> bool) -> Result<Vec<(u32, f32)>, AnnError> {
        self.check_query(query)?;
        if k == 0 || self.g.n == 0 {
            return Ok(Vec::new());
        }
        let ef = ef.max(k);
        let run = |s: &mut Scratch| self.search_with(s, query, k, ef, &accept);
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

    /// Exact brute-force search with the same contract as [`search`]
    /// (same distances, same filter semantics, same errors). Used for ground
    /// truth and tests; O(n * dim) per query.
    ///
    /// [`search`]: AnnIndex::search
    pub fn search_exact(&self, query: &[f32], k: usize, accept: impl Fn(u32) -> bool) -> Result<Vec<(u32, f32)>, AnnError> {
        self.check_query(query)?;
        if k == 0 || self.g.n == 0 {
            return Ok(Vec::new());
        }
        let mut q = query.to_vec();
        if self.g.metric == Metric::Cosine {
            // check_query already rejected zero queries.
            normalize(&mut q);
        }
        let mut best: BinaryHeap<Cand> = BinaryHeap::with_capacity(k.min(self.g.n) + 1);
        for (row, v) in self.g.vectors.chunks_exact(self.g.dim).enumerate() {
            // row < n <= i32::MAX, so the cast is lossless.
            let row = row as u32;
            if !accept(row) {
                continue;
            }
            let c = Cand {
                dist: self.dist(&q, v),
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

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.g.n
    }

    /// True if the index has no rows.
    pub fn is_empty(&self) -> bool {
        self.g.n == 0
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.g.dim
    }

    /// Distance metric.
    pub fn metric(&self) -> Metric {
        self.g.metric
    }

    /// The stored vector of `row` (for `Cosine`: the normalised vector), or
    /// `None` if `row >= len()`.
    pub fn vector(&self, row: u32) -> Option<&[f32]> {
        let start = (row as usize).checked_mul(self.g.dim)?;
        self.g.vectors.get(start..start.checked_add(self.g.dim)?)
    }

    /// Checks every invariant that search relies on, so that an index
    /// deserialised from untrusted bytes can never make search index out of
    /// bounds or loop forever: lengths agree, offsets start at 0, are
    /// monotone and end at the neighbour count, neighbour ids are `< n` and
    /// members of their layer, upper layers are nested, the entry point is
    /// in the top layer, vectors are finite with bounded norm (unit norm for
    /// `Cosine`). Linear in the index size (plus a binary search per upper
    /// layer node). Deserialisation calls it automatically.
    pub fn validate(&self) -> Result<(), AnnError> {
        let g = &self.g;
        let bad = |m: String| Err(AnnError::Corrupt(m));
        if g.dim == 0 {
            return bad("dim is 0".into());
        }
        if g.n > i32::MAX as usize {
            return bad(format!("n = {} too large", g.n));
        }
        match g.n.checked_mul(g.dim) {
            Some(len) if len == g.vectors.len() => {}
            _ => return bad(format!("vectors.len() = {} != n * dim", g.vectors.len())),
        }
        for (row, v) in g.vectors.chunks_exact(g.dim).enumerate() {
            if v.iter().any(|x| !x.is_finite()) {
                return bad(format!("row {row} has a non-finite value"));
            }
            let n2 = norm_squared_f64(v);
            if n2 > MAX_NORM_SQUARED {
                return bad(format!("row {row} has a too large norm"));
            }
            if g.metric == Metric::Cosine && (n2 - 1.0).abs() > 1e-3 {
                return bad(format!("row {row} is not unit length under Cosine"));
            }
        }

        // level[row] = highest layer the row belongs to.
        let mut level = vec![0u8; g.n];
        check_csr(&g.base, g.n, g.n, "layer 0")?;
        if !g.base.nodes.is_empty() {
            return bad("layer 0 must be dense".into());
        }
        if g.upper.len() >= NB_LAYERS {
            return bad(format!("{} upper layers", g.upper.len()));
        }
        for (i, layer) in g.upper.iter().enumerate() {
            let l = i + 1;
            let name = format!("layer {l}");
            check_csr(layer, layer.nodes.len(), g.n, &name)?;
            if layer.nodes.is_empty() {
                return bad(format!("{name} is empty"));
            }
            if layer.nodes.windows(2).any(|w| w[0] >= w[1]) {
                return bad(format!("{name} nodes not strictly increasing"));
            }
            for &r in &layer.nodes {
                // Nested layers: a member of layer l must be in layer l - 1.
                match level.get_mut(r as usize) {
                    Some(lv) if *lv as usize == l - 1 => *lv = l as u8,
                    Some(_) => return bad(format!("{name}: row {r} missing below")),
                    None => return bad(format!("{name}: node {r} >= n")),
                }
            }
        }
        // Neighbours must live in the layer they are listed in, otherwise
        // the descent could step onto a node with no list there.
        for (i, layer) in g.upper.iter().enumerate() {
            let l = i + 1;
            if layer
                .neighbours
                .iter()
                .any(|&r| level.get(r as usize).map_or(true, |&lv| (lv as usize) < l))
            {
                return bad(format!("layer {l} lists a neighbour outside the layer"));
            }
        }
        if g.n > 0 {
            match level.get(g.entry as usize) {
                Some(&lv) if lv as usize == g.upper.len() => {}
                _ => return bad(format!("entry point {} is not in the top layer", g.entry)),
            }
        } else if !g.upper.is_empty() {
            return bad("empty index with upper layers".into());
        }
        Ok(())
    }

    /// Rejects queries search cannot answer meaningfully.
    fn check_query(&self, query: &[f32]) -> Result<(), AnnError> {
        if query.len() != self.g.dim {
            return Err(AnnError::InvalidInput(format!(
                "query has dim {}, index has dim {}",
                query.len(),
                self.g.dim
            )));
        }
        if query.iter().any(|x| !x.is_finite()) {
            return Err(AnnError::InvalidInput("query has a non-finite value".into()));
        }
        let n2 = norm_squared_f64(query);
        if n2 > MAX_NORM_SQUARED {
            return Err(AnnError::InvalidInput("query norm too large".into()));
        }
        if self.g.metric == Metric::Cosine && n2 == 0.0 {
            return Err(AnnError::InvalidInput("zero query under Cosine".into()));
        }
        Ok(())
    }

    /// Distance under the index metric; `q` is already normalised for Cosine.
    #[inline(always)]
    fn dist(&self, q: &[f32], v: &[f32]) -> f32 {
        match self.g.metric {
            Metric::L2 => l2_squared(q, v),
            Metric::Dot => -dot(q, v),
            Metric::Cosine => 1.0 - dot(q, v),
        }
    }

    /// Wraps a graph with its derived search layout.
    fn from_graph(g: Graph) -> AnnIndex {
        let packed = Packed::new(&g);
        AnnIndex { g, packed }
    }

    /// True when searches run on the half-precision packed layout (with
    /// exact `f32` re-scoring of the final beam); false when they run on
    /// the `f32` vectors directly (CPU without AVX2/FMA/F16C, or values
    /// outside the `f16` range). For benchmark reports.
    pub fn uses_reduced_precision(&self) -> bool {
        self.packed.is_some()
    }

    /// Turns the half-precision search copy on (the default where the CPU
    /// supports it) or off. The copy costs `n * (2 * dim + 4 * 2m)` bytes
    /// on top of the `f32` vectors and makes search faster at equal recall;
    /// turn it off to save that memory or to compare. Results stay exact
    /// either way (the copy only steers the walk; see [`search`]).
    /// Turning it on is a no-op where it is unsupported.
    ///
    /// [`search`]: AnnIndex::search
    pub fn set_reduced_precision(&mut self, on: bool) {
        match (on, self.packed.is_some()) {
            (true, false) => self.packed = Packed::new(&self.g),
            (false, true) => self.packed = None,
            _ => {}
        }
    }

    fn search_with(&self, s: &mut Scratch, query: &[f32], k: usize, ef: usize, accept: &impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        // Reuse the scratch buffer for the (normalised, for Cosine) query;
        // take it out so `s` stays mutably borrowable.
        let mut q = std::mem::take(&mut s.query);
        q.clear();
        q.extend_from_slice(query);
        if self.g.metric == Metric::Cosine {
            normalize(&mut q);
        }
        // Monomorphise the hot loop per metric instead of matching per call,
        // and fetch the CPU-specific kernel once per query, not per distance.
        let l2 = l2_squared_fn();
        let dot = dot_fn();
        let r = match self.g.metric {
            Metric::L2 => self.search_metric(s, &q, k, ef, accept, l2),
            Metric::Dot => self.search_metric(s, &q, k, ef, accept, |a, b| -dot(a, b)),
            Metric::Cosine => self.search_metric(s, &q, k, ef, accept, |a, b| 1.0 - dot(a, b)),
        };
        s.query = q;
        r
    }

    /// Vector of `row`; empty for an out-of-range row (impossible after
    /// validate, and harmless: it just yields a meaningless distance).
    #[inline(always)]
    fn row_vec(&self, row: u32) -> &[f32] {
        let start = row as usize * self.g.dim;
        self.g.vectors.get(start..start + self.g.dim).unwrap_or(&[])
    }

    /// Greedy descent through the upper layers, beam search on layer 0 (on
    /// the packed layout when there is one, then exact re-scoring), cut to k.
    fn search_metric(
        &self,
        s: &mut Scratch,
        q: &[f32],
        k: usize,
        ef: usize,
        accept: &impl Fn(u32) -> bool,
        exact: impl Fn(&[f32], &[f32]) -> f32,
    ) -> Vec<(u32, f32)> {
        let g = &self.g;
        let mut cur = g.entry;
        let mut cur_d = exact(q, self.row_vec(cur));
        for layer in g.upper.iter().rev() {
            // Move to the best neighbour until none improves (ef = 1). The
            // strictly decreasing distance guarantees termination.
            loop {
                let mut changed = false;
                for &nb in layer.sparse(cur) {
                    let d = exact(q, self.row_vec(nb));
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

        if let Some(p) = &self.packed {
            let (l2h, doth) = p.kernels;
            let (kernel, sign, offset) = match g.metric {
                Metric::L2 => (l2h, 1.0, 0.0),
                Metric::Dot => (doth, -1.0, 0.0),
                Metric::Cosine => (doth, -1.0, 1.0),
            };
            let view = PackedView {
                words: p.words(),
                stride: p.stride,
                max_degree: p.max_degree,
                dim: g.dim,
                q,
                kernel,
                sign,
                offset,
            };
            let entry_d = view.dist(cur);
            beam(s, &view, g.n, cur, entry_d, ef, accept);
            // Re-score the whole final beam exactly: the half-precision
            // distances only steered the walk.
            let mut out: Vec<(u32, f32)> = s.best.drain().map(|c| (c.row, exact(q, self.row_vec(c.row)))).collect();
            out.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            out.truncate(k);
            out
        } else {
            let view = FlatView {
                idx: self,
                q,
                dist: &exact,
            };
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

/// Checks one CSR's shape: `slots + 1` offsets starting at 0, monotone,
/// ending at `neighbours.len()`, neighbour ids `< n`.
fn check_csr(c: &Csr, slots: usize, n: usize, name: &str) -> Result<(), AnnError> {
    let bad = |m: &str| Err(AnnError::Corrupt(format!("{name}: {m}")));
    if c.offsets.len() != slots + 1 {
        return bad("wrong number of offsets");
    }
    if c.offsets.first() != Some(&0) {
        return bad("offsets do not start at 0");
    }
    if c.offsets.windows(2).any(|w| w[0] > w[1]) {
        return bad("offsets not monotone");
    }
    if c.offsets.last().map(|&e| e as usize) != Some(c.neighbours.len()) {
        return bad("last offset != neighbour count");
    }
    if c.neighbours.iter().any(|&r| r as usize >= n) {
        return bad("neighbour id out of range");
    }
    Ok(())
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
    let hnsw: Hnsw<f32, D> = Hnsw::new(params.m, n, NB_LAYERS, params.ef_construction, dist);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate's seeded generator, with the draws these tests need.
    struct Rng(crate::rng::SplitMix64);
    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0.next_u64()
        }
        /// Uniform in [0, 1).
        fn unif(&mut self) -> f32 {
            self.0.next_f32()
        }
        /// Roughly normal (sum of uniforms), mean 0, sd 1.
        fn gauss(&mut self) -> f32 {
            (0..4).map(|_| self.unif()).sum::<f32>() * 1.732 - 3.464
        }
    }

    const DIM: usize = 32;

    /// `n` vectors around 25 random centres (clustered like real embeddings),
    /// with a spread of norms so Dot is not equivalent to Cosine.
    fn clustered(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng(crate::rng::SplitMix64::new(seed));
        let centres: Vec<f32> = (0..25 * DIM).map(|_| rng.gauss() * 2.0).collect();
        let mut out = Vec::with_capacity(n * DIM);
        for _ in 0..n {
            let c = (rng.next_u64() % 25) as usize;
            let scale = 0.5 + rng.unif();
            for j in 0..DIM {
                out.push((centres[c * DIM + j] + rng.gauss()) * scale);
            }
        }
        out
    }

    fn recall(idx: &AnnIndex, queries: &[f32], k: usize, ef: usize, accept: impl Fn(u32) -> bool + Copy) -> f64 {
        let (mut hit, mut total) = (0usize, 0usize);
        for q in queries.chunks_exact(idx.dim()) {
            let exact = idx.search_exact(q, k, accept).unwrap();
            let got = idx.search(q, k, ef, accept).unwrap();
            assert!(got.len() <= k);
            assert!(got.windows(2).all(|w| w[0].1 <= w[1].1), "not sorted");
            for &(r, _) in &got {
                assert!(accept(r), "rejected row {r} returned");
            }
            hit += got.iter().filter(|g| exact.iter().any(|e| e.0 == g.0)).count();
            total += exact.len();
        }
        hit as f64 / total.max(1) as f64
    }

    fn build(metric: Metric) -> AnnIndex {
        AnnIndex::build(&clustered(2000, 1), DIM, metric, &AnnParams::default()).unwrap()
    }

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
        let every7 = |r: u32| r % 7 == 0;
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
    fn edge_cases() {
        let p = AnnParams::default();
        // Empty index.
        let empty = AnnIndex::build(&[], 4, Metric::L2, &p).unwrap();
        assert!(empty.is_empty());
        assert!(empty.search(&[0.0; 4], 3, 10, |_| true).unwrap().is_empty());
        assert!(empty.search_exact(&[0.0; 4], 3, |_| true).unwrap().is_empty());
        assert!(empty.vector(0).is_none());
        empty.validate().unwrap();

        // Bad build inputs.
        assert!(matches!(AnnIndex::build(&[1.0], 0, Metric::L2, &p), Err(AnnError::InvalidInput(_))));
        assert!(AnnIndex::build(&[1.0, 2.0, 3.0], 2, Metric::L2, &p).is_err());
        assert!(AnnIndex::build(&[1.0, f32::NAN], 2, Metric::L2, &p).is_err());
        assert!(AnnIndex::build(&[1.0, f32::INFINITY], 2, Metric::L2, &p).is_err());
        assert!(AnnIndex::build(&[1.0, 3e38], 2, Metric::L2, &p).is_err());
        assert!(AnnIndex::build(&[1.0, 1.0, 0.0, 0.0], 2, Metric::Cosine, &p).is_err());
        for m in [0, 1, 257] {
            let bad = AnnParams { m, ..AnnParams::default() };
            assert!(AnnIndex::build(&[1.0, 1.0], 2, Metric::L2, &bad).is_err());
        }
        let bad = AnnParams {
            ef_construction: 0,
            ..AnnParams::default()
        };
        assert!(AnnIndex::build(&[1.0, 1.0], 2, Metric::L2, &bad).is_err());

        // Tiny indexes, k > n, k = 0, serial build.
        let serial = AnnParams {
            parallel: false,
            ..AnnParams::default()
        };
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            let one = AnnIndex::build(&[1.0, 2.0], 2, metric, &serial).unwrap();
            assert_eq!(one.search(&[1.0, 2.0], 5, 1, |_| true).unwrap().len(), 1);
            let data = clustered(30, 9);
            let idx = AnnIndex::build(&data, DIM, metric, &serial).unwrap();
            let q = &data[..DIM];
            let all = idx.search(q, 100, 1, |_| true).unwrap();
            assert_eq!(all.len(), 30, "{metric:?}: k > n returns every row");
            assert!(idx.search(q, 0, 10, |_| true).unwrap().is_empty());
            assert!(idx.search_exact(q, 0, |_| true).unwrap().is_empty());
            assert_eq!(idx.search_exact(q, 100, |_| true).unwrap().len(), 30);
        }

        // Bad queries.
        let idx = build(Metric::Cosine);
        assert!(idx.search(&[1.0; DIM - 1], 5, 10, |_| true).is_err());
        assert!(idx.search_exact(&[1.0; DIM + 1], 5, |_| true).is_err());
        let mut nan = vec![1.0; DIM];
        nan[3] = f32::NAN;
        assert!(idx.search(&nan, 5, 10, |_| true).is_err());
        assert!(idx.search_exact(&nan, 5, |_| true).is_err());
        assert!(idx.search(&[0.0; DIM], 5, 10, |_| true).is_err());
        assert!(idx.vector(2000).is_none());
        assert!(idx.vector(u32::MAX).is_none());
        assert_eq!(idx.vector(0).map(<[f32]>::len), Some(DIM));
    }

    #[test]
    fn packed_and_f32_layouts_agree() {
        // Where the CPU supports it, the half-precision layout only steers
        // the walk: returned distances are exact, and at a wide beam both
        // layouts find the exact neighbours.
        let queries = clustered(50, 8);
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            let mut idx = build(metric);
            let packed = idx.uses_reduced_precision();
            let with: Vec<_> = queries
                .chunks_exact(DIM)
                .map(|q| idx.search(q, 10, 200, |_| true).unwrap())
                .collect();
            idx.set_reduced_precision(false);
            assert!(!idx.uses_reduced_precision());
            for (q, got) in queries.chunks_exact(DIM).zip(&with) {
                let exact = idx.search_exact(q, 10, |_| true).unwrap();
                let flat = idx.search(q, 10, 200, |_| true).unwrap();
                let flat_hits = flat.iter().filter(|g| exact.contains(g)).count();
                assert!(flat_hits >= 9, "{metric:?} f32 layout: {flat_hits}/10");
                let hits = got.iter().filter(|g| exact.contains(g)).count();
                assert!(hits >= 9, "{metric:?} packed={packed}: {hits}/10 exact (row, distance) pairs");
            }
            idx.set_reduced_precision(true);
            assert_eq!(idx.uses_reduced_precision(), packed);
        }
        // Values outside the f16 range fall back to the f32 layout.
        let big: Vec<f32> = clustered(100, 9).iter().map(|x| x * 1e5).collect();
        let idx = AnnIndex::build(&big, DIM, Metric::L2, &AnnParams::default()).unwrap();
        assert!(!idx.uses_reduced_precision());
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

    #[test]
    fn serde_round_trip_and_validate() {
        let idx = build(Metric::Dot);
        let json = serde_json::to_string(&idx).unwrap();
        let back: AnnIndex = serde_json::from_str(&json).unwrap();
        let q = clustered(1, 7);
        assert_eq!(
            idx.search(&q, 10, 50, |_| true).unwrap(),
            back.search(&q, 10, 50, |_| true).unwrap()
        );
        assert!(!idx.g.upper.is_empty(), "2000 points should give upper layers");

        let corrupt = |f: &dyn Fn(&mut Graph)| {
            let mut bad = idx.clone();
            f(&mut bad.g);
            let e = bad.validate();
            assert!(matches!(e, Err(AnnError::Corrupt(_))), "{e:?}");
            // Deserialising the same bytes must fail as well.
            let json = serde_json::to_string(&bad).unwrap();
            assert!(serde_json::from_str::<AnnIndex>(&json).is_err());
        };
        corrupt(&|g| g.base.neighbours[10] = 2000);
        corrupt(&|g| g.base.offsets.swap(5, 6));
        corrupt(&|g| {
            *g.base.offsets.last_mut().unwrap() += 1;
        });
        corrupt(&|g| {
            g.base.offsets.pop();
        });
        corrupt(&|g| {
            g.vectors.pop();
        });
        corrupt(&|g| g.vectors[3] = f32::NAN);
        corrupt(&|g| g.n += 1);
        corrupt(&|g| g.dim = 0);
        corrupt(&|g| g.entry = 2000);
        corrupt(&|g| {
            // An entry that exists but is not in the top layer.
            let top = &g.upper[g.upper.len() - 1].nodes;
            g.entry = (0..2000).find(|r| !top.contains(r)).unwrap();
        });
        corrupt(&|g| g.upper[0].nodes.reverse());
        corrupt(&|g| g.upper[0].neighbours[0] = 2000);
        corrupt(&|g| {
            // Neighbour on layer 1 that is not a layer-1 node.
            let nodes = g.upper[0].nodes.clone();
            g.upper[0].neighbours[0] = (0..2000).find(|r| !nodes.contains(r)).unwrap();
        });
        corrupt(&|g| {
            // Upper layer not nested in the one below.
            let last = g.upper.len() - 1;
            let below: Vec<u32> = if last == 0 { vec![] } else { g.upper[last - 1].nodes.clone() };
            let stray = (0..2000).find(|r| !below.contains(r) && !g.upper[last].nodes.contains(r)).unwrap();
            if last == 0 {
                // Only one upper layer: add an empty layer 2 instead.
                g.upper.push(Csr {
                    nodes: vec![],
                    offsets: vec![0],
                    neighbours: vec![],
                });
            } else {
                g.upper[last].nodes.push(stray);
                g.upper[last].nodes.sort_unstable();
                let end = *g.upper[last].offsets.last().unwrap();
                g.upper[last].offsets.push(end);
            }
        });
        assert!(format!("{idx:?}").len() < 200, "Debug must not dump vectors");
        let mut cos = build(Metric::Cosine);
        cos.g.vectors[0] *= 3.0;
        assert!(cos.validate().is_err());
    }
}
