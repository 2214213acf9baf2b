//! Training and evaluation lists from logs: every logged play or search is
//! rebuilt as the request it would have been at that moment, sent through
//! the real retrieval stage, and its candidates labelled by what the user
//! did next.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::engine::Engine;
use crate::error::Result;
use crate::events::{EventKind, Events};
use crate::ranking::train::ListExample;
use crate::request::{Context, Request};

/// A request rebuilt from the log and the items that answer it.
#[derive(Clone, Debug)]
pub struct Target {
    /// The request as it would have been sent.
    pub request: Request,
    /// External id → relevance grade (≥ 1).
    pub relevant: HashMap<String, u32>,
    /// When it happened (unix seconds).
    pub ts: i64,
}

/// How many items of history a rebuilt request carries.
pub const TARGET_HISTORY: usize = 10;

/// Targets for the events with `from <= ts < to`:
/// - a play by a user with earlier plays becomes a `History` request (the
///   user's last [`TARGET_HISTORY`] plays before it, across sessions) whose
///   relevant item is the one played;
/// - a search becomes a `Search` (or, with a history, `PersonalizedSearch`)
///   request whose relevant item is the one played from the results; the
///   play that follows a search belongs to the search and is not a target
///   of its own.
///
/// `ids` maps internal item ids to external ids. Histories look back into
/// all of `events`, also before `from`.
pub fn log_targets(events: &Events, ids: &[String], from: i64, to: i64) -> Vec<Target> {
    let mut history: Vec<Vec<u32>> = vec![Vec::new(); events.users().len()];
    let mut after_search: Vec<Option<(u32, i64)>> = vec![None; events.users().len()];
    let mut out = Vec::new();
    let ext = |i: u32| ids.get(i as usize).cloned();
    for e in events.events() {
        let u = e.user as usize;
        let (Some(hist), Some(pending)) = (history.get_mut(u), after_search.get_mut(u)) else {
            continue;
        };
        let in_window = (from..to).contains(&e.ts);
        match e.kind {
            EventKind::Search => {
                if in_window {
                    if let (Some(q), Some(item)) = (&e.query, ext(e.item)) {
                        let recent: Vec<String> = hist.iter().rev().take(TARGET_HISTORY).rev().filter_map(|&i| ext(i)).collect();
                        let context = if recent.is_empty() || q.trim().is_empty() {
                            Context::search(q.clone())
                        } else {
                            Context::personalized_search(q.clone(), recent)
                        };
                        if !q.trim().is_empty() {
                            out.push(Target {
                                request: Request::new(context),
                                relevant: HashMap::from([(item, 1)]),
                                ts: e.ts,
                            });
                        }
                    }
                }
                *pending = Some((e.item, e.ts));
            }
            EventKind::Play => {
                let follows_search = pending.take().is_some_and(|(item, ts)| item == e.item && e.ts - ts <= 60);
                if in_window && !follows_search && !hist.is_empty() {
                    if let Some(item) = ext(e.item) {
                        let recent: Vec<String> = hist.iter().rev().take(TARGET_HISTORY).rev().filter_map(|&i| ext(i)).collect();
                        // Replays of the recent history are not discovery: the engine excludes them by design.
                        if !recent.contains(&item) {
                            out.push(Target {
                                request: Request::new(Context::history(recent)),
                                relevant: HashMap::from([(item, 1)]),
                                ts: e.ts,
                            });
                        }
                    }
                }
                hist.push(e.item);
            }
            EventKind::Skip => {}
        }
    }
    out
}

/// Keeps at most `n` targets, evenly spaced (deterministic).
pub fn subsample(targets: Vec<Target>, n: usize) -> Vec<Target> {
    if targets.len() <= n || n == 0 {
        return if n == 0 { Vec::new() } else { targets };
    }
    let step = targets.len() as f64 / n as f64;
    (0..n).filter_map(|i| targets.get((i as f64 * step) as usize).cloned()).collect()
}

/// Candidate lists with grades for `targets`, and the candidate recall
/// (share of relevant items that retrieval put among the candidates).
///
/// `listed(lists so far)` is called as lists are assembled (from any thread).
pub(crate) fn lists(engine: &Engine, targets: &[Target], listed: &(dyn Fn(usize) + Sync)) -> Result<(Vec<ListExample>, f64)> {
    let count = std::sync::atomic::AtomicUsize::new(0);
    let per: Vec<(ListExample, usize, usize)> = targets
        .par_iter()
        .map(|t| {
            let a = engine.assemble(&t.request)?;
            let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n % 64 == 0 {
                listed(n);
            }
            let grades: Vec<u32> = a
                .candidates
                .iter()
                .map(|c| engine.external_id(c.item).and_then(|id| t.relevant.get(id)).copied().unwrap_or(0))
                .collect();
            let found = grades.iter().filter(|&&g| g > 0).count();
            Ok((
                ListExample {
                    features: a.matrix,
                    grades,
                },
                found,
                t.relevant.len(),
            ))
        })
        .collect::<Result<_>>()?;
    let (found, total) = per.iter().fold((0, 0), |(f, t), (_, a, b)| (f + a, t + b));
    let recall = if total > 0 { found as f64 / total as f64 } else { 0.0 };
    Ok((per.into_iter().map(|(l, _, _)| l).collect(), recall))
}
