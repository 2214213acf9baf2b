//! Latency budgets under concurrent load: for each context kind, the share
//! of requests answered within the budget and the quality kept, with and
//! without `Request::budget_ms`, while `--clients` threads send requests in
//! a closed loop (each sends its next request when the last one returns).
//!
//! ```text
//! cargo run --release --features harness --example bench_budget -- --size 1000000
//! cargo run --release --features harness --example bench_budget -- --size 100000 --budgets-ms 1,2,5
//! ```
//!
//! The reference answer of every request is its unbudgeted answer on an
//! idle engine (one thread). Quality is the budgeted answer's NDCG@10
//! against it (an item at reference rank r has gain 10 − r; 1.0 is the same
//! list) and its overlap with the reference top 10. The catalog and its
//! index (placeholder ranker) are kept in `--work-dir` and reused (shared
//! with bench_filters).

#[path = "common/music_index.rs"]
mod music_index;
#[path = "common/report.rs"]
mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use serde_json::json;
use twostage::{Catalog, Engine, Request};

/// Latency budget benchmark.
#[derive(Parser)]
struct Args {
    /// Catalog size (tracks).
    #[arg(long, default_value_t = 1_000_000)]
    size: usize,
    /// Requests per context kind (each client sends them all).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Budgets to measure, in milliseconds, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "2")]
    budgets_ms: Vec<f64>,
    /// Client threads, each in a closed loop.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Where the generated data and the index are kept (and reused).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Print one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
}

/// NDCG@10 of `got` against `reference` (gain 10 − rank in the reference).
fn agreement(got: &[String], reference: &[String]) -> f64 {
    let gain = |id: &String| reference.iter().position(|r| r == id).map_or(0.0, |r| 10.0 - r as f64);
    let dcg = |list: &[String]| {
        list.iter()
            .take(10)
            .enumerate()
            .map(|(i, id)| gain(id) / (i as f64 + 2.0).log2())
            .sum::<f64>()
    };
    let ideal = dcg(reference);
    if ideal > 0.0 {
        dcg(got) / ideal
    } else {
        1.0
    }
}

struct Run {
    /// Wall time per request, ms.
    ms: Vec<f64>,
    ndcg: f64,
    overlap: f64,
    within: usize,
    cuts: BTreeMap<String, usize>,
}

/// One answer under load: wall ms, the ids, the budget's cuts, which request.
type Answer = (f64, Vec<String>, Vec<String>, usize);

/// Every client sends every request of `reqs` once, in a closed loop.
fn under_load(engine: &Engine, reqs: &[Request], reference: &[Vec<String>], clients: usize, budget_ms: f64) -> Result<Run> {
    let per_client: Vec<Result<Vec<Answer>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || -> Result<Vec<Answer>> {
                    // Clients start at different requests, so they do not
                    // ask for the same thing at the same time.
                    let start = c * reqs.len() / clients.max(1);
                    let mut out = Vec::with_capacity(reqs.len());
                    for i in (0..reqs.len()).map(|j| (start + j) % reqs.len()) {
                        let t = Instant::now();
                        let recs = engine.recommend(&reqs[i])?;
                        let ms = t.elapsed().as_secs_f64() * 1e3;
                        let ids = recs.items.iter().map(|r| r.id.clone()).collect();
                        let cuts = recs.budget.map(|b| b.cut).unwrap_or_default();
                        out.push((ms, ids, cuts, i));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked"))))
            .collect()
    });
    let mut run = Run {
        ms: Vec::new(),
        ndcg: 0.0,
        overlap: 0.0,
        within: 0,
        cuts: BTreeMap::new(),
    };
    for client in per_client {
        for (ms, ids, cuts, i) in client? {
            run.ndcg += agreement(&ids, &reference[i]);
            run.overlap += ids.iter().filter(|id| reference[i].contains(id)).count() as f64 / reference[i].len().max(1) as f64;
            if ms <= budget_ms {
                run.within += 1;
            }
            for c in cuts {
                // "skipped the lexical retriever (about 4800 µs)" → its kind.
                let key = c.split(" (").next().unwrap_or(&c).split(':').next().unwrap_or(&c).to_string();
                let key = if key.starts_with("scored") {
                    "scored fewer candidates".to_string()
                } else {
                    key
                };
                *run.cuts.entry(key).or_default() += 1;
            }
            run.ms.push(ms);
        }
    }
    let n = run.ms.len().max(1) as f64;
    run.ndcg /= n;
    run.overlap /= n;
    run.ms.sort_by(f64::total_cmp);
    Ok(run)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = args.work_dir.clone().unwrap_or_else(|| music_index::default_dir(args.size));
    let index = music_index::music_index(args.size, &dir)?;
    let engine = Engine::open(&index)?;
    let ids: Vec<String> = Catalog::from_jsonl_path(dir.join("items.jsonl"))?
        .items()
        .iter()
        .map(|i| i.id.clone())
        .collect();
    let texts = music_index::queries(&dir)?;
    let texts = if texts.is_empty() { vec!["indie folk".to_string()] } else { texts };

    eprintln!(
        "{:<20} {:>7} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}  cuts",
        "context", "budget", "p50 ms", "p99 ms", "within", "ndcg", "overlap", "n"
    );
    let mut rows = Vec::new();
    for kind in music_index::KINDS {
        let reqs = music_index::requests(kind, &ids, &texts, args.requests);
        // The reference answers, one thread, no budget; they also teach the
        // engine what each stage costs for this kind.
        let reference: Vec<Vec<String>> = reqs
            .iter()
            .map(|r| Ok(engine.recommend(r)?.items.into_iter().map(|i| i.id).collect()))
            .collect::<Result<_>>()?;
        for &budget in &args.budgets_ms {
            let plain = under_load(&engine, &reqs, &reference, args.clients, budget)?;
            let budgeted: Vec<Request> = reqs.iter().cloned().map(|r| r.budget_ms(budget)).collect();
            let kept = under_load(&engine, &budgeted, &reference, args.clients, budget)?;
            for (mode, run) in [("none", &plain), ("budget", &kept)] {
                let n = run.ms.len();
                let cuts: Vec<String> = run.cuts.iter().map(|(c, k)| format!("{c} ×{k}")).collect();
                eprintln!(
                    "{:<20} {:>7} {:>9.3} {:>9.3} {:>8.1}% {:>8.4} {:>8.4} {:>8}  {}",
                    kind,
                    if mode == "none" {
                        "none".to_string()
                    } else {
                        format!("{budget} ms")
                    },
                    report::percentile(&run.ms, 50.0),
                    report::percentile(&run.ms, 99.0),
                    run.within as f64 / n.max(1) as f64 * 100.0,
                    run.ndcg,
                    run.overlap,
                    n,
                    cuts.join(", ")
                );
                rows.push(json!({
                    "context": kind,
                    "budget_ms": budget,
                    "budgeted": mode == "budget",
                    "p50_ms": report::percentile(&run.ms, 50.0),
                    "p99_ms": report::percentile(&run.ms, 99.0),
                    "within_budget": run.within as f64 / n.max(1) as f64,
                    "ndcg_vs_unbudgeted": run.ndcg,
                    "overlap_at_10": run.overlap,
                    "requests": n,
                    "cuts": run.cuts,
                }));
            }
        }
    }
    if args.json {
        report::write_json(
            None,
            &json!({"size": engine.len(), "clients": args.clients, "cpu": report::cpu_model(), "rows": rows}),
        )?;
    }
    Ok(())
}
