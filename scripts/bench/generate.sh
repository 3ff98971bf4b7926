#!/usr/bin/env bash
# Generation benchmark, one run, same machine and threads (see docs/benchmarks.md): batched beam search (3 beams,
# the paper's evaluation protocol) with the KV cache, ours vs HF transformers `generate` on the same tiny model
# (the demo's decoder shape, Phantom off so HF can run it; weights written by ours and loaded by HF).
#   scripts/bench/generate.sh        SHAPE="--hidden 896 --layers 4 ..." BENCH="--batch 4 --new-tokens 16" to change
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SHAPE=${SHAPE:-"--hidden 128 --layers 4 --heads 4 --kv-heads 2 --intermediate 384 --vocab 1024"}
BENCH=${BENCH:-"--batch 8 --seq 64 --new-tokens 32 --beams 3"}
T=${THREADS:-$(nproc)}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
echo "== shapes: $SHAPE $BENCH, threads $T"
ours=$(build/phantom bench generate $SHAPE $BENCH --phantom off --steps 3 --warmup 1 --threads $T --save "$dir/model")
echo "$ours"
ref=$(.venv/bin/python scripts/bench/generate_ref.py "$dir/model" $BENCH --steps 3 --warmup 1 --threads $T)
echo "$ref"
python3 - "$(echo "$ours" | awk '{print $3}')" "$(echo "$ref" | awk '{print $3}')" <<'PY'
import sys
ours, ref = map(float, sys.argv[1:])
print(f"ours / HF generate tokens/s: {ours / ref:.2f}x")
PY
