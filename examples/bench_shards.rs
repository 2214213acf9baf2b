//! A simulation of the sharded design of docs/capacity.md, in one process:
//! the music catalog split by item hash into `--shards` indexes, each built
//! from its own items and their events; a coordinator that asks every shard
//! for its candidates (the stage boundary, [`Candidates`]: provenance and
//! feature rows), merges them, puts back what depends on the whole list
//! (each retriever's rank, the fusion score, BM25 relative to the best hit,
//! each retriever's candidate limit and the cut to `rank_depth`), and ranks
//! the union once. The same coordinator over the one index of the whole
//! catalog is the reference: what sharding changes is all the comparison
//! shows.
//!
//! ```text
//! cargo run --release --features harness --example bench_shards -- --size 100000
//! ```
//!
//! Reported for search requests (the context whose cost grows with the
//! catalog, and the one the capacity model shards for): the merged top 10's
//! recall of the single index's top 10 (and of its candidates), and
//! latency. Each shard is timed alone, one request at a time, as if it had
//! a machine of its own; the fan-out's latency is its slowest shard plus
//! the merge (no network). Both sides rank with the fixed-weight ranker
//! ([`FIXED_DEFAULT_WEIGHTS`]), as the indexes are built without training.
//!
//! What the shards share: the learned vector space, taken from the whole
//! index (each shard's items carry their vectors). What they do not: each
//! computes BM25's document frequencies and length norm, popularity's
//! normalisation, and a search's pseudo-relevance vector (from its own top
//! lexical hits) by itself. docs/capacity.md wants the statistics global
//! (from the log artefacts); this measures what leaving them local costs.

#[path = "common/music_index.rs"]
mod music_index;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use serde_json::json;
use twostage::ranking::FIXED_DEFAULT_WEIGHTS;
use twostage::request::{CandidateCounts, Retriever};
use twostage::{Candidates, Catalog, Engine, Events, IndexBuilder, Request, TextStatistics, Vectors};

/// Sharding simulation.
#[derive(Parser)]
struct Args {
    /// Catalog size (tracks).
    #[arg(long, default_value_t = 100_000)]
    size: usize,
    /// Shards.
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Search requests.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Where the generated data and the indexes are kept (and reused).
    #[arg(long)]
    work_dir: Option<std::path::PathBuf>,
    /// Print one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The shard of an item: FNV-1a of its id.
fn shard_of(id: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards as u64) as usize
}

/// Builds (or reuses) shard `s`'s index under `dir/shards-N/s`: the items of
/// `dir/items.jsonl` that hash to it, with their vectors in `whole`'s
/// learned space, and the events of those items.
fn shard_index(dir: &Path, s: usize, shards: usize, whole: &Engine) -> Result<std::path::PathBuf> {
    let root = dir.join(format!("shards-{shards}/{s}"));
    let index = root.join("index");
    if music_index::is_current(&index) {
        return Ok(index);
    }
    std::fs::create_dir_all(&root)?;
    let mut mine = HashSet::new();
    let mut items = BufWriter::new(std::fs::File::create(root.join("items.jsonl"))?);
    for line in std::io::BufReader::new(std::fs::File::open(dir.join("items.jsonl"))?).lines() {
        let line = line?;
        let mut v: serde_json::Value = serde_json::from_str(&line)?;
        let id = v["id"].as_str().context("an item without an id")?.to_string();
        if shard_of(&id, shards) == s {
            // The whole catalog's learned space, not one learned from this
            // shard's share of the log (which no other shard would share).
            if let Some(vector) = whole.item_vector(&id) {
                v["vector"] = json!(vector);
            }
            writeln!(items, "{v}")?;
            mine.insert(id);
        }
    }
    items.flush()?;
    drop(items);
    let mut events = BufWriter::new(std::fs::File::create(root.join("events.jsonl"))?);
    for line in std::io::BufReader::new(std::fs::File::open(dir.join("events.jsonl"))?).lines() {
        let line = line?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        if v["item"].as_str().is_some_and(|id| mine.contains(id)) {
            writeln!(events, "{line}")?;
        }
    }
    events.flush()?;
    drop(events);
    let catalog = Catalog::from_jsonl_path(root.join("items.jsonl"))?;
    let events = Events::from_jsonl_path(root.join("events.jsonl"), &catalog)?;
    let t = Instant::now();
    // As music_index builds the whole catalog's index, but with the
    // vectors given (every item of the whole index has one: cold items get
    // their group's and tags' mean there).
    IndexBuilder::new()
        .group_key("artist")
        .without_ranker_training()
        .vectors(Vectors::CatalogWithFallback)
        .build(&catalog, &events, &index)?;
    eprintln!("shard {s}: {} items built in {:.1} s", catalog.len(), t.elapsed().as_secs_f64());
    Ok(index)
}

/// One candidate as a shard returned it.
struct Hit {
    id: String,
    features: Vec<f32>,
    /// Per retriever: its rank in the shard's list and its raw score.
    found: Vec<(Retriever, f32)>,
}

/// What the coordinator made of one request.
struct Merged {
    /// The top `k` ids.
    top: Vec<String>,
    /// Every candidate kept for ranking (after the cut to `rank_depth`).
    kept: Vec<String>,
    /// Each retriever's merged list, best first.
    lists: HashMap<Retriever, Vec<String>>,
}

/// The coordinator: merges the shards' candidates for `req`, recomputes the
/// list-dependent features over the merged lists, cuts to `rank_depth` by
/// the merged fusion score and ranks with the fixed weights.
fn coordinate(req: &Request, parts: &[Candidates]) -> Merged {
    let names = Candidates::feature_names();
    let col = |name: &str| names.iter().position(|n| *n == name);
    let mut hits: Vec<Hit> = Vec::new();
    for c in parts {
        for i in 0..c.len() {
            let (Some(id), Some(f)) = (c.id(i), c.features(i)) else { continue };
            hits.push(Hit {
                id: id.to_string(),
                features: f.to_vec(),
                found: c.sources(i).iter().map(|p| (p.retriever, p.score)).collect(),
            });
        }
    }
    // Each retriever's merged list: its hits by score, best first, cut to
    // the request's limit for it, as one index's retriever returns them.
    let mut rank: Vec<[Option<usize>; Retriever::ALL.len()]> = vec![[None; Retriever::ALL.len()]; hits.len()];
    let mut lists = HashMap::new();
    let mut lexical_max = 0f32;
    for (k, r) in Retriever::ALL.into_iter().enumerate() {
        let mut list: Vec<(usize, f32)> = hits
            .iter()
            .enumerate()
            .filter_map(|(h, hit)| hit.found.iter().find(|(x, _)| *x == r).map(|&(_, s)| (h, s)))
            .collect();
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| hits[a.0].id.cmp(&hits[b.0].id)));
        list.truncate(req.candidates.get(r));
        if r == Retriever::Lexical {
            lexical_max = list.first().map_or(0.0, |x| x.1);
        }
        lists.insert(r, list.iter().map(|&(h, _)| hits[h].id.clone()).collect());
        for (g, (h, _)) in list.into_iter().enumerate() {
            rank[h][k] = Some(g);
        }
    }
    // The columns each retriever's rank is written to.
    // The columns each retriever's hit is written to: found, rank, and the
    // score columns set only for its own hits (ann_sim, covisit_score;
    // lexical_score is rescaled below; content_sim and linear_context are
    // set for every candidate, found or not).
    let columns: Vec<(Option<usize>, Option<usize>, Option<usize>)> = Retriever::ALL
        .iter()
        .map(|&r| {
            let name = format!("{r:?}").to_lowercase();
            let score = match r {
                Retriever::Ann => col("ann_sim"),
                Retriever::Covisit => col("covisit_score"),
                _ => None,
            };
            (col(&format!("{name}_found")), col(&format!("{name}_rank_rr")), score)
        })
        .collect();
    let lexical = Retriever::ALL.iter().position(|&r| r == Retriever::Lexical);
    let (rrf_col, lexical_col) = (col("rrf"), col("lexical_score"));
    let mut fused: Vec<(usize, f32)> = Vec::new();
    for (h, hit) in hits.iter_mut().enumerate() {
        let mut rrf = 0f32;
        for (k, &(found, rr, score)) in columns.iter().enumerate() {
            match rank[h][k] {
                Some(g) => {
                    rrf += 1.0 / (60.0 + g as f32 + 1.0);
                    if let Some(j) = rr {
                        hit.features[j] = 1.0 / (1.0 + g as f32);
                    }
                }
                None => {
                    for j in [found, rr, score].into_iter().flatten() {
                        hit.features[j] = 0.0;
                    }
                }
            }
        }
        if let Some(j) = rrf_col {
            hit.features[j] = rrf * 15.0;
        }
        if let (Some(j), Some(&(_, s))) = (lexical_col, hit.found.iter().find(|(x, _)| *x == Retriever::Lexical)) {
            let kept = lexical.is_some_and(|k| rank[h][k].is_some());
            hit.features[j] = if lexical_max > 0.0 && kept { s / lexical_max } else { 0.0 };
        }
        if rrf > 0.0 {
            fused.push((h, rrf));
        }
    }
    // One item is in one shard, so the union has no duplicates to merge.
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| hits[a.0].id.cmp(&hits[b.0].id)));
    fused.truncate(req.rank_depth);
    let weights: Vec<(usize, f32)> = FIXED_DEFAULT_WEIGHTS.iter().filter_map(|(n, w)| col(n).map(|j| (j, *w))).collect();
    let mut scored: Vec<(usize, f32)> = fused
        .iter()
        .map(|&(h, _)| (h, weights.iter().map(|&(j, w)| hits[h].features[j] * w).sum()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| hits[a.0].id.cmp(&hits[b.0].id)));
    Merged {
        top: scored.iter().take(req.k).map(|&(h, _)| hits[h].id.clone()).collect(),
        kept: fused.iter().map(|&(h, _)| hits[h].id.clone()).collect(),
        lists,
    }
}

/// The share of `reference` that `got` holds.
fn recall_of(got: &[String], reference: &[String]) -> Option<f64> {
    let got: HashSet<&String> = got.iter().collect();
    (!reference.is_empty()).then(|| reference.iter().filter(|id| got.contains(id)).count() as f64 / reference.len() as f64)
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    (at(0.5), at(0.99))
}

/// Lexical hits a search's pseudo-relevance vector is made of: the
/// engine's own number (`PRF_HITS` in src/engine/context.rs), which the
/// coordinator must mirror to compute the vector the one index computes.
const PRF_HITS: usize = 5;

/// One round: every shard derives a search's learned-space vector from its
/// own best lexical hits. Two rounds: the shards return their best lexical
/// hits first, the coordinator derives the vector from the merged best
/// ones, and sends it with the request (`Request::context_vector`). Three
/// rounds: before those two, the shards report the BM25 statistics of the
/// search's terms (`Engine::text_statistics`), and the coordinator sends
/// their sum with both (`Request::text_statistics`), so every shard
/// scores as the single index does (Elasticsearch's `dfs_query_then_fetch`).
#[derive(Clone, Copy, PartialEq)]
enum Design {
    OneRound,
    TwoRounds,
    Statistics,
}

/// What one design did over the requests.
#[derive(Default)]
struct Tally {
    recall: f64,
    candidate_recall: f64,
    /// Per retriever: summed recall of the single index's list, and requests where it had one.
    by_retriever: HashMap<String, (f64, usize)>,
    /// Per request: the slowest shard of each round plus the coordinator's work.
    fanout_ms: Vec<f64>,
    /// Per shard: its time over the rounds, per request.
    shard_ms: Vec<Vec<f64>>,
    merge_ms: Vec<f64>,
}

impl Tally {
    fn add(&mut self, merged: &Merged, single: &Merged) {
        self.recall += recall_of(&merged.top, &single.top).unwrap_or(1.0);
        self.candidate_recall += recall_of(&merged.kept, &single.kept).unwrap_or(1.0);
        for (r, list) in &single.lists {
            if let Some(x) = recall_of(merged.lists.get(r).map_or(&[][..], |l| &l[..]), list) {
                let e = self.by_retriever.entry(format!("{r:?}").to_lowercase()).or_insert((0.0, 0));
                e.0 += x;
                e.1 += 1;
            }
        }
    }

    fn report(self, name: &str, n: f64) -> serde_json::Value {
        let by_retriever: std::collections::BTreeMap<String, f64> =
            self.by_retriever.into_iter().map(|(r, (sum, k))| (r, sum / k as f64)).collect();
        let (fan_p50, fan_p99) = percentiles(self.fanout_ms);
        let (merge_p50, merge_p99) = percentiles(self.merge_ms);
        let per_shard: Vec<(f64, f64)> = self.shard_ms.into_iter().map(percentiles).collect();
        eprintln!("{name}:");
        eprintln!(
            "  merged top 10: recall {:.4} of the single index's top 10; candidates kept for ranking: recall {:.4}",
            self.recall / n,
            self.candidate_recall / n
        );
        eprintln!("  each retriever's merged list, recall of the single index's list: {by_retriever:?}");
        for (s, (a, b)) in per_shard.iter().enumerate() {
            eprintln!("  shard {s}: p50 {a:.2} ms, p99 {b:.2} ms");
        }
        eprintln!("  coordinator (merge and rank): p50 {merge_p50:.2} ms, p99 {merge_p99:.2} ms");
        eprintln!("  fan-out (slowest shard of each round + coordinator): p50 {fan_p50:.2} ms, p99 {fan_p99:.2} ms");
        json!({
            "recall_at_10_of_single": self.recall / n,
            "candidate_recall_of_single": self.candidate_recall / n,
            "retriever_list_recall_of_single": by_retriever,
            "shard_ms": per_shard.iter().map(|(a, b)| json!({"p50": a, "p99": b})).collect::<Vec<_>>(),
            "coordinator_ms": {"p50": merge_p50, "p99": merge_p99},
            "fanout_ms": {"p50": fan_p50, "p99": fan_p99},
        })
    }
}

/// What one sharded request cost: each shard's time summed over the
/// rounds, and the request's latency if every shard had its own machine:
/// the slowest shard of each round plus the coordinator's work.
struct Cost {
    shard_ms: Vec<f64>,
    coordinator_ms: f64,
    latency_ms: f64,
}

/// Runs `req` on the shards as `design` has it, each shard asked for
/// `uncut` (every retriever's whole list); the merged answer and its cost.
fn sharded(req: &Request, uncut: &Request, shards: &[Engine], design: Design) -> Result<(Merged, Cost)> {
    let mut shard_ms = vec![0.0; shards.len()];
    let (mut coordinator_ms, mut latency_ms) = (0.0, 0.0);
    let mut asked = uncut.clone();
    // Each shard's time in one round; the round's slowest shard's time.
    let mut round = |run: &mut dyn FnMut(usize, &Engine) -> Result<()>| -> Result<f64> {
        let mut slowest = 0f64;
        for (s, shard) in shards.iter().enumerate() {
            let t = Instant::now();
            run(s, shard)?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            shard_ms[s] += ms;
            slowest = slowest.max(ms);
        }
        Ok(slowest)
    };
    if design == Design::Statistics {
        let text = uncut.context.text().unwrap_or_default();
        let mut total = TextStatistics::default();
        latency_ms += round(&mut |_, shard| {
            total.add(&shard.text_statistics(text)?);
            Ok(())
        })?;
        asked = asked.text_statistics(total);
    }
    if matches!(design, Design::TwoRounds | Design::Statistics) {
        // Round one: each shard's best lexical hits, and nothing else.
        let mut first = asked.clone();
        first.candidates = CandidateCounts {
            ann: 0,
            lexical: PRF_HITS,
            covisit: 0,
            popular: 0,
            content: 0,
            linear: 0,
        };
        let mut best: Vec<(f32, String, usize)> = Vec::new();
        latency_ms += round(&mut |s, shard| {
            let c = shard.retrieve(&first)?;
            for i in 0..c.len() {
                let lexical = c.sources(i).into_iter().find(|p| p.retriever == Retriever::Lexical);
                if let (Some(p), Some(id)) = (lexical, c.id(i)) {
                    best.push((p.score, id.to_string(), s));
                }
            }
            Ok(())
        })?;
        let t = Instant::now();
        best.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        // The engine's pseudo-relevance vector: the BM25-weighted sum of the
        // best hits' vectors (the engine normalises it).
        let mut vector: Option<Vec<f32>> = None;
        for (score, id, s) in best.iter().take(PRF_HITS) {
            if let Some(v) = shards[*s].item_vector(id) {
                let acc = vector.get_or_insert_with(|| vec![0.0; v.len()]);
                for (a, x) in acc.iter_mut().zip(&v) {
                    *a += score.max(0.0) * x;
                }
            }
        }
        if let Some(v) = vector.filter(|v| v.iter().any(|&x| x != 0.0)) {
            asked = asked.context_vector(v);
        }
        let ms = t.elapsed().as_secs_f64() * 1e3;
        coordinator_ms += ms;
        latency_ms += ms;
    }
    let mut parts = Vec::with_capacity(shards.len());
    latency_ms += round(&mut |_, shard| {
        parts.push(shard.retrieve(&asked)?);
        Ok(())
    })?;
    let t = Instant::now();
    // Cut to the request's own rank_depth, as the one index is.
    let merged = coordinate(req, &parts);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    coordinator_ms += ms;
    latency_ms += ms;
    Ok((
        merged,
        Cost {
            shard_ms,
            coordinator_ms,
            latency_ms,
        },
    ))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !(2..=64).contains(&args.shards) {
        bail!("--shards must be 2 to 64");
    }
    let dir = args.work_dir.clone().unwrap_or_else(|| music_index::default_dir(args.size));
    let whole = Engine::open(music_index::music_index(args.size, &dir)?)?;
    let shards = (0..args.shards)
        .map(|s| Engine::open(shard_index(&dir, s, args.shards, &whole)?).map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    let catalog = Catalog::from_jsonl_path(dir.join("items.jsonl"))?;
    let ids: Vec<String> = catalog.items().iter().map(|i| i.id.clone()).collect();
    let texts = music_index::queries(&dir)?;
    let reqs = music_index::requests("search", &ids, &texts, args.requests);
    for r in reqs.iter().take(30) {
        whole.recommend(r)?;
        for s in &shards {
            s.recommend(r)?;
        }
    }

    let mut single_ms = Vec::new();
    let mut agrees = 0usize;
    let designs = [Design::OneRound, Design::TwoRounds, Design::Statistics];
    let mut tallies: Vec<Tally> = designs
        .iter()
        .map(|_| Tally {
            shard_ms: vec![Vec::new(); args.shards],
            ..Tally::default()
        })
        .collect();
    for req in &reqs {
        // Each index returns every retriever's whole list (no fusion cut):
        // the coordinator fuses and cuts to the request's rank_depth.
        let uncut = req.clone().rank_depth(Retriever::ALL.iter().map(|&r| req.candidates.get(r)).sum());
        let t = Instant::now();
        let one = whole.retrieve(&uncut)?;
        let single = coordinate(req, std::slice::from_ref(&one));
        single_ms.push(t.elapsed().as_secs_f64() * 1e3);
        // The reference is the coordinator over the one index; check that
        // it answers as the engine does.
        let served: Vec<String> = whole.recommend(req)?.items.into_iter().map(|i| i.id).collect();
        agrees += usize::from(served == single.top);
        for (design, tally) in designs.iter().zip(&mut tallies) {
            let (merged, cost) = sharded(req, &uncut, &shards, *design)?;
            tally.add(&merged, &single);
            for (all, m) in tally.shard_ms.iter_mut().zip(cost.shard_ms) {
                all.push(m);
            }
            tally.merge_ms.push(cost.coordinator_ms);
            tally.fanout_ms.push(cost.latency_ms);
        }
    }
    let n = reqs.len() as f64;
    let (single_p50, single_p99) = percentiles(single_ms);
    eprintln!(
        "{} items in {} shards by item hash, {} search requests, k = 10",
        args.size,
        args.shards,
        reqs.len()
    );
    eprintln!(
        "reference (the coordinator over the single index) equals its recommend on {:.1}% of requests",
        100.0 * agrees as f64 / n
    );
    eprintln!("single index, retrieve + coordinator: p50 {single_p50:.2} ms, p99 {single_p99:.2} ms");
    let mut reports = tallies
        .into_iter()
        .zip(["one round", "two rounds", "three rounds (catalog-wide BM25 statistics first)"])
        .map(|(t, name)| t.report(name, n));
    let out = json!({
        "size": args.size,
        "shards": args.shards,
        "requests": reqs.len(),
        "reference_equals_recommend": agrees as f64 / n,
        "single_ms": {"p50": single_p50, "p99": single_p99},
        "one_round": reports.next(),
        "two_rounds": reports.next(),
        "three_rounds_statistics": reports.next(),
    });
    if args.json {
        println!("{out}");
    }
    Ok(())
}
