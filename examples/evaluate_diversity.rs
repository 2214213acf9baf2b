//! What the diversity controls cost and give on data/music next-track
//! prediction: NDCG@10, distinct artists and intra-list diversity in the top
//! 10, served by `Engine::recommend` with and without a per-artist cap and
//! maximal marginal relevance.
//!
//! ```text
//! cargo run --release --features harness --example evaluate_diversity
//! cargo run --release --features harness --example evaluate_diversity -- --lambdas 0.9,0.7,0.5
//! ```
//!
//! The split is `evaluate --dataset music`'s (temporal: the index, its
//! ranker trained as a default build trains it, is built on the first 80%
//! of the log; the test requests are the last 10%'s histories). Intra-list
//! diversity is the mean, over pairs of returned items, of one minus the
//! Jaccard similarity of their genre and mood tags (public data, unlike the
//! learned vectors MMR compares).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use twostage::eval::{splits, Metrics, MetricsMean};
use twostage::{Attribute, Catalog, Engine, Events, IndexBuilder, Request};

/// Diversity evaluation on data/music.
#[derive(Parser)]
struct Args {
    /// The music data directory.
    #[arg(long, default_value = "data/music")]
    data: PathBuf,
    /// MMR λ values tried.
    #[arg(long, value_delimiter = ',', default_value = "0.9,0.7,0.5")]
    lambdas: Vec<f32>,
    /// Where the index is built.
    #[arg(long, default_value = "target/eval/diversity-index")]
    index: PathBuf,
}

/// How a system changes the served request.
type Variant = Box<dyn Fn(Request) -> Request>;

fn main() -> Result<()> {
    let args = Args::parse();
    let catalog = Catalog::from_jsonl_path(args.data.join("items.jsonl"))?;
    let events = Events::from_jsonl_path(args.data.join("events.jsonl"), &catalog)?;
    let p = splits::temporal("music", &catalog, &events)?;
    let report = IndexBuilder::new().group_key("artist").build(&p.catalog, &p.fit, &args.index)?;
    eprintln!(
        "index built on {} events ({}); {} test requests",
        p.fit.len(),
        report.training.as_ref().map_or("placeholder ranker".into(), |t| format!(
            "ranker trained on {} lists",
            t.train_lists
        )),
        p.test.len()
    );
    let engine = Engine::open(&args.index)?;
    let artist = |id: &str| match engine.item(id).and_then(|mut i| i.attributes.remove("artist")) {
        Some(Attribute::Text(a)) => a,
        _ => String::new(),
    };
    let tags = |id: &str| -> BTreeSet<String> {
        engine
            .item(id)
            .map(|i| {
                i.tags
                    .iter()
                    .flat_map(|(f, vs)| vs.iter().map(move |v| format!("{f}:{v}")))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut systems: Vec<(String, Variant)> = vec![
        ("served".into(), Box::new(|r| r)),
        ("artist cap 1".into(), Box::new(|r: Request| r.group_cap("artist", 1))),
        ("artist cap 2".into(), Box::new(|r: Request| r.group_cap("artist", 2))),
    ];
    for &l in &args.lambdas {
        systems.push((format!("mmr λ={l}"), Box::new(move |r: Request| r.mmr(l))));
    }
    if let Some(&l) = args.lambdas.first() {
        systems.push((
            format!("mmr λ={l} + artist cap 1"),
            Box::new(move |r: Request| r.mmr(l).group_cap("artist", 1)),
        ));
    }
    println!(
        "{:<28} {:>8} {:>10} {:>8} {:>9}",
        "system", "NDCG@10", "Recall@10", "artists", "ILD@10"
    );
    for (name, control) in &systems {
        let (mut mean, mut artists, mut ild) = (MetricsMean::default(), 0.0, 0.0);
        for t in &p.test {
            let recs = engine.recommend(&control(t.request.clone().k(10)))?;
            let ids: Vec<String> = recs.items.iter().map(|r| r.id.clone()).collect();
            mean.add(Metrics::at_k(&ids, &t.relevant, 10));
            artists += ids.iter().map(|id| artist(id)).collect::<BTreeSet<_>>().len() as f64;
            let sets: Vec<BTreeSet<String>> = ids.iter().map(|id| tags(id)).collect();
            let (mut sum, mut pairs) = (0.0, 0usize);
            for a in 0..sets.len() {
                for b in a + 1..sets.len() {
                    let union = sets[a].union(&sets[b]).count();
                    let inter = sets[a].intersection(&sets[b]).count();
                    sum += if union == 0 { 0.0 } else { 1.0 - inter as f64 / union as f64 };
                    pairs += 1;
                }
            }
            ild += if pairs == 0 { 0.0 } else { sum / pairs as f64 };
        }
        let n = p.test.len().max(1) as f64;
        let m = mean.mean();
        println!(
            "{name:<28} {:>8.4} {:>10.4} {:>8.2} {:>9.4}",
            m.ndcg,
            m.recall,
            artists / n,
            ild / n
        );
    }
    Ok(())
}
