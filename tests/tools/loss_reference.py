#!/usr/bin/env python3
"""The training losses written out from the papers' equations, in float64 with the math module (no torch), as the
independent side of the golden tests of trainers/recipe/losses.cpp (tests/test_losses.cpp).

    loss_reference.py loss IN.json          token log-probs given          -> JSON of the loss and metric sums
    loss_reference.py model-loss IN.json    token log-probs from a model   -> same (the model is read by
                                            tests/tools/model_reference.py's plain Phantom forward)

IN.json (loss):
  {"cases": [{"kind": "po", "beta": 2.0, "gamma": 0.5, "sft_weight": 1.0, "orpo_lambda": 0.1}, ...],
   "sft_tokens": N, "questions": Q,                    # global counts of the optimiser step (docs/training.md)
   "answers": [{"question": q, "answer": a, "logps": [...], "ref": r}, ...]}   # a = 0: chosen; ref: dpo/ipo only
  or, for an SFT batch, "answers" with "logps" only and "sft": true.
IN.json (model-loss): the same without "answers", with "model" (an HF-format directory written by save_phantom),
  "pixels" (safetensors: tensor qN = the tiles of question N) and "questions_in": [{"prompt": [ids],
  "answers": [[ids], ...], "refs": [r, ...]}, ...].
Prints a JSON list: per case, the loss and the metric sums of compute_loss (sft, pref, rewards/...).

The equations (docs/paper.md), per question q with chosen y+ and rejected y-_1..y-_k, avg(y) = logp(y) / |y|:
  CE        = -sum of the chosen answers' token log-probs / N                       (token mean over the step)
  SimPO     = -log sigmoid(beta avg(y+) - beta avg(y-) - gamma)                     (Meng et al. 2024, eq. 6)
  DPO       = -log sigmoid(beta (logp(y+) - ref(y+)) - beta (logp(y-) - ref(y-)))  (Rafailov et al. 2023, eq. 7)
  IPO       = ((logp(y+) - ref(y+)) - (logp(y-) - ref(y-)) - 1 / (2 beta))^2        (Azar et al. 2023, eq. 17)
  ORPO      = -log sigmoid(log odds(y+) - log odds(y-)), odds(y) = P / (1 - P), P = exp(avg(y))
                                                                                    (Hong et al. 2024, eqs. 4-7)
  a question's preference term is the mean of its k pairwise terms; the terms are summed over questions / Q.
  loss: sft = CE; po = sft_weight CE + SimPO (the Phantom paper: beta 2, gamma 0.5); simpo = SimPO; dpo = DPO;
        ipo = IPO; orpo = sft_weight CE + lambda ORPO (lambda = orpo_lambda; beta only scales ORPO's rewards).
"""
import json
import math
import os
import sys


def log_sigmoid(x):
    # log(1 / (1 + e^-x)), stable on both sides
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def pair_term(kind, beta, gamma, c, r):
    """One (chosen, rejected) pair; c and r are dicts with logp (sum), n (tokens) and ref."""
    if kind in ("po", "simpo", "sft"):
        return -log_sigmoid(beta * c["logp"] / c["n"] - beta * r["logp"] / r["n"] - gamma)
    if kind == "dpo":
        return -log_sigmoid(beta * (c["logp"] - c["ref"]) - beta * (r["logp"] - r["ref"]))
    if kind == "ipo":
        return ((c["logp"] - c["ref"]) - (r["logp"] - r["ref"]) - 1.0 / (2.0 * beta)) ** 2
    if kind == "orpo":
        def log_odds(y):
            p = math.exp(y["logp"] / y["n"])
            return math.log(p / (1.0 - p))
        return -log_sigmoid(log_odds(c) - log_odds(r))
    raise SystemExit(f"unknown loss kind {kind!r}")


def reward(kind, beta, y):
    # TRL's rewards: beta * avg log-prob (reference-free losses), beta * log-ratio (DPO / IPO)
    return beta * (y["logp"] - y["ref"]) if kind in ("dpo", "ipo") else beta * y["logp"] / y["n"]


def loss(spec, case):
    kind, beta, gamma, w = case["kind"], case["beta"], case["gamma"], case["sft_weight"]
    n_tok, n_q = max(1, spec["sft_tokens"]), max(1, spec["questions"])
    if spec.get("sft"):
        ce = -sum(t for a in spec["answers"] for t in a["logps"])
        return {"loss": ce / n_tok, "sft": ce}
    by_q = {}
    for a in spec["answers"]:
        y = {"logp": math.fsum(a["logps"]), "n": len(a["logps"]), "ref": a.get("ref", 0.0)}
        by_q.setdefault(a["question"], {})[a["answer"]] = y
    ce, pref, margins, acc, rc, rr = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for q in sorted(by_q):
        c = by_q[q][0]
        rejected = [by_q[q][i] for i in sorted(by_q[q]) if i != 0]
        ce -= c["logp"]
        pref += sum(pair_term(kind, beta, gamma, c, r) for r in rejected) / len(rejected)
        for r in rejected:
            m = reward(kind, beta, c) - reward(kind, beta, r)
            margins += m
            acc += 1.0 if m > 0 else 0.0
            rc += reward(kind, beta, c)
            rr += reward(kind, beta, r)
    total = 0.0
    if kind in ("sft", "po", "orpo"):
        total += (1.0 if kind == "sft" else w) * ce / n_tok
    if kind != "sft":
        total += (case["orpo_lambda"] if kind == "orpo" else 1.0) * pref / n_q
    return {"loss": total, "sft": ce, "pref": pref, "rewards/margins": margins, "rewards/accuracies": acc,
            "rewards/chosen": rc, "rewards/rejected": rr}


def model_logps(spec):
    """Token log-probs of every answer from the saved model: each (question, answer) as its own row
    [prompt | answer], a plain causal forward in float64, log-softmax at the positions that predict the answer."""
    import torch
    from safetensors.torch import load_file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from model_reference import phantom_forward, vit_forward

    c = json.load(open(os.path.join(spec["model"], "config.json")))
    W = {k: v.double() for k, v in load_file(os.path.join(spec["model"], "model.safetensors")).items()}
    L = {k[len("language_model."):]: v for k, v in W.items() if k.startswith("language_model.")}
    pixels = load_file(spec["pixels"])
    answers = []
    with torch.no_grad():
        for q, item in enumerate(spec["questions_in"]):
            visual = vit_forward(W, c["vision_config"], pixels[f"q{q}"].double())
            for a, ans in enumerate(item["answers"]):
                ids = torch.tensor([item["prompt"] + ans])
                emb = L["model.embed_tokens.weight"][ids].clone()
                sel = ids == c["image_token_index"]
                assert int(sel.sum()) == visual.shape[0] * visual.shape[1], (int(sel.sum()), visual.shape)
                emb[sel] = visual.reshape(-1, visual.shape[-1])
                logits = phantom_forward(L, c["llm_config"], ids, torch.ones_like(ids), c["phantom"],
                                         c["phantom_eta"], embeds=emb)[0]
                lp = logits.log_softmax(-1)
                P = len(item["prompt"])
                answers.append({"question": q, "answer": a, "ref": item.get("refs", [0.0] * (a + 1))[a],
                                "logps": [lp[P - 1 + t, tok].item() for t, tok in enumerate(ans)]})
    return answers


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("loss", "model-loss"):
        raise SystemExit(__doc__)
    spec = json.load(open(sys.argv[2]))
    if sys.argv[1] == "model-loss":
        spec["answers"] = model_logps(spec)
        spec["questions"] = spec.get("questions") or len(spec["questions_in"])
        spec["sft_tokens"] = spec.get("sft_tokens") or sum(len(a["logps"]) for a in spec["answers"] if a["answer"] == 0)
    print(json.dumps([loss(spec, case) for case in spec["cases"]]))  # floats at full precision (repr)


if __name__ == "__main__":
    main()
