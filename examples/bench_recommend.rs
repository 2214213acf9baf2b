//! End-to-end `Engine::recommend` latency per stage and in total, for each
//! context type, on synthetic music catalogs of several sizes; single thread
//! and as a rayon batch over all cores; index build time and memory.
//!
//! ```text
//! cargo run --release --features harness --example bench_recommend -- --sizes 10000,100000
//! cargo run --release --features harness --example bench_recommend -- --sizes 1000000 --requests 200
//! cargo run --release --features harness --example bench_recommend -- --json > recommend.json
//! cargo run --release --features harness --example bench_recommend -- --sizes 10000 --model models/all-MiniLM-L6-v2
//! ```
//!
//! Data comes from `twostage::synth::music` (`MusicConfig::scaled(n)`),
//! written to a temporary directory and built with the default builder
//! (200 candidates ranked: the default `rank_depth`). Latencies are
//! wall-clock per request; the machine may be shared, so read medians and
//! compare figures from one run.

#[path = "common/music_index.rs"]
mod music_index;
#[path = "common/report.rs"]
mod report;

use std::io::BufWriter;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Parser;
use serde_json::json;
use twostage::synth::music::{generate_to, MusicConfig};
use twostage::{Catalog, Engine, Events, IndexBuilder, Request};

/// recommend() latency benchmark.
#[derive(Parser)]
struct Args {
    /// Catalog sizes (tracks), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    sizes: Vec<usize>,
    /// Requests per context type.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Candidates ranked per request (`Request::rank_depth`).
    #[arg(long, default_value_t = 200)]
    rank_depth: usize,
    /// Print one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// CSV output path.
    #[arg(long, default_value = "target/bench/recommend.csv")]
    csv: PathBuf,
    /// PNG plot (p50/p99 total latency against catalog size).
    #[arg(long, default_value = "target/bench/recommend.png")]
    png: PathBuf,
    /// Keep generated data and indexes here instead of a temporary directory.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the fixed-weight placeholder ranker instead of training one
    /// (halves the build at large sizes; latency then reflects the linear
    /// placeholder, not the default MLP).
    #[arg(long)]
    no_train: bool,
    /// Sentence-encoder model directory: builds the content space too, and
    /// searches encode their query (its latency is in the `encode` stage).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Query-embedding cache entries. Default 0: every request here repeats
    /// (warm-up, then single, then batch), so a cache would time its hits,
    /// not the encoder.
    #[arg(long, default_value_t = 0)]
    query_cache: usize,
}

const CONTEXTS: [&str; 4] = music_index::KINDS;

/// Latency summary in milliseconds.
#[derive(Clone, Copy)]
struct Summary {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

fn summarize(mut ms: Vec<f64>) -> Summary {
    ms.sort_by(f64::total_cmp);
    Summary {
        p50: report::percentile(&ms, 50.0),
        p95: report::percentile(&ms, 95.0),
        p99: report::percentile(&ms, 99.0),
        max: ms.last().copied().unwrap_or(f64::NAN),
    }
}

/// Requests of one context type, varied over the catalog.
struct SizeResult {
    items: usize,
    events: usize,
    build_s: f64,
    rss_after_open: u64,
    peak_rss: u64,
    index_bytes: u64,
    /// (context, mode, stage, summary)
    rows: Vec<(String, String, String, Summary)>,
    /// (context, single-thread req/s, batch req/s)
    throughput: Vec<(String, f64, f64)>,
    candidates_mean: f64,
}

fn run_size(args: &Args, size: usize, root: &std::path::Path) -> Result<SizeResult> {
    let dir = root.join(format!("music-{size}"));
    std::fs::create_dir_all(&dir)?;
    let t = Instant::now();
    let cfg = MusicConfig::scaled(size);
    {
        let mut items = BufWriter::new(std::fs::File::create(dir.join("items.jsonl"))?);
        let mut events = BufWriter::new(std::fs::File::create(dir.join("events.jsonl"))?);
        let mut queries = BufWriter::new(std::fs::File::create(dir.join("queries.jsonl"))?);
        generate_to(&cfg, &mut items, &mut events, &mut queries)?;
    }
    eprintln!("[{size}] generated in {:.1} s", t.elapsed().as_secs_f64());
    let catalog = Catalog::from_jsonl_path(dir.join("items.jsonl"))?;
    let events = Events::from_jsonl_path(dir.join("events.jsonl"), &catalog)?;
    let t = Instant::now();
    let builder = IndexBuilder::new().group_key("artist");
    let builder = if args.no_train {
        builder.without_ranker_training()
    } else {
        builder
    };
    let encoder = args.model.as_ref().map(twostage::Encoder::load).transpose()?;
    let builder = match &encoder {
        Some(e) => builder.encoder(e.clone()),
        None => builder,
    };
    let report = builder.build(&catalog, &events, dir.join("index"))?;
    let build_s = t.elapsed().as_secs_f64();
    let phases: Vec<String> = report.phases.iter().map(|(n, d)| format!("{n} {:.1}s", d.as_secs_f64())).collect();
    eprintln!(
        "[{size}] index built in {build_s:.1} s ({}), {:.1} MB",
        phases.join(", "),
        report.bytes as f64 / 1e6
    );
    let ids: Vec<String> = catalog.items().iter().map(|i| i.id.clone()).collect();
    let n_events = events.len();
    drop(catalog);
    drop(events);

    let engine = Engine::open_with_encoder(dir.join("index"), encoder.as_ref())?.with_query_cache(args.query_cache);
    let rss_after_open = report::rss_bytes().unwrap_or(0);
    // Search texts: the generator's graded queries.
    let texts = music_index::queries(&dir)?;
    let texts = if texts.is_empty() { vec!["indie folk".to_string()] } else { texts };

    let mut rows = Vec::new();
    let mut throughput = Vec::new();
    let mut cand_sum = 0usize;
    let mut cand_n = 0usize;
    for kind in CONTEXTS {
        let reqs: Vec<Request> = music_index::requests(kind, &ids, &texts, args.requests)
            .into_iter()
            .map(|r| r.rank_depth(args.rank_depth))
            .collect();
        // Warm-up (caches, lazy statics, the rayon pool).
        for r in reqs.iter().take(20) {
            engine.recommend(r)?;
        }
        let t = Instant::now();
        let mut timings = Vec::with_capacity(reqs.len());
        for r in &reqs {
            let recs = engine.recommend(r)?;
            cand_sum += recs.candidates;
            cand_n += 1;
            timings.push(recs.timings);
        }
        let single_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let batch = engine.recommend_batch(&reqs);
        let batch_s = t.elapsed().as_secs_f64();
        let batch: Vec<_> = batch.into_iter().collect::<Result<Vec<_>, _>>()?;
        throughput.push((kind.to_string(), reqs.len() as f64 / single_s, reqs.len() as f64 / batch_s));

        for (mode, ts) in [
            ("single", timings.iter().collect::<Vec<_>>()),
            ("batch", batch.iter().map(|r| &r.timings).collect()),
        ] {
            let names = ts.first().map(|t| t.stages().map(|(n, _)| n)).unwrap_or_default();
            for (si, name) in names.iter().enumerate() {
                let ms: Vec<f64> = ts.iter().map(|t| ms(t.stages()[si].1)).collect();
                rows.push((kind.to_string(), mode.to_string(), name.to_string(), summarize(ms)));
            }
        }
    }
    Ok(SizeResult {
        items: ids.len(),
        events: n_events,
        build_s,
        rss_after_open,
        peak_rss: report::peak_rss_bytes().unwrap_or(0),
        index_bytes: report.bytes,
        rows,
        throughput,
        candidates_mean: cand_sum as f64 / cand_n.max(1) as f64,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let root = args.work_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let cores = rayon::current_num_threads();
    eprintln!(
        "{} on {cores} cores; {} requests per context; rank_depth {}",
        report::cpu_model(),
        args.requests,
        args.rank_depth
    );

    let mut results = Vec::new();
    for &size in &args.sizes {
        let r = run_size(&args, size, &root).with_context(|| format!("catalog size {size}"))?;
        results.push(r);
        // Free the last size's files before the next (1M items is large).
        std::fs::remove_dir_all(root.join(format!("music-{size}"))).ok();
    }

    let mut table =
        String::from("\n| items | context | mode | stage | p50 ms | p95 ms | p99 ms | max ms |\n|---:|---|---|---|---:|---:|---:|---:|\n");
    for r in &results {
        for (ctx, mode, stage, s) in &r.rows {
            if stage == "total" || mode == "single" {
                table += &format!(
                    "| {} | {ctx} | {mode} | {stage} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
                    r.items, s.p50, s.p95, s.p99, s.max
                );
            }
        }
    }
    table +=
        &format!("\n| items | context | single-thread req/s | batch req/s ({cores} threads) | speed-up |\n|---:|---|---:|---:|---:|\n");
    for r in &results {
        for (ctx, single, batch) in &r.throughput {
            table += &format!("| {} | {ctx} | {single:.0} | {batch:.0} | {:.2}x |\n", r.items, batch / single);
        }
    }
    table += "\n| items | events | build s | index MB | RSS after open (B/item) | peak RSS (B/item) | mean candidates |\n|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in &results {
        table += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} |\n",
            r.items,
            r.events,
            r.build_s,
            r.index_bytes as f64 / 1e6,
            r.rss_after_open as f64 / r.items.max(1) as f64,
            r.peak_rss as f64 / r.items.max(1) as f64,
            r.candidates_mean
        );
    }

    if let Some(d) = args.csv.parent() {
        std::fs::create_dir_all(d).ok();
    }
    let csv_rows: Vec<Vec<String>> = results
        .iter()
        .flat_map(|r| {
            r.rows.iter().map(move |(ctx, mode, stage, s)| {
                vec![
                    r.items.to_string(),
                    ctx.clone(),
                    mode.clone(),
                    stage.clone(),
                    format!("{:.4}", s.p50),
                    format!("{:.4}", s.p95),
                    format!("{:.4}", s.p99),
                    format!("{:.4}", s.max),
                ]
            })
        })
        .collect();
    report::write_csv(
        &args.csv,
        &["items", "context", "mode", "stage", "p50_ms", "p95_ms", "p99_ms", "max_ms"],
        &csv_rows,
    )?;

    if let Some(d) = args.png.parent() {
        std::fs::create_dir_all(d).ok();
    }
    let mut series = Vec::new();
    for ctx in CONTEXTS {
        for (label, pick) in [("p50", 0usize), ("p99", 1)] {
            let points = results
                .iter()
                .filter_map(|r| {
                    r.rows
                        .iter()
                        .find(|(c, m, s, _)| c == ctx && m == "single" && s == "total")
                        .map(|(_, _, _, s)| ((r.items as f64).log10(), if pick == 0 { s.p50 } else { s.p99 }))
                })
                .collect();
            series.push(report::Series {
                name: format!("{ctx} {label}"),
                points,
            });
        }
    }
    report::plot_lines(
        &args.png,
        "recommend() total latency, 1 thread",
        "log10(catalog items)",
        "ms",
        &series,
        true,
    )?;

    if args.json {
        eprint!("{table}");
        let value = json!({
            "cpu": report::cpu_model(),
            "threads": cores,
            "requests_per_context": args.requests,
            "rank_depth": args.rank_depth,
            "sizes": results.iter().map(|r| json!({
                "items": r.items,
                "events": r.events,
                "build_s": r.build_s,
                "index_bytes": r.index_bytes,
                "rss_after_open_bytes_per_item": r.rss_after_open as f64 / r.items.max(1) as f64,
                "peak_rss_bytes_per_item": r.peak_rss as f64 / r.items.max(1) as f64,
                "mean_candidates": r.candidates_mean,
                "throughput": r.throughput.iter().map(|(c, s, b)| json!({"context": c, "single_rps": s, "batch_rps": b})).collect::<Vec<_>>(),
                "latency_ms": r.rows.iter().map(|(c, m, st, s)| json!({
                    "context": c, "mode": m, "stage": st, "p50": s.p50, "p95": s.p95, "p99": s.p99, "max": s.max
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        report::write_json(None, &value)?;
    } else {
        print!("{table}");
        println!("wrote {} and {}", args.csv.display(), args.png.display());
    }
    Ok(())
}
