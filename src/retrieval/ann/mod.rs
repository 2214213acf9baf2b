//! Approximate nearest-neighbour search over dense `f32` vectors.
//!
//! The HNSW graph is *built* by the graph builder (`build.rs`, the adapter to
//! the HNSW crate that builds it: good graph quality, parallel insertion) and
//! then copied into flat arrays: vectors contiguous by row, neighbour lists
//! per layer in CSR form (`graph.rs`). Searching the flat copy with a plain
//! beam search (`search.rs`) avoids the builder's per-query locks, `Arc`
//! clones and allocations, which made it about twice as fast at equal recall
//! in our measurements. The builder's structure is dropped right after the
//! copy. Where the CPU allows, layer 0 also gets a half-precision copy laid
//! out for search (`packed.rs`).
//!
//! Distances returned by [`AnnIndex::search`] and [`AnnIndex::search_exact`]
//! (smaller is nearer in all cases):
//! * [`Metric::L2`]: **squared** Euclidean distance.
//! * [`Metric::Dot`]: the negated inner product, `-dot(q, x)`.
//! * [`Metric::Cosine`]: `1 - dot(q/|q|, x/|x|)`, in `[0, 2]` up to rounding
//!   (may be a hair below 0 for identical directions).

mod build;
mod graph;
mod packed;
mod search;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use graph::Graph;
use packed::Packed;

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

impl Metric {
    /// The distance of `v` from `q` as the index measures it (`q` already
    /// normalised under `Cosine`, as stored vectors are).
    pub(crate) fn distance(self, q: &[f32], v: &[f32]) -> f32 {
        search::dist(self, q, v)
    }
}

/// Graph build parameters.
///
/// Defaults: `m = 16`, `ef_construction = 200`, `parallel = true`. The
/// bounds are checked by [`AnnParams::validate`].
///
/// There is deliberately no seed: the graph builder's parallel insertion is
/// nondeterministic (thread races decide insertion order and hence the
/// graph), so two builds of the same data give slightly different graphs and
/// results. Use `parallel = false` for a single-threaded, order-stable build
/// (the level assignment inside the graph builder is still randomly drawn).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AnnParams {
    /// Max neighbours per node on the upper layers (layer 0 keeps up to
    /// `2 * m`). Must be in `2..=256` ([`AnnParams::MIN_M`] to
    /// [`AnnParams::MAX_M`], a limit of the graph builder).
    pub m: usize,
    /// Beam width used while inserting; higher = better graph, slower build.
    /// Must be in `1..=10000` ([`AnnParams::MIN_EF_CONSTRUCTION`] to
    /// [`AnnParams::MAX_EF_CONSTRUCTION`]).
    pub ef_construction: usize,
    /// Insert in parallel on the rayon pool.
    pub parallel: bool,
}

setters!(AnnParams {
    m: usize,
    ef_construction: usize,
    parallel: bool
});

impl Default for AnnParams {
    fn default() -> Self {
        AnnParams {
            m: 16,
            ef_construction: 200,
            parallel: true,
        }
    }
}

impl AnnParams {
    /// Smallest allowed [`AnnParams::m`].
    pub const MIN_M: usize = 2;
    /// Largest allowed [`AnnParams::m`].
    pub const MAX_M: usize = 256;
    /// Smallest allowed [`AnnParams::ef_construction`].
    pub const MIN_EF_CONSTRUCTION: usize = 1;
    /// Largest allowed [`AnnParams::ef_construction`].
    pub const MAX_EF_CONSTRUCTION: usize = 10_000;

    /// Checks the parameters against their bounds, the one place they are
    /// defined:
    /// * `m` in `2..=256` ([`AnnParams::MIN_M`]`..=`[`AnnParams::MAX_M`]);
    /// * `ef_construction` in `1..=10000`
    ///   ([`AnnParams::MIN_EF_CONSTRUCTION`]`..=`[`AnnParams::MAX_EF_CONSTRUCTION`]).
    ///
    /// Errors with [`AnnError::InvalidInput`] naming the first parameter out
    /// of range. [`AnnIndex::build`] calls it before building.
    pub fn validate(&self) -> Result<(), AnnError> {
        if !(Self::MIN_M..=Self::MAX_M).contains(&self.m) {
            return Err(AnnError::InvalidInput(format!(
                "m = {} not in {}..={}",
                self.m,
                Self::MIN_M,
                Self::MAX_M
            )));
        }
        if !(Self::MIN_EF_CONSTRUCTION..=Self::MAX_EF_CONSTRUCTION).contains(&self.ef_construction) {
            return Err(AnnError::InvalidInput(format!(
                "ef_construction = {} not in {}..={}",
                self.ef_construction,
                Self::MIN_EF_CONSTRUCTION,
                Self::MAX_EF_CONSTRUCTION
            )));
        }
        Ok(())
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
    /// The graph builder failed unexpectedly.
    #[error("ANN graph build failed: {0}")]
    Build(String),
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

impl std::fmt::Debug for AnnIndex {
    // A summary only: the derived form would print every vector.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex")
            .field("n", &self.g.n)
            .field("dim", &self.g.dim)
            .field("metric", &self.g.metric)
            .field("layers", &(self.g.upper.len() + 1))
            .field("edges", &self.g.edges())
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

impl AnnIndex {
    /// Builds an index over `vectors` (`n * dim` values, row-major; row `i`
    /// gets internal id `i`, which is what search returns).
    ///
    /// Errors (never panics) on `dim == 0`, a length that is not a multiple
    /// of `dim`, non-finite values, a vector whose squared norm exceeds
    /// `f32::MAX / 4` (distances could overflow), a zero vector under
    /// `Cosine`, more than `i32::MAX` rows, or parameters that fail
    /// [`AnnParams::validate`] (`m` outside `2..=256`, `ef_construction`
    /// outside `1..=10000`). `n == 0` gives a valid empty index.
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
        build::build_index(vectors, dim, metric, params, inserted)
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
        search::search(self, query, k, ef, accept)
    }

    /// Exact brute-force search with the same contract as [`search`]
    /// (same distances, same filter semantics, same errors); O(n * dim) per
    /// query. The ground truth of tests and benchmarks, and what the engine
    /// serves on a space small enough that a scan costs no more than a walk.
    ///
    /// [`search`]: AnnIndex::search
    pub fn search_exact(&self, query: &[f32], k: usize, accept: impl Fn(u32) -> bool) -> Result<Vec<(u32, f32)>, AnnError> {
        search::search_exact(&self.g, query, k, accept)
    }

    /// Exact search over `rows` only, with the contract of [`search`]:
    /// for a filter that lets through so few rows that scanning them is
    /// cheaper than walking the graph past every rejected one (the graph
    /// walk's cost grows as `1 / selectivity`). Rows out of range are
    /// skipped; a row listed twice may be returned twice.
    ///
    /// [`search`]: AnnIndex::search
    pub fn search_rows(
        &self,
        query: &[f32],
        k: usize,
        rows: impl IntoIterator<Item = u32>,
        accept: impl Fn(u32) -> bool,
    ) -> Result<Vec<(u32, f32)>, AnnError> {
        search::search_rows(&self.g, query, k, rows, accept)
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
        self.g.validate()
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
}

#[cfg(test)]
mod tests {
    //! The fixtures shared by the unit tests of every file of the module, and
    //! the tests of the public contract as a whole.

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

    pub(super) const DIM: usize = 32;

    /// `n` vectors around 25 random centres (clustered like real embeddings),
    /// with a spread of norms so Dot is not equivalent to Cosine.
    pub(super) fn clustered(n: usize, seed: u64) -> Vec<f32> {
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

    pub(super) fn recall(idx: &AnnIndex, queries: &[f32], k: usize, ef: usize, accept: impl Fn(u32) -> bool + Copy) -> f64 {
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

    pub(super) fn build(metric: Metric) -> AnnIndex {
        AnnIndex::build(&clustered(2000, 1), DIM, metric, &AnnParams::default()).unwrap()
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
    fn params_bounds() {
        let with = |m, ef_construction| AnnParams {
            m,
            ef_construction,
            ..AnnParams::default()
        };
        AnnParams::default().validate().unwrap();
        with(AnnParams::MIN_M, AnnParams::MIN_EF_CONSTRUCTION).validate().unwrap();
        with(AnnParams::MAX_M, AnnParams::MAX_EF_CONSTRUCTION).validate().unwrap();
        for bad in [
            with(AnnParams::MIN_M - 1, 200),
            with(AnnParams::MAX_M + 1, 200),
            with(16, AnnParams::MIN_EF_CONSTRUCTION - 1),
            with(16, AnnParams::MAX_EF_CONSTRUCTION + 1),
        ] {
            assert!(matches!(bad.validate(), Err(AnnError::InvalidInput(_))), "{bad:?}");
            assert!(matches!(
                AnnIndex::build(&[1.0, 1.0], 2, Metric::L2, &bad),
                Err(AnnError::InvalidInput(_))
            ));
        }
        let e = with(1, 200).validate().unwrap_err().to_string();
        assert!(e.contains("m = 1 not in 2..=256"), "{e}");
        let e = with(16, 10_001).validate().unwrap_err().to_string();
        assert!(e.contains("ef_construction = 10001 not in 1..=10000"), "{e}");
    }
}
