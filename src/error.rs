//! The crate's one error type.
//!
//! Variants are split the way a service needs to react to them: the first group
//! is the caller's doing (bad data, a bad request, a bad setting — answer 4xx,
//! fix the input), the second is something that broke (I/O, a corrupt or
//! incompatible index, an internal failure — answer 5xx, page someone).
//! [`Error::is_caller_error`] tells the two apart.

use std::path::PathBuf;

/// The cause a dependency reported (candle, tantivy, bincode, serde_json, the ANN graph).
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in twostage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A catalog or events file broke the data contract.
    #[error("{path}{}: field `{field}`: {reason}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    InvalidData {
        /// The file (or a name for an in-memory source).
        path: PathBuf,
        /// 1-based line number, when the problem belongs to one line.
        line: Option<usize>,
        /// The offending field, e.g. `id`, `attributes.year` or `vector[3]`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A row of a Parquet catalog or events file broke the data contract
    /// (feature `parquet`). Row group and row are 0-based, as Parquet tools
    /// count them.
    #[error("{path}, row group {row_group}, row {row}: column `{column}`: {reason}")]
    InvalidParquet {
        /// The file.
        path: PathBuf,
        /// The row group holding the row.
        row_group: usize,
        /// The row within its row group.
        row: usize,
        /// The offending column, with a path into nested values when
        /// useful (e.g. `tags.genre` or `vector[3]`).
        column: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A request named an item the index does not know.
    #[error("unknown item id `{0}`")]
    UnknownItem(String),
    /// A request is malformed (empty query, unknown tag field, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A builder or engine setting is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A sentence-encoder model directory holds something this crate cannot
    /// run (a malformed config, tokenizer or weights file, or an
    /// unsupported architecture).
    #[error("model file {path}: {reason}")]
    InvalidModel {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The error the parser or loader reported, when one did.
        #[source]
        source: Option<Cause>,
    },
    /// A query needs the sentence encoder the index was built with, and
    /// another one (or none) is attached.
    #[error("{}", encoder_mismatch(expected, found.as_deref()))]
    EncoderMismatch {
        /// `name (fingerprint)` of the model that encoded the items.
        expected: String,
        /// `name (fingerprint)` of the attached model, if any.
        found: Option<String>,
    },
    /// The directory opened as an index is not one: it holds no
    /// `manifest.json`, or does not exist. A path to fix, not a broken index.
    #[error("not a twostage index ({} {})", if *dir_exists { "no manifest.json in" } else { "no such directory" }, path.display())]
    NotAnIndex {
        /// The directory.
        path: PathBuf,
        /// False when the directory itself is missing (most likely a mistyped path).
        dir_exists: bool,
    },

    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An index file failed verification or decoding.
    #[error("corrupt index file {path}: {reason}")]
    Corrupt {
        /// The file that failed.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
        /// The error the decoder reported, when one did.
        #[source]
        source: Option<Cause>,
    },
    /// The index was written in a format this version cannot read.
    #[error("index {path} has format version {found}; this build of twostage reads version {supported}{}", if found > supported { " (it was written by a newer twostage)" } else { "" })]
    IncompatibleVersion {
        /// The manifest file.
        path: PathBuf,
        /// The version found in the manifest.
        found: u32,
        /// The version this library reads.
        supported: u32,
    },
    /// An object store (index generations, feature `generations`) failed
    /// or holds something unusable: unreachable, missing, damaged or partial.
    #[error("object store {location}: {reason}")]
    Store {
        /// The object's URL.
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// A stage failed in a way that is not the caller's fault (a bug, or a
    /// dependency reporting an error).
    #[error("internal error in {stage}: {reason}")]
    Internal {
        /// The stage that failed, e.g. `lexical` or `rank`.
        stage: &'static str,
        /// What the failing component said.
        reason: String,
        /// The failing component's own error, when it returned one.
        #[source]
        source: Option<Cause>,
    },
}

fn encoder_mismatch(expected: &str, found: Option<&str>) -> String {
    match found {
        Some(found) => format!("the index was built with encoder {expected}, but encoder {found} is attached: queries must be encoded by the model that encoded the items"),
        None => format!("the index was built with encoder {expected}; attach it (Engine::with_encoder) to run search requests"),
    }
}

/// A dependency's error as our `reason` (its text, so a plain `to_string`
/// still says why) and our `source` (the error itself, for chain printers).
fn explained(cause: impl Into<Cause>) -> (String, Option<Cause>) {
    let cause = cause.into();
    (cause.to_string(), Some(cause))
}

impl Error {
    /// True when the caller can fix this by changing their input or request;
    /// false when something broke on our side or on disk.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidData { .. }
                | Error::InvalidParquet { .. }
                | Error::UnknownItem(_)
                | Error::InvalidRequest(_)
                | Error::InvalidConfig(_)
                | Error::InvalidModel { .. }
                | Error::EncoderMismatch { .. }
                | Error::NotAnIndex { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// A file rejected for `reason` (a message of ours).
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.to_string(),
            source: None,
        }
    }

    /// A file its decoder rejected; the decoder's error is kept as the source.
    pub(crate) fn corrupt_by(path: impl Into<PathBuf>, cause: impl Into<Cause>) -> Self {
        let (reason, source) = explained(cause);
        Error::Corrupt {
            path: path.into(),
            reason,
            source,
        }
    }

    /// A failure of our own in `stage`, described by `reason`.
    pub(crate) fn internal(stage: &'static str, reason: impl std::fmt::Display) -> Self {
        Error::Internal {
            stage,
            reason: reason.to_string(),
            source: None,
        }
    }

    /// A dependency's error in `stage`, kept as the source.
    pub(crate) fn internal_by(stage: &'static str, cause: impl Into<Cause>) -> Self {
        let (reason, source) = explained(cause);
        Error::Internal { stage, reason, source }
    }

    /// A model file this crate cannot run, for `reason` (a message of ours).
    pub(crate) fn invalid_model(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::InvalidModel {
            path: path.into(),
            reason: reason.to_string(),
            source: None,
        }
    }

    /// A model file its parser or loader rejected, keeping that error as the source.
    pub(crate) fn invalid_model_by(path: impl Into<PathBuf>, cause: impl Into<Cause>) -> Self {
        let (reason, source) = explained(cause);
        Error::InvalidModel {
            path: path.into(),
            reason,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_data_names_file_line_and_field() {
        let e = Error::InvalidData {
            path: "items.jsonl".into(),
            line: Some(7),
            field: "vector[2]".into(),
            reason: "not a finite number".into(),
        };
        assert_eq!(e.to_string(), "items.jsonl, line 7: field `vector[2]`: not a finite number");
        assert!(e.is_caller_error());
    }

    #[test]
    fn newer_version_is_called_out() {
        let e = Error::IncompatibleVersion {
            path: "m.json".into(),
            found: 9,
            supported: 1,
        };
        assert!(e.to_string().contains("newer twostage"));
        assert!(!e.is_caller_error());
    }

    #[test]
    fn a_dependency_error_stays_the_source_and_the_message_keeps_its_text() {
        use std::error::Error as _;
        let cause = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad block 7");
        let e = Error::internal_by("lexical", cause);
        assert_eq!(e.to_string(), "internal error in lexical: bad block 7");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("bad block 7"));
        let e = Error::corrupt_by("text/meta.json", serde_json::from_str::<u8>("x").unwrap_err());
        assert!(e.source().is_some() && e.to_string().starts_with("corrupt index file text/meta.json: "));
        assert!(Error::corrupt("items.bin", "2 trailing bytes").source().is_none());
    }
}
