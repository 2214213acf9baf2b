//! Writes the synthetic music dataset (items.jsonl, events.jsonl, queries.jsonl).
//!
//! ```text
//! cargo run --release --features harness --example generate_music_data [-- --out DIR] [--tracks N] [--users N]
//! ```
//!
//! Without `--tracks` this reproduces the shipped `data/music` files byte for
//! byte; with it, the same shape at another size for latency benchmarks.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use twostage::synth::music::{generate_to, MusicConfig};

const USAGE: &str = "\
Usage: generate_music_data [--out DIR] [--tracks N] [--users N]

Writes items.jsonl, events.jsonl and queries.jsonl of a deterministic synthetic
music dataset.

Options:
  --out DIR     output directory (default: data/music)
  --tracks N    catalog size; other sizes scale with it (default: the shipped 6000-track dataset)
  --users N     listeners, each about 49 events (default: scaled with the catalog)
  -h, --help    print this help";

fn main() -> Result<()> {
    let mut out = PathBuf::from("data/music");
    let mut tracks: Option<usize> = None;
    let mut users: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--out" => out = PathBuf::from(args.next().context("--out needs a directory")?),
            "--tracks" => {
                let v = args.next().context("--tracks needs a number")?;
                tracks = Some(v.parse().with_context(|| format!("--tracks: not a number: {v:?}"))?);
            }
            "--users" => {
                let v = args.next().context("--users needs a number")?;
                users = Some(v.parse().with_context(|| format!("--users: not a number: {v:?}"))?);
            }
            other => {
                eprintln!("error: unknown argument {other:?}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let mut cfg = tracks.map_or_else(MusicConfig::default, MusicConfig::scaled);
    if let Some(u) = users {
        cfg.users = u;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let create = |name: &str| -> Result<BufWriter<File>> {
        let path = out.join(name);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    };
    let (mut items, mut events, mut queries) = (create("items.jsonl")?, create("events.jsonl")?, create("queries.jsonl")?);
    let started = std::time::Instant::now();
    generate_to(&cfg, &mut items, &mut events, &mut queries).context("writing dataset")?;
    for w in [&mut items, &mut events, &mut queries] {
        w.flush().context("flushing output")?;
    }

    println!(
        "synthetic music dataset: {} tracks, {} artists, {} users, {} queries, seed {} ({:.1?})",
        cfg.tracks,
        cfg.artists,
        cfg.users,
        cfg.queries,
        cfg.seed,
        started.elapsed()
    );
    for name in ["items.jsonl", "events.jsonl", "queries.jsonl"] {
        let path = out.join(name);
        let bytes = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let lines = count_lines(&path)?;
        println!("  {:<40} {:>9} lines {:>12} bytes", path.display(), lines, bytes);
    }
    Ok(())
}

fn count_lines(path: &std::path::Path) -> Result<usize> {
    use std::io::Read;
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut lines = 0;
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count();
    }
}
