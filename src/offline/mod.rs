//! Offline orchestration: everything that runs before an index is served.
//!
//! - `artefacts`: the log-derived inputs of a build ([`LogArtefacts`](crate::LogArtefacts)),
//!   computed in process or read from Parquet a Spark job wrote.
//! - `builder`: [`IndexBuilder`](crate::IndexBuilder), catalog + events → an index directory.
//! - `training`: the ranker's training lists (logged requests replayed
//!   through the real retrieval stage of an engine opened on a held-out
//!   build) and in-place retraining.
//! - `compact`: [`EngineHandle::compact`](crate::EngineHandle::compact), the
//!   live writes folded into a new generation that is swapped in.
//! - `generations` (feature `generations`): index generations in object
//!   storage, published by a build and followed by replicas.
//! - `publish`: temporary sibling directories and the atomic swap that
//!   publishes a finished index.
//!
//! This is the top layer of the library: it opens an [`Engine`](crate::Engine)
//! to assemble training lists, so nothing below it may depend on it.

pub(crate) mod artefacts;
pub(crate) mod builder;
pub(crate) mod compact;
#[cfg(feature = "generations")]
pub(crate) mod generations;
pub(crate) mod publish;
#[cfg(feature = "train")]
pub(crate) mod training;
