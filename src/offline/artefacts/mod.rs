//! Log artefacts: the log-derived inputs of a build, computed once from the
//! event log, here or by the Spark job in `spark/` (docs/artefacts.md).
//!
//! A build reads the event log for five statistics, and only through them:
//! per-item play counts (popularity), the directed play-pair counts of
//! sessions per distance (co-visitation and the learned embeddings), the
//! users' co-occurrence counts (the linear item-item model), the logged
//! searches counted by query and item (the ranker's query–category model),
//! and the log's size and time span. All are integers or the logged
//! strings, so a producer on another engine gives exactly the same values,
//! and the index built from them is the index built from the log.
//! [`IndexBuilder::log_artefacts`] computes them in process;
//! [`IndexBuilder::build_from_artefacts`] builds from them.
//!
//! A build that trains its ranker also reads the log's training windows
//! ([`TrainingArtefacts`]): for each, the same five statistics of the log
//! before it and its logged requests. They cost one more set of statistics
//! per window (three by default).
//!
//! [`IndexBuilder::log_artefacts`]: crate::IndexBuilder::log_artefacts
//! [`IndexBuilder::build_from_artefacts`]: crate::IndexBuilder::build_from_artefacts

#[cfg(feature = "parquet")]
mod files;
mod training;
#[cfg(feature = "parquet")]
mod training_files;

pub(crate) use training::TrainingArtefacts;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::events::{EventKind, Events};
use crate::index::BuildParams;
use crate::retrieval::covisit::{self, PairCount};
use crate::retrieval::linear::Cooccurrence;
use crate::retrieval::popular::PlayCounts;

/// Name in every artefact summary.
pub const ARTEFACTS_FORMAT: &str = "twostage-log-artefacts";
/// Version of the artefacts' schemas this crate writes and reads.
pub const ARTEFACTS_VERSION: u32 = 2;

/// What a set of log artefacts was computed from and with: the one-row
/// `summary` artefact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ArtefactSummary {
    /// [`ARTEFACTS_FORMAT`].
    pub format: String,
    /// [`ARTEFACTS_VERSION`] of the producer.
    pub version: u32,
    /// Inactivity gap that ended a session ([`IndexBuilder::session_gap`](crate::IndexBuilder::session_gap)).
    pub session_gap_secs: i64,
    /// Co-visitation window: the largest pair distance counted.
    pub covisit_window: usize,
    /// Co-occurrence partners kept per item (the strongest), or `None` for
    /// all: a catalog fitted exactly by the linear model needs all.
    pub cooccurrence_kept: Option<usize>,
    /// Items in the catalog the artefacts were computed against.
    pub items: usize,
    /// Events in the log (plays, skips, searches; impressions excluded).
    pub events: u64,
    /// Sessions with at least two plays once immediate repeats are merged
    /// (those co-visitation learns from).
    pub sessions: u64,
    /// Time of the log's first event (0 for an empty log).
    pub first_ts: i64,
    /// Time of the log's last event (0 for an empty log).
    pub last_ts: i64,
}

/// The log-derived inputs of a build, bound to the catalog they were
/// computed against.
#[derive(Clone, Debug, PartialEq)]
pub struct LogArtefacts {
    pub(crate) ids: Vec<String>,
    pub(crate) summary: ArtefactSummary,
    pub(crate) counts: PlayCounts,
    pub(crate) pairs: Vec<PairCount>,
    pub(crate) cooccurrence: Cooccurrence,
    pub(crate) searches: Vec<SearchCount>,
    /// What ranker training reads, when computed for a training build.
    pub(crate) training: Option<Box<TrainingArtefacts>>,
}

/// How many logged searches for `query` led to internal item `item`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SearchCount {
    pub query: String,
    pub item: u32,
    pub count: u64,
}

/// The searches of `events`, counted by (query, item), in that order.
fn search_counts(events: &Events) -> Vec<SearchCount> {
    let mut counts: std::collections::BTreeMap<(&str, u32), u64> = std::collections::BTreeMap::new();
    for e in events.events() {
        if let (EventKind::Search, Some(q)) = (e.kind, &e.query) {
            *counts.entry((q.as_str(), e.item)).or_insert(0) += 1;
        }
    }
    counts
        .into_iter()
        .map(|((query, item), count)| SearchCount {
            query: query.to_string(),
            item,
            count,
        })
        .collect()
}

impl LogArtefacts {
    /// Computes the artefacts of `events` over `catalog` (without training windows).
    pub(crate) fn compute(catalog: &Catalog, events: &Events, gap_secs: i64, window: usize, kept: Option<usize>) -> LogArtefacts {
        let n = catalog.len();
        let sequences = covisit::session_sequences(events, gap_secs);
        let counts = PlayCounts::count(n, events);
        LogArtefacts {
            ids: catalog.items().iter().map(|it| it.id.clone()).collect(),
            summary: ArtefactSummary {
                format: ARTEFACTS_FORMAT.to_string(),
                version: ARTEFACTS_VERSION,
                session_gap_secs: gap_secs,
                covisit_window: window,
                cooccurrence_kept: kept,
                items: n,
                events: events.len() as u64,
                sessions: sequences.len() as u64,
                first_ts: counts.first_ts,
                last_ts: counts.last_ts,
            },
            pairs: covisit::pair_counts(&sequences, window),
            cooccurrence: Cooccurrence::count(n, events, kept),
            searches: search_counts(events),
            training: None,
            counts,
        }
    }

    /// Adds the training windows of `events` ([`TrainingArtefacts`]):
    /// `windows` windows of at most `max_lists` logged requests each.
    pub(crate) fn with_training(mut self, catalog: &Catalog, events: &Events, windows: usize, max_lists: usize) -> Result<LogArtefacts> {
        let s = &self.summary;
        let (gap, window, kept) = (s.session_gap_secs, s.covisit_window, s.cooccurrence_kept);
        let prior = |before: &Events| LogArtefacts::compute(catalog, before, gap, window, kept);
        self.training = Some(Box::new(TrainingArtefacts::compute(catalog, events, windows, max_lists, &prior)?));
        Ok(self)
    }

    /// What these artefacts were computed from and with.
    pub fn summary(&self) -> &ArtefactSummary {
        &self.summary
    }

    /// The number of logged requests in each training window, newest first;
    /// `None` when the artefacts have no training windows (computed for a
    /// build that does not train its ranker).
    pub fn training_window_sizes(&self) -> Option<Vec<usize>> {
        self.training.as_ref().map(|t| t.windows.iter().map(|w| w.targets.len()).collect())
    }

    /// Whether any item was played.
    pub(crate) fn has_plays(&self) -> bool {
        self.counts.plays.iter().any(|&p| p > 0)
    }

    /// Up to `limit` differences between `self` and `other`, each naming
    /// the artefact, the item ids and both values; empty when they are
    /// equal. For checking one producer against another.
    pub fn differences(&self, other: &LogArtefacts, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut note = |s: String| {
            if out.len() < limit {
                out.push(s);
            }
        };
        if self.ids != other.ids {
            note("the catalogs differ".to_string());
        }
        if self.summary != other.summary {
            note(format!("summary: {:?} against {:?}", self.summary, other.summary));
        }
        let id = |i: u32| self.ids.get(i as usize).map_or("?", String::as_str);
        let (a, b) = (&self.counts, &other.counts);
        let columns: [(&str, &[u64], &[u64]); 4] = [
            ("plays", &a.plays, &b.plays),
            ("skips", &a.skips, &b.skips),
            ("recent_plays", &a.recent_plays, &b.recent_plays),
            ("play_seconds", &a.play_seconds, &b.play_seconds),
        ];
        for (name, x, y) in columns {
            for (i, (p, q)) in x.iter().zip(y).enumerate().filter(|(_, (p, q))| p != q) {
                note(format!("popularity {}: {name} {p} against {q}", id(i as u32)));
            }
        }
        let show = |c: Option<&PairCount>| c.map_or("none".to_string(), |c| c.count.to_string());
        for (mine, theirs) in merge_walk(&self.pairs, &other.pairs, |c| (c.from, c.to, c.distance)) {
            if let Some(c) = mine.or(theirs).filter(|_| show(mine) != show(theirs)) {
                note(format!(
                    "pairs {}→{} at {}: count {} against {}",
                    id(c.from),
                    id(c.to),
                    c.distance,
                    show(mine),
                    show(theirs)
                ));
            }
        }
        let show = |s: Option<&SearchCount>| s.map_or("none".to_string(), |s| s.count.to_string());
        for (mine, theirs) in merge_walk(&self.searches, &other.searches, |s| (s.query.as_str(), s.item)) {
            if let Some(s) = mine.or(theirs).filter(|_| show(mine) != show(theirs)) {
                note(format!(
                    "searches {:?} → {}: count {} against {}",
                    s.query,
                    id(s.item),
                    show(mine),
                    show(theirs)
                ));
            }
        }
        match (&self.training, &other.training) {
            (Some(a), Some(b)) => a.differences(b, limit).into_iter().for_each(&mut note),
            (None, None) => {}
            (a, _) => note(format!(
                "training windows: {} against {}",
                if a.is_some() { "present" } else { "absent" },
                if a.is_some() { "absent" } else { "present" }
            )),
        }
        for (i, (p, q)) in self.cooccurrence.rows.iter().zip(&other.cooccurrence.rows).enumerate() {
            if p != q {
                note(format!(
                    "cooccurrence of {}: {} users and {} partners against {} users and {} partners",
                    id(i as u32),
                    p.own,
                    p.partners.len(),
                    q.own,
                    q.partners.len()
                ));
            }
        }
        out
    }
}

/// Walks two lists sorted by `key` side by side: every key of either, once,
/// with its entry on each side (`None` where that side lacks it).
fn merge_walk<'a, T, K: Ord>(a: &'a [T], b: &'a [T], key: impl Fn(&'a T) -> K) -> Vec<(Option<&'a T>, Option<&'a T>)> {
    let (mut x, mut y) = (a.iter().peekable(), b.iter().peekable());
    let mut out = Vec::new();
    loop {
        out.push(match (x.peek(), y.peek()) {
            (None, None) => return out,
            (Some(p), Some(q)) => match key(p).cmp(&key(q)) {
                std::cmp::Ordering::Equal => (x.next(), y.next()),
                std::cmp::Ordering::Less => (x.next(), None),
                std::cmp::Ordering::Greater => (None, y.next()),
            },
            (Some(_), None) => (x.next(), None),
            (None, Some(_)) => (None, y.next()),
        });
    }
}

impl LogArtefacts {
    /// Refuses artefacts a build with `params` over `catalog` cannot use:
    /// computed against another catalog, or with another session gap,
    /// co-visitation window or a co-occurrence cut the linear fit cannot
    /// work from.
    pub(crate) fn check_compatible(&self, catalog: &Catalog, params: &BuildParams) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(format!("log artefacts: {m}")));
        let s = &self.summary;
        if self.ids.len() != catalog.len() || self.ids.iter().zip(catalog.items()).any(|(a, b)| *a != b.id) {
            return bad("computed against another catalog (read them with this catalog)".into());
        }
        if s.session_gap_secs != params.session_gap_secs {
            return bad(format!(
                "session gap {} s, the build's is {} s (compute them with the build's)",
                s.session_gap_secs, params.session_gap_secs
            ));
        }
        if s.covisit_window != params.covisit.window {
            return bad(format!(
                "co-visitation window {}, the build's is {}",
                s.covisit_window, params.covisit.window
            ));
        }
        match (params.linear.partners_needed(catalog.len()), s.cooccurrence_kept) {
            (None, Some(k)) => bad(format!(
                "co-occurrence cut to {k} partners per item; the linear model fits these {} items exactly and needs all \
                 (compute them with max_dense_items below the catalog size, or keep every partner)",
                catalog.len()
            )),
            (Some(need), Some(k)) if k < need => bad(format!(
                "co-occurrence cut to {k} partners per item; the linear model's neighbourhood is {need}"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge_walk;

    #[test]
    fn merge_walk_pairs_each_key_once_and_names_what_a_side_lacks() {
        let (a, b) = ([(1, 'a'), (3, 'c'), (4, 'd')], [(2, 'B'), (3, 'C'), (5, 'E')]);
        let got: Vec<(Option<char>, Option<char>)> = merge_walk(&a, &b, |e| e.0)
            .into_iter()
            .map(|(x, y)| (x.map(|e| e.1), y.map(|e| e.1)))
            .collect();
        assert_eq!(
            got,
            [
                (Some('a'), None),
                (None, Some('B')),
                (Some('c'), Some('C')),
                (Some('d'), None),
                (None, Some('E'))
            ]
        );
        assert!(merge_walk(&[] as &[(i32, char)], &[], |e| e.0).is_empty());
    }
}
