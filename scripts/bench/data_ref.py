#!/usr/bin/env python3
"""Data pipeline benchmark, Python side (see scripts/bench/data.sh and docs/benchmarks.md).

  data_ref.py make OUT      # a benchmark set: a real photo (matplotlib's grace_hopper.jpg)
                            # at several sizes as JPEG/PNG, preference triples with paragraph-long answers
  data_ref.py run OUT [--workers N] [--batch B] [--samples N]
                            # the reference pipeline InternVL/Phantom train with: PIL decode, dynamic_preprocess
                            # (6 tiles + thumbnail at 448 px), ToTensor + Normalize, HF `tokenizers` on the chat
                            # template with image tokens expanded, padding collate; prints samples/s

torchvision is not installed here: its Resize(BICUBIC)/ToTensor/Normalize are PIL's resize and the same float32
arithmetic (tests/tools/image_reference.py, the module the C++ image tests are checked against).
"""
import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "tools"))
from image_reference import dynamic_preprocess, dynamic_transform  # noqa: E402

TILE, MAX_TILES, TOKENS_PER_TILE = 448, 6, 256
SIZES = [(640, 480), (1024, 768), (1280, 720), (480, 640), (800, 800), (1600, 900), (512, 600), (300, 200)]


def cmd_make(out: Path):
    import matplotlib

    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    rng = random.Random(0)
    texts = []
    for p in sorted(Path("/usr/share/common-licenses").glob("*"))[:6]:
        if p.is_file():
            texts += [t.strip() for t in p.read_text(errors="replace").split("\n\n") if len(t.strip()) > 200]
    images = []
    for i, (w, h) in enumerate(SIZES):
        im = photo.resize((w, h), Image.BICUBIC)
        name = f"images/photo{i}.{'jpg' if i % 2 == 0 else 'png'}"
        im.save(out / name, quality=90) if name.endswith("jpg") else im.save(out / name)
        images.append(name)
    with open(out / "train.jsonl", "w") as f:
        for i in range(512):
            f.write(json.dumps({
                "id": i,
                "image": images[i % len(images)],
                "question": "Describe this photo in detail. " + rng.choice(texts)[:300],
                "chosen": rng.choice(texts)[:1200],
                "rejected": rng.choice(texts)[:1200],
            }) + "\n")
    print(f"wrote {out}/train.jsonl (512 triples over {len(images)} photos)")


class RefDataset(torch.utils.data.Dataset):
    def __init__(self, out: Path, tokenizer):
        self.rows = [json.loads(l) for l in open(out / "train.jsonl")]
        self.out, self.tok = out, tokenizer

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        r = self.rows[i]
        image = Image.open(self.out / r["image"]).convert("RGB")
        tiles, _ = dynamic_preprocess(image, max_num=MAX_TILES, image_size=TILE, use_thumbnail=True)
        pixels = torch.from_numpy(np.stack([dynamic_transform(t, TILE) for t in tiles]))
        img = "<img>" + "<IMG_CONTEXT>" * (TOKENS_PER_TILE * len(tiles)) + "</img>"
        prompt = f"<|im_start|>user\n{img}{r['question']}<|im_end|><|im_start|>assistant\n"
        p = self.tok.encode(prompt, add_special_tokens=False).ids
        answers = [self.tok.encode(a + "<|im_end|>", add_special_tokens=False).ids for a in (r["chosen"], r["rejected"])]
        return pixels, p, answers


def collate(batch):
    """Naive preference layout (every trainer's): one padded row per (question, answer), labels masked on the prompt."""
    rows, labels, pixels = [], [], []
    for px, p, answers in batch:
        pixels.append(px)
        for a in answers:
            rows.append(p + a)
            labels.append([-100] * len(p) + a)
    L = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), L, dtype=torch.long)
    lab = torch.full((len(rows), L), -100, dtype=torch.long)
    for i, (r, l) in enumerate(zip(rows, labels)):
        ids[i, : len(r)] = torch.tensor(r)
        lab[i, : len(l)] = torch.tensor(l)
    return torch.cat(pixels), ids, lab, (ids != 0).long()


def cmd_run(out: Path, workers: int, batch: int, samples: int, tokenizer: str):
    from tokenizers import Tokenizer

    torch.set_num_threads(1)
    ds = RefDataset(out, Tokenizer.from_file(tokenizer))
    ds.rows = ds.rows[:samples]
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=collate,
                                     prefetch_factor=2 if workers else None)
    t0 = time.perf_counter()
    n = tiles = 0
    for px, ids, _, _ in dl:
        n += ids.size(0) // 2
        tiles += px.size(0)
    dt = time.perf_counter() - t0
    print(f"python samples/s {n / dt:.2f}  ({n} samples, {tiles} tiles, {dt:.1f} s, {workers} workers)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["make", "run"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--tokenizer", default="runs/demo-data/tokenizer.json")
    a = ap.parse_args()
    cmd_make(a.out) if a.cmd == "make" else cmd_run(a.out, a.workers, a.batch, a.samples, a.tokenizer)
