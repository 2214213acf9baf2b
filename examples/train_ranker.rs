//! Retrains the ranker of an existing index from an interaction log and
//! replaces it in place (retrieval is untouched), with a progress bar over
//! epochs showing each epoch's validation NDCG@10.
//!
//! ```text
//! cargo run --release --example train_ranker -- --index target/music-index \
//!     --items data/music/items.jsonl --events data/music/events.jsonl [--linear] [--epochs 30] \
//!     [--model models/all-MiniLM-L6-v2]
//! ```
//!
//! An index built with a sentence encoder needs the same model (`--model`).
//!
//! A service serving the index picks the new ranker up with
//! `EngineHandle::reload` (the serve example: `POST /admin/reload`).

#[path = "support/progress.rs"]
mod progress;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use indicatif::ProgressBar;
use twostage::{Catalog, Events, TrainParams};

/// Retrain an index's ranker in place.
#[derive(Parser)]
struct Args {
    /// Index directory (built from --items).
    #[arg(long)]
    index: PathBuf,
    /// The catalog the index was built from.
    #[arg(long)]
    items: PathBuf,
    /// Interaction log; its most recent part becomes the training lists.
    #[arg(long)]
    events: PathBuf,
    /// A linear model instead of the default MLP.
    #[arg(long)]
    linear: bool,
    /// Largest number of epochs (training stops early on validation NDCG).
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// The sentence-encoder model directory the index was built with, if any.
    #[arg(long)]
    model: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let encoder = args.model.as_ref().map(twostage::Encoder::load).transpose()?;
    let catalog = Catalog::from_jsonl_path(&args.items)?;
    let events = Events::from_jsonl_path(&args.events, &catalog)?;
    let base = if args.linear {
        TrainParams::linear()
    } else {
        TrainParams::default()
    };
    let params = base.max_epochs(args.epochs);

    let bar = ProgressBar::new((params.max_epochs * params.ensemble) as u64)
        .with_style(progress::style())
        .with_prefix("epochs")
        .with_message("preparing lists");
    let mut best = 0.0f64;
    let summary = twostage::retrain_ranker(&args.index, &catalog, &events, encoder.as_ref(), &params, &mut |epoch| {
        if epoch.best {
            best = best.max(epoch.valid_ndcg);
        }
        bar.set_message(format!(
            "loss {:.4}, valid NDCG@10 {:.4} (best {best:.4})",
            epoch.train_loss, epoch.valid_ndcg
        ));
        bar.set_position((epoch.member * params.max_epochs + epoch.epoch) as u64);
    })?;
    bar.finish();
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
