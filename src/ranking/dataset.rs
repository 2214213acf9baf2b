//! Training and evaluation targets from logs: every logged play or search is
//! rebuilt as the request it would have been at that moment, with the item
//! the user chose next as its answer. (Sending them through retrieval to get
//! labelled candidate lists is offline orchestration: `offline::training`.)

use std::collections::HashMap;

use crate::events::{EventKind, Events, DEFAULT_SESSION_GAP_SECS};
use crate::request::{Context, Request};

/// A request rebuilt from the log and the items that answer it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The request as it would have been sent.
    pub request: Request,
    /// External id → relevance grade (≥ 1).
    pub relevant: HashMap<String, u32>,
}

/// How many items of history a rebuilt request carries.
pub const TARGET_HISTORY: usize = 10;

/// Targets for the events with `from <= ts < to`:
/// - a play by a user with earlier plays becomes a `History` request (the
///   user's last [`TARGET_HISTORY`] plays before it, across sessions) whose
///   relevant item is the one played;
/// - a search becomes a `Search` request (with a history, a
///   `PersonalizedSearch`; typed within a session gap of the user's last
///   play, a `Session` with that play as the item playing now and the
///   earlier ones as its history) whose relevant item is the one played
///   from the results; the
///   play that follows a search belongs to the search and is not a target
///   of its own;
/// - both carry the user's last [`TARGET_HISTORY`] skips before it as
///   negatives.
///
/// `ids` maps internal item ids to external ids. Histories look back into
/// all of `events`, also before `from`.
pub fn log_targets(events: &Events, ids: &[String], from: i64, to: i64) -> Vec<Target> {
    let mut history: Vec<Vec<u32>> = vec![Vec::new(); events.users().len()];
    let mut skipped: Vec<Vec<u32>> = vec![Vec::new(); events.users().len()];
    let mut last_play: Vec<i64> = vec![i64::MIN / 2; events.users().len()];
    let mut after_search: Vec<Option<(u32, i64)>> = vec![None; events.users().len()];
    let mut out = Vec::new();
    let ext = |i: u32| ids.get(i as usize).cloned();
    for e in events.events() {
        let u = e.user as usize;
        let (Some(hist), Some(pending), Some(skips)) = (history.get_mut(u), after_search.get_mut(u), skipped.get_mut(u)) else {
            continue;
        };
        // The user's recent skips, as a service would send them (the target
        // among them too: the engine then cannot return it, and the
        // evaluation counts that).
        let negatives = |skips: &[u32]| -> Vec<String> { skips.iter().rev().take(TARGET_HISTORY).rev().filter_map(|&i| ext(i)).collect() };
        let in_window = (from..to).contains(&e.ts);
        match e.kind {
            EventKind::Search => {
                if in_window {
                    if let (Some(q), Some(item)) = (&e.query, ext(e.item)) {
                        let mut recent: Vec<String> = hist.iter().rev().take(TARGET_HISTORY).rev().filter_map(|&i| ext(i)).collect();
                        let playing = last_play.get(u).is_some_and(|&t| e.ts - t <= DEFAULT_SESSION_GAP_SECS);
                        let context = if recent.is_empty() || q.trim().is_empty() {
                            Context::search(q.clone())
                        } else if playing {
                            // Typed while a track played: every signal at once.
                            let now = recent.pop();
                            Context::session(Some(q), now.as_deref(), recent)
                        } else {
                            Context::personalized_search(q.clone(), recent)
                        };
                        if !q.trim().is_empty() {
                            out.push(Target {
                                request: Request::new(context).negatives(negatives(skips)),
                                relevant: HashMap::from([(item, 1)]),
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
                                request: Request::new(Context::history(recent)).negatives(negatives(skips)),
                                relevant: HashMap::from([(item, 1)]),
                            });
                        }
                    }
                }
                hist.push(e.item);
                if let Some(t) = last_play.get_mut(u) {
                    *t = e.ts;
                }
            }
            EventKind::Skip => skips.push(e.item),
        }
    }
    out
}

/// Share of the log (its most recent events) whose plays and searches
/// become ranker training lists; retrieval for them is built on the rest,
/// so no list sees its own answer in the co-visitation counts.
pub(crate) const RANKER_HOLDOUT: f64 = 0.15;

/// Where log window `window` of ranker training begins (see
/// [`window_targets`]); `None` for an empty log.
pub(crate) fn window_start(events: &Events, window: usize) -> Option<i64> {
    let all = events.events();
    let share = RANKER_HOLDOUT * (window + 1) as f64;
    all.get(((all.len() as f64) * (1.0 - share)).max(0.0) as usize).map(|e| e.ts)
}

/// The events of `events` before `from` (its users kept): the log a
/// training window's retrieval is built on. `None` (window 0 of an empty
/// log) gives an empty log.
pub(crate) fn events_before(events: &Events, from: Option<i64>, catalog: &crate::catalog::Catalog) -> crate::error::Result<Events> {
    match from {
        Some(from) => Events::from_events(
            events.users().to_vec(),
            events.events().iter().filter(|e| e.ts < from).cloned().collect(),
            catalog,
        ),
        None => Events::from_events(Vec::new(), Vec::new(), catalog),
    }
}

/// Log window `window` of ranker training, as `(from, to, targets)`: its
/// logged requests (at most `max_lists`, [`subsample`]d) from the events
/// with `from <= ts < to`; retrieval for them is built on the events before
/// `from`. Window 0 is the most recent share [`RANKER_HOLDOUT`] of the log
/// (`to` is `None`: open), and is `None` only for an empty log; window
/// `w` ≥ 1 is the share that ends where window `w − 1` begins, `None` when
/// it, or what precedes it, is empty.
pub(crate) fn window_targets(events: &Events, ids: &[String], window: usize, max_lists: usize) -> Option<(i64, Option<i64>, Vec<Target>)> {
    let all = events.events();
    let from = window_start(events, window)?;
    let to = match window {
        0 => None,
        w => Some(window_start(events, w - 1)?),
    };
    let targets = subsample(log_targets(events, ids, from, to.unwrap_or(i64::MAX)), max_lists);
    let nothing_before = all.first().is_none_or(|e| e.ts >= from);
    match to {
        None => Some((from, None, targets)),
        Some(to) => (from < to && !targets.is_empty() && !nothing_before).then_some((from, Some(to), targets)),
    }
}

/// Keeps at most `n` targets, evenly spaced (deterministic).
pub fn subsample(targets: Vec<Target>, n: usize) -> Vec<Target> {
    if targets.len() <= n || n == 0 {
        return if n == 0 { Vec::new() } else { targets };
    }
    let step = targets.len() as f64 / n as f64;
    (0..n).filter_map(|i| targets.get((i as f64 * step) as usize).cloned()).collect()
}

/// Known-item searches generated from the catalog itself, for a ranker that
/// has few or no logged searches to learn from: for `n` items drawn without
/// replacement (seeded), the item's title as the query, whose one relevant
/// item is that item.
///
/// Titles only, by measurement: spans of an item's own description (the
/// cropping of Izacard et al.'s Contriever) are words the item literally
/// contains, so on them lexical matching wins by far (on the Debian man pages
/// the content space found 0.21 MRR@10 of span queries, against 0.59 of the
/// real one-line summaries), and a ranker trained on them learned to ignore
/// meaning: it served 0.62 on the real queries where it serves 0.69 trained
/// on titles, which both retrievers find (0.86 and 0.80).
pub(crate) fn catalog_targets(catalog: &crate::catalog::Catalog, n: usize, seed: u64) -> Vec<Target> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let mut below = |m: usize| (rng.next_u64() % m.max(1) as u64) as usize;
    // A partial Fisher–Yates shuffle: n distinct items.
    let mut order: Vec<usize> = (0..catalog.len()).collect();
    let n = n.min(order.len());
    for i in 0..n {
        let j = i + below(order.len() - i);
        order.swap(i, j);
    }
    order[..n]
        .iter()
        .filter_map(|&i| catalog.items().get(i))
        .filter(|item| !item.title.trim().is_empty())
        .map(|item| Target {
            request: Request::new(Context::search(item.title.clone())),
            relevant: HashMap::from([(item.id.clone(), 1)]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Item};

    #[test]
    fn a_search_typed_while_a_track_plays_is_a_session_with_the_skips_as_negatives() {
        let catalog = Catalog::new((0..4).map(|i| Item::new(format!("t{i}"), format!("T{i}"))).collect()).unwrap();
        let log = concat!(
            "{\"user\":\"u\",\"item\":\"t0\",\"ts\":100}\n",
            "{\"user\":\"u\",\"item\":\"t1\",\"ts\":200}\n",
            "{\"user\":\"u\",\"item\":\"t3\",\"ts\":250,\"type\":\"skip\"}\n",
            "{\"user\":\"u\",\"item\":\"t2\",\"ts\":300,\"type\":\"search\",\"query\":\"two\"}\n",
            "{\"user\":\"u\",\"item\":\"t2\",\"ts\":301}\n",
            "{\"user\":\"u\",\"item\":\"t3\",\"ts\":99999,\"type\":\"search\",\"query\":\"three\"}\n",
        );
        let events = Events::from_jsonl_reader(log.as_bytes(), std::path::Path::new("e.jsonl"), &catalog).unwrap();
        let ids: Vec<String> = catalog.items().iter().map(|i| i.id.clone()).collect();
        let targets = log_targets(&events, &ids, 0, i64::MAX);
        let contexts: Vec<&Context> = targets.iter().map(|t| &t.request.context).collect();
        assert_eq!(
            contexts,
            [
                &Context::history(["t0"]),
                &Context::session(Some("two"), Some("t1"), ["t0"]),
                // A day later nothing is playing any more.
                &Context::personalized_search("three", ["t0", "t1", "t2"]),
            ]
        );
        assert!(targets[0].request.negatives.is_empty());
        assert_eq!(targets[1].request.negatives, ["t3"]);
    }

    #[test]
    fn generated_searches_are_their_items_titles() {
        let items: Vec<Item> = (0..40)
            .map(|i| {
                let title = if i == 3 { "  ".to_string() } else { format!("title {i}") };
                let mut it = Item::new(format!("i{i}"), title);
                it.text.insert("description".into(), format!("w{i}a w{i}b w{i}c w{i}d"));
                it
            })
            .collect();
        let catalog = Catalog::new(items).unwrap();
        let targets = catalog_targets(&catalog, 30, 7);
        let mut ids: Vec<&String> = targets.iter().flat_map(|t| t.relevant.keys()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), targets.len(), "items are drawn without replacement");
        assert!(targets.len() >= 29, "{}", targets.len());
        for t in &targets {
            let (id, _) = t.relevant.iter().next().unwrap();
            let Context::Search { text } = &t.request.context else {
                panic!("not a search")
            };
            assert_eq!(text, &catalog.get(id).unwrap().title);
            assert!(!text.trim().is_empty(), "a blank title is no query");
        }
        // Deterministic for a seed, different for another.
        let again = catalog_targets(&catalog, 30, 7);
        assert!(again.iter().zip(&targets).all(|(a, b)| a.request == b.request));
        let other = catalog_targets(&catalog, 30, 8);
        assert!(other.iter().zip(&targets).any(|(a, b)| a.request != b.request));
        assert_eq!(catalog_targets(&catalog, 100, 7).len(), 39);
    }
}
