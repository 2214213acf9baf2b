#!/usr/bin/env bash
# ANN side by side on fashion-mnist (M=16, efC=200, 1 thread, one query at a
# time): twostage (examples/bench_ann) then hnswlib and faiss
# (scripts/ann_reference.py), in one run so they share the machine's state.
# Usage: scripts/compare_ann.sh [EF_LIST] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
EF="${1:-16,20,24,32,40,64}"
OUT="${2:-target/bench}"
mkdir -p "$OUT"
BIN="${BENCH_ANN:-}"
if [ -z "$BIN" ]; then
    cargo build --release --example bench_ann
    BIN="${CARGO_TARGET_DIR:-target}/release/examples/bench_ann"
fi
"$BIN" --ef "$EF" --threads 1,0 --layout f16,f32 --json --csv "$OUT/ann.csv" --png "$OUT/ann.png" > "$OUT/ann.json"
scripts/ann_reference.sh --ef "$EF" --json "$OUT/ann_reference.json"
