#!/usr/bin/env python3
"""Compares two training runs: per-step losses and validation metrics from metrics.jsonl, and the tensors of the
final exported model (model.safetensors). Used by tests/cli/distributed.sh.

    compare_runs.py RUN_A RUN_B --export step2 --loss-rtol 1e-5 --param-atol 1e-4 --param-p999 1e-6

Losses and validation values: |a - b| <= rtol * max(|a|, 1). Parameters: the largest absolute difference <= atol
and the 99.9th percentile of the element differences <= p999 (AdamW divides by sqrt(v): an element whose gradient
is near zero amplifies a summation-order difference up to a fraction of the learning rate, the rest stay ~1e-9).

Exit 0 when every value agrees within the tolerances; prints the largest differences either way.
"""
import argparse
import json
import os
import sys


def metrics(run):
    losses, val = {}, {}
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            if "loss" in j:
                losses[j["step"]] = j["loss"]
            for k, v in j.items():
                if k.startswith("val/"):
                    val[(j["step"], k)] = v
    return losses, val


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--export", default="")
    ap.add_argument("--loss-rtol", type=float, default=1e-5)
    ap.add_argument("--param-atol", type=float, default=1e-4)
    ap.add_argument("--param-p999", type=float, default=1e-6)
    args = ap.parse_args()
    la, va = metrics(args.a)
    lb, vb = metrics(args.b)
    ok = True
    steps = sorted(la)
    if not steps or sorted(lb) != steps:
        print(f"FAIL: steps differ: {sorted(la)} vs {sorted(lb)}")
        return 1
    worst = max(abs(la[s] - lb[s]) / max(abs(la[s]), 1.0) for s in steps)
    print(f"{len(steps)} steps, largest relative loss difference {worst:.3g} (tolerance {args.loss_rtol:g})")
    ok &= worst <= args.loss_rtol
    keys = sorted(va)
    if sorted(vb) != keys:
        print(f"FAIL: validation entries differ: {keys} vs {sorted(vb)}")
        return 1
    if keys:
        vw = max(abs(va[k] - vb[k]) / max(abs(va[k]), 1.0) for k in keys)
        print(f"{len(keys)} validation values, largest relative difference {vw:.3g}")
        ok &= vw <= args.loss_rtol
    if args.export:
        from safetensors.numpy import load_file
        ta = load_file(os.path.join(args.a, args.export, "model.safetensors"))
        tb = load_file(os.path.join(args.b, args.export, "model.safetensors"))
        if sorted(ta) != sorted(tb):
            print("FAIL: exported tensor names differ")
            return 1
        import numpy as np
        diff = np.concatenate([np.abs(ta[k].astype("float64") - tb[k].astype("float64")).ravel() for k in ta])
        pw, p999 = float(diff.max()), float(np.percentile(diff, 99.9))
        print(f"{len(ta)} exported tensors, {diff.size} elements: largest absolute difference {pw:.3g} (tolerance "
              f"{args.param_atol:g}), 99.9th percentile {p999:.3g} (tolerance {args.param_p999:g})")
        ok &= pw <= args.param_atol and p999 <= args.param_p999
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
