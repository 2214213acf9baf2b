//! Ranker training inside a build, and retraining an existing index.

use twostage::{retrain_ranker, Context, Engine, IndexBuilder, Request, TrainParams};

mod common;

fn small() -> TrainParams {
    TrainParams::default().max_lists(1_500).max_epochs(4).ensemble(2).windows(1)
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
    assert!(!training.epochs.is_empty() && training.epochs.len() <= 8);
    let members: std::collections::BTreeSet<usize> = training.epochs.iter().map(|e| e.member).collect();
    assert_eq!(members.into_iter().collect::<Vec<_>>(), [0, 1], "both ensemble members trained");
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

    // Retraining in place swaps the model and keeps the index valid; an
    // older window of the log adds its own lists.
    let linear = TrainParams::linear().max_lists(1_000).max_epochs(3).windows(1);
    let mut epochs = 0;
    let summary = retrain_ranker(&dir, &f.catalog, &f.events, None, &linear, &mut |_| epochs += 1).unwrap();
    assert_eq!(summary.epochs.len(), epochs);
    let two = retrain_ranker(&dir, &f.catalog, &f.events, None, &linear.clone().windows(2), &mut |_| {}).unwrap();
    assert!(
        // Each window holds out its later fifth: the older one adds to
        // validation as well as to training.
        two.train_lists > summary.train_lists + 400 && two.valid_lists > summary.valid_lists + 100,
        "{} then {} lists; validation {} then {}",
        summary.train_lists,
        two.train_lists,
        summary.valid_lists,
        two.valid_lists
    );
    // The older window's logged searches count against the top-up of
    // searches generated from the catalog: real queries are not outnumbered.
    assert!(
        two.generated_lists < summary.generated_lists,
        "generated lists: {} with one window, {} with two",
        summary.generated_lists,
        two.generated_lists
    );
    assert!(retrain_ranker(&dir, &f.catalog, &f.events, None, &linear.clone().windows(0), &mut |_| {}).is_err());
    let engine = Engine::open(&dir).unwrap();
    assert_eq!(engine.info().ranker.kind, "linear");
    assert_eq!(engine.recommend(&Request::new(Context::listening(id)).k(5)).unwrap().items.len(), 5);
}

#[test]
fn without_events_the_ranker_learns_from_searches_generated_from_the_catalog() {
    let f = common::music();
    let tmp = tempfile::tempdir().unwrap();
    let catalog = twostage::Catalog::new(f.catalog.items()[..200].to_vec()).unwrap();
    let params = TrainParams::linear().max_epochs(3);
    let report = IndexBuilder::new()
        .ranker(params.clone())
        .build(&catalog, &twostage::Events::default(), tmp.path().join("i"))
        .unwrap();
    let training = report.training.expect("no ranker trained");
    assert_eq!(training.generated_lists, 200, "one generated search per item");
    let engine = Engine::open(tmp.path().join("i")).unwrap();
    assert_eq!(engine.info().ranker.origin, "trained");
    // 40 held-out searches: enough for a validated plan, recorded in the manifest.
    let plan = &engine.info().serving.contexts[&twostage::ContextKind::Search];
    assert_eq!(plan.lists, 40);
    assert!(
        ["ranker", "fusion", "weighted fusion", "lexical"]
            .iter()
            .all(|k| plan.validation.contains_key(*k)),
        "{plan:?}"
    );
    assert_eq!(&training.serving, &engine.info().serving);

    // Too small a catalog to learn from: the documented placeholder is kept.
    let small = twostage::Catalog::new(f.catalog.items()[..40].to_vec()).unwrap();
    let report = IndexBuilder::new()
        .ranker(params)
        .build(&small, &twostage::Events::default(), tmp.path().join("s"))
        .unwrap();
    assert!(report.training.is_none());
    assert_eq!(Engine::open(tmp.path().join("s")).unwrap().info().ranker.origin, "fixed-default");
}
