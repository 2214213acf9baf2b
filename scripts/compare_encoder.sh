#!/usr/bin/env bash
# The sentence encoder against its reference implementation, on the same texts
# and machine, one after the other: twostage's encoder (examples/bench_encoder)
# and sentence-transformers on PyTorch (scripts/bench_sentence_transformers.py),
# then the cosine between the two encoders' vectors of every text.
#
#   python3 -m venv /tmp/st-venv && /tmp/st-venv/bin/pip install torch sentence-transformers
#   ST_PYTHON=/tmp/st-venv/bin/python scripts/compare_encoder.sh \
#       [--items data/music/items.jsonl] [--queries data/music/queries.jsonl] [--limit N] \
#       [--bin path/to/bench_encoder] [--f32] [--repeats 3]
#
# Real-length texts: --items data/manpages/items.jsonl --queries
# data/manpages/queries.jsonl --limit 2000 (scripts/fetch_manpages.sh makes
# them). Texts are the items as the index builder composes them; queries are
# the `query` field of each line. --bin takes a prebuilt binary, so a
# comparison needs no rebuild (default: build the example in release mode).
# Throughput uses every core; query latency one thread.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${MODEL:-models/all-MiniLM-L6-v2}"
py="${ST_PYTHON:-python3}"
out="${OUT:-target/encoder-compare}"
items=data/music/items.jsonl
queries=data/music/queries.jsonl
limit=0
bin=""
repeats=3
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items="$2"; shift 2 ;;
    --queries) queries="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --f32) extra+=(--f32); shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
scripts/fetch_minilm.sh "$model" >/dev/null
if [ -z "$bin" ]; then
  cargo build --release --example bench_encoder
  bin=target/release/examples/bench_encoder
fi
threads="$(nproc)"

echo "== twostage ($bin)"
"$bin" --model "$model" --json --items "$items" --queries "$queries" --limit "$limit" --repeats "$repeats" \
  "${extra[@]}" --dump-texts "$out/texts.txt" --dump-queries "$out/queries.txt" \
  --dump-vectors "$out/twostage.f32" | tee "$out/twostage.json"
echo "== sentence-transformers (PyTorch)"
HF_HUB_OFFLINE=1 "$py" scripts/bench_sentence_transformers.py --model "$model" \
  --texts "$out/texts.txt" --queries "$out/queries.txt" --threads "$threads" --batch-size 32 \
  --repeats "$repeats" --dump-vectors "$out/sentence_transformers.f32" \
  | tee "$out/sentence_transformers.json"

"$py" - "$out" <<'PY'
import json, sys
import numpy as np
out = sys.argv[1]
ours, peer = (json.load(open(f"{out}/{n}.json")) for n in ("twostage", "sentence_transformers"))
q, t = ours["query_latency_ms"], ours["item_throughput"]
a = np.fromfile(f"{out}/twostage.f32", dtype="<f4").reshape(t["texts"], -1).astype(np.float64)
b = np.fromfile(f"{out}/sentence_transformers.f32", dtype="<f4").reshape(t["texts"], -1).astype(np.float64)
cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
print()
print(f"{t['texts']} texts, {t['mean_tokens']:.1f} word pieces on average; "
      f"{q['queries']} queries, {q['mean_tokens']:.1f} on average; twostage arithmetic {ours.get('arithmetic', '?')}")
print(f"{'':<34}{'twostage':>12}{'sentence-transformers':>24}{'ratio':>9}")
rows = [
    ("query p50, 1 thread (ms)", q["p50"], peer["query_p50_ms"]),
    ("query p99, 1 thread (ms)", q["p99"], peer["query_p99_ms"]),
    ("items/s, median, all cores", t["texts_per_s_median"], peer["texts_per_s_median"]),
    ("items/s, best pass", max(t["runs"]), max(peer["runs"])),
]
for name, x, y in rows:
    print(f"{name:<34}{x:>12.2f}{y:>24.2f}{x / y:>8.2f}x")
print(f"cosine to sentence-transformers per text: mean {cos.mean():.7f}, "
      f"min {cos.min():.7f}, 1st percentile {np.percentile(cos, 1):.7f}")
PY
