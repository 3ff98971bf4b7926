#!/usr/bin/env bash
# The layers of docs/architecture.md, enforced: every #include "..." of a folder names a folder that folder may
# include. A new include across layers fails here with the file, the line and the rule it breaks.
set -u
SRC="$2"
"$SRC/.venv/bin/python" - "$SRC" <<'PY'
import os, re, sys
root = sys.argv[1]
# folder -> the layers its files may include (its own layer always allowed)
layer_of = {
    "phantom/util": "util", "phantom/model": "model", "phantom/io": "io",
    "data": "data", "data/tokenizers": "data", "data/images": "data",
    "trainers/eval": "eval", "trainers/distributed": "distributed", "trainers/recipe": "recipe",
    "trainers/cli": "cli",
}
allowed = {
    "util": set(),
    "model": {"util"},
    "io": {"model", "util"},
    "data": {"util"},
    "eval": {"data", "model", "util"},
    "distributed": {"model", "util"},
    "recipe": {"eval", "distributed", "io", "data", "model", "util"},
    "cli": {"recipe", "eval", "distributed", "io", "data", "model", "util"},
}
def layer(path):
    d = os.path.dirname(path)
    if d not in layer_of:
        return None
    return layer_of[d]
bad, files = [], 0
for folder in layer_of:
    for name in sorted(os.listdir(os.path.join(root, folder))):
        if not name.endswith((".h", ".cpp", ".cu")):
            continue
        rel = f"{folder}/{name}"
        files += 1
        me = layer(rel)
        for no, line in enumerate(open(os.path.join(root, rel), encoding="utf-8"), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m:
                continue
            them = layer(m.group(1))
            if them is None:
                bad.append(f"{rel}:{no}: includes {m.group(1)}, which is in no layer of docs/architecture.md")
            elif them != me and them not in allowed[me]:
                bad.append(f"{rel}:{no}: {me} may not include {them} ({m.group(1)}); see docs/architecture.md")
for b in bad:
    print("FAIL:", b)
print(f"{files} files checked, {len(bad)} include(s) across the layers' rules")
sys.exit(1 if bad else 0)
PY
