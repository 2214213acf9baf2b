//! Checks log artefacts written by another producer (the Spark job in
//! `spark/`) against the ones this crate computes in process from the same
//! log, then builds an index from each and compares them: exits non-zero on
//! any difference. `scripts/spark_equivalence.sh` runs it.
//!
//! ```text
//! cargo run --release --features parquet --example check_artefacts -- \
//!     --items data/music/items.jsonl --events events.parquet \
//!     --artefacts target/spark-artefacts --work target/check [--no-build]
//! ```
//!
//! The builds compare the index's item store byte for byte (popularity,
//! co-visitation lists, linear weights, learned vectors), its query–category
//! model byte for byte, and, for every
//! item, what the co-visitation retriever and the popularity retriever
//! serve alone for a listening request.

#[path = "common/log_source.rs"]
mod log_source;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use twostage::{Context, Engine, LogArtefacts, Request, Retriever};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    log: log_source::LogSource,
    /// The other producer's artefacts directory.
    #[arg(long)]
    artefacts: PathBuf,
    /// Scratch directory for the two indexes (replaced).
    #[arg(long)]
    work: PathBuf,
    /// Compare the artefacts only, without building the two indexes.
    #[arg(long)]
    no_build: bool,
}

fn served(engine: &Engine, item: &str, only: Retriever) -> Result<Vec<String>> {
    let request = Retriever::ALL
        .into_iter()
        .filter(|&r| r != only)
        .fold(Request::new(Context::listening(item)).k(20), |r, off| r.candidates(off, 0));
    Ok(engine.recommend(&request)?.items.into_iter().map(|r| r.id).collect())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (catalog, events) = args.log.load()?;
    let builder = args.log.builder();
    let clock = Instant::now();
    let ours = builder.log_artefacts(&catalog, &events)?;
    let computed = clock.elapsed();
    let theirs = LogArtefacts::from_parquet(&args.artefacts, &catalog).with_context(|| format!("reading {}", args.artefacts.display()))?;
    let s = ours.summary();
    println!(
        "artefacts: {} events, {} sessions, {} items, co-occurrence partners kept: {} (in process: {:.1} s)",
        s.events,
        s.sessions,
        s.items,
        s.cooccurrence_kept.map_or("all".to_string(), |k| k.to_string()),
        computed.as_secs_f64()
    );
    if let Some(requests) = ours.training_window_sizes() {
        println!("training windows: {} with logged requests {requests:?}", requests.len());
    }
    let differences = ours.differences(&theirs, 20);
    for d in &differences {
        println!("DIFFERENT {d}");
    }
    if !differences.is_empty() {
        bail!("the artefacts differ (first {} differences above)", differences.len());
    }
    println!(
        "artefacts: equal (popularity, pair counts per distance, co-occurrence, searches, summary{})",
        if args.log.training_windows.is_some() {
            "; training windows and their logged requests"
        } else {
            ""
        }
    );
    if args.no_build {
        return Ok(());
    }

    let (from_log, from_theirs) = (args.work.join("from-log"), args.work.join("from-artefacts"));
    // The indexes are compared without training: the ANN graph's parallel
    // build makes trained rankers differ a little either way.
    let builder = builder.without_ranker_training();
    builder.build(&catalog, &events, &from_log)?;
    builder.build_from_artefacts(&catalog, &theirs, &from_theirs)?;
    let store = |dir: &Path| std::fs::read(dir.join("items.bin")).with_context(|| dir.display().to_string());
    if store(&from_log)? != store(&from_theirs)? {
        bail!("items.bin differs between the index built from the log and the one built from the artefacts");
    }
    let model = |dir: &Path| std::fs::read(dir.join("query_categories.bin")).with_context(|| dir.display().to_string());
    if model(&from_log)? != model(&from_theirs)? {
        bail!("query_categories.bin differs between the index built from the log and the one built from the artefacts");
    }
    let (a, b) = (Engine::open(&from_log)?, Engine::open(&from_theirs)?);
    let mut lists = 0;
    for item in catalog.items() {
        for only in [Retriever::Covisit, Retriever::Popular] {
            let (x, y) = (served(&a, &item.id, only)?, served(&b, &item.id, only)?);
            if x != y {
                bail!("{only:?} alone, listening to {}: {x:?} against {y:?}", item.id);
            }
            lists += usize::from(!x.is_empty());
        }
    }
    println!("indexes: items.bin and query_categories.bin equal; {lists} non-empty co-visitation and popularity lists served equal");
    Ok(())
}
