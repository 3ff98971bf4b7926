#!/usr/bin/env bash
# The resume hint printed by a stopped run is the same command line, overrides included, and following it literally
# continues that run; --resume of a finished run says so and changes none of its files.
set -u
PHANTOM="$1"; SRC="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$SRC/.venv/bin/python" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 32 --val 4 --test 4 >/dev/null || exit 1
d="$tmp/data"
cd "$tmp" || exit 1
mkdir -p build && ln -s "$PHANTOM" build/phantom  # the hint says build/phantom
fail=0
bad() { echo "FAIL: $*"; fail=1; }
args=(--config "$SRC/configs/demo.yaml" run.name="hint run" run.output_dir="$tmp/runs" run.threads=1
      data.train="$d/train.jsonl" data.val= data.image_root="$d" data.tokenizer="$d/tokenizer.json" data.batch_size=4
      stages.0.max_steps=2 stages.1.max_steps=1 stages.2.max_steps=1 model.llm.num_layers=1 model.vision.num_layers=1
      validation.benchmark="$d/mc_test.tsv" validation.open_questions=false log.tensorboard=false)
build/phantom train "${args[@]}" --max-steps 1 >first.log 2>&1 || { bad "first run"; tail -5 first.log; }
hint=$(grep -A1 "resume with:" first.log | tail -1)
case "$hint" in
  *"'run.name=hint run'"*"stages.0.max_steps=2"*"--resume") echo "ok: hint repeats the overrides: $hint" ;;
  *) bad "hint without the overrides: $hint" ;;
esac
eval "$hint" >second.log 2>&1 || { bad "following the hint failed"; tail -5 second.log; }
grep -q "resuming from .*hint run/checkpoints" second.log || bad "the hint did not resume this run"
grep -q "training done" second.log || bad "the resumed run did not finish"
sums() { find "$tmp/runs" -type f -exec md5sum {} + | sort; }
before=$(sums)
eval "$hint" >third.log 2>&1 || { bad "--resume of a finished run failed"; tail -5 third.log; }
grep -q "is finished: all 3 stages are done" third.log && echo "ok: $(grep -a "is finished" third.log)" || { bad "no 'finished' message"; tail -3 third.log; }
[ "$before" = "$(sums)" ] && echo "ok: no file of the finished run changed" || bad "--resume of a finished run changed files"
exit $fail
