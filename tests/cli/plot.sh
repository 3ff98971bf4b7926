#!/usr/bin/env bash
# scripts/plot renders a run's metrics.jsonl (a resume's duplicate step, stage boundaries, validation lines) to a
# valid PNG, and names the file and line of a bad metrics file.
set -u
SRC="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/run"
"$SRC/.venv/bin/python" - "$tmp/run/metrics.jsonl" <<'PY'
import json, math, sys
with open(sys.argv[1], "w") as f:
    for s in range(1, 31):
        stage = 0 if s <= 10 else 1
        row = {"step": s, "stage": stage, "loss": 2.0 * math.exp(-s / 10), "lr": 1e-3 * (1 + math.cos(s / 10)) / 2 + 1e-5}
        if stage == 1:
            row.update({"sft": 1.5 * math.exp(-s / 10), "po": 0.69 - s / 100, "rewards/margins": s / 30,
                        "rewards/accuracies": min(1, s / 30), "rewards/chosen": -1, "rewards/rejected": -1 - s / 30})
        f.write(json.dumps(row) + "\n")
        if s % 10 == 0:
            f.write(json.dumps({"step": s, "val/sft": 1.2, "val/po": 0.6, "val/rewards/accuracies": 0.7}) + "\n")
    f.write(json.dumps({"step": 20, "stage": 1, "loss": 0.5}) + "\n")  # a resumed run logs step 20 again
    f.write(json.dumps({"step": 30, "benchmark/accuracy": 0.8}) + "\n")
PY
out=$("$SRC/scripts/plot" "$tmp/run") || { echo "FAIL: plot exited $?"; exit 1; }
[ "$out" = "$tmp/run/curves.png" ] || { echo "FAIL: printed '$out'"; exit 1; }
"$SRC/.venv/bin/python" - "$tmp/run/curves.png" <<'PY' || exit 1
import sys, struct, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature"
pos, chunks = 8, []
while pos < len(data):  # every chunk's CRC checks out, IHDR first, IEND last
    n, = struct.unpack(">I", data[pos:pos + 4]); kind = data[pos + 4:pos + 8]; body = data[pos + 8:pos + 8 + n]
    crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
    assert zlib.crc32(kind + body) & 0xffffffff == crc, f"bad CRC in {kind}"
    chunks.append(kind); pos += 12 + n
assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", chunks
w, h = struct.unpack(">II", data[16:24])
assert w >= 600 and h >= 300, (w, h)
from PIL import Image
im = Image.open(sys.argv[1]); im.load()
assert len(set(im.convert("L").getdata())) > 10, "blank image"
print(f"ok: {w}x{h} PNG, {len(chunks)} chunks")
PY
# --out elsewhere, a metrics file given directly
"$SRC/scripts/plot" "$tmp/run/metrics.jsonl" --out "$tmp/other/x.png" >/dev/null && [ -s "$tmp/other/x.png" ] || { echo "FAIL: --out"; exit 1; }
# Bad input: a clear message naming file and line, non-zero exit, no traceback.
printf '{"step": 1, "loss": 1}\nnot json\n' > "$tmp/bad.jsonl"
if "$SRC/scripts/plot" "$tmp/bad.jsonl" 2>"$tmp/err"; then echo "FAIL: bad file accepted"; exit 1; fi
grep -q "bad.jsonl:2: not JSON" "$tmp/err" || { echo "FAIL: message:"; cat "$tmp/err"; exit 1; }
if "$SRC/scripts/plot" "$tmp/nope" 2>"$tmp/err"; then echo "FAIL: missing run accepted"; exit 1; fi
grep -q "not found" "$tmp/err" || { echo "FAIL: message:"; cat "$tmp/err"; exit 1; }
echo "ok"
