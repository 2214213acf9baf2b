//! A BERT encoder forward pass on candle, for sentence embedding only: no
//! pooler head, no dropout, no cross-attention. Weight names follow Hugging
//! Face's `BertModel` (`embeddings.*`, `encoder.layer.{i}.*`), with or without
//! a `bert.` prefix.

use candle_core::{DType, Device, Module, Storage, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

use crate::vector;

/// Up to this many token rows, a dense layer is computed as one dot product
/// per (row, output) with each weight row read once, instead of by gemm:
/// gemm packs the whole weight matrix and runs 16-row micro-kernels, which
/// for a query's handful of tokens costs more than the product itself.
const SMALL_ROWS: usize = 32;

/// A dense layer `x · Wᵀ + b` (Hugging Face layout: `W` is `[out, in]`).
///
/// Few rows (a query) are memory-bound: the six layers' weights, 42 MB in
/// `f32`, stream from memory for every query. That path therefore reads a
/// half-precision copy (21 MB, which stays in a server's last-level cache)
/// converted in registers, when the CPU converts in hardware (F16C); many
/// rows (the build) use gemm on the `f32` weights. The reference test holds
/// both paths to sentence-transformers' vectors.
struct Dense {
    linear: Linear,
    weight: Tensor,
    bias: Vec<f32>,
    /// `[out × in]` half-precision bits and the kernel that reads them,
    /// when the CPU has F16C.
    half: Option<(Vec<u16>, vector::HalfKernel)>,
}

impl Dense {
    fn load(inputs: usize, outputs: usize, vb: VarBuilder<'_>) -> candle_core::Result<Dense> {
        let weight = vb.get((outputs, inputs), "weight")?.contiguous()?;
        let bias = vb.get(outputs, "bias")?;
        let half = match vector::half_kernels() {
            Some((_, dot_f16)) => {
                let bits = weight
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .into_iter()
                    .map(vector::to_f16_bits)
                    .collect();
                Some((bits, dot_f16))
            }
            None => None,
        };
        Ok(Dense {
            linear: Linear::new(weight.clone(), Some(bias.clone())),
            weight,
            bias: bias.to_vec1::<f32>()?,
            half,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let inputs = dims.last().copied().unwrap_or(0);
        let rows = x.elem_count() / inputs.max(1);
        if rows > SMALL_ROWS || inputs == 0 {
            return self.linear.forward(x);
        }
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let outputs = self.bias.len();
        let mut y = vec![0f32; rows * outputs];
        // Output-major: one weight row stays in L1 while every input row passes.
        let mut fill = |j: usize, dot: &dyn Fn(&[f32]) -> f32| {
            for (i, x_row) in xs.chunks_exact(inputs).enumerate() {
                y[i * outputs + j] = dot(x_row) + self.bias[j];
            }
        };
        match &self.half {
            Some((bits, dot_f16)) => {
                for (j, w_row) in bits.chunks_exact(inputs).enumerate() {
                    fill(j, &|x_row| dot_f16(x_row, w_row));
                }
            }
            None => {
                let (store, layout) = self.weight.storage_and_layout();
                let Storage::Cpu(cpu) = &*store else {
                    drop(store);
                    return self.linear.forward(x);
                };
                let w = &cpu.as_slice::<f32>()?[layout.start_offset()..][..outputs * inputs];
                let dot = vector::dot_fn();
                for (j, w_row) in w.chunks_exact(inputs).enumerate() {
                    fill(j, &|x_row| dot(x_row, w_row));
                }
            }
        }
        let mut shape = dims;
        if let Some(last) = shape.last_mut() {
            *last = outputs;
        }
        Tensor::from_vec(y, shape, x.device())
    }
}

/// The `config.json` fields the forward pass needs.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_position_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Refuses what this forward pass does not implement, rather than
    /// computing something else quietly.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.hidden_size == 0 || self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a positive multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.num_hidden_layers == 0 || self.max_position_embeddings < 2 || self.vocab_size == 0 || self.type_vocab_size == 0 {
            return Err("num_hidden_layers, max_position_embeddings, vocab_size and type_vocab_size must be positive".into());
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_new" | "gelu_pytorch_tanh") {
            return Err(format!("hidden_act `{}` is not supported (gelu only)", self.hidden_act));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type `{}` is not supported (absolute only)",
                self.position_embedding_type
            ));
        }
        Ok(())
    }
}

struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attn_out: Dense,
    attn_norm: LayerNorm,
    intermediate: Dense,
    out: Dense,
    out_norm: LayerNorm,
}

/// The encoder stack with its embeddings.
pub(crate) struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    /// Exact (erf) GELU, as Hugging Face's "gelu"; the tanh form otherwise.
    exact_gelu: bool,
}

impl Bert {
    /// Where the model's tensors start: checkpoints saved from `BertForX`
    /// carry a `bert.` prefix.
    pub fn root(vb: VarBuilder<'_>) -> VarBuilder<'_> {
        if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        }
    }

    pub fn load(vb: VarBuilder<'_>, cfg: &BertConfig) -> candle_core::Result<Bert> {
        let vb = Bert::root(vb);
        let h = cfg.hidden_size;
        let norm = |vb: VarBuilder<'_>| candle_nn::layer_norm(h, cfg.layer_norm_eps, vb);
        let e = vb.pp("embeddings");
        let word = candle_nn::embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?;
        let position = candle_nn::embedding(cfg.max_position_embeddings, h, e.pp("position_embeddings"))?;
        let token_type = candle_nn::embedding(cfg.type_vocab_size, h, e.pp("token_type_embeddings"))?;
        let embed_norm = norm(e.pp("LayerNorm"))?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            layers.push(Layer {
                query: Dense::load(h, h, a.pp("self.query"))?,
                key: Dense::load(h, h, a.pp("self.key"))?,
                value: Dense::load(h, h, a.pp("self.value"))?,
                attn_out: Dense::load(h, h, a.pp("output.dense"))?,
                attn_norm: norm(a.pp("output.LayerNorm"))?,
                intermediate: Dense::load(h, cfg.intermediate_size, l.pp("intermediate.dense"))?,
                out: Dense::load(cfg.intermediate_size, h, l.pp("output.dense"))?,
                out_norm: norm(l.pp("output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            word,
            position,
            token_type,
            embed_norm,
            layers,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
            exact_gelu: cfg.hidden_act == "gelu",
        })
    }

    /// Mean-pooled, L2-normalised sentence vectors `[batch, hidden]` for
    /// token ids `[batch, seq]` (u32) whose real tokens are marked by `mask`
    /// (`[batch, seq]`, f32 1/0). `mask` is `None` when no row is padded,
    /// which skips the additive attention bias (the single-query path).
    pub fn embed(&self, ids: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let dev = ids.device();
        let positions = Tensor::arange(0u32, seq as u32, dev)?.unsqueeze(0)?;
        let types = Tensor::zeros((1, seq), DType::U32, dev)?;
        let x = self
            .word
            .forward(ids)?
            .broadcast_add(&self.position.forward(&positions)?)?
            .broadcast_add(&self.token_type.forward(&types)?)?;
        let mut x = self.embed_norm.forward(&x)?;
        // Padded keys get -inf-like scores, so softmax gives them no weight.
        let bias = match mask {
            Some(m) => Some(((m.ones_like()? - m)? * -1e4f64)?.reshape((batch, 1, 1, seq))?),
            None => None,
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        for layer in &self.layers {
            let heads = |t: Tensor| t.reshape((batch, seq, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous();
            let q = heads((layer.query.forward(&x)? * scale)?)?;
            let k = heads(layer.key.forward(&x)?)?;
            let v = heads(layer.value.forward(&x)?)?;
            let mut scores = q.matmul(&k.t()?)?;
            if let Some(b) = &bias {
                scores = scores.broadcast_add(b)?;
            }
            let p = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = p.matmul(&v)?.transpose(1, 2)?.reshape((batch, seq, self.heads * self.head_dim))?;
            let attended = layer.attn_norm.forward(&(layer.attn_out.forward(&ctx)? + &x)?)?;
            let inner = layer.intermediate.forward(&attended)?;
            let inner = if self.exact_gelu { gelu_erf(&inner)? } else { inner.gelu()? };
            x = layer.out_norm.forward(&(layer.out.forward(&inner)? + attended)?)?;
        }
        let pooled = match mask {
            Some(m) => {
                let m3 = m.unsqueeze(2)?;
                let sum = x.broadcast_mul(&m3)?.sum(1)?;
                let count = m.sum_keepdim(1)?.clamp(1e-9, f64::INFINITY)?;
                sum.broadcast_div(&count)?
            }
            None => x.mean(1)?,
        };
        let norm = pooled.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
        pooled.broadcast_div(&norm)
    }
}

/// `erf(x)` as a rational polynomial on [-4, 4] (Eigen's and TensorFlow's
/// `fast_erf` for `f32`), exactly ±1 beyond, where `f32` erf is ±1 anyway.
/// Only multiplies, adds, one divide and selects, so a loop over a slice
/// vectorises; libm's scalar `erff` was a sixth of the encoder's time.
#[inline]
pub(crate) fn erf(x: f32) -> f32 {
    if x <= -4.0 {
        return -1.0;
    }
    if x >= 4.0 {
        return 1.0;
    }
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_2e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

/// Exact (erf) GELU, `x · (1 + erf(x / √2)) / 2`, as Hugging Face's "gelu".
fn gelu_erf(t: &Tensor) -> candle_core::Result<Tensor> {
    let mut v = t.flatten_all()?.to_vec1::<f32>()?;
    for x in &mut v {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
    Tensor::from_vec(v, t.shape(), t.device())
}

/// The CPU device every encoder runs on.
pub(crate) fn device() -> Device {
    Device::Cpu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_gelu_matches_candles_libm_gelu() {
        let xs: Vec<f32> = (-4000..=4000).map(|i| i as f32 / 500.0).chain([-1e4, -50.0, 50.0, 1e4]).collect();
        let t = Tensor::from_vec(xs.clone(), xs.len(), &device()).unwrap();
        let ours = gelu_erf(&t).unwrap().to_vec1::<f32>().unwrap();
        let reference = t.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        for ((x, a), b) in xs.iter().zip(&ours).zip(&reference) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "gelu({x}) = {a}, libm gives {b}");
        }
    }
}
