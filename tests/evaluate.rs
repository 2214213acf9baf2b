//! The evaluation harness on a slice of the music data: every system is
//! scored, and learned re-ranking beats popularity.

use twostage::eval::{compare, splits};
use twostage::IndexBuilder;

mod common;

#[test]
fn compare_scores_every_system_on_the_music_split() {
    let f = common::music();
    let mut p = splits::temporal("music", &f.catalog, &f.events).unwrap();
    // A slice keeps the test quick; the full run is `examples/evaluate`.
    for fold in &mut p.ranker_folds {
        fold.targets.truncate(800);
    }
    p.valid.truncate(200);
    p.test.truncate(300);
    let work = tempfile::tempdir().unwrap();
    let mut phases = Vec::new();
    let report = compare(&p, &IndexBuilder::new().group_key("artist"), work.path(), &mut |m| {
        phases.push(m.to_string())
    })
    .unwrap();
    assert_eq!(report.requests, 300);
    let names: Vec<&str> = report.systems.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "popularity",
        "itemknn",
        "ann",
        "covisit",
        "retrieval",
        "ranker_fixed",
        "ranker_linear",
        "ranker_mlp",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let ndcg = |name: &str| report.systems.iter().find(|(n, _)| n == name).map(|(_, r)| r.metrics.ndcg).unwrap();
    assert!(ndcg("ranker_mlp") > ndcg("popularity"), "{}", report.table());
    assert!(ndcg("retrieval") > ndcg("popularity"), "{}", report.table());
    let json = report.to_json();
    assert!(json["systems"]["ranker_mlp"]["ndcg@10"].is_f64());
    assert!(phases.iter().any(|p| p.contains("ranker_mlp")));
}
