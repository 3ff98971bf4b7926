#!/usr/bin/env bash
# The launcher of a GPU bundle (copied to DIR/phantom by scripts/gpu/bundle.sh): runs DIR/bin/phantom with the
# bundled libraries and the LibTorch of a Python venv. Arguments go to phantom unchanged.
#   PHANTOM_PYTHON   the Python whose torch to use (default: python3 on PATH)
#   PHANTOM_TORCH_DIR, PHANTOM_TORCH_VERSION   torch's package directory and version, instead of asking Python
#   PHANTOM_TORCH_MISMATCH_OK=1   run even when that torch is not the version the bundle was built against
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PHANTOM_PYTHON:-python3}"
if [ -n "${PHANTOM_TORCH_DIR:-}" ] && [ -n "${PHANTOM_TORCH_VERSION:-}" ]; then  # given by check.sh: one import
  version="$PHANTOM_TORCH_VERSION" torch_dir="$PHANTOM_TORCH_DIR"
else
  found=$("$PY" -c 'import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))' 2>/dev/null) || {
    echo "error: $PY cannot import torch; set PHANTOM_PYTHON to the venv's python" >&2; exit 1; }
  version=$(sed -n 1p <<<"$found") torch_dir=$(sed -n 2p <<<"$found")
fi
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
# The machine's libstdc++ when it has the symbol versions we need (the bundled one needs a newer glibc).
read -r want_cxx want_abi compat_glibc <"$HERE/lib/compat/needs"
libdirs="$HERE/lib"
host_cxx="${PHANTOM_HOST_LIBSTDCXX:-}"  # (tests point it elsewhere to exercise lib/compat)
[ -n "$host_cxx" ] || for f in /lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6; do
  [ -e "$f" ] && { host_cxx="$f"; break; }
done
if [ -z "$host_cxx" ] || ! grep -q "$want_cxx" "$host_cxx" || ! grep -q "$want_abi" "$host_cxx"; then
  if [ "$(printf '%s\n%s\n' "$compat_glibc" "$glibc" | sort -V | head -1)" != "$compat_glibc" ]; then
    echo "error: this machine's libstdc++ lacks $want_cxx and its glibc $glibc is older than the $compat_glibc the bundled one needs" >&2
    exit 1
  fi
  libdirs="$HERE/lib:$HERE/lib/compat"
fi
# torch/lib, then the wheel's CUDA, cuDNN and NCCL libraries (site-packages/nvidia/*/lib), after our own lib/.
site=$(dirname "$torch_dir")
nvidia=$(find "$site/nvidia" -mindepth 2 -maxdepth 2 -type d -name lib 2>/dev/null | sort | tr '\n' ':')
export LD_LIBRARY_PATH="$libdirs:$torch_dir/lib:$nvidia${LD_LIBRARY_PATH:-}"
exec "$HERE/bin/phantom" "$@"
