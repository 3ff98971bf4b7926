#!/usr/bin/env bash
# The planner's calibration at the real widths of the four sizes (docs/scale.md, "Calibration"): for each size,
# `phantom plan --measure` runs two optimiser steps of each stage of configs/phantom-SIZE.yaml on this machine's CPU at
# the real widths and vocabulary (configs/dims/phantom-SIZE), reduced depth, random weights, one row of max_length
# tokens, and compares the caching allocator's peak (every block counted) with the plan of that step.
#
#   scripts/bench/calibrate.sh                                  # every size, 2 decoder layers, 2,048 tokens, 6 tiles + thumbnail
#   SIZES="7b" LAYERS=4 TOKENS=4096 TILES=6 scripts/bench/calibrate.sh
#
# Overrides: SIZES="0.5b 1.8b 3.8b 7b" LAYERS=2 VIT_LAYERS=2 TOKENS=2048 TILES=6 THREADS=2 PHANTOM=build/phantom
# Prints one table row per size and stage (the measured lines of `phantom plan` are in $OUT/plan-*.txt).
# fp32 compute and fp32 frozen storage, as `precision: auto` is on CPU; int8 bases and checkpointing as shipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PHANTOM=${PHANTOM:-build/phantom}; SIZES=${SIZES:-0.5b 1.8b 3.8b 7b}; LAYERS=${LAYERS:-2}; VIT_LAYERS=${VIT_LAYERS:-2}
TOKENS=${TOKENS:-2048}; TILES=${TILES:-6}; THREADS=${THREADS:-2}; OUT=${OUT:-/tmp/phantom-calibrate}
mkdir -p "$OUT"
echo "| size | decoder / ViT layers | tokens, tiles | stage | measured peak | plan | plan / measured | step ms |"
echo "|---|---|---|---|---|---|---|---|"
for size in $SIZES; do
  log="$OUT/plan-$size-$LAYERS-$TOKENS-$TILES.txt"
  "$PHANTOM" plan --config "configs/phantom-$size.yaml" --model-dims "configs/dims/phantom-$size" --measure \
    --threads "$THREADS" model.llm.num_layers="$LAYERS" model.vision.num_layers="$VIT_LAYERS" \
    data.max_length="$TOKENS" data.max_tiles="$TILES" data.batch_size=1 run.frozen_dtype=fp32 > "$log"
  awk -v size="$size" -v layers="$LAYERS / $VIT_LAYERS" '
    /^stage / { stage = $2 }
    /measured \(CPU step/ {
      match($0, /[0-9]+ x [0-9]+ tokens, [0-9]+ tiles, [0-9]+ ms/); shape = substr($0, RSTART, RLENGTH)
      split(shape, w, " "); ms = w[7]
      match($0, /peak [0-9.]+ [GM]iB/); peak = substr($0, RSTART + 5, RLENGTH - 5)
      match($0, /plan [0-9.]+ [GM]iB/); plan = substr($0, RSTART + 5, RLENGTH - 5)
      match($0, /plan\/measured [0-9.]+/); ratio = substr($0, RSTART + 14, RLENGTH - 14)
      printf "| %s | %s | %s x %s, %s | %s | %s | %s | %s | %s |\n", size, layers, w[1], w[3], w[5], stage, peak, plan, ratio, ms
      rows++
    }
    END { if (!rows) { print "calibrate.sh: no measured line in " FILENAME > "/dev/stderr"; exit 1 } }' "$log"
done
