//! Builds an index directory from a catalog and an events file.
//!
//! ```text
//! cargo run --release --example build_index -- --items data/music/items.jsonl \
//!     --events data/music/events.jsonl --out target/music-index [--group-key artist] \
//!     [--model models/all-MiniLM-L6-v2]
//! ```
//!
//! With `--model`, item text is embedded by that sentence encoder into a
//! content space (`scripts/fetch_minilm.sh` fetches all-MiniLM-L6-v2).

#[path = "support/progress.rs"]
mod progress;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Parser;
use twostage::{AnnParams, Catalog, EmbeddingParams, Events, IndexBuilder, LoadOptions, LongText, Schema, Typing, Vectors};

/// Build a twostage index from JSON Lines files.
#[derive(Parser)]
struct Args {
    /// Catalog, one item per line.
    #[arg(long)]
    items: PathBuf,
    /// Interaction log, one event per line.
    #[arg(long)]
    events: PathBuf,
    /// Index directory to write (replaced atomically if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Text attribute whose equal values form a group (e.g. artist).
    #[arg(long)]
    group_key: Option<String>,
    /// Dimension of learned embeddings.
    #[arg(long, default_value_t = EmbeddingParams::default().dim)]
    dim: usize,
    /// HNSW M.
    #[arg(long, default_value_t = AnnParams::default().m)]
    m: usize,
    /// HNSW ef_construction.
    #[arg(long, default_value_t = AnnParams::default().ef_construction)]
    ef_construction: usize,
    /// Sentence-encoder model directory: adds a content space.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A schema (JSON, the shape of the report's "schema") to use instead of
    /// the inferred one: which fields are searched with what boost, the tag
    /// fields, the group key.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Where ANN vectors come from: auto (the catalog's when every item has
    /// one, learned from the events when none has; a partial catalog is
    /// refused), learned, or catalog-with-fallback (an item without one takes
    /// the mean vector of its group and tags).
    #[arg(long, default_value = "auto", value_parser = ["auto", "learned", "catalog-with-fallback"])]
    vectors: String,
    /// Convert values of another type than their field's where the meaning
    /// is clear ("1950" for a number, a string for a list of tags) instead
    /// of refusing the catalog.
    #[arg(long)]
    coerce_types: bool,
    /// Cut text values longer than this many bytes (at a whitespace) instead
    /// of refusing the catalog; the report counts them.
    #[arg(long)]
    truncate_text: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let long_text = match args.truncate_text {
        Some(max_bytes) => LongText::Truncate { max_bytes },
        None => LongText::Refuse,
    };
    let typing = if args.coerce_types { Typing::Coerce } else { Typing::Strict };
    let catalog = Catalog::from_jsonl_path_with(&args.items, LoadOptions::default().long_text(long_text).typing(typing))?;
    let vectors = match args.vectors.as_str() {
        "learned" => Vectors::Learned,
        "catalog-with-fallback" => Vectors::CatalogWithFallback,
        _ => Vectors::Auto,
    };
    let events = Events::from_jsonl_path(&args.events, &catalog)?;
    let mut builder = IndexBuilder::new()
        .embedding(EmbeddingParams::default().dim(args.dim))
        .ann(AnnParams::default().m(args.m).ef_construction(args.ef_construction))
        .vectors(vectors);
    if let Some(path) = &args.schema {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let schema: Schema = serde_json::from_str(&text).with_context(|| format!("{} is not a schema", path.display()))?;
        builder = builder.schema(schema);
    }
    if let Some(g) = args.group_key {
        builder = builder.group_key(g);
    }
    if let Some(dir) = &args.model {
        builder = builder.encoder(twostage::Encoder::load(dir)?);
    }
    // Bars go to stderr (hidden when it is not a terminal); the report to stdout.
    let bars = progress::PhaseBars::default();
    let report = builder.build_with_progress(&catalog, &events, &args.out, &|p| bars.update(p))?;
    bars.finish();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "path": report.path,
            "items": report.stats.items,
            "events": report.stats.events,
            "sessions": report.stats.sessions,
            "vectors": report.stats.vectors,
            "dim": report.stats.dim,
            "vector_source": report.stats.vector_source,
            "build_ms": report.stats.build_ms,
            "bytes": report.bytes,
            "truncated_fields": report.truncated_fields,
            "retrievers": report.retrievers,
            "schema": report.schema,
            "training": report.training,
            "phases_ms": report.phases.iter().map(|(n, d)| (n.to_string(), d.as_secs_f64() * 1e3)).collect::<std::collections::BTreeMap<_, _>>(),
        }))?
    );
    Ok(())
}
