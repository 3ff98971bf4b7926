#!/usr/bin/env bash
# The GPU check (docs/gpu.md), meant for a GPU machine that has the work tree, a bundle made here by
# scripts/gpu/bundle.sh, and a Python venv with the same torch wheel; it builds nothing. Runs within ~8 minutes:
#   1. the machine: nvidia-smi, glibc, torch, `phantom info`
#   2. `phantom gpucheck`: CUDA vs CPU fp32 parity, bf16 autocast, NCCL world 1, PO step layouts, 7B-shaped step + MFU
#   3. our training step vs PyTorch eager (scripts/bench/model_ref.py) on the same GPU, bf16, same shape
# Without CUDA it is a dry run: every part that can run on the CPU does (shrunk), the rest print
# "skipped: no CUDA". Exit status: non-zero when a check failed.
#
#   scripts/gpu/check.sh [--bundle build/gpu-bundle] [--log DIR] [-- gpucheck options, e.g. --layers 8]
#   PHANTOM_PYTHON=/path/to/venv/bin/python scripts/gpu/check.sh ...   # the venv with torch (default: python3)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUNDLE="$ROOT/build/gpu-bundle" LOG="" GPUCHECK_ARGS=()
while (($#)); do
  case "$1" in
    --) shift; GPUCHECK_ARGS=("$@"); break ;;
    --bundle) BUNDLE="$2"; shift 2 ;;
    --log) LOG="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$BUNDLE/phantom" ] || { echo "error: $BUNDLE/phantom missing: make the bundle with scripts/gpu/bundle.sh --out $BUNDLE" >&2; exit 2; }
export PHANTOM_PYTHON="${PHANTOM_PYTHON:-python3}"
LOG="${LOG:-$(mktemp -d)}"
mkdir -p "$LOG"
P="$BUNDLE/phantom"
status=0
t0=$(date +%s)
say() { echo "== $*"; }

say "machine"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
echo "glibc $(getconf GNU_LIBC_VERSION | awk '{print $2}'), bundle: $(grep '^total' "$BUNDLE/manifest.txt")"
found=$("$PHANTOM_PYTHON" -c 'import os, torch; print(int(torch.cuda.is_available()), torch.__version__, os.path.dirname(torch.__file__))' 2>/dev/null) || {
  echo "error: $PHANTOM_PYTHON cannot import torch (set PHANTOM_PYTHON)" >&2; exit 2; }
read -r cuda PHANTOM_TORCH_VERSION PHANTOM_TORCH_DIR <<<"$found"
export PHANTOM_TORCH_VERSION PHANTOM_TORCH_DIR  # the launcher then needs no Python
"$P" info || { echo "error: the bundled phantom does not start (see above)" >&2; exit 1; }

say "phantom gpucheck"
timeout 420 "$P" gpucheck "${GPUCHECK_ARGS[@]}" 2>&1 | tee "$LOG/gpucheck.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
# The performance goals of gpucheck's measurements (the binary prints the numbers only): the shared-prefix PO step
# at most 1.15x an SFT step on the chosen answers, and an MFU of at least 40 % on the 7B-shaped step.
GOAL_PO_SHARED_OVER_SFT=1.15 GOAL_MFU_PERCENT=40
if [ "$cuda" = 1 ]; then
  awk -v po="$GOAL_PO_SHARED_OVER_SFT" -v mfu="$GOAL_MFU_PERCENT" '
    /^\[gpucheck\] po .*shared\/sft/ { match($0, /shared\/sft [0-9.]+x/); r = substr($0, RSTART + 11, RLENGTH - 12) + 0
                          printf "goal: po shared/sft %.2fx <= %.2fx %s\n", r, po, (r <= po ? "met" : "NOT met") }
    /^\[gpucheck\] step7b .*MFU/ { match($0, /MFU [0-9.]+%/); m = substr($0, RSTART + 4, RLENGTH - 5) + 0
                          printf "goal: step7b MFU %.1f%% >= %d%% %s\n", m, mfu, (m >= mfu ? "met" : "NOT met") }
  ' "$LOG/gpucheck.log"
fi

say "our step vs PyTorch eager (scripts/bench/model_ref.py), plain decoder"
if [ "$cuda" = 1 ]; then
  # Qwen2-7B width cut to 4 layers (tied head, as model_ref.py builds it), bf16 autocast, batch 2 x 2048.
  SHAPE="--hidden 3584 --layers 4 --heads 28 --kv-heads 4 --intermediate 18944 --vocab 152064 --seq 2048 --batch 2 --steps 5 --warmup 2"
  RUN="--device cuda --precision bf16"
else
  SHAPE="--hidden 64 --layers 1 --heads 4 --kv-heads 2 --intermediate 128 --vocab 1000 --seq 64 --steps 2 --warmup 1"
  RUN="--device cpu --precision fp32"
  echo "(dry run on CPU at a tiny shape; the comparison on CUDA: skipped: no CUDA)"
fi
if "$PHANTOM_PYTHON" -c 'import transformers' 2>/dev/null; then
  ours=$(timeout 120 "$P" bench model $SHAPE $RUN --phantom off 2>&1 | tee -a "$LOG/eager.log" | grep '^train_step') || status=1
  ref=$(timeout 120 "$PHANTOM_PYTHON" "$ROOT/scripts/bench/model_ref.py" $SHAPE $RUN 2>&1 | tee -a "$LOG/eager.log" | grep '^train_step') || status=1
  echo "ours:  $ours"
  echo "eager: $ref"
  if [ -n "$ours" ] && [ -n "$ref" ]; then
    awk -v a="$(awk '{print $3}' <<<"$ours")" -v b="$(awk '{print $3}' <<<"$ref")" -v cuda="$cuda" 'BEGIN {
      r = a / b; printf "ours / eager tokens/s: %.2fx", r
      if (cuda == 1) printf (r >= 1.0 ? " (goal >= 1.0x met)" : " (goal >= 1.0x NOT met)")
      printf "\n" }'
  fi
else
  echo "skipped: transformers is not installed in $PHANTOM_PYTHON's environment"
fi

say "done in $(( $(date +%s) - t0 )) s, logs in $LOG, status $status"
exit $status
