#!/usr/bin/env bash
# ANN side by side on fashion-mnist (M=16, efC=200, 1 thread, one query at a
# time): twostage (examples/bench_ann, f16 and f32 layouts) and hnswlib +
# faiss (scripts/ann_reference.py), alternating in ROUNDS rounds in one run so
# all systems see the same machine load. Indexes and ground truth are built
# in round 1 and cached under OUT/cache for the later rounds.
# Usage: scripts/compare_ann.sh [EF_LIST] [OUT_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
EF="${1:-16,20,24,32,40,64}"
OUT="${2:-target/bench}"
ROUNDS="${3:-3}"
mkdir -p "$OUT/cache"
BIN="${BENCH_ANN:-}"
if [ -z "$BIN" ]; then
    cargo build --release --example bench_ann
    BIN="${CARGO_TARGET_DIR:-target}/release/examples/bench_ann"
fi
for r in $(seq 1 "$ROUNDS"); do
    "$BIN" --ef "$EF" --threads 1 --layout f16,f32 --repeats 3 --cache "$OUT/cache" --json \
        --csv "$OUT/ann-round$r.csv" --png "$OUT/ann-round$r.png" > "$OUT/ann-round$r.json"
    scripts/ann_reference.sh --ef "$EF" --repeats 3 --cache "$OUT/cache" --json "$OUT/ref-round$r.json"
done
# All-threads curve for twostage, once.
"$BIN" --ef "$EF" --threads 1,0 --layout f16 --repeats 3 --cache "$OUT/cache" --json \
    --csv "$OUT/ann.csv" --png "$OUT/ann.png" > "$OUT/ann.json"
python3 scripts/ann_summary.py "$OUT" "$ROUNDS"
