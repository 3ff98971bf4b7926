#!/usr/bin/env bash
# `phantom data bench` runs the trainer's data pipeline over real images and reports what it prepared; a bad
# annotation file is a one-line error naming it.
set -u
PHANTOM="$1"; SRC="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$SRC/.venv/bin/python" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 64 --val 8 --test 8 >/dev/null || exit 1
args=(--config "$SRC/configs/demo.yaml" data.train="$tmp/data/train.jsonl" data.val="" data.image_root="$tmp/data"
      data.tokenizer="$tmp/data/tokenizer.json" data.batch_size=4 run.threads=1)
out=$("$PHANTOM" data bench "${args[@]}" --batches 5) || { echo "FAIL: data bench: $out"; exit 1; }
echo "$out"
# 5 batches of 4 questions, one 56-px tile each (28-px photos), in the shared-prefix preference layout.
echo "$out" | grep -q "^phantom samples/s [0-9.]*  (20 samples, 20 tiles, [0-9]* tokens" || { echo "FAIL: unexpected report"; exit 1; }
out=$("$PHANTOM" data bench "${args[@]}" --batches 5 --loss sft) || exit 1
echo "$out" | grep -q "(20 samples, 20 tiles, .*, sft)" || { echo "FAIL: sft layout: $out"; exit 1; }
echo '{"id": 1, "image": "nope.png", "question": "q"' >"$tmp/bad.jsonl"
if err=$("$PHANTOM" data bench "${args[@]}" data.train="$tmp/bad.jsonl" 2>&1); then echo "FAIL: bad file accepted"; exit 1; fi
echo "$err" | grep -q "bad.jsonl" || { echo "FAIL: error does not name the file: $err"; exit 1; }
echo "ok"
