#!/usr/bin/env bash
# Training benchmarks, one run, same machine and threads (see docs/benchmarks.md):
#   (a) PO step time with the shared prefix (one packed row per question) vs the naive layout (one row per answer)
#       vs the SFT step on the chosen answer, same questions, text prompts of 256-1792 tokens (the decoder length
#       of 256-1792 image tokens), Qwen2-0.5B-shaped decoder cut to 2 layers, step-1 trainable set
#   (b) tokens/s, model TFLOP/s and peak resident memory of one training step per stage (step1: PO, projector +
#       Phantom trainable; step2: SFT, all trainable) for 0.5B- and 7B-shaped decoders cut to 2 layers
#       (one process per stage, so each peak is that stage's)
#   (c) peak memory of the PO shared step vs the SFT step (one process each) at MEM_PROMPT tokens
#   (d) packed vs padded SFT rows on a length-skewed batch (tiles x 256 tokens + text), tokens/s
# Overrides: PROMPTS=256,1024,1792,4096 STEPS=3 (a) STEPS_B=2 (b) WARMUP=1 SEQ=512 SEVEN_B_VOCAB=16384
#            MEM_PROMPT=1792 PACK_BATCH=8 ONLY=a,c,d (skip the others) scripts/bench/train.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
T=${THREADS:-$(nproc)}
STEPS=${STEPS:-3}; STEPS_B=${STEPS_B:-2}; WARMUP=${WARMUP:-1}; SEQ=${SEQ:-512}
QWEN05="--hidden 896 --heads 14 --kv-heads 2 --intermediate 4864 --vocab 151655"
# InternLM2.5-7B shapes (hidden 4096, 32 heads / 8 kv, SwiGLU 14336); the 92,544-entry vocabulary is cut (default
# 16,384) so that step 2 (every weight trained with AdamW: 16 bytes per parameter) fits this machine's memory.
INTERNLM7="--hidden 4096 --heads 32 --kv-heads 8 --intermediate 14336 --vocab ${SEVEN_B_VOCAB:-16384}"
echo "== threads $T, median of $STEPS (a) / $STEPS_B (b) timed steps after $WARMUP warm-up, $(date -u +%FT%TZ), $(nproc) cores"
ONLY=${ONLY:-a,b,c,d}
want() { [[ ",$ONLY," == *",$1,"* ]]; }
res=$(mktemp)
trap 'rm -f "$res"' EXIT
if want a; then
echo "== (a) PO layouts, 0.5B-shaped decoder, 2 layers"
build/phantom bench po $QWEN05 --layers 2 --prompts "${PROMPTS:-256,1024,1792,4096}" --answer 32 --rejected 1 --batch 1 \
  --steps "$STEPS" --warmup "$WARMUP" --threads "$T" | tee -a "$res"
fi
if want c; then
echo "== (c) peak memory, PO shared vs SFT, prompt ${MEM_PROMPT:-1792} (one process each)"
for layout in sft shared; do
  build/phantom bench po $QWEN05 --layers 2 --prompts "${MEM_PROMPT:-1792}" --answer 32 --rejected 1 --batch 1 \
    --steps 1 --warmup 1 --threads "$T" --layout $layout | grep layout | tee -a "$res"
done
fi
if want d; then
echo "== (d) packed vs padded SFT rows, length-skewed batch of ${PACK_BATCH:-8}"
build/phantom bench pack $QWEN05 --layers 2 --batch "${PACK_BATCH:-8}" --tile-tokens 256 --row 2048 \
  --steps "$STEPS" --warmup "$WARMUP" --threads "$T" | tee -a "$res"
fi
if want b; then
echo "== (b) per-stage training step, seq $SEQ, 2 layers"
for shape in "0.5B:$QWEN05" "7B:$INTERNLM7"; do
  name=${shape%%:*}; flags=${shape#*:}
  for stage in step1 step2; do
    echo -n "$name "
    build/phantom bench train $flags --layers 2 --seq "$SEQ" --batch 1 --stage $stage --steps "$STEPS_B" \
      --warmup "$WARMUP" --threads "$T"
  done
done
fi
python3 - "$res" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
ok = lambda c: "met" if c else "NOT met"
for l in lines:
    if l.startswith("po prompt") and "shared/sft" in l:
        p = re.search(r"prompt (\d+)", l).group(1)
        a = float(re.search(r"shared/sft ([\d.]+)x", l).group(1)); b = float(re.search(r"naive/shared ([\d.]+)x", l).group(1))
        print(f"prompt {p:>5}: PO shared / SFT step {a:.2f}x (goal <= 1.20: {ok(a <= 1.20)}), "
              f"naive / shared {b:.2f}x (goal >= 1.6: {ok(b >= 1.6)})")
mem = {m.group(1): float(m.group(2)) for l in lines if (m := re.search(r"layout (\w+): .*peak RSS ([\d.]+) GB", l))}
if "sft" in mem and "shared" in mem:
    r = mem["shared"] / mem["sft"]
    print(f"peak memory PO shared / SFT step: {r:.2f}x ({mem['shared']:.2f} vs {mem['sft']:.2f} GB; goal <= 1.1: {ok(r <= 1.1)})")
for l in lines:
    if (m := re.search(r"packed/padded tokens/s ([\d.]+)x", l)):
        r = float(m.group(1))
        print(f"packed / padded SFT tokens/s: {r:.2f}x (goal >= 1.3: {ok(r >= 1.3)})")
PY
