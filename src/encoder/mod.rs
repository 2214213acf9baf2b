//! An in-process sentence encoder: a BERT-family model on candle with a
//! Hugging Face `tokenizers` tokenizer, mean pooling and L2 normalisation, as
//! sentence-transformers computes them. Target model: all-MiniLM-L6-v2 (384
//! dimensions); `scripts/fetch_minilm.sh` fetches it.
//!
//! A model directory has the usual layout: `config.json`, `tokenizer.json`,
//! `model.safetensors`, and optionally `sentence_bert_config.json` (its
//! `max_seq_length` caps the tokens per text, 256 for all-MiniLM-L6-v2).
//! Padding and truncation settings inside `tokenizer.json` are overridden
//! deliberately: sentence-transformers truncates at `max_seq_length` and pads
//! a batch only to its longest text, and so does this encoder (the packaged
//! all-MiniLM-L6-v2 tokenizer carries a fixed 128-token padding and
//! truncation that would change the vectors of long texts).
//!
//! [`Encoder::encode`] is the request-time path for one query;
//! [`Encoder::encode_batch`] is the build-time path, whose batches run in
//! parallel on rayon.
//!
//! Two implementations of the forward pass, chosen at load:
//!
//! - **bf16** ([`Arithmetic::Bf16`]) on CPUs with AVX-512 BF16 (AMD Zen 4
//!   and later, Intel Sapphire Rapids and later): the dense layers multiply
//!   bfloat16 weights and activations with `f32` accumulation, and a batch's
//!   texts are concatenated without padding. Its vectors are within cosine
//!   0.9999 of the `f32` ones on real-length texts (`BENCHMARKS.md` gives the
//!   measured distribution; `tests/encoder.rs` holds every text of the
//!   reference to 0.999 against sentence-transformers).
//! - **f32** ([`Arithmetic::F32`]) everywhere else, and always with
//!   [`Encoder::load_f32`]: candle, with batches sorted by token count so
//!   that each pads little.
//!
//! An index built by one and queried by the other works: the two agree to
//! cosine 0.9999 per text, and the model fingerprint is the same.

//!
//! The model itself ([`Encoder`]) is behind the default feature `encoder`;
//! without it an index built with an encoder still opens, and serves every
//! request that does not need a query encoded.

#[cfg(feature = "encoder")]
mod bert;
pub(crate) mod cache;
#[cfg(feature = "encoder")]
mod kernel;
#[cfg(feature = "encoder")]
mod packed;
#[cfg(feature = "encoder")]
mod sentence;

pub use cache::{QueryCacheStats, DEFAULT_QUERY_CACHE};
#[cfg(feature = "encoder")]
pub use sentence::{Arithmetic, Encoder};

/// No sentence encoder: this build of twostage lacks the feature `encoder`
/// (on by default), so no value of this type can exist. It keeps the
/// signatures that take an encoder the same in every build (pass `None`
/// where they take an `Option<&Encoder>`); an index built with an encoder
/// still opens and serves every request but a text search.
#[cfg(not(feature = "encoder"))]
#[derive(Clone, Debug)]
pub enum Encoder {}

#[cfg(not(feature = "encoder"))]
impl Encoder {
    /// Unreachable: there is no encoder.
    pub fn info(&self) -> &EncoderInfo {
        match *self {}
    }

    /// Unreachable: there is no encoder.
    pub fn dim(&self) -> usize {
        match *self {}
    }

    pub(crate) fn encode(&self, _text: &str) -> crate::Result<Vec<f32>> {
        match *self {}
    }

    pub(crate) fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        _texts: &[S],
        _on_done: &(dyn Fn(usize) + Sync),
    ) -> crate::Result<Vec<Vec<f32>>> {
        match *self {}
    }
}

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which model produced a vector: recorded in an index's manifest, so that
/// queries are encoded by the model that encoded the items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderInfo {
    /// The model directory's name, e.g. `all-MiniLM-L6-v2`.
    pub name: String,
    /// Output dimension.
    pub dim: usize,
    /// Tokens per text, including `[CLS]` and `[SEP]`; longer texts are cut.
    pub max_tokens: usize,
    /// CRC32 of the weights, the tokenizer and the configuration, as 8 hex
    /// digits: two encoders with the same fingerprint give the same vectors,
    /// up to their [`Arithmetic`] (bf16 and `f32` agree to cosine 0.9999).
    pub fingerprint: String,
}

impl EncoderInfo {
    /// Whether two encoders give the same vectors: same fingerprint and
    /// dimension (the directory's name does not matter).
    pub fn same_model(&self, other: &EncoderInfo) -> bool {
        self.fingerprint == other.fingerprint && self.dim == other.dim
    }
}

/// `name (fingerprint)`, as error messages show a model.
pub(crate) fn describe(info: &EncoderInfo) -> String {
    format!("{} ({})", info.name, info.fingerprint)
}

/// Where the tests and examples look for the model unless told otherwise:
/// `$TWOSTAGE_MODEL_DIR`, else `models/all-MiniLM-L6-v2` under `root` (where
/// `scripts/fetch_minilm.sh` puts it).
pub fn default_model_dir(root: impl AsRef<Path>) -> PathBuf {
    std::env::var_os("TWOSTAGE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.as_ref().join("models").join("all-MiniLM-L6-v2"))
}
