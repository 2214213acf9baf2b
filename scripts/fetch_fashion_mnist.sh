#!/usr/bin/env bash
# Installs fashion-mnist (Debian package dataset-fashion-mnist, IDX files under
# /usr/share/datasets/fashion-mnist/) and a font for the benchmark plots.
# examples/bench_ann reads the .gz files there; --dir points elsewhere.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
$SUDO apt-get update
$SUDO apt-get install -y dataset-fashion-mnist fonts-dejavu-core
ls -l /usr/share/datasets/fashion-mnist/
