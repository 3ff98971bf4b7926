#!/usr/bin/env bash
# Runs the whole test suite on a fresh or warm machine: setup (idempotent), build, ctest.
#   scripts/test.sh                 # everything
#   scripts/test.sh -R config       # extra arguments go to ctest
#   scripts/test.sh --no-unity      # compiles the libraries and the CLI one source file a translation unit
#                                   # (CMAKE_UNITY_BUILD=OFF, in build-nounity): each file must include what it
#                                   # uses instead of leaning on the files batched before it (docs/install.md)
#   scripts/test.sh --sanitize      # the fuzz pass instead: the input readers under ASan/UBSan in build-asan
#                                   # (FUZZ_ITERATIONS=N mutated inputs per reader, default 3000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
sanitize=0 nounity=0
if [ "${1:-}" = "--sanitize" ]; then sanitize=1; shift; fi
if [ "${1:-}" = "--no-unity" ]; then nounity=1; shift; fi
scripts/setup.sh
export CCACHE_DIR="${CCACHE_DIR:-${PHANTOM_CACHE:-$HOME/.cache/phantom}/ccache}"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1  # cache hits across clones in other directories
JOBS="${JOBS:-$(nproc)}"
if [ "$sanitize" = 1 ]; then
  ASAN_DIR="${ASAN_DIR:-build-asan}"
  cmake -S . -B "$ASAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHANTOM_BUILD_TESTS=OFF -DPHANTOM_FUZZ=ON \
    -DPHANTOM_FUZZ_ITERATIONS="${FUZZ_ITERATIONS:-3000}" \
    -DCMAKE_PREFIX_PATH="$(cat .venv/.phantom-torch-prefix)" -DPython3_EXECUTABLE="$ROOT/.venv/bin/python" \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
  echo "[test] building the sanitizer fuzz target ($JOBS jobs)"
  cmake --build "$ASAN_DIR" --target phantom_fuzz -j "$JOBS"
  cd "$ASAN_DIR"
  ctest -L fuzz --output-on-failure "$@"
  exit
fi
if [ "$nounity" = 1 ]; then
  # The torch precompiled header (phantom/model/pch.h: torch, nlohmann/json, logf.h) stays force-included: without
  # it every file would parse torch alone (~3x the CPU); what this catches is a missing project or standard header.
  NOUNITY_DIR="${NOUNITY_DIR:-build-nounity}"
  cmake -S . -B "$NOUNITY_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_UNITY_BUILD=OFF -DPHANTOM_BUILD_TESTS=OFF \
    -DCMAKE_PREFIX_PATH="$(cat .venv/.phantom-torch-prefix)" -DPython3_EXECUTABLE="$ROOT/.venv/bin/python" \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
  echo "[test] building the libraries and the CLI without unity batches ($JOBS jobs)"
  cmake --build "$NOUNITY_DIR" --target phantom -j "$JOBS"
  exit
fi
BUILD_DIR="${BUILD_DIR:-build}"
echo "[test] building ($JOBS jobs)"
cmake --build "$BUILD_DIR" -j "$JOBS"
echo "[test] running ctest"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$JOBS" "$@"
