#!/usr/bin/env bash
# The embedded default job, end to end on a fresh machine: setup, build, the demo dataset (Fashion-MNIST product
# photos -> Phantom preference triples + a multiple-choice benchmark + a tokenizer), then configs/demo.yaml:
# a tiny Phantom model trained from scratch through an SFT warm-up, step 1 (PO) and step 2 (SFT), evaluated on
# the held-out benchmark with the paper's protocol (beam search, 3 beams).
#   scripts/demo.sh [key=value ...]     # overrides go to `phantom train`, e.g. run.name=demo-plain model.phantom=off
#   scripts/demo.sh --ablation          # the ablation over 3 seeds (scripts/ablation.sh): table + chart in docs/demo.md
#   scripts/demo.sh --prepare           # setup, build and data only
#   scripts/demo.sh --self-sampled      # the demo, then steps 1-2 again on rejected answers sampled from its own
#                                       # warm-up model (configs/demo-self-sampled.yaml); both benchmarks side by side
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
case "${1:-}" in
  --ablation) shift; exec scripts/ablation.sh "$@" ;;
  --prepare) shift; prepare_only=1 ;;
  --self-sampled) shift; prepare_only=0; self_sampled=1 ;;
  *) prepare_only=0 ;;
esac
scripts/setup.sh
export CCACHE_DIR="${CCACHE_DIR:-${PHANTOM_CACHE:-$HOME/.cache/phantom}/ccache}"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
BUILD_DIR="${BUILD_DIR:-build}"
cmake --build "$BUILD_DIR" -j "$(nproc)" --target phantom
"$BUILD_DIR/phantom" info
# 12,000 triples, half multiple choice, half of those with 1-3 filler options (an easier start for the letter
# lookup; the benchmark's questions all have 4 real items): docs/demo.md, "Why multiple-choice stayed at chance".
.venv/bin/python scripts/make_demo_data.py --out runs/demo-data --train 12000 --mc-share 0.5 --filler-share 0.5
[ "$prepare_only" = 1 ] && exit 0
# run.resume=auto: a second `scripts/demo.sh` continues an interrupted demo, or reports a finished one and changes
# nothing (a run directory holding checkpoints is never restarted silently); `scripts/demo.sh --overwrite` trains it again.
"$BUILD_DIR/phantom" train --config configs/demo.yaml run.resume=auto "$@" | tee runs/demo.log | grep -v '^ \|^#\|^[a-z_]*:' || exit 1
name=$(grep -o 'run directory: [^ ]*' runs/demo.log | head -1 | cut -d' ' -f3 || true)
if [ -z "$name" ]; then  # a finished run was reported, not trained again: show what it scored
  name=$(grep -oE '^[^ ]+ is finished' runs/demo.log | head -1 | cut -d' ' -f1 || true)
  [ -n "$name" ] || { echo "[demo] could not find the run directory in runs/demo.log"; exit 1; }
  for f in benchmark benchmark_open; do
    [ -f "$name/benchmark/$f.json" ] || continue
    .venv/bin/python -c 'import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print("  %s: accuracy %.2f%% on %d questions" % (sys.argv[2], m["accuracy"], m["n"]))' "$name/benchmark/$f.json" "$f"
  done
fi
if [ "${self_sampled:-0}" = 1 ]; then
  # Step 1's triples from the warm-up model: 4 sampled answers per question on the first 6,000 training rows (step 1
  # reads 6,000 questions), each verified against the reference; the wrong ones become rejected answers. A rerun
  # skips the rows already written.
  "$BUILD_DIR/phantom" data triples --config configs/demo.yaml --out runs/demo-data/self_sampled.jsonl \
    --model "$name/warmup" --k-model 4 --limit 6000 --batch-size 64 --max-new-tokens 16 --seed 1 | tee runs/demo-self-sampled-triples.log
  "$BUILD_DIR/phantom" train --config configs/demo-self-sampled.yaml run.resume=auto stages.0.init_from="$name/warmup" "$@" \
    | tee runs/demo-self-sampled.log | grep -v '^ \|^#\|^[a-z_]*:' || exit 1
  self_name=$(grep -oE 'run directory: [^ ]*|^[^ ]+ is finished' runs/demo-self-sampled.log | head -1 | sed 's/run directory: //; s/ is finished//')
  .venv/bin/python - "$name" "$self_name" <<'PYEOF'
import json, sys
def acc(run, f):
    try:
        m = json.load(open(f"{run}/benchmark/{f}.json"))["metrics"]
        return f"{m['accuracy']:.1f} %"
    except (OSError, KeyError, ValueError):
        return "-"
print("\n[demo] step 1 rejected answers: generator's (the demo) vs the warm-up model's own (self-sampled)")
print(f"  {'run':<28} {'MC letter accuracy':>20} {'open accuracy':>15}")
for run in sys.argv[1:]:
    print(f"  {run:<28} {acc(run, 'benchmark'):>20} {acc(run, 'benchmark_open'):>15}")
PYEOF
fi
plot=$(scripts/plot "$name") || plot="(scripts/plot failed: see above)"
cat <<EOT

[demo] done. Everything is in $name:
  $name/<stage>/            HF-format model of each stage (config.json, model.safetensors, tokenizer.json)
  $name/metrics.jsonl       one line per step (loss, sft, po, rewards/*, grad norm, lr, tok/s, ...); TensorBoard: $name/tb
  $plot   the curves (loss, sft/po, rewards/margins, rewards/accuracies, lr, validation): scripts/plot $name
  $name/benchmark/benchmark.json  every held-out answer, scored (the accuracy is printed above)
  $name/checkpoints/        resumable checkpoints: build/phantom train --config configs/demo.yaml --resume
Try the model:  build/phantom generate --model $name/step2 --image runs/demo-data/images/train/00006.png --prompt "What is this product?"
EOT
