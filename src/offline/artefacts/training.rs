//! Training artefacts: what ranker training reads of the log, window by
//! window (`dataset::window_targets`): the log artefacts of the events
//! before each window, on which its retrieval index is built, and the
//! window's logged requests with the item each led to. With them a build
//! from artefacts trains the ranker the build from the log trains.

use crate::catalog::Catalog;
use crate::error::Result;
use crate::events::Events;
use crate::ranking::dataset::{self, Target, RANKER_HOLDOUT};

use super::LogArtefacts;

/// The training windows of a log, as [`IndexBuilder::log_artefacts`]
/// computes them for a builder that trains its ranker.
///
/// [`IndexBuilder::log_artefacts`]: crate::IndexBuilder::log_artefacts
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TrainingArtefacts {
    /// Share of the log per window (`RANKER_HOLDOUT`).
    pub holdout: f64,
    /// Logged requests kept per window, at most (`TrainParams::max_lists`).
    pub max_lists: usize,
    /// Windows asked for (`TrainParams::windows`); `windows` holds those
    /// the log has, window 0 always.
    pub asked: usize,
    pub windows: Vec<TrainingWindow>,
}

/// One window: where it begins and ends, the artefacts of the log before
/// it, and its logged requests.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TrainingWindow {
    /// Start (inclusive) of the window; `None` only for window 0 of an
    /// empty log.
    pub from: Option<i64>,
    /// End (exclusive); `None` for window 0, which runs to the log's end.
    pub to: Option<i64>,
    /// The artefacts of the events before `from`.
    pub log: LogArtefacts,
    /// The window's logged requests, in log order.
    pub targets: Vec<Target>,
}

impl TrainingArtefacts {
    /// The training windows of `events`, each window's prior log computed
    /// as `prior` computes log artefacts.
    pub(crate) fn compute(
        catalog: &Catalog,
        events: &Events,
        windows: usize,
        max_lists: usize,
        prior: &dyn Fn(&Events) -> LogArtefacts,
    ) -> Result<TrainingArtefacts> {
        let ids: Vec<String> = catalog.items().iter().map(|i| i.id.clone()).collect();
        let mut out = Vec::new();
        for w in 0..windows {
            // Window 0 of an empty log has no start and no requests.
            let (from, to, targets) = match dataset::window_targets(events, &ids, w, max_lists) {
                Some((from, to, targets)) => (Some(from), to, targets),
                None if w == 0 => (None, None, Vec::new()),
                None => break,
            };
            out.push(TrainingWindow {
                from,
                to,
                log: prior(&dataset::events_before(events, from, catalog)?),
                targets,
            });
            if from.is_none() {
                break;
            }
        }
        Ok(TrainingArtefacts {
            holdout: RANKER_HOLDOUT,
            max_lists,
            asked: windows,
            windows: out,
        })
    }

    /// Up to `limit` differences with `other`, as [`LogArtefacts::differences`].
    pub(crate) fn differences(&self, other: &TrainingArtefacts, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        if (self.holdout, self.max_lists, self.asked) != (other.holdout, other.max_lists, other.asked) {
            out.push(format!(
                "training: share {}, {} lists, {} windows asked against {}, {}, {}",
                self.holdout, self.max_lists, self.asked, other.holdout, other.max_lists, other.asked
            ));
        }
        if self.windows.len() != other.windows.len() {
            out.push(format!("training: {} windows against {}", self.windows.len(), other.windows.len()));
        }
        for (w, (a, b)) in self.windows.iter().zip(&other.windows).enumerate() {
            if (a.from, a.to) != (b.from, b.to) {
                out.push(format!(
                    "training window {w}: bounds {:?}..{:?} against {:?}..{:?}",
                    a.from, a.to, b.from, b.to
                ));
            }
            for d in a.log.differences(&b.log, limit) {
                out.push(format!("training window {w}, the log before it: {d}"));
            }
            if a.targets.len() != b.targets.len() {
                out.push(format!(
                    "training window {w}: {} targets against {}",
                    a.targets.len(),
                    b.targets.len()
                ));
            }
            if let Some((n, (x, y))) = a.targets.iter().zip(&b.targets).enumerate().find(|(_, (x, y))| x != y) {
                out.push(format!("training window {w}, target {n}: {x:?} against {y:?}"));
            }
        }
        out.truncate(limit);
        out
    }
}
