#!/usr/bin/env bash
# Log artefacts in process against the Spark job (local mode, 2 cores), on
# synthetic music logs over a 100,000-track catalog: wall time and peak
# memory of each (BENCHMARKS.md, "Log artefacts: in process or on Spark").
#
#   scripts/bench_artefacts.sh [USERS...]     # default: 20500 (≈1M events) 198000 (≈10M) 595000 (≈30M)
#
# Each log is generated, converted to one Parquet file (not timed), then
# both producers read that file and write the five artefacts. Data goes to
# $BENCH_DIR (default /tmp/twostage-artefacts), several GB at 30M events.
# PRODUCERS="in-process" (or "spark") runs only one of the two.
# TRAINING_WINDOWS=3 has both also write the ranker's training windows.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${BENCH_DIR:-/tmp/twostage-artefacts}
VENV=${SPARK_VENV:-target/spark-venv}
SPARK_MEMORY=${SPARK_MEMORY:-8g}
PRODUCERS=${PRODUCERS:-in-process spark}
TRAINING=()
[ -n "${TRAINING_WINDOWS:-}" ] && TRAINING=(--training-windows "$TRAINING_WINDOWS")
[ -x "$VENV/bin/python" ] || { echo "run scripts/spark_equivalence.sh once first (it installs PySpark into $VENV)" >&2; exit 1; }
export PYSPARK_PYTHON="$PWD/$VENV/bin/python" SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_SUBMIT_ARGS="--master local[2] --driver-memory $SPARK_MEMORY --conf spark.ui.enabled=false --conf spark.ui.showConsoleProgress=false --conf spark.sql.shuffle.partitions=16 pyspark-shell"

cargo build --release --features harness --example generate_music_data
cargo build --release --features parquet --example log_artefacts
mkdir -p "$DIR"
for users in "${@:-20500 198000 595000}"; do
    data="$DIR/u$users"
    if [ ! -e "$data/events-parquet/_SUCCESS" ]; then
        target/release/examples/generate_music_data --out "$data" --tracks 100000 --users "$users" | tail -2
        "$VENV/bin/python" - "$data" <<'PY'
import sys
from pyspark.sql import SparkSession
sys.path.insert(0, "spark")
from log_artefacts import EVENT_SCHEMA
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
# One output file in the JSON file's order (a range-sorted read of one file).
spark.read.schema(EVENT_SCHEMA).json(f"{sys.argv[1]}/events.jsonl").coalesce(1).write.mode("overwrite").parquet(f"{sys.argv[1]}/events-parquet")
PY
    fi
    events=$(ls "$data"/events-parquet/part-*.parquet)
    echo "== $users users: $(wc -l < "$data/events.jsonl") events"
    if [[ " $PRODUCERS " == *" in-process "* ]]; then
        scripts/peak_rss.py target/release/examples/log_artefacts --items "$data/items.jsonl" --events "$events" --out "$data/in-process" "${TRAINING[@]}"
    fi
    if [[ " $PRODUCERS " == *" spark "* ]]; then
        scripts/peak_rss.py "$VENV/bin/python" spark/log_artefacts.py --catalog "$data/items.jsonl" --events "$events" --out "$data/spark" "${TRAINING[@]}" \
            2> >(grep -v "WARN\|log level\|setLogLevel" >&2)
    fi
done
