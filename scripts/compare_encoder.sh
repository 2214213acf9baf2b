#!/usr/bin/env bash
# The sentence encoder against its reference implementation, on the same texts
# and machine, one after the other: twostage's candle encoder
# (examples/bench_encoder) and sentence-transformers on PyTorch
# (scripts/bench_sentence_transformers.py).
#
#   python3 -m venv /tmp/st-venv && /tmp/st-venv/bin/pip install torch sentence-transformers
#   ST_PYTHON=/tmp/st-venv/bin/python scripts/compare_encoder.sh
#
# Texts: the item texts of data/music as the index builder composes them
# (6,000 texts, about 37 word pieces each); queries: the 300 graded queries of
# data/music. Throughput uses every core; query latency one thread.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${MODEL:-models/all-MiniLM-L6-v2}"
py="${ST_PYTHON:-python3}"
out="${OUT:-target/encoder-compare}"
mkdir -p "$out"
scripts/fetch_minilm.sh "$model" >/dev/null
cargo build --release --example bench_encoder
threads="$(nproc)"

echo "== twostage (candle)"
./target/release/examples/bench_encoder --model "$model" --json \
  --dump-texts "$out/texts.txt" --dump-queries "$out/queries.txt" | tee "$out/twostage.json"
echo "== sentence-transformers (PyTorch)"
HF_HUB_OFFLINE=1 "$py" scripts/bench_sentence_transformers.py --model "$model" \
  --texts "$out/texts.txt" --queries "$out/queries.txt" --threads "$threads" --batch-size 32 --repeats 3 \
  | tee "$out/sentence_transformers.json"

python3 - "$out/twostage.json" "$out/sentence_transformers.json" <<'PY'
import json, sys
ours, peer = (json.load(open(p)) for p in sys.argv[1:3])
q, t = ours["query_latency_ms"], ours["item_throughput"]
print()
print(f"{'':<34}{'twostage':>12}{'sentence-transformers':>24}")
print(f"{'query p50, 1 thread (ms)':<34}{q['p50']:>12.2f}{peer['query_p50_ms']:>24.2f}")
print(f"{'query p99, 1 thread (ms)':<34}{q['p99']:>12.2f}{peer['query_p99_ms']:>24.2f}")
print(f"{'items/s, median, all cores':<34}{t['texts_per_s_median']:>12.0f}{peer['texts_per_s_median']:>24.0f}")
print(f"{'items/s, best pass':<34}{max(t['runs']):>12.0f}{max(peer['runs']):>24.0f}")
PY
