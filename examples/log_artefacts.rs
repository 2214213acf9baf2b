//! Computes the log artefacts of an event log in process and writes them as
//! Parquet: the in-process counterpart of the Spark job in `spark/`
//! (docs/artefacts.md), and the in-process side of the artefact benchmark
//! (BENCHMARKS.md, "Log artefacts: in process or on Spark").
//!
//! ```text
//! cargo run --release --features parquet --example log_artefacts -- \
//!     --items data/music/items.jsonl --events data/music/events.jsonl --out target/artefacts
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use twostage::{Catalog, Events, IndexBuilder, LinearParams};

#[derive(Parser)]
struct Args {
    /// Catalog, one item per line.
    #[arg(long)]
    items: PathBuf,
    /// Event log (`.parquet`, else JSON Lines).
    #[arg(long)]
    events: PathBuf,
    /// Directory to write the artefacts into.
    #[arg(long)]
    out: PathBuf,
    /// Largest catalog the linear model fits exactly (every co-occurrence partner kept up to it).
    #[arg(long, default_value_t = LinearParams::default().max_dense_items)]
    max_dense_items: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let clock = Instant::now();
    let catalog = Catalog::from_jsonl_path(&args.items)?;
    let events = if args.events.extension().is_some_and(|e| e == "parquet") {
        Events::from_parquet_path(&args.events, &catalog)?
    } else {
        Events::from_jsonl_path(&args.events, &catalog)?
    };
    let loaded = clock.elapsed();
    let builder = IndexBuilder::new()
        .without_ranker_training()
        .linear(LinearParams::default().max_dense_items(args.max_dense_items));
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
    Ok(())
}
