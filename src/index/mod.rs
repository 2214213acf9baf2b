//! The index: its on-disk format and the parts a build computes for it.
//!
//! ```text
//! index/
//!   manifest.json      format version, build parameters, schema, ranker, checksum of every file
//!   ann/graph.bin      the HNSW graph in flat arrays, with the vectors
//!   content/graph.bin  optional: the content space, item text embedded by the sentence encoder (same layout)
//!   text/              the tantivy index over the text fields
//!   items.bin          item records, tags, groups, popularity, co-visitation lists (bincode)
//!   query_categories.bin  the words of logged searches against the categories of their items (bincode)
//!   ranker.safetensors ranking model weights
//!   events.bin         the event log the index was built from, for compaction (bincode)
//!   live.wal           writes made after the build (see `crate::live`)
//! ```

pub(crate) mod build_log;
pub mod content;
pub(crate) mod embeddings;
pub(crate) mod manifest;
pub(crate) mod reader;
pub(crate) mod writer;

use serde::{Deserialize, Serialize};

pub use embeddings::EmbeddingParams;

use crate::retrieval::ann::{AnnParams, Metric};
use crate::retrieval::covisit::CovisitParams;
use crate::retrieval::linear::LinearParams;

/// Every parameter of a build, recorded in the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BuildParams {
    /// Learned item embeddings.
    pub embedding: EmbeddingParams,
    /// The HNSW graph.
    pub ann: AnnParams,
    /// Distance used for ANN and similarity features. Default cosine.
    pub metric: Metric,
    /// Co-visitation lists.
    pub covisit: CovisitParams,
    /// The linear item-item (EASE) model.
    #[serde(default)]
    pub linear: LinearParams,
    /// Inactivity that ends a session, in seconds. Default 30 minutes.
    pub session_gap_secs: i64,
    /// Where the ANN space's item vectors come from. Default [`Vectors::Auto`].
    #[serde(default)]
    pub vectors: Vectors,
}

/// Where the ANN space's item vectors come from: the catalog's `vector`
/// fields, or embeddings learned from co-occurring plays in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Vectors {
    /// The catalog's vectors when every item carries one, learned vectors
    /// when none does; a catalog where only some items carry one is refused,
    /// naming the first item without one, since those items would silently
    /// never be ANN candidates (the default).
    #[default]
    Auto,
    /// Learned from the log; the catalog's vectors, if any, are ignored.
    Learned,
    /// The catalog's vectors, and for an item without one the mean of the
    /// vectors of the items sharing its group (counted twice) and its tags.
    /// An item sharing neither stays out of the ANN space; the build
    /// report's ANN note counts the items that have a vector.
    CatalogWithFallback,
}

setters!(BuildParams {
    embedding: EmbeddingParams,
    ann: AnnParams,
    metric: Metric,
    covisit: CovisitParams,
    linear: LinearParams,
    session_gap_secs: i64,
    vectors: Vectors
});

impl Default for BuildParams {
    fn default() -> Self {
        BuildParams {
            embedding: EmbeddingParams::default(),
            ann: AnnParams::default(),
            metric: Metric::Cosine,
            covisit: CovisitParams::default(),
            linear: LinearParams::default(),
            session_gap_secs: crate::events::DEFAULT_SESSION_GAP_SECS,
            vectors: Vectors::Auto,
        }
    }
}

// File names: read only by `reader` and written only by `writer`.
const ITEMS_FILE: &str = "items.bin";
const ANN_FILE: &str = "ann/graph.bin";
const TEXT_DIR: &str = "text";
const CONTENT_DIR: &str = "content";
const CONTENT_FILE: &str = "content/graph.bin";
const RANKER_FILE: &str = "ranker.safetensors";
const QUERY_CATEGORIES_FILE: &str = "query_categories.bin";
/// The event log the index was built from, kept for compaction (see
/// `build_log`): covered by the manifest, read only by a compaction.
pub(crate) const BUILD_LOG_FILE: &str = "events.bin";
/// The live log of deletions made after the build (see `crate::live`):
/// beside the index's files, outside the manifest, checked by its own records.
pub(crate) const LIVE_LOG_FILE: &str = "live.wal";

/// bincode settings for every binary file (fixed, so files are portable).
pub(crate) fn bincode_config() -> bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Varint> {
    bincode::config::standard().with_little_endian().with_variable_int_encoding()
}

/// Decodes a whole file, refusing trailing bytes.
///
/// bincode allocates a string's declared length before reading its bytes, so
/// a crafted length (the CRC is a check against accidents, not attacks) would
/// abort the process on allocation. Decoding is therefore bounded: bincode may
/// claim at most a fixed multiple of the file's size (every value claims at
/// most 8 bytes per encoded byte, strings exactly their length), and a length
/// beyond that is reported as corruption.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], path: &std::path::Path) -> crate::Result<T> {
    let need = bytes.len().saturating_mul(DECODE_LIMIT_FACTOR).max(1 << 20);
    // `with_limit` takes a constant: pick the smallest of a ladder of limits.
    macro_rules! ladder {
        ($($shift:literal),*) => {$(
            if need <= (1usize << $shift) {
                return decode_with(bytes, path, bincode_config().with_limit::<{ 1usize << $shift }>());
            }
        )*};
    }
    ladder!(20, 22, 24, 26, 28, 30);
    #[cfg(target_pointer_width = "64")]
    {
        ladder!(32, 34, 36, 38, 40);
    }
    Err(crate::Error::corrupt(
        path,
        format!("a file of {} bytes is too large to decode", bytes.len()),
    ))
}

/// How many bytes of decoded data bincode may claim per byte of file (see [`decode`]).
const DECODE_LIMIT_FACTOR: usize = 16;

fn decode_with<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &std::path::Path,
    config: impl bincode::config::Config,
) -> crate::Result<T> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config).map_err(|e| match e {
        bincode::error::DecodeError::LimitExceeded => crate::Error::corrupt(path, "declares more data than the file holds"),
        e => crate::Error::corrupt_by(path, e),
    })?;
    if used != bytes.len() {
        return Err(crate::Error::corrupt(path, format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

/// Rewrites the manifest of `dir` so it covers the files there now (new
/// sizes and checksums). For fuzzing only: it lets mutated files past the
/// checksums so the decoders behind them get exercised. It "repairs"
/// nothing and must never be used on a real index.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn reseal_for_fuzzing(dir: &std::path::Path) -> crate::Result<()> {
    let path = dir.join(manifest::MANIFEST);
    let raw = std::fs::read(&path).map_err(|e| crate::Error::io(&path, e))?;
    let m: manifest::Manifest = serde_json::from_slice(&raw).map_err(|e| crate::Error::corrupt_by(&path, e))?;
    m.write(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_crafted_huge_length_is_corruption_not_an_abort() {
        // A string declaring 2^50 bytes (varint: 253 = u64 follows, little endian).
        let bytes = [253u8, 0, 0, 0, 0, 0, 0, 4, 0, b'x'];
        let e = decode::<String>(&bytes, Path::new("items.bin")).unwrap_err();
        assert!(e.to_string().contains("items.bin") && e.to_string().contains("more data"), "{e}");
        // Likewise a vector of strings whose count is plausible but whose first length is not.
        let bytes = [2u8, 253, 0, 0, 0, 0, 0, 0, 1, 0];
        assert!(decode::<Vec<String>>(&bytes, Path::new("x")).is_err());
    }

    #[test]
    fn round_trips_and_refuses_trailing_bytes() {
        let v: Vec<(String, Vec<u64>)> = vec![("a".into(), vec![1, 2, u64::MAX]), (String::new(), Vec::new())];
        let mut bytes = bincode::serde::encode_to_vec(&v, bincode_config()).unwrap();
        assert_eq!(decode::<Vec<(String, Vec<u64>)>>(&bytes, Path::new("x")).unwrap(), v);
        bytes.push(0);
        assert!(decode::<Vec<(String, Vec<u64>)>>(&bytes, Path::new("x"))
            .unwrap_err()
            .to_string()
            .contains("trailing"));
    }
}
