//! Distance kernels for dense `f32` vectors.
//!
//! Two implementations of each kernel:
//! * a portable one, plain Rust shaped so that LLVM auto-vectorises it (32
//!   independent accumulators over `chunks_exact(32)`, then 8-wide chunks,
//!   then a scalar pass). On the default x86_64 target this is 4-wide SSE2.
//! * on x86_64, an AVX2 + FMA one (8 lanes, fused multiply-add, four
//!   independent accumulators), compiled with `#[target_feature]` and chosen
//!   at run time with `is_x86_feature_detected!`. A library cannot assume
//!   `-C target-cpu=native` (its users' builds decide the target), so the
//!   choice is made once, on first use, and cached.
//!
//! Mismatched lengths never panic: every kernel works on the common prefix
//! `min(a.len(), b.len())`. Callers in this crate always pass equal lengths.
//!
//! Results of the two implementations differ only by float rounding (the
//! order of additions differs); a test checks both against a scalar `f64`
//! reference on random inputs of every length up to a few SIMD widths.

use std::sync::OnceLock;

/// A kernel over two slices.
type Kernel = fn(&[f32], &[f32]) -> f32;

/// The kernels selected for this CPU.
struct Kernels {
    dot: Kernel,
    l2: Kernel,
}

/// Chosen once; `OnceLock::get` after initialisation is a plain load.
static KERNELS: OnceLock<Kernels> = OnceLock::new();

#[inline]
fn kernels() -> &'static Kernels {
    KERNELS.get_or_init(select)
}

/// Picks the fastest implementation the running CPU supports.
fn select() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            return Kernels {
                dot: avx2::dot,
                l2: avx2::l2_squared,
            };
        }
    }
    Kernels {
        dot: dot_portable,
        l2: l2_squared_portable,
    }
}

/// Which kernel implementation this process uses: `"avx2+fma"` or
/// `"portable"`. For benchmark reports.
pub fn implementation() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            return "avx2+fma";
        }
    }
    "portable"
}

/// Width of the secondary loop; 8 f32 lanes = one AVX or two SSE registers.
const LANES: usize = 8;

/// Accumulators of the main loop (see [`kernel`]).
const WIDE: usize = 32;

/// Inner product `sum(a[i] * b[i])` over the common prefix of `a` and `b`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (kernels().dot)(a, b)
}

/// Squared Euclidean distance `sum((a[i] - b[i])^2)` over the common prefix.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l2)(a, b)
}

/// The squared-L2 kernel selected for this CPU, as a plain function pointer,
/// so a hot loop can fetch it once instead of once per distance.
pub(crate) fn l2_squared_fn() -> fn(&[f32], &[f32]) -> f32 {
    kernels().l2
}

/// The inner-product kernel selected for this CPU (see [`l2_squared_fn`]).
pub(crate) fn dot_fn() -> fn(&[f32], &[f32]) -> f32 {
    kernels().dot
}

/// Squared Euclidean norm `sum(a[i]^2)`.
#[inline]
pub fn norm_squared(a: &[f32]) -> f32 {
    dot(a, a)
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

/// `v` scaled to unit length by [`normalize`], or `None` when it has no direction.
pub(crate) fn normalized(mut v: Vec<f32>) -> Option<Vec<f32>> {
    normalize(&mut v).then_some(v)
}

/// A kernel between an `f32` query and a row stored as IEEE half-precision
/// bits (see [`to_f16_bits`]).
pub(crate) type HalfKernel = fn(&[f32], &[u16]) -> f32;

/// Squared L2 and inner-product kernels against half-precision rows, when
/// the CPU has AVX2, FMA and F16C (the hardware half-to-float conversion);
/// `None` otherwise, and the caller searches its `f32` vectors instead (a
/// software conversion would cost more than the memory it saves).
pub(crate) fn half_kernels() -> Option<(HalfKernel, HalfKernel)> {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() && is_x86_feature_detected!("f16c") {
            return Some((avx2::l2_squared_f16, avx2::dot_f16));
        }
    }
    None
}

/// `x` rounded to the nearest IEEE 754 half-precision value, as bits.
pub(crate) fn to_f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// Portable inner product (auto-vectorised for the compile target).
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    kernel(a, b, |x, y| x * y)
}

/// Portable squared Euclidean distance.
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

/// AVX2 + FMA kernels. Only ever called after [`avx2::available`] said yes.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// True when the CPU (and OS) support AVX2 and FMA.
    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// Inner product; see [`super::dot`].
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        // SAFETY: this function is only installed by `select` after
        // `available()` confirmed AVX2 and FMA; lengths are clamped to `n`.
        unsafe { dot_avx2(&a[..n], &b[..n]) }
    }

    /// Squared Euclidean distance; see [`super::l2_squared`].
    pub(super) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        // SAFETY: as in `dot`.
        unsafe { l2_avx2(&a[..n], &b[..n]) }
    }

    /// Squared L2 between an `f32` query and a half-precision row. Only
    /// installed by `half_kernels` after checking AVX2, FMA and F16C.
    pub(super) fn l2_squared_f16(a: &[f32], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        // SAFETY: features checked by `half_kernels`; lengths clamped to `n`.
        unsafe { l2_f16_avx2(&a[..n], &b[..n]) }
    }

    /// Inner product between an `f32` query and a half-precision row.
    pub(super) fn dot_f16(a: &[f32], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        // SAFETY: as in `l2_squared_f16`.
        unsafe { dot_f16_avx2(&a[..n], &b[..n]) }
    }

    /// 8 halves at `p` widened to floats.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load_half(p: *const u16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast::<__m128i>()))
    }

    /// One AVX2 loop for every kernel: `sum(term(a[i], b[i]))` over rows of
    /// `f32` or half-precision `b`, with four independent accumulators to hide
    /// the 4-cycle FMA latency, then 8 lanes at a time, then a scalar tail.
    /// `a.len() == b.len()` is guaranteed by the callers.
    macro_rules! kernel {
        ($name:ident, $features:literal, $b:ty, $load:ident, $widen:ident, $vterm:ident, $sterm:ident) => {
            #[target_feature(enable = $features)]
            unsafe fn $name(a: &[f32], b: &[$b]) -> f32 {
                let n = a.len();
                let (pa, pb) = (a.as_ptr(), b.as_ptr());
                let mut s0 = _mm256_setzero_ps();
                let mut s1 = _mm256_setzero_ps();
                let mut s2 = _mm256_setzero_ps();
                let mut s3 = _mm256_setzero_ps();
                let mut i = 0;
                while i + 32 <= n {
                    s0 = $vterm(_mm256_loadu_ps(pa.add(i)), $load(pb.add(i)), s0);
                    s1 = $vterm(_mm256_loadu_ps(pa.add(i + 8)), $load(pb.add(i + 8)), s1);
                    s2 = $vterm(_mm256_loadu_ps(pa.add(i + 16)), $load(pb.add(i + 16)), s2);
                    s3 = $vterm(_mm256_loadu_ps(pa.add(i + 24)), $load(pb.add(i + 24)), s3);
                    i += 32;
                }
                while i + 8 <= n {
                    s0 = $vterm(_mm256_loadu_ps(pa.add(i)), $load(pb.add(i)), s0);
                    i += 8;
                }
                let mut sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
                while i < n {
                    sum += $sterm(*pa.add(i), $widen(*pb.add(i)));
                    i += 1;
                }
                sum
            }
        };
    }

    kernel!(dot_avx2, "avx2,fma", f32, load_f32, widen_f32, dot_term, dot_scalar);
    kernel!(l2_avx2, "avx2,fma", f32, load_f32, widen_f32, l2_term, l2_scalar);
    kernel!(dot_f16_avx2, "avx2,fma,f16c", u16, load_half, widen_half, dot_term, dot_scalar);
    kernel!(l2_f16_avx2, "avx2,fma,f16c", u16, load_half, widen_half, l2_term, l2_scalar);

    /// 8 floats at `p`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_f32(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }

    #[inline]
    fn widen_f32(x: f32) -> f32 {
        x
    }

    #[inline]
    fn widen_half(x: u16) -> f32 {
        half::f16::from_bits(x).to_f32()
    }

    /// `acc + x·y`, lane-wise.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_term(x: __m256, y: __m256, acc: __m256) -> __m256 {
        _mm256_fmadd_ps(x, y, acc)
    }

    /// `acc + (x - y)²`, lane-wise.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn l2_term(x: __m256, y: __m256, acc: __m256) -> __m256 {
        let d = _mm256_sub_ps(x, y);
        _mm256_fmadd_ps(d, d, acc)
    }

    #[inline]
    fn dot_scalar(x: f32, y: f32) -> f32 {
        x * y
    }

    #[inline]
    fn l2_scalar(x: f32, y: f32) -> f32 {
        let d = x - y;
        d * d
    }

    /// Horizontal sum of 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate's seeded generator, drawing test vectors.
    struct SplitMix(crate::rng::SplitMix64);
    impl SplitMix {
        /// Uniform in [-2, 2).
        fn next_f32(&mut self) -> f32 {
            self.0.next_f32() * 4.0 - 2.0
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

    /// Every implementation this CPU can run, by name.
    fn implementations() -> Vec<(&'static str, Kernel, Kernel)> {
        let mut v: Vec<(&'static str, Kernel, Kernel)> = vec![("portable", dot_portable, l2_squared_portable)];
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            v.push(("avx2", avx2::dot, avx2::l2_squared));
        }
        v
    }

    #[test]
    fn every_implementation_matches_scalar_reference() {
        let mut rng = SplitMix(crate::rng::SplitMix64::new(11));
        // Lengths around every SIMD boundary (8, 32) and a real one (784).
        let lens: Vec<usize> = (0..100).chain([127, 128, 129, 783, 784, 785]).collect();
        for (name, dot_k, l2_k) in implementations() {
            for &len in &lens {
                for _ in 0..4 {
                    let a = rng.vec(len);
                    let b = rng.vec(len);
                    let pairs = a.iter().zip(&b).map(|(&x, &y)| (f64::from(x), f64::from(y)));
                    let dot_ref: f64 = pairs.clone().map(|(x, y)| x * y).sum();
                    let dot_scale: f64 = pairs.clone().map(|(x, y)| (x * y).abs()).sum();
                    assert!(close(dot_k(&a, &b), dot_ref, dot_scale), "{name} dot len {len}");
                    let l2_ref: f64 = pairs.map(|(x, y)| (x - y) * (x - y)).sum();
                    assert!(close(l2_k(&a, &b), l2_ref, l2_ref), "{name} l2 len {len}");
                    // Common-prefix contract on unequal lengths.
                    if len > 0 {
                        assert_eq!(dot_k(&a, &b[..len - 1]), dot_k(&a[..len - 1], &b[..len - 1]));
                        assert_eq!(l2_k(&a[..len - 1], &b), l2_k(&a[..len - 1], &b[..len - 1]));
                    }
                }
            }
        }
        assert!(["avx2+fma", "portable"].contains(&implementation()));
    }

    #[test]
    fn half_kernels_match_scalar_reference() {
        let Some((l2_h, dot_h)) = half_kernels() else {
            return; // CPU without F16C: the f32 path is used and tested above.
        };
        let mut rng = SplitMix(crate::rng::SplitMix64::new(13));
        for len in (0..100).chain([127, 128, 129, 783, 784, 785]) {
            for _ in 0..4 {
                let a = rng.vec(len);
                let b = rng.vec(len);
                let bh: Vec<u16> = b.iter().map(|&x| to_f16_bits(x)).collect();
                // Reference on the rounded row: the kernel must be exact up to
                // f32 summation, the rounding to half is the caller's choice.
                let b_r: Vec<f64> = bh.iter().map(|&h| f64::from(half::f16::from_bits(h).to_f32())).collect();
                let pairs = a.iter().zip(&b_r).map(|(&x, &y)| (f64::from(x), y));
                let dot_ref: f64 = pairs.clone().map(|(x, y)| x * y).sum();
                let dot_scale: f64 = pairs.clone().map(|(x, y)| (x * y).abs()).sum();
                assert!(close(dot_h(&a, &bh), dot_ref, dot_scale), "f16 dot len {len}");
                let l2_ref: f64 = pairs.map(|(x, y)| (x - y) * (x - y)).sum();
                assert!(close(l2_h(&a, &bh), l2_ref, l2_ref), "f16 l2 len {len}");
            }
        }
    }

    #[test]
    fn kernels_match_f64_reference() {
        let mut rng = SplitMix(crate::rng::SplitMix64::new(7));
        for len in 0..140 {
            for _ in 0..5 {
                let a = rng.vec(len);
                let b = rng.vec(len);
                let pairs = a.iter().zip(&b).map(|(&x, &y)| (f64::from(x), f64::from(y)));

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
