#!/usr/bin/env bash
# Model benchmarks, one run, same machine and threads (see docs/benchmarks.md):
#   1. training step tokens/s: ours (Phantom off = plain Qwen2) vs PyTorch eager (HF Qwen2, SDPA)
#   2. Phantom (gate) vs plain step time
#   3. decoding tokens/s with the KV cache vs without
# Shapes: Qwen2-0.5B cut to 4 layers, seq 512 (override: SHAPE="--layers 2 --seq 256" scripts/bench/model.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SHAPE=${SHAPE:-"--hidden 896 --layers 4 --heads 14 --kv-heads 2 --intermediate 4864 --vocab 151655 --seq 512"}
T=$(nproc)
echo "== shapes: $SHAPE, threads $T"
run() { local line; line=$("$@"); echo "$line" >&2; echo "$line" | awk '{print $3}'; }
ours_plain=$(run build/phantom bench model $SHAPE --phantom off --threads $T)
ours_phantom=$(run build/phantom bench model $SHAPE --phantom gate --threads $T)
ref=$(run .venv/bin/python scripts/bench/model_ref.py $SHAPE --threads $T)
build/phantom bench decode $SHAPE --seq 128 --new-tokens 32 --threads $T
python3 - "$ours_plain" "$ours_phantom" "$ref" <<'PY'
import sys
plain, phantom, ref = map(float, sys.argv[1:])
print(f"ours (plain) / PyTorch eager tokens/s: {plain / ref:.2f}x")
print(f"Phantom / plain step time:              {plain / phantom:.2f}x")
PY
