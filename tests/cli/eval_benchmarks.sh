#!/usr/bin/env bash
# `phantom eval` end to end on a tiny trained model: MMBench (TSV, base64 images), POPE (two split files), MME
# (release folder), ChartQA and MM-Vet (judge hook) fixtures in their published formats. Checks: results files and
# summary exist and the metrics follow from the answers in them (recomputed here in Python); `phantom generate
# --input` gives the same answers; 1 rank and 2 ranks (RANK/WORLD_SIZE) give identical answers; a run killed
# with -9 resumes without regenerating answered items and leaves a valid results file; a malformed row, a missing
# and a corrupt image are reported with their row ids.
set -u
PHANTOM="$1"; SRC="$2"
PY="$SRC/.venv/bin/python"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

"$PY" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 24 --val 4 --test 12 >/dev/null || { echo "FAIL: demo data"; exit 1; }
# A tiny model: the demo recipe, one step per stage.
"$PHANTOM" train --config "$SRC/configs/demo.yaml" run.name=m run.output_dir="$tmp/runs" run.threads=1 \
  data.train="$tmp/data/train.jsonl" data.val="" data.image_root="$tmp/data" data.tokenizer="$tmp/data/tokenizer.json" \
  data.batch_size=2 stages.0.max_steps=1 stages.1.max_steps=1 stages.2.max_steps=1 validation.benchmark="" \
  log.tensorboard=false >"$tmp/train.log" 2>&1 || { echo "FAIL: training the tiny model"; tail -5 "$tmp/train.log"; exit 1; }
model="$tmp/runs/m/step2"

# Fixtures in the published formats, images from the demo set.
"$PY" - "$tmp" <<'PY' || { echo "FAIL: fixtures"; exit 1; }
import json, os, shutil, sys
t = sys.argv[1]; d = f"{t}/data"; imgs = sorted(os.listdir(f"{d}/images/train"))[:6]
src = lambda i: f"{d}/images/train/{imgs[i]}"
os.makedirs(f"{t}/pope")
for k in range(4): shutil.copy(src(k), f"{t}/pope/{k}.png")
for split in ("random", "popular"):
    with open(f"{t}/pope/coco_pope_{split}.json", "w") as f:
        for q in range(4):
            f.write(json.dumps({"question_id": q + 1, "image": f"{q}.png", "text": f"Is there a {['shirt', 'bag', 'coat', 'dog'][q]} in the image?",
                                "label": "yes" if q % 2 == 0 else "no"}) + "\n")
for cat, layout in (("existence", "flat"), ("artwork", "split")):
    base = f"{t}/mme/{cat}"; img_dir = base if layout == "flat" else f"{base}/images"
    qa_dir = base if layout == "flat" else f"{base}/questions_answers_YN"
    os.makedirs(img_dir, exist_ok=True); os.makedirs(qa_dir, exist_ok=True)
    for k in range(2):
        shutil.copy(src(k), f"{img_dir}/{cat}{k}.png")
        open(f"{qa_dir}/{cat}{k}.txt", "w").write(f"Is this a shirt? Please answer yes or no.\tYes\n"
                                                  f"Is this a dog? Please answer yes or no.\tNo\n")
os.makedirs(f"{t}/chartqa/png")
for k in range(2): shutil.copy(src(k), f"{t}/chartqa/png/c{k}.png")
json.dump([{"imgname": "c0.png", "query": "What is the highest value?", "label": "12"},
           {"imgname": "c0.png", "query": "Which year?", "label": "2019"},
           {"imgname": "c1.png", "query": "How many bars?", "label": "4"}], open(f"{t}/chartqa/test_human.json", "w"))
os.makedirs(f"{t}/mmvet/images")
shutil.copy(src(0), f"{t}/mmvet/images/v1.png")
# 120 MC rows (the 12 demo rows repeated under new indices) for the interruption test.
rows = open(f"{d}/mc_test.tsv").read().splitlines()
with open(f"{t}/mc120.tsv", "w") as f:
    f.write(rows[0] + "\n")
    for k in range(120):
        r = rows[1 + k % 12].split("\t"); r[0] = str(k); f.write("\t".join(r) + "\n")
json.dump({"v1": {"imagename": "v1.png", "capability": ["rec"], "question": "What is shown?", "answer": "a shirt"}},
          open(f"{t}/mmvet/mm-vet.json", "w"))
PY

# The check: every metric recomputed from the answers in the results file.
cat >"$tmp/check.py" <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
def close(a, b): return abs(a - b) < 1e-6
def pope_norm(r):
    t = r.strip().lower().split(".")[0].replace(",", "")
    return "no" if any(w in ("no", "not") for w in t.split(" ")) else "yes"
def mme_norm(r):
    t = r.strip().lower()
    if t in ("yes", "no"): return t
    return "yes" if "yes" in t[:4] else "no" if "no" in t[:4] else "other"
errs = []
for name in names:
    j = json.load(open(f"{out}/{name}.json")); m = j["metrics"]; items = j["items"]
    if any(x["response"] is None for x in items): errs.append(f"{name}: unanswered items")
    if name == "mc":
        for x in items:
            if x["correct"] != (x["prediction"] == x["answer"]): errs.append(f"{name} {x['id']}: correct flag")
            if x["response"].strip() in "ABCD" and x["response"].strip() and x["prediction"] != x["response"].strip():
                errs.append(f"{name} {x['id']}: letter not extracted")
        if not close(m["accuracy"], 100 * sum(x["correct"] for x in items) / len(items)): errs.append(f"{name}: accuracy")
    elif name == "pope":
        accs = []
        for split in ("random", "popular"):
            xs = [x for x in items if x["category"] == split]
            tp = sum(pope_norm(x["response"]) == "yes" and x["answer"] == "yes" for x in xs)
            tn = sum(pope_norm(x["response"]) == "no" and x["answer"] == "no" for x in xs)
            for x in xs:
                if x["prediction"] != pope_norm(x["response"]): errs.append(f"pope {x['id']}: prediction")
            accs.append(100 * (tp + tn) / len(xs))
            if not close(m[f"{split}/accuracy"], accs[-1]): errs.append(f"pope {split}/accuracy")
        if not close(m["accuracy"], sum(accs) / 2): errs.append("pope accuracy")
    elif name == "mme":
        total = 0
        for cat in ("existence", "artwork"):
            xs = [x for x in items if x["category"] == cat]
            right = [mme_norm(x["response"]) == x["answer"] for x in xs]
            imgs = {}
            for x, r in zip(xs, right): imgs.setdefault(x["id"].split("#")[0], []).append(r)
            score = 100 * sum(right) / len(xs) + 100 * sum(all(v) for v in imgs.values()) / len(imgs)
            if not close(m[f"{cat}/score"], score): errs.append(f"mme {cat}/score {m[f'{cat}/score']} != {score}")
            total += score
        if not close(m["total"], total): errs.append("mme total")
    elif name == "chartqa":
        if not close(m["relaxed_accuracy"], 100 * sum(x["correct"] for x in items) / len(items)): errs.append("chartqa")
print("\n".join(errs) if errs else "consistent")
sys.exit(1 if errs else 0)
PY

E=(--model "$model" --threads 1 --batch-size 3)
POPE2="$tmp/pope/coco_pope_random.json+$tmp/pope/coco_pope_popular.json"
"$PHANTOM" eval "${E[@]}" --benchmark mc,pope,mme,chartqa --out "$tmp/e1" \
  --data "$tmp/data/mc_test.tsv,$POPE2,$tmp/mme,$tmp/chartqa" >"$tmp/e1.log" 2>&1 || { bad "eval of 4 benchmarks"; tail -5 "$tmp/e1.log"; }
for n in mc pope mme chartqa; do
  [ -s "$tmp/e1/$n.json" ] || bad "no results file $n.json"
done
grep -q "| pope | accuracy |" "$tmp/e1/summary.md" && grep -q "| mme | total |" "$tmp/e1/summary.md" \
  && ok "summary.md lists every benchmark" || { bad "summary.md"; cat "$tmp/e1/summary.md"; }
"$PY" "$tmp/check.py" "$tmp/e1" mc pope mme chartqa >"$tmp/check.out" 2>&1 \
  && ok "metrics follow from the answers in the results files" || { bad "scores vs answers:"; cat "$tmp/check.out"; }
[ -z "$(ls "$tmp/e1/shards" 2>/dev/null)" ] && ok "shards merged and removed" || bad "shards left behind"

# Known answers injected as a (previous run's) shard: nothing is generated, the scores are the hand-checked ones.
mkdir -p "$tmp/e8/shards"
cat >"$tmp/e8/shards/pope.rank3.json" <<'JSON'
{"answers": {"random/1": "Yes", "random/2": "No, there is not.", "random/3": "no", "random/4": "Yes.",
             "popular/1": "yes", "popular/2": "yes", "popular/3": "Yes", "popular/4": "yes, there is"}}
JSON
"$PHANTOM" eval "${E[@]}" --benchmark pope --data "$POPE2" --out "$tmp/e8" >"$tmp/e8.log" 2>&1 || { bad "eval of injected answers"; tail -3 "$tmp/e8.log"; }
# random: labels yes,no,yes,no, read yes,no,no,yes: acc 50, precision 1/2, recall 1/2; popular: all yes: acc 50,
# precision 50, recall 100, F1 66.67; mean accuracy 50.
"$PY" -c "
import json,sys; m=json.load(open(sys.argv[1]))['metrics']
want={'random/accuracy':50,'random/precision':50,'random/recall':50,'popular/accuracy':50,'popular/precision':50,
      'popular/recall':100,'popular/f1':200/3,'accuracy':50}
bad=[(k,m[k],v) for k,v in want.items() if abs(m[k]-v)>1e-6]; assert not bad, bad
" "$tmp/e8/pope.json" && grep -q "generated 0 answers on this rank, 8 were already answered" "$tmp/e8.log" \
  && ok "injected answers: POPE scores equal the hand-checked values, nothing generated" || { bad "injected POPE scores"; grep generated "$tmp/e8.log"; }

# phantom generate --input on the same prompts and images, same batches: the same answers.
"$PY" - "$tmp" >"$tmp/pope_in.jsonl" <<'PY'
import json, sys
t = sys.argv[1]
for x in json.load(open(f"{t}/e1/pope.json"))["items"]:
    split, q = x["id"].split("/")
    print(json.dumps({"id": x["id"], "image": f"{t}/pope/{int(q) - 1}.png", "prompt": x["prompt"]}))
PY
"$PHANTOM" generate --model "$model" --threads 1 --input "$tmp/pope_in.jsonl" --num-beams 3 --max-new-tokens 5 \
  --batch-size 3 --out "$tmp/gen.jsonl" >"$tmp/gen.log" 2>&1 || { bad "generate --input"; tail -3 "$tmp/gen.log"; }
"$PY" - "$tmp" <<'PY' && ok "generate --input answers = eval answers" || bad "generate --input answers differ from eval"
import json, sys
t = sys.argv[1]
ev = {x["id"]: x["response"] for x in json.load(open(f"{t}/e1/pope.json"))["items"]}
gen = {j["id"]: j["answer"] for j in map(json.loads, open(f"{t}/gen.jsonl"))}
assert gen == ev, (gen, ev)
PY

# Two ranks (as torchrun starts them): identical per-item answers.
D2=(--benchmark mc,pope --data "$tmp/data/mc_test.tsv,$POPE2" --out "$tmp/e2")
RANK=1 WORLD_SIZE=2 "$PHANTOM" eval "${E[@]}" "${D2[@]}" >"$tmp/r1.log" 2>&1 &
r1=$!
RANK=0 WORLD_SIZE=2 "$PHANTOM" eval "${E[@]}" "${D2[@]}" >"$tmp/r0.log" 2>&1 || { bad "rank 0"; tail -3 "$tmp/r0.log"; }
wait $r1 || { bad "rank 1"; tail -3 "$tmp/r1.log"; }
"$PY" - "$tmp" <<'PY' && ok "1 rank and 2 ranks: identical answers" || bad "1 rank vs 2 ranks differ"
import json, sys
t = sys.argv[1]
for n in ("mc", "pope"):
    a = [(x["id"], x["response"]) for x in json.load(open(f"{t}/e1/{n}.json"))["items"]]
    b = [(x["id"], x["response"]) for x in json.load(open(f"{t}/e2/{n}.json"))["items"]]
    assert a == b, (n, a, b)
PY
grep -q "generated 6 answers on this rank" "$tmp/r1.log" && ok "rank 1 generated its 6 MC items" || { bad "rank 1's share"; grep generated "$tmp/r1.log"; }
# The same through torchrun (it sets RANK / WORLD_SIZE / LOCAL_RANK; --no-python runs the binary).
if [ -x "$SRC/.venv/bin/torchrun" ]; then
  "$SRC/.venv/bin/torchrun" --nproc-per-node 2 --no-python "$PHANTOM" eval "${E[@]}" --benchmark pope --data "$POPE2" \
    --out "$tmp/e2t" >"$tmp/tr.log" 2>&1 || { bad "torchrun eval"; tail -5 "$tmp/tr.log"; }
  "$PY" -c "
import json,sys; a,b=(json.load(open(f))['items'] for f in sys.argv[1:]); assert [(x['id'],x['response']) for x in a]==[(x['id'],x['response']) for x in b]
" "$tmp/e1/pope.json" "$tmp/e2t/pope.json" && ok "torchrun, 2 ranks: identical answers" || bad "torchrun answers differ"
fi
# Rank 0 alone: waits for rank 1, then names it.
RANK=0 WORLD_SIZE=2 "$PHANTOM" eval "${E[@]}" --benchmark pope --data "$tmp/pope" --out "$tmp/e3" --shard-timeout 2 \
  >"$tmp/r0b.log" 2>"$tmp/r0b.err"
grep -q "timed out after .* waiting for rank 1 of 2" "$tmp/r0b.err" && ok "missing rank named: $(cat "$tmp/r0b.err")" \
  || { bad "missing rank not reported"; cat "$tmp/r0b.err"; }

# Interrupted: kill -9 once some batches are flushed, then resume: nothing answered is generated again.
R=(--benchmark mc --data "$tmp/mc120.tsv" --batch-size 1)
"$PHANTOM" eval "${E[@]}" "${R[@]}" --out "$tmp/e4full" >"$tmp/kfull.log" 2>&1 || bad "uninterrupted 120-item run"
R+=(--out "$tmp/e4")
"$PHANTOM" eval "${E[@]}" "${R[@]}" >"$tmp/k.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  n=$("$PY" -c "import json,sys; print(len(json.load(open(sys.argv[1]))['answers']))" "$tmp/e4/shards/mc.rank0.json" 2>/dev/null || echo 0)
  [ "$n" -ge 3 ] && break
  sleep 0.1
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
done_before=$("$PY" -c "import json,sys; print(len(json.load(open(sys.argv[1]))['answers']))" "$tmp/e4/shards/mc.rank0.json")
[ "$done_before" -ge 3 ] && [ "$done_before" -lt 120 ] && ok "killed with $done_before of 120 answered" || bad "kill timing: $done_before answered"
"$PHANTOM" eval "${E[@]}" "${R[@]}" >"$tmp/k2.log" 2>&1 || { bad "resume"; tail -3 "$tmp/k2.log"; }
regen=$(grep -o "generated [0-9]* answers" "$tmp/k2.log" | awk '{print $2}')
[ "$regen" = "$((120 - done_before))" ] && ok "resume generated only the $regen missing items" || bad "resume generated $regen, expected $((120 - done_before))"
"$PHANTOM" eval "${E[@]}" "${R[@]}" >"$tmp/k3.log" 2>&1 || bad "rerun of a finished eval"
grep -q "generated 0 answers on this rank, 120 were already answered" "$tmp/k3.log" && ok "finished eval: nothing regenerated" || bad "finished eval regenerated"
"$PY" - "$tmp" <<'PY' && ok "resumed results equal the uninterrupted run" || bad "resumed answers differ"
import json, sys
t = sys.argv[1]
a = [(x["id"], x["response"]) for x in json.load(open(f"{t}/e4full/mc.json"))["items"]]
b = [(x["id"], x["response"]) for x in json.load(open(f"{t}/e4/mc.json"))["items"]]
assert a == b and len(a) == 120
PY
# kill -9 at random moments, 5 times: the results file is always absent or complete JSON.
for i in $(seq 1 5); do
  rm -rf "$tmp/e5"
  "$PHANTOM" eval "${E[@]}" --benchmark mc --data "$tmp/mc120.tsv" --batch-size 1 --out "$tmp/e5" >/dev/null 2>&1 &
  pid=$!
  sleep "$((RANDOM % 3 + 1)).$((RANDOM % 10))"
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  for f in "$tmp/e5/mc.json" "$tmp/e5/shards/mc.rank0.json"; do
    [ -e "$f" ] || continue
    "$PY" -c "import json,sys; json.load(open(sys.argv[1]))" "$f" 2>/dev/null || bad "kill $i: $f is not valid JSON"
  done
done
ok "5 random kills: no partial results or shard file"
"$PHANTOM" eval "${E[@]}" --benchmark mc --data "$tmp/mc120.tsv" --batch-size 1 --out "$tmp/e5" >"$tmp/k5.log" 2>&1 \
  && [ -z "$(ls -A "$tmp/e5/shards")" ] && "$PY" -c "
import json,sys; a,b=(json.load(open(f))['items'] for f in sys.argv[1:]); assert [x['response'] for x in a]==[x['response'] for x in b]
" "$tmp/e4full/mc.json" "$tmp/e5/mc.json" && ok "after the last kill: resumed to the uninterrupted answers, no files left in shards/" \
  || { bad "resume after random kills"; ls -A "$tmp/e5/shards"; tail -3 "$tmp/k5.log"; }

# Bad rows: a malformed line, a missing image, a corrupt image.
mkdir -p "$tmp/bad"
cp "$tmp/pope/"*.png "$tmp/bad/"; echo "not a png" >"$tmp/bad/corrupt.png"
{ head -2 "$tmp/pope/coco_pope_random.json"; echo '{"question_id": 3, "image": '; \
  echo '{"question_id": 4, "image": "gone.png", "text": "Is there a cat?", "label": "no"}'; \
  echo '{"question_id": 5, "image": "corrupt.png", "text": "Is there a cat?", "label": "no"}'; } >"$tmp/bad/coco_pope_random.json"
"$PHANTOM" eval "${E[@]}" --benchmark pope --data "$tmp/bad/coco_pope_random.json" --out "$tmp/e6" >"$tmp/b.out" 2>"$tmp/b.err"
rc=$?
[ $rc -ne 0 ] && [ "$(wc -l <"$tmp/b.err")" -eq 1 ] && grep -q "line 3" "$tmp/b.err" && grep -q "random/4" "$tmp/b.err" \
  && ok "bad rows stop the run by default: $(cat "$tmp/b.err")" || { bad "bad rows not reported (rc $rc)"; cat "$tmp/b.err"; }
"$PHANTOM" eval "${E[@]}" --benchmark pope --data "$tmp/bad/coco_pope_random.json" --out "$tmp/e6" --skip-bad-rows \
  >"$tmp/b2.log" 2>&1 || { bad "--skip-bad-rows"; tail -3 "$tmp/b2.log"; }
grep -q "line 3" "$tmp/e6/pope.row_errors.txt" && grep -q "random/4.*missing image" "$tmp/e6/pope.row_errors.txt" \
  && grep -q "row random/5: image not usable" "$tmp/e6/pope.row_errors.txt" \
  && ok "row errors file names every bad row" || { bad "row_errors.txt"; cat "$tmp/e6/pope.row_errors.txt"; }
"$PY" -c "
import json,sys; j=json.load(open(sys.argv[1])); ids=[x['id'] for x in j['items']]
assert ids==['random/1','random/2','random/5'], ids; assert j['missing']==1; assert j['items'][2]['response'] is None
" "$tmp/e6/pope.json" && ok "the good rows are evaluated, the corrupt image is missing" || bad "results with bad rows"

# A judged benchmark: answers in MM-Vet's format, the judge's output merged.
cat >"$tmp/judge.sh" <<'SH'
#!/bin/sh
# a stand-in judge: checks it got MM-Vet's results format and writes a score file
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert list(d)==['v1']; json.dump({'total': 50.0}, open(sys.argv[2],'w'))" "$1" "$2"
SH
"$PHANTOM" eval "${E[@]}" --benchmark mmvet --data "$tmp/mmvet/mm-vet.json" --out "$tmp/e7" --max-new-tokens 4 \
  --judge "sh $tmp/judge.sh {input} {output}" >"$tmp/j.log" 2>&1 || { bad "judged eval"; tail -3 "$tmp/j.log"; }
grep -q '"judge/total": 50' "$tmp/e7/mmvet.json" && [ -s "$tmp/e7/mmvet_judge_input.json" ] \
  && ok "judge input written, judge score merged" || { bad "judge"; head -c 400 "$tmp/e7/mmvet.json"; }

# phantom generate: streaming prompt, and --input bad rows by line and id.
"$PHANTOM" generate --model "$model" --threads 1 --image "$tmp/pope/0.png" --prompt "What is this?" \
  --max-new-tokens 4 >"$tmp/g.out" 2>&1 && ok "generate --prompt" || { bad "generate --prompt"; cat "$tmp/g.out"; }
printf '{"id": "a", "image": "%s", "prompt": "What?"}\n{"id": "b", "image": "nope.png", "prompt": "What?"}\n' \
  "$tmp/pope/0.png" >"$tmp/gin.jsonl"
"$PHANTOM" generate --model "$model" --threads 1 --input "$tmp/gin.jsonl" --max-new-tokens 2 >"$tmp/gi.out" 2>"$tmp/gi.err"
[ $? -ne 0 ] && grep -q "gin.jsonl:2 (id b)" "$tmp/gi.err" && ok "generate --input names the bad row" || { bad "generate bad row"; cat "$tmp/gi.err"; }
printf '{"id": "c", "image": "%s", "prompt": "What?"}\n' "$tmp/bad/corrupt.png" >>"$tmp/gin.jsonl"
"$PHANTOM" generate --model "$model" --threads 1 --input "$tmp/gin.jsonl" --max-new-tokens 2 --skip-bad-rows \
  --out "$tmp/gi.jsonl" >"$tmp/gi2.log" 2>&1 || { bad "generate --skip-bad-rows"; tail -3 "$tmp/gi2.log"; }
[ "$("$PY" -c "import json,sys; print([json.loads(l)['id'] for l in open(sys.argv[1])])" "$tmp/gi.jsonl")" = "['a']" ] && grep -q "gin.jsonl:3 (id c)" "$tmp/gi2.log" \
  && ok "generate --skip-bad-rows answers the good row, names the corrupt image" || { bad "generate skip"; cat "$tmp/gi.jsonl" "$tmp/gi2.log"; }
exit $fail
