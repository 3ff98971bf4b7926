#!/usr/bin/env bash
# The demo's ablation as researchers report it: the plain model, Phantom without PO and Phantom + PO (the paper's
# recipe), each trained with configs/demo.yaml over 3 seeds, then a table (mean ± sd of MC accuracy, open accuracy,
# held-out reward margin) and a bar chart written into docs/demo.md / docs/demo-ablation.png.
#   scripts/ablation.sh                 # = scripts/demo.sh --ablation; SEEDS="1 2 3" VARIANTS="plain nopo po"
# The variants differ only in these overrides (same data, model size, stages, steps and schedule):
#   plain  model.phantom=off, step 1 trains the projector with SFT (neither the Phantom dimension nor PO)
#   nopo   the Phantom dimension, step 1 trains projector + Phantom tensors with SFT instead of PO
#   po     configs/demo.yaml as it is (the paper's recipe)
# run.seed sets the model's initialisation and the data order; the data (scripts/make_demo_data.py) is the same.
# A finished run (its metrics hold the benchmark results) is not run again: delete runs/ablation/<v>-s<seed> to redo it.
set -euo pipefail -f   # -f: the overrides hold regex brackets, never file globs
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SEEDS="${SEEDS:-1 2 3}"
VARIANTS="${VARIANTS:-plain nopo po}"
OUT="${OUT:-runs/ablation}"
BUILD_DIR="${BUILD_DIR:-build}"
scripts/demo.sh --prepare   # setup, build and the demo data, as the demo makes them

overrides() {
  case "$1" in
    plain) echo "model.phantom=off stages.1.loss=sft stages.1.trainable=[^vision_proj\\.]" ;;
    nopo) echo "stages.1.loss=sft" ;;
    po) echo "" ;;
    *) echo "scripts/ablation.sh: unknown variant '$1' (plain | nopo | po)" >&2; exit 2 ;;
  esac
}

run_one() {  # run_one <variant> <seed>
  local v="$1" seed="$2" name="$1-s$2" start
  start=$(date +%s)
  rm -rf "${OUT:?}/$name"
  mkdir -p "$OUT"
  # shellcheck disable=SC2046  # the overrides are words
  "$BUILD_DIR/phantom" train --config configs/demo.yaml run.output_dir="$OUT" run.name="$name" run.seed="$seed" \
    run.threads="$THREADS" log.tensorboard=false checkpoint.every_steps=0 $(overrides "$v") > "$OUT/$name.log" 2>&1 \
    || { echo "[ablation] $name failed: see $OUT/$name.log"; tail -5 "$OUT/$name.log"; return 1; }
  mv "$OUT/$name.log" "$OUT/$name/train.log"
  echo "[ablation] $name done in $(( $(date +%s) - start )) s: $(grep -E '^  (benchmark: +[0-9]|open questions:)' "$OUT/$name/train.log" | sed 's/ (answers.*//; s/ on [^ ]*$//; s/^ *//; s/  */ /g' | tr '\n' ' ')"
}

# JOBS runs at once, each with THREADS intra-op threads: two 1-thread runs on 2 cores finish 1.2-1.4x sooner than
# one 2-thread run after the other (the tiny model's ops are too small to use 2 threads well). A run's numbers
# depend on its thread count (CPU runs repeat bitwise for the same seed and threads), so the table names it.
JOBS="${JOBS:-$(( $(nproc) >= 2 ? 2 : 1 ))}"
THREADS="${THREADS:-$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))}"
failed=0
for seed in $SEEDS; do
  for v in $VARIANTS; do
    overrides "$v" > /dev/null  # an unknown variant stops here, before any run
    if [ -f "$OUT/$v-s$seed/metrics.jsonl" ] && grep -q '"benchmark/open_accuracy"' "$OUT/$v-s$seed/metrics.jsonl"; then
      echo "[ablation] $v-s$seed: done before, kept"
      continue
    fi
    echo "[ablation] $v-s$seed: phantom train --config configs/demo.yaml run.seed=$seed run.threads=$THREADS $(overrides "$v")"
    run_one "$v" "$seed" &
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || failed=1; done
  done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
[ "$failed" = 0 ] || { echo "[ablation] a run failed (above); the table is not updated"; exit 1; }
.venv/bin/python scripts/ablation_table.py "$OUT" --md docs/demo.md --png docs/demo-ablation.png \
  --command "scripts/demo.sh --ablation   (SEEDS=\"$SEEDS\", $JOBS runs at once, run.threads=$THREADS)"
