#!/usr/bin/env bash
# The Spark job in spark/ against the in-process build, on data/music: the
# log artefacts each computes must be equal (counts and neighbour lists
# exactly), and the indexes built from each must serve the same
# co-visitation and popularity lists. Exits non-zero on any difference.
#
# Installs PySpark from PyPI into a virtual environment of its own
# (target/spark-venv; SPARK_VENV overrides) and runs Spark in local mode on
# the machine's Java (17 or later). Nothing here is part of `cargo build`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYSPARK_VERSION=3.5.3
VENV=${SPARK_VENV:-target/spark-venv}
WORK=target/spark-equivalence

command -v java >/dev/null || { echo "spark_equivalence: java (17 or later) is needed" >&2; exit 1; }
if ! "$VENV/bin/python" -c "import pyspark; assert pyspark.__version__ == '$PYSPARK_VERSION'" 2>/dev/null; then
    echo "== pip install pyspark==$PYSPARK_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "pyspark==$PYSPARK_VERSION"
fi
PY="$VENV/bin/python"
export PYSPARK_PYTHON="$PWD/$PY" SPARK_LOCAL_IP=127.0.0.1
# Local mode on two cores, quiet: the job's own line and ours are the output.
export PYSPARK_SUBMIT_ARGS="--master local[2] --driver-memory 4g --conf spark.ui.enabled=false --conf spark.ui.showConsoleProgress=false --conf spark.sql.shuffle.partitions=8 pyspark-shell"

rm -rf "$WORK" && mkdir -p "$WORK"

python3 spark/edge_log.py "$WORK/edge.jsonl"
echo "== event logs -> Parquet (one file each, in file order)"
"$PY" - "$WORK" <<'PY'
import sys
from pyspark.sql import SparkSession
sys.path.insert(0, "spark")
from log_artefacts import EVENT_SCHEMA
work = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
# One input partition and coalesce(1): the rows keep the file's order.
for source, name in [("data/music/events.jsonl", "music"), (f"{work}/edge.jsonl", "edge")]:
    spark.read.schema(EVENT_SCHEMA).json(source).coalesce(1).write.parquet(f"{work}/{name}-events")
PY
EVENTS=$(ls "$WORK"/music-events/part-*.parquet)
EDGE=$(ls "$WORK"/edge-events/part-*.parquet)

# The test profile's build (dependencies optimised), shared with `cargo test --all-features`.
cargo build --all-features --example check_artefacts
CHECK=target/debug/examples/check_artefacts

echo "== Spark: log artefacts with the ranker's 3 training windows, co-occurrence cut to 128 partners (the 6,000-item catalog's restricted linear fit)"
"$PY" spark/log_artefacts.py --catalog data/music/items.jsonl --events "$EVENTS" --out "$WORK/spark-128" --training-windows 3
"$CHECK" --items data/music/items.jsonl --events "$EVENTS" --artefacts "$WORK/spark-128" --work "$WORK/indexes" --training-windows 3

echo "== Spark: log artefacts, every co-occurrence partner (an exactly fitted catalog's)"
"$PY" spark/log_artefacts.py --catalog data/music/items.jsonl --events "$EVENTS" --out "$WORK/spark-all" --cooccurrence-kept all
"$CHECK" --items data/music/items.jsonl --events "$EVENTS" --artefacts "$WORK/spark-all" --work "$WORK/indexes" \
    --max-dense-items 6000 --no-build

echo "== Spark: log artefacts of the edge-case log (ties, gaps at the limit, explicit sessions, repeats, skips, searches, impressions), training windows subsampled to 40 requests"
"$PY" spark/log_artefacts.py --catalog data/music/items.jsonl --events "$EDGE" --out "$WORK/spark-edge" \
    --training-windows 4 --max-lists 40
"$CHECK" --items data/music/items.jsonl --events "$EDGE" --artefacts "$WORK/spark-edge" --work "$WORK/indexes" \
    --training-windows 4 --max-lists 40

echo "spark_equivalence: equal"
