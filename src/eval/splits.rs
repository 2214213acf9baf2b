//! The two evaluation protocols: a time-ordered split of a listening log
//! (next-item prediction), and RecBole's general-recommendation protocol for
//! MovieLens (per-user random 8:1:1 split, full ranking).

use std::collections::{BTreeMap, HashMap};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::eval::compare::{Prepared, RankerFold};
use crate::events::{Event, EventKind, Events};
use crate::movielens::MovieLens;
use crate::ranking::dataset::{self, Target};
use crate::request::{Context, Request, MAX_HISTORY};
use crate::rng::SplitMix64;

/// At most this many test requests are scored (evenly subsampled).
pub const MAX_TEST: usize = 5_000;
/// At most this many validation requests.
pub const MAX_VALID: usize = 2_000;
/// At most this many ranker training requests (per fold).
pub const MAX_RANKER: usize = 10_000;
/// Ranker training folds of the MovieLens protocol: each holds out a
/// different tenth of every user's items. The training items are eight
/// tenths, so with eight folds every one of them is a ranker target once.
/// (ml-100k test NDCG@10 of 5-model ensembles: four folds 0.2929; eight
/// 0.2977–0.2984 in three runs; sixteen, a second round in another order,
/// 0.3001 / 0.2982 / 0.2987, not worth twice the training time.)
pub const RANKER_FOLDS: usize = 8;
/// Ranker training folds of the temporal protocol: fold f learns from the
/// requests of the tenth of the log that ends where fold f − 1's begins
/// (70–80%, 60–70%, …), against retrieval fitted on everything before it.
pub const TEMPORAL_FOLDS: usize = 3;

fn slice(events: &Events, catalog: &Catalog, keep: impl Fn(&Event) -> bool) -> Result<Events> {
    Events::from_events(
        events.users().to_vec(),
        events.events().iter().filter(|e| keep(e)).cloned().collect(),
        catalog,
    )
}

/// Time-ordered split of a log: retrieval fits on the first 80% of events;
/// next-item requests of the following 10% validate, of the last 10% test.
/// The ranker learns from [`TEMPORAL_FOLDS`] windows (requests in 70–80%
/// against retrieval fitted on the first 70%, in 60–70% against the first
/// 60%, …). Only `History` requests are kept (what every
/// baseline can answer); searches are evaluated separately.
pub fn temporal(name: &str, catalog: &Catalog, events: &Events) -> Result<Prepared> {
    let all = events.events();
    if all.len() < 100 {
        return Err(Error::InvalidConfig("a temporal evaluation needs at least 100 events".into()));
    }
    let at = |f: f64| all[((all.len() as f64 * f) as usize).min(all.len() - 1)].ts;
    let (t80, t90) = (at(0.8), at(0.9));
    let ids: Vec<String> = catalog.items().iter().map(|i| i.id.clone()).collect();
    let history_only = |ts: Vec<Target>| -> Vec<Target> {
        ts.into_iter()
            .filter(|t| matches!(t.request.context, Context::History { .. }))
            .collect()
    };
    Ok(Prepared {
        name: name.to_string(),
        catalog: catalog.clone(),
        fit: slice(events, catalog, |e| e.ts < t80)?,
        ranker_folds: (0..TEMPORAL_FOLDS)
            .map(|f| {
                let (from, to) = (at(0.7 - 0.1 * f as f64), at(0.8 - 0.1 * f as f64));
                Ok(RankerFold {
                    fit: slice(events, catalog, |e| e.ts < from)?,
                    targets: dataset::subsample(history_only(dataset::log_targets(events, &ids, from, to)), MAX_RANKER),
                })
            })
            .collect::<Result<_>>()?,
        valid: dataset::subsample(history_only(dataset::log_targets(events, &ids, t80, t90)), MAX_VALID),
        test: dataset::subsample(history_only(dataset::log_targets(events, &ids, t90, i64::MAX)), MAX_TEST),
        counts: BTreeMap::from([("users".to_string(), events.users().len()), ("interactions".to_string(), all.len())]),
    })
}

/// RecBole's protocol on MovieLens: ratings ≥ 3; iterative 10-core
/// filtering of users and items; each user's interactions shuffled with
/// `seed` and split 8:1:1 (valid = test = ⌊0.1·n⌋, the rest train). The
/// context is the user's train items in time order (weighed evenly); valid
/// requests exclude nothing more, test requests exclude the valid items.
/// The ranker learns from [`RANKER_FOLDS`] folds: in fold f a further
/// ⌊0.1·n⌋ of each user's train items (the f-th such slice of the shuffled
/// train items) is held out from retrieval fitted on the rest.
pub fn movielens(ml: &MovieLens, seed: u64) -> Result<Prepared> {
    let kept: Vec<_> = ml.ratings.iter().filter(|r| r.rating >= 3.0).collect();
    // Iterative 10-core: drop users and items with fewer than 10 interactions until none remain.
    let mut alive = vec![true; kept.len()];
    loop {
        let mut users: HashMap<&str, usize> = HashMap::new();
        let mut items: HashMap<u32, usize> = HashMap::new();
        for (r, _) in kept.iter().zip(&alive).filter(|(_, a)| **a) {
            *users.entry(r.user.as_str()).or_default() += 1;
            *items.entry(r.item).or_default() += 1;
        }
        let mut changed = false;
        for (r, a) in kept.iter().zip(alive.iter_mut()) {
            if *a && (users.get(r.user.as_str()).copied().unwrap_or(0) < 10 || items.get(&r.item).copied().unwrap_or(0) < 10) {
                *a = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut by_user: BTreeMap<&str, Vec<(u32, i64)>> = BTreeMap::new();
    let mut items = std::collections::HashSet::new();
    for (r, _) in kept.iter().zip(&alive).filter(|(_, a)| **a) {
        by_user.entry(r.user.as_str()).or_default().push((r.item, r.ts));
        items.insert(r.item);
    }
    let counts = BTreeMap::from([
        ("users".to_string(), by_user.len()),
        ("items".to_string(), items.len()),
        ("interactions".to_string(), alive.iter().filter(|a| **a).count()),
    ]);
    if by_user.is_empty() {
        return Err(Error::InvalidConfig("no user has 10 ratings ≥ 3 after 10-core filtering".into()));
    }
    let catalog = &ml.catalog;
    let ext = |i: u32| catalog.items()[i as usize].id.clone();
    let users: Vec<String> = by_user.keys().map(|u| u.to_string()).collect();
    let mut rng = SplitMix64::new(seed);
    let mut fit = Vec::new();
    let mut folds: Vec<(Vec<Event>, Vec<Target>)> = vec![(Vec::new(), Vec::new()); RANKER_FOLDS];
    let (mut valid, mut test) = (Vec::new(), Vec::new());
    let play = |user: usize, item: u32, ts: i64| Event {
        user: user as u32,
        item,
        ts,
        kind: EventKind::Play,
        query: None,
        session: None,
    };
    for (u, (_, mut inter)) in by_user.into_iter().enumerate() {
        for i in (1..inter.len()).rev() {
            inter.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let n = inter.len();
        let tenth = n / 10;
        let (train, rest) = inter.split_at(n - 2 * tenth);
        let (val, tst) = rest.split_at(tenth);
        let in_time = |xs: &[(u32, i64)]| -> Vec<String> {
            let mut v = xs.to_vec();
            v.sort_by_key(|&(i, ts)| (ts, i));
            v.into_iter().map(|(i, _)| ext(i)).collect()
        };
        let relevant = |xs: &[(u32, i64)]| -> HashMap<String, u32> { xs.iter().map(|&(i, _)| (ext(i), 1)).collect() };
        // As a service would: the most recent MAX_HISTORY items as the
        // context, and the older ones excluded (the protocol never counts an
        // item the user already played as a hit).
        let request = |mut history: Vec<String>| {
            let older: Vec<String> = history.drain(..history.len().saturating_sub(MAX_HISTORY)).collect();
            Request::new(Context::History { items: history }).history_decay(1.0).exclude(older)
        };
        fit.extend(train.iter().map(|&(i, ts)| play(u, i, ts)));
        for (f, (fold_fit, fold_targets)) in folds.iter_mut().enumerate() {
            // The f-th tenth from the end, while at least one item stays as the context.
            let end = train.len().saturating_sub(f * tenth);
            let start = end.saturating_sub(tenth).max(1);
            let kept: Vec<(u32, i64)> = train[..start.min(end)].iter().chain(&train[end..]).copied().collect();
            let held = &train[start.min(end)..end];
            fold_fit.extend(kept.iter().map(|&(i, ts)| play(u, i, ts)));
            if !held.is_empty() {
                fold_targets.push(Target {
                    request: request(in_time(&kept)),
                    relevant: relevant(held),
                });
            }
        }
        if !val.is_empty() {
            valid.push(Target {
                request: request(in_time(train)),
                relevant: relevant(val),
            });
        }
        if !tst.is_empty() {
            let req = request(in_time(train)).exclude(val.iter().map(|&(i, _)| ext(i)));
            test.push(Target {
                request: req,
                relevant: relevant(tst),
            });
        }
    }
    Ok(Prepared {
        name: "movielens".into(),
        catalog: catalog.clone(),
        fit: Events::from_events(users.clone(), fit, catalog)?,
        ranker_folds: folds
            .into_iter()
            .map(|(events, targets)| {
                Ok(RankerFold {
                    fit: Events::from_events(users.clone(), events, catalog)?,
                    targets: dataset::subsample(targets, MAX_RANKER),
                })
            })
            .collect::<Result<_>>()?,
        valid,
        test,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Item;
    use crate::movielens::Rating;

    #[test]
    fn movielens_protocol_filters_and_splits_per_user() {
        // 30 users × 25 items; user u rates item i with rating 3 + (u + i) % 3;
        // item 24 gets only two ratings, so 10-core removes it.
        let catalog = Catalog::new((0..25).map(|i| Item::new(format!("m{i}"), format!("Movie {i}"))).collect()).unwrap();
        let mut ratings = Vec::new();
        for u in 0..30 {
            for i in 0..25u32 {
                if i == 24 && u > 1 {
                    continue;
                }
                ratings.push(Rating {
                    user: format!("u{u}"),
                    item: i,
                    rating: if (u + i as usize).is_multiple_of(7) { 2.0 } else { 4.0 },
                    ts: (u * 100 + i as usize) as i64,
                });
            }
        }
        let ml = MovieLens { catalog, ratings };
        let p = movielens(&ml, 7).unwrap();
        assert_eq!(p.test.len(), 30);
        // 30 users; 24 items survive; ratings of 2 and m24's two ratings are dropped.
        let interactions = 30 * 24 - (0..30).flat_map(|u| (0..24).map(move |i| (u + i) % 7 == 0)).filter(|&x| x).count();
        assert_eq!(p.counts["users"], 30);
        assert_eq!(p.counts["items"], 24);
        assert_eq!(p.counts["interactions"], interactions);
        for (v, t) in p.valid.iter().zip(&p.test) {
            // ~20 kept ratings per user: valid = test = floor(n / 10) = 2.
            assert_eq!(v.relevant.len(), t.relevant.len());
            assert!(v.relevant.keys().all(|k| !t.relevant.contains_key(k)), "valid and test overlap");
            assert!(
                t.request.exclude.iter().all(|e| v.relevant.contains_key(e)),
                "test excludes exactly the valid items"
            );
            let Context::History { items } = &t.request.context else {
                panic!("history context expected")
            };
            assert!(
                items.iter().all(|i| !t.relevant.contains_key(i) && !v.relevant.contains_key(i)),
                "history holds train items only"
            );
            assert!(!items.contains(&"m24".to_string()), "10-core filtering removed m24");
        }
        let again = movielens(&ml, 7).unwrap();
        assert_eq!(
            p.test.iter().map(|t| &t.relevant).collect::<Vec<_>>(),
            again.test.iter().map(|t| &t.relevant).collect::<Vec<_>>()
        );
        assert_eq!(p.ranker_folds.len(), RANKER_FOLDS);
        for (f, fold) in p.ranker_folds.iter().enumerate() {
            assert!(p.fit.len() > fold.fit.len());
            assert_eq!(fold.targets.len(), 30);
            for other in &p.ranker_folds[f + 1..] {
                // Each fold holds out its own slice of the same user's items.
                for (a, b) in fold.targets.iter().zip(&other.targets) {
                    assert!(
                        a.relevant.keys().all(|k| !b.relevant.contains_key(k)),
                        "folds {f} and another overlap"
                    );
                }
            }
        }
    }

    #[test]
    fn a_heavy_users_requests_send_the_most_recent_history_and_exclude_the_rest() {
        // 12 users rate all 1,600 items, so each training history is far
        // above the engine's MAX_HISTORY.
        let n = 1_600u32;
        let catalog = Catalog::new((0..n).map(|i| Item::new(format!("m{i}"), format!("Movie {i}"))).collect()).unwrap();
        let ratings = (0..12)
            .flat_map(|u| {
                (0..n).map(move |i| Rating {
                    user: format!("u{u}"),
                    item: i,
                    rating: 4.0,
                    ts: i64::from(i) * 10 + u,
                })
            })
            .collect();
        let p = movielens(&MovieLens { catalog, ratings }, 1).unwrap();
        assert_eq!(p.test.len(), 12);
        let fold_targets = p.ranker_folds.iter().flat_map(|f| &f.targets);
        for t in p.test.iter().chain(&p.valid).chain(fold_targets) {
            let Context::History { items } = &t.request.context else {
                panic!("history context expected")
            };
            assert_eq!(items.len(), MAX_HISTORY, "the most recent MAX_HISTORY items are the context");
            assert!(t.request.exclude.iter().all(|e| !items.contains(e) && !t.relevant.contains_key(e)));
            assert!(!t.request.exclude.is_empty(), "the older history is excluded, not forgotten");
        }
        // A ranker target excludes nothing but its older history: all of it older than the context.
        for t in p.ranker_folds.iter().flat_map(|f| &f.targets) {
            let Context::History { items } = &t.request.context else {
                panic!("history context expected")
            };
            let ts = |id: &str| id.trim_start_matches('m').parse::<u32>().unwrap();
            let oldest_kept = items.iter().map(|i| ts(i)).min().unwrap();
            assert!(t.request.exclude.iter().all(|e| ts(e) < oldest_kept));
        }
    }
}
