#!/usr/bin/env bash
# The embedded default job, end to end on a fresh machine: setup, build, then the demo recipe
# (configs/demo.yaml): a tiny Phantom model trained on Fashion-MNIST triples, evaluated on the held-out set.
#   scripts/demo.sh [key=value ...]     # overrides go to `phantom train`
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
export CCACHE_DIR="${CCACHE_DIR:-${PHANTOM_CACHE:-$HOME/.cache/phantom}/ccache}"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1  # cache hits across clones in other directories
BUILD_DIR="${BUILD_DIR:-build}"
cmake --build "$BUILD_DIR" -j "$(nproc)" --target phantom
echo "[demo] runtime:"
"$BUILD_DIR/phantom" info
echo "[demo] resolving configs/demo.yaml"
"$BUILD_DIR/phantom" train --config configs/demo.yaml --dry-run "$@"
echo "[demo] the resolved config is in runs/demo/config.yaml"
echo "[demo] what exists end to end today: setup, build, config resolution, run directory."
echo "[demo] still missing for the full demo: the model (issue 4), data pipeline (issue 5), trainer (issue 6), eval (issue 8)."
