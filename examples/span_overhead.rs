//! What the library's tracing spans cost: recommend latency with no
//! subscriber, and with a `tracing-subscriber` fmt subscriber (writing to a
//! sink) at INFO (the `recommend` span) and at DEBUG (also every stage).
//!
//! ```text
//! cargo run --release --example span_overhead -- --index target/quickstart-index --mode none|info|debug
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use twostage::{Context, Engine, Request};

/// Measure recommend latency under a tracing subscriber.
#[derive(Parser)]
struct Args {
    /// Index directory (the demo music index: ids trk-00001..trk-06000).
    #[arg(long)]
    index: PathBuf,
    /// Subscriber: none, info or debug.
    #[arg(long, value_parser = ["none", "info", "debug"], default_value = "none")]
    mode: String,
    /// Timed calls (after a tenth as many warm-up calls).
    #[arg(long, default_value_t = 20_000)]
    calls: usize,
}

/// Mean and p99 latency in microseconds of "listening" requests for `ids`.
fn run(engine: &Engine, ids: &[String]) -> Result<(f64, f64)> {
    let mut lat = Vec::with_capacity(ids.len());
    for id in ids {
        let t = Instant::now();
        let recs = engine.recommend(&Request::new(Context::listening(id.clone())).k(10))?;
        std::hint::black_box(recs);
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let mean = lat.iter().sum::<f64>() / lat.len().max(1) as f64;
    Ok((mean, lat.get(lat.len() * 99 / 100).copied().unwrap_or(0.0)))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let engine = Engine::open(&args.index)?;
    let ids: Vec<String> = (0..args.calls).map(|i| format!("trk-{:05}", (i * 37) % 6000 + 1)).collect();
    let level = match args.mode.as_str() {
        "info" => Some(tracing::Level::INFO),
        "debug" => Some(tracing::Level::DEBUG),
        _ => None,
    };
    if let Some(level) = level {
        tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::sink).init();
    }
    run(&engine, &ids[..ids.len() / 10])?;
    let (mean, p99) = run(&engine, &ids)?;
    println!("{}: mean {mean:.1} µs, p99 {p99:.1} µs over {} calls", args.mode, ids.len());
    Ok(())
}
