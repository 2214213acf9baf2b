//! Live writes under load: recommend latency while deletions, events and
//! item upserts stream in, against idle in the same run; deletion
//! throughput, one id per call (one fsync each) and in batches; event
//! throughput in batches; upsert throughput (new and changed items in
//! batches); whether a deleted item is ever served, or an upserted one not
//! found by its own words, by a request that started after the write
//! returned; the time `Engine::open` takes to replay the log afterwards;
//! one-event calls from one thread against many at once, which share
//! fsyncs (group commit); and the learned space's recall@10 with the
//! upserted items beside the built graph against a fresh build of the
//! same final catalog. Last, the churned copy (its deletions and events,
//! plus the same upserts) is compacted into a new generation while the
//! reader runs: its duration, the writes' pause, peak memory and latency.
//!
//! ```text
//! cargo run --release --features harness --example bench_churn -- --size 100000
//! ```
//!
//! One reader thread sends requests of the four context kinds in turn at a
//! fixed rate (`--rate`); a writer thread deletes `--deletes` items, each
//! one the top answer of a search, and after every call asks that search
//! again and counts a violation if the item is still there. The catalog
//! and its index are kept in `--work-dir` (shared with bench_filters and
//! bench_budget); the writes go to copies of the index, removed at the end.
//!
//! Upserts go to their own copy of the built index (no deletions there), so
//! that the final catalog keeps every built item and the fresh build reads
//! the same events: the built items' learned vectors are then the same in
//! both, and recall compares like with like. Recall@10 is measured on
//! listening contexts (half on added items) against the fresh build's exact
//! nearest neighbours, for the live index and for the fresh build's graph.

#[path = "common/music_index.rs"]
mod music_index;
#[path = "common/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use serde_json::json;
use twostage::{AnnSearch, Catalog, Compaction, Context, Engine, EngineHandle, Events, IndexBuilder, Item, LiveEvent, Request, Retriever};

/// Deletion churn benchmark.
#[derive(Parser)]
struct Args {
    /// Catalog size (tracks).
    #[arg(long, default_value_t = 100_000)]
    size: usize,
    /// Items deleted one id per call.
    #[arg(long, default_value_t = 2_000)]
    deletes: usize,
    /// Items deleted afterwards in calls of `--batch` ids.
    #[arg(long, default_value_t = 10_000)]
    batched_deletes: usize,
    /// Ids per call in the batched phase.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Events recorded while the reader runs.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Events per call.
    #[arg(long, default_value_t = 10_000)]
    event_batch: usize,
    /// Requests per second the reader sends, idle and during churn.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Threads that record one event per call at once, in the group-commit
    /// phase (compared with one thread making the same calls).
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Calls of one event each in the group-commit phase, per configuration.
    #[arg(long, default_value_t = 2_000)]
    small_writes: usize,
    /// Items added live (copies of built ones under new ids and titles).
    #[arg(long, default_value_t = 10_000)]
    inserts: usize,
    /// Built items changed live (a word added to the title).
    #[arg(long, default_value_t = 10_000)]
    updates: usize,
    /// Items per upsert call.
    #[arg(long, default_value_t = 500)]
    upsert_batch: usize,
    /// Items per second the upserts are sent at while the reader runs (a
    /// service takes writes as they come); 0 sends them as fast as one
    /// writer can. Throughput is reported as items per second of call time
    /// either way.
    #[arg(long, default_value_t = 5_000.0)]
    upsert_rate: f64,
    /// The compaction retrains the ranker when the live events reach this
    /// share of the build's (`Compaction::retrain_share`; the default
    /// policy's 0.05 retrains after the 1M events); a share above the events'
    /// keeps the ranker and measures the rebuild alone.
    #[arg(long, default_value_t = 0.05)]
    retrain_share: f64,
    /// Listening contexts the recall comparison asks.
    #[arg(long, default_value_t = 1_000)]
    recall_queries: usize,
    /// Seconds of the idle phase.
    #[arg(long, default_value_t = 10.0)]
    idle_secs: f64,
    /// Where the generated data and the index are kept (and reused).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Print one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// How the reader asks: an engine, or a handle whose engine a compaction swaps.
trait Serve: Sync {
    fn serve(&self, req: &Request) -> twostage::Result<twostage::Recommendations>;
}

impl Serve for Engine {
    fn serve(&self, req: &Request) -> twostage::Result<twostage::Recommendations> {
        self.recommend(req)
    }
}

impl Serve for EngineHandle {
    fn serve(&self, req: &Request) -> twostage::Result<twostage::Recommendations> {
        self.recommend(req)
    }
}

/// Sends `reqs` in turn at `rate` per second until `stop`; wall ms of each.
fn reader(engine: &impl Serve, reqs: &[Request], rate: f64, stop: &AtomicBool) -> Result<Vec<f64>> {
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut ms = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        // Open loop: each request has its slot; a late one is sent at once.
        let due = start + period * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        match engine.serve(&reqs[i % reqs.len()]) {
            // A context naming an item a compaction removed (deleted
            // earlier): unknown to the new generation, as to a fresh build.
            Ok(_) | Err(twostage::Error::UnknownItem(_)) => {}
            Err(e) => return Err(e.into()),
        }
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        i += 1;
    }
    Ok(ms)
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (report::percentile(&v, 50.0), report::percentile(&v, 99.0))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = args.work_dir.clone().unwrap_or_else(|| music_index::default_dir(args.size));
    let base = music_index::music_index(args.size, &dir)?;
    let catalog = Catalog::from_jsonl_path(dir.join("items.jsonl"))?;
    let ids: Vec<String> = catalog.items().iter().map(|i| i.id.clone()).collect();
    if args.deletes + args.batched_deletes > ids.len() / 2 {
        bail!("delete at most half of the {} items", ids.len());
    }
    let texts = music_index::queries(&dir)?;
    let scratch = dir.join("churn-index");
    let _ = std::fs::remove_dir_all(&scratch);
    copy_dir(&base, &scratch)?;
    let engine = Engine::open(&scratch)?;

    let mut reqs = Vec::new();
    for kind in music_index::KINDS {
        reqs.extend(music_index::requests(kind, &ids, &texts, 200));
    }
    // Interleave the kinds, so each phase sees the same mix.
    let n = reqs.len() / music_index::KINDS.len();
    let reqs: Vec<Request> = (0..reqs.len()).map(|i| reqs[(i % 4) * n + i / 4].clone()).collect();
    for r in reqs.iter().take(50) {
        engine.recommend(r)?; // warm caches
    }

    // Idle.
    let stop = AtomicBool::new(false);
    let idle = std::thread::scope(|s| {
        let h = s.spawn(|| reader(&engine, &reqs, args.rate, &stop));
        std::thread::sleep(Duration::from_secs_f64(args.idle_secs));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap_or_else(|_| bail!("the reader panicked"))
    })?;

    // Churn: one id per call, each the top answer of a search, checked after.
    let stop = AtomicBool::new(false);
    let (churn, single_ms, violations, single_secs) = std::thread::scope(|s| -> Result<_> {
        let h = s.spawn(|| reader(&engine, &reqs, args.rate, &stop));
        let t = Instant::now();
        let mut call_ms = Vec::with_capacity(args.deletes);
        let mut violations = 0usize;
        let mut done = 0usize;
        let mut q = 0usize;
        while done < args.deletes {
            let search = Request::new(Context::search(texts[q % texts.len()].clone())).k(1);
            q += 1;
            let Some(top) = engine.recommend(&search)?.items.into_iter().next() else {
                continue;
            };
            let c = Instant::now();
            engine.delete_items(&[top.id.as_str()])?;
            call_ms.push(c.elapsed().as_secs_f64() * 1e3);
            if engine.recommend(&search.clone().k(50))?.items.iter().any(|i| i.id == top.id) {
                violations += 1;
            }
            done += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let churn = h.join().unwrap_or_else(|_| bail!("the reader panicked"))?;
        Ok((churn, call_ms, violations, secs))
    })?;

    // Events in batches while the reader runs: plays of items drawn with a
    // skew towards the start of the catalog (a few items get most plays),
    // in sessions of 20 plays a second apart (each paired for co-visitation).
    let stop = AtomicBool::new(false);
    let (during_events, events_secs) = std::thread::scope(|s| -> Result<_> {
        let h = s.spawn(|| reader(&engine, &reqs, args.rate, &stop));
        let mut rng = twostage::rng::SplitMix64::new(11);
        let t = Instant::now();
        let mut sent = 0usize;
        while sent < args.events {
            let n = args.event_batch.max(1).min(args.events - sent);
            let batch: Vec<LiveEvent> = (0..n)
                .map(|j| {
                    let u = rng.next_f64();
                    let item = &ids[((u * u * u) * ids.len() as f64) as usize % ids.len()];
                    LiveEvent::play(format!("u{}", (sent + j) / 20), item, 1_900_000_000 + (sent + j) as i64)
                })
                .collect();
            engine.record_events(&batch)?;
            sent += n;
        }
        let secs = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let ms = h.join().unwrap_or_else(|_| bail!("the reader panicked"))?;
        Ok((ms, secs))
    })?;

    // Batched deletions of ids spread over the catalog (no reader: throughput).
    let step = (ids.len() / args.batched_deletes.max(1)).max(1);
    let batched: Vec<&str> = (0..args.batched_deletes)
        .map(|i| ids[(i * step + 1) % ids.len()].as_str())
        .collect();
    let t = Instant::now();
    for chunk in batched.chunks(args.batch.max(1)) {
        engine.delete_items(chunk)?;
    }
    let batched_secs = t.elapsed().as_secs_f64();

    // Group commit: the same number of one-event calls from one thread and
    // from `--writers` threads at once (no reader: throughput), with the
    // fsyncs each took.
    let small = |writers: usize| -> Result<(f64, usize)> {
        let syncs = engine.live_status()?.syncs;
        let per = args.small_writes.div_ceil(writers.max(1));
        let t = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = (0..writers.max(1))
                .map(|w| {
                    let (engine, ids) = (&engine, &ids);
                    s.spawn(move || -> Result<()> {
                        for j in 0..per {
                            let item = &ids[(w * per + j) * 7919 % ids.len()];
                            engine.record_events(&[LiveEvent::play(format!("g{w}"), item, 1_950_000_000 + j as i64)])?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap_or_else(|_| bail!("a writer panicked"))?;
            }
            Ok(())
        })?;
        let calls = per * writers.max(1);
        Ok((calls as f64 / t.elapsed().as_secs_f64(), engine.live_status()?.syncs - syncs))
    };
    let (one_per_s, one_syncs) = small(1)?;
    let (many_per_s, many_syncs) = small(args.writers)?;
    let small_calls = args.small_writes.div_ceil(args.writers.max(1)) * args.writers.max(1);
    let status = engine.live_status()?;
    let log_bytes = std::fs::metadata(scratch.join("live.wal"))?.len();
    drop(engine);
    let t = Instant::now();
    let reopened = Engine::open(&scratch)?;
    let reopen_ms = t.elapsed().as_secs_f64() * 1e3;
    let replayed = reopened.live_status()?.deleted;
    drop(reopened);
    let compaction = compaction_phase(&args, &scratch, &catalog, &reqs)?;
    std::fs::remove_dir_all(&scratch)?;

    let upserts = upsert_phase(&args, &base, &dir, &catalog, &reqs)?;

    let (idle_p50, idle_p99) = percentiles(idle.clone());
    let (churn_p50, churn_p99) = percentiles(churn.clone());
    let (call_p50, call_p99) = percentiles(single_ms.clone());
    let (events_p50, events_p99) = percentiles(during_events.clone());
    let out = json!({
        "size": args.size,
        "rate": args.rate,
        "recommend_ms": {
            "idle": {"p50": idle_p50, "p99": idle_p99, "requests": idle.len()},
            "during_deletes": {"p50": churn_p50, "p99": churn_p99, "requests": churn.len()},
            "p99_ratio": churn_p99 / idle_p99,
            "during_events": {"p50": events_p50, "p99": events_p99, "requests": during_events.len()},
            "events_p99_ratio": events_p99 / idle_p99,
        },
        "events": {"items": args.events, "batch": args.event_batch, "events_per_s": args.events as f64 / events_secs},
        "deletes_one_per_call": {"items": args.deletes, "items_per_s": args.deletes as f64 / single_secs,
                                 "call_ms_p50": call_p50, "call_ms_p99": call_p99,
                                 "served_after_return": violations},
        "deletes_batched": {"items": args.batched_deletes, "batch": args.batch,
                            "items_per_s": args.batched_deletes as f64 / batched_secs},
        "group_commit": {"writers": args.writers,
                         "one_writer": {"calls": args.small_writes, "calls_per_s": one_per_s, "syncs": one_syncs},
                         "concurrent": {"calls": small_calls, "calls_per_s": many_per_s, "syncs": many_syncs},
                         "speedup": many_per_s / one_per_s},
        "log_bytes": log_bytes,
        "deleted": status.deleted,
        "events_logged": status.events,
        "reopen_ms": reopen_ms,
        "replayed_deleted": replayed,
        "upserts": upserts.json(idle_p99),
        "compaction": compaction.json(idle_p99),
    });
    eprintln!(
        "{} items, reader at {} requests/s (the four context kinds in turn)",
        args.size, args.rate
    );
    eprintln!("recommend p50 / p99: idle {idle_p50:.2} / {idle_p99:.2} ms ({} requests); during deletions {churn_p50:.2} / {churn_p99:.2} ms ({} requests); p99 ratio {:.2}",
        idle.len(), churn.len(), churn_p99 / idle_p99);
    eprintln!("one id per call: {} deletions at {:.0}/s (the loop also runs two searches per deletion), call p50 {call_p50:.2} ms, p99 {call_p99:.2} ms; served after return: {violations}",
        args.deletes, args.deletes as f64 / single_secs);
    eprintln!(
        "batches of {}: {} deletions at {:.0}/s",
        args.batch,
        args.batched_deletes,
        args.batched_deletes as f64 / batched_secs
    );
    eprintln!("events in batches of {}: {} at {:.0}/s; recommend p50 / p99 meanwhile {events_p50:.2} / {events_p99:.2} ms ({} requests); p99 ratio {:.2}",
        args.event_batch, args.events, args.events as f64 / events_secs, during_events.len(), events_p99 / idle_p99);
    eprintln!(
        "one event per call: one writer {one_per_s:.0} calls/s ({one_syncs} fsyncs for {} calls); {} writers {many_per_s:.0} calls/s ({many_syncs} fsyncs for {small_calls} calls); ×{:.2}",
        args.small_writes,
        args.writers,
        many_per_s / one_per_s
    );
    eprintln!(
        "log {log_bytes} bytes for {} deletions and {} events; Engine::open with it {reopen_ms:.0} ms, replayed {replayed} deletions",
        status.deleted, status.events
    );
    upserts.print(idle_p99);
    compaction.print(idle_p99);
    if args.json {
        println!("{out}");
    }
    Ok(())
}

/// What the upsert phase measured.
struct Upserts {
    items: usize,
    batch: usize,
    rate: f64,
    secs: f64,
    call_ms: Vec<f64>,
    during: Vec<f64>,
    not_found_after_return: usize,
    reopen_ms: f64,
    fresh_build_s: f64,
    queries: usize,
    recall_live: f64,
    recall_fresh: f64,
    recall_live_added: f64,
    recall_fresh_added: f64,
}

impl Upserts {
    fn json(&self, idle_p99: f64) -> serde_json::Value {
        let (p50, p99) = percentiles(self.during.clone());
        let (call_p50, call_p99) = percentiles(self.call_ms.clone());
        json!({
            "items": self.items, "batch": self.batch, "sent_per_s": self.rate, "wall_s": self.secs,
            "items_per_s_of_call_time": self.items as f64 / (self.call_ms.iter().sum::<f64>() / 1e3),
            "call_ms_p50": call_p50, "call_ms_p99": call_p99,
            "not_found_after_return": self.not_found_after_return,
            "recommend_ms": {"p50": p50, "p99": p99, "requests": self.during.len(), "p99_ratio": p99 / idle_p99},
            "reopen_ms": self.reopen_ms,
            "fresh_build_s": self.fresh_build_s,
            "recall_at_10": {"queries": self.queries, "live": self.recall_live, "fresh_build": self.recall_fresh,
                             "live_added_items": self.recall_live_added, "fresh_build_added_items": self.recall_fresh_added},
        })
    }

    fn print(&self, idle_p99: f64) {
        let (p50, p99) = percentiles(self.during.clone());
        let (call_p50, call_p99) = percentiles(self.call_ms.clone());
        let pace = if self.rate > 0.0 {
            format!("sent at {:.0}/s", self.rate)
        } else {
            "sent as fast as one writer can".into()
        };
        eprintln!(
            "upserts in batches of {}: {} items {pace} (done in {:.1} s); {:.0} items per second of call time, call p50 {call_p50:.1} ms, p99 {call_p99:.1} ms; not found by their words after return: {}",
            self.batch,
            self.items,
            self.secs,
            self.items as f64 / (self.call_ms.iter().sum::<f64>() / 1e3),
            self.not_found_after_return
        );
        eprintln!(
            "recommend p50 / p99 during upserts {p50:.2} / {p99:.2} ms ({} requests); p99 ratio {:.2}; Engine::open with them {:.0} ms",
            self.during.len(),
            p99 / idle_p99,
            self.reopen_ms
        );
        eprintln!(
            "learned-space recall@10 against the fresh build's exact neighbours ({} listening contexts, half on added items): live {:.4}, fresh build's graph {:.4} (on added items: {:.4}, {:.4}); the fresh build took {:.1} s",
            self.queries, self.recall_live, self.recall_fresh, self.recall_live_added, self.recall_fresh_added, self.fresh_build_s
        );
    }
}

/// Adds `--inserts` items and changes `--updates` on a copy of the built
/// index while the reader runs, then compares its learned-space recall with
/// a fresh build of the final catalog.
fn upsert_phase(args: &Args, base: &Path, dir: &Path, catalog: &Catalog, reqs: &[Request]) -> Result<Upserts> {
    let n = catalog.len();
    if args.updates > n {
        bail!("change at most the {n} built items");
    }
    let scratch = dir.join("churn-upserts");
    let _ = std::fs::remove_dir_all(&scratch);
    copy_dir(base, &scratch)?;
    let engine = Engine::open(&scratch)?;
    let (inserts, updates) = churn_items(args, catalog);
    let step = (n / args.updates.max(1)).max(1);
    // Added and changed items in turn, one batch each.
    let batch = args.upsert_batch.max(1);
    let mut calls: Vec<&[(Item, String)]> = Vec::new();
    let (mut a, mut b) = (inserts.chunks(batch), updates.chunks(batch));
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => calls.extend(x.into_iter().chain(y)),
        }
    }
    let stop = AtomicBool::new(false);
    let (during, call_ms, missing, secs) = std::thread::scope(|s| -> Result<_> {
        let h = s.spawn(|| reader(&engine, reqs, args.rate, &stop));
        let t = Instant::now();
        let mut call_ms = Vec::with_capacity(calls.len());
        let mut missing = 0usize;
        let mut sent = 0usize;
        for call in &calls {
            if args.upsert_rate > 0.0 {
                let due = t + Duration::from_secs_f64(sent as f64 / args.upsert_rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            sent += call.len();
            let items: Vec<Item> = call.iter().map(|(i, _)| i.clone()).collect();
            let c = Instant::now();
            engine.upsert_items(&items)?;
            call_ms.push(c.elapsed().as_secs_f64() * 1e3);
            if let Some((last, word)) = call.last() {
                let found = engine.recommend(&Request::new(Context::search(word.clone())).k(1))?;
                if found.items.first().map(|r| r.id.as_str()) != Some(last.id.as_str()) {
                    missing += 1;
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let during = h.join().unwrap_or_else(|_| bail!("the reader panicked"))?;
        Ok((during, call_ms, missing, secs))
    })?;
    drop(engine);
    let t = Instant::now();
    let live = Engine::open(&scratch)?;
    let reopen_ms = t.elapsed().as_secs_f64() * 1e3;

    // The same final catalog, built afresh from the same events.
    let mut items: Vec<Item> = catalog.items().to_vec();
    for (u, k) in updates.iter().zip(0..) {
        items[(k * step + 2) % n] = u.0.clone();
    }
    items.extend(inserts.iter().map(|(i, _)| i.clone()));
    let final_catalog = Catalog::new(items)?;
    let events = Events::from_jsonl_path(dir.join("events.jsonl"), &final_catalog)?;
    let fresh_dir = dir.join("churn-fresh");
    let _ = std::fs::remove_dir_all(&fresh_dir);
    let t = Instant::now();
    IndexBuilder::new()
        .group_key("artist")
        .without_ranker_training()
        .build(&final_catalog, &events, &fresh_dir)?;
    let fresh_build_s = t.elapsed().as_secs_f64();
    let fresh = Engine::open(&fresh_dir)?;

    let queries = args.recall_queries.max(2);
    let (mut live_hits, mut fresh_hits, mut truth_n) = ([0usize; 2], [0usize; 2], [0usize; 2]);
    for q in 0..queries {
        // Even queries on added items, odd ones on built items.
        let added = q % 2 == 0 && !inserts.is_empty();
        let id = if added {
            inserts[(q / 2 * 7) % inserts.len()].0.id.clone()
        } else {
            catalog.items()[(q * 104_729) % n].id.clone()
        };
        let req = Request::new(Context::listening(id)).k(10).candidates(Retriever::Ann, 10);
        let truth = fresh.ann_hits(&fresh.trace(&req)?.1, 10, AnnSearch::Exact)?;
        let served_fresh = fresh.ann_hits(&fresh.trace(&req)?.1, 10, AnnSearch::Served)?;
        let served_live = live.ann_hits(&live.trace(&req)?.1, 10, AnnSearch::Served)?;
        let hit = |got: &[String]| got.iter().filter(|g| truth.contains(g)).count();
        let side = usize::from(added);
        live_hits[side] += hit(&served_live);
        fresh_hits[side] += hit(&served_fresh);
        truth_n[side] += truth.len();
    }
    drop((live, fresh));
    std::fs::remove_dir_all(&scratch)?;
    std::fs::remove_dir_all(&fresh_dir)?;
    let ratio = |h: usize, t: usize| if t == 0 { f64::NAN } else { h as f64 / t as f64 };
    Ok(Upserts {
        items: args.inserts + args.updates,
        batch,
        rate: args.upsert_rate,
        secs,
        call_ms,
        during,
        not_found_after_return: missing,
        reopen_ms,
        fresh_build_s,
        queries,
        recall_live: ratio(live_hits[0] + live_hits[1], truth_n[0] + truth_n[1]),
        recall_fresh: ratio(fresh_hits[0] + fresh_hits[1], truth_n[0] + truth_n[1]),
        recall_live_added: ratio(live_hits[1], truth_n[1]),
        recall_fresh_added: ratio(fresh_hits[1], truth_n[1]),
    })
}

/// An item and the word of its own its title carries.
type Marked = (Item, String);

/// The items the upsert phases add and change, each with a word of its own
/// in its title (which the visibility check searches): copies of built
/// items under new ids, and built items with a word added.
fn churn_items(args: &Args, catalog: &Catalog) -> (Vec<Marked>, Vec<Marked>) {
    let n = catalog.len();
    let inserts = (0..args.inserts)
        .map(|j| {
            let mut item = catalog.items()[(j * 7919 + 3) % n].clone();
            let word = format!("zq{j}x");
            item.id = format!("new-{j:06}");
            item.title = format!("{} {word}", item.title);
            item.vector = None;
            (item, word)
        })
        .collect();
    let step = (n / args.updates.max(1)).max(1);
    let updates = (0..args.updates)
        .map(|k| {
            let mut item = catalog.items()[(k * step + 2) % n].clone();
            let word = format!("up{k}x");
            item.title = format!("{} {word}", item.title);
            (item, word)
        })
        .collect();
    (inserts, updates)
}

/// What the compaction phase measured.
struct CompactionFigures {
    live_items: usize,
    live_deleted: usize,
    live_events: usize,
    items: usize,
    events: usize,
    seconds: f64,
    /// Ranker training, when the compaction retrained: seconds, and the
    /// held-out NDCG@10 of the new ranker and of the one it would replace.
    training: Option<(f64, f64, Option<f64>, bool)>,
    writes_paused_ms: f64,
    rss_before_mib: f64,
    peak_rss_mib: f64,
    during: Vec<f64>,
    reopen_ms: f64,
}

impl CompactionFigures {
    fn json(&self, idle_p99: f64) -> serde_json::Value {
        let (p50, p99) = percentiles(self.during.clone());
        json!({
            "live_before": {"upserted": self.live_items, "deleted": self.live_deleted, "events": self.live_events},
            "items": self.items, "events": self.events,
            "seconds": self.seconds, "writes_paused_ms": self.writes_paused_ms,
            "training": self.training.map(|(secs, ndcg, replaced, kept)| json!({"seconds": secs, "valid_ndcg": ndcg, "replaced_ndcg": replaced, "kept_incumbent": kept})),
            "rss_mib": {"before": self.rss_before_mib, "peak": self.peak_rss_mib},
            "recommend_ms_during": {"p50": p50, "p99": p99, "requests": self.during.len(), "p99_ratio": p99 / idle_p99},
            "reopen_ms": self.reopen_ms,
        })
    }

    fn print(&self, idle_p99: f64) {
        let (p50, p99) = percentiles(self.during.clone());
        eprintln!(
            "compaction of {} upserted and {} deleted items and {} live events: {:.1} s (writes paused {:.0} ms), \
             {} items and {} events in the new generation; peak RSS {:.0} MiB (the process held {:.0} MiB before); \
             recommend p50 / p99 meanwhile {p50:.2} / {p99:.2} ms ({} requests), p99 ratio {:.2}; Engine::open after it {:.0} ms",
            self.live_items,
            self.live_deleted,
            self.live_events,
            self.seconds,
            self.writes_paused_ms,
            self.items,
            self.events,
            self.peak_rss_mib,
            self.rss_before_mib,
            self.during.len(),
            p99 / idle_p99,
            self.reopen_ms
        );
        if let Some((secs, ndcg, replaced, kept)) = self.training {
            eprintln!(
                "  it retrained the ranker in {secs:.1} s: held-out NDCG@10 {ndcg:.4} against {} for the served one; {}",
                replaced.map_or("n/a".into(), |r| format!("{r:.4}")),
                if kept { "kept the served one" } else { "serves the new one" }
            );
        }
    }
}

/// A line of `/proc/self/status` in MiB (Linux; 0 elsewhere).
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Adds and changes the upsert phase's items on the churned copy (its
/// deletions and events already in its log), then compacts it while the
/// reader asks through an `EngineHandle`; the process's peak RSS is reset
/// first (Linux `clear_refs`), so the peak is the compaction's.
fn compaction_phase(args: &Args, scratch: &Path, catalog: &Catalog, reqs: &[Request]) -> Result<CompactionFigures> {
    let handle = EngineHandle::open(scratch)?;
    let (inserts, updates) = churn_items(args, catalog);
    let items: Vec<Item> = inserts.into_iter().chain(updates).map(|(i, _)| i).collect();
    for chunk in items.chunks(args.upsert_batch.max(1)) {
        handle.upsert_items(chunk)?;
    }
    let live = handle.load().live_status()?;
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before_mib = status_mib("VmRSS:");
    let stop = AtomicBool::new(false);
    let (during, done) = std::thread::scope(|s| -> Result<_> {
        let h = s.spawn(|| reader(&handle, reqs, args.rate, &stop));
        let done = handle.compact(&Compaction::default().retrain_share(args.retrain_share));
        stop.store(true, Ordering::Relaxed);
        let during = h.join().unwrap_or_else(|_| bail!("the reader panicked"))?;
        Ok((during, done?))
    })?;
    let peak_rss_mib = status_mib("VmHWM:");
    drop(handle);
    let t = Instant::now();
    drop(Engine::open(scratch)?);
    Ok(CompactionFigures {
        live_items: live.upserted,
        live_deleted: live.deleted,
        live_events: live.events,
        items: done.items,
        events: done.events,
        seconds: done.duration.as_secs_f64(),
        training: done
            .training
            .as_ref()
            .map(|t| (t.seconds, t.valid_ndcg, t.replaced_ndcg, t.kept_incumbent)),
        writes_paused_ms: done.writes_paused.as_secs_f64() * 1e3,
        rss_before_mib,
        peak_rss_mib,
        during,
        reopen_ms: t.elapsed().as_secs_f64() * 1e3,
    })
}
