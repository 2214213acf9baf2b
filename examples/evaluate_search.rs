//! Search quality on graded queries, without and with the sentence encoder,
//! beside the peers computed in the same run: plain tantivy BM25 (one field,
//! English stemming, OR of the terms), the content space alone (dense),
//! their reciprocal-rank fusion; then the index's own BM25F alone, its fused
//! retrieval and what it serves (the serving plan's choice). With a
//! `similar.jsonl` (more-like-this ground truth), the same for a
//! `listening` context. MRR@10, Recall@10 and NDCG@10.
//!
//! ```text
//! cargo run --release --features harness --example evaluate_search -- --data data/music --group-key artist \
//!     --model models/all-MiniLM-L6-v2 [--json]
//! scripts/fetch_wordnet.sh    # a real-text task: WordNet glosses → their words
//! cargo run --release --features harness --example evaluate_search -- --data data/wordnet --model models/all-MiniLM-L6-v2
//! scripts/fetch_manpages.sh   # a real-text known-item task: Debian manual pages
//! cargo run --release --features harness --example evaluate_search -- --data data/manpages [--model models/all-MiniLM-L6-v2]
//! ```
//!
//! `DIR` holds `items.jsonl`, `events.jsonl` (the ranker trains on its most
//! recent 15%, as in any build; it may be empty), `queries.jsonl` (graded
//! test queries) and optionally `similar.jsonl`.
//! Without `--model` only the "before" index is built.

#[path = "support/progress.rs"]
mod progress;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use serde_json::json;
use twostage::eval::peers::PlainBm25;
use twostage::eval::{load_graded_queries, load_similar, search_quality, similar_quality, Metrics, Peers};
use twostage::{Catalog, ContextKind, Encoder, Engine, Events, IndexBuilder};

fn table(title: &str, systems: &[(String, Metrics)]) {
    println!("{title}");
    println!("{:<22} {:>8} {:>10} {:>8}", "system", "MRR@10", "Recall@10", "NDCG@10");
    for (s, m) in systems {
        println!("{s:<22} {:>8.4} {:>10.4} {:>8.4}", m.mrr, m.recall, m.ndcg);
    }
    println!();
}

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
    let similar_path = args.data.join("similar.jsonl");
    let similar = similar_path.exists().then(|| load_similar(&similar_path)).transpose()?;
    let encoder = args.model.as_ref().map(Encoder::load).transpose()?;
    let t = Instant::now();
    let bm25 = PlainBm25::build(&catalog)?;
    let peers = Peers {
        bm25: &bm25,
        catalog: &catalog,
    };
    eprintln!("plain BM25 peer indexed in {:.1} s", t.elapsed().as_secs_f64());
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
        let systems = search_quality(&engine, &queries, &peers)?;
        let mlt = similar.as_deref().map(|s| similar_quality(&engine, s, &peers)).transpose()?;
        let eval_s = t.elapsed().as_secs_f64();
        let serving = engine.info().serving;
        let served = |kind: ContextKind| {
            serving
                .contexts
                .get(&kind)
                .map(|p| {
                    let served = format!("{:?}", p.served).to_lowercase();
                    match p.borrowed_from {
                        Some(k) => format!("{served} (as {k:?}: {} held-out lists of its own)", p.lists),
                        None if p.validation.is_empty() => format!("{served} (unjudged: {} held-out lists)", p.lists),
                        None => served,
                    }
                })
                .unwrap_or_else(|| "ranker (no plan)".into())
        };
        if !args.json {
            println!(
                "{} — {} queries, index built in {build_s:.1} s (ranker: {}, {} generated lists; serves search by {}, listening by {}), scored in {eval_s:.1} s",
                name,
                queries.len(),
                report.training.as_ref().map(|t| t.kind.as_str()).unwrap_or("fixed placeholder"),
                report.training.as_ref().map(|t| t.generated_lists).unwrap_or(0),
                served(ContextKind::Search),
                served(ContextKind::Listening),
            );
            table("search", &systems);
            // Where the queries come in several kinds, each kind's own table.
            let mut kinds: Vec<&str> = queries.iter().filter_map(|q| q.kind.as_deref()).collect();
            kinds.sort_unstable();
            kinds.dedup();
            if kinds.len() > 1 {
                for kind in kinds {
                    let of_kind: Vec<_> = queries.iter().filter(|q| q.kind.as_deref() == Some(kind)).cloned().collect();
                    table(
                        &format!("search, {kind} queries ({})", of_kind.len()),
                        &search_quality(&engine, &of_kind, &peers)?,
                    );
                }
            }
            if let Some(m) = &mlt {
                table(&format!("more like this ({} items)", similar.as_ref().map_or(0, Vec::len)), m);
            }
            if let Some(p) = serving.contexts.get(&ContextKind::Search) {
                println!("search plan, validation NDCG@10 on {} held-out lists: {:?}", p.lists, p.validation);
                println!("search plan weights: {:?}\n", p.weights);
            }
        }
        let as_json = |systems: &[(String, Metrics)]| -> serde_json::Map<String, serde_json::Value> {
            systems
                .iter()
                .map(|(s, m)| (s.clone(), json!({"mrr@10": m.mrr, "recall@10": m.recall, "ndcg@10": m.ndcg})))
                .collect()
        };
        results.insert(
            name.to_string(),
            json!({
                "systems": as_json(&systems),
                "more_like_this": mlt.as_deref().map(as_json),
                "build_s": build_s,
                "eval_s": eval_s,
                "ranker": report.training.as_ref().map(|t| t.kind.clone()),
                "serving": serving,
            }),
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
