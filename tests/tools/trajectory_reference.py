#!/usr/bin/env python3
"""The golden trajectory's independent side (tests/test_trainer.cpp, "trainer: the first 10 losses*"): the first
optimiser steps of a recipe run recomputed in float64 PyTorch, as llm.c checks its C kernels against PyTorch.

    trajectory_reference.py DIR [--rtol 1e-5]

What cannot be re-derived here, because LibTorch's and Python's random streams differ, is read from DIR (written
by the C++ test): the starting weights (DIR/initial: config.json + model.safetensors, HF names) and each step's
micro-batches (DIR/step-SS-M.safetensors: ids, mask, tiles, the supervised (row, pred, target) triples, the answer
each belongs to; metadata: stage, step within the stage). Everything else is this script's own, written from the
docs (docs/training.md "Optimisation", docs/paper.md), not from the C++:
  - the forward: model_reference.py's plain InternViT + pixel shuffle + projector and Phantom decoder, every
    preference answer in a row of its own [prompt | answer] (the C++ shares the prompt between answers);
  - the losses: SFT = summed cross-entropy / the step's supervised tokens; PO = that on the chosen answers + per
    question the mean over its rejected answers of -log sigmoid(beta avg(y+) - beta avg(y-) - gamma), summed / the
    step's questions; each micro-batch's value is also checked against loss_reference.py (math module, no torch);
  - per stage: the trainable set (the stage's regexes on the parameter names), a fresh AdamW (decoupled decay on
    matrices only: not on vectors, position/class embeddings or Phantom gates), linear warmup then cosine to
    min_lr over the stage's steps, gradients accumulated over the step's micro-batches, global-norm clipping;
  - the hyperparameters from DIR/config.yaml (the run's resolved config).
DIR/expected.json holds the C++ run's losses ("ours") and the pinned numbers ("golden"): every reference loss
must agree with both within --rtol (relative); exit status 1 otherwise. Writes DIR/reference.json.
"""
import argparse
import glob
import json
import math
import os
import re
import sys

import torch
import torch.nn.functional as F
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loss_reference  # noqa: E402
from model_reference import phantom_forward, vit_forward  # noqa: E402

torch.set_num_threads(1)
LM = "language_model."


# ---- the run's batches, as sequences -------------------------------------------------------------------------------

def read_micro(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    return int(meta["stage"]), int(meta["step"]), meta["preference"] == "1", t


def tiles_of_rows(ids, mask, image_token, tokens_per_tile, n_tiles):
    """The tile range of each row: visual tokens replace the image-token positions in row-major order."""
    counts = ((ids == image_token) & (mask == 1)).sum(1).tolist()
    assert sum(counts) == n_tiles * tokens_per_tile, (counts, n_tiles, tokens_per_tile)
    out, at = [], 0
    for c in counts:
        assert c % tokens_per_tile == 0, counts
        out.append((at, at + c // tokens_per_tile))
        at += c // tokens_per_tile
    return out


def sequences(pref, t, image_token, tokens_per_tile):
    """The micro-batch as plain sequences, each {ids, tiles, answer, question, targets}: an SFT row as it is; a
    preference answer as [prompt | answer], the prompt read up to the position that predicts its first token."""
    ids, mask = t["input_ids"], t["attention_mask"]
    n_tiles = t["pixel_values"].shape[0] if "pixel_values" in t else 0
    tiles = tiles_of_rows(ids, mask, image_token, tokens_per_tile, n_tiles)
    row, pred, tok, seg = (t[k].tolist() for k in ("target_row", "target_pred", "target_token", "target_segment"))
    by_seg = {}
    for i in range(len(row)):
        by_seg.setdefault(seg[i], []).append(i)
    out = []
    for s, idx in sorted(by_seg.items()):
        r = row[idx[0]]
        assert all(row[i] == r for i in idx), f"segment {s} spans rows"
        answer = [tok[i] for i in idx]
        if not pref:  # an SFT row (not packed: plain positions 0..n-1): every target is the next token of the row
            assert "positions" not in t, "packed SFT rows are not replayed here"
            n = int(mask[r].sum())
            assert all(ids[r, pred[i] + 1] == tok[i] for i in idx), f"row {r}: a target is not the next token"
            out.append(dict(ids=ids[r, :n].tolist(), tiles=tiles[r], targets=[(pred[i], tok[i]) for i in idx],
                            question=r, answer=0))
            continue
        # Answer tokens predict each other in order: the position predicting token k > 0 holds token k - 1.
        assert all(ids[r, pred[i]] == answer[k - 1] for k, i in enumerate(idx) if k > 0), f"segment {s}: layout"
        prompt = ids[r, :pred[idx[0]] + 1].tolist()
        P = len(prompt)
        out.append(dict(ids=prompt + answer, tiles=tiles[r], targets=[(P - 1 + k, a) for k, a in enumerate(answer)],
                        question=int(t["seg_question"][s]), answer=int(t["seg_answer"][s])))
    return out


# ---- forward and losses -------------------------------------------------------------------------------------------

def answer_logps(W, c, seqs, pixels):
    """Token log-probs of every sequence's targets: one right-padded float64 forward of all sequences."""
    L = {k[len(LM):]: v for k, v in W.items() if k.startswith(LM)}
    visual = vit_forward(W, c["vision_config"], pixels) if pixels is not None else None
    width = max(len(s["ids"]) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, :len(s["ids"])] = torch.tensor(s["ids"])
        mask[b, :len(s["ids"])] = 1
    emb = L["model.embed_tokens.weight"][ids]
    rows = []
    for b, s in enumerate(seqs):  # the row's visual tokens at its image-token positions
        e = emb[b]
        sel = (ids[b] == c["image_token_index"]) & (mask[b] == 1)
        if int(sel.sum()):
            v = visual[s["tiles"][0]:s["tiles"][1]].reshape(-1, visual.shape[-1])
            assert v.shape[0] == int(sel.sum())
            e = e.clone()
            e[sel] = v
        rows.append(e)
    logits = phantom_forward(L, c["llm_config"], ids, mask, c["phantom"], c["phantom_eta"], embeds=torch.stack(rows))
    lp = logits.log_softmax(-1)
    return [torch.stack([lp[b, p, a] for p, a in s["targets"]]) for b, s in enumerate(seqs)]


def micro_loss(kind, pref_cfg, seqs, logps, n_tokens, n_questions):
    """The micro-batch's share of the step's loss (divided by the step's global counts), as a torch scalar."""
    ce = -sum(lp.sum() for s, lp in zip(seqs, logps) if s["answer"] == 0)
    if kind == "sft":
        return ce / max(1, n_tokens)
    assert kind == "po", f"the reference implements sft and po, not {kind}"
    beta, gamma, w = pref_cfg["beta"], pref_cfg["gamma"], pref_cfg["sft_weight"]
    pref = 0.0
    for q in sorted({s["question"] for s in seqs}):
        mine = [(s, lp) for s, lp in zip(seqs, logps) if s["question"] == q]
        (c_s, c_lp), = [(s, lp) for s, lp in mine if s["answer"] == 0]
        rejected = [lp for s, lp in mine if s["answer"] != 0]
        terms = [-F.logsigmoid(beta * c_lp.mean() - beta * r.mean() - gamma) for r in rejected]
        pref = pref + sum(terms) / len(terms)
    return w * ce / max(1, n_tokens) + pref / max(1, n_questions)


def check_with_math_module(kind, pref_cfg, seqs, logps, n_tokens, n_questions, value):
    """loss_reference.py's equations (float64, math module) on the same log-probs give the same number."""
    spec = {"sft_tokens": n_tokens, "questions": n_questions, "sft": kind == "sft",
            "answers": [{"question": s["question"], "answer": s["answer"], "logps": lp.tolist()}
                        for s, lp in zip(seqs, logps) if kind != "sft" or s["answer"] == 0]}
    case = {"kind": kind, "beta": pref_cfg["beta"], "gamma": pref_cfg["gamma"], "sft_weight": pref_cfg["sft_weight"],
            "orpo_lambda": pref_cfg.get("orpo_lambda", 0.1)}
    want = loss_reference.loss(spec, case)["loss"]
    assert abs(want - value) <= 1e-12 * max(1.0, abs(want)), (kind, want, value)


# ---- optimiser ----------------------------------------------------------------------------------------------------

def decays(name, p):
    """Decoupled weight decay on matrices only (docs/training.md): not vectors, embeddings of position or class
    token, Phantom gates."""
    return p.dim() >= 2 and not any(s in name for s in ("position_embedding", "class_embedding", "gating_phantom"))


def lr_at(step, total, o):
    """Linear warmup to lr over warmup_steps (step k of the warmup runs at lr (k+1)/warmup), then cosine from lr to
    min_lr over the stage's remaining steps."""
    if step < o["warmup_steps"]:
        return o["lr"] * (step + 1) / o["warmup_steps"]
    progress = min(1.0, (step - o["warmup_steps"]) / max(1, total - o["warmup_steps"]))
    return o["min_lr"] + 0.5 * (o["lr"] - o["min_lr"]) * (1 + math.cos(math.pi * progress))


class AdamW:
    def __init__(self, params, o):
        self.params, self.o, self.state = params, o, {}

    @torch.no_grad()
    def step(self, lr):
        b1, b2, eps, wd = self.o["beta1"], self.o["beta2"], self.o["eps"], self.o["weight_decay"]
        for name, p in self.params.items():
            if p.grad is None:  # no gradient this step: untouched, its step count too
                continue
            m, v, t = self.state.get(name, (torch.zeros_like(p), torch.zeros_like(p), 0))
            t += 1
            if decays(name, p):
                p.mul_(1 - lr * wd)
            m = b1 * m + (1 - b1) * p.grad
            v = b2 * v + (1 - b2) * p.grad ** 2
            p.sub_(lr / (1 - b1 ** t) * m / ((v / (1 - b2 ** t)).sqrt() + eps))
            self.state[name] = (m, v, t)


def clip_(params, max_norm):
    """Global-norm clipping: all gradients scaled by max_norm / (norm + 1e-6) when that is below 1."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    scale = max_norm / (float(norm) + 1e-6) if max_norm > 0 else 1.0
    if scale < 1:
        for g in grads:
            g.mul_(scale)
    return float(norm)


# ---- the run ------------------------------------------------------------------------------------------------------

def numbers(d):
    """A config section's numbers as floats (YAML 1.1 reads 1e-08, without a dot, as a string)."""
    out = {}
    for k, v in d.items():
        try:
            out[k] = float(v) if isinstance(v, str) else v
        except ValueError:
            out[k] = v
    return out


def stage_optim(cfg, stage):
    o = numbers(cfg["optim"])
    o.update({k: v for k, v in numbers(stage.get("optim") or {}).items() if v is not None})
    return o


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--rtol", type=float, default=1e-5)
    args = ap.parse_args()
    cfg = yaml.safe_load(open(os.path.join(args.dir, "config.yaml")))
    c = json.load(open(os.path.join(args.dir, "initial", "config.json")))
    W = {k: v.double() for k, v in load_file(os.path.join(args.dir, "initial", "model.safetensors")).items()}
    vc = c["vision_config"]
    tokens_per_tile = (vc["image_size"] // vc["patch_size"]) ** 2 // 4  # pixel shuffle 0.5: 4 patches a token

    steps = {}
    for path in sorted(glob.glob(os.path.join(args.dir, "step-*.safetensors"))):
        g = int(os.path.basename(path).split("-")[1])
        steps.setdefault(g, []).append(read_micro(path))
    assert steps and sorted(steps) == list(range(len(steps))), sorted(steps)

    losses, stage_at, opt, trainable = [], None, None, None
    for g in range(len(steps)):
        micro = steps[g]
        stage, step = micro[0][0], micro[0][1]
        sc = cfg["stages"][stage]
        o = stage_optim(cfg, sc)
        assert len(micro) == o["grad_accum"], (g, len(micro), o["grad_accum"])
        if stage != stage_at:  # a new stage: its trainable set and a fresh optimiser
            assert step == 0, (g, stage, step)
            stage_at = stage
            pats = [re.compile(p) for p in sc["trainable"]]
            for p in pats:
                assert any(p.search(n) for n in W), f"pattern {p.pattern} matches no parameter"
            for n, p in W.items():
                p.requires_grad_(any(q.search(n) for q in pats))
            trainable = {n: p for n, p in W.items() if p.requires_grad}
            opt = AdamW(trainable, o)
        kind = sc["loss"]
        total = sc["max_steps"]
        assert total > 0, "the reference needs stages.N.max_steps"
        per_micro = [sequences(pref, t, c["image_token_index"], tokens_per_tile) for _, _, pref, t in micro]
        n_tokens = sum(len(s["targets"]) for seqs in per_micro for s in seqs if s["answer"] == 0)
        n_questions = sum(len({s["question"] for s in seqs}) for seqs in per_micro)
        loss = 0.0
        for (_, _, pref, t), seqs in zip(micro, per_micro):
            assert pref == (kind != "sft"), (g, kind, pref)
            pixels = t["pixel_values"].double() if "pixel_values" in t else None
            logps = answer_logps(W, c, seqs, pixels)
            value = micro_loss(kind, numbers(cfg["preference"]), seqs, logps, n_tokens, n_questions)
            check_with_math_module(kind, numbers(cfg["preference"]), seqs, logps, n_tokens, n_questions, value.item())
            value.backward()
            loss += value.item()
        norm = clip_(trainable, o["grad_clip"])
        lr = lr_at(step, total, o)
        opt.step(lr)
        for p in trainable.values():
            p.grad = None
        losses.append(loss)
        print(f"step {g}: stage {stage} ({sc['name']}, {kind}) step {step}/{total}: loss {loss:.10f} "
              f"grad norm {norm:.6f} lr {lr:.6g}")

    json.dump({"losses": losses}, open(os.path.join(args.dir, "reference.json"), "w"))
    exp = json.load(open(os.path.join(args.dir, "expected.json")))
    bad = 0
    print(f"{'step':>4} {'reference (float64)':>20} {'ours (C++)':>14} {'rel':>9} {'golden':>14} {'rel':>9}")
    for i, ref in enumerate(losses):
        ours, gold = exp["ours"][i], exp["golden"][i]
        r1, r2 = abs(ref - ours) / abs(ours), abs(ref - gold) / abs(gold)
        ok = r1 <= args.rtol and r2 <= args.rtol
        bad += not ok
        print(f"{i:>4} {ref:>20.10f} {ours:>14.8f} {r1:>9.2e} {gold:>14.8f} {r2:>9.2e}{'' if ok else '  <-- differs'}")
    if len(losses) != len(exp["ours"]):
        print(f"{len(losses)} reference losses, {len(exp['ours'])} of ours")
        bad += 1
    print("agree" if not bad else f"{bad} step(s) differ beyond {args.rtol} relative")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
