#!/usr/bin/env bash
# Data pipeline benchmark, one run, same machine, same images and texts (see docs/benchmarks.md):
#   ours:   build/phantom data bench (the trainer's BatchMaker + Loader: OpenCV decode, PIL-exact tiling,
#           normalisation, BPE tokenisation with the chat template, shared-prefix preference collate)
#   Python: PIL + the torchvision transforms (re-implemented, torchvision is not installed) + HF tokenizers +
#           a padding collate, in a torch DataLoader with 0 and with 2 worker processes
# Images: a real photo at 8 sizes from 300x200 to 1600x900, 448-px tiles, up to 6 tiles + thumbnail.
# Goal: ours >= 3x the best Python figure, same work (no image cache: every image decoded and tiled).
# The last line is ours with data.image_cache_mb set: the set repeats 8 photos, so nearly every image is a cache
# hit there; it shows what the cache saves, not a like-for-like ratio.
#   scripts/bench/data.sh [SAMPLES]     # default 256 (32 batches of 8)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
N=${1:-256}
[ -f runs/demo-data/tokenizer.json ] || .venv/bin/python scripts/make_demo_data.py --out runs/demo-data
[ -f runs/bench-data/train.jsonl ] || .venv/bin/python scripts/bench/data_ref.py make runs/bench-data
echo "== $N samples, $(nproc) cores"
rate() { local line; line=$("$@"); echo "$line" >&2; echo "$line" | awk '/samples\/s/ {print $3; exit}'; }
ours=$(rate build/phantom data bench --config configs/bench-data.yaml --batches $((N / 8)))
py0=$(rate .venv/bin/python scripts/bench/data_ref.py run runs/bench-data --samples "$N" --workers 0)
py2=$(rate .venv/bin/python scripts/bench/data_ref.py run runs/bench-data --samples "$N" --workers 2)
cached=$(rate build/phantom data bench --config configs/bench-data.yaml --batches $((N / 8)) data.image_cache_mb=256)
python3 - "$ours" "$py0" "$py2" "$cached" <<'PY'
import sys
ours, py0, py2, cached = map(float, sys.argv[1:])
best = max(py0, py2)
print(f"ours / Python (best of 0 and 2 workers) samples/s: {ours / best:.2f}x   goal >= 3x   "
      f"(vs 0 workers {ours / py0:.2f}x, vs 2 workers {ours / py2:.2f}x)")
print(f"with the image cache (repeated photos, not the same work): {cached / best:.2f}x the best Python figure")
PY
