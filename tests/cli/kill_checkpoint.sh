#!/usr/bin/env bash
# kill -9 at random moments while a run writes a checkpoint every step, 20 times: each time, the latest complete
# checkpoint must load and training must continue from it (--resume).
set -u
PHANTOM="$1"; SRC="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$SRC/.venv/bin/python" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 400 --val 8 --test 8 >/dev/null || exit 1
args=(--config "$SRC/configs/demo.yaml" run.name=kill run.output_dir="$tmp/runs" data.train="$tmp/data/train.jsonl"
      data.val="" data.image_root="$tmp/data" data.tokenizer="$tmp/data/tokenizer.json" data.batch_size=2
      stages.0.max_steps=100000 checkpoint.every_steps=1 checkpoint.keep_last=3 log.tensorboard=false validation.benchmark=)
"$PHANTOM" train "${args[@]}" --max-steps 2 >"$tmp/first.log" 2>&1 || { echo "FAIL: first run"; cat "$tmp/first.log"; exit 1; }
fail=0
for i in $(seq 1 20); do
  "$PHANTOM" train "${args[@]}" --resume >"$tmp/run.log" 2>&1 &
  pid=$!
  sleep "$((RANDOM % 3 + 1)).$((RANDOM % 10))"  # past start-up: the run is writing a checkpoint per step
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if ! "$PHANTOM" train "${args[@]}" --resume --max-steps 1 >"$tmp/check.log" 2>&1 || ! grep -q "resuming from" "$tmp/check.log"; then
    echo "FAIL: after kill $i the latest checkpoint did not load:"; tail -5 "$tmp/check.log"; fail=1; break
  fi
  echo "ok: kill $i -> $(grep -o 'resuming from [^ ]*' "$tmp/check.log" | head -1)"
done
exit $fail
