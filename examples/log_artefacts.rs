//! Computes the log artefacts of an event log in process and writes them as
//! Parquet: the in-process counterpart of the Spark job in `spark/`
//! (docs/artefacts.md), and the in-process side of the artefact benchmark
//! (BENCHMARKS.md, "Log artefacts: in process or on Spark").
//!
//! ```text
//! cargo run --release --features parquet --example log_artefacts -- \
//!     --items data/music/items.jsonl --events data/music/events.jsonl --out target/artefacts \
//!     [--training-windows 3]
//! ```

#[path = "common/log_source.rs"]
mod log_source;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    log: log_source::LogSource,
    /// Directory to write the artefacts into.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let clock = Instant::now();
    let (catalog, events) = args.log.load()?;
    let loaded = clock.elapsed();
    let builder = args.log.builder();
    let clock = Instant::now();
    let artefacts = builder.log_artefacts(&catalog, &events)?;
    let computed = clock.elapsed();
    let clock = Instant::now();
    artefacts.write_parquet(&args.out)?;
    let s = artefacts.summary();
    println!(
        "log_artefacts: {} events, {} sessions, {} items -> {} (load {:.1} s, compute {:.1} s, write {:.1} s)",
        s.events,
        s.sessions,
        s.items,
        args.out.display(),
        loaded.as_secs_f64(),
        computed.as_secs_f64(),
        clock.elapsed().as_secs_f64()
    );
    if let Some(requests) = artefacts.training_window_sizes() {
        println!("log_artefacts: training windows with logged requests {requests:?}");
    }
    Ok(())
}
