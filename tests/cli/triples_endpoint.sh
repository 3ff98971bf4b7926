#!/usr/bin/env bash
# `phantom data triples`' endpoint source against a canned OpenAI-compatible server on 127.0.0.1
# (tests/tools/fake_openai.py): a 429 honoured with its Retry-After, a 500 retried, the filters (the server's seed-1
# answer is the correct one, its seed-2 answer empty), a cached rerun that sends nothing, and a run killed midway
# whose rerun sends exactly the requests the first run had not had answered.
set -u
source "$(dirname "$0")/lib.sh"
PY="$SRC/.venv/bin/python"
SERVER="$SRC/tests/tools/fake_openai.py"
# Six single-turn conversations: three multiple-choice (letter answers), three open. No images: the endpoint never
# sees them, and image paths are the reader's concern (tests/test_data.cpp).
"$PY" - "$tmp/sft.jsonl" <<'PYEOF'
import json, sys
rows = []
for i in range(3):
    q = f"What is shown? {i}\nA. cat\nB. dog\nC. bird\nD. fish\nAnswer with the option's letter from the given choices directly."
    rows.append({"id": f"mc{i}", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": "ABC"[i]}]})
for i in range(3):
    rows.append({"id": f"open{i}", "conversations": [{"from": "human", "value": f"What colour is item {i}?"},
                                                       {"from": "gpt", "value": f"It is dark green number {i}."}]})
open(sys.argv[1], "w").write("".join(json.dumps(r) + "\n" for r in rows))
PYEOF
server_pid=""
start_server() {  # start_server <log> [server args]
  local log="$1"; shift
  rm -f "$tmp/port"
  "$PY" "$SERVER" --port-file "$tmp/port" --log "$log" "$@" & server_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
  URL="http://127.0.0.1:$(cat "$tmp/port")/v1"
}
stop_server() { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; }
trap 'stop_server; rm -rf "$tmp"' EXIT
check() {  # check <description> <python expression over the variables given as name=value after it>
  if "$PY" -c "import json,sys; $2" "${@:3}"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}

# 1. The first request is answered 429 (Retry-After: 1), the third 500; 6 questions x 3 answers = 18 requests.
start_server "$tmp/log1" --fail-429 1 --fail-500 3
base_run() { run=("$PHANTOM" data triples --input "$tmp/sft.jsonl" --out "$tmp/out.jsonl" --endpoint "$URL" --api-model canned
                   --k-endpoint 3 --concurrency 2 --backoff 0.05 --api-key-env PHANTOM_TEST_NO_KEY); }
base_run
"${run[@]}" >"$tmp/run1.txt" 2>&1 || { echo "FAIL: run 1"; cat "$tmp/run1.txt"; exit 1; }
cat "$tmp/run1.txt"
grep -q "20 requests sent (2 retries), 18 answered, 0 from the cache" "$tmp/run1.txt" || { echo "FAIL: request counts"; fail=1; }
grep -q "triples out: 6 rows, 6 rejected answers" "$tmp/run1.txt" || { echo "FAIL: triples out"; fail=1; }
grep -q "candidates dropped: 6 empty" "$tmp/run1.txt" || { echo "FAIL: empty drops"; fail=1; }
grep -q "candidates dropped: 6 equal to the chosen answer (normalised)" "$tmp/run1.txt" || { echo "FAIL: equal drops"; fail=1; }
check "the 429 was retried after its Retry-After (>= 1 s), the 500 after the backoff" '
log = [json.loads(l) for l in open(sys.argv[1])]
first = log[0]; again = [e for e in log if e["key"] == first["key"] and e["status"] == 200]
assert first["status"] == 429 and again and again[0]["t"] - first["t"] >= 0.95, (first, again)
assert sum(e["status"] == 500 for e in log) == 1 and sum(e["status"] == 200 for e in log) == 18' "$tmp/log1"
check "each row: the chosen answer, one rejected answer that differs from it, the source row" '
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 6 and len({r["source"] for r in rows}) == 6
for r in rows:
    assert len(r["rejected"]) == 1 and r["rejected"][0] not in ("", r["chosen"]) and r["rejected_by"] == ["endpoint"], r
assert [r["rejected"][0] for r in rows[:3]] == ["B", "C", "D"]' "$tmp/out.jsonl"

# 2. Rerun on a fresh output with the cache: nothing sent, the same rows.
mv "$tmp/out.jsonl" "$tmp/out1.jsonl"; mv "$tmp/out.jsonl.cache.jsonl" "$tmp/cache1.jsonl"
cp "$tmp/cache1.jsonl" "$tmp/out.jsonl.cache.jsonl"
: >"$tmp/log1"
"${run[@]}" >"$tmp/run2.txt" 2>&1 || { echo "FAIL: run 2"; cat "$tmp/run2.txt"; exit 1; }
grep -q "0 requests sent (0 retries), 0 answered, 18 from the cache" "$tmp/run2.txt" && [ ! -s "$tmp/log1" ] \
  && echo "ok: the cached rerun sent nothing" || { echo "FAIL: cached rerun"; cat "$tmp/run2.txt"; fail=1; }
cmp -s "$tmp/out.jsonl" "$tmp/out1.jsonl" && echo "ok: the cached rerun wrote the same rows" || { echo "FAIL: rows differ"; fail=1; }
stop_server

# 3. Killed midway (slow server, one request at a time, chunks of 2 questions), then resumed.
rm -f "$tmp/out.jsonl" "$tmp/out.jsonl.cache.jsonl"
start_server "$tmp/log3" --delay 0.3; base_run
"${run[@]}" --concurrency 1 --chunk 2 >"$tmp/run3.txt" 2>&1 & builder=$!
for _ in $(seq 200); do [ "$(cat "$tmp/log3" 2>/dev/null | grep -c '"status": 200')" -ge 8 ] && break; sleep 0.05; done
kill -9 "$builder"; wait "$builder" 2>/dev/null
cp "$tmp/out.jsonl.cache.jsonl" "$tmp/cache3a"; cp "$tmp/out.jsonl" "$tmp/out3a"; : >"$tmp/log3"
"${run[@]}" --concurrency 1 --chunk 2 >"$tmp/run4.txt" 2>&1 || { echo "FAIL: resumed run"; cat "$tmp/run4.txt"; exit 1; }
grep -E "requests sent|already in the output" "$tmp/run4.txt"
check "killed midway; the resumed run sent exactly the requests not in the cache, and the output is whole" '
cached = {json.loads(l)["key"] for l in open(sys.argv[1]) if l.endswith("\n")}
second = [json.loads(l)["key"] for l in open(sys.argv[2])]
assert 0 < len(cached) < 18 and sum(1 for _ in open(sys.argv[5])) < 6, "the kill did not land midway"
assert not cached & set(second), "a request answered before the kill was sent again"
assert len(cached) + len(second) == 18 and len(set(second)) == len(second), (len(cached), len(second))
assert open(sys.argv[3]).read() == open(sys.argv[4]).read(), "the resumed output differs from an uninterrupted one"' \
  "$tmp/cache3a" "$tmp/log3" "$tmp/out.jsonl" "$tmp/out1.jsonl" "$tmp/out3a"

# 4. Errors: a 404 (wrong base URL) ends with one line naming the URL; no source at all is a usage error.
expect_error "chat/completions: HTTP 404" data triples --input "$tmp/sft.jsonl" --out "$tmp/x.jsonl" \
  --endpoint "${URL%/v1}/wrong" --api-model canned --retries 0
expect_error "no source of rejected answers" data triples --input "$tmp/sft.jsonl" --out "$tmp/x.jsonl"
# 5. Nothing written is not a success: a file of multi-turn conversations only gives no triple, and the run fails.
echo '{"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hi."}, {"from": "human", "value": "And?"}, {"from": "gpt", "value": "Bye."}]}' >"$tmp/multi.jsonl"
expect_error "no triple written to $tmp/none.jsonl" data triples --input "$tmp/multi.jsonl" --out "$tmp/none.jsonl" \
  --endpoint "$URL" --api-model canned --retries 0
exit $fail
