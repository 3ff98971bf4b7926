#!/usr/bin/env bash
# Release-scale annotations (docs/scale.md): time to the first training step and peak memory of one rank reading a
# file shaped like the paper's Phantom.json (2 M rows, ~2.65 GB, ~1.3 KB a row), as JSONL and as one JSON array.
#
#   scripts/bench/annotations.sh                       # build/phantom, 2 M rows, both layouts, each run twice
#   PHANTOM=/tmp/phantom-main LABEL=before scripts/bench/annotations.sh   # another build (e.g. main's) for "before"
#
# Overrides: ROWS=2000000 FORMATS="jsonl json" REPEATS=2 WORK=/tmp/phantom-annot-bench KEEP=1 (keep the files)
# Each run: `phantom train` on configs/demo.yaml (the demo's tiny model) with data.train = the generated file,
# data.on_error=skip, one optimiser step (--max-steps 1), 2 threads, in file order (data.shuffle=false,
# data.group_by_length=false): every file's first step trains the same 4 rows, so what differs between the runs is
# the file, not the step (a shuffled first batch of the big file can hold rows 4x longer than the baseline's, and the
# step's activations then dwarf the annotations' memory). The baseline: the file's first 200 rows (BASE=0: none). Printed per run: seconds until the first step's
# line, CPU seconds, peak resident memory (maxrss: the file pages it mapped included) and peak anonymous resident
# memory (RssAnon: what the rank holds beyond the shared page cache). The generated files (~5.3 GB) are deleted
# at the end unless KEEP=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PHANTOM=${PHANTOM:-build/phantom}; LABEL=${LABEL:-$(git rev-parse --short HEAD)}
ROWS=${ROWS:-2000000}; FORMATS=${FORMATS:-jsonl json}; REPEATS=${REPEATS:-2}; WORK=${WORK:-/tmp/phantom-annot-bench}
PY=.venv/bin/python
mkdir -p "$WORK"
if [ ! -f "$WORK/demo/tokenizer.json" ]; then
  $PY scripts/make_demo_data.py --out "$WORK/demo" --train 64 --val 8 --test 8 >/dev/null
fi
# The JSONL file, then the same rows as one JSON array on one line (as json.dump writes it), streamed from it.
jsonl="$WORK/release-$ROWS.jsonl"
[ -f "$jsonl" ] || $PY scripts/bench/make_release_annotations.py --rows "$ROWS" --images-from "$WORK/demo/train.jsonl" \
  --format jsonl --out "$jsonl"
if [[ " $FORMATS " == *" json "* ]] && [ ! -f "$WORK/release-$ROWS.json" ]; then
  $PY - "$jsonl" "$WORK/release-$ROWS.json" <<'PY'
import sys
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb", buffering=1 << 22) as out:
    out.write(b"[")
    for i, line in enumerate(src):
        out.write((b", " if i else b"") + line.rstrip(b"\n"))
    out.write(b"]")
PY
fi
head -n 200 "$jsonl" > "$WORK/release-head200.jsonl"
echo "== $LABEL: $PHANTOM, $ROWS rows, $(nproc) cores, $(date -u +%FT%TZ)"
files=()
[ "${BASE:-1}" = 1 ] && files+=("$WORK/release-head200.jsonl")
for fmt in $FORMATS; do files+=("$WORK/release-$ROWS.$fmt"); done
for f in "${files[@]}"; do
  fmt=$(basename "$f"); fmt=${fmt#release-}
  for r in $(seq 1 "$REPEATS"); do
    rm -rf "$WORK/runs/$LABEL-$fmt-$r"
    echo -n "$LABEL $fmt $(du -hL "$f" | cut -f1) run $r: "
    $PY scripts/bench/measure_run.py --until '^.*step +1 \[' --log "$WORK/$LABEL-$fmt-$r.log" -- \
      "$PHANTOM" train --config configs/demo.yaml run.output_dir="$WORK/runs" run.name="$LABEL-$fmt-$r" run.threads=2 \
      data.train="$f" data.val= data.image_root="$WORK/demo" data.tokenizer="$WORK/demo/tokenizer.json" \
      data.on_error=skip data.batch_size=4 data.max_length=2048 model.llm.max_position_embeddings=2048 \
      validation.benchmark= log.tensorboard=false checkpoint.every_steps=0 data.shuffle=false data.group_by_length=false \
      --max-steps 1 | tee -a "$WORK/results-$LABEL.txt"
    grep -E "data: .*(samples|rows)" "$WORK/$LABEL-$fmt-$r.log" | head -1 | sed 's/^/    /' || true
  done
done
# What the big files cost the rank beyond the 200-row baseline (the same first step): peak anonymous memory.
[ "${BASE:-1}" = 1 ] && awk '/anon_peak_mb=/ { match($0, /anon_peak_mb=[0-9]+/); v = substr($0, RSTART + 13, RLENGTH - 13) + 0;
     if (NR <= reps) base = (base > v ? base : v); else print "    above the 200-row baseline: " v - base " MB" }' \
  reps="$REPEATS" "$WORK/results-$LABEL.txt"
rm -f "$WORK/release-head200.jsonl" "$WORK/results-$LABEL.txt"
[ "${KEEP:-0}" = 1 ] || rm -f "$WORK"/release-*.jsonl "$WORK"/release-*.json
rm -rf "$WORK/runs"
