//! Building from log artefacts ([`LogArtefacts`]) in place of the event log.

use std::path::Path;

use super::{BuildReport, IndexBuilder};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::events::{EventKind, Events};
use crate::offline::artefacts::LogArtefacts;
use crate::ranking::categories::QueryCategories;
#[cfg(feature = "train")]
use crate::{
    error::Error,
    offline::artefacts::TrainingArtefacts,
    offline::training::TrainingLog,
    ranking::{dataset::RANKER_HOLDOUT, train::TrainParams},
};

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

    pub(crate) fn events(&self) -> u64 {
        match self {
            Log::Events(e) => e.len() as u64,
            Log::Artefacts(a) => a.summary.events,
        }
    }
}

/// Why a build from artefacts cannot train its ranker.
#[cfg(feature = "train")]
const ARTEFACTS_NO_TRAINING: &str = "a build that trains its ranker needs log artefacts with training windows \
     (compute them with a builder that trains, or with the Spark job's --training-windows), or \
     without_ranker_training()";

impl IndexBuilder {
    /// Computes the log artefacts of `events` over `catalog` with this
    /// builder's session gap, co-visitation window and linear parameters:
    /// what [`IndexBuilder::build`] reads of the log, for writing as
    /// Parquet (`LogArtefacts::write_parquet`, feature `parquet`) or for
    /// checking another producer's (docs/artefacts.md). A builder that
    /// trains its ranker also computes the training windows: for each, the
    /// artefacts of the log before it and its logged requests.
    pub fn log_artefacts(&self, catalog: &Catalog, events: &Events) -> Result<LogArtefacts> {
        self.check(catalog, Log::Events(events))?;
        let p = &self.params;
        let artefacts = LogArtefacts::compute(
            catalog,
            events,
            p.session_gap_secs,
            p.covisit.window,
            p.linear.partners_needed(catalog.len()),
        );
        match &self.train {
            Some(t) => {
                t.check()?;
                artefacts.with_training(catalog, events, t.windows, t.max_lists)
            }
            None => Ok(artefacts),
        }
    }

    /// Builds the index into `out` from log artefacts in place of the event
    /// log: the same index [`IndexBuilder::build`] makes from the log they
    /// were computed from, with this builder's parameters (which must match
    /// the artefacts' session gap, window and co-occurrence cut; the error
    /// says which does not). A builder that trains its ranker needs
    /// artefacts with training windows computed with its
    /// [`TrainParams`](crate::TrainParams)' `windows` and `max_lists`.
    pub fn build_from_artefacts(&self, catalog: &Catalog, artefacts: &LogArtefacts, out: impl AsRef<Path>) -> Result<BuildReport> {
        self.build_log(catalog, Log::Artefacts(artefacts), out.as_ref(), &|_| {})
    }

    /// This builder's training parameters and what its ranker training
    /// reads of `log`: `None` when it does not train; training windows it
    /// cannot use are refused.
    #[cfg(feature = "train")]
    pub(super) fn training_log<'a>(&'a self, catalog: &Catalog, log: Log<'a>) -> Result<Option<(&'a TrainParams, TrainingLog<'a>)>> {
        Ok(match (&self.train, log) {
            (None, _) => None,
            (Some(params), Log::Events(events)) => Some((params, TrainingLog::Events(events))),
            (Some(params), Log::Artefacts(a)) => Some((params, TrainingLog::Artefacts(self.training_artefacts(catalog, a, params)?))),
        })
    }

    /// The training windows of `artefacts`, refused unless they were
    /// computed as this builder's training (`params`) reads the log.
    #[cfg(feature = "train")]
    fn training_artefacts<'a>(
        &self,
        catalog: &Catalog,
        artefacts: &'a LogArtefacts,
        params: &TrainParams,
    ) -> Result<&'a TrainingArtefacts> {
        let Some(t) = artefacts.training.as_deref() else {
            return Err(Error::InvalidConfig(ARTEFACTS_NO_TRAINING.into()));
        };
        let bad = |m: String| Err(Error::InvalidConfig(format!("log artefacts: training windows {m}")));
        if t.holdout != RANKER_HOLDOUT {
            return bad(format!("of {} of the log each; the build's are {RANKER_HOLDOUT}", t.holdout));
        }
        if t.max_lists != params.max_lists {
            return bad(format!("of at most {} requests; the build keeps {}", t.max_lists, params.max_lists));
        }
        // More windows than the build reads are fine: it reads the newest.
        if t.asked < params.windows {
            return bad(format!("computed for {} windows; the build trains on {}", t.asked, params.windows));
        }
        for (n, w) in t.windows.iter().enumerate() {
            w.log.check_compatible(catalog, &self.params).map_err(|e| match e {
                Error::InvalidConfig(m) => Error::InvalidConfig(format!("training window {n}: {m}")),
                other => other,
            })?;
        }
        Ok(t)
    }
}
