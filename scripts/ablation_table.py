#!/usr/bin/env python3
"""The demo ablation's table and bar chart from its runs (written by scripts/ablation.sh).

    scripts/ablation_table.py runs/ablation [--md docs/demo.md] [--png docs/demo-ablation.png]

Reads runs/ablation/<variant>-s<seed>/metrics.jsonl (the last value of each key wins): the MC letter accuracy
(benchmark/accuracy), the open accuracy (benchmark/open_accuracy) and the held-out reward margin and accuracy
(val/rewards/margins, val/rewards/accuracies, measured on the validation triples after the last stage). Prints a
Markdown table of mean ± sample sd over seeds; with --md it replaces the text between the markers
`<!-- ablation:begin -->` and `<!-- ablation:end -->` of that file; with --png it draws one bar chart (mean, sd as
error bar, each seed as a dot). A tool, not part of the framework.
"""
import argparse
import json
import math
import os
import re
import statistics
import sys

# (directory prefix, label): the order of the table and the chart
VARIANTS = [("plain", "plain model (no Phantom dimension, no PO)"),
            ("nopo", "Phantom, step 1 with SFT (no PO)"),
            ("po", "Phantom + PO (the paper's recipe)")]
# Chance level: a random letter of 4; a random item of the 10 (an open answer naming no option is wrong).
CHANCE = {"benchmark/accuracy": 25, "benchmark/open_accuracy": 10}
METRICS = [("benchmark/accuracy", "MC letter accuracy", 100, "%"),
           ("benchmark/open_accuracy", "open accuracy", 100, "%"),
           ("val/rewards/margins", "held-out reward margin", 1, ""),
           ("val/rewards/accuracies", "held-out reward accuracy", 1, "")]


def last_values(path):
    values = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: malformed JSON ({e})")
            values.update({k: v for k, v in row.items() if isinstance(v, (int, float))})
    return values


def collect(runs):
    """{variant: {seed: {metric: value}}} for every finished run (one whose metrics have every table metric)."""
    found, missing = {}, []
    for name in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
        m = re.fullmatch(r"(\w+)-s(\d+)", name)
        path = os.path.join(runs, name, "metrics.jsonl")
        if not m or not os.path.exists(path):
            continue
        values = last_values(path)
        if any(k not in values for k, *_ in METRICS):
            missing.append(name)
            continue
        found.setdefault(m.group(1), {})[int(m.group(2))] = values
    return found, missing


def mean_sd(xs):
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def table(found):
    head = "| variant | seeds | " + " | ".join(label for _, label, *_ in METRICS) + " |"
    lines = [head, "|" + "---|" * (2 + len(METRICS))]
    for key, label in VARIANTS:
        runs = found.get(key, {})
        if not runs:
            continue
        cells = []
        for metric, _, scale, unit in METRICS:
            mean, sd = mean_sd([runs[s][metric] * scale for s in sorted(runs)])
            digits = 1 if unit == "%" else 3
            cells.append(f"{mean:.{digits}f} ± {sd:.{digits}f}{(' ' + unit) if unit else ''}")
        seeds = ", ".join(str(s) for s in sorted(runs))
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + " |")
    per_seed = ["", "Per run (seed: MC / open / margin):", ""]
    for key, label in VARIANTS:
        runs = found.get(key, {})
        if runs:
            per_seed.append(f"- {label}: " + "; ".join(
                f"{s}: {100 * runs[s]['benchmark/accuracy']:.1f} / {100 * runs[s]['benchmark/open_accuracy']:.1f} / "
                f"{runs[s]['val/rewards/margins']:.3f}" for s in sorted(runs)))
    return "\n".join(lines + per_seed)


def chart(found, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = [(k, l) for k, l in VARIANTS if found.get(k)]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    colors = ["#9e9e9e", "#6baed6", "#2171b5"]
    for ax, (metric, label, scale, unit) in zip(axes, METRICS[:3]):
        for i, (key, _) in enumerate(shown):
            xs = [found[key][s][metric] * scale for s in sorted(found[key])]
            mean, sd = mean_sd(xs)
            ax.bar(i, mean, yerr=0 if math.isnan(sd) else sd, color=colors[i % 3], capsize=4)
            ax.scatter([i] * len(xs), xs, color="black", s=10, zorder=3)
        chance = CHANCE.get(metric)
        if chance:
            ax.axhline(chance, color="red", linestyle=":", linewidth=1)
            ax.text(len(shown) - 0.5, chance + 1, "chance", color="red", fontsize=8, ha="right")
        ax.set_xticks(range(len(shown)), [{"plain": "plain", "nopo": "Phantom\nno PO", "po": "Phantom\n+ PO"}[k]
                                          for k, _ in shown])
        ax.set_title(label + (f" ({unit})" if unit else ""), fontsize=10)
    n = max(len(found[k]) for k, _ in shown)
    fig.suptitle(f"Demo ablation: mean ± sd over {n} seeds (dots: single runs)", fontsize=11)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="directory of the ablation runs (runs/ablation)")
    ap.add_argument("--md", help="Markdown file whose ablation markers get the table")
    ap.add_argument("--png", help="bar chart to write")
    ap.add_argument("--command", default="scripts/demo.sh --ablation", help="the command named under the table")
    args = ap.parse_args()
    found, missing = collect(args.runs)
    if not found:
        sys.exit(f"{args.runs}: no finished ablation run (<variant>-s<seed>/metrics.jsonl with benchmark results)")
    text = table(found)
    print(text)
    if missing:
        print(f"\n(unfinished, left out: {', '.join(missing)})")
    if args.png:
        chart(found, args.png)
        print(f"chart: {args.png}")
    if args.md:
        with open(args.md) as f:
            doc = f.read()
        begin, end = "<!-- ablation:begin -->", "<!-- ablation:end -->"
        if begin not in doc or end not in doc:
            sys.exit(f"{args.md}: the markers {begin} and {end} are missing")
        img = f"\n\n![ablation]({os.path.relpath(args.png, os.path.dirname(args.md))})" if args.png else ""
        block = f"{begin}\nCommand: `{args.command}`\n\n{text}{img}\n{end}"
        doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
        tmp = args.md + ".tmp"
        with open(tmp, "w") as f:
            f.write(doc)
        os.replace(tmp, args.md)
        print(f"table written into {args.md}")


if __name__ == "__main__":
    main()
