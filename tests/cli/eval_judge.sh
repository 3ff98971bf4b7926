#!/usr/bin/env bash
# The judged sets end to end: `phantom eval --judge "scripts/judge.py ..."` against a canned OpenAI-compatible
# server on 127.0.0.1 (started here), for MM-Vet, MathVista and LLaVA-W fixtures with known (injected) answers.
# Checks: the scores merged into the results equal the hand-computed ones; a 503 is retried; a rerun sends no
# request (per-item cache); an unreachable endpoint fails with one line naming it. Also: the MMBench-CN test
# upload .xlsx read back by openpyxl equals the TSV, `phantom eval --summary` against the paper's numbers, and
# VisualWebBench + BLINK from parquet (scripts/parquet_to_jsonl.py) through `phantom eval` (multi-image items).
set -u
PHANTOM="$1"; SRC="$2"
PY="$SRC/.venv/bin/python"
tmp=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

"$PY" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 24 --val 4 --test 12 >/dev/null || { echo "FAIL: demo data"; exit 1; }
"$PHANTOM" train --config "$SRC/configs/demo.yaml" run.name=m run.output_dir="$tmp/runs" run.threads=1 \
  data.train="$tmp/data/train.jsonl" data.val="" data.image_root="$tmp/data" data.tokenizer="$tmp/data/tokenizer.json" \
  data.batch_size=2 stages.0.max_steps=1 stages.1.max_steps=1 stages.2.max_steps=1 validation.benchmark="" \
  log.tensorboard=false >"$tmp/train.log" 2>&1 || { echo "FAIL: training the tiny model"; tail -5 "$tmp/train.log"; exit 1; }
model="$tmp/runs/m/step2"

# Fixtures in the published layouts, and the answers a previous run "generated" (as answer shards).
"$PY" - "$tmp" <<'PY' || { echo "FAIL: fixtures"; exit 1; }
import json, os, shutil, sys
t = sys.argv[1]; d = f"{t}/data"; img = f"{d}/images/train/" + sorted(os.listdir(f"{d}/images/train"))[0]
def put(path, obj, lines=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        if lines: f.write("".join(json.dumps(o) + "\n" for o in obj))
        else: json.dump(obj, f)
def answers(name, a): put(f"{t}/out/shards/{name}.rank0.json", {"answers": a})
# MM-Vet: grader says 1.0 for an answer naming a shirt, 0.3 otherwise -> total (1.0 + 0.3) / 2 = 65.0;
# capability rec (both) 65.0, ocr (v2 only) 30.0.
os.makedirs(f"{t}/mmvet/images"); shutil.copy(img, f"{t}/mmvet/images/v1.png")
put(f"{t}/mmvet/mm-vet.json", {"v1": {"imagename": "v1.png", "capability": ["rec"], "question": "What is it?", "answer": "shirt"},
                                "v2": {"imagename": "v1.png", "capability": ["rec", "ocr"], "question": "What is written?", "answer": "shirt<OR>top"}})
answers("mmvet", {"v1": "a shirt", "v2": "a dog"})
# MathVista: 1 integer answer read by the rules (no request), 1 choice the judge extracts as "B" -> "8/11" (right),
# 1 float the judge extracts as 2.5 against 2.6 (wrong): 2 of 3 = 66.67.
os.makedirs(f"{t}/mathvista/images"); shutil.copy(img, f"{t}/mathvista/images/1.png")
base = {"image": "images/1.png", "unit": None, "metadata": {"task": "figure question answering", "skills": ["arithmetic reasoning"]}}
put(f"{t}/mathvista/testmini.json", {
    "1": dict(base, pid="1", question="How many?", query="Hint: integer.\nQuestion: How many?", choices=None, precision=None,
              answer="14", question_type="free_form", answer_type="integer"),
    "2": dict(base, pid="2", question="What fraction?", query="Hint: letter.\nQuestion: What fraction?\nChoices:\n(A) 3/11\n(B) 8/11",
              choices=["3/11", "8/11"], precision=None, answer="8/11", question_type="multi_choice", answer_type="text"),
    "3": dict(base, pid="3", question="How long?", query="Hint: one decimal.\nQuestion: How long?", choices=None, precision=1.0,
              answer="2.6", question_type="free_form", answer_type="float")})
answers("mathvista", {"1": "14", "2": "I think it is (B) 8/11", "3": "about 2.5 units"})
# LLaVA-W: reviews "8 6" and "5 10": reference mean 6.5, ours 8 -> all = 8 / 6.5 * 100 = 123.08;
# conv 6/8 = 75, detail 10/5 = 200.
os.makedirs(f"{t}/llavaw/images"); shutil.copy(img, f"{t}/llavaw/images/001.png")
put(f"{t}/llavaw/questions.jsonl", [{"question_id": 0, "image": "001.png", "text": "Describe it.", "category": "conv"},
                                    {"question_id": 1, "image": "001.png", "text": "Describe it in detail.", "category": "detail"}], True)
put(f"{t}/llavaw/context.jsonl", [{"id": "1", "image": "001.png", "caption": "A grey shirt on a white background."}], True)
put(f"{t}/llavaw/answers_gpt4.jsonl", [{"question_id": 0, "text": "A shirt.", "answer_id": "g0"},
                                       {"question_id": 1, "text": "A grey shirt, centred.", "answer_id": "g1"}], True)
answers("llavaw", {"0": "short answer", "1": "long answer"})
# MMBench-CN test split: the demo's MC rows without the answer column.
rows = [r.split("\t") for r in open(f"{d}/mc_test.tsv").read().splitlines()]
k = rows[0].index("answer")
with open(f"{t}/MMBench_TEST_CN_legacy.tsv", "w") as f:
    for r in rows: f.write("\t".join(r[:k] + r[k + 1:]) + "\n")
PY

# The canned endpoint: answers by what the prompt asks; the first request gets a 503 (to be retried).
cat >"$tmp/server.py" <<'PY'
import json, sys, http.server
count_file = sys.argv[1]
state = {"n": 0}
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state["n"] += 1
        open(count_file, "w").write(str(state["n"]))
        if state["n"] == 1:
            self.send_response(503); self.end_headers(); self.wfile.write(b"busy"); return
        text = body["messages"][-1]["content"]
        if "Compare the ground truth and prediction" in text:
            pred = text.rstrip().split("\n")[-1].split(" | ")[2]
            reply = "1.0" if "shirt" in pred else "0.3"
        elif "Extracted answer: " in text:
            tail = text[text.rindex("Question:"):]
            reply = "B" if "8/11" in tail and "(B) 8/11" in tail.split("\n\n")[1] else "2.5"
        elif "[Assistant 2]" in text:
            reply = "8 6\nfine" if "short answer" in text else "5 10\nbetter"
        else:
            reply = "?"
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}], "model": body["model"]}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
"$PY" "$tmp/server.py" "$tmp/count" >"$tmp/port" &
server=$!
for _ in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(cat "$tmp/port")
[ -n "$port" ] || { echo "FAIL: the canned server did not start"; exit 1; }

J="$PY $SRC/scripts/judge.py"
E=(--model "$model" --threads 1 --out "$tmp/out")
url="http://127.0.0.1:$port/v1"
run_eval() {  # $1 bench, $2 data, $3 judge bench name
  "$PHANTOM" eval "${E[@]}" --benchmark "$1" --data "$2" \
    --judge "$J $3 --input {input} --output {output} --data {data} --base-url $url --model test --backoff 0.05"
}
run_eval mmvet "$tmp/mmvet/mm-vet.json" mmvet >"$tmp/j1.log" 2>&1 || { bad "mmvet judged eval"; tail -5 "$tmp/j1.log"; }
run_eval mathvista "$tmp/mathvista/testmini.json" mathvista >"$tmp/j2.log" 2>&1 || { bad "mathvista judged eval"; tail -5 "$tmp/j2.log"; }
run_eval llavaw "$tmp/llavaw/questions.jsonl" llavaw >"$tmp/j3.log" 2>&1 || { bad "llavaw judged eval"; tail -5 "$tmp/j3.log"; }
"$PY" - "$tmp/out" <<'PY' && ok "judge scores merged: MM-Vet 65.0 (rec 65, ocr 30), MathVista 66.67, LLaVA-W 123.08 (conv 75, detail 200)" || bad "judged scores"
import json, sys
o = sys.argv[1]
def m(n): return json.load(open(f"{o}/{n}.json"))["metrics"]
want = {"mmvet": {"judge/total": 65.0, "judge/cap/rec": 65.0, "judge/cap/ocr": 30.0},
        "mathvista": {"judge/average/accuracy": 200 / 3, "judge/average/correct": 2},
        "llavaw": {"judge/all": 800 / 6.5, "judge/llava_bench_conv": 75.0, "judge/llava_bench_detail": 200.0}}
errs = [(n, k, m(n).get(k), v) for n, ks in want.items() for k, v in ks.items() if abs(m(n).get(k, -1e9) - v) > 1e-6]
heads = {n: json.load(open(f"{o}/{n}.json"))["headline"] for n in want}
assert not errs, errs
assert heads == {"mmvet": "judge/total", "mathvista": "judge/average/accuracy", "llavaw": "judge/all"}, heads
PY
# Requests: MM-Vet 2 (+1 retried 503), MathVista 2 (the integer needs none), LLaVA-W 2 = 7.
[ "$(cat "$tmp/count")" = 7 ] && ok "7 requests: one per judged item the rules cannot settle, plus the retried 503" \
  || bad "request count $(cat "$tmp/count"), expected 7"
grep -q "generated 0 answers" "$tmp/j1.log" || bad "the injected answers were regenerated"

# Rerun: everything answered and every request cached -> no request, same scores.
before=$(cat "$tmp/count")
run_eval mmvet "$tmp/mmvet/mm-vet.json" mmvet >"$tmp/j4.log" 2>&1 && run_eval llavaw "$tmp/llavaw/questions.jsonl" llavaw >>"$tmp/j4.log" 2>&1 \
  || { bad "rerun"; tail -3 "$tmp/j4.log"; }
[ "$(cat "$tmp/count")" = "$before" ] && grep -q '"judge/total": 65' "$tmp/out/mmvet.json" \
  && ok "rerun: no request sent (cache), same scores" || bad "rerun sent $(( $(cat "$tmp/count") - before )) requests"

# Unreachable endpoint: a one-line error naming it, and the eval fails.
"$PHANTOM" eval "${E[@]}" --benchmark mmvet --data "$tmp/mmvet/mm-vet.json" --out "$tmp/out2" \
  --judge "$J mmvet --input {input} --output {output} --data {data} --base-url http://127.0.0.1:9/v1 --retries 1 --backoff 0.01" \
  >"$tmp/u.out" 2>"$tmp/u.err"
rc=$?
[ $rc -ne 0 ] && grep -q "judge mmvet: http://127.0.0.1:9/v1/chat/completions: cannot reach the endpoint" "$tmp/u.err" \
  && grep -q "gave up after 2 tries" "$tmp/u.err" && ok "unreachable endpoint: $(grep 'judge mmvet' "$tmp/u.err")" \
  || { bad "unreachable endpoint (rc $rc)"; cat "$tmp/u.err"; }

# MMBench-CN test: the upload .xlsx (read back by openpyxl) holds the TSV's rows.
"$PHANTOM" eval "${E[@]}" --benchmark mmbench --data "$tmp/MMBench_TEST_CN_legacy.tsv" --out "$tmp/out" >"$tmp/m.log" 2>&1 \
  || { bad "mmbench test eval"; tail -3 "$tmp/m.log"; }
"$PY" - "$tmp/out" <<'PY' && ok "mmbench_cn_test_submission.xlsx read by openpyxl = the TSV (12 rows)" || bad "xlsx upload"
import csv, sys, openpyxl
o = sys.argv[1]
ws = openpyxl.load_workbook(f"{o}/mmbench_cn_test_submission.xlsx").active
x = [[("" if c is None else str(c)) for c in row] for row in ws.iter_rows(values_only=True)]
t = list(csv.reader(open(f"{o}/mmbench_cn_test_submission.tsv", newline=""), delimiter="\t"))
assert x == t, (x[:2], t[:2])
assert x[0][-3:] == ["prediction", "category", "l2-category"] and len(x) == 13, x[0]
PY

# The summary beside the paper (0.5B): MM-Vet 65.0 - 45.7 = +19.3, MathVista 66.7 - 51.7 = +15.0.
"$PHANTOM" eval --summary "$tmp/out" --size 0.5b --out "$tmp/cmp.md" >"$tmp/s.out" 2>&1 || { bad "--summary"; cat "$tmp/s.out"; }
grep -q "^| Phantom-0.5B (paper) | 83.2 |" "$tmp/cmp.md" \
  && grep -q "^| difference | - | - | - | - | - | - | - | +15.0 | - | - | +19.3 | +53.5 |" "$tmp/cmp.md" \
  && ok "summary table: paper row and differences" || { bad "summary table"; cat "$tmp/cmp.md"; }
"$PHANTOM" eval --summary "$tmp/out" --size 2b >"$tmp/s2.out" 2>"$tmp/s2.err"
[ $? -ne 0 ] && grep -q "unknown Phantom size '2b'" "$tmp/s2.err" && ok "bad size named" || { bad "bad size"; cat "$tmp/s2.err"; }
# VisualWebBench and BLINK: parquet fixtures -> data.jsonl -> `phantom eval` on the tiny model (answers are noise;
# checked: every item answered, the per-task / per-subtask metrics and headlines, and the summary's last columns).
"$PY" "$SRC/tests/tools/parquet_sets.py" fixtures "$tmp/pq" && \
  "$PY" "$SRC/scripts/parquet_to_jsonl.py" "$tmp/pq/VisualWebBench" --out "$tmp/vwb" >/dev/null && \
  "$PY" "$SRC/scripts/parquet_to_jsonl.py" "$tmp/pq/BLINK" --out "$tmp/blink" >/dev/null || bad "parquet conversion"
"$PHANTOM" eval "${E[@]}" --out "$tmp/out3" --benchmark visualwebbench,blink --skip-bad-rows \
  --data "$tmp/vwb/data.jsonl,$tmp/blink/data.jsonl" >"$tmp/v.log" 2>&1 || { bad "visualwebbench/blink eval"; tail -5 "$tmp/v.log"; }
"$PY" - "$tmp/out3" <<'PY' && ok "visualwebbench (10 items, 7 tasks) and blink (5 items, 2 subtasks) evaluated" || bad "vwb/blink results"
import json, sys
o = sys.argv[1]
v, b = (json.load(open(f"{o}/{n}.json")) for n in ("visualwebbench", "blink"))
assert v["headline"] == "average" and v["missing"] == 0 and len(v["items"]) == 10, (v["headline"], v["missing"])
assert all(f"{t}/n" in v["metrics"] for t in ["web_caption", "heading_ocr", "webqa", "element_ocr", "element_ground",
                                                "action_prediction", "action_ground"]), v["metrics"]
assert b["headline"] == "subtask_mean" and b["missing"] == 0 and len(b["items"]) == 5, b
assert {"accuracy/Art_Style", "accuracy/Counting"} <= set(b["metrics"]), b["metrics"]
PY
"$PHANTOM" eval --summary "$tmp/out3" --size 0.5b --out "$tmp/cmp3.md" >/dev/null 2>&1 \
  && grep -m1 "^| |" "$tmp/cmp3.md" | grep -q "| VisualWebBench\* | BLINK\* |$" && ok "summary: VisualWebBench and BLINK columns" \
  || { bad "summary columns"; cat "$tmp/cmp3.md"; }
exit $fail
