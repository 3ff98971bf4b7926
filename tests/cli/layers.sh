#!/usr/bin/env bash
# The layers of docs/architecture.md, enforced. The table is read from docs/architecture.md ("The dependency
# graph"), so the rules live in one place. Fails, naming file and line, on: an #include across the layers' rules,
# an #include of a folder in no layer, a file whose namespace is not its folder's, and a source folder under
# phantom/, data/ or trainers/ that the table does not list.
set -u
SRC="$2"
"$SRC/.venv/bin/python" - "$SRC" <<'PY'
import os, re, sys
root = sys.argv[1]
doc = os.path.join(root, "docs/architecture.md")
text = open(doc, encoding="utf-8").read()
section = text.split("## The dependency graph", 1)[1].split("\n## ", 1)[0]
rows = [l for l in section.splitlines() if l.startswith("|") and not l.startswith("|---")][1:]
if not rows:
    sys.exit(f"FAIL: no layer table found in {doc} (section 'The dependency graph')")
layer_of, allowed, namespaces = {}, {}, {}
for row in rows:
    cells = [c.strip() for c in row.strip("|").split("|")]
    if len(cells) != 5:
        sys.exit(f"FAIL: {doc}: layer table row has {len(cells)} cells, expected 5: {row}")
    layer, _target, folders, ns, may = cells
    allowed[layer] = {x.strip() for x in may.split(",")} if not may.startswith("(") else set()
    for f in folders.split(","):
        layer_of[f.strip()] = layer
        namespaces[f.strip()] = [n.strip() for n in ns.split(",")]
for layer, deps in allowed.items():
    for d in deps:
        if d not in allowed:
            sys.exit(f"FAIL: {doc}: layer '{layer}' may include '{d}', which is no layer of the table")
def layer(path):
    return layer_of.get(os.path.dirname(path))
bad, files = [], 0
# every folder with sources under the three source roots must be in the table
for top in ("phantom", "data", "trainers"):
    for dirpath, _dirs, names in os.walk(os.path.join(root, top)):
        rel = os.path.relpath(dirpath, root)
        if any(n.endswith((".h", ".cpp", ".cu")) for n in names) and rel not in layer_of:
            bad.append(f"{rel}/: a source folder that docs/architecture.md's layer table does not list")
ns_decl = re.compile(r'^\s*namespace\s+(phantom[\w:]*)\s*\{')
for folder in layer_of:
    for name in sorted(os.listdir(os.path.join(root, folder))):
        if not name.endswith((".h", ".cpp", ".cu")):
            continue
        rel = f"{folder}/{name}"
        files += 1
        me = layer(rel)
        for no, line in enumerate(open(os.path.join(root, rel), encoding="utf-8"), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if m:
                them = layer(m.group(1))
                if them is None:
                    bad.append(f"{rel}:{no}: includes {m.group(1)}, which is in no layer of docs/architecture.md")
                elif them != me and them not in allowed[me]:
                    bad.append(f"{rel}:{no}: {me} may not include {them} ({m.group(1)}); see docs/architecture.md")
            m = ns_decl.match(line)
            if m:
                ns = m.group(1)
                ok = any(ns == n or ns.startswith(n + "::") for n in namespaces[folder] if n != "phantom") \
                    or ("phantom" in namespaces[folder] and ns == "phantom")
                if not ok:
                    bad.append(f"{rel}:{no}: namespace {ns} in {folder}/, whose namespaces are "
                               f"{', '.join(namespaces[folder])} (docs/architecture.md)")
for b in bad:
    print("FAIL:", b)
print(f"{files} files checked against {len(rows)} layers of docs/architecture.md, {len(bad)} problem(s)")
sys.exit(1 if bad else 0)
PY
