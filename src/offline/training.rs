//! Ranker training, offline: logged requests ([`Target`]s) from the most
//! recent part of the log, sent through the real retrieval stage of an
//! engine opened on a build over the older part, their candidates labelled
//! by what the user did next; the model fitted on those lists; and the
//! in-place retrain of an existing index.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;

use crate::catalog::Catalog;
use crate::encoder::Encoder;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::index::{reader, writer};
use crate::offline::artefacts::TrainingArtefacts;
use crate::offline::builder::Log;
use crate::offline::builder::{ContentVectors, IndexBuilder};
use crate::offline::publish::{publish, temp_sibling};
use crate::progress::{OnProgress, Progress};
use crate::ranking::categories::QueryCategories;
use crate::ranking::dataset::{self, events_before, window_start, window_targets, Target, RANKER_HOLDOUT};
use crate::ranking::fit;
use crate::ranking::model::Ranker;
use crate::ranking::plan::{self, ContextKind, HeldOut, ServingPlan};
use crate::ranking::train::{EpochReport, ListExample, TrainParams, TrainSummary};
use crate::request::Retriever;
use crate::schema::Schema;

/// Fewer lists with a relevant candidate than this and the fixed-weight
/// placeholder is kept: a model fitted on less would be noise.
pub(crate) const MIN_TRAINING_LISTS: usize = 50;
/// Logged searches (in all the log windows training reads) fewer than this
/// are topped up with searches generated from the catalog
/// ([`dataset::catalog_targets`]).
pub const GENERATED_SEARCHES: usize = 2_000;
const GENERATED_SEED: u64 = 0x7365_6172_6368;

impl IndexBuilder {
    /// Trains a ranker on the most recent [`RANKER_HOLDOUT`] of the log
    /// against a retrieval index built from the rest (in a temporary
    /// directory beside `out`), and on each older window of that size
    /// against an index built on what precedes it ([`TrainParams::windows`]).
    /// `None` when there is too little to learn from.
    // Private; every argument is a distinct input, and bundling them into a
    // struct used once would only move the list.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn train_ranker(
        &self,
        catalog: &Catalog,
        log: TrainingLog<'_>,
        schema: &Schema,
        content: Option<&ContentVectors<'_>>,
        out: &Path,
        params: &TrainParams,
        on_epoch: &mut dyn FnMut(&EpochReport),
        on_progress: OnProgress<'_>,
    ) -> Result<Option<(Ranker, TrainSummary)>> {
        params.check()?;
        let _span = tracing::info_span!("ranker training").entered();
        let started = Instant::now();
        let ids: Vec<String> = catalog.items().iter().map(|i| i.id.clone()).collect();
        // Logged requests from the most recent part of the log, against
        // retrieval built on the rest; no log, no logged requests.
        let logged = log.targets(&ids, 0, params.max_lists).unwrap_or_default();
        // Searches generated from the catalog top up the logged ones: a
        // catalog with no search log still gets a search ranker (and a
        // validated plan). Held out in the same 4:1 proportion. Every window
        // the training reads counts: its logged searches are real queries,
        // which a top-up of titles would otherwise outnumber.
        let searches = |targets: &[Target]| targets.iter().filter(|t| t.request.context.text().is_some()).count();
        let older: Vec<Vec<Target>> = (1..params.windows).map_while(|w| log.targets(&ids, w, params.max_lists)).collect();
        let logged_searches = searches(&logged) + older.iter().map(|t| searches(t)).sum::<usize>();
        let generated = dataset::catalog_targets(catalog, GENERATED_SEARCHES.saturating_sub(logged_searches), GENERATED_SEED);
        let (logged_split, generated_split) = (training_share(logged.len()), training_share(generated.len()));
        // Whether the plan may trust the ranker's figure on generated
        // searches: it learned from real ones too (plain or personalised).
        let logged_training_searches =
            searches(&logged[..logged_split]) + older.iter().map(|t| searches(&t[..training_share(t.len())])).sum::<usize>();
        let mut targets: Vec<Target> = logged[..logged_split].to_vec();
        targets.extend_from_slice(&generated[..generated_split]);
        let split = targets.len();
        targets.extend_from_slice(&logged[logged_split..]);
        targets.extend_from_slice(&generated[generated_split..]);
        if split < MIN_TRAINING_LISTS {
            tracing::info!(lists = split, needed = MIN_TRAINING_LISTS, "too few requests to train a ranker");
            return Ok(None);
        }
        let tmp = temp_sibling(out, "ranker")?;
        let result = (|| {
            let engine = log.before(catalog, 0, &mut |before| {
                tracing::info_span!("retrieval index", events = before.events())
                    .in_scope(|| self.retrieval_engine(catalog, before, schema, content, &tmp, started))
            })?;
            // Validation is the later part of the holdout: early stopping sees the future the model will face.
            let lists_span = tracing::info_span!("training lists", targets = targets.len()).entered();
            let listed = |n: usize| on_progress(&Progress::new("training lists", n, targets.len(), "lists"));
            let (train_lists, train_recall) = lists(&engine, &targets[..split], &listed)?;
            let (valid_lists, valid_recall) = lists(&engine, &targets[split..], &|n| listed(split + n))?;
            listed(targets.len());
            drop(lists_span);
            let (mut train_lists, _): (Vec<ListExample>, Vec<_>) = train_lists.into_iter().unzip();
            // Validation lists are the logged ones first, then the generated.
            let logged_valid = logged.len() - logged_split;
            let mut valid: Vec<(ListExample, ListMeta, bool)> = valid_lists
                .into_iter()
                .enumerate()
                .map(|(n, (l, meta))| (l, meta, n >= logged_valid))
                .collect();
            let (mut found, mut asked) = (train_recall * split as f64, split);
            for (window, targets) in older.iter().enumerate().map(|(w, t)| (w + 1, t)) {
                let (mut lists, recall, n) = self.window_lists(catalog, log, schema, content, out, window, targets, started)?;
                // Each older window holds out its later fifth too: the plan
                // is chosen on every window's held-out requests, not on the
                // last window's alone (120 lists of WordNet's 4,000 searches
                // left a ranker-or-fusion choice within its standard error).
                valid.extend(
                    lists
                        .split_off(training_share(lists.len()))
                        .into_iter()
                        .map(|(l, meta)| (l, meta, false)),
                );
                train_lists.extend(lists.into_iter().map(|(l, _)| l));
                found += recall * n as f64;
                asked += n;
            }
            // Over the windows' training and held-out lists alike.
            let train_recall = found / asked.max(1) as f64;
            let (valid_lists, valid_meta): (Vec<ListExample>, Vec<(ListMeta, bool)>) =
                valid.into_iter().map(|(l, meta, generated)| (l, (meta, generated))).unzip();
            let (train_lists, stop_lists) = early_stopping_split(train_lists);
            let positive = |l: &[ListExample]| l.iter().filter(|e| e.grades.iter().any(|&g| g > 0)).count();
            if positive(&train_lists) < MIN_TRAINING_LISTS || positive(&stop_lists) == 0 || positive(&valid_lists) == 0 {
                return Ok(None);
            }
            let mut epochs = Vec::new();
            // Every member may run max_epochs; early stopping skips ahead.
            let budget = params.max_epochs * params.ensemble;
            on_progress(&Progress::new("ranker training", 0, budget, "epochs"));
            let mut ranker = fit::train(&train_lists, &stop_lists, params, &mut |r| {
                epochs.push(r.clone());
                on_epoch(r);
                on_progress(&Progress::new(
                    "ranker training",
                    r.member * params.max_epochs + r.epoch,
                    budget,
                    "epochs",
                ));
            })?;
            on_progress(&Progress::new("ranker training", budget, budget, "epochs"));
            // At a compaction the new ranker replaces the served one only if
            // it scores at least as well on the same held-out lists (a
            // ranker over other features cannot be scored, nor served).
            let mut replaced_ndcg = None;
            let mut kept_incumbent = false;
            if let Some(incumbent) = self.incumbent.as_deref() {
                if incumbent.ranker.info().features == ranker.info().features {
                    let old = fit::list_ndcg(&incumbent.ranker, &valid_lists)?;
                    replaced_ndcg = Some(old);
                    if old > fit::list_ndcg(&ranker, &valid_lists)? {
                        ranker = incumbent.ranker.clone();
                        kept_incumbent = true;
                    }
                }
            }
            let held_out = valid_lists
                .iter()
                .zip(valid_meta)
                .map(|(l, ((kind, ranks), generated))| {
                    Ok(HeldOut {
                        kind,
                        generated,
                        ranks,
                        ranker: ranker.score(&l.features, l.grades.len())?,
                        grades: l.grades.clone(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let serving = plan::choose(&held_out, logged_training_searches);
            let mut validation = ranker.info().validation.clone();
            let valid_ndcg = fit::list_ndcg(&ranker, &valid_lists)?;
            // What the ranker scored on the lists it stopped on, beside its
            // figure on the held-out ones.
            if let Some(stop) = validation.remove("ndcg@10") {
                validation.insert("early_stopping_ndcg@10".into(), stop);
            }
            if let Some(n) = validation.remove("valid_lists") {
                validation.insert("early_stopping_lists".into(), n);
            }
            validation.insert("ndcg@10".into(), valid_ndcg);
            validation.insert("valid_lists".into(), positive(&valid_lists) as f64);
            validation.insert("train_candidate_recall".into(), train_recall);
            validation.insert("valid_candidate_recall".into(), valid_recall);
            ranker.set_validation(validation);
            let summary = TrainSummary {
                kind: ranker.info().kind.clone(),
                epochs,
                valid_ndcg,
                train_candidate_recall: train_recall,
                valid_candidate_recall: valid_recall,
                train_lists: positive(&train_lists),
                valid_lists: positive(&valid_lists),
                generated_lists: generated.len(),
                serving,
                replaced_ndcg,
                kept_incumbent,
                seconds: started.elapsed().as_secs_f64(),
            };
            Ok(Some((ranker, summary)))
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }
}

impl IndexBuilder {
    /// Builds the retrieval stage of `events` into `dir` (with the
    /// placeholder ranker) and opens it, encoder attached: the engine that
    /// rebuilt requests are sent through.
    fn retrieval_engine(
        &self,
        catalog: &Catalog,
        log: Log<'_>,
        schema: &Schema,
        content: Option<&ContentVectors<'_>>,
        dir: &Path,
        started: Instant,
    ) -> Result<Engine> {
        self.build_into(
            catalog,
            log,
            schema,
            content,
            dir,
            started,
            &Ranker::fixed_default()?,
            &ServingPlan::default(),
            &|_| {},
        )?;
        let engine = Engine::open(dir)?;
        match content {
            Some(c) => engine.with_encoder(c.encoder.clone()),
            None => Ok(engine),
        }
    }

    /// The lists of log window `window` ≥ 1 (its logged requests
    /// `targets`), with their context kinds and retriever ranks (the caller
    /// holds some out), against retrieval built (beside `out`) on the log
    /// before the window; with their candidate recall and how many requests
    /// were asked.
    #[allow(clippy::too_many_arguments)]
    fn window_lists(
        &self,
        catalog: &Catalog,
        log: TrainingLog<'_>,
        schema: &Schema,
        content: Option<&ContentVectors<'_>>,
        out: &Path,
        window: usize,
        targets: &[Target],
        started: Instant,
    ) -> Result<WindowLists> {
        let tmp = temp_sibling(out, "ranker-window")?;
        let result = log.before(catalog, window, &mut |before| {
            let _span = tracing::info_span!("training window", window, events = before.events(), targets = targets.len()).entered();
            let engine = self.retrieval_engine(catalog, before, schema, content, &tmp, started)?;
            let (lists, recall) = lists(&engine, targets, &|_| {})?;
            Ok((lists, recall, targets.len()))
        });
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }
}

/// What ranker training reads of the log: the event log itself, or the
/// training windows of its artefacts (computed from the same log, the same
/// windows and requests).
#[derive(Clone, Copy)]
pub(crate) enum TrainingLog<'a> {
    Events(&'a Events),
    Artefacts(&'a TrainingArtefacts),
}

impl TrainingLog<'_> {
    /// Log window `window`'s logged requests (at most `max_lists`):
    /// `None` for a window ≥ 1 the log does not have; window 0 of an empty
    /// log has none.
    fn targets(&self, ids: &[String], window: usize, max_lists: usize) -> Option<Vec<Target>> {
        let found = match self {
            TrainingLog::Events(events) => window_targets(events, ids, window, max_lists).map(|(_, _, t)| t),
            TrainingLog::Artefacts(a) => a.windows.get(window).map(|w| w.targets.clone()),
        };
        if window == 0 {
            Some(found.unwrap_or_default())
        } else {
            found
        }
    }

    /// Calls `f` with the log before window `window` (of a window
    /// [`TrainingLog::targets`] found).
    fn before<R>(&self, catalog: &Catalog, window: usize, f: &mut dyn FnMut(Log<'_>) -> Result<R>) -> Result<R> {
        match self {
            TrainingLog::Events(events) => f(Log::Events(&events_before(events, window_start(events, window), catalog)?)),
            TrainingLog::Artefacts(a) => match a.windows.get(window) {
                Some(w) => f(Log::Artefacts(&w.log)),
                None => Err(Error::internal(
                    "ranker training",
                    format!("no training window {window} in the artefacts"),
                )),
            },
        }
    }
}

/// A log window's lists with their context kinds and retriever ranks, its
/// candidate recall, and how many requests it had.
type WindowLists = (Vec<(ListExample, ListMeta)>, f64, usize);

/// Every this many training lists, one is kept out of fitting and early
/// stopping is judged on it.
const EARLY_STOPPING_EVERY: usize = 10;

/// Splits training lists into those the ranker is fitted on and every
/// [`EARLY_STOPPING_EVERY`]th, on which early stopping picks each member's
/// epoch. Picked on the held-out lists instead, the ranker's figure there
/// would flatter it as fitted weights flatter a fusion, and the serving plan
/// compares the two there: on WordNet a ranker early-stopped on the plan's
/// lists won by 0.003 on them and lost to the content space on the real
/// queries.
pub(crate) fn early_stopping_split(lists: Vec<ListExample>) -> (Vec<ListExample>, Vec<ListExample>) {
    let (mut fit, mut stop) = (
        Vec::with_capacity(lists.len()),
        Vec::with_capacity(lists.len() / EARLY_STOPPING_EVERY + 1),
    );
    for (n, l) in lists.into_iter().enumerate() {
        if (n + 1) % EARLY_STOPPING_EVERY == 0 {
            stop.push(l);
        } else {
            fit.push(l);
        }
    }
    (fit, stop)
}

/// How many of `n` requests of a log window train the ranker: the earlier
/// four fifths; the rest are held out for early stopping and the plan.
fn training_share(n: usize) -> usize {
    n * 4 / 5
}

/// Retrains the ranker of the index in `dir` from `events` (the same log
/// shape the index was built from) and replaces its ranker in place: the
/// index is copied to a temporary sibling, given the new weights and
/// manifest, and renamed over the old one. Retrieval is rebuilt only in a
/// temporary index over the older part of the log, as in a full build.
/// `on_epoch` sees every epoch (for progress bars).
///
/// An index with a content space needs the `encoder` it was built with (its
/// item vectors are reused; training searches are encoded by it); an index
/// without one takes `None`.
pub fn retrain_ranker(
    dir: impl AsRef<Path>,
    catalog: &Catalog,
    events: &Events,
    encoder: Option<&Encoder>,
    params: &TrainParams,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<TrainSummary> {
    let dir = dir.as_ref();
    let _span = tracing::info_span!("retrain_ranker", index = %dir.display()).entered();
    let (manifest, files) = crate::index::manifest::Manifest::read_verified(dir)?;
    if manifest.stats.items != catalog.len() {
        return Err(Error::InvalidConfig(format!(
            "the index holds {} items, the catalog {}: retrain with the catalog the index was built from",
            manifest.stats.items,
            catalog.len()
        )));
    }
    let content = match (&manifest.encoder, encoder) {
        (None, None) => None,
        (Some(built), Some(given)) if built.same_model(given.info()) => {
            // Present and one row per item: the reader checks it as `Engine::open` does.
            let Some(graph) = reader::content_space(&manifest, &files, dir)? else {
                return Err(Error::internal(
                    "retrain",
                    "the manifest names an encoder but the reader found no content space",
                ));
            };
            Some(ContentVectors { encoder: given, graph })
        }
        (Some(built), given) => {
            return Err(Error::EncoderMismatch {
                expected: crate::encoder::describe(built),
                found: given.map(|g| crate::encoder::describe(g.info())),
            })
        }
        (None, Some(_)) => {
            return Err(Error::InvalidConfig(
                "the index has no content space; retrain without an encoder, or rebuild with one".into(),
            ))
        }
    };
    let builder = IndexBuilder::with_params(manifest.schema.clone(), manifest.build.clone());
    let Some((ranker, summary)) = builder.train_ranker(
        catalog,
        TrainingLog::Events(events),
        &manifest.schema,
        content.as_ref(),
        dir,
        params,
        on_epoch,
        &|_| {},
    )?
    else {
        return Err(Error::InvalidConfig(format!(
            "too few plays or searches with a retrievable answer in the last {:.0}% of the log to train a ranker (need {MIN_TRAINING_LISTS})",
            RANKER_HOLDOUT * 100.0
        )));
    };
    let tmp = temp_sibling(dir, "tmp")?;
    // The ranker learned `query_category` from models of this log's
    // searches: serve it one too, not the one the index was built with
    // (from another log, or other artefacts).
    let categories = QueryCategories::learn(catalog, &manifest.schema.tag_fields, events);
    let result = crate::index::build_log::copy(dir, &tmp)
        .and_then(|()| writer::write_with_ranker(&tmp, &files, manifest, &ranker, &categories))
        .and_then(|()| crate::live::Live::carry_over(dir, &tmp));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    tracing::info_span!("publish").in_scope(|| publish(&tmp, dir))?;
    Ok(summary)
}

/// A list's context kind and its candidates' ranks by retriever.
pub(crate) type ListMeta = (ContextKind, Vec<[Option<u32>; Retriever::ALL.len()]>);

/// Candidate lists with grades for `targets`, and the candidate recall
/// (share of relevant items that retrieval put among the candidates).
///
/// `listed(lists so far)` is called as lists are assembled (from any thread).
/// Each list comes with its context kind and, per candidate, its rank in
/// each retriever's list (what the serving plan fuses).
pub(crate) fn lists(engine: &Engine, targets: &[Target], listed: &(dyn Fn(usize) + Sync)) -> Result<(Vec<(ListExample, ListMeta)>, f64)> {
    let count = std::sync::atomic::AtomicUsize::new(0);
    let per: Vec<((ListExample, ListMeta), usize, usize)> = targets
        .par_iter()
        .map(|t| {
            let mut a = engine.retrieve(&t.request)?;
            let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(64) {
                listed(n);
            }
            let grades: Vec<u32> = (0..a.len())
                .map(|i| a.id(i).and_then(|id| t.relevant.get(id)).copied().unwrap_or(0))
                .collect();
            let found = grades.iter().filter(|&&g| g > 0).count();
            let ranks = a.list.iter().map(|c| c.hits.map(|h| h.map(|h| h.rank))).collect();
            Ok((
                (
                    ListExample {
                        features: std::mem::take(&mut a.matrix),
                        grades,
                    },
                    (ContextKind::of(&t.request.context), ranks),
                ),
                found,
                t.relevant.len(),
            ))
        })
        .collect::<Result<_>>()?;
    let (found, total) = per.iter().fold((0, 0), |(f, t), (_, a, b)| (f + a, t + b));
    let recall = if total > 0 { found as f64 / total as f64 } else { 0.0 };
    Ok((per.into_iter().map(|(l, _, _)| l).collect(), recall))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_takes_every_tenth_training_list_out_of_fitting() {
        let lists: Vec<ListExample> = (0..25)
            .map(|n| ListExample {
                features: vec![n as f32],
                grades: vec![1],
            })
            .collect();
        let (fit, stop) = early_stopping_split(lists);
        let ids = |l: &[ListExample]| l.iter().map(|e| e.features[0] as usize).collect::<Vec<_>>();
        assert_eq!(ids(&stop), [9, 19]);
        assert_eq!(fit.len(), 23);
        assert!(ids(&fit).iter().all(|n| !ids(&stop).contains(n)), "disjoint");
    }

    #[test]
    fn a_window_trains_on_its_earlier_four_fifths() {
        assert_eq!(training_share(600), 480);
        assert_eq!(training_share(4), 3);
        assert_eq!(training_share(0), 0);
    }
}
