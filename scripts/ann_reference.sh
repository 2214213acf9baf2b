#!/usr/bin/env bash
# Runs scripts/ann_reference.py (hnswlib and faiss HNSW on fashion-mnist) in a
# virtual environment, creating it on first use: pip install hnswlib faiss-cpu numpy.
# Usage: scripts/ann_reference.sh [ann_reference.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TWOSTAGE_VENV:-target/ann-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q hnswlib faiss-cpu numpy
fi
exec "$VENV/bin/python" scripts/ann_reference.py "$@"
