#!/usr/bin/env python3
"""Independent reference for docs/demo.md ("How far the open answers can go"): the demo's vision tower trained
*directly* on Fashion-MNIST labels, without the LLM, in plain PyTorch. It bounds what the demo's open answers can
reach for a given number of image exposures: in the demo the same tower learns only through the decoder's loss.

    .venv/bin/python tests/tools/demo_vision_probe.py IMAGES EPOCHS BATCH LR [WIDTH LAYERS]

IMAGES training images (Debian's dataset-fashion-mnist, train split), EPOCHS passes, AdamW + one-cycle schedule;
prints the 10-class accuracy on the first 2,000 test images (the demo's benchmark is the first 500). The tower is
the demo's: 28-px photos upscaled to 56 px (bicubic), 7-px patches (64 per image), pre-norm transformer layers of
WIDTH (64) with 4 heads and a 4x MLP, LAYERS (2) deep; mean-pooled into a linear classifier. One thread.
"""
import gzip
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SRC = "/usr/share/datasets/fashion-mnist/"


def idx(name):
    data = gzip.open(SRC + name).read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).view(n, 1, 28, 28).float() / 255
    return torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).long()


class Tower(nn.Module):
    def __init__(self, width, layers):
        super().__init__()
        self.patches = nn.Conv2d(1, width, 7, 7)
        self.pos = nn.Parameter(torch.zeros(1, 64, width))
        layer = nn.TransformerEncoderLayer(width, 4, 4 * width, 0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = (F.interpolate(x, size=56, mode="bicubic") - 0.5) / 0.5
        tokens = self.patches(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.encoder(tokens).mean(1))


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    n, epochs, batch, lr = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    width = int(sys.argv[5]) if len(sys.argv) > 5 else 64
    layers = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
    xt, yt = idx("t10k-images-idx3-ubyte.gz")[:2000], idx("t10k-labels-idx1-ubyte.gz")[:2000]
    model = Tower(width, layers)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = int(n * epochs / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    g = torch.Generator().manual_seed(0)
    t0 = time.time()
    for _ in range(steps):
        i = torch.randint(0, n, (batch,), generator=g)
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(f"images={n} epochs={epochs} exposures={steps * batch} batch={batch} lr={lr} width={width} "
          f"layers={layers}: test accuracy {100 * acc:.1f} % ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
