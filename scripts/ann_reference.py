#!/usr/bin/env python3
"""hnswlib and faiss HNSW on the same data and parameters as examples/bench_ann.

    scripts/ann_reference.sh --ef 16,20,32 --libs hnswlib,faiss   # creates the venv on first use
    python3 scripts/ann_reference.py --dir /usr/share/datasets/fashion-mnist --json out.json

fashion-mnist-784-euclidean: 60,000 train images as base, test images as queries,
raw pixel values as float32, L2. Ground truth is exact brute force (numpy).
Search is single-threaded and one query at a time (knn_query / search on a 1-row
array), as in bench_ann; q/s is the median of --repeats passes. The per-call
Python overhead (a few microseconds) is included, which favours the Rust side
slightly; the batch column (all queries in one call, 1 thread) has no such
overhead and is printed for comparison.
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import time

import numpy as np


def load_idx(path, limit=None):
    if os.path.exists(path):
        data = open(path, "rb").read()
    else:
        data = gzip.open(path + ".gz", "rb").read()
    magic, n, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    assert magic == 0x0803, path
    n = int(n) if limit is None else min(int(n), limit)
    dim = int(rows) * int(cols)
    arr = np.frombuffer(data[16:16 + n * dim], dtype=np.uint8).reshape(n, dim)
    return arr.astype(np.float32)


def ground_truth(base, queries, k):
    base_sq = (base.astype(np.float64) ** 2).sum(1)
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), 500):
        q = queries[s:s + 500].astype(np.float64)
        d = base_sq[None, :] - 2.0 * q @ base.astype(np.float64).T
        idx = np.argpartition(d, k, axis=1)[:, :k]
        out[s:s + 500] = idx
    return out


def recall(found, truth, k):
    hit = sum(len(set(f[:k]) & set(t)) for f, t in zip(found, truth))
    return hit / (k * len(truth))


def timed(fn, nq, repeats):
    passes, res = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        res = fn()
        passes.append(nq / (time.perf_counter() - t))
    return statistics.median(passes), passes, res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", default="10,16,20,24,32,40,64,100,200")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--libs", default="hnswlib,faiss")
    ap.add_argument("--build-threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", default=None, help="write results here")
    ap.add_argument("--cache", default=None, help="directory to keep built indexes and ground truth in")
    a = ap.parse_args()
    efs = [int(x) for x in a.ef.split(",")]
    libs = a.libs.split(",")

    base = load_idx(os.path.join(a.dir, "train-images-idx3-ubyte"))
    queries = load_idx(os.path.join(a.dir, "t10k-images-idx3-ubyte"), a.queries)
    n, dim = base.shape
    nq = len(queries)
    t = time.perf_counter()
    cache = (lambda name: os.path.join(a.cache, f"fmnist-m{a.m}-efc{a.ef_construction}-q{nq}-k{a.k}.{name}")) if a.cache else None
    if cache:
        os.makedirs(a.cache, exist_ok=True)
    if cache and os.path.exists(cache("truth.npy")):
        truth = np.load(cache("truth.npy"))
    else:
        truth = ground_truth(base, queries, a.k)
        if cache:
            np.save(cache("truth.npy"), truth)
    print(f"{n} base x {dim}, {nq} queries; ground truth {time.perf_counter() - t:.1f}s", file=sys.stderr)

    rows = []
    result = {"n": n, "dim": dim, "queries": nq, "m": a.m, "ef_construction": a.ef_construction, "k": a.k, "libs": {}}
    for lib in libs:
        if lib == "hnswlib":
            import hnswlib
            idx = hnswlib.Index(space="l2", dim=dim)
            if cache and os.path.exists(cache("hnswlib")):
                idx.load_index(cache("hnswlib"), max_elements=n)
                build_s = float(open(cache("hnswlib.build_s")).read())
            else:
                idx.init_index(max_elements=n, M=a.m, ef_construction=a.ef_construction, random_seed=100)
                idx.set_num_threads(a.build_threads)
                t = time.perf_counter()
                idx.add_items(base, np.arange(n))
                build_s = time.perf_counter() - t
                if cache:
                    idx.save_index(cache("hnswlib"))
                    open(cache("hnswlib.build_s"), "w").write(str(build_s))
            idx.set_num_threads(1)

            def set_ef(ef):
                idx.set_ef(ef)

            def one_at_a_time():
                return [idx.knn_query(q[None, :], k=a.k)[0][0] for q in queries]

            def batch():
                return idx.knn_query(queries, k=a.k)[0]
            try:
                from importlib.metadata import version as _v
                version = _v("hnswlib")
            except Exception:
                version = "?"
        elif lib == "faiss":
            import faiss
            faiss.omp_set_num_threads(a.build_threads)
            if cache and os.path.exists(cache("faiss")):
                idx = faiss.read_index(cache("faiss"))
                build_s = float(open(cache("faiss.build_s")).read())
            else:
                idx = faiss.IndexHNSWFlat(dim, a.m)
                idx.hnsw.efConstruction = a.ef_construction
                t = time.perf_counter()
                idx.add(base)
                build_s = time.perf_counter() - t
                if cache:
                    faiss.write_index(idx, cache("faiss"))
                    open(cache("faiss.build_s"), "w").write(str(build_s))
            faiss.omp_set_num_threads(1)

            def set_ef(ef):
                idx.hnsw.efSearch = ef

            def one_at_a_time():
                return [idx.search(q[None, :], a.k)[1][0] for q in queries]

            def batch():
                return idx.search(queries, a.k)[1]
            version = faiss.__version__
        else:
            raise SystemExit(f"unknown lib {lib}")
        print(f"{lib} {version}: build {build_s:.1f}s on {a.build_threads} threads", file=sys.stderr)
        # Warm-up.
        set_ef(64)
        saved = queries
        queries = saved[:500]
        one_at_a_time()
        queries = saved
        lib_rows = []
        for ef in efs:
            set_ef(ef)
            qps, passes, res = timed(one_at_a_time, nq, a.repeats)
            bqps, _, bres = timed(batch, nq, 1)
            r = recall(res, truth, a.k)
            row = {"lib": lib, "ef": ef, f"recall@{a.k}": r, "qps": qps, "qps_passes": passes,
                   "qps_batch_1thread": bqps, "threads": 1}
            lib_rows.append(row)
            print(f"{lib:8} ef {ef:4}  recall@{a.k} {r:.4f}  {qps:8.0f} q/s one-at-a-time "
                  f"(passes {' '.join(f'{p:.0f}' for p in passes)}), {bqps:8.0f} q/s batch", file=sys.stderr)
        result["libs"][lib] = {"version": version, "build_s": build_s, "build_threads": a.build_threads, "rows": lib_rows}
        rows += lib_rows
        del idx

    print(f"\n| lib | ef | recall@{a.k} | q/s (1 thread, one query per call) | q/s (1 thread, batch call) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['lib']} | {r['ef']} | {r[f'recall@{a.k}']:.4f} | {r['qps']:.0f} | {r['qps_batch_1thread']:.0f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
