#!/usr/bin/env python3
"""Functions over a length limit in the product code (phantom/, data/, trainers/).

    scripts/function_lengths.py                 # list every function over 120 lines; exit 1 if one has no reason
    scripts/function_lengths.py --limit 80      # another limit
    scripts/function_lengths.py --top 20        # the 20 longest functions, whatever their length

A function may be longer than the limit when the comment block right above its signature holds a line starting
with `// long:` and the reason (e.g. `// long: one switch over the 40 benchmark kinds, read top to bottom`).

Lengths count the lines from the signature's first line to the closing brace. The scanner is a brace matcher over
the source with comments, strings and character literals blanked: a `{` outside any function whose statement head
has a parameter list (and is not a namespace, class, struct, union, enum or `= {` initialiser) opens a function;
lambdas and local classes count towards the function around them. Run by ctest as `cli.function_lengths`.
"""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRS = ("phantom", "data", "trainers")
CONTAINER = re.compile(r"\b(namespace|class|struct|union|enum)\b")


def blank(src):
    """The source with comments, string and char literals replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j])); i = j
        elif c == "R" and src.startswith('R"', i) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', src[i:])
            if not m:
                out.append(c); i += 1; continue
            end = src.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j])); i = j
        elif c in "\"'":
            if c == "'" and i > 0 and src[i - 1].isalnum():  # digit separator 1'000
                out.append(" "); i += 1; continue
            j = i + 1
            while j < n and src[j] != c and src[j] != "\n":
                j += 2 if src[j] == "\\" else 1
            j = min(n, j + 1)
            out.append(" " * (j - i)); i = j
        else:
            out.append(c); i += 1
    return "".join(out)


def strip_templates(head):
    # `template <class T>` would read as a class head; drop template parameter lists (nested <> included).
    while True:
        m = re.search(r"\btemplate\s*<", head)
        if not m:
            return head
        depth, j = 1, m.end()
        while j < len(head) and depth:
            depth += {"<": 1, ">": -1}.get(head[j], 0)
            j += 1
        head = head[: m.start()] + head[j:]


def function_name(head):
    """The function's name when the statement head `head` opens a function body, else None."""
    h = strip_templates(head).strip()
    if not h or h.startswith("#"):
        return None
    paren = h.find("(")
    before = h if paren < 0 else h[:paren]
    if CONTAINER.search(before) or paren < 0:
        return None
    # `x = {...}` or `auto f = [](...) {` at namespace scope: an initialiser, not a function.
    depth = 0
    for ch in h:
        depth += {"(": 1, ")": -1, "<": 0}.get(ch, 0)
        if ch == "=" and depth == 0:
            prev = h[: h.index(ch)]
            if not re.search(r"operator\s*$", prev):
                return None
    m = re.search(r"([~\w:]+(?:operator\s*\S+)?)\s*$", before)
    return m.group(1) if m else None


def functions(path):
    with open(path, encoding="utf-8") as f:
        src = f.read()
    text = blank(src)
    lines = src.split("\n")
    found = []
    stack = []  # per open brace: None (container/initialiser/block outside functions) or (name, start line)
    head_start = 0
    in_func = 0
    for i, ch in enumerate(text):
        if ch == "{":
            if in_func:
                stack.append("inner")
                in_func += 1
            else:
                name = function_name(text[head_start:i])
                if name:
                    first = head_start + len(text[head_start:i]) - len(text[head_start:i].lstrip())
                    stack.append((name, text.count("\n", 0, first) + 1))
                    in_func = 1
                else:
                    stack.append(None)
            head_start = i + 1
        elif ch == "}":
            if stack:
                top = stack.pop()
                if in_func:
                    in_func -= 1
                    if in_func == 0 and isinstance(top, tuple):
                        end = text.count("\n", 0, i) + 1
                        found.append((top[0], top[1], end - top[1] + 1))
            head_start = i + 1
        elif ch == ";" and not in_func:
            head_start = i + 1
        elif ch == "\n" and not in_func and text[head_start:i].strip().startswith("#"):
            head_start = i + 1  # a preprocessor line is its own statement
    return found, lines


def reason(lines, start):
    """The `// long:` reason in the comment block right above line `start` (1-based), or None."""
    j = start - 2
    while j >= 0 and lines[j].strip().startswith("//"):
        m = re.match(r"\s*//\s*long:\s*(.+)", lines[j])
        if m:
            return m.group(1).strip()
        j -= 1
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=120)
    ap.add_argument("--top", type=int, default=0, help="list the N longest functions instead")
    ap.add_argument("--root", default=ROOT)
    a = ap.parse_args()
    rows = []
    for d in DIRS:
        for dirpath, _, files in os.walk(os.path.join(a.root, d)):
            for fn in sorted(files):
                if not fn.endswith((".cpp", ".h")):
                    continue
                p = os.path.join(dirpath, fn)
                funcs, lines = functions(p)
                for name, start, n in funcs:
                    rows.append((n, os.path.relpath(p, a.root), start, name, reason(lines, start)))
    rows.sort(key=lambda r: (-r[0], r[1], r[2]))
    if a.top:
        for n, p, start, name, why in rows[: a.top]:
            print(f"{n:5d}  {p}:{start}  {name}" + (f"  (long: {why})" if why else ""))
        return 0
    over = [r for r in rows if r[0] > a.limit]
    bad = [r for r in over if not r[4]]
    for n, p, start, name, why in over:
        print(f"{n:5d}  {p}:{start}  {name}  " + (f"long: {why}" if why else "NO REASON"))
    print(f"{len(rows)} functions, {len(over)} over {a.limit} lines, {len(bad)} without a `// long:` reason above")
    if bad:
        print(f"split these, or write `// long: <why>` right above the signature", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
