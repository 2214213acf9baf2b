//! Distance kernels for dense `f32` vectors.
//!
//! The kernels are plain portable Rust shaped so that LLVM auto-vectorises
//! them: 32 independent accumulators over `chunks_exact(32)` (so consecutive
//! adds do not wait on each other), then 8-wide chunks, then a scalar pass
//! over the remainder. No `unsafe`, no target-specific code.
//!
//! Mismatched lengths never panic: every kernel works on the common prefix
//! `min(a.len(), b.len())`. Callers in this crate always pass equal lengths.
//!
//! Where explicit SIMD would go: an AVX2+FMA version of `dot` / `l2_squared`
//! (`#[target_feature(enable = "avx2,fma")]`, selected once with
//! `is_x86_feature_detected!` and cached in a function pointer) would replace
//! the bodies of `dot_portable` / `l2_squared_portable` below. The default
//! x86_64 target only has SSE2, so today these compile to 4-wide SSE code
//! (building with `-C target-cpu=native` lets LLVM use AVX2 for them as is).

/// Width of the secondary loop; 8 f32 lanes = one AVX or two SSE registers.
const LANES: usize = 8;

/// Accumulators of the main loop (see [`kernel`]).
const WIDE: usize = 32;

/// Inner product `sum(a[i] * b[i])` over the common prefix of `a` and `b`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_portable(a, b)
}

/// Squared Euclidean distance `sum((a[i] - b[i])^2)` over the common prefix.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    l2_squared_portable(a, b)
}

/// Squared Euclidean norm `sum(a[i]^2)`.
#[inline]
pub fn norm_squared(a: &[f32]) -> f32 {
    dot_portable(a, a)
}

/// Squared norm accumulated in `f64`, for input validation where overflow or
/// precision loss of the `f32` kernel would hide a bad vector.
pub fn norm_squared_f64(a: &[f32]) -> f64 {
    a.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
}

/// Scales `v` to unit length in place. Returns `false` (leaving `v` untouched)
/// when the norm is zero or not finite, i.e. when there is no direction.
///
/// The norm is computed in `f64` so that vectors with large components do not
/// overflow to infinity before being scaled down.
pub fn normalize(v: &mut [f32]) -> bool {
    let norm = norm_squared_f64(v).sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return false;
    }
    let inv = 1.0 / norm;
    for x in v.iter_mut() {
        // Multiply in f64 so tiny/huge norms do not lose the direction.
        *x = (f64::from(*x) * inv) as f32;
    }
    true
}

#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    kernel(a, b, |x, y| x * y)
}

#[inline(always)]
fn l2_squared_portable(a: &[f32], b: &[f32]) -> f32 {
    kernel(a, b, |x, y| (x - y) * (x - y))
}

/// `sum(term(a[i], b[i]))` over the common prefix.
///
/// Main loop: `WIDE` (32) independent accumulators. A float add has ~4
/// cycles latency and 2 issue slots per cycle, so it takes ~8 independent
/// vector chains to keep the adder busy; LLVM may not reorder float adds, so
/// the number of chains is exactly what we write here (32 lanes = 8 SSE or 4
/// AVX registers). Then 8-wide chunks for the rest, then scalars.
#[inline(always)]
fn kernel(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let wa = a.chunks_exact(WIDE);
    let wb = b.chunks_exact(WIDE);
    let (ra, rb) = (wa.remainder(), wb.remainder());
    let mut wide = [0.0f32; WIDE];
    for (x, y) in wa.zip(wb) {
        // Zipping with the fixed-size accumulator makes the trip count a
        // compile-time constant, so the body becomes straight-line vector code.
        for ((s, &x), &y) in wide.iter_mut().zip(x).zip(y) {
            *s += term(x, y);
        }
    }
    let mut acc = [0.0f32; LANES];
    for part in wide.chunks_exact(LANES) {
        for (s, &w) in acc.iter_mut().zip(part) {
            *s += w;
        }
    }
    let ca = ra.chunks_exact(LANES);
    let cb = rb.chunks_exact(LANES);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += term(x, y);
        }
    }
    let mut tail = 0.0f32;
    for (&x, &y) in ta.iter().zip(tb) {
        tail += term(x, y);
    }
    reduce(acc) + tail
}

/// Pairwise (tree) reduction of the accumulators: fewer dependent adds and a
/// slightly smaller rounding error than a left fold.
#[inline(always)]
fn reduce(acc: [f32; LANES]) -> f32 {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny deterministic generator so the test needs no `rand` dependency.
    struct SplitMix(u64);
    impl SplitMix {
        fn next_f32(&mut self) -> f32 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            // Uniform in [-2, 2).
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        }
        fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.next_f32()).collect()
        }
    }

    /// Relative tolerance measured against the magnitude of the summed terms,
    /// because a dot product with cancelling signs can be arbitrarily close to
    /// zero and a plain relative error would be meaningless there.
    fn close(got: f32, want: f64, scale: f64) -> bool {
        (f64::from(got) - want).abs() <= 1e-4 * scale.max(1e-30)
    }

    #[test]
    fn kernels_match_f64_reference() {
        let mut rng = SplitMix(7);
        for len in 0..140 {
            for _ in 0..5 {
                let a = rng.vec(len);
                let b = rng.vec(len);
                let pairs = a
                    .iter()
                    .zip(&b)
                    .map(|(&x, &y)| (f64::from(x), f64::from(y)));

                let dot_ref: f64 = pairs.clone().map(|(x, y)| x * y).sum();
                let dot_scale: f64 = pairs.clone().map(|(x, y)| (x * y).abs()).sum();
                assert!(close(dot(&a, &b), dot_ref, dot_scale), "dot len {len}");

                let l2_ref: f64 = pairs.clone().map(|(x, y)| (x - y) * (x - y)).sum();
                assert!(close(l2_squared(&a, &b), l2_ref, l2_ref), "l2 len {len}");

                let n_ref: f64 = a.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
                assert!(close(norm_squared(&a), n_ref, n_ref), "norm len {len}");
                assert!(close(norm_squared_f64(&a) as f32, n_ref, n_ref));

                let mut v = a.clone();
                if normalize(&mut v) {
                    assert!(close(norm_squared(&v), 1.0, 1.0), "normalize len {len}");
                } else {
                    assert!(n_ref == 0.0);
                }
            }
        }
    }

    #[test]
    fn mismatched_lengths_use_common_prefix() {
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0, 1.0]), 3.0);
        assert_eq!(l2_squared(&[1.0], &[]), 0.0);
    }

    #[test]
    fn normalize_rejects_zero_and_non_finite() {
        let mut z = vec![0.0f32; 5];
        assert!(!normalize(&mut z));
        let mut n = vec![1.0, f32::NAN];
        assert!(!normalize(&mut n));
        // Huge components must not overflow while normalising.
        let mut h = vec![3.0e38f32, 3.0e38];
        assert!(normalize(&mut h));
        assert!((norm_squared(&h) - 1.0).abs() < 1e-5);
    }
}
