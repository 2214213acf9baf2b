//! Each online stage alone, on the shipped music data: ANN search, lexical
//! search, co-visitation lookup, fusion, feature assembly, and the ranker's
//! forward pass for 50 / 200 / 1000 candidates (the default 5-model
//! ensemble), and for 200 candidates with one model, the ensemble's cost.
//!
//! ```text
//! cargo bench --bench stages
//! ```
//!
//! Stages are re-run through `Engine::trace` + `Engine::run_stage` on the
//! inputs a real request produced, so they measure exactly the served code.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use twostage::{Catalog, Context, Engine, Events, IndexBuilder, Request, Stage, TrainParams};

fn bench(c: &mut Criterion) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/music");
    let catalog = Catalog::from_jsonl_path(data.join("items.jsonl")).expect("catalog");
    let events = Events::from_jsonl_path(data.join("events.jsonl"), &catalog).expect("events");
    let dir = tempfile::tempdir().expect("tempdir");
    IndexBuilder::new()
        .group_key("artist")
        .build(&catalog, &events, dir.path().join("i"))
        .expect("build");
    let engine = Engine::open(dir.path().join("i")).expect("open");

    let ids: Vec<String> = catalog.items().iter().step_by(97).map(|i| i.id.clone()).collect();
    let history: Vec<String> = ids.iter().take(10).cloned().collect();
    // A personalised search exercises every retriever.
    let req = Request::new(Context::personalized_search("calm piano", history)).k(10);
    let (_, trace) = engine.trace(&req).expect("trace");

    let mut group = c.benchmark_group("stage");
    for (name, stage) in [
        ("ann", Stage::Ann),
        ("lexical", Stage::Lexical),
        ("covisit", Stage::Covisit),
        ("fusion", Stage::Fusion),
        ("features", Stage::Features),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(engine.run_stage(black_box(&trace), stage).expect("stage")))
        });
    }
    for rows in [50usize, 200, 1000] {
        group.bench_with_input(BenchmarkId::new("rank", rows), &rows, |b, &rows| {
            b.iter(|| black_box(engine.run_stage(black_box(&trace), Stage::Rank { rows }).expect("rank")))
        });
    }
    IndexBuilder::new()
        .group_key("artist")
        .ranker(TrainParams::default().ensemble(1))
        .build(&catalog, &events, dir.path().join("one"))
        .expect("build with one model");
    let one = Engine::open(dir.path().join("one")).expect("open");
    let (_, one_trace) = one.trace(&req).expect("trace");
    group.bench_function("rank_one_model/200", |b| {
        b.iter(|| black_box(one.run_stage(black_box(&one_trace), Stage::Rank { rows: 200 }).expect("rank")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
