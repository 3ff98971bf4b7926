#!/usr/bin/env bash
# On a terminal, `phantom train` draws a progress bar with ETA (redrawn with \r) instead of the per-step lines;
# off a terminal (a pipe, a file) it prints the per-step lines, whose format scripts and tests parse.
set -u
PHANTOM="$1"; SRC="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$SRC/.venv/bin/python" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 24 --val 8 --test 8 >/dev/null || exit 1
args="--config $SRC/configs/demo.yaml run.output_dir=$tmp/runs run.threads=2 data.train=$tmp/data/train.jsonl
      data.val=$tmp/data/val.jsonl data.image_root=$tmp/data data.tokenizer=$tmp/data/tokenizer.json data.batch_size=4
      stages.0.max_steps=6 stages.1.max_steps=3 stages.2.max_steps=2 model.llm.num_layers=2 validation.benchmark=
      log.tensorboard=false"
# Off a terminal: one line per step, in the documented format.
"$PHANTOM" train $args run.name=pipe > "$tmp/pipe.log" 2>&1 || { echo "FAIL: piped run"; tail "$tmp/pipe.log"; exit 1; }
n=$(grep -cE 'step +[0-9]+ \[(warmup|step1|step2) [0-9]+/[0-9]+\] loss [0-9.]+ .*\| gnorm [0-9.]+ lr [0-9.e+-]+ \| [0-9]+ tok/s [0-9]+ ms \(data [0-9]+ ms, padding [0-9]+%\) \| mem [0-9.]+ GB \| [0-9.]+ TFLOP/s' "$tmp/pipe.log")
[ "$n" = 11 ] || { echo "FAIL: $n step lines off a terminal (want 11)"; cat "$tmp/pipe.log"; exit 1; }
if grep -qE 'elapsed [0-9hms]+ eta ' "$tmp/pipe.log"; then echo "FAIL: a progress bar off a terminal"; exit 1; fi
# On a terminal (a pseudo-terminal from script(1)): the bar with ETA, one full step line per stage end only.
script -qec "$PHANTOM train $(echo $args) run.name=tty" "$tmp/tty.log" > /dev/null 2>&1 || { echo "FAIL: tty run"; tail "$tmp/tty.log"; exit 1; }
grep -aq $'\r' "$tmp/tty.log" || { echo "FAIL: no redrawn bar"; exit 1; }
grep -aqE 'stage step1 \[#*\.*\] [0-9]+/3 \( *[0-9]+%\) elapsed [0-9hms]+ eta [0-9hms?]+ \| loss [0-9.]+ po [0-9.]+ acc [0-9.]+ lr' "$tmp/tty.log" \
  || { echo "FAIL: no progress bar with ETA:"; tr '\r' '\n' < "$tmp/tty.log" | grep -a stage | head; exit 1; }
n=$(tr '\r' '\n' < "$tmp/tty.log" | grep -acE '^.*step +[0-9]+ \[(warmup|step1|step2) [0-9]+/[0-9]+\] loss')
[ "$n" = 3 ] || { echo "FAIL: $n full step lines on a terminal (want 3: one per stage end)"; exit 1; }
echo "ok"
