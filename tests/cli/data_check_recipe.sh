#!/usr/bin/env bash
# `phantom data check` on a whole recipe: a conversations warm-up file read as conversations (its stage's format),
# the triples of the PO stage, the warm-up's own validation file (stages.0.val, conversations) and data.val for the
# other stages, each in its own block; the rejected answers rendered; a rejected
# answer equal to the chosen one after normalisation is a bad row (exit 1, named by file:line), one far longer than
# the chosen one is flagged; a file read in the wrong format says which format was assumed and how to pick another.
set -u
source "$(dirname "$0")/lib.sh"
PY="$SRC/.venv/bin/python"
"$PY" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 40 --val 8 --test 4 >/dev/null || exit 1
"$PY" - "$tmp/data" <<'PYEOF'
import json, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(f"{d}/train.jsonl")]
for name, part in (("conv.jsonl", rows), ("conv_val.jsonl", rows[:8])):  # the warm-up as LLaVA conversations
  with open(f"{d}/{name}", "w") as f:
    for r in part:
        f.write(json.dumps({"id": r["id"], "image": r["image"], "conversations": [
            {"from": "human", "value": "<image>\n" + r["question"]}, {"from": "gpt", "value": r["chosen"]}]}) + "\n")
bad = rows[:6]
bad[1]["rejected"] = [bad[1]["chosen"].upper().rstrip(".") + " ."]           # line 2: equal after normalisation
bad[3]["rejected"] = [bad[3]["rejected"], "It is " + "a very long and winding description " * 6 + "."]  # line 4: far longer
with open(f"{d}/triples.jsonl", "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in bad))
PYEOF
cfg=(--config "$SRC/configs/demo.yaml" data.val="$tmp/data/val.jsonl" data.image_root="$tmp/data"
     data.tokenizer="$tmp/data/tokenizer.json" data.train="$tmp/data/triples.jsonl"
     stages.0.data="$tmp/data/conv.jsonl" stages.0.format=conversations stages.0.val="$tmp/data/conv_val.jsonl")
"$PHANTOM" data check "${cfg[@]}" --samples 4 >"$tmp/out.txt" 2>&1; rc=$?
cat "$tmp/out.txt" | grep -E "^(===|bad rows|flagged|  data error|  .*triples.jsonl|[0-9]+ file|  rejected 1)" | head -30
expect() {  # expect <description> <regex>
  if grep -Eq -- "$2" "$tmp/out.txt"; then echo "ok: $1"; else echo "FAIL: $1 (no /$2/)"; fail=1; fi
}
[ $rc -eq 1 ] && echo "ok: exit 1 on a bad row" || { echo "FAIL: exit $rc"; fail=1; }
expect "the warm-up file in its stage's format" "^=== stage 0 \(warmup\): .*conv\.jsonl \(format conversations, from stages\.0\.format\) ===$"
expect "the triples once for the two stages that read them" "^=== stage 1 \(step1\), stage 2 \(step2\): .*triples\.jsonl \(format preference, from data\.format\) ===$"
expect "the warm-up's validation file in its format" "^=== validation of stage 0 \(warmup\): .*conv_val\.jsonl \(format conversations, from stages\.0\.format\) ===$"
expect "data.val for the other stages" "^=== validation \(data\.val\): .*/val\.jsonl \(format preference"
expect "rejected answers rendered" "^  rejected 1: \[\["
expect "rejected = chosen named by file:line" "data error at .*triples\.jsonl:2: rejected answer 1 equals the chosen answer after normalisation"
expect "a far longer rejected answer flagged" "triples\.jsonl:4: rejected answer 2: [0-9]+ tokens, the chosen one [0-9]+"
expect "the conversations file has no bad row" "40 samples read from .*conv\.jsonl"
expect "4 files" "^4 file\(s\) checked, 1 bad row\(s\)$"
# The conversations file given as --file, read in data.format (preference): the format assumed and how to pick another.
"$PHANTOM" data check "${cfg[@]}" --file "$tmp/data/conv.jsonl" >"$tmp/out.txt" 2>&1
expect "--file in the wrong format: which was assumed, which it looks like" \
  "warning: .*conv\.jsonl was read as data\.format=preference, but its first row looks like conversations: pick that format with data\.format=conversations"
expect "... repeated under the bad rows" "^hint: "
"$PHANTOM" data check "${cfg[@]}" --file "$tmp/data/conv.jsonl" --format conversations >"$tmp/out.txt" 2>&1 \
  && echo "ok: --format conversations reads it" || { echo "FAIL: --format conversations"; fail=1; }
# Training validates each stage on its own file: the warm-up on conversations, the PO stage on data.val's triples.
"$PHANTOM" train "${cfg[@]}" data.train="$tmp/data/train.jsonl" run.output_dir="$tmp/runs" run.threads=1 validation.benchmark= \
  log.tensorboard=false checkpoint.every_steps=0 stages.0.max_steps=2 stages.1.max_steps=1 stages.2.max_steps=1 \
  >"$tmp/train.log" 2>&1 || { echo "FAIL: training with stages.0.val"; tail -5 "$tmp/train.log"; fail=1; }
cp "$tmp/train.log" "$tmp/out.txt"
expect "the warm-up's validation file read as conversations" "data: 8 samples from .*conv_val\.jsonl \(conversations\)"
expect "the warm-up validated" "stage warmup validation: \{.*val/"
expect "the PO stage validated on data.val's triples (a reward margin)" "stage step1 validation: \{.*val/.*reward"
exit $fail
