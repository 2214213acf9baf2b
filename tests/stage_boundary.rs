//! The boundary between the two stages: `Engine::retrieve` runs retrieval
//! alone, `Engine::rank` ranks its candidates with the index's model or a
//! caller's `Scorer`, and the two together answer as `recommend` does.

use twostage::{Candidates, Context, Error, Request, Scorer};

mod common;

/// Ranks by one feature, by name.
struct ByFeature(&'static str);

impl Scorer for ByFeature {
    fn score(&self, c: &Candidates) -> Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
        (0..c.len())
            .map(|i| c.feature(i, self.0).ok_or_else(|| "no such feature".into()))
            .collect()
    }
}

/// Returns a fixed list, whatever it is given.
struct Fixed(Vec<f32>);

impl Scorer for Fixed {
    fn score(&self, _: &Candidates) -> Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.0.clone())
    }
}

fn requests(f: &common::Fixture) -> Vec<Request> {
    let ids: Vec<String> = f.catalog.items().iter().step_by(131).take(5).map(|i| i.id.clone()).collect();
    vec![
        Request::new(Context::listening(ids[0].clone())).k(10),
        Request::new(Context::history(ids.clone())).k(7),
        Request::new(Context::search("night drive")).k(10),
        Request::new(Context::personalized_search("piano", ids[1..3].to_vec())).k(5),
    ]
}

#[test]
fn retrieve_then_rank_answers_as_recommend() {
    let f = common::music();
    for req in requests(f) {
        let served = f.engine.recommend(&req).unwrap();
        let candidates = f.engine.retrieve(&req).unwrap();
        assert_eq!(candidates.len(), served.candidates, "{req:?}");
        let ranked = f.engine.rank(&req, candidates, None).unwrap();
        let ids = |r: &twostage::Recommendations| r.items.iter().map(|i| (i.id.clone(), i.score)).collect::<Vec<_>>();
        assert_eq!(ids(&ranked), ids(&served), "{req:?}");
        assert_eq!(
            ranked.items.iter().map(|i| &i.sources).collect::<Vec<_>>(),
            served.items.iter().map(|i| &i.sources).collect::<Vec<_>>()
        );
    }
}

#[test]
fn candidates_carry_ids_provenance_and_named_features() {
    let f = common::music();
    let req = &requests(f)[3];
    let c = f.engine.retrieve(req).unwrap();
    assert!(c.len() > 10, "a personalised search finds candidates: {}", c.len());
    let names = Candidates::feature_names();
    assert_eq!(c.matrix().len(), c.len() * names.len());
    let ids: Vec<&str> = c.ids().collect();
    assert_eq!(ids.len(), c.len());
    for (i, id) in ids.iter().enumerate() {
        assert!(f.engine.item(id).is_some());
        let sources = c.sources(i);
        assert!(!sources.is_empty(), "every candidate was found by some retriever");
        let row = c.features(i).unwrap();
        // The `*_found` columns say which retrievers found it, as the provenance does.
        for s in &sources {
            let col = names.iter().position(|n| *n == format!("{}_found", s.retriever.name())).unwrap();
            assert_eq!(row[col], 1.0, "{} found candidate {i}", s.retriever.name());
            assert_eq!(c.feature(i, names[col]), Some(1.0));
        }
    }
    assert_eq!(c.id(c.len()), None);
    assert!(c.features(c.len()).is_none());
    assert_eq!(c.feature(0, "no_such_feature"), None);
    assert!(c.timings().fusion > std::time::Duration::ZERO || c.timings().encode > std::time::Duration::ZERO);
}

#[test]
fn a_callers_scorer_orders_the_candidates() {
    let f = common::music();
    let req = requests(f)[0].clone().k(20);
    let candidates = f.engine.retrieve(&req).unwrap();
    let expected: Vec<f32> = {
        let mut pop: Vec<f32> = (0..candidates.len())
            .map(|i| candidates.feature(i, "log_popularity").unwrap())
            .collect();
        pop.sort_by(|a, b| b.total_cmp(a));
        pop.truncate(20);
        pop
    };
    let ranked = f.engine.rank(&req, candidates, Some(&ByFeature("log_popularity"))).unwrap();
    let scores: Vec<f32> = ranked.items.iter().map(|r| r.score).collect();
    assert_eq!(scores, expected, "the items come in the scorer's order, with its scores");
}

#[test]
fn a_scorer_that_fails_or_miscounts_is_an_internal_error() {
    let f = common::music();
    let req = &requests(f)[0];
    let n = f.engine.retrieve(req).unwrap().len();
    for scorer in [
        &ByFeature("nope") as &dyn Scorer,
        &Fixed(vec![1.0; n + 1]),
        &Fixed(vec![f32::NAN; n]),
    ] {
        let c = f.engine.retrieve(req).unwrap();
        let e = f.engine.rank(req, c, Some(scorer)).unwrap_err();
        assert!(matches!(e, Error::Internal { stage: "rank", .. }), "{e}");
        assert!(!e.is_caller_error());
    }
}

#[test]
fn candidates_of_another_index_are_refused_and_out_of_range_rows_are_none() {
    let f = common::music();
    let req = &requests(f)[0];
    let c = f.engine.retrieve(req).unwrap();
    assert!(c.features(usize::MAX).is_none() && c.features(usize::MAX / 2).is_none());
    assert_eq!(c.feature(usize::MAX, "rrf"), None);
    assert!(c.sources(usize::MAX).is_empty());
    assert_eq!(c.ids().count(), c.len());
    // The same index opened again is another engine: its answer must not mix the two.
    let other = twostage::Engine::open(&f.dir).unwrap();
    let e = other.rank(req, c, None).unwrap_err();
    assert!(
        matches!(e, Error::InvalidRequest(_)) && e.to_string().contains("another index"),
        "{e}"
    );
}
