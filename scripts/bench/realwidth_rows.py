#!/usr/bin/env python3
"""A few Phantom preference triples of about N tokens each, one image each, for a memory / speed run at real widths.

    realwidth_rows.py --tokenizer TOK.json --images DIR --out FILE.jsonl [--rows 4] [--tokens 1000] [--image-tokens 256]

The text is real English prose, not random ids: consecutive passages of this repository's docs/*.md. The question is
"<image>\\n" + a passage + a question about it, the chosen and rejected answers are two further passages; each is cut
(by the given tokenizer) so that image tokens + question + chosen + rejected come to about --tokens. The images are
the first --rows PNGs under --images (the demo's product photos), written relative to --images' parent.
"""
import argparse
import glob
import json
import os
import re

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def prose():
    """Paragraphs of the docs without code blocks or tables."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        with open(path) as f:
            text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
        for para in text.split("\n\n"):
            para = " ".join(line for line in para.splitlines() if not line.startswith(("|", "#", "    ")))
            if len(para) > 200:
                out.append(para.strip())
    return out


def take(tok, paragraphs, start, budget):
    """Whole paragraphs from `start` on, then cut to `budget` tokens; -> (text, next start)."""
    ids, i = [], start
    while len(ids) < budget:
        ids += tok.encode(paragraphs[i % len(paragraphs)] + "\n").ids
        i += 1
    return tok.decode(ids[:budget]).strip(), i


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--images", required=True, help="a folder of images (searched recursively for *.png / *.jpg)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=1000, help="image + question + chosen + rejected, about")
    ap.add_argument("--image-tokens", type=int, default=256, help="one 448-px tile of InternViT-300M: 256")
    args = ap.parse_args()
    tok = Tokenizer.from_file(args.tokenizer)
    paragraphs = prose()
    images = sorted(glob.glob(os.path.join(args.images, "**", "*.png"), recursive=True) +
                    glob.glob(os.path.join(args.images, "**", "*.jpg"), recursive=True))[: args.rows]
    if len(images) < args.rows:
        raise SystemExit(f"{args.images}: {len(images)} images, {args.rows} rows asked")
    text = args.tokens - args.image_tokens - 30  # the chat template's tokens around the turns
    answer = max(16, text // 8)
    at, rows = 0, []
    root = os.path.dirname(os.path.abspath(args.images.rstrip("/")))
    for i, img in enumerate(images):
        passage, at = take(tok, paragraphs, at, text - 2 * answer - 20)
        chosen, at = take(tok, paragraphs, at, answer)
        rejected, at = take(tok, paragraphs, at, answer)
        rows.append({"id": f"realwidth-{i}", "image": os.path.relpath(img, root),
                     "question": "<image>\n" + passage + "\nWhich passage continues this text, given the photo?",
                     "chosen": chosen, "rejected": rejected})
    with open(args.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    n = [len(tok.encode(r["question"] + r["chosen"] + r["rejected"]).ids) for r in rows]
    print(f"[realwidth_rows] {len(rows)} rows in {args.out}, text tokens {min(n)}-{max(n)} + {args.image_tokens} image; "
          f"image_root {root}")


if __name__ == "__main__":
    main()
