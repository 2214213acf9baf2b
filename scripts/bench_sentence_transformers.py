#!/usr/bin/env python3
"""Peer benchmark: sentence-transformers (PyTorch, CPU) encoding throughput and query latency.

    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python scripts/bench_sentence_transformers.py \\
        --model models/all-MiniLM-L6-v2 --texts texts.txt [--threads 2] [--batch-size 32] \\
        [--repeats 3] [--queries queries.txt] [--dump-vectors st.f32]

(venv setup: see scripts/encoder_reference.py.)

Throughput: torch.set_num_threads(--threads), one warm-up batch, then --repeats
passes of model.encode(all texts, batch_size) (ST sorts by length, pads per batch,
truncates to max_seq_length 256); texts_per_s_median is the median over passes.

Latency: torch.set_num_threads(1), each query encoded alone (encode([q])), as a
server would for one incoming query; 3 passes after a warm-up pass, p50/p99 over
all timed calls, in ms. Queries come from --queries (one per line) or default to
the first 200 texts cut to their first 4 words. Includes ST's per-call Python
overhead (tokenization, tensor conversion), as a real caller would pay.
Prints one JSON object on stdout.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def percentile(sorted_vals, p):
    # nearest-rank percentile
    k = max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--texts", required=True, help="one text per line")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--queries", help="one query per line (default: first 200 texts, 4 words each)")
    ap.add_argument("--latency-passes", type=int, default=3)
    ap.add_argument("--dump-vectors", help="write the texts' vectors here: float32, little-endian, texts x dim")
    args = ap.parse_args()

    texts = read_lines(args.texts)
    if args.queries:
        queries = read_lines(args.queries)
    else:
        queries = [" ".join(t.split()[:4]) for t in texts[:200]]

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model, device="cpu")
    kw = dict(batch_size=args.batch_size, normalize_embeddings=False,
              convert_to_numpy=True, show_progress_bar=False)

    with torch.inference_mode():
        model.encode(texts[: args.batch_size], **kw)  # warm-up
        runs, cpu_per_wall = [], []
        for _ in range(args.repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            emb = model.encode(texts, **kw)
            dt = time.perf_counter() - t0
            runs.append(round(len(texts) / dt, 2))
            cpu_per_wall.append(round((time.process_time() - c0) / dt, 2))
        assert emb.shape[0] == len(texts)
        if args.dump_vectors:
            emb.astype("<f4").tofile(args.dump_vectors)

        torch.set_num_threads(1)
        qkw = dict(kw, batch_size=1)
        for q in queries:  # warm-up pass
            model.encode([q], **qkw)
        lat = []
        for _ in range(args.latency_passes):
            for q in queries:
                t0 = time.perf_counter()
                model.encode([q], **qkw)
                lat.append((time.perf_counter() - t0) * 1e3)
    lat.sort()

    out = {
        "producer": "sentence-transformers %s, torch %s"
        % (sentence_transformers.__version__, torch.__version__),
        "texts": len(texts),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "max_seq_length": model.max_seq_length,
        "texts_per_s_median": round(statistics.median(runs), 2),
        "texts_per_s_max": max(runs),  # least disturbed pass on a shared machine
        "runs": runs,  # texts/s of each pass
        # process CPU seconds per wall second in each pass: well below --threads
        # means the cores were shared with other work and the pass is unreliable
        "runs_cpu_per_wall": cpu_per_wall,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "query_threads": 1,
        "queries": len(queries),
        "query_passes": args.latency_passes,
        "query_p50_ms": round(percentile(lat, 50), 3),
        "query_p99_ms": round(percentile(lat, 99), 3),
        "query_mean_ms": round(statistics.fmean(lat), 3),
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
