//! ANN recall@10 under range filters of falling selectivity, against exact
//! search with the same filter, on the synthetic music catalog: the served
//! search (the graph walk, or an exact scan of the items inside a selective
//! range), and the graph walk alone for comparison; with their latencies.
//!
//! ```text
//! cargo run --release --features harness --example bench_filters -- --size 1000000
//! cargo run --release --features harness --example bench_filters -- --size 100000 --requests 100
//! ```
//!
//! Each filter bounds `year` from below and `duration_s` from above at
//! quantiles chosen so that, the two being drawn independently, about the
//! target share of items passes both; the share that actually passes is
//! reported beside it. The data and the index (no trained ranker: ANN
//! recall does not depend on it) are kept in `--work-dir` and reused.

#[path = "common/music_index.rs"]
mod music_index;
#[path = "common/report.rs"]
mod report;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use serde_json::json;
use twostage::{AnnSearch, Attribute, Catalog, Context, Engine, RangeFilter, Request, Retriever};

/// Filtered ANN recall benchmark.
#[derive(Parser)]
struct Args {
    /// Catalog size (tracks).
    #[arg(long, default_value_t = 1_000_000)]
    size: usize,
    /// Listening requests per selectivity.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Target selectivities (shares of the catalog that pass), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.05,0.005,0.0005")]
    selectivities: Vec<f64>,
    /// Where the generated data and the index are kept (and reused; the
    /// default, target/bench/music-SIZE, is shared with bench_budget).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Print one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = args.work_dir.clone().unwrap_or_else(|| music_index::default_dir(args.size));
    let index = music_index::music_index(args.size, &dir)?;
    let engine = Engine::open(&index)?;
    let n = engine.len();
    let catalog = Catalog::from_jsonl_path(dir.join("items.jsonl"))?;
    let number = |item: &twostage::Item, attr: &str| match item.attributes.get(attr) {
        Some(Attribute::Number(v)) => Some(*v),
        _ => None,
    };
    let sorted = |attr: &str| {
        let mut v: Vec<f64> = catalog.items().iter().filter_map(|i| number(i, attr)).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (years, durations) = (sorted("year"), sorted("duration_s"));
    let quantile = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize];
    // Requests: listening on items spread evenly over the catalog.
    let step = (n / args.requests.max(1)).max(1);
    let contexts: Vec<String> = catalog
        .items()
        .iter()
        .step_by(step)
        .take(args.requests)
        .map(|i| i.id.clone())
        .collect();

    eprintln!(
        "{:>9} {:>9} {:>14} {:>11} {:>12} {:>11} {:>12} {:>12}",
        "target", "passes", "requests", "served r@10", "served p50ms", "walk r@10", "walk p50ms", "exact p50ms"
    );
    let mut rows = Vec::new();
    for &s in &args.selectivities {
        // Independent bounds, each passing √s.
        let share = s.sqrt();
        let (min_year, max_duration) = (quantile(&years, 1.0 - share), quantile(&durations, share));
        let passes = catalog
            .items()
            .iter()
            .filter(|i| number(i, "year").is_some_and(|y| y >= min_year) && number(i, "duration_s").is_some_and(|d| d <= max_duration))
            .count();
        let request = |id: &str| {
            let mut r = Request::new(Context::listening(id))
                .range(RangeFilter::new("year").gte(min_year))
                .range(RangeFilter::new("duration_s").lte(max_duration));
            for other in Retriever::ALL {
                r = r.candidates(other, 0);
            }
            r.candidates(Retriever::Ann, 10)
        };
        let (mut recall_served, mut recall_walk, mut asked) = (0.0, 0.0, 0usize);
        let (mut ms_served, mut ms_walk, mut ms_exact) = (Vec::new(), Vec::new(), Vec::new());
        for id in &contexts {
            let (_, trace) = engine.trace(&request(id))?;
            let timed = |how: AnnSearch, into: &mut Vec<f64>| -> Result<Vec<String>> {
                let t = Instant::now();
                let hits = engine.ann_hits(&trace, 10, how)?;
                into.push(t.elapsed().as_secs_f64() * 1e3);
                Ok(hits)
            };
            let exact = timed(AnnSearch::Exact, &mut ms_exact)?;
            if exact.is_empty() {
                continue; // an item without a vector, or nothing passes
            }
            let served = timed(AnnSearch::Served, &mut ms_served)?;
            let walk = timed(AnnSearch::Walk, &mut ms_walk)?;
            let found = |got: &[String]| got.iter().filter(|g| exact.contains(g)).count() as f64 / exact.len() as f64;
            recall_served += found(&served);
            recall_walk += found(&walk);
            asked += 1;
        }
        let asked_f = asked.max(1) as f64;
        let row = json!({
            "target": s,
            "passes": passes as f64 / n as f64,
            "passing_items": passes,
            "requests": asked,
            "served_recall@10": recall_served / asked_f,
            "walk_recall@10": recall_walk / asked_f,
            "served_p50_ms": report::percentile(&ms_served, 50.0),
            "served_p99_ms": report::percentile(&ms_served, 99.0),
            "walk_p50_ms": report::percentile(&ms_walk, 50.0),
            "walk_p99_ms": report::percentile(&ms_walk, 99.0),
            "exact_p50_ms": report::percentile(&ms_exact, 50.0),
        });
        eprintln!(
            "{:>8.3}% {:>8.3}% {:>14} {:>11.4} {:>12.3} {:>11.4} {:>12.3} {:>12.3}",
            s * 100.0,
            passes as f64 / n as f64 * 100.0,
            asked,
            row["served_recall@10"].as_f64().unwrap_or(0.0),
            row["served_p50_ms"].as_f64().unwrap_or(0.0),
            row["walk_recall@10"].as_f64().unwrap_or(0.0),
            row["walk_p50_ms"].as_f64().unwrap_or(0.0),
            row["exact_p50_ms"].as_f64().unwrap_or(0.0),
        );
        rows.push(row);
    }
    if args.json {
        report::write_json(None, &json!({"size": n, "cpu": report::cpu_model(), "filters": rows}))?;
    }
    Ok(())
}
