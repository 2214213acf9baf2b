//! The sentence encoder's speed: query-encoding latency (one query at a
//! time, one thread) and item-encoding throughput (the build path, all
//! threads), on the shipped music catalog.
//!
//! ```text
//! scripts/fetch_minilm.sh
//! cargo run --release --example bench_encoder -- [--model models/all-MiniLM-L6-v2] [--json] \
//!     [--items data/manpages/items.jsonl --queries data/manpages/queries.jsonl --limit 2000] [--f32] \
//!     [--dump-texts target/encoder-texts.txt --dump-queries target/encoder-queries.txt \
//!      --dump-vectors target/encoder-vectors.f32]
//! ```
//!
//! `--dump-*` write the exact item texts and queries, one per line, and the
//! texts' vectors, for the peer measurement on the same inputs
//! (`scripts/compare_encoder.sh` runs both and compares the vectors). Single-thread latency is measured in a child process of this
//! example started with `RAYON_NUM_THREADS=1` (candle sizes its thread pools
//! from it when they start), so nothing runs in parallel; throughput runs
//! here with every core.

#[path = "common/report.rs"]
mod report;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Parser;
use serde_json::json;
use twostage::index::content::item_text;
use twostage::{Catalog, Encoder, Schema};

/// Measure the sentence encoder.
#[derive(Parser)]
struct Args {
    /// Model directory (default: $TWOSTAGE_MODEL_DIR or models/all-MiniLM-L6-v2).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Catalog whose item texts are encoded.
    #[arg(long, default_value = "data/music/items.jsonl")]
    items: PathBuf,
    /// Graded queries whose texts are the latency workload.
    #[arg(long, default_value = "data/music/queries.jsonl")]
    queries: PathBuf,
    /// Encode only the first N items of the catalog (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Timed passes over the catalog (throughput) and over the queries (latency).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Threads for the throughput measurement (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the item texts, one per line.
    #[arg(long)]
    dump_texts: Option<PathBuf>,
    /// Write the query texts, one per line.
    #[arg(long)]
    dump_queries: Option<PathBuf>,
    /// Write the item texts' vectors (from the last throughput pass) here:
    /// `f32`, little-endian, texts × dimension, in text order.
    #[arg(long)]
    dump_vectors: Option<PathBuf>,
    /// Load the `f32` path whatever the CPU has (`Encoder::load_f32`).
    #[arg(long)]
    f32: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Measure only query latency, in this process, and print it as JSON
    /// (what the child process does).
    #[arg(long, hide = true)]
    latency_only: bool,
}

/// Query latency in a child process with one thread everywhere.
fn latency_in_child() -> Result<serde_json::Value> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(std::env::args_os().skip(1)).arg("--latency-only");
    let out = cmd.env("RAYON_NUM_THREADS", "1").env("CANDLE_NUM_THREADS", "1").output()?;
    anyhow::ensure!(
        out.status.success(),
        "latency child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let model = args.model.clone().unwrap_or_else(|| twostage::encoder::default_model_dir("."));
    let t = Instant::now();
    let encoder = if args.f32 {
        Encoder::load_f32(&model)
    } else {
        Encoder::load(&model)
    };
    let encoder = encoder.with_context(|| format!("loading {} (run scripts/fetch_minilm.sh)", model.display()))?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    let catalog = Catalog::from_jsonl_path(&args.items)?;
    let schema = Schema::infer(&catalog);
    let take = if args.limit == 0 { usize::MAX } else { args.limit };
    let texts: Vec<String> = catalog.items().iter().take(take).map(|i| item_text(i, &schema)).collect();
    let queries: Vec<String> = std::fs::read_to_string(&args.queries)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| -> Result<String> {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(v["query"].as_str().context("a query line without `query`")?.to_string())
        })
        .collect::<Result<_>>()?;
    for (path, lines) in [(&args.dump_texts, &texts), (&args.dump_queries, &queries)] {
        if let (Some(path), false) = (path, args.latency_only) {
            let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
            for l in lines {
                // One text per line: the peer reads lines.
                writeln!(f, "{}", l.replace(['\n', '\r'], " "))?;
            }
        }
    }
    let tokens: Vec<usize> = texts.iter().map(|t| encoder.token_count(t)).collect::<twostage::Result<_>>()?;
    let query_tokens: Vec<usize> = queries.iter().map(|t| encoder.token_count(t)).collect::<twostage::Result<_>>()?;

    if args.latency_only {
        // One query at a time (this process runs with one thread).
        let mut latencies = Vec::new();
        for q in queries.iter().take(20) {
            encoder.encode(q)?;
        }
        for _ in 0..args.repeats {
            for q in &queries {
                let t = Instant::now();
                std::hint::black_box(encoder.encode(q)?);
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "{}",
            json!({
                "threads": 1,
                "queries": queries.len(),
                "calls": latencies.len(),
                "mean_tokens": query_tokens.iter().sum::<usize>() as f64 / query_tokens.len().max(1) as f64,
                "p50": report::percentile(&latencies, 50.0),
                "p99": report::percentile(&latencies, 99.0),
                "max": latencies.last().copied().unwrap_or(f64::NAN),
            })
        );
        return Ok(());
    }
    let latency = latency_in_child()?;

    // Throughput: the build path on every core.
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let mut rates = Vec::new();
    let vectors = pool.install(|| -> Result<Vec<Vec<f32>>> {
        encoder.encode_batch(&texts[..texts.len().min(256)], &|_| {})?;
        let mut last = Vec::new();
        for _ in 0..args.repeats {
            let t = Instant::now();
            last = std::hint::black_box(encoder.encode_batch(&texts, &|_| {})?);
            rates.push(texts.len() as f64 / t.elapsed().as_secs_f64());
        }
        Ok(last)
    })?;
    if let Some(path) = &args.dump_vectors {
        let bytes: Vec<u8> = vectors.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }

    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
    let out = json!({
        "model": encoder.info(),
        "arithmetic": format!("{:?}", encoder.arithmetic()),
        "load_ms": load_ms,
        "query_latency_ms": latency,
        "item_throughput": {
            "threads": threads,
            "texts": texts.len(),
            "mean_tokens": mean(&tokens),
            "texts_per_s_median": report::median(&rates),
            "runs": rates,
        },
    });
    if args.json {
        println!("{out}");
    } else {
        let q = &out["query_latency_ms"];
        let th = &out["item_throughput"];
        println!(
            "encoder {} ({}, {:?}), loaded in {load_ms:.0} ms",
            encoder.info().name,
            encoder.info().fingerprint,
            encoder.arithmetic()
        );
        println!(
            "query latency, 1 thread: {} queries × {} passes, {:.1} tokens on average: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            queries.len(),
            args.repeats,
            q["mean_tokens"].as_f64().unwrap_or(0.0),
            q["p50"].as_f64().unwrap_or(0.0),
            q["p99"].as_f64().unwrap_or(0.0),
            q["max"].as_f64().unwrap_or(0.0)
        );
        println!(
            "item encoding, {threads} threads: {} texts, {:.1} tokens on average: median {:.0} texts/s over {} passes",
            texts.len(),
            th["mean_tokens"].as_f64().unwrap_or(0.0),
            th["texts_per_s_median"].as_f64().unwrap_or(0.0),
            args.repeats
        );
    }
    Ok(())
}
