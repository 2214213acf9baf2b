//! Search quality on graded queries, without and with the sentence encoder:
//! BM25 alone, the learned space alone, the content space alone (dense),
//! fused retrieval, and fused retrieval + the trained ranker. MRR@10,
//! Recall@10 and NDCG@10.
//!
//! ```text
//! cargo run --release --features harness --example evaluate_search -- --data data/music --group-key artist \
//!     --model models/all-MiniLM-L6-v2 [--json]
//! scripts/fetch_wordnet.sh    # a real-text task: WordNet glosses → their words
//! cargo run --release --features harness --example evaluate_search -- --data data/wordnet --model models/all-MiniLM-L6-v2
//! ```
//!
//! `DIR` holds `items.jsonl`, `events.jsonl` (the ranker trains on its most
//! recent 15%, as in any build) and `queries.jsonl` (graded test queries).
//! Without `--model` only the "before" index is built.

#[path = "support/progress.rs"]
mod progress;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use serde_json::json;
use twostage::eval::{load_graded_queries, search_quality};
use twostage::{Catalog, Encoder, Engine, Events, IndexBuilder};

/// Search quality with and without a sentence encoder.
#[derive(Parser)]
struct Args {
    /// Dataset directory (items.jsonl, events.jsonl, queries.jsonl).
    #[arg(long, default_value = "data/music")]
    data: PathBuf,
    /// Sentence-encoder model directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Text attribute whose equal values form a group (e.g. artist).
    #[arg(long)]
    group_key: Option<String>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let catalog = Catalog::from_jsonl_path(args.data.join("items.jsonl"))?;
    let events = Events::from_jsonl_path(args.data.join("events.jsonl"), &catalog)?;
    let queries = load_graded_queries(args.data.join("queries.jsonl"))?;
    let encoder = args.model.as_ref().map(Encoder::load).transpose()?;
    let work = tempfile::tempdir()?;

    let mut variants: Vec<(&str, Option<&Encoder>)> = vec![("without encoder", None)];
    if let Some(e) = &encoder {
        variants.push(("with encoder", Some(e)));
    }
    let mut results = serde_json::Map::new();
    for (name, enc) in variants {
        let mut builder = IndexBuilder::new();
        if let Some(g) = &args.group_key {
            builder = builder.group_key(g.clone());
        }
        if let Some(e) = enc {
            builder = builder.encoder(e.clone());
        }
        let dir = work.path().join(name.replace(' ', "-"));
        let t = Instant::now();
        let bars = progress::PhaseBars::default();
        let report = builder.build_with_progress(&catalog, &events, &dir, &|p| bars.update(p))?;
        bars.finish();
        let build_s = t.elapsed().as_secs_f64();
        let engine = Engine::open_with_encoder(&dir, enc)?;
        let t = Instant::now();
        let systems = search_quality(&engine, &queries)?;
        let eval_s = t.elapsed().as_secs_f64();
        if !args.json {
            println!(
                "{} — {} queries, index built in {build_s:.1} s (ranker: {}), scored in {eval_s:.1} s",
                name,
                queries.len(),
                report.training.as_ref().map(|t| t.kind.as_str()).unwrap_or("fixed placeholder")
            );
            println!("{:<14} {:>8} {:>10} {:>8}", "system", "MRR@10", "Recall@10", "NDCG@10");
            for (s, m) in &systems {
                println!("{s:<14} {:>8.4} {:>10.4} {:>8.4}", m.mrr, m.recall, m.ndcg);
            }
            println!();
        }
        let systems: serde_json::Map<String, serde_json::Value> = systems
            .iter()
            .map(|(s, m)| (s.clone(), json!({"mrr@10": m.mrr, "recall@10": m.recall, "ndcg@10": m.ndcg})))
            .collect();
        results.insert(
            name.to_string(),
            json!({"systems": systems, "build_s": build_s, "eval_s": eval_s, "ranker": report.training.map(|t| t.kind)}),
        );
    }
    if args.json {
        println!(
            "{}",
            json!({"data": args.data, "queries": queries.len(), "model": encoder.map(|e| e.info().clone()), "results": results})
        );
    }
    Ok(())
}
