//! Training and evaluation targets from logs: every logged play or search is
//! rebuilt as the request it would have been at that moment, with the item
//! the user chose next as its answer. (Sending them through retrieval to get
//! labelled candidate lists is offline orchestration: `offline::training`.)

use std::collections::HashMap;

use crate::events::{EventKind, Events};
use crate::request::{Context, Request};

/// A request rebuilt from the log and the items that answer it.
#[derive(Clone, Debug)]
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

/// Searches a catalog can be asked without any log: this many words.
const GENERATED_QUERY_WORDS: std::ops::RangeInclusive<usize> = 3..=8;
/// A text gives a span query only when this long: enough is left to find
/// its item by once the span is cut out.
const MIN_CLOZE_WORDS: usize = 12;

/// A search generated from the catalog.
#[derive(Clone, Debug)]
pub(crate) struct Generated {
    pub target: Target,
    /// For a span query, the item's text without the span: (item index,
    /// `text` field, what is left). Retrieval for training and validation
    /// runs on the catalog with the span cut out (the inverse cloze task of
    /// Lee et al., 2019), so the query is not found verbatim in its item, as
    /// a real query is not: validation is not biased towards exact matches.
    pub cut: Option<(usize, String, String)>,
}

/// Known-item searches generated from the catalog itself, for a ranker that
/// has few or no logged searches to learn from: for `n` items drawn without
/// replacement (seeded), a query made of one of their own texts — a span of
/// 3 to 8 consecutive words of a searched free-text field of at least 12
/// words (two times in three when the item has one), cut out of it (see
/// [`Generated::cut`]), else its title — whose one relevant item is that
/// item. `text_fields` are the schema's searched `text.NAME` fields.
pub(crate) fn catalog_targets(catalog: &crate::catalog::Catalog, text_fields: &[String], n: usize, seed: u64) -> Vec<Generated> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let mut below = |m: usize| (rng.next_u64() % m.max(1) as u64) as usize;
    // A partial Fisher–Yates shuffle: n distinct items.
    let mut order: Vec<usize> = (0..catalog.len()).collect();
    let n = n.min(order.len());
    for i in 0..n {
        let j = i + below(order.len() - i);
        order.swap(i, j);
    }
    let mut out = Vec::with_capacity(n);
    for &i in &order[..n] {
        let Some(item) = catalog.items().get(i) else { continue };
        let texts: Vec<(&String, Vec<&str>)> = text_fields
            .iter()
            .filter_map(|f| item.text.get(f).map(|t| (f, t.split_whitespace().collect::<Vec<_>>())))
            .filter(|(_, w)| w.len() >= MIN_CLOZE_WORDS)
            .collect();
        let (query, cut) = if !texts.is_empty() && below(3) < 2 {
            let (field, words) = &texts[below(texts.len())];
            let span = GENERATED_QUERY_WORDS.start() + below(GENERATED_QUERY_WORDS.end() - GENERATED_QUERY_WORDS.start() + 1);
            let start = below(words.len() - span + 1);
            let rest: Vec<&str> = words[..start].iter().chain(&words[start + span..]).copied().collect();
            (words[start..start + span].join(" "), Some((i, field.to_string(), rest.join(" "))))
        } else {
            (item.title.clone(), None)
        };
        if query.trim().is_empty() {
            continue;
        }
        out.push(Generated {
            target: Target {
                request: Request::new(Context::search(query)),
                relevant: HashMap::from([(item.id.clone(), 1)]),
            },
            cut,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Item};

    #[test]
    fn generated_searches_come_from_their_items_own_text() {
        let items: Vec<Item> = (0..40)
            .map(|i| {
                let mut it = Item::new(format!("i{i}"), format!("title {i}"));
                if i % 2 == 0 {
                    it.text.insert(
                        "description".into(),
                        (0..16).map(|k| format!("w{i}x{k}")).collect::<Vec<_>>().join(" "),
                    );
                }
                it
            })
            .collect();
        let catalog = Catalog::new(items).unwrap();
        let generated = catalog_targets(&catalog, &["description".to_string()], 30, 7);
        assert_eq!(generated.len(), 30);
        let mut ids: Vec<&String> = generated.iter().flat_map(|g| g.target.relevant.keys()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 30, "items are drawn without replacement");
        let mut spans = 0;
        for g in &generated {
            let (id, _) = g.target.relevant.iter().next().unwrap();
            let item = catalog.get(id).unwrap();
            let Context::Search { text } = &g.target.request.context else {
                panic!("not a search")
            };
            let words = text.split_whitespace().count();
            match (item.text.get("description"), &g.cut) {
                (Some(d), Some((i, field, rest))) => {
                    assert!(d.contains(text.as_str()) && GENERATED_QUERY_WORDS.contains(&words), "{text}");
                    // The span is cut out, the rest kept in order.
                    assert_eq!((catalog.index_of(id), field.as_str()), (Some(*i as u32), "description"));
                    assert!(!rest.contains(text.as_str()));
                    assert_eq!(rest.split_whitespace().count() + words, d.split_whitespace().count());
                    spans += 1;
                }
                _ => assert_eq!(text, &item.title),
            }
        }
        assert!(spans > 5, "{spans} spans");
        // Deterministic for a seed, different for another.
        let requests = |g: &[Generated]| g.iter().map(|g| g.target.request.clone()).collect::<Vec<_>>();
        let again = catalog_targets(&catalog, &["description".to_string()], 30, 7);
        assert_eq!(requests(&again), requests(&generated));
        let other = catalog_targets(&catalog, &["description".to_string()], 30, 8);
        assert_ne!(requests(&other), requests(&generated));
        assert_eq!(catalog_targets(&catalog, &[], 100, 7).len(), 40);
    }
}
