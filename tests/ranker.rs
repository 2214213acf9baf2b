//! Ranker training inside a build, and retraining an existing index.

use twostage::{retrain_ranker, Context, Engine, IndexBuilder, Request, TrainParams};

mod common;

fn small() -> TrainParams {
    TrainParams::default().max_lists(1_500).max_epochs(4)
}

#[test]
fn a_build_with_events_trains_the_ranker_and_serves_with_it() {
    let f = common::music();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("i");
    let report = IndexBuilder::new()
        .group_key("artist")
        .ranker(small())
        .build(&f.catalog, &f.events, &dir)
        .unwrap();
    let training = report.training.expect("training ran");
    assert!(!training.epochs.is_empty() && training.epochs.len() <= 4);
    assert!(training.train_lists >= 50, "{training:?}");
    assert!(
        (0.0..=1.0).contains(&training.valid_candidate_recall) && training.valid_candidate_recall > 0.3,
        "{training:?}"
    );
    assert!(training.valid_ndcg > 0.0);

    let engine = Engine::open(&dir).unwrap();
    let info = engine.info().ranker;
    assert_eq!((info.kind.as_str(), info.origin.as_str()), ("mlp", "trained"));
    assert!(info.validation.contains_key("ndcg@10"));
    let id = f.catalog.items()[10].id.clone();
    let recs = engine.recommend(&Request::new(Context::listening(id.clone())).k(10)).unwrap();
    assert_eq!(recs.items.len(), 10);
    assert!(recs.items.windows(2).all(|w| w[0].score >= w[1].score));

    // Retraining in place swaps the model and keeps the index valid.
    let linear = TrainParams::linear().max_lists(1_000).max_epochs(3);
    let mut epochs = 0;
    let summary = retrain_ranker(&dir, &f.catalog, &f.events, None, &linear, &mut |_| epochs += 1).unwrap();
    assert_eq!(summary.epochs.len(), epochs);
    let engine = Engine::open(&dir).unwrap();
    assert_eq!(engine.info().ranker.kind, "linear");
    assert_eq!(engine.recommend(&Request::new(Context::listening(id)).k(5)).unwrap().items.len(), 5);
}

#[test]
fn without_events_the_documented_placeholder_is_kept() {
    let f = common::music();
    let tmp = tempfile::tempdir().unwrap();
    let catalog = twostage::Catalog::new(f.catalog.items()[..200].to_vec()).unwrap();
    let report = IndexBuilder::new()
        .build(&catalog, &twostage::Events::default(), tmp.path().join("i"))
        .unwrap();
    assert!(report.training.is_none());
    assert_eq!(Engine::open(tmp.path().join("i")).unwrap().info().ranker.origin, "fixed-default");
}
