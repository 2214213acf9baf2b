//! Building from log artefacts ([`LogArtefacts`]) in place of the event log.

use std::path::Path;

use super::{BuildReport, IndexBuilder};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::events::{EventKind, Events};
use crate::offline::artefacts::LogArtefacts;
use crate::ranking::categories::QueryCategories;

/// Where a build reads the log from: the events themselves, or the
/// artefacts computed from them.
#[derive(Clone, Copy)]
pub(crate) enum Log<'a> {
    Events(&'a Events),
    Artefacts(&'a LogArtefacts),
}

impl Log<'_> {
    /// Whether any item was played.
    pub(super) fn has_plays(&self) -> bool {
        match self {
            Log::Events(e) => e.events().iter().any(|e| e.kind == EventKind::Play),
            Log::Artefacts(a) => a.has_plays(),
        }
    }

    /// The query–category model of the log's searches (the same from the
    /// events and from their artefacts' search counts).
    pub(super) fn query_categories(&self, catalog: &Catalog, tag_fields: &[String]) -> QueryCategories {
        match self {
            Log::Events(events) => QueryCategories::learn(catalog, tag_fields, events),
            Log::Artefacts(a) => {
                QueryCategories::learn_counted(catalog, tag_fields, a.searches.iter().map(|s| (s.query.as_str(), s.item, s.count)))
            }
        }
    }

    pub(super) fn events(&self) -> u64 {
        match self {
            Log::Events(e) => e.len() as u64,
            Log::Artefacts(a) => a.summary.events,
        }
    }
}

/// Why a build from artefacts cannot train its ranker.
pub(super) const ARTEFACTS_NO_TRAINING: &str = "a build from log artefacts cannot train the ranker: its training lists \
     are not an artefact yet (call without_ranker_training(), or build from the event log)";

impl IndexBuilder {
    /// Computes the log artefacts of `events` over `catalog` with this
    /// builder's session gap, co-visitation window and linear parameters:
    /// what [`IndexBuilder::build`] reads of the log, for writing as
    /// Parquet (`LogArtefacts::write_parquet`, feature `parquet`) or for
    /// checking another producer's (docs/artefacts.md).
    pub fn log_artefacts(&self, catalog: &Catalog, events: &Events) -> Result<LogArtefacts> {
        self.check(catalog, Log::Events(events))?;
        let p = &self.params;
        Ok(LogArtefacts::compute(
            catalog,
            events,
            p.session_gap_secs,
            p.covisit.window,
            p.linear.partners_needed(catalog.len()),
        ))
    }

    /// Builds the index into `out` from log artefacts in place of the event
    /// log: the same index [`IndexBuilder::build`] makes from the log they
    /// were computed from, with this builder's parameters (which must match
    /// the artefacts' session gap, window and co-occurrence cut; the error
    /// says which does not). The ranker's training lists are not an
    /// artefact yet, so ranker training must be off
    /// ([`IndexBuilder::without_ranker_training`]).
    pub fn build_from_artefacts(&self, catalog: &Catalog, artefacts: &LogArtefacts, out: impl AsRef<Path>) -> Result<BuildReport> {
        self.build_log(catalog, Log::Artefacts(artefacts), out.as_ref(), &|_| {})
    }
}
