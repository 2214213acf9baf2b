//! A service's own `tracing` subscriber sees a span per request stage and
//! per build phase.
//!
//! One test function only: tracing caches each callsite's interest globally,
//! and a callsite first hit on another test's thread while a recorder is
//! being installed can keep a stale "never". Keep this binary sequential.

mod common;
#[path = "common/trace.rs"]
mod test_trace;

use twostage::{Catalog, Context, Engine, IndexBuilder, Request, TrainParams};

const ITEMS: &str = r#"
{"id":"t1","title":"Blue Train","tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane"}}
{"id":"t2","title":"Giant Steps","tags":{"genre":["jazz"]},"attributes":{"artist":"Coltrane"}}
{"id":"t3","title":"So What","tags":{"genre":["jazz"]},"attributes":{"artist":"Davis"}}
{"id":"t4","title":"Thunderstruck","tags":{"genre":["rock"]},"attributes":{"artist":"AC/DC"}}
"#;

#[test]
fn build_and_recommend_emit_a_span_per_phase_and_stage() {
    let catalog = Catalog::from_jsonl_reader(ITEMS.as_bytes(), "items.jsonl".as_ref()).unwrap();
    // Enough users that the latest 15% of the log gives the ranker its minimum of lists.
    let events = common::sessions(&catalog, 300, &["t1", "t2", "t3"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");

    let build = test_trace::Recorder::default();
    build
        .record(|| IndexBuilder::new().without_ranker_training().build(&catalog, &events, &out))
        .unwrap();
    assert_eq!(
        build.span_names(),
        [
            "build",
            "log statistics",
            "covisitation",
            "linear",
            "embeddings",
            "hnsw",
            "text index",
            "write",
            "publish"
        ]
    );

    let engine = Engine::open(&out).unwrap();
    let serve = test_trace::Recorder::default();
    let recs = serve
        .record(|| engine.recommend(&Request::new(Context::personalized_search("jazz", ["t1"])).k(2)))
        .unwrap();
    assert_eq!(recs.items.len(), 2);
    assert_eq!(
        serve.spans(),
        [
            "INFO recommend",
            "DEBUG encode",
            "DEBUG lexical",
            "DEBUG encode",
            "DEBUG ann",
            "DEBUG covisit",
            "DEBUG linear",
            "DEBUG content",
            "DEBUG popular",
            "DEBUG fusion",
            "DEBUG features",
            "DEBUG rank"
        ]
    );

    let trained = test_trace::Recorder::default();
    let params = TrainParams::linear().max_epochs(3).patience(10);
    let report = trained
        .record(|| {
            IndexBuilder::new()
                .ranker(params)
                .build(&catalog, &events, dir.path().join("trained"))
        })
        .unwrap();
    assert!(report.training.is_some(), "the tiny log still yields training lists");
    let names = trained.span_names();
    assert!(names.contains(&"ranker training".to_string()), "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "train").count(), 1, "{names:?}");
    let epochs = trained.events().iter().filter(|e| *e == "INFO epoch").count();
    assert_eq!(epochs, 3);
}
