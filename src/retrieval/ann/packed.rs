//! The half-precision search copy of layer 0: one fixed-size block per row
//! holding its neighbour list and its vector as `f16` bits.

use super::graph::Graph;
use super::search::{prefetch, Layer0};
use super::Metric;
use crate::vector::{half_kernels, to_f16_bits, HalfKernel};

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
pub(super) struct Packed {
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
    pub(super) fn new(g: &Graph) -> Option<Packed> {
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

    /// The layer-0 view for a query `q` (prepared: normalised for Cosine) of
    /// dimension `dim` under `metric`.
    pub(super) fn view<'a>(&'a self, metric: Metric, dim: usize, q: &'a [f32]) -> PackedView<'a> {
        let (l2h, doth) = self.kernels;
        let (kernel, sign, offset) = match metric {
            Metric::L2 => (l2h, 1.0, 0.0),
            Metric::Dot => (doth, -1.0, 0.0),
            Metric::Cosine => (doth, -1.0, 1.0),
        };
        PackedView {
            words: self.words(),
            stride: self.stride,
            max_degree: self.max_degree,
            dim,
            q,
            kernel,
            sign,
            offset,
        }
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

/// Layer 0 over [`Packed`] blocks: distance `offset + sign * kernel(q, v)`.
pub(super) struct PackedView<'a> {
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

#[cfg(test)]
mod tests {
    use crate::retrieval::ann::tests::{build, clustered, DIM};
    use crate::retrieval::ann::{AnnIndex, AnnParams, Metric};

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
}
