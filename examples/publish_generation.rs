//! Publishes an index directory as a new generation in an object store,
//! for replicas that follow it (`serve --index URL`; feature `generations`).
//!
//! ```text
//! cargo run --release --features generations --example publish_generation -- \
//!     --index target/music-index --to file:///srv/indexes/music
//! AWS_ENDPOINT=... AWS_REGION=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
//!     cargo run --release --features generations --example publish_generation -- \
//!     --index target/music-index --to s3://bucket/indexes/music
//! ```
//!
//! The index is verified before anything is uploaded; the store's `LATEST`
//! pointer moves only after every file is stored.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use twostage::GenerationStore;

#[derive(Parser)]
struct Args {
    /// The index directory to publish.
    #[arg(long)]
    index: PathBuf,
    /// The store's URL (`file:///...`, `s3://bucket/prefix`); S3 settings come from `AWS_*` variables.
    #[arg(long)]
    to: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let store = GenerationStore::open(&args.to)?;
    let started = std::time::Instant::now();
    let g = store.publish(&args.index).await?;
    println!(
        "published {} as generation {} ({} files, {} bytes) to {} in {:.1} s",
        args.index.display(),
        g.id,
        g.files,
        g.bytes,
        store.url(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
