//! The synthetic music catalog and its index, generated and built once into
//! a work directory and reused by the benchmarks that share it
//! (`bench_filters`, `bench_budget`): the default builder without ranker
//! training (the placeholder ranker scores; training would build the
//! retrieval stage again for every log window). Also the benchmark
//! requests of each context kind, and the generator's search texts.

#![allow(dead_code)] // each benchmark that includes this uses a part of it

use std::io::{BufRead, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use twostage::synth::music::{generate_to, MusicConfig};
use twostage::{Catalog, Context, Events, IndexBuilder, Request};

/// The default work directory for `size` tracks.
pub fn default_dir(size: usize) -> PathBuf {
    PathBuf::from(format!("target/bench/music-{size}"))
}

/// The index of the `size`-track catalog in `dir` (`dir/index`), generated
/// and built there unless a finished one is already there.
pub fn music_index(size: usize, dir: &Path) -> Result<PathBuf> {
    let index = dir.join("index");
    if is_current(&index) {
        return Ok(index);
    }
    std::fs::create_dir_all(dir)?;
    let t = Instant::now();
    {
        let mut items = BufWriter::new(std::fs::File::create(dir.join("items.jsonl"))?);
        let mut events = BufWriter::new(std::fs::File::create(dir.join("events.jsonl"))?);
        let mut queries = BufWriter::new(std::fs::File::create(dir.join("queries.jsonl"))?);
        generate_to(&MusicConfig::scaled(size), &mut items, &mut events, &mut queries)?;
    }
    let catalog = Catalog::from_jsonl_path(dir.join("items.jsonl"))?;
    let events = Events::from_jsonl_path(dir.join("events.jsonl"), &catalog)?;
    IndexBuilder::new()
        .group_key("artist")
        .without_ranker_training()
        .build(&catalog, &events, &index)?;
    eprintln!("[{size}] generated and built in {:.1} s", t.elapsed().as_secs_f64());
    Ok(index)
}

/// Whether `index` holds an index this library reads: one left by an older
/// version (another format) is built again rather than refused at open.
pub fn is_current(index: &Path) -> bool {
    std::fs::read(index.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|m| m.get("format_version")?.as_u64())
        == Some(u64::from(twostage::FORMAT_VERSION))
}

/// The generator's search texts in `dir` (`queries.jsonl`).
pub fn queries(dir: &Path) -> Result<Vec<String>> {
    Ok(std::io::BufReader::new(std::fs::File::open(dir.join("queries.jsonl"))?)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(&l)
                .ok()?
                .get("query")?
                .as_str()
                .map(String::from)
        })
        .collect())
}

/// The context kinds the latency benchmarks measure.
pub const KINDS: [&str; 4] = ["search", "listening", "history", "personalized_search"];

/// `n` requests of context kind `kind` (one of [`KINDS`]) for `k = 10`:
/// items spread evenly over `ids`, histories of ten, texts in turn.
pub fn requests(kind: &str, ids: &[String], texts: &[String], n: usize) -> Vec<Request> {
    let step = (ids.len() / n.max(1)).max(1);
    (0..n)
        .map(|i| {
            let id = |j: usize| ids[(i * step + j * 7919) % ids.len()].clone();
            let text = texts[i % texts.len()].clone();
            let history: Vec<String> = (0..10).map(id).collect();
            let ctx = match kind {
                "search" => Context::search(text),
                "listening" => Context::listening(id(0)),
                "history" => Context::history(history),
                _ => Context::personalized_search(text, history),
            };
            Request::new(ctx).k(10)
        })
        .collect()
}
