#!/usr/bin/env bash
# The launcher of a GPU bundle (copied to DIR/phantom by scripts/gpu/bundle.sh): runs DIR/bin/phantom with the
# bundled libraries and the LibTorch of a Python venv. Arguments go to phantom unchanged.
#   PHANTOM_PYTHON   the Python whose torch to use (default: python3 on PATH)
#   PHANTOM_TORCH_MISMATCH_OK=1   run even when that torch is not the version the bundle was built against
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PHANTOM_PYTHON:-python3}"
found=$("$PY" -c 'import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))' 2>/dev/null) || {
  echo "error: $PY cannot import torch; set PHANTOM_PYTHON to the venv's python" >&2; exit 1; }
version=$(sed -n 1p <<<"$found") torch_dir=$(sed -n 2p <<<"$found")
want=$(cat "$HERE/torch-version")
if [ "$version" != "$want" ] && [ "${PHANTOM_TORCH_MISMATCH_OK:-}" != 1 ]; then
  echo "error: $PY has torch $version, the bundle was built against $want (C++ ABI); set PHANTOM_TORCH_MISMATCH_OK=1 to try anyway" >&2
  exit 1
fi
glibc=$(getconf GNU_LIBC_VERSION | awk '{print $2}') need=$(cat "$HERE/glibc-version")
if [ "$(printf '%s\n%s\n' "$need" "$glibc" | sort -V | head -1)" != "$need" ]; then
  echo "error: this machine has glibc $glibc, the bundle needs >= $need (built on Debian 12)" >&2
  exit 1
fi
# torch/lib, then the wheel's CUDA, cuDNN and NCCL libraries (site-packages/nvidia/*/lib), after our own lib/.
site=$(dirname "$torch_dir")
nvidia=$(find "$site/nvidia" -mindepth 2 -maxdepth 2 -type d -name lib 2>/dev/null | sort | tr '\n' ':')
export LD_LIBRARY_PATH="$HERE/lib:$torch_dir/lib:$nvidia${LD_LIBRARY_PATH:-}"
exec "$HERE/bin/phantom" "$@"
