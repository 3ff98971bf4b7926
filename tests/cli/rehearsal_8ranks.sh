#!/usr/bin/env bash
# Rehearsal of the paper's run on CPU: configs/phantom-7b.yaml as shipped (batch 4 per rank, grad_accum 4, LoRA
# r256 on int8 bases in step 2, activation checkpointing) on 8 ranks under torchrun with Gloo, with tiny dims via
# overrides: the model is a tiny InternVL2-layout InternLM2 checkpoint written by tests/tools/startpoint_reference.py
# (ViT and LLM loaded, Phantom tensors created), the data 128 demo triples. Checks:
#  - every stage prints the paper's arithmetic: 4 per rank x 8 ranks x grad_accum 4 = 128 questions per step;
#  - one epoch of 128 triples is exactly one optimiser step per stage ([step1 1/1], [step2 1/1]): the global batch
#    really is 128;
#  - both steps run end to end and step 2's export loads and answers through `phantom eval`.
set -u
PHANTOM="$1"; SRC="$2"
PY="$SRC/.venv/bin/python"; TORCHRUN="$SRC/.venv/bin/torchrun"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
"$PY" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 128 --val 4 --test 8 >/dev/null || exit 1
"$PY" "$SRC/tests/tools/startpoint_reference.py" internvl --family internlm2 --vocab 1024 --out "$tmp/ckpt" \
  >"$tmp/ref.log" 2>&1 || { cat "$tmp/ref.log"; exit 1; }
d="$tmp/data"
start=$(date +%s)
"$TORCHRUN" --standalone --nproc-per-node=8 --no-python "$PHANTOM" train --config "$SRC/configs/phantom-7b.yaml" \
  run.output_dir="$tmp/runs" run.threads=1 model.path="$tmp/ckpt/remote" data.train="$d/train.jsonl" \
  data.image_root="$d" data.tokenizer="$d/tokenizer.json" data.max_tiles=1 data.max_length=256 \
  distributed.timeout_s=600 >"$tmp/run.log" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
fail=0
bad() { echo "FAIL: $*"; fail=1; }
[ $rc = 0 ] || { bad "8-rank run exited $rc"; tail -30 "$tmp/run.log"; exit 1; }
grep -q "distributed: rank 0 of 8" "$tmp/run.log" || bad "no 8-rank process group"
for s in step1 step2; do
  grep -q "stage $s: batch 4 per rank x 8 ranks x grad_accum 4 = 128 questions per optimiser step" "$tmp/run.log" \
    || bad "$s: the global batch arithmetic is not printed"
  grep -q "\[$s 1/1\]" "$tmp/run.log" || { bad "$s: 128 triples are not exactly one step"; grep -a "\[$s" "$tmp/run.log" | head -3; }
done
grep -q "created .* tensors the checkpoint lacks" "$tmp/run.log" || bad "Phantom tensors of the InternVL2 checkpoint not created"
grep -q "LoRA adapters merged" "$tmp/run.log" || bad "step 2's adapters were not merged"
[ -f "$tmp/runs/phantom-7b/step2/config.json" ] || bad "no step2 export"
"$PHANTOM" eval --model "$tmp/runs/phantom-7b/step2" --tokenizer "$d/tokenizer.json" --benchmark mmbench \
  --data "$d/mc_test.tsv" --out "$tmp/eval" --max-tiles 1 >"$tmp/eval.log" 2>&1 || { bad "eval of step2"; tail -5 "$tmp/eval.log"; }
echo "8 ranks, phantom-7b.yaml two steps: ${took} s (under load); $(grep -a 'questions per optimiser step' "$tmp/run.log" | head -1 | sed 's/.*stage/stage/')"
[ $fail = 0 ] && echo "ok: 8-rank rehearsal"
exit $fail
