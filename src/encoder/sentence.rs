//! The sentence encoder's model: loading a model directory, tokenizing, and
//! the two forward passes (see the [module docs](super)).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::bert::{self, Bert, BertConfig};
use super::packed::PackedBert;
use super::EncoderInfo;
use crate::error::{Error, Result};

/// Texts per forward pass at build time on the `f32` path: large enough for
/// efficient matrix products, small enough that sorting by length leaves
/// little padding.
const BATCH: usize = 32;

/// Tokens per forward pass at build time on the bf16 path, which does not
/// pad: enough rows for the kernel's blocks, few enough that a batch's
/// activations stay in the cache between layers and that the batches
/// spread evenly over the threads.
const BATCH_TOKENS: usize = 512;

/// Longest input, in bytes, handed to the tokenizer. Tokenizing is linear in
/// the text, and only the first `max_tokens` word pieces are used, which no
/// natural text spreads over more than a few kilobytes; the cap keeps a
/// hostile 100 MB query from costing seconds. Cut at a whitespace so no word
/// is split.
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// A loaded sentence encoder. Cheap to clone (shared), `Send + Sync`.
///
/// ```no_run
/// # fn main() -> twostage::Result<()> {
/// use twostage::Encoder;
/// // scripts/fetch_minilm.sh puts all-MiniLM-L6-v2 here.
/// let encoder = Encoder::load("models/all-MiniLM-L6-v2")?;
/// let v = encoder.encode("something gentle for a rainy evening")?;
/// assert_eq!(v.len(), encoder.dim()); // unit length: a dot product is the cosine
/// // Build with it (IndexBuilder::encoder) and serve with the same model
/// // (Engine::with_encoder) for search by meaning and neighbours of cold items.
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Encoder {
    inner: Arc<Inner>,
}

/// How an [`Encoder`] computes its forward pass (see the [module docs](crate::encoder)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    /// bfloat16 products with `f32` accumulation (AVX-512 BF16).
    Bf16,
    /// `f32` throughout (candle).
    F32,
}

enum Forward {
    Bf16(PackedBert),
    F32(Bert),
}

struct Inner {
    forward: Forward,
    tokenizer: Tokenizer,
    info: EncoderInfo,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("info", &self.inner.info).finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl Encoder {
    /// Loads the model in `dir` (`config.json`, `tokenizer.json`,
    /// `model.safetensors`, optional `sentence_bert_config.json`). A missing
    /// file is an I/O error naming it; a file that is not a usable BERT model
    /// is [`Error::InvalidModel`]. Computes in bf16 where the CPU has
    /// AVX-512 BF16 and the model's shape suits the kernel, else in `f32`
    /// ([`Encoder::arithmetic`] says which).
    pub fn load(dir: impl AsRef<Path>) -> Result<Encoder> {
        Encoder::load_as(dir.as_ref(), true)
    }

    /// [`Encoder::load`], computing in `f32` on every CPU: for vectors that
    /// do not depend on the machine, at the `f32` path's speed.
    pub fn load_f32(dir: impl AsRef<Path>) -> Result<Encoder> {
        Encoder::load_as(dir.as_ref(), false)
    }

    fn load_as(dir: &Path, allow_bf16: bool) -> Result<Encoder> {
        let _span = tracing::info_span!("load encoder", dir = %dir.display()).entered();
        let config_path = dir.join("config.json");
        let config_bytes = read(&config_path)?;
        let config: BertConfig = serde_json::from_slice(&config_bytes).map_err(|e| Error::invalid_model_by(&config_path, e))?;
        config.check().map_err(|e| Error::invalid_model(&config_path, e))?;

        let st_path = dir.join("sentence_bert_config.json");
        let st_max = match std::fs::read(&st_path) {
            Ok(bytes) => {
                serde_json::from_slice::<SentenceBertConfig>(&bytes)
                    .map_err(|e| Error::invalid_model(&st_path, e))?
                    .max_seq_length
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&st_path, e)),
        };
        let max_tokens = st_max.unwrap_or(config.max_position_embeddings).min(config.max_position_embeddings);
        if max_tokens < 2 {
            return Err(Error::invalid_model(
                &st_path,
                format!("max_seq_length {max_tokens} leaves no room for [CLS] and [SEP]"),
            ));
        }

        let tok_path = dir.join("tokenizer.json");
        let tok_bytes = read(&tok_path)?;
        let mut tokenizer = Tokenizer::from_bytes(&tok_bytes).map_err(|e| Error::invalid_model_by(&tok_path, e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| Error::invalid_model(&tok_path, e))?;
        if tokenizer.get_vocab_size(true) > config.vocab_size {
            return Err(Error::invalid_model(
                &tok_path,
                format!(
                    "vocabulary of {} tokens exceeds the model's {}",
                    tokenizer.get_vocab_size(true),
                    config.vocab_size
                ),
            ));
        }

        let weights_path = dir.join("model.safetensors");
        let weights = read(&weights_path)?;
        let fingerprint = {
            let mut h = crc32fast::Hasher::new();
            for part in [&config_bytes, &tok_bytes, &weights] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part);
            }
            format!("{:08x}", h.finalize())
        };
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &bert::device())
            .map_err(|e| Error::invalid_model_by(&weights_path, e))?;
        let invalid = |e| Error::invalid_model_by(&weights_path, e);
        let packed = match allow_bf16 {
            true => PackedBert::load(&Bert::root(vb.clone()), &config).map_err(invalid)?,
            false => None,
        };
        let forward = match packed {
            Some(p) => Forward::Bf16(p),
            None => Forward::F32(Bert::load(vb, &config).map_err(invalid)?),
        };
        // The directory's own name as given (a symlink keeps its name); its
        // real name only for paths such as `.`.
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .or_else(|| {
                dir.canonicalize()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            })
            .unwrap_or_else(|| "encoder".into());
        Ok(Encoder {
            inner: Arc::new(Inner {
                forward,
                tokenizer,
                info: EncoderInfo {
                    name,
                    dim: config.hidden_size,
                    max_tokens,
                    fingerprint,
                },
            }),
        })
    }

    /// Which model this is.
    pub fn info(&self) -> &EncoderInfo {
        &self.inner.info
    }

    /// How this encoder computes.
    pub fn arithmetic(&self) -> Arithmetic {
        match self.inner.forward {
            Forward::Bf16(_) => Arithmetic::Bf16,
            Forward::F32(_) => Arithmetic::F32,
        }
    }

    /// Output dimension.
    pub fn dim(&self) -> usize {
        self.inner.info.dim
    }

    /// Token ids of `text`, with `[CLS]`/`[SEP]`, cut at `max_tokens`.
    fn tokens(&self, text: &str) -> Result<Vec<u32>> {
        let text = cap(text);
        let enc = self
            .inner
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::internal("encode", format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Number of tokens `text` is encoded from (after truncation), for
    /// diagnostics and tests.
    pub fn token_count(&self, text: &str) -> Result<usize> {
        Ok(self.tokens(text)?.len())
    }

    /// The unit-length vector of one text: the request-time path (one
    /// forward pass on a single unpadded sequence).
    pub fn encode(&self, text: &str) -> Result<Vec<f32>> {
        let ids = self.tokens(text)?;
        match &self.inner.forward {
            Forward::Bf16(model) => {
                let mut out = model.embed(&[&ids]).map_err(|e| Error::internal("encode", e))?;
                out.pop().ok_or_else(|| Error::internal("encode", "no vector for one text"))
            }
            Forward::F32(model) => {
                let n = ids.len();
                let run = || -> candle_core::Result<Vec<f32>> {
                    let ids = Tensor::from_vec(ids, (1, n), &bert::device())?;
                    model.embed(&ids, None)?.squeeze(0)?.to_vec1::<f32>()
                };
                run().map_err(|e| Error::internal_by("encode", e))
            }
        }
    }

    /// Unit-length vectors of many texts, in input order: the build-time
    /// path. Texts are sorted by token count and cut into batches that run in
    /// parallel; `on_done` sees the running count of texts encoded.
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S], on_done: &(dyn Fn(usize) + Sync)) -> Result<Vec<Vec<f32>>> {
        let tokenized: Vec<Vec<u32>> = texts.par_iter().map(|t| self.tokens(t.as_ref())).collect::<Result<_>>()?;
        let done = std::sync::atomic::AtomicUsize::new(0);
        let report = |n: usize| {
            let n = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            on_done(n);
        };
        let model = match &self.inner.forward {
            Forward::Bf16(model) => model,
            Forward::F32(model) => return self.encode_padded(model, &tokenized, &report),
        };
        // Consecutive texts up to a token budget; no sorting, as nothing pads.
        let mut batches: Vec<&[Vec<u32>]> = Vec::new();
        let (mut from, mut tokens) = (0, 0);
        for (i, t) in tokenized.iter().enumerate() {
            tokens += t.len();
            if tokens >= BATCH_TOKENS || i + 1 == tokenized.len() {
                batches.push(&tokenized[from..=i]);
                (from, tokens) = (i + 1, 0);
            }
        }
        let vectors: Vec<Vec<Vec<f32>>> = batches
            .par_iter()
            .map(|batch| {
                let rows: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
                let out = model.embed(&rows).map_err(|e| Error::internal("encode", e))?;
                report(batch.len());
                Ok(out)
            })
            .collect::<Result<_>>()?;
        Ok(vectors.into_iter().flatten().collect())
    }

    /// The `f32` build path: batches of [`BATCH`] texts sorted by length.
    fn encode_padded(&self, model: &Bert, tokenized: &[Vec<u32>], report: &(dyn Fn(usize) + Sync)) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..tokenized.len()).collect();
        order.sort_by_key(|&i| tokenized[i].len());
        let batches: Vec<Vec<Vec<f32>>> = order
            .par_chunks(BATCH)
            .map(|chunk| {
                let rows: Vec<&[u32]> = chunk.iter().map(|&i| tokenized[i].as_slice()).collect();
                let out = forward_padded(model, &rows).map_err(|e| Error::internal_by("encode", e))?;
                report(chunk.len());
                Ok(out)
            })
            .collect::<Result<_>>()?;
        let mut out = vec![Vec::new(); tokenized.len()];
        for (&i, v) in order.iter().zip(batches.into_iter().flatten()) {
            out[i] = v;
        }
        Ok(out)
    }
}

/// One padded batch through the `f32` model.
fn forward_padded(model: &Bert, rows: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    if width == 0 {
        return Ok(Vec::new());
    }
    let mut ids = vec![0u32; rows.len() * width];
    let mut mask = vec![0f32; rows.len() * width];
    for (r, row) in rows.iter().enumerate() {
        ids[r * width..r * width + row.len()].copy_from_slice(row);
        mask[r * width..r * width + row.len()].fill(1.0);
    }
    let dev = bert::device();
    let ids = Tensor::from_vec(ids, (rows.len(), width), &dev)?;
    let padded = rows.iter().any(|r| r.len() < width);
    let mask = Tensor::from_vec(mask, (rows.len(), width), &dev)?;
    model.embed(&ids, padded.then_some(&mask))?.to_vec2::<f32>()
}

/// `text` cut to at most [`MAX_TEXT_BYTES`], at a whitespace when there is one.
fn cap(text: &str) -> &str {
    crate::catalog::truncate_text(text, MAX_TEXT_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_short_text_and_cuts_long_text_at_whitespace() {
        assert_eq!(cap("short"), "short");
        let long = "wörd ".repeat(MAX_TEXT_BYTES);
        let cut = cap(&long);
        assert!(cut.len() <= MAX_TEXT_BYTES);
        assert!(cut.ends_with("wörd"));
        let no_space = "é".repeat(MAX_TEXT_BYTES);
        assert!(cap(&no_space).len() <= MAX_TEXT_BYTES);
    }

    #[test]
    fn a_missing_or_broken_model_dir_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(Encoder::load(dir.path()), Err(Error::Io { .. })));
        std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": 384}").unwrap();
        assert!(matches!(Encoder::load(dir.path()), Err(Error::InvalidModel { .. })));
    }
}
