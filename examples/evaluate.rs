//! Compares popularity, ItemKNN, each retriever alone, fused retrieval and
//! fused retrieval + rankers on held-out interactions.
//!
//! ```text
//! cargo run --release --example evaluate -- --dataset music [--json]
//! cargo run --release --example evaluate -- --dataset movielens --path data/movielens/ml-100k [--json]
//! ```

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use twostage::eval::{compare, splits};
use twostage::movielens::MovieLens;
use twostage::{Catalog, Events, IndexBuilder};

#[derive(Clone, Copy, ValueEnum)]
enum Dataset {
    /// data/music: time-ordered next-track prediction.
    Music,
    /// MovieLens (RecBole protocol); fetch with scripts/fetch_movielens.sh.
    Movielens,
}

/// Offline evaluation of twostage against baselines.
#[derive(Parser)]
struct Args {
    /// Which dataset.
    #[arg(long, value_enum)]
    dataset: Dataset,
    /// Data directory (default data/music; required for movielens).
    #[arg(long)]
    path: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Seed of the MovieLens split.
    #[arg(long, default_value_t = 2020)]
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (prepared, builder) = match args.dataset {
        Dataset::Music => {
            let dir = args.path.unwrap_or_else(|| PathBuf::from("data/music"));
            let catalog = Catalog::from_jsonl_path(dir.join("items.jsonl"))?;
            let events = Events::from_jsonl_path(dir.join("events.jsonl"), &catalog)?;
            (splits::temporal("music", &catalog, &events)?, IndexBuilder::new().group_key("artist"))
        }
        Dataset::Movielens => {
            let Some(dir) = args.path else { bail!("--dataset movielens needs --path DIR (see scripts/fetch_movielens.sh)") };
            let ml = MovieLens::load(&dir)?;
            (splits::movielens(&ml, args.seed)?, IndexBuilder::new())
        }
    };
    let work = tempfile::tempdir()?;
    let quiet = args.json;
    let report = compare(&prepared, &builder, work.path(), &mut |msg| {
        if !quiet {
            eprintln!("… {msg}");
        }
    })?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
        for (k, v) in &report.details {
            println!("  {k}: {v:.4}");
        }
    }
    Ok(())
}
