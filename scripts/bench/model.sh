#!/usr/bin/env bash
# Model benchmarks, one run, same machine and threads (see docs/benchmarks.md):
#   1. training step tokens/s and peak memory: ours (Phantom off = plain Qwen2; chunked LM head + cross-entropy,
#      fused AdamW: the trainer's path) vs PyTorch eager (HF Qwen2, SDPA, AdamW), PAIRS interleaved pairs, median
#   2. Phantom (gate) vs plain step time, interleaved in the same rounds
#   3. decoding tokens/s with the KV cache vs without
# Shapes: Qwen2-0.5B cut to 4 layers, seq 512 (override: SHAPE="--layers 2 --seq 256" scripts/bench/model.sh).
# ABLATION=1 adds our step with the unfused head (--head full) and torch's AdamW (--optim torch) to each round.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SHAPE=${SHAPE:-"--hidden 896 --layers 4 --heads 14 --kv-heads 2 --intermediate 4864 --vocab 151655 --seq 512"}
PAIRS=${PAIRS:-5}
T=$(nproc)
echo "== shapes: $SHAPE, threads $T, $PAIRS interleaved rounds"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
run() { local tag=$1; shift; local line; line=$("$@"); echo "$tag: $line" >&2; echo "$tag $(echo "$line" | awk '{print $3}') $(echo "$line" | grep -o 'peak memory [0-9.]*' | awk '{print $3}')" >>"$out"; }
for i in $(seq "$PAIRS"); do
  run plain build/phantom bench model $SHAPE --phantom off --threads $T
  run ref .venv/bin/python scripts/bench/model_ref.py $SHAPE --threads $T
  run phantom build/phantom bench model $SHAPE --phantom gate --threads $T
  if [ "${ABLATION:-0}" = 1 ]; then
    run full_head build/phantom bench model $SHAPE --phantom off --threads $T --head full
    run torch_adamw build/phantom bench model $SHAPE --phantom off --threads $T --optim torch
    run unfused build/phantom bench model $SHAPE --phantom off --threads $T --head full --optim torch
  fi
done
build/phantom bench decode $SHAPE --seq 128 --new-tokens 32 --threads $T
python3 - "$out" <<'PY'
import statistics, sys
rounds = {}
for line in open(sys.argv[1]):
    tag, tps, mem = line.split()
    rounds.setdefault(tag, []).append((float(tps), float(mem)))
med = lambda xs: statistics.median(xs)
plain, ref = rounds["plain"], rounds["ref"]
ratios = [p[0] / r[0] for p, r in zip(plain, ref)]
mem = med([p[1] for p in plain]) / med([r[1] for r in ref])
ph = [p[0] / g[0] for p, g in zip(plain, rounds["phantom"])]
ok = lambda c: "met" if c else "NOT met"
print(f"ours (plain) / PyTorch eager tokens/s: median {med(ratios):.2f}x of {len(ratios)} pairs "
      f"(range {min(ratios):.2f}-{max(ratios):.2f}; goal >= 1.2x: {ok(med(ratios) >= 1.2)})")
print(f"peak memory ours / eager:              {mem:.2f}x ({med([p[1] for p in plain]):.2f} vs {med([r[1] for r in ref]):.2f} GB; "
      f"goal <= 0.7x: {ok(mem <= 0.7)})")
print(f"Phantom / plain step time:             median {med(ph):.2f}x (goal <= 1.10x: {ok(med(ph) <= 1.10)})")
for tag in ("full_head", "torch_adamw", "unfused"):
    if tag in rounds:
        r = [p[0] / x[0] for p, x in zip(plain, rounds[tag])]
        print(f"ours / ours with {tag}: median {med(r):.2f}x (peak memory {med([x[1] for x in rounds[tag]]):.2f} GB)")
PY
