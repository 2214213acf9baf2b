#!/usr/bin/env bash
# Builds the WordNet reverse-dictionary task in data/wordnet (not committed,
# see .gitignore). Installs Debian's wordnet-base (WordNet 3.0, Princeton;
# /usr/share/wordnet) if its data files are missing. Idempotent: the output
# is deterministic for a given seed. Extra arguments go to wordnet_task.py.
set -euo pipefail
cd "$(dirname "$0")/.."
wn="${WORDNET_DIR:-/usr/share/wordnet}"
missing=0
for f in data.noun data.verb data.adj data.adv; do
  [ -f "$wn/$f" ] || missing=1
done
if [ "$missing" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wordnet-base
fi
python3 scripts/wordnet_task.py --wordnet "$wn" --out data/wordnet "$@"
