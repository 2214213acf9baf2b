//! Compares popularity, ItemKNN, each retriever alone, fused retrieval and
//! fused retrieval + rankers on held-out interactions.
//!
//! ```text
//! cargo run --release --features harness --example evaluate -- --dataset music [--json]
//! cargo run --release --features harness --example evaluate -- --dataset movielens --path data/movielens/ml-100k [--json]
//! cargo run --release --features harness --example evaluate -- --dataset music --model models/all-MiniLM-L6-v2
//! ```
//!
//! With `--model`, items also get a content space from that sentence encoder
//! (a `content` retriever and content features for the rankers). The second
//! table scores the cold requests alone: those whose answer had fewer than 5
//! plays in training; compare it with and without `--model`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use twostage::eval::{compare, splits};
use twostage::movielens::MovieLens;
use twostage::{Catalog, CovisitParams, Events, IndexBuilder, TrainParams};

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
    /// Inactivity that ends a session, in seconds (default: 1800 for music;
    /// for MovieLens a user's whole profile is one "session").
    #[arg(long)]
    session_gap_secs: Option<u64>,
    /// Co-occurrence window in items (default: 5 for music, 50 for MovieLens).
    #[arg(long)]
    window: Option<usize>,
    /// Seed of the ranker's training (initial weights, sampling, shuffling).
    /// The ensemble's five members take seeds N to N + 4, so seeds closer
    /// than 5 apart share members: compare seeds like 42, 100, 200.
    #[arg(long, default_value_t = 42)]
    ranker_seed: u64,
    /// Sentence-encoder model directory: adds the content space.
    #[arg(long)]
    model: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (prepared, builder, gap, window) = match args.dataset {
        Dataset::Music => {
            let dir = args.path.unwrap_or_else(|| PathBuf::from("data/music"));
            let catalog = Catalog::from_jsonl_path(dir.join("items.jsonl"))?;
            let events = Events::from_jsonl_path(dir.join("events.jsonl"), &catalog)?;
            (
                splits::temporal("music", &catalog, &events)?,
                IndexBuilder::new().group_key("artist"),
                1800,
                5,
            )
        }
        Dataset::Movielens => {
            let Some(dir) = args.path else {
                bail!("--dataset movielens needs --path DIR (see scripts/fetch_movielens.sh)")
            };
            let ml = MovieLens::load(&dir)?;
            // Ratings are not listening sessions: co-occurrence over a user's whole profile.
            (splits::movielens(&ml, args.seed)?, IndexBuilder::new(), 100 * 365 * 24 * 3600, 50)
        }
    };
    let builder = match &args.model {
        Some(dir) => builder.encoder(twostage::Encoder::load(dir)?),
        None => builder,
    };
    let builder = builder
        .ranker(TrainParams::default().seed(args.ranker_seed))
        .session_gap(std::time::Duration::from_secs(args.session_gap_secs.unwrap_or(gap)))
        .covisit(CovisitParams::default().window(args.window.unwrap_or(window)));
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
