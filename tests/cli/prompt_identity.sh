#!/usr/bin/env bash
# One model, one prompt everywhere: a tiny model trained with data.max_tiles: 1 on wide (4:1) images gives the same
# prompt ids and the same answers in the trainer's held-out benchmark, `phantom eval` and `phantom generate --input`
# (no prompt flag given: both read the export's config.json "phantom_prompt"). Two-image questions with their
# <image> placeholders inside the text get the same prompt ids in the trainer's batches and `generate --input`. A flag that overrides a saved setting
# is logged and changes the prompt (with the default 6 tiles a wide image is 4 tiles + thumbnail, not 1).
source "$(dirname "$0")/lib.sh"
PY="$SRC/.venv/bin/python"

"$PY" "$SRC/scripts/make_demo_data.py" --out "$tmp/data" --train 16 --val 2 --test 6 >/dev/null \
  || { echo "FAIL: demo data"; exit 1; }
# Every image 4x wider (train images and the benchmark's base64 images), and the benchmark's images as files too.
"$PY" - "$tmp/data" <<'PY' || { echo "FAIL: widening images"; exit 1; }
import base64, csv, glob, io, json, os, sys
from PIL import Image
d = sys.argv[1]
wide = lambda im: im.resize((im.width * 4, im.height))
for p in glob.glob(os.path.join(d, "images", "*", "*.png")):
    wide(Image.open(p)).save(p)
rows = list(csv.reader(open(os.path.join(d, "mc_test.tsv")), delimiter="\t"))
col = rows[0].index("image")
os.makedirs(os.path.join(d, "bench_images"), exist_ok=True)
for r in rows[1:]:
    im = wide(Image.open(io.BytesIO(base64.b64decode(r[col]))))
    im.save(os.path.join(d, "bench_images", r[0] + ".png"))
    buf = io.BytesIO(); im.save(buf, format="PNG"); r[col] = base64.b64encode(buf.getvalue()).decode()
csv.writer(open(os.path.join(d, "mc_test.tsv"), "w"), delimiter="\t", lineterminator="\n").writerows(rows)
PY

# Two-image questions with their <image> placeholders inside the text (data.multi_image: interleaved, the default):
# held-out triples the trainer validates on (its own batch maker logs the prompt ids it trains on), and the same
# questions for `generate --input`.
"$PY" - "$tmp/data" <<'PY' || { echo "FAIL: two-image rows"; exit 1; }
import glob, json, os, sys
d = sys.argv[1]
imgs = sorted(os.path.relpath(p, d) for p in glob.glob(os.path.join(d, "images", "*", "*.png")))
with open(os.path.join(d, "two.jsonl"), "w") as tri, open(os.path.join(d, "two_questions.jsonl"), "w") as q:
    for k in range(2):
        a, b = imgs[2 * k], imgs[2 * k + 1]
        question = f"Compare <image> with <image>: which of the two is lighter?"
        tri.write(json.dumps({"id": f"two-{k}", "image": [a, b], "question": question, "chosen": "The first.",
                              "rejected": "The second."}) + "\n")
        q.write(json.dumps({"id": f"two-{k}", "prompt": question, "images": [a, b]}) + "\n")
PY

# Train one step per stage (max_tiles: 1 is the demo's), then the benchmark; prompt ids logged at debug level.
PHANTOM_LOG_LEVEL=debug "$PHANTOM" train --config "$SRC/configs/demo.yaml" run.name=m run.output_dir="$tmp/runs" \
  run.threads=1 data.train="$tmp/data/train.jsonl" data.val="$tmp/data/two.jsonl" data.image_root="$tmp/data" \
  data.tokenizer="$tmp/data/tokenizer.json" data.batch_size=4 stages.0.max_steps=1 stages.1.max_steps=1 \
  stages.2.max_steps=1 validation.benchmark="$tmp/data/mc_test.tsv" validation.open_questions=false \
  log.tensorboard=false >"$tmp/train.log" 2>&1 || { echo "FAIL: training"; tail -5 "$tmp/train.log"; exit 1; }
model="$tmp/runs/m/step2"
grep -q '"max_tiles": 1' "$model/config.json" || { echo "FAIL: config.json does not record max_tiles 1"; grep -A7 phantom_prompt "$model/config.json"; exit 1; }
grep -q '"multi_image": "interleaved"' "$model/config.json" || { echo "FAIL: config.json does not record multi_image interleaved"; grep -A7 phantom_prompt "$model/config.json"; exit 1; }

PHANTOM_LOG_LEVEL=debug "$PHANTOM" eval --model "$model" --benchmark mc --data "$tmp/data/mc_test.tsv" \
  --out "$tmp/eval" --batch-size 4 --threads 1 >"$tmp/eval.log" 2>&1 || { echo "FAIL: eval"; tail -5 "$tmp/eval.log"; exit 1; }
grep -q "prompt: chatml template, max_tiles 1, thumbnail, image placement prepend, images interleaved (from $model/config.json)" "$tmp/eval.log" \
  || { echo "FAIL: eval did not take the saved prompt"; grep "prompt:" "$tmp/eval.log"; exit 1; }

# The benchmark's own prompts (as results files record them), asked through `generate --input`.
"$PY" - "$tmp/runs/m/benchmark/benchmark.json" "$tmp/data/bench_images" >"$tmp/questions.jsonl" <<'PY'
import json, sys
for it in json.load(open(sys.argv[1]))["items"]:
    print(json.dumps({"id": it["id"], "prompt": it["prompt"], "image": f"{sys.argv[2]}/{it['id']}.png"}))
PY
PHANTOM_LOG_LEVEL=debug "$PHANTOM" generate --model "$model" --input "$tmp/questions.jsonl" --out "$tmp/gen.jsonl" \
  --num-beams 3 --max-new-tokens 5 --batch-size 4 --threads 1 >"$tmp/gen.log" 2>&1 \
  || { echo "FAIL: generate"; tail -5 "$tmp/gen.log"; exit 1; }
# The two-image questions through `generate --input` (the same eval::answer_batch as `phantom eval`), once with the
# saved rule and once with --multi-image first_turn (logged as an override; the images then move to the front).
PHANTOM_LOG_LEVEL=debug "$PHANTOM" generate --model "$model" --input "$tmp/data/two_questions.jsonl" --out "$tmp/two.jsonl" \
  --max-new-tokens 3 --threads 1 >"$tmp/two.log" 2>&1 || { echo "FAIL: generate (two images)"; tail -5 "$tmp/two.log"; exit 1; }
PHANTOM_LOG_LEVEL=debug "$PHANTOM" generate --model "$model" --input "$tmp/data/two_questions.jsonl" --out "$tmp/two_ft.jsonl" \
  --max-new-tokens 3 --threads 1 --multi-image first_turn >"$tmp/two_ft.log" 2>&1 \
  || { echo "FAIL: generate --multi-image first_turn"; tail -5 "$tmp/two_ft.log"; exit 1; }
grep -q "prompt: multi_image first_turn overrides the model's interleaved" "$tmp/two_ft.log" || { echo "FAIL: the rule override is not logged"; exit 1; }
# With a flag the setting is overridden, and said so.
PHANTOM_LOG_LEVEL=debug "$PHANTOM" generate --model "$model" --input "$tmp/questions.jsonl" --out "$tmp/gen6.jsonl" \
  --num-beams 3 --max-new-tokens 5 --batch-size 4 --threads 1 --max-tiles 6 >"$tmp/gen6.log" 2>&1 \
  || { echo "FAIL: generate --max-tiles 6"; tail -5 "$tmp/gen6.log"; exit 1; }
grep -q "prompt: max_tiles 6 overrides the model's 1" "$tmp/gen6.log" || { echo "FAIL: the override is not logged"; exit 1; }

"$PY" - "$tmp" <<'PY' || exit 1
import json, re, sys
t = sys.argv[1]
def ids(log, training=False):  # id -> prompt ids, from the debug lines of answer_batch (or the trainer's batches)
    prefix = r"training " if training else r"(?<!training )"
    return dict(re.findall(prefix + r"prompt ids of (\S+) \(\d+\): ([0-9 ]+)", open(f"{t}/{log}").read()))
train, ev, gen, gen6 = ids("train.log"), ids("eval.log"), ids("gen.log"), ids("gen6.log")
# Two images where the text puts them: the trainer's batches (every stage validates on them) and generate agree.
two_train = {k: v for k, v in ids("train.log", training=True).items() if k.startswith("two-")}
two_gen, two_ft = ids("two.log"), ids("two_ft.log")
assert sorted(two_train) == sorted(two_gen) == ["two-0", "two-1"], (sorted(two_train), sorted(two_gen))
assert two_train == two_gen, "two-image prompt ids differ between training and generate"
from tokenizers import Tokenizer
tk = Tokenizer.from_file(f"{t}/runs/m/step2/tokenizer.json")
for k, v in two_gen.items():
    a, b = v.split(), two_ft[k].split()
    assert sorted(a) == sorted(b) and a != b, "first_turn should move the same tokens, the images, to the front"
    text = re.sub(r"(<IMG_CONTEXT>)+", "", tk.decode([int(x) for x in a], skip_special_tokens=False))
    assert "Compare <img></img> with <img></img>: which" in text, text
assert train and len(train) == len(ev) == len(gen), (len(train), len(ev), len(gen))
assert train == ev == gen, "prompt ids differ between the trainer's benchmark, eval and generate"
n1 = {k: len(v.split()) for k, v in train.items()}
n6 = {k: len(v.split()) for k, v in gen6.items()}
assert all(n6[k] == n1[k] + 4 * 16 for k in n1), "6 tiles should add 4 tiles of 16 image tokens to a 4:1 image"
bench = {it["id"]: it["response"] for it in json.load(open(f"{t}/runs/m/benchmark/benchmark.json"))["items"]}
import glob
evald = {it["id"]: it["response"] for f in glob.glob(f"{t}/eval/*.json") if not f.endswith("summary.json")
         for it in json.load(open(f)).get("items", [])}
gen_ans = {j["id"]: j["answer"] for j in map(json.loads, open(f"{t}/gen.jsonl"))}
assert bench == evald, f"benchmark vs eval answers differ:\n{bench}\n{evald}"
assert bench == gen_ans, f"benchmark vs generate answers differ:\n{bench}\n{gen_ans}"
print(f"ok: 2 two-image questions: equal interleaved prompt ids ({len(two_gen['two-0'].split())} tokens) in the "
      f"trainer's batches and generate; --multi-image first_turn reorders them")
print(f"ok: {len(train)} questions: equal prompt ids ({sorted(set(n1.values()))} tokens) and answers "
      f"{sorted(set(bench.values()))} in the trainer's benchmark, eval and generate; --max-tiles 6 gives "
      f"{sorted(set(n6.values()))} tokens")
PY
echo "ok: a model trained with max_tiles 1 is prompted the same way by the trainer, eval and generate"
