//! What `log_artefacts` and `check_artefacts` share: the catalog and the
//! event log (Parquet or JSON Lines) and the builder whose log statistics
//! they compute.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use twostage::{Catalog, Events, IndexBuilder, LinearParams, TrainParams};

/// The log and the parameters the artefacts are computed with.
#[derive(Args)]
pub struct LogSource {
    /// Catalog, one item per line.
    #[arg(long)]
    pub items: PathBuf,
    /// Event log (`.parquet`, else JSON Lines).
    #[arg(long)]
    pub events: PathBuf,
    /// Largest catalog the linear model fits exactly (as LinearParams): up
    /// to it, every co-occurrence partner is kept.
    #[arg(long, default_value_t = LinearParams::default().max_dense_items)]
    pub max_dense_items: usize,
    /// Also compute the ranker's training windows, this many
    /// (`TrainParams::windows`, 1 to 6), as a builder that trains does.
    #[arg(long)]
    pub training_windows: Option<usize>,
    /// Logged requests kept per training window (`TrainParams::max_lists`).
    #[arg(long, default_value_t = TrainParams::default().max_lists)]
    pub max_lists: usize,
}

impl LogSource {
    /// The catalog and its events.
    pub fn load(&self) -> Result<(Catalog, Events)> {
        let catalog = Catalog::from_jsonl_path(&self.items)?;
        let events = if self.events.extension().is_some_and(|e| e == "parquet") {
            Events::from_parquet_path(&self.events, &catalog)?
        } else {
            Events::from_jsonl_path(&self.events, &catalog)?
        };
        Ok((catalog, events))
    }

    /// The builder whose artefacts are computed: with ranker training (and
    /// so with training windows) when `--training-windows` is given.
    pub fn builder(&self) -> IndexBuilder {
        let b = IndexBuilder::new().linear(LinearParams::default().max_dense_items(self.max_dense_items));
        match self.training_windows {
            Some(w) => b.ranker(TrainParams::default().windows(w).max_lists(self.max_lists)),
            None => b.without_ranker_training(),
        }
    }
}
