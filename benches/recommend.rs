//! End-to-end `recommend` latency on the shipped music data, per context type.
//!
//! ```text
//! cargo bench --bench recommend
//! ```

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use twostage::{Catalog, Context, Engine, Events, IndexBuilder, Request};

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
    let contexts = [
        ("search", Context::search("melancholic indie folk")),
        ("listening", Context::listening(ids[3].clone())),
        ("history", Context::history(history.clone())),
        ("personalized_search", Context::personalized_search("calm piano", history)),
    ];
    let mut group = c.benchmark_group("recommend");
    for (name, ctx) in contexts {
        let req = Request::new(ctx).k(10);
        group.bench_function(name, |b| {
            b.iter(|| black_box(engine.recommend(black_box(&req)).expect("recommend")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
