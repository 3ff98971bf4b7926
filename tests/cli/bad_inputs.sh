#!/usr/bin/env bash
# Bad inputs and faults, made here at test time, each run through the real binary. For every case: the exit code,
# the place the message must name (file:line, key, flag or sample), no hang (each run has a time limit), and
# nothing else changed in the working tree of the test (a snapshot of every path, size and mtime before and
# after; a case may name the paths it is allowed to touch). docs/reliability.md lists the guarantees.
set -u
PHANTOM="$1"; SRC="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
work="$tmp/work"; mkdir -p "$work"
fail=0 cases=0

snapshot() {  # every path under $work with size and mtime, minus those matching the allowed regex $1
  (cd "$work" && find . -mindepth 1 -printf '%p %s %T@\n' | sort | grep -Ev "^\./($1)" || true)
}

# run_case <name> <rc> <regex> <allowed-change regex, or '-'> <command...>
run_case() {
  local name="$1" want="$2" re="$3" allow="$4"; shift 4
  [ "$allow" = "-" ] && allow='$^'
  cases=$((cases + 1))
  snapshot "$allow" >"$tmp/before"
  timeout 600 "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  snapshot "$allow" >"$tmp/after"
  local problem=""
  [ "$rc" = 124 ] && problem="hung (killed after 600 s)"
  [ -z "$problem" ] && [ "$rc" != "$want" ] && problem="exit code $rc, expected $want"
  [ -z "$problem" ] && ! grep -Eq -- "$re" "$tmp/err" "$tmp/out" && problem="message does not match /$re/"
  [ -z "$problem" ] && grep -Eq "Segmentation|Floating point|Aborted|terminate called|c10::Error|stack trace" \
    "$tmp/err" && problem="crash output"
  [ -z "$problem" ] && ! diff -q "$tmp/before" "$tmp/after" >/dev/null && problem="other files changed: $(diff "$tmp/before" "$tmp/after" | head -5 | tr '\n' ' ')"
  if [ -n "$problem" ]; then
    echo "FAIL: $name: $problem"; echo "  stderr: $(head -c 600 "$tmp/err")"; echo "  stdout tail: $(tail -c 400 "$tmp/out")"
    fail=1
  else
    echo "ok: $name -> $(grep -Eh -m1 -- "$re" "$tmp/err" "$tmp/out" | head -1 | cut -c1-220)"
  fi
}

# ---- inputs: the demo data (16 samples), a tiny recipe, HF config.json variants --------------------------------
"$SRC/.venv/bin/python" "$SRC/scripts/make_demo_data.py" --out "$work/data" --train 16 --val 4 --test 4 >/dev/null || exit 1
D="$work/data"
train=(train --config "$SRC/configs/demo.yaml" run.output_dir="$work/runs" data.train="$D/train.jsonl" data.val=""
       data.image_root="$D" data.tokenizer="$D/tokenizer.json" validation.benchmark="" log.tensorboard=false
       model.llm.num_layers=1 model.vision.num_layers=1)
yaml() { printf '%s\n' "base: $SRC/configs/demo.yaml" "$@" >"$work/bad.yaml"; }

# ---- configs and flags ------------------------------------------------------------------------------------------
yaml "optim:" "  lr: 1.0e-4" "  lr: 2.0e-4"
run_case "YAML duplicate key" 2 "duplicate key 'lr' \(.*bad\.yaml:4; first at .*bad\.yaml:3\)" - \
  "$PHANTOM" config --config "$work/bad.yaml"
yaml "data:" "  batch_size: 2" "optim:" "  lr: 1.0e-4" "data:" "  batch_size: 4"
run_case "YAML duplicate section" 2 "duplicate key 'data' \(.*bad\.yaml:6; first at .*bad\.yaml:2\)" - \
  "$PHANTOM" config --config "$work/bad.yaml"
yaml "run:" "  seed: 010"
run_case "YAML seed 010 (octal-looking)" 2 "run\.seed: expected a decimal integer.*got '010' \(.*bad\.yaml:3\)" - \
  "$PHANTOM" config --config "$work/bad.yaml"
yaml "run:" "  seed: 0x10"
run_case "YAML seed 0x10" 2 "run\.seed: expected a decimal integer.*got '0x10' \(.*bad\.yaml:3\)" - \
  "$PHANTOM" config --config "$work/bad.yaml"
yaml "? [a, b]" ": 1"
run_case "YAML non-scalar key" 2 "a key must be a plain name.*bad\.yaml:2" - "$PHANTOM" config --config "$work/bad.yaml"
yaml "stages: []"
run_case "stages: []" 2 "stages: empty" - "$PHANTOM" train --config "$work/bad.yaml" run.output_dir="$work/runs"
run_case "--max-steps -1" 2 "--max-steps: expected an integer >= 0, got -1" - "$PHANTOM" "${train[@]}" --max-steps -1
run_case "--max-steps abc" 2 "--max-steps: expected a decimal integer, got 'abc'" - "$PHANTOM" "${train[@]}" --max-steps abc
run_case "--max-steps 0x10" 2 "--max-steps: expected a decimal integer, got '0x10'" - "$PHANTOM" "${train[@]}" --max-steps 0x10
run_case "run.threads=100000" 2 "run\.threads: 100000 threads is more than 4 per core" - \
  "$PHANTOM" "${train[@]}" run.threads=100000 --dry-run
run_case "data.num_workers=100000" 2 "data\.num_workers: 100000 threads is more than 4 per core" - \
  "$PHANTOM" "${train[@]}" data.num_workers=100000 --dry-run
run_case "generate --threads 100000" 2 "--threads: 100000 threads is more than 4 per core" - \
  "$PHANTOM" generate --model "$work/nope" --prompt hi --threads 100000
run_case "generate --do-sample --temperature 0" 2 "--do-sample with --temperature 0 divides the logits by zero" - \
  "$PHANTOM" generate --model "$work/nope" --prompt hi --do-sample --temperature 0
run_case "generate --num-beams abc" 2 "--num-beams: expected a decimal integer, got 'abc'" - \
  "$PHANTOM" generate --model "$work/nope" --prompt hi --num-beams abc
run_case "generate --top-k 010" 2 "--top-k: expected a decimal integer, got '010'" - \
  "$PHANTOM" generate --model "$work/nope" --prompt hi --top-k 010
run_case "eval --num-beams abc" 2 "--num-beams: expected a decimal integer, got 'abc'" - \
  "$PHANTOM" eval --model "$work/nope" --benchmark mc --data "$work/nope.tsv" --num-beams abc
run_case "eval --limit 0x10" 2 "--limit: expected a decimal integer, got '0x10'" - \
  "$PHANTOM" eval --model "$work/nope" --benchmark mc --data "$work/nope.tsv" --limit 0x10
run_case "bench model --seq 010" 2 "--seq: expected a decimal integer, got '010'" - "$PHANTOM" bench model --seq 010
run_case "bench po --prompts 256,x" 2 "--prompts: 'x' is not a positive integer" - "$PHANTOM" bench po --prompts 256,x
run_case "info --threads 100000" 2 "--threads: 100000 threads is more than 4 per core" - "$PHANTOM" info --threads 100000
run_case "data.train missing: no run directory" 2 "data\.train: file not found: .*nope\.jsonl" - \
  "$PHANTOM" "${train[@]}" data.train="$work/nope.jsonl"
mkfifo "$work/fifo.jsonl"
run_case "data.train is a FIFO" 2 "data\.train: .*fifo\.jsonl: is a FIFO" - "$PHANTOM" "${train[@]}" data.train="$work/fifo.jsonl"
mkfifo "$work/fifo.yaml"
run_case "config file is a FIFO" 2 "cannot read config file .*fifo\.yaml: is a FIFO" - "$PHANTOM" config --config "$work/fifo.yaml"

# ---- HF config.json of model.path: validated before any module is built (and before the run directory) --------
hf() {  # hf <name> <python expression editing dict c (the llm part) / v (vision)>
  mkdir -p "$work/hf/$1"
  "$SRC/.venv/bin/python" - "$work/hf/$1/config.json" "$2" <<'PY'
import json, sys
c = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 128, "intermediate_size": 384,
     "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
     "rms_norm_eps": 1e-6, "max_position_embeddings": 512}
v = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 1, "num_attention_heads": 4,
     "patch_size": 7, "image_size": 56}
exec(sys.argv[2])
json.dump({"architectures": ["PhantomForCausalLM"], "llm_config": c, "vision_config": v, "downsample_ratio": 0.5,
           "ps_version": "v2"},
          open(sys.argv[1], "w"))
PY
}
for spec in "heads0|c['num_attention_heads'] = 0|'num_attention_heads' must be >= 1, got 0" \
            "kv0|c['num_key_value_heads'] = 0|'num_key_value_heads' must be >= 1, got 0" \
            "patch0|v['patch_size'] = 0|vision_config: key 'patch_size' must be >= 1, got 0" \
            "layers-2|c['num_hidden_layers'] = -2|'num_hidden_layers' must be >= 1, got -2" \
            "eps-small|c['rms_norm_eps'] = 'small'|key 'rms_norm_eps' must be a number, got \"small\"" \
            "heads3|c['num_attention_heads'] = 3|hidden_size \(128\) must be a multiple of num_attention_heads \(3\)" \
            "huge-layers|c['num_hidden_layers'] = 10**9|llm\.num_layers \(1000000000\) must be in \[1, 1024\]"; do
  IFS='|' read -r name edit msg <<<"$spec"
  hf "$name" "$edit"
  run_case "train: config.json $name" 1 "config\.json.*$msg" - "$PHANTOM" "${train[@]}" model.path="$work/hf/$name"
  run_case "generate: config.json $name" 1 "config\.json.*$msg" - \
    "$PHANTOM" generate --model "$work/hf/$name" --tokenizer "$D/tokenizer.json" --prompt hi
done

# ---- annotations and images: file:line, skippable under on_error: skip -----------------------------------------
line1=$(head -1 "$D/train.jsonl")
printf '[\n%s,\n%s,\n]\n' "$line1" "$line1" >"$work/trailing.json"
run_case "JSON array trailing comma" 1 "trailing\.json:4: trailing comma before '\]'" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" --file "$work/trailing.json"
printf '[\n%s\n%s\n]\n' "$line1" "$line1" >"$work/missing.json"
run_case "JSON array missing comma" 1 "missing\.json:3: missing comma between array elements" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" --file "$work/missing.json"
conv='{"id": "c1", "conversations": [{"from": 1, "value": "hi"}, {"from": "gpt", "value": "yo"}]}'
printf '%s\n%s\n' "$conv" "$conv" >"$work/conv.jsonl"
run_case "conversation \"from\": 1" 1 "conv\.jsonl:1: malformed turn \('from' must be a string, got 1\)" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" data.format=conversations --file "$work/conv.jsonl"
printf '{"set": {"root": 5, "annotation": "conv.jsonl"}}\n' >"$work/meta.json"
run_case "InternVL meta root: 5" 1 "meta\.json: dataset 'set': 'root' must be a path string, got 5" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" data.format=internvl_meta --file "$work/meta.json"
printf '{"set": {"annotation": "absent.jsonl"}}\n' >"$work/meta2.json"
run_case "InternVL meta: annotation file missing" 1 "meta2\.json: dataset 'set': annotation file .*absent\.jsonl not found" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" data.format=internvl_meta --file "$work/meta2.json"
printf '%s\n{"id": "x", "image": "a.png", "question": "q", "chosen": "c", "rejected": "r", "w": 1e309}\n' "$line1" >"$work/overflow.jsonl"
run_case "JSON number 1e309" 1 "overflow\.jsonl:2: malformed JSON" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" --file "$work/overflow.jsonl"
# images that are not regular files, and a decompression bomb: bad samples named by file:line, skipped under skip
mkfifo "$work/data/fifo.png"; ln -s loop2.png "$work/data/loop1.png"; ln -s loop1.png "$work/data/loop2.png"
"$SRC/.venv/bin/python" - "$work/data/bomb.png" <<'PY'
import struct, sys, zlib
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
row = b"\0" + b"\0" * 20000 * 3
comp = zlib.compressobj(9); data = b"".join(comp.compress(row) for _ in range(200)) + comp.flush()
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
PY
q() { printf '{"id": "%s", "image": "%s", "question": "<image> What is it?", "chosen": "A shoe.", "rejected": "A bag."}\n' "$1" "$2"; }
mapfile -t good < <(grep -o '"images/train/[0-9]*\.png"' "$D/train.jsonl" | tr -d '"' | head -7)
{ q ok0 "${good[0]}"; q fifo fifo.png; q loop loop1.png; q bomb bomb.png
  for i in 1 2 3 4 5 6; do q "ok$i" "${good[$i]}"; done; } >"$work/imgs.jsonl"
run_case "data check: FIFO image named, not a hang" 1 "imgs\.jsonl:2: unreadable image \(.*fifo\.png: is a FIFO" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" --file "$work/imgs.jsonl"
run_case "data check: symlink loop named" 1 "imgs\.jsonl:3: unreadable image \(.*loop1\.png: symlink loop" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" --file "$work/imgs.jsonl"
run_case "data check: decompression bomb refused" 1 "imgs\.jsonl:4.*bomb\.png: image too large: 20000x20000 = 400000000 pixels, over the limit of 89478485" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" --file "$work/imgs.jsonl"
run_case "PHANTOM_MAX_IMAGE_PIXELS sets the cap" 1 "imgs\.jsonl:1.*$(basename "${good[0]}"): image too large: 28x28 = 784 pixels, over the limit of 500" - \
  env PHANTOM_MAX_IMAGE_PIXELS=500 "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" --file "$work/imgs.jsonl"
run_case "PHANTOM_MAX_IMAGE_PIXELS malformed" 1 "PHANTOM_MAX_IMAGE_PIXELS='1e6': expected a non-negative decimal integer" - \
  env PHANTOM_MAX_IMAGE_PIXELS=1e6 "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" --file "$work/imgs.jsonl"
run_case "train, on_error: fail: FIFO image stops the run at its line" 1 "imgs\.jsonl:2: unreadable image .*is a FIFO" 'runs' \
  "$PHANTOM" "${train[@]}" run.name=fifo data.train="$work/imgs.jsonl" stages.0.max_steps=1
run_case "train, on_error: skip: the bad images are skipped" 0 "2 skipped: 2 unreadable image" 'runs' \
  "$PHANTOM" "${train[@]}" run.name=skip data.train="$work/imgs.jsonl" data.on_error=skip data.batch_size=2 \
  stages.0.max_steps=1 --max-steps 1
# rows checked when read (a file over data.upfront_check_mb): the first bad row the loader reads stops the run at
# its file:line; under skip the bad rows are counted as they are read and the run trains on the others
run_case "train, rows checked when read: a bad image stops the run at its line" 1 \
  "data error at .*imgs\.jsonl:[234]: unreadable image" 'runs' \
  "$PHANTOM" "${train[@]}" run.name=lazy data.train="$work/imgs.jsonl" data.upfront_check_mb=0 data.batch_size=10 \
  stages.0.max_steps=1
run_case "train, rows checked when read, on_error: skip: the bad images are counted" 0 "[0-9]+ skipped: [0-9]+ unreadable image" 'runs' \
  "$PHANTOM" "${train[@]}" run.name=lazyskip data.train="$work/imgs.jsonl" data.upfront_check_mb=0 data.on_error=skip \
  data.batch_size=10 stages.0.max_steps=1 --max-steps 1
for i in $(seq 1 1100); do echo '{"id": "x", "question": "q", "chosen": "", "rejected": "r"}'; done >"$work/many.jsonl"
run_case "data check says its list was cut" 1 "list cut: 1000 of 1100 problems shown" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" --file "$work/many.jsonl"

# ---- checkpoints: a disk that fills up, a truncated optimizer.pt, a state.json of the wrong type ---------------
cat >"$tmp/small_disk.sh" <<'SH'
#!/usr/bin/env bash
# Files over 300 KiB fail with EFBIG, as writes fail with ENOSPC on a full disk.
trap '' XFSZ; ulimit -f 300; exec "$@"
SH
run_case "disk full while checkpointing" 1 "cannot write checkpoint .*step-000001: .*File too large; no earlier checkpoint exists" 'runs' \
  bash "$tmp/small_disk.sh" "$PHANTOM" "${train[@]}" run.name=full --max-steps 1
left=$(find "$work/runs/full" -name '.tmp-*' -o -name '*.tmp.*' | head -3)
[ -z "$left" ] || { echo "FAIL: disk full left temporaries: $left"; fail=1; }
"$PHANTOM" "${train[@]}" run.name=good --max-steps 1 >"$tmp/good.log" 2>&1 || { echo "FAIL: a good 1-step run"; tail -5 "$tmp/good.log"; fail=1; }
ck=$(ls -d "$work"/runs/good/checkpoints/step-* | tail -1)
cp -r "$work/runs/good" "$work/runs/trunc"; cp -r "$work/runs/good" "$work/runs/state"
tck="$work/runs/trunc/checkpoints/$(basename "$ck")"
truncate -s $(( $(stat -c %s "$tck/optimizer.pt") / 2 )) "$tck/optimizer.pt"
run_case "truncated optimizer.pt" 1 "trunc/checkpoints/step-[0-9]+/optimizer\.pt: cannot read the optimizer state" \
  'runs/trunc( |/(config\.yaml|metrics\.jsonl|tb|\.lock))' "$PHANTOM" "${train[@]}" run.name=trunc --resume
sck="$work/runs/state/checkpoints/$(basename "$ck")"
sed -i 's/"stage": 0/"stage": "zero"/' "$sck/state.json"
run_case "state.json of the wrong type" 1 "state/checkpoints/step-[0-9]+/state\.json: field 'stage' must be a non-negative integer, got \"zero\"" \
  'runs/state( |/(config\.yaml|metrics\.jsonl|tb|\.lock))' "$PHANTOM" "${train[@]}" run.name=state --resume

# ---- third pass: readers validate what the next layer assumes; no "success" that is not ---------------------------
# tokenizer.json: ids within the vocabulary, unique added ids, type errors with the key (before any model loads)
tokjson() {  # tokjson <name> <python editing dict t>
  "$SRC/.venv/bin/python" - "$D/tokenizer.json" "$work/tok/$1/tokenizer.json" "$2" <<'PY'
import json, os, sys
t = json.load(open(sys.argv[1])); exec(sys.argv[3])
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True); json.dump(t, open(sys.argv[2], "w"))
PY
}
for spec in "negative|t['model']['vocab']['a'] = -5|model\.vocab\[\"a\"\]: id -5 is outside the vocabulary" \
            "huge|t['model']['vocab']['a'] = 2000000000|model\.vocab\[\"a\"\]: id 2000000000 is outside the vocabulary" \
            "shared-added|t['added_tokens'][1]['id'] = t['added_tokens'][0]['id']|added_tokens\[1\]: .* already the id of added token" \
            "type|t['added_tokens'][0]['content'] = 5|added_tokens\[0\]: type must be string, but is number" \
            "strip-empty|t['decoder'] = {'type': 'Strip', 'content': '', 'start': -1, 'stop': 0}|decoder Strip: empty content" \
            "strip-count|t['decoder'] = {'type': 'Strip', 'content': ' ', 'start': -1, 'stop': 0}|decoder Strip: start must be an integer 0\.\.1000000, got -1"; do
  IFS='|' read -r name edit msg <<<"$spec"
  tokjson "$name" "$edit"
  run_case "tokenizer.json $name" 1 "tok/$name/tokenizer\.json: $msg" - \
    "$PHANTOM" generate --model "$work/nope" --tokenizer "$work/tok/$name/tokenizer.json" --prompt hi
done
mkdir -p "$work/tok/cls" && cp "$D/tokenizer.json" "$work/tok/cls/" && echo '{"tokenizer_class": 5}' >"$work/tok/cls/tokenizer_config.json"
run_case "tokenizer_config.json tokenizer_class not a string" 1 "tok/cls/tokenizer_config\.json: tokenizer_class must be a string, got 5" - \
  "$PHANTOM" generate --model "$work/nope" --tokenizer "$work/tok/cls" --prompt hi
# names that become paths
run_case "run.name empty" 2 "run\.name: empty" - "$PHANTOM" "${train[@]}" run.name=
run_case "run.name with a separator" 2 "run\.name: holds a path separator '/'" - "$PHANTOM" "${train[@]}" run.name=a/b
run_case "run.name with a control byte" 2 "run\.name: holds the control byte 1" - "$PHANTOM" "${train[@]}" run.name=$'a\x01b'
run_case "run.name not UTF-8" 2 "run\.name: is not valid UTF-8" - "$PHANTOM" "${train[@]}" run.name=$'a\xffb'
run_case "enum error lists no blank choice" 2 "stages\.0\.format: expected one of conversations, preference, internvl_meta \(or empty\)" - \
  "$PHANTOM" "${train[@]}" stages.0.format=bogus
# eval files: duplicate ids, no rows (before any model is loaded: --model does not exist)
{ head -2 "$D/mc_test.tsv"; sed -n 2p "$D/mc_test.tsv"; } >"$work/dup.tsv"
run_case "eval TSV: duplicate index" 1 "dup\.tsv: index '[^']*' appears twice \(lines 2 and 3\)" - \
  "$PHANTOM" eval --model "$work/nope" --benchmark mc --data "$work/dup.tsv"
head -1 "$D/mc_test.tsv" >"$work/header.tsv"
run_case "eval TSV: a header and no rows" 1 "header\.tsv: no mmbench questions \(the file holds no rows\)" - \
  "$PHANTOM" eval --model "$work/nope" --benchmark mc --data "$work/header.tsv"
printf '{"id": "3", "task_type": "action_prediction", "image": "x.png", "bbox": [0, 0, 1, 1], "options": ["a", "b"], "answer": 5}\n' >"$work/vwb.jsonl"
run_case "eval VisualWebBench: answer beyond the options" 1 "vwb\.jsonl: 1 bad row\(s\): row action_prediction/3 \(answer 5 is not an index into the 2 options\)" - \
  "$PHANTOM" eval --model "$work/nope" --benchmark visualwebbench --data "$work/vwb.jsonl"
printf '{"question_id": "", "image": "x.png", "text": "Describe."}\n' >"$work/llavaw.jsonl"
run_case "eval LLaVA-W: empty question_id" 1 "llavaw\.jsonl: 1 bad row\(s\): row line 1 \(needs question_id \(non-empty\), image and text\)" - \
  "$PHANTOM" eval --model "$work/nope" --benchmark llavaw --data "$work/llavaw.jsonl"
# preference pairs with nothing to prefer
printf '{"id": "p", "image": "%s", "question": "<image> q", "chosen": "A shoe.", "rejected": "A shoe."}\n' "${good[0]}" >"$work/same.jsonl"
run_case "preference: rejected equals chosen" 1 "same\.jsonl:1: rejected equals chosen" - \
  "$PHANTOM" data check --config "$SRC/configs/demo.yaml" "${train[@]:3}" --file "$work/same.jsonl"
# late failures found at the start: the last stage's file and the held-out benchmark, before the first step
run_case "train: last stage's data checked before the first step" 1 "stage step2 \(stages\.2\.format = conversations\): .*conv\.jsonl" 'runs' \
  "$PHANTOM" "${train[@]}" run.name=late stages.2.data="$work/conv.jsonl" stages.2.format=conversations
[ ! -d "$work/runs/late/checkpoints" ] || { echo "FAIL: a stage trained before the bad stage file was found"; fail=1; }
run_case "train: validation.benchmark checked at the start" 1 "validation\.benchmark: .*dup\.tsv: index .* appears twice" 'runs' \
  "$PHANTOM" "${train[@]}" run.name=bench validation.benchmark="$work/dup.tsv"
[ ! -d "$work/runs/bench/checkpoints" ] || { echo "FAIL: trained before validation.benchmark was checked"; fail=1; }
# lengths: every sample over the model's context; every sample of a batch skipped says why and where
run_case "train: sample longer than max_position_embeddings" 1 "train\.jsonl:[0-9]+: over-length sample .* > the model's context \(max_position_embeddings 32\)" 'runs' \
  "$PHANTOM" "${train[@]}" run.name=ctx model.llm.max_position_embeddings=32 --max-steps 1
run_case "train: all skipped says the first file:line" 1 "every sample of a batch was skipped .*the first: data error at .*train\.jsonl:[0-9]+: over-length sample" 'runs' \
  "$PHANTOM" "${train[@]}" run.name=allskip data.on_error=skip data.max_length=8 --max-steps 1
# state.json from a config with more stages
cp -r "$work/runs/good" "$work/runs/beyond"
bck="$work/runs/beyond/checkpoints/$(basename "$ck")"
sed -i 's/"stage": 0/"stage": 7/' "$bck/state.json"
run_case "state.json stage beyond the config's stages" 1 "beyond/checkpoints/step-[0-9]+/state\.json: stage 7 is beyond this config's 3 stage\(s\)" \
  'runs/beyond( |/(config\.yaml|metrics\.jsonl|tb|\.lock))' "$PHANTOM" "${train[@]}" run.name=beyond --resume
# generate on an exported model: --model a file, image counts, the context cap, NaN weights, special ids
"$PHANTOM" "${train[@]}" run.name=exp stages.0.max_steps=1 stages.1.max_steps=1 stages.2.max_steps=1 >"$tmp/exp.log" 2>&1 \
  || { echo "FAIL: a 3-step run with exports"; tail -5 "$tmp/exp.log"; fail=1; }
M="$work/runs/exp/step2"; img="$D/${good[0]}"
run_case "generate --model a file" 2 "--model .*model\.safetensors is a file; .*--model .*exp/step2" - \
  "$PHANTOM" generate --model "$M/model.safetensors" --prompt hi
run_case "generate: two <image> and one image" 1 "image count mismatch: the prompt has 2 <image> placeholders but 1 images" - \
  "$PHANTOM" generate --model "$M" --image "$img" --prompt "<image> <image> what?"
run_case "generate: --max-new-tokens capped at the context" 0 "max_new_tokens 100000 capped at [0-9]+: a [0-9]+-token prompt leaves that many positions of the model's context \(max_position_embeddings 512\)" - \
  "$PHANTOM" generate --model "$M" --image "$img" --prompt "what?" --max-new-tokens 100000
[ "$(cat "$tmp/err" "$tmp/out" | grep -c "capped at")" = 1 ] || { echo "FAIL: the cap is said more than once"; fail=1; }
cp -r "$M" "$work/nan"; cp -r "$M" "$work/eos"; cp -r "$M" "$work/imgtok"
"$SRC/.venv/bin/python" - "$work/nan/model.safetensors" <<'PY'
import sys
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1]); k = sorted(t)[0]; t[k] = t[k].copy(); t[k].flat[0] = float("nan"); save_file(t, sys.argv[1])
PY
run_case "generate: NaN weights" 1 "nan: parameter .* holds NaN or Inf values" - \
  "$PHANTOM" generate --model "$work/nan" --image "$img" --prompt "what?"
"$SRC/.venv/bin/python" -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['eos_token_id']=10**6; json.dump(c,open(p,'w'))" "$work/eos/config.json"
run_case "config.json eos_token_id outside the vocabulary" 1 "eos/config\.json: eos_token_id .* 1000000 is outside the vocabulary" - \
  "$PHANTOM" generate --model "$work/eos" --image "$img" --prompt "what?"
"$SRC/.venv/bin/python" -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['image_token_index']=10**6; json.dump(c,open(p,'w'))" "$work/imgtok/config.json"
run_case "config.json image_token_index outside the vocabulary" 1 "imgtok/config\.json: image_token_index 1000000 is outside the vocabulary" - \
  "$PHANTOM" generate --model "$work/imgtok" --image "$img" --prompt "what?"

# a held-out benchmark without its benchmark.json (interrupted) is not "finished": --resume completes it
"$PHANTOM" "${train[@]}" run.name=bres stages.0.max_steps=1 stages.1.max_steps=1 stages.2.max_steps=1 \
  validation.benchmark="$D/mc_test.tsv" validation.open_questions=false >"$tmp/bres.log" 2>&1 \
  || { echo "FAIL: a run with a benchmark"; tail -5 "$tmp/bres.log"; fail=1; }
rm -f "$work/runs/bres/benchmark/benchmark.json"
run_case "train --resume: an interrupted benchmark is completed" 0 "benchmark .*mc_test\.tsv \(mmbench\): .*benchmark/accuracy.* on [0-9]+ questions" 'runs/bres' \
  "$PHANTOM" "${train[@]}" run.name=bres stages.0.max_steps=1 stages.1.max_steps=1 stages.2.max_steps=1 \
  validation.benchmark="$D/mc_test.tsv" validation.open_questions=false --resume
[ -f "$work/runs/bres/benchmark/benchmark.json" ] || { echo "FAIL: --resume wrote no benchmark.json"; fail=1; }

# a peer rank that never starts: a sentence, not c10d's store key names
run_case "distributed: a missing peer rank" 1 "rank 0 of 2 could not form the process group with its peers within distributed\.timeout_s 5 s" 'runs' \
  env RANK=0 LOCAL_RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29000 + RANDOM % 2000)) \
  "$PHANTOM" "${train[@]}" run.name=peer distributed.timeout_s=5 --max-steps 1
grep "error:" "$tmp/err" | grep -q "/gloo/" && { echo "FAIL: the error names c10d store keys"; fail=1; }

echo "$cases cases"
exit $fail
