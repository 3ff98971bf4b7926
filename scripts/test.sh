#!/usr/bin/env bash
# Runs the whole test suite on a fresh or warm machine: setup (idempotent), build, ctest.
#   scripts/test.sh                 # everything
#   scripts/test.sh -R config       # extra arguments go to ctest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
export CCACHE_DIR="${CCACHE_DIR:-${PHANTOM_CACHE:-$HOME/.cache/phantom}/ccache}"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1  # cache hits across clones in other directories
BUILD_DIR="${BUILD_DIR:-build}"
echo "[test] building ($(nproc) jobs)"
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "[test] running ctest"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
