#!/usr/bin/env bash
# Data parallel scaling on CPU (Gloo, torchrun): tokens/s per rank at 1, 2, 4 ranks, one thread per rank, the same
# per-rank batch (weak scaling: global batch = ranks x PER_RANK), relative to 1 rank (docs/benchmarks.md).
#   scripts/bench/distributed.sh            # RANKS="1 2 4" STEPS=12 PER_RANK=8
# A compute-bound shape: the demo model widened (hidden 512, 4 layers), so a step is mostly GEMMs. The first 2
# steps are warm-up and not counted. On a machine with fewer cores than ranks the ranks share cores: the ratio then
# measures oversubscription, not communication (say so when you quote it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
RANKS=${RANKS:-"1 2 4"}; STEPS=${STEPS:-12}; PER_RANK=${PER_RANK:-8}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
.venv/bin/python scripts/make_demo_data.py --out "$tmp/data" --train 512 --val 4 --test 4 >/dev/null
d="$tmp/data"
cores=$(nproc --all)
export OMP_NUM_THREADS=1
echo "== $cores cores, load average $(cut -d' ' -f1-3 /proc/loadavg); ranks: $RANKS; $STEPS steps (2 warm-up) of $PER_RANK samples per rank, 1 thread per rank"
base=1
for n in $RANKS; do
  .venv/bin/torchrun --standalone --nproc-per-node="$n" --no-python build/phantom train --config configs/demo.yaml \
    run.name="r$n" run.output_dir="$tmp/runs" run.threads=1 data.train="$d/train.jsonl" data.val="" \
    data.image_root="$d" data.tokenizer="$d/tokenizer.json" data.batch_size=$((n * PER_RANK)) \
    'stages=[{name: s, loss: po, trainable: [".*"], max_steps: '"$STEPS"'}]' validation.benchmark="" \
    log.tensorboard=false model.llm.hidden_size=512 model.llm.intermediate_size=1536 model.llm.num_heads=8 \
    model.llm.num_kv_heads=4 model.llm.num_layers=4 ${EXTRA:-} >"$tmp/r$n.log" 2>&1 || { tail -20 "$tmp/r$n.log"; exit 1; }
  tps=$(.venv/bin/python - "$tmp/runs/r$n/metrics.jsonl" "$n" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l][2:]
n = int(sys.argv[2])
sync = sum(r.get("grad_sync_ms", 0) for r in rows) / sum(r["step_ms"] for r in rows)
print(sum(r["tokens_per_s"] for r in rows) / len(rows) / n, 100 * sync)
PY
)
  read -r tps sync <<<"$tps"
  [ "$n" = 1 ] && base=$tps
  python3 -c "import sys; t, b, n, s = map(float, sys.argv[1:]); print(f'{int(n)} rank(s): {t:8.0f} tokens/s per rank, {t/b*100:5.1f}% of 1 rank; rank 0 waits {s:4.1f}% of a step for gradients after its backward')" "$tps" "$base" "$n" "$sync"
done
