//! Behaviour of `Engine::recommend` on an index built from data/music.

use std::collections::{HashMap, HashSet};

use twostage::{Context, Error, Request, Retriever, Stage};

mod common;

fn genres(f: &common::Fixture, id: &str) -> HashSet<String> {
    f.catalog
        .get(id)
        .and_then(|i| i.tags.get("genre"))
        .map(|g| g.iter().cloned().collect())
        .unwrap_or_default()
}

fn artist(f: &common::Fixture, id: &str) -> String {
    f.catalog
        .get(id)
        .and_then(|i| i.attributes.get("artist"))
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// The 50 most played tracks: typical "currently listening" contexts.
fn popular_tracks(f: &common::Fixture, n: usize) -> Vec<String> {
    let mut plays: HashMap<u32, usize> = HashMap::new();
    for e in f.events.events() {
        *plays.entry(e.item).or_default() += 1;
    }
    let mut v: Vec<(u32, usize)> = plays.into_iter().collect();
    v.sort_by_key(|&(i, c)| (std::cmp::Reverse(c), i));
    v.into_iter()
        .take(n)
        .map(|(i, _)| f.catalog.items()[i as usize].id.clone())
        .collect()
}

#[test]
fn listening_returns_mostly_the_context_genre_and_never_the_context() {
    let f = common::music();
    let mut same = 0usize;
    let mut total = 0usize;
    for id in popular_tracks(f, 50) {
        let recs = f.engine.recommend(&Request::new(Context::listening(id.clone())).k(10)).unwrap();
        assert_eq!(recs.items.len(), 10);
        assert!(recs.items.iter().all(|r| r.id != id), "context item recommended");
        let want = genres(f, &id);
        for r in &recs.items {
            total += 1;
            if !genres(f, &r.id).is_disjoint(&want) {
                same += 1;
            }
        }
    }
    let share = same as f64 / total as f64;
    assert!(share > 0.6, "only {share:.2} of recommendations share the context's genre");
}

#[test]
fn excluded_ids_and_history_items_never_appear() {
    let f = common::music();
    let ctx = popular_tracks(f, 3);
    let first = f.engine.recommend(&Request::new(Context::listening(ctx[0].clone())).k(5)).unwrap();
    let excluded: Vec<String> = first.items.iter().take(3).map(|r| r.id.clone()).collect();
    let again = f
        .engine
        .recommend(&Request::new(Context::listening(ctx[0].clone())).k(20).exclude(excluded.clone()))
        .unwrap();
    assert_eq!(again.items.len(), 20);
    assert!(again.items.iter().all(|r| !excluded.contains(&r.id)));
    let hist = f.engine.recommend(&Request::new(Context::history(ctx.clone())).k(50)).unwrap();
    assert!(hist.items.iter().all(|r| !ctx.contains(&r.id)));
}

#[test]
fn searching_an_artist_name_puts_that_artists_tracks_first() {
    let f = common::music();
    let mut artists: Vec<String> = f.catalog.items().iter().map(|i| artist(f, &i.id)).collect();
    artists.sort();
    artists.dedup();
    let mut ok = 0;
    let sample: Vec<&String> = artists.iter().step_by(artists.len() / 30).take(30).collect();
    for name in &sample {
        let recs = f.engine.recommend(&Request::new(Context::search(name.as_str())).k(3)).unwrap();
        if recs.items.first().is_some_and(|r| &artist(f, &r.id) == *name) {
            ok += 1;
        }
    }
    assert!(
        ok >= sample.len() * 9 / 10,
        "{ok} of {} artist searches put the artist first",
        sample.len()
    );
}

#[test]
fn results_are_sorted_by_score_respect_k_and_carry_provenance_and_timings() {
    let f = common::music();
    let ctx = popular_tracks(f, 1).remove(0);
    for k in [1, 7, 25] {
        for req in [
            Request::new(Context::listening(ctx.clone())).k(k),
            Request::new(Context::history(vec![ctx.clone()])).k(k),
            Request::new(Context::search("calm piano")).k(k),
            Request::new(Context::personalized_search("night", vec![ctx.clone()])).k(k),
        ] {
            let recs = f.engine.recommend(&req).unwrap();
            assert!(recs.items.len() <= k);
            assert!(recs.items.windows(2).all(|w| w[0].score >= w[1].score), "not sorted: {req:?}");
            assert!(recs.items.iter().all(|r| !r.sources.is_empty()));
            let ids: HashSet<&str> = recs.items.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(ids.len(), recs.items.len(), "duplicates");
            assert!(recs.timings.total >= recs.timings.rank);
        }
    }
    let recs = f
        .engine
        .recommend(&Request::new(Context::listening(ctx)).k(10).explain(true))
        .unwrap();
    let feats = recs.items[0].features.as_ref().expect("explain attaches features");
    assert!(feats.iter().any(|(n, _)| n == "ann_sim"));
    assert!(recs
        .items
        .iter()
        .any(|r| r.sources.iter().any(|s| s.retriever == Retriever::Covisit)));
}

#[test]
fn tag_filters_are_honoured() {
    let f = common::music();
    let ctx = popular_tracks(f, 1).remove(0);
    let recs = f
        .engine
        .recommend(&Request::new(Context::listening(ctx.clone())).k(10).require_tag("genre", "jazz"))
        .unwrap();
    assert!(!recs.items.is_empty());
    assert!(recs.items.iter().all(|r| genres(f, &r.id).contains("jazz")));
    let recs = f
        .engine
        .recommend(&Request::new(Context::listening(ctx.clone())).k(30).exclude_tag("genre", "jazz"))
        .unwrap();
    assert!(recs.items.iter().all(|r| !genres(f, &r.id).contains("jazz")));
    let none = f
        .engine
        .recommend(&Request::new(Context::listening(ctx.clone())).require_tag("genre", "no such genre"))
        .unwrap();
    assert!(none.items.is_empty());
    let err = f
        .engine
        .recommend(&Request::new(Context::listening(ctx)).require_tag("colour", "red"))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
}

#[test]
fn bad_requests_give_typed_errors() {
    let f = common::music();
    let e = f.engine.recommend(&Request::new(Context::listening("trk-nope"))).unwrap_err();
    assert!(matches!(&e, Error::UnknownItem(id) if id == "trk-nope"), "{e}");
    assert!(e.is_caller_error());
    assert!(matches!(
        f.engine.recommend(&Request::new(Context::search("   "))),
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        f.engine.recommend(&Request::new(Context::history(Vec::<String>::new()))),
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        f.engine.recommend(&Request::new(Context::search("jazz")).k(0)),
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        f.engine.recommend(&Request::new(Context::search("jazz")).k(1_000_000)),
        Err(Error::InvalidRequest(_))
    ));
    // Query syntax is text, not a query language.
    for q in ["\"unbalanced", "title:(x OR", "AND OR NOT", "*~^", "🎵 東京", "a:b:c [1 TO 2]"] {
        f.engine.recommend(&Request::new(Context::search(q))).unwrap();
    }
    // k larger than the candidate pool just returns what there is.
    let ctx = popular_tracks(f, 1).remove(0);
    let all = f.engine.recommend(&Request::new(Context::listening(ctx)).k(10_000)).unwrap();
    assert!(!all.items.is_empty() && all.items.len() <= 10_000);
}

#[test]
fn batch_matches_single_requests_and_stages_rerun_on_a_trace() {
    let f = common::music();
    let ctx = popular_tracks(f, 3);
    let reqs = vec![
        Request::new(Context::listening(ctx[0].clone())).k(5),
        Request::new(Context::history(ctx.clone())).k(5),
        Request::new(Context::search("calm piano")).k(5),
        Request::new(Context::history(Vec::<String>::new())).k(5),
    ];
    let batch = f.engine.recommend_batch(&reqs);
    assert_eq!(batch.len(), reqs.len());
    for (req, got) in reqs.iter().zip(&batch) {
        match (f.engine.recommend(req), got) {
            (Ok(a), Ok(b)) => {
                let ids = |r: &twostage::Recommendations| r.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
                assert_eq!(ids(&a), ids(b), "{req:?}");
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!("single {a:?} vs batch {b:?}"),
        }
    }

    let req = Request::new(Context::personalized_search("night", ctx.clone())).k(10);
    let (recs, trace) = f.engine.trace(&req).unwrap();
    assert_eq!(trace.candidates(), recs.candidates);
    for stage in [Stage::Ann, Stage::Lexical, Stage::Covisit, Stage::Fusion, Stage::Features] {
        assert!(f.engine.run_stage(&trace, stage).unwrap() > 0, "{stage:?}");
    }
    for rows in [1, 50, 1000] {
        assert_eq!(f.engine.run_stage(&trace, Stage::Rank { rows }).unwrap(), rows);
    }
}

#[test]
fn results_carry_the_stored_fields_asked_for() {
    let f = common::music();
    let id = f.catalog.items()[7].id.clone();
    let plain = f.engine.recommend(&Request::new(Context::listening(id.clone())).k(5)).unwrap();
    assert!(plain.items.iter().all(|r| r.fields.is_none()), "no fields unless asked");

    let req = Request::new(Context::listening(id.clone()))
        .k(5)
        .fields(["title", "artist", "tags.genre", "year"]);
    let recs = f.engine.recommend(&req).unwrap();
    assert_eq!(recs.items.len(), 5);
    for r in &recs.items {
        let item = f.catalog.get(&r.id).unwrap();
        let fields = r.fields.as_ref().unwrap();
        assert_eq!(fields["title"], twostage::FieldValue::Text(item.title.clone()));
        assert_eq!(fields.get("artist"), item.field("artist").as_ref());
        assert_eq!(fields["tags.genre"], twostage::FieldValue::List(item.tags["genre"].clone()));
        assert_eq!(fields.get("year"), item.field("year").as_ref());
    }
    let json: serde_json::Value = serde_json::from_str(&recs.to_json()).unwrap();
    assert_eq!(
        json["items"][0]["fields"]["title"],
        serde_json::json!(f.catalog.get(&recs.items[0].id).unwrap().title)
    );

    let e = f
        .engine
        .recommend(&Request::new(Context::listening(id)).fields(["title", "no_such_field"]))
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidRequest(_)) && e.to_string().contains("no_such_field") && e.to_string().contains("artist"),
        "{e}"
    );
}

#[test]
fn limits_that_are_not_errors_come_back_as_warnings() {
    let f = common::music();
    let id = f.catalog.items()[3].id.clone();
    let ok = f.engine.recommend(&Request::new(Context::listening(id.clone()))).unwrap();
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);

    let capped = f
        .engine
        .recommend(&Request::new(Context::listening(id.clone())).k(50).rank_depth(20))
        .unwrap();
    assert!(capped.items.len() <= 20);
    assert!(capped.warnings.iter().any(|w| w.contains("rank_depth")), "{:?}", capped.warnings);

    let nothing = f
        .engine
        .recommend(&Request::new(Context::listening(id.clone())).require_tag("genre", "no-such-genre"))
        .unwrap();
    assert!(nothing.items.is_empty());
    assert!(
        nothing.warnings.iter().any(|w| w.contains("no-such-genre")),
        "{:?}",
        nothing.warnings
    );
    let json: serde_json::Value = serde_json::from_str(&nothing.to_json()).unwrap();
    assert!(json["warnings"][0].as_str().unwrap().contains("no-such-genre"));
}

#[test]
fn k_zero_is_a_caller_error_wherever_a_request_is_served() {
    fn refused<T>(r: &twostage::Result<T>, how: &str) {
        match r {
            Ok(_) => panic!("{how}: k = 0 was served"),
            Err(e) => assert!(
                matches!(e, Error::InvalidRequest(m) if m.contains("k = 0")) && e.is_caller_error(),
                "{how}: {e}"
            ),
        }
    }
    let f = common::music();
    let req = Request::new(Context::listening(f.catalog.items()[7].id.clone()));
    let zero = req.clone().k(0);
    refused(&f.engine.recommend(&zero), "recommend");
    refused(&f.engine.retrieve(&zero), "retrieve");
    refused(&f.engine.trace(&zero), "trace");
    let candidates = f.engine.retrieve(&req).unwrap();
    refused(&f.engine.rank(&zero, candidates, None), "rank");
    let batch = f.engine.recommend_batch(&[req, zero]);
    assert!(batch[0].is_ok());
    refused(&batch[1], "recommend_batch");
}

#[test]
fn the_linear_retriever_alone_returns_what_the_history_predicts() {
    let f = common::music();
    // 6,000 items is above the exact fit's limit: the neighbourhood fit.
    let info = f.engine.info();
    assert_eq!(info.stats.linear_fit, "restricted");
    assert!(info.stats.linear_weights > 0);
    let history = popular_tracks(f, 5);
    let mut req = Request::new(Context::history(history.clone())).k(20);
    for r in Retriever::ALL {
        if r != Retriever::Linear {
            req.candidates.set(r, 0);
        }
    }
    let recs = f.engine.recommend(&req).unwrap();
    assert_eq!(recs.items.len(), 20);
    for item in &recs.items {
        assert!(!history.contains(&item.id), "{} is in the history", item.id);
        assert!(item.sources.iter().all(|s| s.retriever == Retriever::Linear), "{:?}", item.sources);
    }
    // Its score is a feature of every candidate, whichever retriever found
    // it: with the linear retriever asked for 5, others' candidates have it too.
    let mut req = Request::new(Context::history(history));
    req.candidates.set(Retriever::Linear, 5);
    let all = f.engine.retrieve(&req).unwrap();
    let found_by_linear = |i: usize| all.sources(i).iter().any(|s| s.retriever == Retriever::Linear);
    assert_eq!((0..all.len()).filter(|&i| found_by_linear(i)).count(), 5);
    let scored_elsewhere = (0..all.len())
        .filter(|&i| !found_by_linear(i) && all.feature(i, "linear_context").is_some_and(|v| v != 0.0))
        .count();
    assert!(scored_elsewhere > 0, "no candidate of another retriever has a linear score");
}

#[test]
fn listening_on_a_rarely_played_item_finds_items_by_its_text_and_a_popular_one_does_not_need_to() {
    let f = common::music();
    let mut plays = vec![0usize; f.catalog.len()];
    for e in f.events.events().iter().filter(|e| e.kind == twostage::EventKind::Play) {
        plays[e.item as usize] += 1;
    }
    let lexical_hits = |id: &str| {
        let recs = f.engine.recommend(&Request::new(Context::listening(id)).k(50)).unwrap();
        recs.items
            .iter()
            .filter(|r| r.sources.iter().any(|s| s.retriever == Retriever::Lexical))
            .count()
    };
    let rare = (0..f.catalog.len()).find(|&i| plays[i] == 1).expect("an item played once");
    assert!(lexical_hits(&f.catalog.items()[rare].id) > 0, "more like this from its text");
    let popular = popular_tracks(f, 1);
    assert_eq!(lexical_hits(&popular[0]), 0, "a well-played item is served by its plays");
}

fn year(f: &common::Fixture, id: &str) -> Option<f64> {
    match f.catalog.get(id)?.attributes.get("year")? {
        twostage::Attribute::Number(y) => Some(*y),
        twostage::Attribute::Text(_) => None,
    }
}

#[test]
fn range_filters_hold_in_every_retriever_and_at_any_selectivity() {
    let f = common::music();
    let ctx = popular_tracks(f, 1).remove(0);
    let decade = twostage::RangeFilter::new("year").gte(2000.0).lt(2010.0);
    for req in [
        Request::new(Context::listening(ctx.clone())).k(30),
        Request::new(Context::search("ambient")).k(30),
        Request::new(Context::personalized_search("jazz", [ctx.clone()])).k(30),
    ] {
        let recs = f.engine.recommend(&req.range(decade.clone())).unwrap();
        assert!(!recs.items.is_empty());
        for r in &recs.items {
            assert!(
                year(f, &r.id).is_some_and(|y| (2000.0..2010.0).contains(&y)),
                "{} {:?}",
                r.id,
                year(f, &r.id)
            );
        }
    }

    // One year lets through few items: the vector retriever scans exactly
    // those instead of walking its graph, so it finds every one of them.
    let y = year(f, &ctx).unwrap();
    let one_year = twostage::RangeFilter::new("year").gte(y).lte(y);
    let in_range: Vec<&str> = f
        .catalog
        .items()
        .iter()
        .filter(|i| i.id != ctx && year(f, &i.id) == Some(y))
        .map(|i| i.id.as_str())
        .collect();
    assert!(!in_range.is_empty() && in_range.len() < 200, "{} items in {y}", in_range.len());
    let mut ann_only = Request::new(Context::listening(ctx.clone()))
        .k(in_range.len())
        .rank_depth(in_range.len())
        .range(one_year.clone());
    for r in twostage::Retriever::ALL {
        ann_only = ann_only.candidates(r, 0);
    }
    let recs = f.engine.recommend(&ann_only.candidates(twostage::Retriever::Ann, 1_000)).unwrap();
    let mut got: Vec<&str> = recs.items.iter().map(|r| r.id.as_str()).collect();
    got.sort_unstable();
    let mut want = in_range.clone();
    want.sort_unstable();
    assert_eq!(got, want, "every item of {y} has a vector and is found");

    // Bounds no item meets: nothing, with a warning; a bad range is the caller's error.
    let none = f
        .engine
        .recommend(&Request::new(Context::listening(ctx.clone())).range(twostage::RangeFilter::new("year").gt(1e9)))
        .unwrap();
    assert!(
        none.items.is_empty() && none.warnings.iter().any(|w| w.contains("range")),
        "{none:?}"
    );
    for (bad, says) in [
        (twostage::RangeFilter::new("artist").gte(1.0), "`artist` is not a number attribute"),
        (twostage::RangeFilter::new("no_such").lt(1.0), "`no_such` is not a number attribute"),
        (twostage::RangeFilter::new("year"), "no bound"),
        (twostage::RangeFilter::new("year").gte(1.0).gt(1.0), "not both"),
        (twostage::RangeFilter::new("year").lt(f64::INFINITY), "not finite"),
    ] {
        let err = f
            .engine
            .recommend(&Request::new(Context::listening(ctx.clone())).range(bad))
            .unwrap_err();
        assert!(matches!(&err, Error::InvalidRequest(m) if m.contains(says)), "{err}");
    }
}

/// How many artists a list holds.
fn distinct_artists(f: &common::Fixture, ids: &[String]) -> usize {
    ids.iter().map(|id| artist(f, id)).collect::<HashSet<_>>().len()
}

#[test]
fn group_caps_and_mmr_diversify_and_fill_k_from_further_down() {
    let f = common::music();
    let ctx = popular_tracks(f, 1).remove(0);
    let plain = f.engine.recommend(&Request::new(Context::listening(ctx.clone())).k(10)).unwrap();
    let ids = |r: &twostage::Recommendations| r.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let plain_ids = ids(&plain);
    assert!(
        distinct_artists(f, &plain_ids) < 10,
        "the fixture's plain list repeats an artist: {plain_ids:?}"
    );

    // One per artist: ten distinct artists, still ten items, and each item
    // kept is in the order the ranking gave.
    let capped = f
        .engine
        .recommend(&Request::new(Context::listening(ctx.clone())).k(10).group_cap("artist", 1))
        .unwrap();
    let capped_ids = ids(&capped);
    assert_eq!(capped_ids.len(), 10);
    assert_eq!(distinct_artists(f, &capped_ids), 10, "{capped_ids:?}");
    assert!(capped.items.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(capped_ids[0], plain_ids[0], "the best item always fits");
    // A tag field works too (an item counts against each of its genres).
    let by_genre = f
        .engine
        .recommend(&Request::new(Context::listening(ctx.clone())).k(5).group_cap("genre", 2))
        .unwrap();
    let mut genre_counts: HashMap<String, usize> = HashMap::new();
    for r in &by_genre.items {
        for g in genres(f, &r.id) {
            *genre_counts.entry(g).or_default() += 1;
        }
    }
    assert!(genre_counts.values().all(|&n| n <= 2), "{genre_counts:?}");

    // MMR: λ = 1 is the plain ranking; a low λ brings in more artists, and
    // explain shows its two terms.
    let same = f
        .engine
        .recommend(&Request::new(Context::listening(ctx.clone())).k(10).mmr(1.0))
        .unwrap();
    assert_eq!(ids(&same), plain_ids);
    let varied = f
        .engine
        .recommend(&Request::new(Context::listening(ctx.clone())).k(10).mmr(0.3).explain(true))
        .unwrap();
    assert_eq!(varied.items.len(), 10);
    assert!(
        distinct_artists(f, &ids(&varied)) > distinct_artists(f, &plain_ids),
        "{:?}",
        ids(&varied)
    );
    let first = varied.items[0].features.as_ref().unwrap();
    assert!(
        first.iter().any(|(n, v)| n == "mmr_relevance" && *v == 1.0),
        "the top item is the most relevant: {first:?}"
    );
    let later = varied.items[1].features.as_ref().unwrap();
    assert!(later.iter().any(|(n, v)| n == "mmr_max_similarity" && *v > 0.0), "{later:?}");

    for (req, says) in [
        (Request::new(Context::listening(ctx.clone())).group_cap("colour", 1), "`colour`"),
        (Request::new(Context::listening(ctx.clone())).group_cap("artist", 0), "at least 1"),
        (Request::new(Context::listening(ctx.clone())).mmr(1.5), "lambda"),
        (Request::new(Context::listening(ctx.clone())).mmr(f32::NAN), "lambda"),
    ] {
        let err = f.engine.recommend(&req).unwrap_err();
        assert!(matches!(&err, Error::InvalidRequest(m) if m.contains(says)), "{err}");
    }
    let json = r#"{"context":{"listening":{"item":"trk-00001"}},"group_cap":{"key":"artist","max":1},"mmr":{"lambda":0.7}}"#;
    let parsed: Request = serde_json::from_str(json).unwrap();
    assert_eq!(
        parsed,
        Request::new(Context::listening("trk-00001")).group_cap("artist", 1).mmr(0.7)
    );
}

#[test]
fn boosts_recency_and_pins_apply_after_the_ranker_and_show_in_explain() {
    let f = common::music();
    let ctx = popular_tracks(f, 1).remove(0);
    let base = || Request::new(Context::listening(ctx.clone())).k(10);
    let plain = f.engine.recommend(&base()).unwrap();
    let ids = |r: &twostage::Recommendations| r.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();

    // Boosting a genre that is not at the top brings its items up; burying
    // it keeps them out of the top 10; the terms are in explain.
    let genre = ids(&plain)
        .iter()
        .flat_map(|id| genres(f, id))
        .min()
        .expect("the plain list has genres");
    let count = |r: &twostage::Recommendations| r.items.iter().filter(|i| genres(f, &i.id).contains(&genre)).count();
    let boosted = f
        .engine
        .recommend(&base().boost("genre", genre.clone(), 2.0).explain(true))
        .unwrap();
    assert!(count(&boosted) >= count(&plain), "{genre}");
    assert_eq!(count(&boosted), boosted.items.len(), "a boost of 2 outweighs the whole score range");
    let top = boosted.items[0].features.as_ref().unwrap();
    assert!(top.iter().any(|(n, v)| n == "rule_boost" && *v == 2.0), "{top:?}");
    assert!(boosted.items.windows(2).all(|w| w[0].score >= w[1].score));
    let buried = f.engine.recommend(&base().boost("genre", genre.clone(), -2.0)).unwrap();
    assert!(count(&buried) <= count(&plain));

    // Recency: a strong weight on `year` raises the mean year of the list.
    let mean_year = |r: &twostage::Recommendations| r.items.iter().filter_map(|i| year(f, &i.id)).sum::<f64>() / r.items.len() as f64;
    let recent = f.engine.recommend(&base().recency("year", 2.0, 1.0).explain(true)).unwrap();
    assert!(
        mean_year(&recent) > mean_year(&plain),
        "{} vs {}",
        mean_year(&recent),
        mean_year(&plain)
    );
    let t = recent.items[0].features.as_ref().unwrap();
    assert!(t.iter().any(|(n, v)| n == "rule_recency" && *v > 0.0), "{t:?}");

    // Pins: an item from the bottom of the catalog, found by no retriever, at
    // position 0; the plain list's first item at position 3.
    let stranger = f.catalog.items().last().unwrap().id.clone();
    let pinned = f
        .engine
        .recommend(&base().pin(stranger.clone(), 0).pin(plain.items[0].id.clone(), 3).explain(true))
        .unwrap();
    let got = ids(&pinned);
    assert_eq!(
        (got[0].as_str(), got[3].as_str()),
        (stranger.as_str(), plain.items[0].id.as_str()),
        "{got:?}"
    );
    assert_eq!(got.len(), 10);
    assert!(pinned.items[0].features.as_ref().unwrap().iter().any(|(n, _)| n == "pinned"));
    // A pinned item the filters reject is not pinned, and says so.
    let rejected = f
        .engine
        .recommend(&base().pin(stranger.clone(), 0).exclude([stranger.clone()]))
        .unwrap();
    assert!(!ids(&rejected).contains(&stranger));
    assert!(
        rejected.warnings.iter().any(|w| w.contains("not pinned")),
        "{:?}",
        rejected.warnings
    );

    for (req, err_says) in [
        (base().boost("colour", "red", 1.0), "`colour`"),
        (base().boost("genre", "jazz", f32::NAN), "not finite"),
        (base().recency("artist", 5.0, 1.0), "not a number attribute"),
        (base().recency("year", 0.0, 1.0), "half_life"),
        (base().pin("trk-00001", 0).pin("trk-00001", 1), "pinned twice"),
    ] {
        let err = f.engine.recommend(&req).unwrap_err();
        assert!(matches!(&err, Error::InvalidRequest(m) if m.contains(err_says)), "{err}");
    }
    assert!(matches!(f.engine.recommend(&base().pin("trk-nope", 0)), Err(Error::UnknownItem(_))));
}

#[test]
fn negatives_are_never_returned_and_move_retrieval_away_from_what_they_share() {
    let f = common::music();
    let ctx = popular_tracks(f, 1).remove(0);
    // The vector retriever alone, every candidate returned: the list is
    // what retrieval found, whatever the ranker makes of it.
    let ann_only = || {
        Retriever::ALL
            .iter()
            .fold(Request::new(Context::listening(ctx.clone())).k(60), |r, &x| {
                r.candidates(x, if x == Retriever::Ann { 60 } else { 0 })
            })
    };
    let plain = f.engine.recommend(&ann_only()).unwrap();
    let ids = |r: &twostage::Recommendations| r.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    // The negatives: up to five of the list's items of its second most
    // common genre (the first is usually the context's own).
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for id in ids(&plain) {
        for g in genres(f, &id) {
            *counts.entry(g).or_default() += 1;
        }
    }
    let mut by_count: Vec<(usize, String)> = counts.into_iter().map(|(g, n)| (n, g)).collect();
    by_count.sort_unstable_by(|a, b| b.cmp(a));
    let genre = by_count.get(1).expect("two genres in the list").1.clone();
    let negatives: Vec<String> = ids(&plain)
        .into_iter()
        .filter(|id| genres(f, id).contains(&genre))
        .take(5)
        .collect();
    let count = |r: &twostage::Recommendations| r.items.iter().filter(|i| genres(f, &i.id).contains(&genre)).count();

    // Excluding them only drops them; as negatives, the context moves away
    // from them, so retrieval finds fewer items of their genre.
    let excluded = f.engine.recommend(&ann_only().exclude(negatives.clone())).unwrap();
    let moved = f.engine.recommend(&ann_only().negatives(negatives.clone()).explain(true)).unwrap();
    assert!(ids(&moved).iter().all(|id| !negatives.contains(id)), "a negative came back");
    assert!(
        count(&moved) < count(&excluded),
        "{genre}: {} with negatives, {} excluded",
        count(&moved),
        count(&excluded)
    );
    // The ranker sees each candidate's closeness to them.
    let sims: Vec<f32> = moved
        .items
        .iter()
        .filter_map(|i| i.features.as_ref()?.iter().find(|(n, _)| n == "negative_sim").map(|x| x.1))
        .collect();
    assert_eq!(sims.len(), moved.items.len());
    assert!(sims.iter().any(|&s| s > 0.0), "{sims:?}");

    // Every context kind takes them; unknown ids are ignored, as in `exclude`.
    for context in [Context::search(artist(f, &ctx)), Context::history([ctx.clone()])] {
        let got = f
            .engine
            .recommend(&Request::new(context).k(20).negatives(negatives.clone()))
            .unwrap();
        assert!(ids(&got).iter().all(|id| !negatives.contains(id)));
    }
    assert!(f.engine.recommend(&ann_only().negatives(["trk-nope"])).is_ok());
    let too_many = ann_only().negatives(vec![ctx.clone(); twostage::request::MAX_HISTORY + 1]);
    assert!(matches!(f.engine.recommend(&too_many), Err(Error::InvalidRequest(m)) if m.contains("negatives")));
}

#[test]
fn a_latency_budget_is_shared_out_and_cuts_work_in_order_when_tight() {
    let f = common::music();
    let ctx = popular_tracks(f, 1).remove(0);
    // Deep: scoring a thousand candidates is most of the request, so a
    // third of its time can be met by scoring fewer, whatever the machine.
    let req = || {
        Retriever::ALL
            .iter()
            .fold(Request::new(Context::history([ctx.clone()])).k(10).rank_depth(2000), |r, &x| {
                r.candidates(x, 1000)
            })
    };
    // Without a budget there is no report; the engine learns the stage costs.
    let plain = f.engine.recommend(&req()).unwrap();
    assert!(plain.budget.is_none());
    let mut totals: Vec<f64> = (0..7)
        .map(|_| f.engine.recommend(&req()).unwrap().timings.total.as_secs_f64())
        .collect();
    totals.sort_by(f64::total_cmp);
    let typical_ms = totals[3] * 1e3;

    // A generous budget cuts nothing and gives each stage that ran a share.
    let loose = f.engine.recommend(&req().budget_ms(10_000.0)).unwrap();
    let report = loose.budget.as_ref().expect("a budget report");
    assert!(report.cut.is_empty(), "{:?}", report.cut);
    assert!(report.met);
    assert_eq!(report.allotted.total, std::time::Duration::from_secs(10));
    assert!(report.allotted.ann > std::time::Duration::ZERO && report.allotted.covisit > std::time::Duration::ZERO);
    let ids = |r: &twostage::Recommendations| r.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&loose), ids(&plain));

    // A third of what the request takes: beams narrowed first, then
    // retrievers skipped (one that answers is kept) or fewer candidates
    // scored; still k items.
    let third = typical_ms / 3.0;
    let tight = f.engine.recommend(&req().budget_ms(third)).unwrap();
    let report = tight.budget.as_ref().unwrap();
    assert!(
        report.cut.first().is_some_and(|c| c.contains("narrowed")),
        "{third} ms: {:?} {:?}",
        report.cut,
        tight.warnings
    );
    assert!(
        report
            .cut
            .iter()
            .skip(1)
            .any(|c| c.starts_with("skipped the") || c.starts_with("scored")),
        "{:?}",
        report.cut
    );
    assert_eq!(tight.items.len(), 10);
    // What was cut shows in the work done: a retriever that ran before did not, or fewer candidates.
    let ran = |r: &twostage::Recommendations| -> Vec<&str> {
        let retrievers = Retriever::ALL.map(|x| x.name());
        r.timings
            .stages()
            .into_iter()
            .filter(|(n, d)| retrievers.contains(n) && !d.is_zero())
            .map(|(n, _)| n)
            .collect()
    };
    assert!(
        tight.candidates < plain.candidates || ran(&tight).len() < ran(&plain).len(),
        "{:?} {:?} {:?}",
        ran(&tight),
        ran(&plain),
        report.cut
    );

    // One microsecond: no cut can meet it, so nothing is cut and a warning says so.
    let hopeless = f.engine.recommend(&req().budget_ms(0.001)).unwrap();
    let report = hopeless.budget.as_ref().unwrap();
    assert!(report.cut.is_empty() && !report.met, "{:?}", report.cut);
    assert!(
        hopeless.warnings.iter().any(|w| w.contains("no cut can meet it")),
        "{:?}",
        hopeless.warnings
    );
    assert_eq!(ids(&hopeless), ids(&plain));

    for bad in [0.0, -1.0, f64::NAN, 1e9] {
        let err = f.engine.recommend(&req().budget_ms(bad)).unwrap_err();
        assert!(matches!(&err, Error::InvalidRequest(m) if m.contains("budget_ms")), "{err}");
    }
}

#[test]
fn a_request_names_a_variant_or_a_user_and_the_answer_says_which_served_it() {
    let f = common::music();
    let ctx = popular_tracks(f, 1).remove(0);
    let req = || Request::new(Context::history([ctx.clone()])).k(10);
    let ids = |r: &twostage::Recommendations| r.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let plain = f.engine.recommend(&req()).unwrap();
    assert_eq!(plain.variant, None, "a request without an experiment reports none");

    // `fusion` is the fused order itself; `ranker` is the ranker's order.
    let fusion = f.engine.recommend(&req().variant("fusion")).unwrap();
    assert_eq!(fusion.variant.as_deref(), Some("fusion"));
    let fused: Vec<String> = f.engine.retrieve(&req()).unwrap().ids().take(10).map(str::to_string).collect();
    assert_eq!(ids(&fusion), fused);
    let ranker = f.engine.recommend(&req().variant("ranker")).unwrap();
    assert_eq!(ranker.variant.as_deref(), Some("ranker"));
    assert_ne!(ids(&ranker), ids(&fusion), "the two variants rank differently");
    let served = f.engine.recommend(&req().variant("served")).unwrap();
    assert_eq!(ids(&served), ids(&plain));

    // A user keeps one variant; users spread over all of them.
    let mut seen = HashSet::new();
    for u in 0..60 {
        let user = format!("usr-{u:05}");
        let a = f.engine.recommend(&req().user(user.clone())).unwrap();
        let b = f.engine.recommend(&req().user(user.clone())).unwrap();
        assert_eq!((a.variant.clone(), ids(&a)), (b.variant.clone(), ids(&b)));
        seen.insert(a.variant.unwrap());
    }
    assert_eq!(seen.len(), twostage::VARIANTS.len(), "{seen:?}");

    let err = f.engine.recommend(&req().variant("b")).unwrap_err();
    assert!(matches!(&err, Error::InvalidRequest(m) if m.contains("`b`")), "{err}");
}

#[test]
fn a_session_context_carries_a_text_the_item_playing_and_the_history_at_once() {
    let f = common::music();
    let tracks = popular_tracks(f, 4);
    let (playing, history) = (tracks[0].clone(), tracks[1..].to_vec());
    let text = artist(f, &tracks[0]);
    let ids = |r: &twostage::Recommendations| r.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let run = |c: Context| f.engine.recommend(&Request::new(c).k(10)).unwrap();

    // Every signal: the same as a personalised search whose history ends
    // with the item playing (its weight 1, the history decaying from it).
    let all = run(Context::session(Some(&text), Some(&playing), history.clone()));
    let mut with_playing = history.clone();
    with_playing.push(playing.clone());
    assert_eq!(
        ids(&all),
        ids(&run(Context::personalized_search(text.clone(), with_playing.clone())))
    );
    assert!(!ids(&all).contains(&playing) && history.iter().all(|h| !ids(&all).contains(h)));
    assert!(all
        .items
        .iter()
        .any(|i| i.sources.iter().any(|s| s.retriever == Retriever::Lexical)));

    // Fewer signals: the playing item alone is listening; the text alone a search.
    assert_eq!(
        ids(&run(Context::session(None, Some(&playing), Vec::<String>::new()))),
        ids(&run(Context::listening(playing.clone())))
    );
    assert_eq!(
        ids(&run(Context::session(Some(&text), None, Vec::<String>::new()))),
        ids(&run(Context::search(text.clone())))
    );

    // The item playing and a history, no text: the history's retrievers,
    // and more like the playing item where it is rarely played.
    let rare = f
        .catalog
        .items()
        .iter()
        .map(|i| i.id.clone())
        .find(|id| {
            let r = run(Context::listening(id.clone()));
            r.items.iter().any(|i| i.sources.iter().any(|s| s.retriever == Retriever::Lexical))
        })
        .expect("a rarely played item gets more-like-this");
    let session = run(Context::session(None, Some(&rare), history.clone()));
    assert!(
        session
            .items
            .iter()
            .any(|i| i.sources.iter().any(|s| s.retriever == Retriever::Lexical)),
        "more like the playing item"
    );
    let mut plain_history = history.clone();
    plain_history.push(rare.clone());
    let as_history = run(Context::history(plain_history));
    assert!(as_history
        .items
        .iter()
        .all(|i| i.sources.iter().all(|s| s.retriever != Retriever::Lexical)));

    let empty = f
        .engine
        .recommend(&Request::new(Context::session(None, None, Vec::<String>::new())));
    assert!(matches!(empty, Err(Error::InvalidRequest(m)) if m.contains("session")));
    let json = r#"{"context":{"session":{"playing":"trk-00042","history":["trk-00001"]}},"k":3}"#;
    assert!(f.engine.recommend(&serde_json::from_str::<Request>(json).unwrap()).is_ok());
}

#[test]
fn a_given_context_vector_is_what_the_ann_retriever_searches_with() {
    let f = common::music();
    let tracks = popular_tracks(f, 2);
    let (played, wanted) = (&tracks[0], &tracks[1]);
    let v = f.engine.item_vector(wanted).expect("a played track has a learned vector").to_vec();
    let ann_rank = |req: &Request, id: &str| {
        let c = f.engine.retrieve(req).unwrap();
        let i = c.ids().position(|x| x == id)?;
        c.sources(i).iter().find(|p| p.retriever == Retriever::Ann).map(|p| p.rank)
    };
    // A history of one track, searched with another's vector: the ANN list
    // is that track's neighbourhood, led by the track itself.
    let given = Request::new(Context::history([played.clone()])).context_vector(v.clone());
    assert_eq!(ann_rank(&given, wanted), Some(0));
    // A search too: the vector replaces the pseudo-relevance one.
    let search = Request::new(Context::search("a query unlike any title")).context_vector(v.clone());
    assert_eq!(ann_rank(&search, wanted), Some(0));
    // The same request as JSON.
    let json = serde_json::json!({"context": {"history": {"items": [played]}}, "context_vector": v});
    let parsed: Request = serde_json::from_value(json).unwrap();
    assert_eq!(parsed, given);

    for (bad, why) in [
        (v[..v.len() - 1].to_vec(), "dimensions"),
        (vec![0.0; v.len()], "not all zero"),
        ([vec![f32::NAN], v[1..].to_vec()].concat(), "finite"),
        (vec![1e30; v.len()], "finite"),
    ] {
        let err = f.engine.recommend(&given.clone().context_vector(bad)).unwrap_err();
        assert!(matches!(&err, Error::InvalidRequest(m) if m.contains(why)), "{err}");
    }
    assert!(f.engine.item_vector("no-such-track").is_none());
}

/// The shipped log's searches teach which categories their words point
/// at: searches for "omar & the lovers" led to that artist's tracks, so
/// they score higher on `query_category` than other artists' tracks in
/// the same answer (found by its other words).
#[test]
fn logged_search_words_point_the_ranker_at_the_categories_their_items_had() {
    let f = common::music();
    let searches = f.events.events().iter().filter(|e| e.kind == twostage::EventKind::Search).count();
    let learned = f.engine.info().stats.query_category_searches;
    assert!(learned > 0 && learned <= searches, "{learned} of {searches} logged searches");
    let recs = f
        .engine
        .recommend(&Request::new(Context::search("omar & the lovers")).k(100).explain(true))
        .unwrap();
    let feature = |r: &twostage::Recommendation| {
        let features = r.features.as_ref().expect("explain gives features");
        features.iter().find(|(n, _)| n == "query_category").map(|f| f.1).unwrap()
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for r in &recs.items {
        if artist(f, &r.id).eq_ignore_ascii_case("omar & the lovers") {
            &mut with
        } else {
            &mut without
        }
        .push(feature(r));
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(
        !with.is_empty() && !without.is_empty(),
        "{} with, {} without",
        with.len(),
        without.len()
    );
    assert!(mean(&with) > mean(&without) + 0.1, "{} against {}", mean(&with), mean(&without));
    // Words no logged search used ("vocals" is in 1,140 descriptions and no
    // logged query) move nothing.
    let recs = f
        .engine
        .recommend(&Request::new(Context::search("vocals")).k(5).explain(true))
        .unwrap();
    assert!(!recs.items.is_empty());
    assert!(recs.items.iter().all(|r| feature(r) == 0.0), "{recs:?}");
}

/// A catalog split into two shards: each shard, given the statistics of
/// both added up, gives every item the BM25 score the whole catalog's
/// index gives it, where its own statistics give another.
#[test]
fn shards_given_catalog_wide_text_statistics_score_as_the_whole_catalog() {
    let f = common::music();
    let tmp = tempfile::tempdir().unwrap();
    let shards: Vec<twostage::Engine> = (0..2)
        .map(|s| {
            let items: Vec<twostage::Item> = f.catalog.items().iter().skip(s).step_by(2).cloned().collect();
            let catalog = twostage::Catalog::new(items).unwrap();
            let events = twostage::Events::from_events(Vec::new(), Vec::new(), &catalog).unwrap();
            let dir = tmp.path().join(format!("shard-{s}"));
            twostage::IndexBuilder::new()
                .group_key("artist")
                .without_ranker_training()
                .build(&catalog, &events, &dir)
                .unwrap();
            twostage::Engine::open(&dir).unwrap()
        })
        .collect();
    let query = "melancholic piano at night";
    let mut total = twostage::TextStatistics::default();
    for shard in &shards {
        total.add(&shard.text_statistics(query).unwrap());
    }
    assert_eq!(total, f.engine.text_statistics(query).unwrap(), "the shards add up to the catalog");

    let lexical = |engine: &twostage::Engine, req: Request| -> HashMap<String, f32> {
        let recs = engine.recommend(&req.k(200).candidates(Retriever::Lexical, 200)).unwrap();
        recs.items
            .iter()
            .filter_map(|r| {
                let p = r.sources.iter().find(|p| p.retriever == Retriever::Lexical)?;
                Some((r.id.clone(), p.score))
            })
            .collect()
    };
    let whole = lexical(&f.engine, Request::new(Context::search(query)));
    let (mut compared, mut differed_alone) = (0, 0);
    for shard in &shards {
        let own = lexical(shard, Request::new(Context::search(query)));
        let global = lexical(shard, Request::new(Context::search(query)).text_statistics(total.clone()));
        for (id, score) in &global {
            if let Some(w) = whole.get(id) {
                assert!(
                    (score - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "{id}: {score} on its shard, {w} in the catalog"
                );
                compared += 1;
                differed_alone += usize::from(own.get(id).is_some_and(|o| (o - w).abs() > 1e-3));
            }
        }
    }
    assert!(compared >= 50, "{compared} items compared");
    assert!(differed_alone > 0, "a shard's own statistics should give other scores");

    // Statistics that cannot be the catalog's are refused, naming why.
    let mut short = total.clone();
    short.doc_freq.clear();
    let err = shards[0]
        .recommend(&Request::new(Context::search(query)).text_statistics(short))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(ref m) if m.contains("lack the term")), "{err}");
    let err = shards[0]
        .recommend(&Request::new(Context::listening("trk-00001")).text_statistics(total))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidRequest(ref m) if m.contains("text_statistics")),
        "{err}"
    );
}

/// A space of a few thousand rows is searched exactly (a scan costs no more
/// than the walk there): the served ANN hits equal brute force even on a
/// graph built too poorly for its walk to find them, so two builds of the
/// same small data retrieve the same items.
#[test]
fn a_small_learned_space_is_scanned_exactly_however_poor_its_graph() {
    use twostage::{AnnParams, AnnSearch, Catalog, Events, IndexBuilder};
    let f = common::music();
    let n = 1_500;
    let catalog = Catalog::new(f.catalog.items()[..n].to_vec()).unwrap();
    let events: Vec<_> = f.events.events().iter().filter(|e| (e.item as usize) < n).cloned().collect();
    let events = Events::from_events(f.events.users().to_vec(), events, &catalog).unwrap();
    let dir = tempfile::tempdir().unwrap();
    IndexBuilder::new()
        .ann(AnnParams::default().m(2).ef_construction(1))
        .without_ranker_training()
        .build(&catalog, &events, dir.path())
        .unwrap();
    let engine = twostage::Engine::open(dir.path()).unwrap();
    let (mut compared, mut walk_missed) = (0, 0);
    for item in catalog.items().iter().step_by(15) {
        let req = Request::new(Context::listening(item.id.clone())).k(10);
        let (_, trace) = engine.trace(&req).unwrap();
        let exact = engine.ann_hits(&trace, 10, AnnSearch::Exact).unwrap();
        if exact.is_empty() {
            continue; // no vector
        }
        assert_eq!(
            engine.ann_hits(&trace, 10, AnnSearch::Served).unwrap(),
            exact,
            "context {}",
            item.id
        );
        walk_missed += usize::from(engine.ann_hits(&trace, 10, AnnSearch::Walk).unwrap() != exact);
        compared += 1;
    }
    assert!(compared >= 50, "{compared} contexts compared");
    assert!(
        walk_missed > 0,
        "the graph's walk found every exact answer: the test cannot tell a scan from a walk"
    );
}

/// The history's user vector, folded into the learned space (`fold_in`),
/// scores candidates of the history's own genre above the rest of the
/// answer; a request without context items has none.
#[test]
fn a_history_folded_into_the_learned_space_favours_its_own_genre() {
    let f = common::music();
    let popular = popular_tracks(f, 200);
    let genre = genres(f, &popular[0]).into_iter().min().expect("a genre");
    let history: Vec<String> = popular
        .iter()
        .filter(|id| genres(f, id).contains(&genre))
        .take(10)
        .cloned()
        .collect();
    assert!(history.len() >= 5, "{history:?}");
    let recs = f
        .engine
        .recommend(&Request::new(Context::history(history.clone())).k(100).explain(true))
        .unwrap();
    let feature = |r: &twostage::Recommendation| {
        let features = r.features.as_ref().expect("explain gives features");
        features.iter().find(|(n, _)| n == "fold_in").map(|f| f.1).unwrap()
    };
    let (mut same, mut other) = (Vec::new(), Vec::new());
    for r in &recs.items {
        if genres(f, &r.id).contains(&genre) { &mut same } else { &mut other }.push(feature(r));
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(!same.is_empty() && !other.is_empty(), "{} same, {} other", same.len(), other.len());
    assert!(mean(&same) > mean(&other) + 0.1, "{} against {}", mean(&same), mean(&other));
    let recs = f
        .engine
        .recommend(&Request::new(Context::search("omar & the lovers")).k(5).explain(true))
        .unwrap();
    assert!(!recs.items.is_empty());
    assert!(recs.items.iter().all(|r| feature(r) == 0.0), "{recs:?}");
}
