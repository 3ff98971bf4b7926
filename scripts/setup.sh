#!/usr/bin/env bash
# Fresh-machine setup for phantom: Debian packages, the project's Python environment (LibTorch comes from the
# torch wheel), the demo data, and a configured CMake build directory.
#
#   scripts/setup.sh            # idempotent; a second run only checks and prints "nothing to do"
#
# Environment knobs:
#   PHANTOM_CACHE   where the venv and the compiler cache live (default ~/.cache/phantom). The project's .venv is
#                   a symlink to $PHANTOM_CACHE/venv so a fresh clone on the same machine reuses it.
#   BUILD_DIR       build directory (default build)
#   BUILD_TYPE      CMake build type (default RelWithDebInfo-like "Release"; tests use the same build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${PHANTOM_CACHE:-$HOME/.cache/phantom}"
BUILD_DIR="${BUILD_DIR:-build}"
BUILD_TYPE="${BUILD_TYPE:-Release}"
installed=()

say() { echo "[setup] $*"; }

# ---------------------------------------------------------------------------------------------------------------
# 1. Debian packages. Each entry: the package, and why we need it.
APT_PACKAGES=(
  build-essential        # g++
  cmake ninja-build      # build
  ccache lld             # compiler cache, fast linker
  libjpeg62-turbo-dev libpng-dev libwebp-dev  # image decoding (data/images): the libraries PIL decodes with
  libopencv-dev          # tests only: encodes test images, compares its resize with ours (the framework has no OpenCV)
  libyaml-cpp-dev        # configs
  libspdlog-dev          # logging
  catch2                 # tests (Catch2 v2, single header)
  libsentencepiece-dev   # SentencePiece tokenizers (InternLM2, Phi-3)
  sentencepiece          # spm_train CLI: trains the demo tokenizer
  nlohmann-json3-dev     # JSON datasets, HF config.json, safetensors headers
  libpcre2-dev           # Unicode regex for the byte-level BPE pre-tokenizer (Qwen2)
  libicu-dev             # Unicode NFC normalisation (the Qwen2 tokenizer's normalizer)
  libcurl4-openssl-dev   # HTTP(S) of `phantom data triples`' OpenAI-compatible endpoint source
  libssl-dev             # SHA-256 of its request cache keys (OpenSSL's libcrypto)
  libgloo-dev            # Gloo headers: LibTorch's ProcessGroupGloo (CPU data parallel) includes them
  dataset-fashion-mnist  # the embedded real dataset of the demo
  python3-venv           # the project's Python environment (tests and tools only)
)
pkg_names=()
for p in "${APT_PACKAGES[@]}"; do pkg_names+=("$p"); done
missing=()
for p in "${pkg_names[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  installed+=("apt: ${missing[*]}")
fi

# ---------------------------------------------------------------------------------------------------------------
# 2. Python environment: LibTorch comes from the torch wheel (same 2.11 build as the GPU machines); the rest are
#    the references our C++ is tested against. Pinned exactly; the stamp file records what was installed.
PY_REQS="scripts/requirements.txt"
VENV="$CACHE/venv"
stamp="$VENV/.phantom-requirements"
mkdir -p "$CACHE"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating Python venv at $VENV"
  python3 -m venv "$VENV"
  installed+=("venv: $VENV")
fi
if ! cmp -s "$PY_REQS" "$stamp"; then
  say "installing Python packages from $PY_REQS (torch brings its CUDA libraries: a few GB, once)"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$PY_REQS"
  cp "$PY_REQS" "$stamp"
  installed+=("pip: $(grep -v '^#' "$PY_REQS" | tr '\n' ' ')")
fi
if [ "$(readlink .venv 2>/dev/null)" != "$VENV" ]; then
  rm -rf .venv
  ln -s "$VENV" .venv
  installed+=("link: .venv -> $VENV")
fi

# ---------------------------------------------------------------------------------------------------------------
# 3. Compiler cache shared by every clone on this machine.
export CCACHE_DIR="${CCACHE_DIR:-$CACHE/ccache}"
mkdir -p "$CCACHE_DIR"
if [ ! -f "$CCACHE_DIR/ccache.conf" ]; then
  # PCH-friendly settings: without them ccache refuses every TU that uses the precompiled header.
  cat >"$CCACHE_DIR/ccache.conf" <<EOF
max_size = 8G
sloppiness = pch_defines,time_macros,include_file_mtime,include_file_ctime
compiler_check = content
EOF
  installed+=("ccache: $CCACHE_DIR")
fi

# ---------------------------------------------------------------------------------------------------------------
# 4. Configure CMake (only when not configured yet, or when the configuration inputs changed).
# Importing torch takes seconds: remember its CMake prefix next to the requirements stamp.
prefix_file="$VENV/.phantom-torch-prefix"
if [ ! -s "$prefix_file" ] || [ "$prefix_file" -ot "$stamp" ]; then
  "$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' >"$prefix_file"
fi
TORCH_PREFIX="$(cat "$prefix_file")"
cfg_key="$TORCH_PREFIX|$BUILD_TYPE|$(command -v nvcc || true)"
if [ ! -f "$BUILD_DIR/build.ninja" ] || [ "$(cat "$BUILD_DIR/.phantom-configured" 2>/dev/null)" != "$cfg_key" ]; then
  say "configuring CMake in $BUILD_DIR (LibTorch from $TORCH_PREFIX)"
  cmake -S . -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
    -DPython3_EXECUTABLE="$ROOT/.venv/bin/python" \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache >"$CACHE/cmake-configure.log" 2>&1 \
    || { cat "$CACHE/cmake-configure.log"; exit 1; }
  echo "$cfg_key" >"$BUILD_DIR/.phantom-configured"
  installed+=("cmake: configured $BUILD_DIR")
fi

if ((${#installed[@]})); then
  say "done; this run installed or changed:"
  for i in "${installed[@]}"; do echo "  - $i"; done
else
  say "nothing to do: every package, the venv ($VENV) and the build directory ($BUILD_DIR) are in place"
fi
