//! The offline side: building an index directory and its on-disk format.
//!
//! ```text
//! index/
//!   manifest.json      format version, build parameters, schema, ranker, checksum of every file
//!   ann/graph.bin      the HNSW graph (built by hnsw_rs) copied into flat arrays, with the vectors
//!   text/              the tantivy index over the text fields
//!   items.bin          item records, tags, groups, popularity, co-visitation lists (bincode)
//!   ranker.safetensors ranking model weights
//! ```

pub mod builder;
pub(crate) mod embeddings;
pub(crate) mod manifest;
pub mod schema;
pub(crate) mod store;

use serde::{Deserialize, Serialize};

pub use embeddings::EmbeddingParams;

use crate::retrieval::ann::{AnnParams, Metric};
use crate::retrieval::covisit::CovisitParams;

/// Every parameter of a build, recorded in the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildParams {
    /// Learned item embeddings.
    pub embedding: EmbeddingParams,
    /// The HNSW graph.
    pub ann: AnnParams,
    /// Distance used for ANN and similarity features.
    pub metric: Metric,
    /// Co-visitation lists.
    pub covisit: CovisitParams,
    /// Inactivity that ends a session, in seconds.
    pub session_gap_secs: i64,
}

impl Default for BuildParams {
    fn default() -> Self {
        BuildParams {
            embedding: EmbeddingParams::default(),
            ann: AnnParams::default(),
            metric: Metric::Cosine,
            covisit: CovisitParams::default(),
            session_gap_secs: crate::events::DEFAULT_SESSION_GAP_SECS,
        }
    }
}

pub(crate) const ITEMS_FILE: &str = "items.bin";
pub(crate) const ANN_FILE: &str = "ann/graph.bin";
pub(crate) const TEXT_DIR: &str = "text";
pub(crate) const RANKER_FILE: &str = "ranker.safetensors";

/// bincode settings for every binary file (fixed, so files are portable).
pub(crate) fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_little_endian().with_variable_int_encoding()
}

/// Decodes a whole file, refusing trailing bytes.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], path: &std::path::Path) -> crate::Result<T> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, bincode_config()).map_err(|e| crate::Error::corrupt(path, e))?;
    if used != bytes.len() {
        return Err(crate::Error::corrupt(path, format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}
