#!/usr/bin/env bash
# `phantom convert merge-lora` and the per-size recipes through the CLI: help, one-line errors, configs that load.
set -u
PHANTOM="$1"; SRC="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
expect_error() {  # expect_error <regex> <args...>
  local re="$1"; shift
  "$PHANTOM" "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  local lines; lines=$(wc -l <"$tmp/err")
  if [ $rc -eq 0 ] || [ "$lines" -ne 1 ] || ! grep -Eq "$re" "$tmp/err"; then
    echo "FAIL: phantom $* -> rc=$rc, $lines stderr line(s), expected /$re/:"; cat "$tmp/err"; fail=1
  else
    echo "ok: phantom $* -> $(cat "$tmp/err")"
  fi
}
"$PHANTOM" convert --help | grep -q "merge-lora" || { echo "FAIL: convert --help does not list merge-lora"; fail=1; }
"$PHANTOM" convert merge-lora --help | grep -q -- "--checkpoint" || { echo "FAIL: merge-lora --help"; fail=1; }
expect_error "unknown convert subcommand 'merge'" convert merge --checkpoint x --out y
expect_error "missing required option --checkpoint" convert merge-lora --out "$tmp/m"
expect_error "is not a training checkpoint" convert merge-lora --checkpoint "$tmp" --out "$tmp/m"
for size in 0.5b 1.8b 3.8b 7b; do
  "$PHANTOM" config --config "$SRC/configs/phantom-$size.yaml" >"$tmp/cfg" 2>&1 || { echo "FAIL: phantom-$size.yaml"; cat "$tmp/cfg"; fail=1; }
  grep -q "rank: 256" "$tmp/cfg" || { echo "FAIL: phantom-$size.yaml has no rank 256"; fail=1; }
done
# Training without the data/checkpoint present: one line naming the missing file.
cd "$tmp" || exit 1
expect_error "data\.train: file not found: data/phantom/Phantom.json" train --config "$SRC/configs/phantom-0.5b.yaml" run.output_dir="$tmp/runs"
exit $fail
