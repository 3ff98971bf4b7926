#!/usr/bin/env python3
"""The "Size x step x device" table of docs/scale.md, from `phantom plan` (no measurement, arithmetic only).

    .venv/bin/python scripts/bench/plan_table.py [--phantom build/phantom]

For each configs/phantom-{0.5b,1.8b,3.8b,7b}.yaml at 8 ranks: the planned total at the configs' micro-batch, and for
24, 48 and 80 GiB devices the largest micro-batch that fits and the micro-batch x accumulation (micro-batch a divisor
of 16) that gives the paper's global batch 128 on 8 ranks.
"""
import argparse
import re
import subprocess

SIZES = ["0.5b", "1.8b", "3.8b", "7b"]
DEVICES = [24, 48, 80]


def plan(phantom, size, device):
    out = subprocess.run([phantom, "plan", "--config", f"configs/phantom-{size}.yaml", "--model-dims",
                          f"configs/dims/phantom-{size}", "--ranks", "8", "--device-memory", f"{device}GiB"],
                         capture_output=True, text=True, check=True).stdout
    stages = []
    for block in re.split(r"^stage ", out, flags=re.M)[1:]:
        total = float(re.search(r"total ([\d.]+) GiB", block).group(1))
        m = re.search(r"largest micro-batch that fits: (\d+)", block)
        largest = int(m.group(1)) if m else 0
        stages.append((total, largest))
    return stages


def cell(largest):
    if largest == 0:
        return "**0: does not fit**"
    mb = max(d for d in (1, 2, 4, 8, 16) if d <= largest)
    return f"{'64+' if largest >= 64 else largest}, {mb} x {16 // mb}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phantom", default="build/phantom")
    a = ap.parse_args()
    print("| size | step | total at mb 4 | 24 GiB: largest, mb x accum | 48 GiB | 80 GiB |")
    print("|---|---|---|---|---|---|")
    for size in SIZES:
        per_device = {d: plan(a.phantom, size, d) for d in DEVICES}
        for step in range(len(per_device[24])):
            total = per_device[24][step][0]
            cells = " | ".join(cell(per_device[d][step][1]) for d in DEVICES)
            print(f"| {size.upper().replace('B', 'B')} | {step + 1} | {total:.2f} GiB | {cells} |")


if __name__ == "__main__":
    main()
