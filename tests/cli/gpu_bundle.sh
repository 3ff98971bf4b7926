#!/usr/bin/env bash
# scripts/gpu/bundle.sh packs build/phantom with every library it needs besides LibTorch's and glibc's, within
# 60 MiB; the launcher runs it with only lib/ and the torch wheel's directories; scripts/gpu/check.sh dry-runs on
# a machine without CUDA (CPU parts run, the others say "skipped: no CUDA"); a size over the limit fails.
set -u
BIN="$1" SRC="$2"
PY="$SRC/.venv/bin/python"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

start=$(date +%s)
"$SRC/scripts/gpu/bundle.sh" --out "$tmp/b" --binary "$BIN" >"$tmp/bundle.log" 2>&1 || { cat "$tmp/bundle.log"; fail "bundle.sh exited non-zero"; }
echo "bundle.sh took $(( $(date +%s) - start )) s"
cat "$tmp/bundle.log"
bytes=$(du -sb "$tmp/b" | cut -f1)
[ "$bytes" -le $((60 * 1048576)) ] || fail "bundle is $bytes bytes, over 60 MiB"
[ -x "$tmp/b/phantom" ] && [ -x "$tmp/b/bin/phantom" ] || fail "launcher or binary missing"
[ -f "$tmp/b/lib/compat/libstdc++.so.6" ] || fail "libstdc++ not carried in lib/compat"
ls "$tmp/b/lib" | grep -Eq 'opencv|gdal|x265|poppler' && fail "OpenCV or its codecs' dependencies were carried"

# Every library resolves into lib/, the torch wheel, or the system's C and C++ runtimes, with lib/ and the wheel's
# directories searched first.
torch_dir=$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
nvidia=$(find "$(dirname "$torch_dir")/nvidia" -mindepth 2 -maxdepth 2 -type d -name lib | tr '\n' ':')
LD_LIBRARY_PATH="$tmp/b/lib:$torch_dir/lib:$nvidia" ldd "$tmp/b/bin/phantom" >"$tmp/ldd.txt" || fail "ldd"
while read -r name arrow path _; do
  [ "$arrow" = "=>" ] || continue
  case "$path" in
    "$tmp/b/lib/"*|*/site-packages/torch/*|*/site-packages/nvidia/*) ;;
    # glibc; libstdc++/libgcc_s are the machine's where new enough (lib/compat otherwise, see the launcher)
    *) [[ "$name" =~ ^(libc|libm|libpthread|libdl|librt|libresolv|libutil|libstdc\+\+|libgcc_s)\.so ]] ||
         fail "$name resolves outside the bundle: $path" ;;
  esac
done <"$tmp/ldd.txt"
grep -q 'not found' "$tmp/ldd.txt" && fail "unresolved: $(grep 'not found' "$tmp/ldd.txt")"

# The launcher finds torch through PHANTOM_PYTHON and refuses another torch version with a clear message.
PHANTOM_PYTHON="$PY" "$tmp/b/phantom" --help >/dev/null || fail "launcher: phantom --help"
# A machine whose libstdc++ is too old: the bundled one (lib/compat) is put on the path and used.
PHANTOM_PYTHON="$PY" PHANTOM_HOST_LIBSTDCXX=/nonexistent LD_DEBUG=libs "$tmp/b/phantom" --help 2>"$tmp/compat.log" >/dev/null ||
  fail "launcher with lib/compat"
grep -q "$tmp/b/lib/compat/libstdc++.so.6" "$tmp/compat.log" || fail "lib/compat's libstdc++ was not loaded"
cp -r "$tmp/b" "$tmp/other" && echo "0.0.1" >"$tmp/other/torch-version"
msg=$(PHANTOM_PYTHON="$PY" "$tmp/other/phantom" --help 2>&1) && fail "a torch version mismatch was accepted"
grep -q "the bundle was built against 0.0.1" <<<"$msg" || fail "mismatch message: $msg"
msg=$(PHANTOM_PYTHON=/nonexistent/python "$tmp/b/phantom" --help 2>&1) && fail "a missing python was accepted"
grep -q "cannot import torch" <<<"$msg" || fail "missing python message: $msg"

# Over the limit: an error naming the size and the limit.
msg=$("$SRC/scripts/gpu/bundle.sh" --out "$tmp/small" --binary "$BIN" --max-mib 1 2>&1) && fail "--max-mib 1 passed"
grep -q "over the limit of 1 MiB" <<<"$msg" || fail "size message: $msg"

# The dry run: every CPU step runs and passes, the CUDA ones are skipped, nothing fails.
start=$(date +%s)
# one timed step per layout: the dry run checks the path, not the speed
PHANTOM_PYTHON="$PY" "$SRC/scripts/gpu/check.sh" --bundle "$tmp/b" --log "$tmp/log" -- --steps 1 --warmup 0 >"$tmp/check.log" 2>&1
rc=$?
cat "$tmp/check.log"
echo "check.sh (dry run) took $(( $(date +%s) - start )) s"
[ $rc -eq 0 ] || fail "check.sh exited $rc"
grep -q '^\[gpucheck\] summary: [1-9][0-9]* ok, 0 failed' "$tmp/check.log" || fail "no clean gpucheck summary"
for step in parity bf16 po step7b; do
  grep -Eq "^\[gpucheck\] $step +ok" "$tmp/check.log" || fail "CPU part of $step did not pass"
done
if [ "$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')" = 0 ]; then
  for step in parity bf16 nccl po step7b; do
    grep -Eq "^\[gpucheck\] $step +skipped: no CUDA" "$tmp/check.log" || fail "$step: no 'skipped: no CUDA' line"
  done
fi
grep -q '^ours / eager tokens/s: ' "$tmp/check.log" || fail "no ours/eager line"
echo "ok"
