//! Builds an index from the shipped music data and shows recommendations for
//! a search, a "currently listening" track and a listening history.
//!
//! ```text
//! cargo run --release --example quickstart [-- --data data/music --index target/quickstart-index]
//! ```

#[path = "support/progress.rs"]
mod progress;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Parser;
use twostage::{Catalog, Context, Engine, Events, IndexBuilder, Recommendations, Request};

/// Build an index from the shipped music data and print recommendations.
#[derive(Parser)]
struct Args {
    /// Directory holding items.jsonl and events.jsonl.
    #[arg(long, default_value = "data/music")]
    data: PathBuf,
    /// Where to write the index.
    #[arg(long, default_value = "target/quickstart-index")]
    index: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let t = Instant::now();
    let catalog = Catalog::from_jsonl_path(args.data.join("items.jsonl"))?;
    let events = Events::from_jsonl_path(args.data.join("events.jsonl"), &catalog)?;
    println!("loaded {} tracks and {} events in {:.2?}", catalog.len(), events.len(), t.elapsed());

    let bars = progress::PhaseBars::default();
    let report = IndexBuilder::new()
        .group_key("artist")
        .build_with_progress(&catalog, &events, &args.index, &|p| bars.update(p))?;
    bars.finish();
    let phases: Vec<String> = report.phases.iter().map(|(n, d)| format!("{n} {d:.2?}")).collect();
    println!(
        "built {} in {} ms ({}), {:.1} MB on disk, {} vectors of dimension {} ({})\n",
        report.path.display(),
        report.stats.build_ms,
        phases.join(", "),
        report.bytes as f64 / 1e6,
        report.stats.vectors,
        report.stats.dim,
        report.stats.vector_source
    );
    if let Some(t) = &report.training {
        println!(
            "trained the {} ranker in {:.1} s: {} models, {} epochs in all, validation NDCG@10 {:.3} over candidates, candidate recall {:.2}\n",
            t.kind,
            t.seconds,
            t.epochs.iter().map(|e| e.member + 1).max().unwrap_or(0),
            t.epochs.len(),
            t.valid_ndcg,
            t.valid_candidate_recall
        );
    }

    let engine = Engine::open(&args.index)?;
    let describe = |id: &str| -> String {
        match engine.item(id) {
            Some(item) => {
                let artist = item.attributes.get("artist").map(|a| a.to_string()).unwrap_or_default();
                let genre = item.tags.get("genre").map(|g| g.join("/")).unwrap_or_default();
                format!("{} — {} [{}]", item.title, artist, genre)
            }
            None => id.to_string(),
        }
    };
    let show = |title: String, recs: &Recommendations| {
        println!("{title}");
        for (i, r) in recs.items.iter().enumerate() {
            let sources: Vec<&str> = r.sources.iter().map(|s| s.retriever.name()).collect();
            println!(
                "  {:>2}. {:<60} score {:>6.3}  via {}",
                i + 1,
                describe(&r.id),
                r.score,
                sources.join("+")
            );
        }
        let t = &recs.timings;
        let stages: Vec<String> = t.stages().iter().map(|(n, d)| format!("{n} {}µs", d.as_micros())).collect();
        println!("  {} candidates ranked; {}\n", recs.candidates, stages.join(", "));
    };

    // A search for an artist's name, taken from the catalog so the demo works on any data.
    let first = catalog.items().first().context("empty catalog")?;
    let artist = first
        .attributes
        .get("artist")
        .map(|a| a.to_string())
        .unwrap_or_else(|| first.title.clone());
    let recs = engine.recommend(&Request::new(Context::search(artist.clone())).k(5))?;
    show(format!("search {artist:?}:"), &recs);

    // "Currently listening": the most played track.
    let mut plays = vec![0usize; catalog.len()];
    for e in events.events() {
        plays[e.item as usize] += 1;
    }
    let top = (0..catalog.len()).max_by_key(|&i| plays[i]).context("no tracks")?;
    let current = catalog.items()[top].id.clone();
    let recs = engine.recommend(&Request::new(Context::listening(current.clone())).k(5))?;
    show(format!("listening to {}:", describe(&current)), &recs);

    // A history: the last tracks of the first user's last session.
    let user = events.events().last().map(|e| e.user).context("no events")?;
    let history: Vec<String> = events
        .events()
        .iter()
        .filter(|e| e.user == user && e.kind == twostage::EventKind::Play)
        .map(|e| catalog.items()[e.item as usize].id.clone())
        .collect();
    let history = history[history.len().saturating_sub(5)..].to_vec();
    let names: Vec<String> = history.iter().map(|id| describe(id)).collect();
    let recs = engine.recommend(&Request::new(Context::history(history)).k(5))?;
    show(format!("after listening to:\n    {}", names.join("\n    ")), &recs);

    let recs = engine.recommend(&Request::new(Context::search("melancholic jazz")).k(5).require_tag("genre", "jazz"))?;
    show("search \"melancholic jazz\" (genre = jazz):".to_string(), &recs);
    Ok(())
}
