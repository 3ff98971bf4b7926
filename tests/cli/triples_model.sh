#!/usr/bin/env bash
# `phantom data triples`' model source: a tiny Phantom model trained here for a short warm-up on the demo data
# samples 4 answers per question on the trainer's generation code; the answers verified wrong become rejected
# answers. Checked independently of the C++ verifier: no rejected answer names the reference's option letter (or
# contains the reference's open answer, or names the reference's item in other words), the counts add up, and the trainer's reader and `data check` accept the
# file with no bad row. The share of questions that got a rejected answer is printed (docs/custom-data.md).
set -u
source "$(dirname "$0")/lib.sh"
PY="$SRC/.venv/bin/python"
"$PY" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 3000 --val 16 --test 20 --mc-share 0.5 \
  --filler-share 0.5 >/dev/null || exit 1
cfg=(--config "$SRC/configs/demo.yaml" run.output_dir="$tmp/runs" run.name=t run.threads=2
     data.train="$tmp/data/train.jsonl" data.val="$tmp/data/val.jsonl" data.image_root="$tmp/data"
     data.tokenizer="$tmp/data/tokenizer.json" validation.benchmark= log.tensorboard=false checkpoint.every_steps=0)
# A short warm-up (the demo's learns the answer format within a few hundred steps); steps 1 and 2 one step each.
"$PHANTOM" train "${cfg[@]}" stages.0.max_steps=200 stages.1.max_steps=1 stages.2.max_steps=1 >"$tmp/train.log" 2>&1 \
  || { echo "FAIL: training"; tail -20 "$tmp/train.log"; exit 1; }
# The first 60 questions of the 3,000-row file (--limit): the framing words are counted over the whole file.
"$PHANTOM" data triples --input "$tmp/data/train.jsonl" --limit 60 --format preference --image-root "$tmp/data" --out "$tmp/triples.jsonl" \
  --model "$tmp/runs/t/warmup" --k-model 4 --batch-size 48 --max-new-tokens 24 --seed 1 --threads 2 >"$tmp/triples.txt" 2>&1 \
  || { echo "FAIL: triples"; cat "$tmp/triples.txt"; exit 1; }
cat "$tmp/triples.txt"
"$PY" - "$tmp/triples.jsonl" "$tmp/triples.txt" <<'PYEOF' || fail=1
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
report = open(sys.argv[2]).read()
def letter(t):  # the option a short answer names: a leading letter, as the benchmarks read it
    m = re.match(r"\s*\(?([A-D])\b", t)
    return m.group(1) if m else None
ITEMS = ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
def item(t):  # the Fashion-MNIST item an open answer names (longest first: "T-shirt" before "shirt")
    low = t.lower()
    for name in sorted(ITEMS, key=len, reverse=True):
        if re.search(r"(?<![\w-])" + re.escape(name.lower()) + r"\b", low):
            return name
    return None
def norm(t):
    return " ".join(w for w in re.sub(r"[^\w\s]", " ", t.lower()).split() if w not in ("a", "an", "the"))
n_rej = 0
for r in rows:
    assert r["rejected_by"] == ["model"] * len(r["rejected"]) and 1 <= len(r["rejected"]) <= 4, r
    for x in r["rejected"]:
        assert x.strip() and norm(x) != norm(r["chosen"]), ("rejected equals chosen", r)
        if "\nA. " in r["question"]:
            assert letter(x) != letter(r["chosen"]), ("rejected names the right letter", r)
        else:
            assert f" {norm(r['chosen'])} " not in f" {norm(x)} ", ("rejected contains the reference", r)
            # worded otherwise, the same item is still the right answer ("The image shows a bag." for "A bag.")
            assert item(x) is None or item(x) != item(r["chosen"]), ("rejected names the reference's item", r)
        n_rej += 1
m = re.search(r"model samples: 240, (\d+) verified correct .*questions (\d+) always right, (\d+) always wrong, (\d+) mixed", report)
assert m, "no model line in the report"
right, always_right, always_wrong, mixed = map(int, m.groups())
assert always_right + always_wrong + mixed == 60
f = re.search(r"framing words \(in >= 15 % of the (\d+) text answers, not compared\): (.*)", report)
assert f and {"image", "photo", "shows"} <= set(f.group(2).split(", ")), "the demo's framing words were not found"
assert f"triples out: {len(rows)} rows, {n_rej} rejected answers" in report
assert len(rows) <= 60 - always_right, "a question the model always got right has a rejected answer"
print(f"measured: {len(rows)} of 60 questions got a verified-wrong rejected answer ({100 * len(rows) / 60:.0f} %), "
      f"{n_rej} rejected answers; samples right {right}/240; questions always right {always_right}, always wrong "
      f"{always_wrong}, mixed {mixed}")
assert len(rows) > 0
PYEOF
# The trainer reads the triples: `data check` on them finds no bad row.
"$PHANTOM" data check "${cfg[@]}" --file "$tmp/triples.jsonl" --samples 1 >"$tmp/check.txt" 2>&1 \
  && echo "ok: data check accepts the triples" || { echo "FAIL: data check on the triples"; tail -20 "$tmp/check.txt"; fail=1; }
exit $fail
