#!/usr/bin/env bash
# `phantom convert merge-lora` and the per-size recipes through the CLI: help, one-line errors, configs that load.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$PHANTOM" convert --help | grep -q "merge-lora" || { echo "FAIL: convert --help does not list merge-lora"; fail=1; }
"$PHANTOM" convert merge-lora --help | grep -q -- "--checkpoint" || { echo "FAIL: merge-lora --help"; fail=1; }
expect_error "unknown convert subcommand 'merge'" convert merge --checkpoint x --out y
expect_error "missing required option --checkpoint" convert merge-lora --out "$tmp/m"
expect_error "is not a training checkpoint" convert merge-lora --checkpoint "$tmp" --out "$tmp/m"
for size in 0.5b 1.8b 3.8b 7b; do
  "$PHANTOM" config --config "$SRC/configs/phantom-$size.yaml" >"$tmp/cfg" 2>&1 || { echo "FAIL: phantom-$size.yaml"; cat "$tmp/cfg"; fail=1; }
  grep -q "rank: 256" "$tmp/cfg" || { echo "FAIL: phantom-$size.yaml has no rank 256"; fail=1; }
done
# Happy path: a LoRA stage stopped after one step, its checkpoint merged by the CLI, the result answers a prompt.
"$SRC/.venv/bin/python" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 16 --val 4 --test 4 >/dev/null || exit 1
args=(--config "$SRC/configs/demo.yaml" run.name=lora run.output_dir="$tmp/runs" data.train="$tmp/data/train.jsonl"
      data.val="" data.image_root="$tmp/data" data.tokenizer="$tmp/data/tokenizer.json" data.batch_size=2
      validation.benchmark="" log.tensorboard=false model.llm.num_layers=1 stages.0.max_steps=3
      stages.0.lora.rank=4 "stages.0.lora.targets=['o_proj\$', 'fc1\$']" stages.0.lora.base_int8=true)
"$PHANTOM" train "${args[@]}" --max-steps 1 >"$tmp/train.log" 2>&1 || { echo "FAIL: LoRA run"; tail -5 "$tmp/train.log"; fail=1; }
grep -q "LoRA rank 4 alpha 16 on 3 Linears" "$tmp/train.log" || { echo "FAIL: no LoRA line in the log"; fail=1; }
ck=$(ls -d "$tmp"/runs/lora/checkpoints/step-* | tail -1)
"$PHANTOM" convert merge-lora --checkpoint "$ck" --out "$tmp/merged" --threads 2 >"$tmp/merge.log" 2>&1 \
  && grep -q "merged 3 LoRA adapters (stage warmup)" "$tmp/merge.log" || { echo "FAIL: merge-lora"; cat "$tmp/merge.log"; fail=1; }
for f in config.json model.safetensors tokenizer.json; do
  [ -f "$tmp/merged/$f" ] || { echo "FAIL: merged output lacks $f"; fail=1; }
done
img=$(ls "$tmp"/data/images/*/*.png | head -1)
"$PHANTOM" generate --model "$tmp/merged" --image "$img" --prompt "What is this?" --max-new-tokens 2 >"$tmp/gen.log" 2>&1 \
  || { echo "FAIL: the merged model does not generate"; tail -3 "$tmp/gen.log"; fail=1; }
[ $fail -eq 0 ] && echo "ok: LoRA run -> merge-lora -> generate: $(tail -1 "$tmp/gen.log")"
# Training without the data/checkpoint present: one line naming the missing file.
cd "$tmp" || exit 1
expect_error "data\.train: file not found: data/phantom/Phantom.json" train --config "$SRC/configs/phantom-0.5b.yaml" run.output_dir="$tmp/runs"
exit $fail
