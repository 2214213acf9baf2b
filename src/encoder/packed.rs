//! The BERT forward pass on packed bfloat16 weights (the [`kernel`]), in
//! plain loops: the fast path on CPUs with AVX-512 BF16.
//!
//! Three choices make it fast, each measured against the candle path it
//! replaces (`BENCHMARKS.md`, "Sentence encoder"):
//!
//! - **No padding.** The dense layers are per token, so the texts of a
//!   batch are concatenated into one `[tokens × hidden]` matrix; only the
//!   attention needs text boundaries, and it runs per text and head. A
//!   batch costs its tokens, whatever their lengths.
//! - **bf16 products with `f32` accumulation** for the dense layers (nine
//!   tenths of the work at 100–256 tokens). Weights are rounded to bf16
//!   once at load, activations before each product; everything else (the
//!   residual stream, layer norms, attention, GELU, pooling) stays `f32`.
//! - **Fused query/key/value**: one product with 3 × hidden outputs.
//!
//! [`kernel`]: super::kernel

use candle_nn::VarBuilder;

use super::bert::{erf, BertConfig};
use super::kernel::{self, PackedLinear};

/// A layer norm's scale, shift and epsilon.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder<'_>, size: usize, eps: f64) -> candle_core::Result<Norm> {
        Ok(Norm {
            gamma: vb.get(size, "weight")?.to_vec1()?,
            beta: vb.get(size, "bias")?.to_vec1()?,
            eps: eps as f32,
        })
    }

    /// Normalises every row of `x` in place.
    #[inline(always)]
    fn apply(&self, x: &mut [f32]) {
        let h = self.gamma.len();
        for row in x.chunks_exact_mut(h) {
            let mean = sum(row) / h as f32;
            let var = sum_sq_dev(row, mean) / h as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

struct Layer {
    qkv: PackedLinear,
    attn_out: PackedLinear,
    attn_norm: Norm,
    intermediate: PackedLinear,
    out: PackedLinear,
    out_norm: Norm,
}

/// The encoder stack with its embedding tables, ready for [`PackedBert::embed`].
pub(crate) struct PackedBert {
    word: Vec<f32>,
    position: Vec<f32>,
    /// Row 0 of the token-type table: every token is of type 0.
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    head_dim: usize,
    exact_gelu: bool,
}

/// Loads `name.weight` (`[outputs × inputs]`) and `name.bias`.
fn linear_parts(vb: &VarBuilder<'_>, inputs: usize, outputs: usize) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    let w = vb.get((outputs, inputs), "weight")?.flatten_all()?.to_vec1::<f32>()?;
    let b = vb.get(outputs, "bias")?.to_vec1::<f32>()?;
    Ok((w, b))
}

fn pack(parts: (Vec<f32>, Vec<f32>), inputs: usize, outputs: usize) -> Option<PackedLinear> {
    PackedLinear::pack(&parts.0, &parts.1, inputs, outputs)
}

impl PackedBert {
    /// The model in `vb` (the root [`super::bert::Bert::root`] chose), or
    /// `None` when this CPU or this model's shape does not suit the kernel
    /// (then the candle path serves).
    pub fn load(vb: &VarBuilder<'_>, cfg: &BertConfig) -> candle_core::Result<Option<PackedBert>> {
        let h = cfg.hidden_size;
        let head_dim = h / cfg.num_attention_heads;
        if !kernel::available()
            || !h.is_multiple_of(kernel::NR)
            || !cfg.intermediate_size.is_multiple_of(kernel::NR)
            || !HEAD_DIMS.contains(&head_dim)
        {
            return Ok(None);
        }
        let e = vb.pp("embeddings");
        let table =
            |name: &str, rows: usize| -> candle_core::Result<Vec<f32>> { e.pp(name).get((rows, h), "weight")?.flatten_all()?.to_vec1() };
        let word = table("word_embeddings", cfg.vocab_size)?;
        let position = table("position_embeddings", cfg.max_position_embeddings)?;
        let mut token_type = table("token_type_embeddings", cfg.type_vocab_size)?;
        token_type.truncate(h);
        let embed_norm = Norm::load(e.pp("LayerNorm"), h, cfg.layer_norm_eps)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let (mut w, mut b) = linear_parts(&a.pp("self.query"), h, h)?;
            for name in ["self.key", "self.value"] {
                let (wk, bk) = linear_parts(&a.pp(name), h, h)?;
                w.extend(wk);
                b.extend(bk);
            }
            let (Some(qkv), Some(attn_out), Some(intermediate), Some(out)) = (
                pack((w, b), h, 3 * h),
                pack(linear_parts(&a.pp("output.dense"), h, h)?, h, h),
                pack(
                    linear_parts(&l.pp("intermediate.dense"), h, cfg.intermediate_size)?,
                    h,
                    cfg.intermediate_size,
                ),
                pack(
                    linear_parts(&l.pp("output.dense"), cfg.intermediate_size, h)?,
                    cfg.intermediate_size,
                    h,
                ),
            ) else {
                return Ok(None);
            };
            layers.push(Layer {
                qkv,
                attn_out,
                attn_norm: Norm::load(a.pp("output.LayerNorm"), h, cfg.layer_norm_eps)?,
                intermediate,
                out,
                out_norm: Norm::load(l.pp("output.LayerNorm"), h, cfg.layer_norm_eps)?,
            });
        }
        Ok(Some(PackedBert {
            word,
            position,
            token_type,
            embed_norm,
            layers,
            hidden: h,
            heads: cfg.num_attention_heads,
            head_dim,
            exact_gelu: cfg.hidden_act == "gelu",
        }))
    }

    /// Mean-pooled, unit-length vectors of `texts` (token ids with `[CLS]`
    /// and `[SEP]`, each at most the model's positions long), in order.
    /// `Err` names a token id or a length the tables do not have.
    pub fn embed(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let vocab = self.word.len() / self.hidden;
        let positions = self.position.len() / self.hidden;
        for t in texts {
            if t.len() > positions {
                return Err(format!("{} tokens, the model has {positions} positions", t.len()));
            }
            if let Some(id) = t.iter().find(|&&id| id as usize >= vocab) {
                return Err(format!("token id {id} outside the vocabulary of {vocab}"));
            }
        }
        // SAFETY: `load` built this model only where `kernel::available()`.
        Ok(unsafe { self.embed_checked(texts) })
    }

    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bf16,fma"))]
    unsafe fn embed_checked(&self, texts: &[&[u32]]) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let tokens: usize = texts.iter().map(|t| t.len()).sum();
        let mut x = vec![0f32; tokens * h];
        for (row, (pos, &id)) in x.chunks_exact_mut(h).zip(texts.iter().flat_map(|t| t.iter().enumerate())) {
            let word = &self.word[id as usize * h..][..h];
            let position = &self.position[pos * h..][..h];
            for (((v, w), p), t) in row.iter_mut().zip(word).zip(position).zip(&self.token_type) {
                *v = w + p + t;
            }
        }
        self.embed_norm.apply(&mut x);

        let inter = self.layers.first().map_or(0, |l| l.intermediate.outputs());
        let mut bf = vec![0u16; tokens * inter.max(h)];
        let mut qkv = vec![0f32; tokens * 3 * h];
        let mut ctx = vec![0f32; tokens * h];
        let mut attended = vec![0f32; tokens * h];
        let mut inner = vec![0f32; tokens * inter];
        let mut scratch = Scratch::default();
        for layer in &self.layers {
            kernel::to_bf16_slice(&x, &mut bf[..tokens * h]);
            kernel::matmul(&bf, tokens, &layer.qkv, &mut qkv);
            self.attention(texts, &qkv, &mut ctx, &mut scratch);
            kernel::to_bf16_slice(&ctx, &mut bf[..tokens * h]);
            kernel::matmul(&bf, tokens, &layer.attn_out, &mut attended);
            add(&mut attended, &x);
            layer.attn_norm.apply(&mut attended);
            kernel::to_bf16_slice(&attended, &mut bf[..tokens * h]);
            kernel::matmul(&bf, tokens, &layer.intermediate, &mut inner);
            if self.exact_gelu {
                inner.iter_mut().for_each(|v| *v = gelu_erf(*v));
            } else {
                inner.iter_mut().for_each(|v| *v = gelu_tanh(*v));
            }
            kernel::to_bf16_slice(&inner, &mut bf[..tokens * inter]);
            kernel::matmul(&bf, tokens, &layer.out, &mut x);
            add(&mut x, &attended);
            layer.out_norm.apply(&mut x);
        }

        let mut start = 0;
        texts
            .iter()
            .map(|t| {
                let rows = &x[start * h..(start + t.len()) * h];
                start += t.len();
                let mut v = vec![0f32; h];
                for row in rows.chunks_exact(h) {
                    add(&mut v, row);
                }
                // The mean's length is the sum's over the token count, so
                // normalising the sum gives the normalised mean.
                let norm = sum_sq_dev(&v, 0.0).sqrt().max(1e-12 * t.len().max(1) as f32);
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect()
    }

    /// Scaled dot-product attention of every text with itself, head by
    /// head, from the fused `[tokens × 3·hidden]` projections into
    /// `ctx [tokens × hidden]`. `scratch` is reused between calls.
    #[inline(always)]
    fn attention(&self, texts: &[&[u32]], qkv: &[f32], ctx: &mut [f32], scratch: &mut Scratch) {
        match self.head_dim {
            32 => self.attention_by::<32>(texts, qkv, ctx, scratch),
            _ => self.attention_by::<64>(texts, qkv, ctx, scratch),
        }
    }

    /// [`Self::attention`] for heads of `D` dimensions ([`HEAD_DIMS`]).
    /// [`QUERIES`] queries at a time: each key and value read feeds that
    /// many independent multiply-add chains, all held in registers.
    #[inline(always)]
    fn attention_by<const D: usize>(&self, texts: &[&[u32]], qkv: &[f32], ctx: &mut [f32], scratch: &mut Scratch) {
        let h = self.hidden;
        let stride = 3 * h;
        let scale = 1.0 / (D as f32).sqrt();
        let mut start = 0;
        for t in texts {
            let len = t.len();
            if len == 0 {
                continue;
            }
            // Keys are stored transposed, `[D × padded]`, with the length
            // padded to whole 16-lane blocks (zeros, never read as scores).
            let padded = len.div_ceil(LANES) * LANES;
            let rows = &qkv[start * stride..(start + len) * stride];
            scratch.scores.resize(QUERIES * padded, 0.0);
            scratch.keys.clear();
            scratch.keys.resize(D * padded, 0.0);
            for head in 0..self.heads {
                let (q_at, k_at, v_at) = (head * D, h + head * D, 2 * h + head * D);
                for (j, row) in rows.chunks_exact(stride).enumerate() {
                    for (i, k) in row[k_at..k_at + D].iter().enumerate() {
                        scratch.keys[i * padded + j] = *k;
                    }
                }
                for first in (0..len).step_by(QUERIES) {
                    // The last group repeats its last query; those results
                    // are not written.
                    let live = QUERIES.min(len - first);
                    let q: [&[f32]; QUERIES] = std::array::from_fn(|r| &rows[(first + r.min(live - 1)) * stride + q_at..][..D]);
                    for block in 0..padded / LANES {
                        let mut sum = [[0f32; LANES]; QUERIES];
                        for (dim, key_row) in scratch.keys.chunks_exact(padded).enumerate() {
                            let k = &key_row[block * LANES..][..LANES];
                            for (sum, q) in sum.iter_mut().zip(&q) {
                                let qd = q[dim];
                                for (a, k) in sum.iter_mut().zip(k) {
                                    *a = qd.mul_add(*k, *a);
                                }
                            }
                        }
                        for (r, sum) in sum.iter().enumerate() {
                            let s = &mut scratch.scores[r * padded + block * LANES..][..LANES];
                            for (s, a) in s.iter_mut().zip(sum) {
                                *s = a * scale;
                            }
                        }
                    }
                    for r in 0..live {
                        softmax(&mut scratch.scores[r * padded..][..len]);
                    }
                    let mut acc = [[0f32; D]; QUERIES];
                    for (j, value_row) in rows.chunks_exact(stride).enumerate() {
                        let v = &value_row[v_at..][..D];
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let p = scratch.scores[r * padded + j];
                            for (o, v) in acc.iter_mut().zip(v) {
                                *o = p.mul_add(*v, *o);
                            }
                        }
                    }
                    for (r, acc) in acc.iter().enumerate().take(live) {
                        ctx[(start + first + r) * h + head * D..][..D].copy_from_slice(acc);
                    }
                }
            }
            start += len;
        }
    }
}

/// Head sizes the attention is compiled for; other models take the `f32`
/// path.
const HEAD_DIMS: [usize; 2] = [32, 64];

/// Queries whose attention is computed together.
const QUERIES: usize = 4;

/// Lanes of one AVX-512 `f32` vector: the width the loops are blocked by.
const LANES: usize = 16;

/// Buffers the attention reuses from text to text.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    keys: Vec<f32>,
}

/// `a += b`, element by element.
#[inline(always)]
fn add(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// Sum with 16 independent partial sums, so the loop vectorises (a single
/// running `f32` sum cannot be reordered by the compiler).
#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ (v − mean)²`, vectorised as [`sum`].
#[inline(always)]
fn sum_sq_dev(v: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|x| (x - mean) * (x - mean)).sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += (x - mean) * (x - mean);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// In-place softmax. The maximum is subtracted first, so every exponent is
/// at most 0.
#[inline(always)]
fn softmax(v: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (m, x) in lanes.iter_mut().zip(c) {
            *m = if *x > *m { *x } else { *m };
        }
    }
    let max = lanes.iter().copied().fold(tail, f32::max);
    for x in v.iter_mut() {
        *x = exp_nonpositive(*x - max);
    }
    let inv = 1.0 / sum(v);
    v.iter_mut().for_each(|x| *x *= inv);
}

/// `e^x` for `x ≤ 0` (below −87 it is 0 to `f32` anyway): `2^n · e^r` with
/// `n = round(x / ln 2)` and a degree-6 polynomial for `e^r`, `|r| ≤ ln 2 / 2`;
/// within 2 ulp of libm. Plain arithmetic and bit operations, so a loop over
/// a slice vectorises, where libm's `expf` is a call per element.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Round to nearest by the 1.5 · 2^23 trick.
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    e * scale
}

/// Exact GELU, `x · (1 + erf(x / √2)) / 2`.
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU's tanh form (`gelu_new`, `gelu_pytorch_tanh`), `tanh` through `exp`.
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
    // tanh(u) = sign(u) (1 − e^{−2|u|}) / (1 + e^{−2|u|})
    let e = exp_nonpositive(-2.0 * u.abs());
    let t = (1.0 - e) / (1.0 + e);
    0.5 * x * (1.0 + t.copysign(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm_below_zero() {
        for i in 0..=200_000 {
            let x = -(i as f32) / 2000.0;
            let (ours, libm) = (exp_nonpositive(x), x.exp());
            let ulp = (libm.to_bits() as i64 - ours.to_bits() as i64).abs();
            assert!(ulp <= 2 || libm < 1e-37, "exp({x}) = {ours}, libm {libm}");
        }
        assert_eq!(exp_nonpositive(-1e9), exp_nonpositive(-87.0));
    }

    #[test]
    fn tanh_gelu_matches_the_closed_form() {
        for i in -4000..=4000 {
            let x = i as f32 / 500.0;
            let u = 0.797_884_6f64 * (x as f64 + 0.044_715 * (x as f64).powi(3));
            let want = 0.5 * x as f64 * (1.0 + u.tanh());
            assert!((gelu_tanh(x) as f64 - want).abs() < 1e-6 * (1.0 + want.abs()), "gelu_tanh({x})");
        }
    }

    #[test]
    fn sums_match_a_plain_sum() {
        let v: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let plain: f32 = v.iter().sum();
        assert!((sum(&v) - plain).abs() < 1e-4);
        let mean = plain / v.len() as f32;
        let dev: f32 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
        assert!((sum_sq_dev(&v, mean) - dev).abs() < 1e-3);
    }
}
