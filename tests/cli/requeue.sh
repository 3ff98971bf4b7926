#!/usr/bin/env bash
# Relaunching a run (by hand or by a cluster's requeue) never restarts it silently, continues another run or mixes
# two runs' checkpoints (docs/training.md, "Run directories, resume and requeue"):
#  - the same command without --resume over checkpoints is refused, naming --resume and --overwrite, with every
#    file of the run directory byte-identical;
#  - --resume auto (and run.resume: auto) starts a run that has no checkpoint and continues one that has;
#  - --overwrite starts over: the old checkpoints are gone and the new ones carry a new run id;
#  - --resume of an older checkpoint while newer ones exist is refused (two timelines in one directory);
#  - checkpoint.every_minutes writes checkpoints by time;
#  - a 2-rank run resumed on 4 ranks (Gloo) with the same data.batch_size per rank keeps the global batch: grad_accum
#    is recomputed (in the resumed stage and the next one) and the losses and final weights equal the uninterrupted
#    2-rank run's; 3 ranks, which do not divide the run's step batch, are refused with the numbers.
set -u
source "$(dirname "$0")/lib.sh"
PY="$SRC/.venv/bin/python"; TORCHRUN="$SRC/.venv/bin/torchrun"
"$PY" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 48 --val 4 --test 4 >/dev/null || exit 1
export OMP_NUM_THREADS=1
d="$tmp/data"
bad() { echo "FAIL: $*"; fail=1; }
args=(--config "$SRC/configs/demo.yaml" run.output_dir="$tmp/runs" run.threads=1 data.train="$d/train.jsonl" data.val=
      data.image_root="$d" data.tokenizer="$d/tokenizer.json" data.batch_size=2 stages.0.max_steps=2
      stages.1.max_steps=2 stages.2.max_steps=2 model.llm.num_layers=1 model.vision.num_layers=1 validation.benchmark=
      log.tensorboard=false checkpoint.every_steps=1 checkpoint.keep_last=2)
train() { local name=$1; shift; "$PHANTOM" train "${args[@]}" run.name="$name" "$@" >"$tmp/$name.log" 2>&1; }
sums() { (cd "$tmp/runs/$1" && find . -type f -exec md5sum {} + | sort); }
ckpts() { ls "$tmp/runs/$1/checkpoints" | tr '\n' ' '; }
run_ids() { cat "$tmp/runs/$1"/checkpoints/step-*/state.json | "$PY" -c "import json,sys,re; print(sorted({json.loads(x)['run_id'] for x in re.findall(r'\{.*?\n\}', sys.stdin.read(), re.S)}))"; }

# ---- a relaunch without --resume over checkpoints: refused, nothing changed ------------------------------------------
train a --max-steps 3 || { bad "first run"; tail -5 "$tmp/a.log"; }
before=$(sums a)
expect_error "holds checkpoints of an earlier run \(step-000002, step-000003\): continue it with --resume .*--overwrite.*nothing was changed" \
  train "${args[@]}" run.name=a
[ "$before" = "$(sums a)" ] && echo "ok: every file of the run directory is byte-identical after the refusal" || bad "the refusal changed files"

# ---- --resume auto: continues a checkpointed run, starts an empty one -------------------------------------------------
train a --resume auto || { bad "--resume auto over checkpoints"; tail -5 "$tmp/a.log"; }
grep -q -- "--resume auto: continuing from .*a/checkpoints/step-000003" "$tmp/a.log" && grep -q "training done" "$tmp/a.log" \
  && echo "ok: --resume auto continued from step-000003 and finished" || { bad "--resume auto did not continue"; tail -5 "$tmp/a.log"; }
train fresh --resume auto || { bad "--resume auto on an empty directory"; tail -5 "$tmp/fresh.log"; }
grep -q -- "--resume auto: no checkpoint in .*fresh/checkpoints, starting the run" "$tmp/fresh.log" && grep -q "training done" "$tmp/fresh.log" \
  && echo "ok: --resume auto started the run that had no checkpoint" || { bad "--resume auto did not start"; tail -5 "$tmp/fresh.log"; }
# the finished run requeued once more: nothing to do, nothing changed
before=$(sums a)
train a --resume auto && grep -q "is finished" "$tmp/a.log" && [ "$before" = "$(sums a)" ] \
  && echo "ok: --resume auto of a finished run changes nothing" || bad "--resume auto of a finished run"

# ---- run.resume: auto in the config: one command for every requeue ----------------------------------------------------
train q run.resume=auto --max-steps 2 && train q run.resume=auto --max-steps 2 && train q run.resume=auto \
  || { bad "run.resume: auto requeues"; tail -5 "$tmp/q.log"; }
n=$(grep -c '"loss"' "$tmp/runs/q/metrics.jsonl")
[ "$n" -eq 6 ] && grep -q "training done" "$tmp/q.log" && echo "ok: run.resume: auto, three launches of one command: 6 steps, done" \
  || bad "run.resume: auto: $n steps logged"

# ---- --overwrite: the old checkpoints go, the new run has its own id ---------------------------------------------------
old_id=$(run_ids a)
train a --overwrite --max-steps 1 || { bad "--overwrite"; tail -5 "$tmp/a.log"; }
new_id=$(run_ids a)
if [ "$(ckpts a)" = "step-000001 " ] && [ "$old_id" != "$new_id" ] && [ "$(grep -c '"loss"' "$tmp/runs/a/metrics.jsonl")" -eq 1 ] \
   && [ ! -e "$tmp/runs/a/step2" ]; then
  echo "ok: --overwrite: only step-000001 of run $new_id remains (was $old_id), metrics and exports of the old run gone"
else
  bad "--overwrite left: $(ckpts a) ids $old_id -> $new_id"; ls "$tmp/runs/a"
fi
expect_error "cannot be combined with --resume" train "${args[@]}" run.name=a --overwrite --resume

# ---- an older checkpoint while newer ones exist: refused ----------------------------------------------------------------
train b --max-steps 4 || bad "run b"
before=$(sums b)
expect_error "also holds later checkpoints \(step-000004\) of the continuation you would abandon" \
  train "${args[@]}" run.name=b --resume "$tmp/runs/b/checkpoints/step-000003"
[ "$before" = "$(sums b)" ] && echo "ok: nothing changed" || bad "the refused branch changed files"

# ---- checkpoint.every_minutes ---------------------------------------------------------------------------------------------
train t checkpoint.every_steps=0 checkpoint.every_minutes=0.0001 checkpoint.keep_last=10 --max-steps 3 \
  || { bad "every_minutes run"; tail -5 "$tmp/t.log"; }
[ "$(ckpts t)" = "step-000001 step-000002 step-000003 " ] && echo "ok: checkpoint.every_minutes: $(ckpts t)" \
  || bad "checkpoint.every_minutes wrote: $(ckpts t)"

# ---- 2 ranks -> 4 ranks: the global batch is kept ----------------------------------------------------------------------
dist=(data.batch_size=1 optim.grad_accum=2 optim.lr=1e-3 optim.min_lr=1e-4 distributed.timeout_s=60 checkpoint.every_steps=2)
ranks() { local n=$1 name=$2; shift 2
  "$TORCHRUN" --standalone --nproc-per-node="$n" --no-python "$PHANTOM" train "${args[@]}" "${dist[@]}" run.name="$name" "$@" \
    >"$tmp/$name.log" 2>&1; }
ranks 2 whole2 || { bad "2-rank run"; tail -20 "$tmp/whole2.log"; }
ranks 2 part2 --max-steps 3 || { bad "2-rank run to step 3"; tail -20 "$tmp/part2.log"; }
cp -r "$tmp/runs/part2" "$tmp/runs/odd3"
ranks 4 part2 --resume auto || { bad "resume on 4 ranks"; tail -20 "$tmp/part2.log"; }
if [ "$(grep -c "grad_accum 1 instead of 2: the run's 4 samples per optimiser step = 4 per micro-batch (1 per rank x 4 ranks) x 1" "$tmp/part2.log")" -eq 2 ]; then
  echo "ok: 4-rank resume: $(grep -m1 -o 'grad_accum 1 instead of 2.*' "$tmp/part2.log")"
else
  bad "4-rank resume did not recompute grad_accum"; grep -a "batch\|error" "$tmp/part2.log" | head -5
fi
"$PY" "$SRC/tests/tools/compare_runs.py" "$tmp/runs/whole2" "$tmp/runs/part2" --export step2 --loss-rtol 1e-5 \
  --param-atol 1e-4 --param-p999 1e-6 >"$tmp/cmp.out" 2>&1 && echo "ok: 2 -> 4 ranks equals the 2-rank run: $(tail -1 "$tmp/cmp.out")" \
  || { bad "2 -> 4 ranks differs from the 2-rank run"; cat "$tmp/cmp.out"; }
ranks 3 odd3 --resume auto && bad "3 ranks accepted"
grep -q "the run's optimiser steps hold 4 samples (global micro-batch 2 when it started x grad_accum 2); this launch's micro-batch of 3 (data.batch_size 1 per rank x 3 ranks) does not divide 4" "$tmp/odd3.log" \
  && echo "ok: 3 ranks refused: $(grep -m1 -o 'the run.s optimiser steps.*' "$tmp/odd3.log" | head -c 240)" \
  || { bad "3 ranks: no error naming the numbers"; grep -a error "$tmp/odd3.log" | head -3; }
exit $fail
