#!/usr/bin/env bash
# Phantom-0.5B at its real widths and full depth (24 + 24 layers, vocab 151,655) trained on this machine's CPU:
# configs/phantom-0.5b.yaml, both steps (step 1 PO over int8 bases, step 2 SFT with LoRA r256), 1 tile, rows of about
# TOKENS tokens, micro-batch 1, 2 optimiser steps each, from a random checkpoint of the real shapes written by
# transformers' InternVLForConditionalGeneration (scripts/bench/random_internvl.py). Prints `phantom plan` for the
# same config and overrides, then each step's seconds, the allocator's peak (alloc_peak_gb) and the process's max
# resident set, for docs/scale.md ("A full-depth run at the real widths").
#   scripts/bench/realwidth_05b.sh                 # OUT=/tmp/phantom-realwidth TOKENS=1000
#   OUT=/path TOKENS=512 scripts/bench/realwidth_05b.sh
# Needs ~14 GiB of free memory and ~8 GB of disk under OUT (the checkpoint and two exported stages); minutes per step
# on 2 cores. On a shared machine run it under the CPU lock (flock /tmp/phantom-cpu.lock scripts/bench/...).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-/tmp/phantom-realwidth}"
TOKENS="${TOKENS:-1000}"
DEMO="${DEMO_DATA:-runs/demo-data}"
BUILD_DIR="${BUILD_DIR:-build}"
PY=.venv/bin/python
mkdir -p "$OUT"

# PHANTOM=path/to/binary: use that build instead of building $BUILD_DIR
if [ -z "${PHANTOM:-}" ]; then
  scripts/setup.sh >/dev/null
  cmake --build "$BUILD_DIR" --target phantom >/dev/null
fi
PHANTOM="${PHANTOM:-$BUILD_DIR/phantom}"
# The demo's tokenizer (byte-level BPE with the ChatML and image tokens; ids < 1,030 fit the real vocabulary) and
# its product photos (one per row, upscaled to one 448-px tile).
[ -f "$DEMO/tokenizer.json" ] || $PY scripts/make_demo_data.py --out "$DEMO" --train 12000 --mc-share 0.5 --filler-share 0.5
[ -f "$OUT/ckpt/config.json" ] || $PY scripts/bench/random_internvl.py --dims configs/dims/phantom-0.5b --out "$OUT/ckpt"
# image tokens: 256 per 448-px tile after pixel shuffle; the rows' length with the chat template is printed by the run
$PY scripts/bench/realwidth_rows.py --tokenizer "$DEMO/tokenizer.json" --images "$DEMO/images" --out "$OUT/rows.jsonl" \
  --rows 4 --tokens "$TOKENS"

# fp32 compute and fp32 frozen storage: what `precision: auto` is on CPU; the plan is made for the same.
ARGS=(model.path="$OUT/ckpt" data.train="$OUT/rows.jsonl" data.image_root="$DEMO" data.tokenizer="$DEMO/tokenizer.json"
      data.max_length="$TOKENS" data.max_tiles=1 data.batch_size=1 optim.grad_accum=1 run.precision=fp32
      run.frozen_dtype=fp32 stages.0.max_steps=2 stages.1.max_steps=2 checkpoint.every_steps=1000 log.every_steps=1)
"$PHANTOM" plan --config configs/phantom-0.5b.yaml --device-memory 24GiB "${ARGS[@]}" | tee "$OUT/plan.txt"

rm -rf "$OUT/runs"
# PHANTOM_CPU_COUNT_SMALL=1: alloc_peak_gb counts every tensor block, small LoRA matrices and their AdamW state
# included (by default only blocks >= 1 MiB), as `phantom plan --measure` does.
PHANTOM_CPU_COUNT_SMALL=1 /usr/bin/time -v "$PHANTOM" train --config configs/phantom-0.5b.yaml run.output_dir="$OUT/runs" \
  run.name=realwidth "${ARGS[@]}" 2>"$OUT/time.txt" | tee "$OUT/train.log"
$PY - "$OUT" <<'EOF'
import json, re, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/runs/realwidth/metrics.jsonl") if '"step_ms"' in l]
for r in rows:
    print(f"[realwidth] step {r.get('step', '?')}: {r['step_ms'] / 1e3:.1f} s, "
          f"allocator peak {r.get('alloc_peak_gb', float('nan')):.2f} GiB, max RSS so far {r['peak_mem_gb']:.2f} GiB")
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{out}/time.txt").read()).group(1))
wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", open(f"{out}/time.txt").read()).group(1)
print(f"[realwidth] /usr/bin/time: max RSS {rss / 2**20:.2f} GiB, wall {wall}")
for line in open(f"{out}/plan.txt"):
    if line.startswith("stage") or "total" in line:
        print("[realwidth] plan:", line.strip())
EOF
