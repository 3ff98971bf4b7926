#!/usr/bin/env bash
# A Phi-3-layout Phantom checkpoint directory with a Llama-style tokenizer.json (byte fallback, rstrip chat tokens,
# tokenizer.model next to it, as Phi-3 ships) goes through `phantom train` and `phantom generate`: the tokenizer.json
# is the file used (logged), and the prompt ids of `generate` (image included) equal HF AutoTokenizer's ids of the
# prompt string the official Phantom code builds.
set -u
PHANTOM="$1"; SRC="$2"
PY="$SRC/.venv/bin/python"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

"$PY" "$SRC/tests/tools/tokenizer_families.py" "$tmp/tok" phi3 >"$tmp/tok.log" 2>&1 || { echo "FAIL: tokenizer"; tail "$tmp/tok.log"; exit 1; }
"$PY" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 8 --val 2 --test 2 >/dev/null || { echo "FAIL: demo data"; exit 1; }
# A tiny Phi-3-layout model trained one step per stage with that tokenizer.
"$PHANTOM" train --config "$SRC/configs/demo.yaml" run.name=m run.output_dir="$tmp/runs" run.threads=1 \
  data.train="$tmp/data/train.jsonl" data.val="" data.image_root="$tmp/data" data.tokenizer="$tmp/tok/phi3" \
  model.llm.family=phi3 model.llm.attention_bias=false model.llm.vocab_size=1536 model.llm.num_layers=2 \
  data.batch_size=2 stages.0.max_steps=1 stages.1.max_steps=1 stages.2.max_steps=1 validation.benchmark="" \
  log.tensorboard=false >"$tmp/train.log" 2>&1 || { echo "FAIL: training"; tail -5 "$tmp/train.log"; exit 1; }
grep -q "tokenizer: .*phi3/tokenizer.json (tokenizer.json: BPE with byte fallback" "$tmp/train.log" \
  || { echo "FAIL: training did not log the tokenizer.json it used"; grep tokenizer "$tmp/train.log"; exit 1; }
model="$tmp/runs/m/step2"
grep -q '"Phi3ForCausalLM"' "$model/config.json" || { echo "FAIL: not a Phi-3 layout"; exit 1; }
cp "$tmp/tok/phi3/"* "$model/"  # the released layout: tokenizer files inside the checkpoint directory

img=$(ls "$tmp/data/images/train/" | head -1)
q="What is this product?  It's 12,50 € — naïve 🙂"
PHANTOM_LOG_LEVEL=debug "$PHANTOM" generate --model "$model" --image "$tmp/data/images/train/$img" --prompt "$q" \
  --max-new-tokens 2 --threads 1 >"$tmp/gen.log" 2>&1 || { echo "FAIL: generate"; tail "$tmp/gen.log"; exit 1; }
grep -q "tokenizer: $model/tokenizer.json (tokenizer.json: BPE with byte fallback" "$tmp/gen.log" \
  || { echo "FAIL: generate did not use the directory's tokenizer.json"; grep tokenizer "$tmp/gen.log"; exit 1; }
ours=$(grep -o 'prompt ids ([0-9]*): .*' "$tmp/gen.log" | sed 's/^prompt ids ([0-9]*): //')
[ -n "$ours" ] || { echo "FAIL: no prompt ids logged"; cat "$tmp/gen.log"; exit 1; }

"$PY" - "$model" "$q" "$ours" <<'PY' || exit 1
import sys
from transformers import AutoTokenizer
model, q, ours = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3].split()]
tok = AutoTokenizer.from_pretrained(model)
ctx = tok.convert_tokens_to_ids("<IMG_CONTEXT>")
n = ours.count(ctx)
assert n == 16, f"expected one 56-px tile of 16 image tokens, got {n}"
# The official prompt: "<image>" + question in Phi-3's user turn, <image> -> <img><IMG_CONTEXT>*n</img>.
prompt = "<|user|>\n" + "<img>" + "<IMG_CONTEXT>" * n + "</img>" + q + "<|end|>" + "<|assistant|>\n"
ref = tok(prompt, add_special_tokens=False).input_ids
if ref != ours:
    print("FAIL: prompt ids differ\n ours:", ours, "\n  ref:", ref)
    sys.exit(1)
print(f"ok: {len(ours)} prompt ids equal AutoTokenizer ({type(tok).__name__})")
PY
echo "ok: Phi-3 checkpoint with a Llama-style tokenizer.json through train and generate"
