#!/usr/bin/env bash
# A GPU bundle: build/phantom (a CUDA build: the torch wheel is one) plus every shared library it needs that is
# neither LibTorch's (torch/lib and nvidia/*/lib of the GPU machine's venv, found at run time) nor glibc's, for a
# GPU machine that cannot build the project. docs/gpu.md says what it holds and why it is small.
#
#   scripts/gpu/bundle.sh --out DIR [--binary build/phantom] [--max-mib 60]
#
# Without --binary, builds build/phantom first (setup + cmake --build). DIR gets:
#   bin/phantom    the binary, symbols stripped
#   lib/           its non-torch, non-glibc shared libraries
#   lib/compat/    libstdc++ and libgcc_s, for a machine whose own are older than the binary needs
#   phantom        the launcher: finds torch through Python, checks versions, puts lib/ and torch's dirs first
#   manifest.txt   commit, torch version, glibc needed, every file with its size
# Fails when DIR is over --max-mib (default 60) MiB, or when a library is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="" BIN="" MAX_MIB=60
while (($#)); do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --binary) BIN="$2"; shift 2 ;;
    --max-mib) MAX_MIB="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || { echo "error: --out DIR is required" >&2; exit 2; }
if [ -z "$BIN" ]; then
  (cd "$ROOT" && scripts/setup.sh >/dev/null)
  export CCACHE_DIR="${CCACHE_DIR:-${PHANTOM_CACHE:-$HOME/.cache/phantom}/ccache}" CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
  cmake --build "$ROOT/${BUILD_DIR:-build}" --target phantom -j "${JOBS:-$(nproc)}"
  BIN="$ROOT/${BUILD_DIR:-build}/phantom"
fi
[ -x "$BIN" ] || { echo "error: $BIN: no such executable" >&2; exit 1; }
PY="${PHANTOM_PYTHON:-$ROOT/.venv/bin/python}"

# ldd lists the whole closure. Classes: torch (the wheel's own dirs: the GPU machine's venv has them), glibc
# (the machine's C library must be used: it comes with its dynamic loader), everything else is carried.
deps=$(ldd "$BIN") || { echo "error: ldd $BIN failed" >&2; exit 1; }
if ! grep -q 'libtorch_cuda\.so' <<<"$deps"; then
  echo "error: $BIN does not link libtorch_cuda.so: not a CUDA build (configure against a CUDA LibTorch)" >&2; exit 1
fi
if grep -q 'not found' <<<"$deps"; then
  echo "error: $BIN has unresolved libraries:" >&2; grep 'not found' <<<"$deps" >&2; exit 1
fi
GLIBC_RE='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so|libresolv\.so|libutil\.so)'
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib/compat"
carried=() torch_libs=0
while read -r name arrow path _; do
  [ "$arrow" = "=>" ] || continue  # the loader and vdso lines have no "=>"
  if [[ "$path" == */site-packages/torch/* || "$path" == */site-packages/nvidia/* ]]; then
    torch_libs=$((torch_libs + 1))
  elif [[ "$name" =~ $GLIBC_RE ]]; then
    :
  elif [[ "$name" =~ ^(libstdc\+\+|libgcc_s)\.so ]]; then
    cp -L "$path" "$OUT/lib/compat/$name"  # used only where the machine's own is too old (launcher.sh)
    carried+=("$name")
  else
    cp -L "$path" "$OUT/lib/$name"
    carried+=("$name")
  fi
done <<<"$deps"
cp "$BIN" "$OUT/bin/phantom"
strip --strip-unneeded "$OUT/bin/phantom"
cp "$ROOT/scripts/gpu/launcher.sh" "$OUT/phantom"
chmod +x "$OUT/phantom"

torch_version=$("$PY" -c 'import torch; print(torch.__version__)')
# Newest symbol versions needed: of glibc by the binary and lib/, of libstdc++ by the same, and of glibc by the
# carried libstdc++ itself (Debian 12's needs glibc 2.36, newer than the rest: so it is used only when needed).
newest() { objdump -T "$@" 2>/dev/null | grep -o "$PATTERN[0-9.]*" | sed "s/$PATTERN//" | sort -uV | tail -1; }
PATTERN=GLIBC_ glibc_needed=$(newest "$OUT/bin/phantom" "$OUT"/lib/*.so*)
PATTERN=GLIBCXX_ glibcxx_needed=$(newest "$OUT/bin/phantom" "$OUT"/lib/*.so*)
PATTERN=CXXABI_ cxxabi_needed=$(newest "$OUT/bin/phantom" "$OUT"/lib/*.so*)
PATTERN=GLIBC_ compat_glibc=$(newest "$OUT"/lib/compat/*)
echo "$torch_version" >"$OUT/torch-version"
echo "$glibc_needed" >"$OUT/glibc-version"
printf 'GLIBCXX_%s CXXABI_%s %s\n' "$glibcxx_needed" "$cxxabi_needed" "$compat_glibc" >"$OUT/lib/compat/needs"
bytes=$(du -sb "$OUT" | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
{
  echo "phantom GPU bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "torch $torch_version (found at run time, not carried: $torch_libs libraries), glibc >= $glibc_needed"
  echo "libstdc++ with GLIBCXX_$glibcxx_needed and CXXABI_$cxxabi_needed: the machine's, else lib/compat (needs glibc >= $compat_glibc)"
  echo "total $mib MiB ($bytes bytes), limit $MAX_MIB MiB"
  (cd "$OUT" && find . -type f -printf '%s %p\n' | sort -rn | awk '{ printf "%10.2f MiB  %s\n", $1 / 1048576, $2 }')
} >"$OUT/manifest.txt"
cat "$OUT/manifest.txt"
if awk -v b="$bytes" -v m="$MAX_MIB" 'BEGIN { exit !(b > m * 1048576) }'; then
  echo "error: bundle $OUT is $mib MiB, over the limit of $MAX_MIB MiB" >&2
  exit 1
fi
echo "bundle: $OUT ($mib MiB, ${#carried[@]} libraries carried)"
