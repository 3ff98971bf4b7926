#!/usr/bin/env python3
"""Writes a preference-triples file shaped like the paper's release (Phantom.json: ~2.04 M rows, 2.65 GB, about
1.3 KB a row), pointing at a small set of real images so that a training run can start on it.

    scripts/bench/make_release_annotations.py --rows 2000000 --images-from runs/demo-data/train.jsonl \
        --format jsonl --out /tmp/release.jsonl

Each row: {"id", "image", "question" ("<image>\\n" + a question), "chosen", "rejected"} with the configs' default
field names. Row sizes vary as instruction data does (a short question, answers of one sentence to a few
paragraphs): the mean is ~1.3 KB (--mean-bytes). The image paths are taken, in turn, from the "image" fields of
--images-from (e.g. the demo's train.jsonl: real PNGs under the demo's image root).

--format jsonl writes one row a line; --format json writes one JSON array on a single line, as Python's
json.dump(list, f) does (how the release file is most likely written), or indented one element a line with
--indent. Seeded: the same arguments give the same bytes. A tool, not part of the framework.
"""
import argparse
import json
import random
import sys

WORDS = ("the a of in on with and which what where image picture shows object person left right top bottom color "
         "red blue green number text sign table chart answer because therefore count two three several small large "
         "behind front near far above below holding wearing standing sitting looking building street car tree sky "
         "water dog cat man woman child group scene area region label value percent total year average").split()


def sentence(rng, n_words):
    words = [rng.choice(WORDS) for _ in range(n_words)]
    return " ".join(words).capitalize() + "."


def text_of(rng, target_bytes):
    parts, size = [], 0
    while size < target_bytes:
        s = sentence(rng, rng.randint(6, 18))
        parts.append(s)
        size += len(s) + 1
    return " ".join(parts)


def rows(args, images):
    rng = random.Random(args.seed)
    # Answers take most of a row: a mean answer size such that rows average --mean-bytes (keys, id, path, question
    # and the sentences overshooting their target take ~300 B; measured over 2,000 rows).
    answer_mean = max(20, (args.mean_bytes - 300) // 2)
    for i in range(args.rows):
        question = "<image>\n" + text_of(rng, rng.randint(30, 130))
        chosen = text_of(rng, int(rng.expovariate(1.0 / answer_mean)) + 10)
        rejected = text_of(rng, int(rng.expovariate(1.0 / answer_mean)) + 10)
        if rejected == chosen:
            rejected += " No."
        # Now and then an escaped quote, a bracket and a backslash inside a string, as real answers hold.
        if i % 97 == 0:
            chosen += ' The sign reads "EXIT [2]" \\ {left}.'
        yield {"id": f"release-{i:08d}", "image": images[i % len(images)], "question": question, "chosen": chosen,
               "rejected": rejected}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--images-from", required=True, help="a JSONL whose 'image' fields name real images")
    p.add_argument("--format", choices=["jsonl", "json"], default="jsonl")
    p.add_argument("--indent", action="store_true", help="json: one element a line instead of one line")
    p.add_argument("--mean-bytes", type=int, default=1300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    images = []
    with open(args.images_from) as f:
        for line in f:
            if line.strip():
                img = json.loads(line).get("image")
                if isinstance(img, str):
                    images.append(img)
    if not images:
        sys.exit(f"{args.images_from}: no 'image' fields")
    total = 0
    with open(args.out, "w", buffering=1 << 22) as f:
        if args.format == "json":
            f.write("[\n" if args.indent else "[")
        for i, r in enumerate(rows(args, images)):
            line = json.dumps(r, ensure_ascii=False)
            if args.format == "jsonl":
                f.write(line + "\n")
            else:
                sep = "" if i == 0 else (",\n" if args.indent else ", ")
                f.write(sep + line)
            total += len(line) + 1
        if args.format == "json":
            f.write("\n]\n" if args.indent else "]")
    print(f"{args.out}: {args.rows} rows, {total / 1e9:.2f} GB ({total / max(1, args.rows):.0f} B a row), "
          f"{len(images)} distinct images")


if __name__ == "__main__":
    main()
