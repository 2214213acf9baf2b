//! Dense-layer products in bfloat16 with `f32` accumulation, on AVX-512
//! BF16 (`vdpbf16ps`: 32 multiply-adds of bf16 pairs into 16 `f32` lanes
//! per instruction, twice the rate of an `f32` FMA). AMD Zen 4 and later and
//! Intel Cooper Lake / Sapphire Rapids and later have it; elsewhere
//! [`available`] is false and the encoder keeps its `f32` path.
//!
//! Layout: the weights `W [n × k]` (Hugging Face's `[out, in]`) are packed
//! once at load into panels of [`NR`] output columns; within a panel, for
//! each pair of inputs `(2p, 2p+1)`, the 32 columns' two weights sit side by
//! side, so one 64-byte load feeds one `vdpbf16ps`. Activations are bf16
//! rows `[m × k]`, whose consecutive pairs are already what a 32-bit
//! broadcast needs, so they need no packing.
//!
//! Blocking: [`MB`] rows at a time (their bf16 rows stay in L2 while every
//! panel passes over them), then a register tile of up to [`MR`] rows × 32
//! columns: 16 accumulators, enough independent chains to hide the
//! instruction's latency.

/// Output columns per packed panel: two 16-lane vectors.
pub(crate) const NR: usize = 32;
/// Rows per register tile.
const MR: usize = 8;
/// Rows per cache block.
const MB: usize = 64;

/// Whether this CPU runs the bf16 kernel (and the forward pass around it,
/// compiled for exactly these features).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `f32` to bfloat16 bits, rounded to nearest even (as `vcvtneps2bf16`);
/// a NaN stays a (quiet) NaN.
pub(crate) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// bfloat16 bits back to `f32` (exact).
#[cfg(test)]
pub(crate) fn from_bf16(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// A dense layer `y = x · Wᵀ + b` packed for [`matmul`].
pub(crate) struct PackedLinear {
    /// Inputs (`k`, even).
    inputs: usize,
    /// Outputs (`n`, a multiple of [`NR`]).
    outputs: usize,
    /// `[n / NR][k / 2][NR][2]` bf16 bits.
    panels: Vec<u16>,
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `weight` (`[outputs × inputs]`, row-major) and `bias`; `None`
    /// when the shape does not suit the kernel (odd `inputs`, `outputs` not
    /// a multiple of [`NR`], or lengths that do not match).
    pub fn pack(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize) -> Option<PackedLinear> {
        if inputs == 0 || !inputs.is_multiple_of(2) || outputs == 0 || !outputs.is_multiple_of(NR) {
            return None;
        }
        if weight.len() != inputs * outputs || bias.len() != outputs {
            return None;
        }
        let pairs = inputs / 2;
        let mut panels = vec![0u16; inputs * outputs];
        for panel in 0..outputs / NR {
            for p in 0..pairs {
                for c in 0..NR {
                    let row = &weight[(panel * NR + c) * inputs..][..inputs];
                    let at = ((panel * pairs + p) * NR + c) * 2;
                    panels[at] = to_bf16(row[2 * p]);
                    panels[at + 1] = to_bf16(row[2 * p + 1]);
                }
            }
        }
        Some(PackedLinear {
            inputs,
            outputs,
            panels,
            bias: bias.to_vec(),
        })
    }

    /// Outputs per row.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Bytes of packed weights and bias.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.panels.len() * 2 + self.bias.len() * 4
    }
}

/// `f32` values to bfloat16 bits, `dst.len() == src.len()`.
pub(crate) fn to_bf16_slice(src: &[f32], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { x86::to_bf16_slice(src, dst) };
        return;
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = to_bf16(*s);
    }
}

/// `out[m × n] = a[m × k] · Wᵀ + b`, `a` in bfloat16 bits, row-major.
///
/// # Panics
/// If the slices are shorter than `m` rows, or the CPU lacks the kernel
/// ([`available`]): callers check both once, when they choose this path.
pub(crate) fn matmul(a: &[u16], m: usize, w: &PackedLinear, out: &mut [f32]) {
    assert!(
        a.len() >= m * w.inputs && out.len() >= m * w.outputs,
        "matmul: slices shorter than {m} rows"
    );
    assert!(available(), "matmul: the CPU has no AVX-512 BF16");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the lengths are checked above, the CPU features too.
    unsafe {
        x86::matmul(a, m, w, out)
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PackedLinear, MB, MR, NR};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn to_bf16_slice(src: &[f32], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let whole = n / 16 * 16;
        let mut i = 0;
        while i < whole {
            // SAFETY: i + 16 <= n for both slices.
            unsafe {
                let v = _mm512_loadu_ps(src.as_ptr().add(i));
                let b: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut __m256i, b);
            }
            i += 16;
        }
        for j in whole..n {
            dst[j] = super::to_bf16(src[j]);
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn matmul(a: &[u16], m: usize, w: &PackedLinear, out: &mut [f32]) {
        let (k, n) = (w.inputs, w.outputs);
        let pairs = k / 2;
        for block in (0..m).step_by(MB) {
            let rows = MB.min(m - block);
            for panel in 0..n / NR {
                // SAFETY (whole loop): every pointer below stays inside the
                // slices whose lengths `super::matmul` checked.
                let weights = unsafe { w.panels.as_ptr().add(panel * pairs * NR * 2) };
                let bias = unsafe { w.bias.as_ptr().add(panel * NR) };
                let mut r = 0;
                while r < rows {
                    let take = MR.min(rows - r);
                    let x = unsafe { a.as_ptr().add((block + r) * k) };
                    let y = unsafe { out.as_mut_ptr().add((block + r) * n + panel * NR) };
                    unsafe {
                        match take {
                            8 => tile::<8>(x, k, weights, pairs, bias, y, n),
                            7 => tile::<7>(x, k, weights, pairs, bias, y, n),
                            6 => tile::<6>(x, k, weights, pairs, bias, y, n),
                            5 => tile::<5>(x, k, weights, pairs, bias, y, n),
                            4 => tile::<4>(x, k, weights, pairs, bias, y, n),
                            3 => tile::<3>(x, k, weights, pairs, bias, y, n),
                            2 => tile::<2>(x, k, weights, pairs, bias, y, n),
                            _ => tile::<1>(x, k, weights, pairs, bias, y, n),
                        }
                    }
                    r += take;
                }
            }
        }
    }

    /// `R` rows × 32 columns: `y[r][c] = Σ_p x[r][2p..2p+2] · w[c][2p..2p+2] + b[c]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn tile<const R: usize>(
        x: *const u16,
        lda: usize,
        weights: *const u16,
        pairs: usize,
        bias: *const f32,
        y: *mut f32,
        ldy: usize,
    ) {
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
        for p in 0..pairs {
            // SAFETY: the caller keeps p < pairs inside the panel and the rows.
            unsafe {
                let wp = weights.add(p * NR * 2);
                let w_lo: __m512bh = std::mem::transmute(_mm512_loadu_si512(wp as *const __m512i));
                let w_hi: __m512bh = std::mem::transmute(_mm512_loadu_si512(wp.add(NR) as *const __m512i));
                for r in 0..R {
                    let pair = (x.add(r * lda + 2 * p) as *const i32).read_unaligned();
                    let xv: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                    lo[r] = _mm512_dpbf16_ps(lo[r], xv, w_lo);
                    hi[r] = _mm512_dpbf16_ps(hi[r], xv, w_hi);
                }
            }
        }
        // SAFETY: the bias has NR values here, each output row NR columns.
        unsafe {
            let b_lo = _mm512_loadu_ps(bias);
            let b_hi = _mm512_loadu_ps(bias.add(16));
            for r in 0..R {
                _mm512_storeu_ps(y.add(r * ldy), _mm512_add_ps(lo[r], b_lo));
                _mm512_storeu_ps(y.add(r * ldy + 16), _mm512_add_ps(hi[r], b_hi));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between two bf16 values: ties go to even (1.0).
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
    }

    #[test]
    fn pack_refuses_shapes_the_kernel_cannot_take() {
        assert!(PackedLinear::pack(&[0.0; 3 * 32], &[0.0; 32], 3, 32).is_none());
        assert!(PackedLinear::pack(&[0.0; 4 * 16], &[0.0; 16], 4, 16).is_none());
        assert!(PackedLinear::pack(&[0.0; 4 * 32], &[0.0; 31], 4, 32).is_none());
        let p = PackedLinear::pack(&[0.0; 4 * 32], &[0.0; 32], 4, 32).unwrap();
        assert_eq!((p.outputs(), p.bytes()), (32, 4 * 32 * 2 + 32 * 4));
    }

    /// Every tile height and more than one row block and panel, against a
    /// plain product of the same bf16-rounded inputs in f64.
    #[test]
    fn matmul_matches_a_plain_product_of_the_rounded_values() {
        if !available() {
            eprintln!("no AVX-512 BF16 on this CPU: the kernel is not used here");
            return;
        }
        let (k, n) = (70, 64);
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
        let b: Vec<f32> = (0..n).map(|_| next()).collect();
        let packed = PackedLinear::pack(&w, &b, k, n).unwrap();
        for m in [1, 2, 3, 5, 7, 8, 9, 63, 64, 65, 131] {
            let x: Vec<f32> = (0..m * k).map(|_| next()).collect();
            let mut xb = vec![0u16; x.len()];
            to_bf16_slice(&x, &mut xb);
            for (a, b) in x.iter().zip(&xb) {
                assert_eq!(to_bf16(*a), *b, "the vector conversion rounds as the scalar one");
            }
            let mut y = vec![f32::NAN; m * n];
            matmul(&xb, m, &packed, &mut y);
            for r in 0..m {
                for c in 0..n {
                    let want: f64 = (0..k)
                        .map(|i| from_bf16(xb[r * k + i]) as f64 * from_bf16(to_bf16(w[c * k + i])) as f64)
                        .sum::<f64>()
                        + b[c] as f64;
                    let got = y[r * n + c] as f64;
                    assert!((got - want).abs() < 1e-4, "m {m} row {r} col {c}: {got} vs {want}");
                }
            }
        }
    }
}
