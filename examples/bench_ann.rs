//! Recall@k and queries per second of the crate's ANN retriever
//! (`twostage::retrieval::ann::AnnIndex`, the same type the engine serves
//! from) over a sweep of `ef`, single thread and on all threads.
//!
//! ```text
//! scripts/fetch_fashion_mnist.sh            # once: apt-get install dataset-fashion-mnist
//! cargo run --release --example bench_ann -- --dataset fashion-mnist
//! cargo run --release --example bench_ann -- --dataset synthetic --n 100000 --dim 128
//! cargo run --release --example bench_ann -- --json > ann.json
//! ```
//!
//! Ground truth is exact brute force (`AnnIndex::search_exact`). Timings are
//! the median of `--repeats` passes over all queries, one query at a time;
//! the machine may be shared, so compare figures measured in one run.

#[path = "common/report.rs"]
mod report;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, ValueEnum};
use rayon::prelude::*;
use serde_json::json;
use twostage::retrieval::ann::AnnIndex;
use twostage::rng::SplitMix64;
use twostage::vector;
use twostage::{AnnParams, Metric};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Dataset {
    /// fashion-mnist-784-euclidean: 60,000 train images as base, the 10,000
    /// test images as queries, raw pixel values, L2.
    FashionMnist,
    /// Gaussian clusters, any size and dimension.
    Synthetic,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MetricArg {
    L2,
    Cosine,
    Dot,
}

/// ANN recall/throughput benchmark.
#[derive(Parser)]
struct Args {
    /// Which data set.
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    dataset: Dataset,
    /// Directory with the fashion-mnist IDX files (plain or .gz).
    #[arg(long, default_value = "/usr/share/datasets/fashion-mnist")]
    dir: PathBuf,
    /// Synthetic: number of base vectors.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Synthetic: dimension.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Synthetic: number of clusters.
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Synthetic: random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of queries (fashion-mnist: at most 10,000).
    #[arg(long, default_value_t = 10_000)]
    queries: usize,
    /// Distance (fashion-mnist is defined with L2).
    #[arg(long, value_enum, default_value = "l2")]
    metric: MetricArg,
    /// HNSW max neighbours per node (layer 0 keeps 2 * m).
    #[arg(long, default_value_t = AnnParams::default().m)]
    m: usize,
    /// HNSW beam width while building.
    #[arg(long, default_value_t = AnnParams::default().ef_construction)]
    ef_construction: usize,
    /// ef_search values to sweep, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10,16,20,24,32,40,64,100,200")]
    ef: Vec<usize>,
    /// Neighbours per query (recall@k).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Timed passes per (ef, threads); the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Thread counts to measure, comma separated; 0 means all cores.
    #[arg(long, value_delimiter = ',', default_value = "1,0")]
    threads: Vec<usize>,
    /// Search layouts to measure, interleaved per ef: `f16` (half-precision
    /// packed copy + exact re-scoring, the default where supported) and/or
    /// `f32` (the plain vectors).
    #[arg(long, value_delimiter = ',', default_value = "f16")]
    layout: Vec<String>,
    /// Cache the built index and the ground truth in this directory and
    /// reuse them on the next run with the same data and parameters (lets a
    /// comparison script alternate systems in rounds without rebuilding).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Print one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// CSV output path.
    #[arg(long, default_value = "target/bench/ann.csv")]
    csv: PathBuf,
    /// PNG plot of the recall-QPS curve.
    #[arg(long, default_value = "target/bench/ann.png")]
    png: PathBuf,
}

/// Reads an IDX (ubyte) file, gzipped or not, as f32 rows.
fn load_idx(path: &Path, limit: usize) -> Result<(Vec<f32>, usize)> {
    let gz = path.with_file_name(format!("{}.gz", path.file_name().and_then(|s| s.to_str()).unwrap_or("")));
    let bytes = if path.exists() {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    } else {
        let f = std::fs::File::open(&gz)
            .with_context(|| format!("opening {} (run scripts/fetch_fashion_mnist.sh, or pass --dir)", gz.display()))?;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(f)
            .read_to_end(&mut out)
            .with_context(|| format!("decompressing {}", gz.display()))?;
        out
    };
    let be = |i: usize| -> Result<usize> {
        let b = bytes.get(i..i + 4).context("truncated IDX header")?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if be(0)? != 0x0803 {
        bail!("{}: not an IDX3 ubyte file", path.display());
    }
    let (n, rows, cols) = (be(4)?, be(8)?, be(12)?);
    let n = n.min(limit);
    let dim = rows * cols;
    let body = bytes.get(16..16 + n * dim).context("truncated IDX body")?;
    Ok((body.iter().map(|&x| f32::from(x)).collect(), dim))
}

/// Roughly standard normal: a centred sum of four uniforms (cheap, and
/// the same numbers on every platform).
fn gauss(rng: &mut SplitMix64) -> f32 {
    (0..4).map(|_| rng.next_f32()).sum::<f32>() * 1.732 - 3.464
}

/// `n` base and `nq` query vectors around `clusters` Gaussian centres.
fn synthetic(n: usize, nq: usize, dim: usize, clusters: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = SplitMix64::new(seed);
    let clusters = clusters.max(1);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| gauss(&mut rng) * 3.0).collect();
    let mut draw = |count: usize| {
        let mut out = Vec::with_capacity(count * dim);
        for _ in 0..count {
            let c = (rng.next_u64() % clusters as u64) as usize;
            for j in 0..dim {
                out.push(centres[c * dim + j] + gauss(&mut rng));
            }
        }
        out
    };
    let base = draw(n);
    let queries = draw(nq);
    (base, queries)
}

/// Exact top-`k` rows per query by brute force over the index's stored
/// vectors, in tiles (32 queries x 512 rows) so each tile of base vectors is
/// read from cache 32 times instead of streaming the whole base per query.
fn ground_truth(index: &AnnIndex, qs: &[&[f32]], k: usize, metric: Metric) -> Vec<Vec<u32>> {
    let n = index.len() as u32;
    let prepared: Vec<Vec<f32>> = qs
        .iter()
        .map(|q| {
            let mut v = q.to_vec();
            if metric == Metric::Cosine {
                vector::normalize(&mut v);
            }
            v
        })
        .collect();
    let dist = |q: &[f32], v: &[f32]| match metric {
        Metric::L2 => vector::l2_squared(q, v),
        Metric::Dot => -vector::dot(q, v),
        Metric::Cosine => 1.0 - vector::dot(q, v),
        // `--metric` parses to the three metrics above only.
        other => unreachable!("bench_ann has no exact distance for {other:?}"),
    };
    prepared
        .par_chunks(32)
        .flat_map_iter(|block| {
            let mut best: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(k + 1); block.len()];
            let mut start = 0u32;
            while start < n {
                let end = (start + 512).min(n);
                for (q, b) in block.iter().zip(best.iter_mut()) {
                    for row in start..end {
                        let Some(v) = index.vector(row) else { continue };
                        let d = dist(q, v);
                        if b.len() < k || d < b[b.len() - 1].0 {
                            let pos = b.partition_point(|x| x.0 <= d);
                            b.insert(pos, (d, row));
                            b.truncate(k);
                        }
                    }
                }
                start = end;
            }
            best.into_iter().map(|b| b.into_iter().map(|x| x.1).collect::<Vec<u32>>())
        })
        .collect()
}

/// One measured point.
struct Row {
    ef: usize,
    layout: &'static str,
    threads: usize,
    recall: f64,
    qps: f64,
    /// Per-pass queries/s, for the noise picture.
    passes: Vec<f64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (name, base, queries, dim) = match args.dataset {
        Dataset::FashionMnist => {
            let (base, dim) = load_idx(&args.dir.join("train-images-idx3-ubyte"), usize::MAX)?;
            let (q, _) = load_idx(&args.dir.join("t10k-images-idx3-ubyte"), args.queries)?;
            ("fashion-mnist-784-euclidean".to_string(), base, q, dim)
        }
        Dataset::Synthetic => {
            let (b, q) = synthetic(args.n, args.queries, args.dim, args.clusters, args.seed);
            (
                format!("synthetic-{}x{}-{}clusters", args.n, args.dim, args.clusters),
                b,
                q,
                args.dim,
            )
        }
    };
    let metric = match args.metric {
        MetricArg::L2 => Metric::L2,
        MetricArg::Cosine => Metric::Cosine,
        MetricArg::Dot => Metric::Dot,
    };
    let n = base.len() / dim;
    let nq = queries.len() / dim;
    let cores = rayon::current_num_threads();
    eprintln!(
        "{name}: {n} base x {dim}, {nq} queries, {metric:?}, M={} efC={}, kernel {}, {} on {cores} cores",
        args.m,
        args.ef_construction,
        vector::implementation(),
        report::cpu_model()
    );

    let params = AnnParams::default().m(args.m).ef_construction(args.ef_construction).parallel(true);
    let key = format!("{name}-{metric:?}-m{}-efc{}-q{nq}-k{}", args.m, args.ef_construction, args.k);
    let cached = |ext: &str| args.cache.as_ref().map(|d| d.join(format!("{key}.{ext}")));
    let bincode_cfg = bincode::config::standard();
    let t = Instant::now();
    let (mut index, build_s) = match cached("index").filter(|p| p.exists()) {
        Some(p) => {
            let bytes = std::fs::read(&p)?;
            let (idx, _): (AnnIndex, usize) = bincode::serde::decode_from_slice(&bytes, bincode_cfg)?;
            let build_s: f64 = std::fs::read_to_string(p.with_extension("build_s"))?.trim().parse()?;
            eprintln!(
                "loaded cached index {} in {:.1} s (built in {build_s:.1} s)",
                p.display(),
                t.elapsed().as_secs_f64()
            );
            (idx, build_s)
        }
        None => {
            let idx = AnnIndex::build(&base, dim, metric, &params)?;
            let build_s = t.elapsed().as_secs_f64();
            eprintln!("build: {build_s:.1} s on {cores} threads ({:.0} vectors/s)", n as f64 / build_s);
            if let Some(p) = cached("index") {
                std::fs::create_dir_all(p.parent().unwrap_or(Path::new(".")))?;
                std::fs::write(&p, bincode::serde::encode_to_vec(&idx, bincode_cfg)?)?;
                std::fs::write(p.with_extension("build_s"), format!("{build_s}"))?;
            }
            (idx, build_s)
        }
    };
    drop(base);

    let qs: Vec<&[f32]> = queries.chunks_exact(dim).collect();
    let t = Instant::now();
    let truth: Vec<Vec<u32>> = match cached("truth").filter(|p| p.exists()) {
        Some(p) => serde_json::from_slice(&std::fs::read(p)?)?,
        None => {
            let truth = ground_truth(&index, &qs, args.k, metric);
            if let Some(p) = cached("truth") {
                std::fs::write(p, serde_json::to_vec(&truth)?)?;
            }
            truth
        }
    };
    eprintln!("ground truth (exact, {cores} threads): {:.1} s", t.elapsed().as_secs_f64());
    // Spot-check the blocked brute force against the crate's own exact search.
    for (q, tr) in qs.iter().zip(&truth).step_by(997) {
        let ex: Vec<u32> = index.search_exact(q, args.k, |_| true)?.into_iter().map(|x| x.0).collect();
        let same = ex.iter().filter(|r| tr.contains(r)).count();
        if same + 1 < ex.len() {
            bail!("ground truth disagrees with AnnIndex::search_exact ({same}/{})", ex.len());
        }
    }

    let recall = |res: &[Vec<u32>]| -> f64 {
        let hit: usize = res
            .iter()
            .zip(&truth)
            .map(|(r, t)| r.iter().filter(|x| t.contains(x)).count())
            .sum();
        let total: usize = truth.iter().map(Vec::len).sum();
        hit as f64 / total.max(1) as f64
    };
    // Warm-up: page in the index. (Search errors are impossible for these
    // well-formed queries; an empty list would show as lost recall.)
    for q in qs.iter().take(500) {
        std::hint::black_box(index.search(q, args.k, 64, |_| true).unwrap_or_default());
    }

    let mut rows = Vec::new();
    for &ef in &args.ef {
        for layout in &args.layout {
            let packed = match layout.as_str() {
                "f16" => true,
                "f32" => false,
                other => bail!("unknown layout {other} (f16, f32)"),
            };
            index.set_reduced_precision(packed);
            let layout = if index.uses_reduced_precision() { "f16" } else { "f32" };
            let index = &index;
            let one = |q: &[f32], ef: usize| -> Vec<u32> {
                index
                    .search(q, args.k, ef, |_| true)
                    .map(|r| r.into_iter().map(|x| x.0).collect())
                    .unwrap_or_default()
            };
            for &threads in &args.threads {
                let threads = if threads == 0 { cores } else { threads };
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
                let mut passes = Vec::new();
                let mut last = Vec::new();
                for _ in 0..args.repeats.max(1) {
                    let t = Instant::now();
                    last = if threads == 1 {
                        qs.iter().map(|q| one(q, ef)).collect::<Vec<_>>()
                    } else {
                        pool.install(|| qs.par_iter().with_min_len(8).map(|q| one(q, ef)).collect::<Vec<_>>())
                    };
                    passes.push(nq as f64 / t.elapsed().as_secs_f64());
                }
                let row = Row {
                    ef,
                    threads,
                    layout,
                    recall: recall(&last),
                    qps: report::median(&passes),
                    passes,
                };
                eprintln!(
                    "ef {:>4}  {layout}  threads {threads}  recall@{} {:.4}  {:>8.0} q/s  (passes: {})",
                    row.ef,
                    args.k,
                    row.recall,
                    row.qps,
                    row.passes.iter().map(|p| format!("{p:.0}")).collect::<Vec<_>>().join(" ")
                );
                rows.push(row);
            }
        }
    }

    // The table.
    let mut table = format!(
        "\n| ef | layout | threads | recall@{} | q/s (median of {}) |\n|---:|---|---:|---:|---:|\n",
        args.k, args.repeats
    );
    for r in &rows {
        table += &format!("| {} | {} | {} | {:.4} | {:.0} |\n", r.ef, r.layout, r.threads, r.recall, r.qps);
    }
    table += &format!(
        "\nbuild {build_s:.1} s ({cores} threads), n={n}, dim={dim}, M={}, efC={}\n",
        args.m, args.ef_construction
    );

    if let Some(dir) = args.csv.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    report::write_csv(
        &args.csv,
        &[
            "dataset",
            "layout",
            "ef",
            "threads",
            "recall_at_k",
            "k",
            "qps",
            "m",
            "ef_construction",
            "build_s",
        ],
        &rows
            .iter()
            .map(|r| {
                vec![
                    name.clone(),
                    r.layout.to_string(),
                    r.ef.to_string(),
                    r.threads.to_string(),
                    format!("{:.5}", r.recall),
                    args.k.to_string(),
                    format!("{:.1}", r.qps),
                    args.m.to_string(),
                    args.ef_construction.to_string(),
                    format!("{build_s:.2}"),
                ]
            })
            .collect::<Vec<_>>(),
    )?;
    if let Some(dir) = args.png.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let mut keys: Vec<(usize, &str)> = rows.iter().map(|r| (r.threads, r.layout)).collect();
    keys.sort_unstable();
    keys.dedup();
    let series: Vec<report::Series> = keys
        .iter()
        .map(|&(t, l)| report::Series {
            name: format!("twostage {l}, {t} thread{}", if t == 1 { "" } else { "s" }),
            points: rows
                .iter()
                .filter(|r| r.threads == t && r.layout == l)
                .map(|r| (r.recall, r.qps))
                .collect(),
        })
        .collect();
    report::plot_lines(
        &args.png,
        &format!("{name}: M={} efC={}", args.m, args.ef_construction),
        &format!("recall@{}", args.k),
        "queries/s",
        &series,
        true,
    )?;

    if args.json {
        eprint!("{table}");
        let value = json!({
            "dataset": name,
            "n": n,
            "dim": dim,
            "queries": nq,
            "metric": format!("{metric:?}"),
            "m": args.m,
            "ef_construction": args.ef_construction,
            "k": args.k,
            "build_s": build_s,
            "build_threads": cores,
            "kernel": vector::implementation(),
            "cpu": report::cpu_model(),
            "rows": rows.iter().map(|r| json!({
                format!("recall@{}", args.k): r.recall,
                "ef": r.ef,
                "layout": r.layout,
                "qps": r.qps,
                "threads": r.threads,
                "qps_passes": r.passes,
            })).collect::<Vec<_>>(),
        });
        report::write_json(None, &value)?;
    } else {
        print!("{table}");
        println!("wrote {} and {}", args.csv.display(), args.png.display());
    }
    Ok(())
}
